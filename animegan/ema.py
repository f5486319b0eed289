"""The generator's exponential moving average: its decay schedule, its update, and the averaged
generator's own BatchNorm statistics. Samples, checkpoints' `sample`/`export` and every score use
the averaged generator; training never reads it."""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from animegan.config import Config

STANDING_STATS_BATCH = 1024  # noise vectors for the EMA generator's own BatchNorm statistics


def ema_beta(cfg: Config, step, batch_size: int):
    """EMA decay for this step. The half-life, in images, ramps up with the images seen (as in
    StyleGAN2-ADA), so early samples average a short, recent window instead of the gray mush a
    fixed 0.999 gives while the average still remembers the random initialisation."""
    half_life = batch_size * math.log(0.5) / math.log(cfg.train.ema_decay)
    if cfg.train.ema_rampup > 0:
        seen = tf.cast(step + 1, tf.float32) * batch_size
        half_life = tf.minimum(half_life, seen * cfg.train.ema_rampup)
    return tf.pow(0.5, batch_size / tf.maximum(tf.cast(half_life, tf.float32), 1e-8))


def update_ema(ema_generator: keras.Model, generator: keras.Model, beta) -> None:
    """Average the trainable weights; copy BatchNorm's moving statistics from the live generator,
    since they describe activations, not parameters (StyleGAN2-ADA does the same with buffers)."""
    for ema, live in zip(ema_generator.trainable_variables, generator.trainable_variables):
        ema.assign(live + tf.cast(beta, live.dtype) * (ema - live))
    for ema, live in zip(ema_generator.non_trainable_variables, generator.non_trainable_variables):
        ema.assign(live)


def standing_batchnorm_stats(generator: keras.Model, seed: int) -> None:
    """Give the EMA generator BatchNorm statistics of its own activations ("standing statistics", as
    in BigGAN), measured on one large batch of fixed noise.

    update_ema copies the live generator's moving statistics, which describe the live weights'
    activations, not the averaged weights': on the default config at 10 epochs the EMA generator with
    them drew 40% near-duplicate faces, with its own statistics 6%. Training never reads these
    statistics (it normalises with batch statistics) and the next step's update_ema overwrites them,
    so this changes what samples and checkpoints show, not the run: exact resume still holds.
    """
    norms = [layer for layer in generator.layers if isinstance(layer, keras.layers.BatchNormalization)]
    noise = (
        np.random.default_rng([seed, 1])
        .standard_normal((STANDING_STATS_BATCH, generator.input_shape[-1]))
        .astype(np.float32)
    )
    momenta = [layer.momentum for layer in norms]
    try:
        for layer in norms:
            layer.momentum = 0.0  # the moving statistics become this one batch's
        generator(noise, training=True)
    finally:
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum
