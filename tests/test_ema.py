"""The generator EMA: the decay's ramp, the update, and standing BatchNorm statistics."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_config

from animegan.ema import STANDING_STATS_BATCH, ema_beta, standing_batchnorm_stats, update_ema
from animegan.step import build_state


@pytest.mark.parametrize(
    "step, rampup, expected",
    [
        # Ramping up, the half-life is rampup x the images seen, (step + 1) x batch x rampup, so
        # beta = 0.5 ** (batch / half-life) = 0.5 ** (1 / ((step + 1) x rampup)), whatever the batch.
        (19, 0.05, 0.5),
        (39, 0.05, 0.5**0.5),
        (0, 0.05, 0.5**20),
        # Past the ramp, and without one, beta is ema_decay itself.
        (10**6, 0.05, 0.999),
        (0, 0.0, 0.999),
    ],
)
def test_ema_beta_ramps_up_to_the_configured_decay(tmp_path, step, rampup, expected):
    cfg = tiny_config(tmp_path, ema_decay=0.999, ema_rampup=rampup)
    for batch in (8, 256):
        assert float(ema_beta(cfg, tf.constant(step, tf.int64), batch)) == pytest.approx(expected, rel=1e-5)


def test_ema_beta_never_falls_and_levels_off_at_the_decay(tmp_path):
    cfg = tiny_config(tmp_path, ema_decay=0.999, ema_rampup=0.05)
    # The ramp ends near step 13,857, where 0.05 x the images seen reaches the decay's half-life of 5,543 images.
    betas = [float(ema_beta(cfg, tf.constant(step, tf.int64), 8)) for step in range(0, 20001, 1000)]
    assert all(a <= b for a, b in zip(betas, betas[1:]))
    assert betas[13] < 0.999 == pytest.approx(betas[14], rel=1e-6) == pytest.approx(betas[-1], rel=1e-6)


def test_update_ema_averages_the_weights_and_copies_batchnorm_statistics(tmp_path):
    from animegan.models import build_generator

    cfg = tiny_config(tmp_path)
    live, ema = (build_generator(cfg.model, 16, 1) for _ in range(2))
    for model, weight, statistic in ((live, 2.0, 3.0), (ema, 10.0, 7.0)):
        for variable in model.trainable_variables:
            variable.assign(tf.fill(variable.shape, weight))
        for variable in model.non_trainable_variables:
            variable.assign(tf.fill(variable.shape, statistic))
    assert ema.non_trainable_variables  # BatchNorm's moving mean and variance

    update_ema(ema, live, tf.constant(0.25))
    for variable in ema.trainable_variables:
        assert np.allclose(variable.numpy(), 2.0 + 0.25 * (10.0 - 2.0))  # live + beta x (ema - live)
    for variable in ema.non_trainable_variables:
        assert np.allclose(variable.numpy(), 3.0)
    for variable in live.trainable_variables:
        assert np.allclose(variable.numpy(), 2.0)


def test_standing_stats_are_the_ema_generators_own_batch_statistics(tmp_path):
    cfg = tiny_config(tmp_path)
    state = build_state(cfg, "float32")
    generator = state.ema_generator
    norm = next(layer for layer in generator.layers if isinstance(layer, keras.layers.BatchNormalization))
    standing_batchnorm_stats(generator, cfg.train.seed)
    noise = (
        np.random.default_rng([cfg.train.seed, 1])
        .standard_normal((STANDING_STATS_BATCH, cfg.model.noise_dim))
        .astype(np.float32)
    )
    dense_out = generator.layers[0](noise).numpy()  # the first BatchNorm normalises the dense layer's output
    np.testing.assert_allclose(norm.moving_mean.numpy(), dense_out.mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(norm.moving_variance.numpy(), dense_out.var(axis=0), rtol=1e-3, atol=1e-5)
    assert norm.momentum == 0.99  # put back
