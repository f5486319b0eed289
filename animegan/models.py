"""The DCGAN's two networks, built from the model config for any size base*2^k and 1 or 3 channels."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from animegan.config import ModelConfig, generator_base


def build_generator(model: ModelConfig, size: int, channels: int, sync_batchnorm: bool = False) -> keras.Model:
    """Noise -> Dense(base*base*width) -> BN -> LeakyReLU -> transposed convs that double the size -> tanh.

    As in the recipe: a stride-1 conv to width/2 channels first, then stride-2 blocks that
    halve the channels, the last one producing the image. The output layer computes in float32 so
    mixed precision never rounds the pixels.

    sync_batchnorm: BatchNorm statistics over the global batch of all tf.distribute replicas instead
    of each replica's slice, so several replicas train like one device (and their copies of the
    moving statistics stay equal).
    """
    base, doublings = generator_base(size)
    width = model.g_width
    net = keras.Sequential(name="generator")
    net.add(keras.Input(shape=(model.noise_dim,)))
    net.add(layers.Dense(base * base * width, use_bias=False))
    net.add(layers.BatchNormalization(synchronized=sync_batchnorm))
    net.add(layers.LeakyReLU())
    net.add(layers.Reshape((base, base, width)))
    width //= 2
    # The recipe's stride-1 Conv2DTranspose, written as the Conv2D it equals (the same function with the
    # kernel flipped and its channel axes swapped, and the same Glorot initialisation): TensorFlow's
    # CPU kernels train it ~1.3x faster than the transposed form.
    net.add(layers.Conv2D(width, model.g_kernel, strides=1, padding="same", use_bias=False))
    net.add(layers.BatchNormalization(synchronized=sync_batchnorm))
    net.add(layers.LeakyReLU())
    for _ in range(doublings - 1):
        width = max(width // 2, 1)
        net.add(layers.Conv2DTranspose(width, model.g_kernel, strides=2, padding="same", use_bias=False))
        net.add(layers.BatchNormalization(synchronized=sync_batchnorm))
        net.add(layers.LeakyReLU())
    net.add(layers.Conv2DTranspose(channels, model.g_kernel, strides=2, padding="same"))
    net.add(layers.Activation("tanh", dtype="float32"))
    return net


class ReplicaDropout(layers.Dropout):
    """Dropout that gives each tf.distribute replica its own mask.

    Keras's Dropout seeds its mask from a SeedGenerator variable of which every replica holds an
    identical copy, so all replicas would drop the same units; folding the replica's id into the
    seed decorrelates them. With one replica it is Keras's Dropout, unchanged.
    """

    def call(self, inputs, training=False):
        replica = tf.distribute.get_replica_context()
        if not training or self.rate == 0 or replica is None or replica.num_replicas_in_sync == 1:
            return super().call(inputs, training=training)
        seed = tf.cast(self.seed_generator.next() % tf.int32.max, tf.int32)  # XLA wants int32 seeds
        seed = tf.random.experimental.stateless_fold_in(seed, replica.replica_id_in_sync_group)
        return tf.nn.experimental.stateless_dropout(inputs, rate=self.rate, seed=seed, noise_shape=self.noise_shape)


def build_discriminator(model: ModelConfig, size: int, channels: int) -> keras.Model:
    """Stride-2 convs with LeakyReLU (and dropout if configured), then one real/fake logit in float32."""
    net = keras.Sequential(name="discriminator")
    net.add(keras.Input(shape=(size, size, channels)))
    for width in model.d_widths:
        net.add(layers.Conv2D(width, model.d_kernel, strides=2, padding="same"))
        net.add(layers.LeakyReLU())
        if model.d_dropout > 0:
            net.add(ReplicaDropout(model.d_dropout))
    net.add(layers.Flatten())
    net.add(layers.Dense(1, dtype="float32"))
    return net
