"""How varied a set of images is, measured in pixels against a real set: the figures that caught the
default's partial collapse, which SWD did not.

    near_duplicates   share of images whose nearest other image of the set is closer than 99% of
                      real images are to their nearest real neighbour (real images score about 0.01)
    nn_ratio          median nearest-neighbour distance within the set / the same for the real set
    spread_ratio      mean pairwise distance within the set / the same for the real set

Distances are RMS pixel differences in [0, 1] at the data's own size. The ratios are about 1 for a
set as varied as the real one and fall towards 0 as it collapses onto few images.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from animegan.metrics.prdc import distance_blocks, hide_self

DUPLICATE_QUANTILE = 0.01  # a "near-duplicate" is closer than this share of real nearest neighbours


def rms_blocks(a: np.ndarray, b: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """prdc.distance_blocks of two sets of uint8 images as RMS pixel distances, in [0, 1]."""
    a_pixels = a.reshape(len(a), -1).astype(np.float32) / 255.0
    b_pixels = b.reshape(len(b), -1).astype(np.float32) / 255.0
    for start, block in distance_blocks(a_pixels, b_pixels):
        yield start, block / np.sqrt(a_pixels.shape[1])


def nearest_distances(images: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each image's RMS pixel distance to its nearest image in another set (a training set, say)."""
    return np.concatenate([block.min(axis=1) for _, block in rms_blocks(images, reference)])


def pixel_summary(images: np.ndarray) -> dict[str, np.ndarray]:
    """{'nn': each image's RMS distance to its nearest other image, 'spread': the mean over all pairs}."""
    total, nearest = 0.0, []
    for start, block in rms_blocks(images, images):
        total += block.sum(dtype=np.float64)  # the diagonal is 0: the sum is over all distinct pairs
        nearest.append(hide_self(block, start).min(axis=1))
    spread = total / (len(images) * (len(images) - 1))
    return {"nn": np.concatenate(nearest), "spread": np.array(spread, dtype=np.float32)}


def diversity_scores(real: dict[str, np.ndarray], fake: dict[str, np.ndarray]) -> dict[str, float]:
    threshold = np.quantile(real["nn"], DUPLICATE_QUANTILE)
    return {
        "near_duplicates": float(np.mean(fake["nn"] < threshold)),
        "nn_ratio": float(np.median(fake["nn"]) / np.median(real["nn"])),
        "spread_ratio": float(fake["spread"] / real["spread"]),
    }
