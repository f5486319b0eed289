"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to real and fake images alike,
so the discriminator cannot memorise a small data set. Images are NHWC in [-1, 1]."""

from __future__ import annotations

import tensorflow as tf


def brightness_saturation_contrast(x, rng):
    batch = tf.shape(x)[0]
    x = x + (rng.uniform([batch, 1, 1, 1], dtype=x.dtype) - 0.5)
    mean = tf.reduce_mean(x, axis=3, keepdims=True)  # no-op for grayscale, as it should be
    x = (x - mean) * (rng.uniform([batch, 1, 1, 1], dtype=x.dtype) * 2) + mean
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return (x - mean) * (rng.uniform([batch, 1, 1, 1], dtype=x.dtype) + 0.5) + mean


def translation(x, rng, ratio: float = 0.125):
    """Shift each image by up to `ratio` of its size, filling with zeros (mid-gray)."""
    batch, height, width = tf.shape(x)[0], x.shape[1], x.shape[2]
    pad_h, pad_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
    dy = rng.uniform([batch, 1], -pad_h, pad_h + 1, dtype=tf.int32)
    dx = rng.uniform([batch, 1], -pad_w, pad_w + 1, dtype=tf.int32)
    padded = tf.pad(x, [[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]])
    rows = tf.range(height)[None, :] + pad_h + dy
    cols = tf.range(width)[None, :] + pad_w + dx
    x = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(x, cols, axis=2, batch_dims=1)


def cutout(x, rng, ratio: float = 0.5):
    """Blank one random rectangle of `ratio` x the image size in each image."""
    batch, height, width = tf.shape(x)[0], x.shape[1], x.shape[2]
    cut_h, cut_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
    top = rng.uniform([batch, 1, 1, 1], 0, height + (1 - cut_h % 2), dtype=tf.int32) - cut_h // 2
    left = rng.uniform([batch, 1, 1, 1], 0, width + (1 - cut_w % 2), dtype=tf.int32) - cut_w // 2
    rows = tf.range(height)[None, :, None, None]
    cols = tf.range(width)[None, None, :, None]
    inside = (rows >= top) & (rows < top + cut_h) & (cols >= left) & (cols < left + cut_w)
    return x * tf.cast(~inside, x.dtype)


OPS = {"color": brightness_saturation_contrast, "translation": translation, "cutout": cutout}


def diff_augment(x, rng, ops: list[str]):
    """Apply the named ops in a fixed order (colour, translation, cutout, as in the paper)."""
    for name in ("color", "translation", "cutout"):
        if name in ops:
            x = OPS[name](x, rng)
    return x
