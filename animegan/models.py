"""The DCGAN's two networks, built from the model config for any size base*2^k and 1 or 3 channels."""

from __future__ import annotations

import math

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
    net.add(layers.LeakyReLU(model.leaky_slope))
    net.add(layers.Reshape((base, base, width)))
    width //= 2
    # The recipe's stride-1 Conv2DTranspose, written as the Conv2D it equals (the same function with the
    # kernel flipped and its channel axes swapped, and the same Glorot initialisation): TensorFlow's
    # CPU kernels train it ~1.3x faster than the transposed form.
    net.add(layers.Conv2D(width, model.g_kernel, strides=1, padding="same", use_bias=False))
    net.add(layers.BatchNormalization(synchronized=sync_batchnorm))
    net.add(layers.LeakyReLU(model.leaky_slope))
    for _ in range(doublings - 1):
        width = max(width // 2, 1)
        add_feature_upsampling(net, model, width, sync_batchnorm)
    if model.g_output_kernel:
        # A stride-2 layer gives even and odd pixels different taps; drawing colour there paints that
        # difference as a fine pattern in each channel, rainbow noise in colour. One more layer of
        # features at full size, then the same kernel for every pixel's colour.
        add_feature_upsampling(net, model, width, sync_batchnorm)
        net.add(layers.Conv2D(channels, model.g_output_kernel, padding="same"))
    else:
        for layer in upsampling(model, channels, use_bias=True):
            net.add(layer)
    net.add(layers.Activation("tanh", dtype="float32"))
    return net


def add_feature_upsampling(net: keras.Sequential, model: ModelConfig, width: int, sync_batchnorm: bool) -> None:
    """One doubling to `width` feature channels, then BatchNorm and LeakyReLU."""
    for layer in upsampling(model, width, use_bias=False):
        net.add(layer)
    net.add(layers.BatchNormalization(synchronized=sync_batchnorm))
    net.add(layers.LeakyReLU(model.leaky_slope))


def upsampling(model: ModelConfig, width: int, use_bias: bool) -> list[keras.layers.Layer]:
    """One doubling of the image size: the recipe's stride-2 transposed convolution, or (g_upsample:
    resize) a nearest-neighbour resize and a convolution. A stride-2 transposed convolution whose
    kernel the stride does not divide gives neighbouring pixels unequal numbers of taps, a
    checkerboard the generator must learn to cancel (Odena et al. 2016); a resize gives every output
    pixel the same taps."""
    if model.g_upsample == "transpose":
        return [layers.Conv2DTranspose(width, model.g_kernel, strides=2, padding="same", use_bias=use_bias)]
    return [
        layers.UpSampling2D(2, interpolation="nearest"),
        layers.Conv2D(width, model.g_kernel, padding="same", use_bias=use_bias),
    ]


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


class MinibatchStdDev(layers.Layer):
    """ProGAN's minibatch standard deviation: one extra feature map holding how much the images of a
    small group differ from each other. A generator that draws one face for every noise gives a
    group with no spread, which D can now see and punish.

    Groups are `group_size` consecutive images (fewer when the batch does not divide: the largest
    divisor of the batch that is at most `group_size`). Consecutive, not strided as in ProGAN's code,
    so that tf.distribute replicas, which take consecutive slices of the batch, form the groups one
    device would.
    """

    def __init__(self, group_size: int, **kwargs):
        super().__init__(**kwargs)
        self.group_size = group_size

    def call(self, x):
        batch = x.shape[0]
        group = math.gcd(self.group_size, batch) if batch else self.group_size
        height, width, channels = x.shape[1], x.shape[2], x.shape[3]
        grouped = tf.reshape(x, [-1, group, height, width, channels])
        spread = tf.sqrt(tf.math.reduce_variance(tf.cast(grouped, tf.float32), axis=1) + 1e-8)
        spread = tf.reduce_mean(spread, axis=[1, 2, 3])  # one number per group
        feature = tf.reshape(tf.repeat(spread, group), [-1, 1, 1, 1]) * tf.ones_like(x[..., :1], tf.float32)
        return tf.concat([x, tf.cast(feature, x.dtype)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 1)

    def get_config(self):
        return {**super().get_config(), "group_size": self.group_size}


def build_discriminator(model: ModelConfig, size: int, channels: int) -> keras.Model:
    """Stride-2 convs with LeakyReLU (and dropout if configured), then one real/fake logit in float32.

    model.d_spectral_norm wraps every weight layer in spectral normalisation (Miyato et al. 2018),
    which bounds how sharply D can change between nearby images; model.d_mbstd adds the minibatch
    standard-deviation feature before the logit, as ProGAN and StyleGAN do.
    """

    def weighted(layer):
        # The wrapper computes in its own dtype policy: give it the layer's, so the float32 logit stays float32.
        return layers.SpectralNormalization(layer, dtype=layer.dtype_policy) if model.d_spectral_norm else layer

    net = keras.Sequential(name="discriminator")
    net.add(keras.Input(shape=(size, size, channels)))
    for width in model.d_widths:
        net.add(weighted(layers.Conv2D(width, model.d_kernel, strides=2, padding="same")))
        net.add(layers.LeakyReLU(model.leaky_slope))
        if model.d_dropout > 0:
            net.add(ReplicaDropout(model.d_dropout))
    if model.d_mbstd:
        # Straight into the logit, without ProGAN's extra 3x3 conv after it: that conv would cost D
        # about 40% more time at 56x56, and the logit alone can already punish a group with no spread.
        net.add(MinibatchStdDev(model.d_mbstd))
    net.add(layers.Flatten())
    net.add(weighted(layers.Dense(1, dtype="float32")))
    return net
