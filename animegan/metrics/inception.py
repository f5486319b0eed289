"""Inception features, and the two metrics built on them: FID (Heusel et al. 2017) and KID (Bińkowski et al. 2018).

Both compare the 2048 average-pooled features of Keras' InceptionV3 (ImageNet weights) for real and
generated images, resized to 299x299 as the standard does, grayscale repeated to three channels.
Keras' ImageNet weights are not the 2015 graph that published FIDs use, so the numbers rank runs of
this toolkit against each other; they are not comparable with papers' tables.
"""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from animegan.errors import UserError
from animegan.images import to_unit_range

IMAGE_SIZE = 299
WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
WEIGHTS_URL = f"https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/{WEIGHTS_FILE}"
WEIGHTS_MD5 = "bcbd6486424b2319ff4ef7d526e38f63"  # the hash keras.applications checks for this file
DOWNLOAD_TIMEOUT_S = 20
IMAGES_PER_BATCH = 32
KID_SCALE = 1e3  # KID is reported x 1e3, as in the ADA paper's tables
KERNEL_ROWS = 1024  # rows of the KID kernel matrix held in memory at once


def imagenet_weights() -> Path:
    """The ImageNet weights from Keras' cache (~/.keras/models), downloaded there on first use as Keras does."""
    import keras

    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(
        DOWNLOAD_TIMEOUT_S
    )  # Keras' download has no timeout of its own: offline it must fail, not hang
    try:
        return Path(keras.utils.get_file(WEIGHTS_FILE, WEIGHTS_URL, cache_subdir="models", file_hash=WEIGHTS_MD5))
    except Exception as exc:  # get_file raises a bare Exception for network errors, ValueError for a bad hash
        raise UserError(
            f"fid/kid need the InceptionV3 weights, and downloading them failed ({str(exc).strip()[:120]}); "
            f"fetch {WEIGHTS_URL} where there is internet and pass --inception-weights FILE, or use --metrics swd"
        ) from None
    finally:
        socket.setdefaulttimeout(previous_timeout)


def load_inception(weights: Path | None = None):
    """InceptionV3 without its classifier, average-pooled to 2048 features, for 299x299 RGB input.

    `weights` is a local copy of Keras' no-top ImageNet weights; without it they come from Keras' cache.
    """
    import keras

    path = Path(weights) if weights is not None else imagenet_weights()
    if not path.is_file():
        raise UserError(f"--inception-weights '{path}' does not exist; download {WEIGHTS_URL} and pass its path")
    try:
        return keras.applications.InceptionV3(
            include_top=False, pooling="avg", weights=str(path), input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3)
        )
    except Exception as exc:  # h5py and Keras raise many types for a wrong or damaged file
        raise UserError(
            f"'{path}' is not Keras' InceptionV3 no-top weights file ({str(exc).strip()[:120]}); download {WEIGHTS_URL}"
        ) from None


def network_fingerprint(model) -> str:
    """Names the network by its weights and input size, so cached real features never mix two networks."""
    digest = hashlib.sha1(str(model.input_shape).encode())
    for weights in model.get_weights():
        digest.update(np.ascontiguousarray(weights).tobytes())
    return f"inception-{digest.hexdigest()[:16]}"


def inception_input(images: np.ndarray, side: int) -> np.ndarray:
    """uint8 NHWC -> float32 (N, side, side, 3) in [-1, 1], which is what InceptionV3's preprocess_input gives."""
    resized = np.stack(
        [cv2.resize(image, (side, side), interpolation=cv2.INTER_LINEAR).reshape(side, side, -1) for image in images]
    )
    if resized.shape[-1] == 1:
        resized = np.repeat(resized, 3, axis=-1)
    return to_unit_range(resized)


def inception_features(model, images: np.ndarray, show_progress: bool = False) -> dict[str, np.ndarray]:
    """{'pool': (N, 2048) float32}: the network's pooled features of uint8 NHWC images."""
    side = model.input_shape[1]
    features = []
    with tqdm(total=len(images), desc="inception", unit="img", disable=not show_progress, leave=False) as progress:
        for start in range(0, len(images), IMAGES_PER_BATCH):
            batch = images[start : start + IMAGES_PER_BATCH]
            features.append(np.asarray(model.predict_on_batch(inception_input(batch, side)), dtype=np.float32))
            progress.update(len(batch))
    return {"pool": np.concatenate(features)}


