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

from collections.abc import Iterator

import numpy as np

NEAREST_K = 5  # Naeem et al.'s k; their prdc package uses it for all four
# Distances held at once (32 MiB in float64). Every metric reduces each block of rows as it comes, so memory
# stays flat however many images `evaluate --n` compares: a full matrix of 100,000 images would be 40 GB.
BLOCK_ELEMENTS = 1 << 22


def distance_blocks(a: np.ndarray, b: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (start, block): rows start.. of the (len(a), len(b)) Euclidean distances, a few rows at a time,
    in float32 from float64 norms (no catastrophic cancellation for near points)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    b_norms = np.sum(b64 * b64, axis=1)
    rows = max(1, BLOCK_ELEMENTS // max(len(b64), 1))
    for start in range(0, len(a64), rows):
        block = a64[start : start + rows]
        squared = np.sum(block * block, axis=1)[:, None] + b_norms[None, :] - 2 * block @ b64.T
        yield start, np.sqrt(np.clip(squared, 0, None)).astype(np.float32)


def hide_self(block: np.ndarray, start: int) -> np.ndarray:
    """Set each point's distance to itself to inf in rows start.. of a set's distances to itself; returns block."""
    rows = np.arange(len(block))
    block[rows, start + rows] = np.inf
    return block


def kth_neighbour_distance(features: np.ndarray, k: int) -> np.ndarray:
    """Each point's distance to its k-th nearest other point of the same set."""
    return np.concatenate(
        [
            np.partition(hide_self(block, start), k - 1, axis=1)[:, k - 1]
            for start, block in distance_blocks(features, features)
        ]
    )


def prdc_scores(real: dict[str, np.ndarray], fake: dict[str, np.ndarray], k: int = NEAREST_K) -> dict[str, float]:
    k = min(k, len(real["vectors"]) - 1, len(fake["vectors"]) - 1)  # tiny sets (tests, a 4-image folder) still score
    # Standardise every feature by the real set's spread, so that no group of features (one layer's
    # texture statistics, say) outweighs the rest just by its scale.
    mean, std = real["vectors"].mean(axis=0), real["vectors"].std(axis=0) + 1e-6
    real_features, fake_features = (real["vectors"] - mean) / std, (fake["vectors"] - mean) / std
    real_radii = kth_neighbour_distance(real_features, k)
    fake_radii = kth_neighbour_distance(fake_features, k)
    balls_holding = np.zeros(len(fake_features), np.int64)  # per generated image: the real balls it lies in
    recalled, covered = [], []  # per real image: inside some generated ball; its ball holds a generated image
    for start, between in distance_blocks(real_features, fake_features):  # (real rows, fake)
        radii = real_radii[start : start + len(between)]
        balls_holding += (between < radii[:, None]).sum(axis=0)
        recalled.append((between < fake_radii[None, :]).any(axis=1))
        covered.append(between.min(axis=1) < radii)
    return {
        "precision": float((balls_holding > 0).mean()),
        "recall": float(np.concatenate(recalled).mean()),
        "density": float(balls_holding.mean() / k),
        "coverage": float(np.concatenate(covered).mean()),
    }
