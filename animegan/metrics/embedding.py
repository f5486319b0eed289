"""The default feature space for precision/recall and density/coverage: a fixed, randomly initialised
convolutional network. It needs no download (these metrics' standard space, Inception, does: pass
--inception-weights to use it instead).

Random convolutional features keep local structure (edges, blobs, their layout) but know nothing of
what a face is: Naeem et al. 2020 found density and coverage in such a space still rank generators
sensibly, but two runs are only comparable in the same space, and "close to a real face" here means
close in layout and texture, not in identity. The weights come from NumPy's seeded generator, so the
space is the same on every machine and TensorFlow version.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

INPUT_SIDE = 64  # images are resized to this first, so every data size shares one space
WIDTHS = (32, 64, 128, 256)  # 3x3 stride-2 convolutions: 64 -> 32 -> 16 -> 8 -> 4
POOLED_GRID = 2  # the last maps are average-pooled to 2x2, keeping coarse layout (pose, framing)
SEED = 0
IMAGES_PER_BATCH = 500
SETTINGS = f"randnet-{INPUT_SIDE}-{'.'.join(map(str, WIDTHS))}-g{POOLED_GRID}-s{SEED}"


def network_weights(channels: int) -> list[np.ndarray]:
    """He-normal 3x3 kernels, the same for a given channel count on every machine."""
    rng = np.random.default_rng([SEED, channels])
    kernels, inputs = [], channels
    for width in WIDTHS:
        kernels.append((rng.standard_normal((3, 3, inputs, width)) * np.sqrt(2.0 / (9 * inputs))).astype(np.float32))
        inputs = width
    return kernels


def embedding_features(images: np.ndarray, show_progress: bool = False) -> dict[str, np.ndarray]:
    """{'vectors': (N, 2 * sum(WIDTHS) + 4 * 256) float32} for uint8 NHWC images: each layer's mean and
    spread of responses, then the last layer pooled to a 2x2 grid."""
    import tensorflow as tf

    kernels = [tf.constant(k) for k in network_weights(images.shape[-1])]

    @tf.function
    def embed(batch):
        x = tf.image.resize(tf.cast(batch, tf.float32) / 127.5 - 1.0, (INPUT_SIDE, INPUT_SIDE), antialias=True)
        parts = []
        for kernel in kernels:
            x = tf.nn.relu(tf.nn.conv2d(x, kernel, strides=2, padding="SAME"))
            mean, variance = tf.nn.moments(x, axes=[1, 2])
            parts += [mean, tf.sqrt(variance + 1e-8)]
        pooled = tf.nn.avg_pool2d(x, x.shape[1] // POOLED_GRID, x.shape[1] // POOLED_GRID, "VALID")
        parts.append(tf.reshape(pooled, [tf.shape(pooled)[0], -1]))
        return tf.concat(parts, axis=1)

    vectors = []
    with tqdm(total=len(images), desc="embedding", unit="img", disable=not show_progress, leave=False) as progress:
        for start in range(0, len(images), IMAGES_PER_BATCH):
            batch = images[start : start + IMAGES_PER_BATCH]
            vectors.append(embed(tf.constant(batch)).numpy())
            progress.update(len(batch))
    return {"vectors": np.concatenate(vectors)}


def fd_score(real: dict[str, np.ndarray], fake: dict[str, np.ndarray]) -> dict[str, float]:
    """{'fd': the Fréchet distance of the two sets in this network's space}: FID's formula without
    Inception's weights. It sees texture (the layers' mean and spread of responses) as well as
    layout, so grain a generator adds raises it even when SWD falls. Lower is closer."""
    from animegan.metrics.inception import frechet_of_sets

    return {"fd": frechet_of_sets(real["vectors"], fake["vectors"])}


def inception_vectors(inception_model, images: np.ndarray, show_progress: bool = False) -> dict[str, np.ndarray]:
    """Inception's pool features under the name the k-NN metrics read, for --inception-weights."""
    from animegan.metrics.inception import inception_features

    return {"vectors": inception_features(inception_model, images, show_progress)["pool"]}
