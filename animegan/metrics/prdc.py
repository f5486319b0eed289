"""Fidelity and diversity as separate numbers, from k-nearest-neighbour balls in a feature space.

    precision, recall   Kynkäänniemi et al. 2019, "Improved precision and recall metric"
    density, coverage   Naeem et al. 2020, "Reliable fidelity and diversity metrics for generative models"

Each real image gets a ball reaching its k-th nearest real neighbour. Precision: the share of
generated images inside some real ball (they look real). Recall: the share of real images inside
some generated image's ball (the generator reaches them). Density: how many real balls hold a
generated image on average, over k (about 1 for a perfect generator; it is not capped). Coverage:
the share of real balls that hold at least one generated image. A generator that draws one face
over and over keeps precision and density but loses recall and coverage.

All four are "higher is better" and about 1 for two samples of the same distribution.
"""

from __future__ import annotations

import numpy as np

NEAREST_K = 5  # Naeem et al.'s k; their prdc package uses it for all four
ROWS_PER_BLOCK = 1024  # rows of a distance matrix held at once


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances, (len(a), len(b)), in float32 from float64 norms (no catastrophic
    cancellation for near points)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    b_norms = np.sum(b64 * b64, axis=1)
    rows = []
    for start in range(0, len(a64), ROWS_PER_BLOCK):
        block = a64[start : start + ROWS_PER_BLOCK]
        squared = np.sum(block * block, axis=1)[:, None] + b_norms[None, :] - 2 * block @ b64.T
        rows.append(np.sqrt(np.clip(squared, 0, None)).astype(np.float32))
    return np.concatenate(rows)


def kth_neighbour_distance(features: np.ndarray, k: int) -> np.ndarray:
    """Each point's distance to its k-th nearest other point of the same set."""
    distances = pairwise_distances(features, features)
    np.fill_diagonal(distances, np.inf)
    return np.partition(distances, k - 1, axis=1)[:, k - 1]


def prdc_scores(real: dict[str, np.ndarray], fake: dict[str, np.ndarray], k: int = NEAREST_K) -> dict[str, float]:
    k = min(k, len(real["vectors"]) - 1, len(fake["vectors"]) - 1)  # tiny sets (tests, a 4-image folder) still score
    # Standardise every feature by the real set's spread, so that no group of features (one layer's
    # texture statistics, say) outweighs the rest just by its scale.
    mean, std = real["vectors"].mean(axis=0), real["vectors"].std(axis=0) + 1e-6
    real_features, fake_features = (real["vectors"] - mean) / std, (fake["vectors"] - mean) / std
    real_radii = kth_neighbour_distance(real_features, k)
    fake_radii = kth_neighbour_distance(fake_features, k)
    between = pairwise_distances(real_features, fake_features)  # (real, fake)
    inside_real_ball = between < real_radii[:, None]
    return {
        "precision": float(inside_real_ball.any(axis=0).mean()),
        "recall": float((between < fake_radii[None, :]).any(axis=1).mean()),
        "density": float(inside_real_ball.sum(axis=0).mean() / k),
        "coverage": float((between.min(axis=1) < real_radii).mean()),
    }
