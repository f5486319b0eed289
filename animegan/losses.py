"""The GAN losses and the R1 regulariser, as plain functions of discriminator logits.

Each loss returns per-image values; the train step averages them over the global batch.
"""

from __future__ import annotations

import tensorflow as tf


def bce_losses(real_logits, fake_logits):
    """The recipe's non-saturating binary cross-entropy: softplus(-x) = BCE(1, x), softplus(x) = BCE(0, x)."""
    d_loss = tf.nn.softplus(-real_logits) + tf.nn.softplus(fake_logits)
    g_loss = tf.nn.softplus(-fake_logits)
    return d_loss, g_loss


def hinge_losses(real_logits, fake_logits):
    """Hinge loss (Lim & Ye 2017, as in SAGAN/BigGAN): D stops pushing once a logit is past the margin of 1,
    so it cannot grow ever more confident on the images it already separates."""
    d_loss = tf.nn.relu(1.0 - real_logits) + tf.nn.relu(1.0 + fake_logits)
    g_loss = -fake_logits
    return d_loss, g_loss


LOSSES = {"bce": bce_losses, "hinge": hinge_losses}


def r1_penalty(discriminator, real):
    """Per-image R1 (Mescheder et al. 2018): the squared norm of D's gradient at the real images.

    Returns (penalty, real_logits) so the step reuses this forward pass as its D(real). Call it
    inside the discriminator's GradientTape: the penalty's own gradient needs the second derivative.
    """
    with tf.GradientTape() as tape:
        tape.watch(real)
        real_logits = tf.reshape(discriminator(real, training=True), [-1])
        total = tf.reduce_sum(real_logits)  # inside the tape, or the gradient below is None
    gradients = tf.cast(tape.gradient(total, real), tf.float32)
    return tf.reduce_sum(tf.square(gradients), axis=[1, 2, 3]), real_logits
