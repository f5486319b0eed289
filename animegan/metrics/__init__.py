"""Image-quality metrics behind a small registry, in the manner of stylegan2-ada-pytorch's metric_main.

Each metric compares one kind of *features* of the real images with those of generated ones:

    swd        multi-scale sliced Wasserstein distance of Laplacian-pyramid patches (swd.py); no download
    fid        Fréchet Inception distance (inception.py)
    kid        kernel Inception distance x 1e3, unbiased (inception.py)
    prdc       precision, recall, density, coverage (prdc.py) in a fixed random network's features
               (embedding.py), or in Inception's when Inception weights are given
    diversity  near-duplicate share and distance ratios within the generated set, in pixels (diversity.py)
    fd         Fréchet distance in the same random network's features as prdc (embedding.py); no download
    spectrum   difference of the radially averaged power spectra, in dB: grain, checkerboard, blur (spectrum.py)

swd, fid, kid, fd and spectrum are lower-is-better; prdc's four numbers and diversity's ratios are higher-is-better
(near_duplicates lower). FID and KID share the Inception features, so asking for both runs the
network once. Entry points:
`evaluate_run` (the `animegan evaluate` command) and `evaluate_generator` (for training) in evaluate.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from animegan.metrics import diversity, embedding, inception, prdc, spectrum, swd

Features = dict[str, np.ndarray]


class Metric(NamedTuple):
    features: str  # the kind of features it compares: "swd", "inception", "embedding", "pixels" or "spectrum"
    score: Callable[[Features, Features], dict[str, float]]  # (real, generated) -> results


METRICS = {
    "swd": Metric(features="swd", score=swd.swd_scores),
    "fid": Metric(features="inception", score=inception.fid_score),
    "kid": Metric(features="inception", score=inception.kid_score),
    "prdc": Metric(features="embedding", score=prdc.prdc_scores),
    "diversity": Metric(features="pixels", score=diversity.diversity_scores),
    "fd": Metric(features="embedding", score=embedding.fd_score),
    "spectrum": Metric(features="spectrum", score=spectrum.spectrum_scores),
}

# Imported last because evaluate.py reads METRICS.
from animegan.metrics.evaluate import (  # noqa: E402
    compute_real_features,
    evaluate_generator,
    evaluate_images,
    evaluate_run,
    parse_metric_names,
    score_generator,
)

__all__ = [
    "METRICS",
    "Metric",
    "compute_real_features",
    "evaluate_generator",
    "evaluate_images",
    "evaluate_run",
    "parse_metric_names",
    "score_generator",
]
