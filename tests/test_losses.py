"""The GAN losses and R1 against values computed by hand."""

import numpy as np
import pytest
import tensorflow as tf

from animegan.losses import bce_losses, hinge_losses, r1_penalty


def test_bce_is_the_recipes_cross_entropy():
    real, fake = tf.constant([2.0, -1.0]), tf.constant([0.5, -3.0])
    d_loss, g_loss = bce_losses(real, fake)
    sigmoid = lambda x: 1 / (1 + np.exp(-np.array(x)))  # noqa: E731
    expected_d = -np.log(sigmoid([2.0, -1.0])) - np.log(1 - sigmoid([0.5, -3.0]))
    np.testing.assert_allclose(d_loss.numpy(), expected_d, rtol=1e-6)
    np.testing.assert_allclose(g_loss.numpy(), -np.log(sigmoid([0.5, -3.0])), rtol=1e-6)


def test_hinge_stops_at_the_margin():
    d_loss, g_loss = hinge_losses(tf.constant([2.0, 0.5]), tf.constant([-3.0, 0.0]))
    # Past the margin (real 2 > 1, fake -3 < -1) D gets no loss; inside it, the distance to the margin.
    np.testing.assert_allclose(d_loss.numpy(), [0.0 + 0.0, 0.5 + 1.0])
    np.testing.assert_allclose(g_loss.numpy(), [3.0, 0.0])


def test_r1_of_a_linear_discriminator_is_its_squared_weight_norm():
    weights = tf.constant(np.arange(1, 17, dtype=np.float32).reshape(1, 4, 4, 1) / 10)

    def linear(x, training):
        return tf.reduce_sum(x * weights, axis=[1, 2, 3])

    images = tf.random.normal([3, 4, 4, 1])
    penalty, logits = r1_penalty(linear, images)
    np.testing.assert_allclose(penalty.numpy(), [np.sum(weights.numpy() ** 2)] * 3, rtol=1e-6)
    np.testing.assert_allclose(logits.numpy(), linear(images, True).numpy(), rtol=1e-6)


def test_r1_has_a_gradient_for_the_discriminators_weights():
    w = tf.Variable(2.0)

    def quadratic(x, training):
        return w * tf.reduce_sum(x * x, axis=[1, 2, 3])

    images = tf.ones([2, 2, 2, 1])
    with tf.GradientTape() as tape:
        penalty, _ = r1_penalty(quadratic, images)
        total = tf.reduce_sum(penalty)
    # d/dx of w*|x|^2 is 2wx, so the penalty is 4 w^2 |x|^2 = 16 w^2 per image and its w-derivative 32 w.
    assert float(total) == pytest.approx(2 * 16 * 4.0)
    assert float(tape.gradient(total, w)) == pytest.approx(2 * 32 * 2.0)
