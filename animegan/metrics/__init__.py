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
network once. The registry is in registry.py; the entry points, in evaluate.py, are `evaluate_run`
(the `animegan evaluate` command), `evaluate_images` (a folder) and `Evaluator` (for training).
"""

from animegan.metrics.evaluate import (
    Evaluator,
    compute_real_features,
    evaluate_generator,
    evaluate_images,
    evaluate_run,
    parse_metric_names,
    score_generator,
)
from animegan.metrics.registry import METRICS, Metric

__all__ = [
    "METRICS",
    "Evaluator",
    "Metric",
    "compute_real_features",
    "evaluate_generator",
    "evaluate_images",
    "evaluate_run",
    "parse_metric_names",
    "score_generator",
]