def symmetric_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The positive semi-definite square root of a symmetric PSD matrix; rounding's tiny negative
    eigenvalues count as 0."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(mean1: np.ndarray, cov1: np.ndarray, mean2: np.ndarray, cov2: np.ndarray) -> float:
    """||m1 - m2||^2 + tr(C1) + tr(C2) - 2 tr((C1 C2)^(1/2)), the Fréchet distance of two Gaussians.

    C1 C2 has the eigenvalues of the symmetric S C2 S with S = C1^(1/2), so the trace of its square root
    is the sum of their square roots: two symmetric eigendecompositions, no general matrix square root.
    """
    root1 = symmetric_sqrt(cov1)
    product_eigenvalues = np.linalg.eigvalsh(root1 @ cov2 @ root1)
    trace_sqrt = np.sqrt(np.clip(product_eigenvalues, 0, None)).sum()
    return float(np.sum((mean1 - mean2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2 * trace_sqrt)


def mean_and_covariance(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return features.mean(axis=0), np.cov(features, rowvar=False)


def fid_score(real: dict[str, np.ndarray], fake: dict[str, np.ndarray]) -> dict[str, float]:
    """{'fid': Fréchet distance between Gaussians fitted to the two sets' Inception features}; lower is closer."""
    return {"fid": frechet_of_sets(real["pool"], fake["pool"])}


def frechet_of_sets(real_features: np.ndarray, fake_features: np.ndarray) -> float:
    """The Fréchet distance between Gaussians fitted to two sets of feature vectors.

    With fewer images than features, both covariances and the difference of the means lie in a
    subspace of at most (images + 1) dimensions. The distance is the same measured inside it, in an
    orthonormal basis, and that is far cheaper than eigendecompositions of 2048 x 2048 matrices.
    """
    real_features, fake_features = real_features.astype(np.float64), fake_features.astype(np.float64)
    if len(real_features) + len(fake_features) < real_features.shape[1]:
        spanning = [real_features - real_features.mean(axis=0), fake_features - fake_features.mean(axis=0)]
        spanning.append([real_features.mean(axis=0) - fake_features.mean(axis=0)])
        basis, _ = np.linalg.qr(np.concatenate(spanning).T)
        real_features, fake_features = real_features @ basis, fake_features @ basis
    return frechet_distance(*mean_and_covariance(real_features), *mean_and_covariance(fake_features))


def kernel_sum(a: np.ndarray, b: np.ndarray) -> float:
    """The sum of k(a_i, b_j) = (a_i . b_j / d + 1)^3 over all pairs, KERNEL_ROWS rows at a time."""
    dimensions = a.shape[1]
    return float(
        sum(
            ((a[start : start + KERNEL_ROWS] @ b.T / dimensions + 1) ** 3).sum()
            for start in range(0, len(a), KERNEL_ROWS)
        )
    )


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """The unbiased estimate of the squared MMD between two feature sets, with KID's cubic polynomial kernel.

    Unbiased: pairs of an item with itself are left out of the within-set means, so two draws from one
    distribution average to 0. All pairs are used (no subsets), which is the lowest-variance estimate.
    """
    real, fake = real.astype(np.float64), fake.astype(np.float64)

    def mean_over_distinct_pairs(x: np.ndarray) -> float:
        self_pairs = np.sum((np.sum(x * x, axis=1) / x.shape[1] + 1) ** 3)
        return (kernel_sum(x, x) - self_pairs) / (len(x) * (len(x) - 1))

    return float(
        mean_over_distinct_pairs(real)
        + mean_over_distinct_pairs(fake)
        - 2 * kernel_sum(real, fake) / (len(real) * len(fake))
    )


def kid_score(real: dict[str, np.ndarray], fake: dict[str, np.ndarray]) -> dict[str, float]:
    """{'kid': KID x 1e3}; 0 means the same distribution, and small negative values are noise around it."""
    return {"kid": kernel_inception_distance(real["pool"], fake["pool"]) * KID_SCALE}
