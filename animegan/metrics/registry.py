"""The metric registry: each metric's name, the kind of features it compares, and its scoring function.

Its own module so that evaluate.py can read it while the package's __init__.py re-exports both.
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
