"""The DCGAN's two networks, built from the model config for any size base*2^k and 1 or 3 channels."""

from __future__ import annotations

import keras
from keras import layers

from animegan.config import ModelConfig, generator_base


def build_generator(model: ModelConfig, size: int, channels: int) -> keras.Model:
    """Noise -> Dense(base*base*width) -> BN -> LeakyReLU -> transposed convs that double the size -> tanh.

    As in the recipe: a stride-1 transposed conv to width/2 channels first, then stride-2 blocks that
    halve the channels, the last one producing the image. The output layer computes in float32 so
    mixed precision never rounds the pixels.
    """
    base, doublings = generator_base(size)
    width = model.g_width
    net = keras.Sequential(name="generator")
    net.add(keras.Input(shape=(model.noise_dim,)))
    net.add(layers.Dense(base * base * width, use_bias=False))
    net.add(layers.BatchNormalization())
    net.add(layers.LeakyReLU())
    net.add(layers.Reshape((base, base, width)))
    width //= 2
    net.add(layers.Conv2DTranspose(width, model.g_kernel, strides=1, padding="same", use_bias=False))
    net.add(layers.BatchNormalization())
    net.add(layers.LeakyReLU())
    for _ in range(doublings - 1):
        width = max(width // 2, 1)
        net.add(layers.Conv2DTranspose(width, model.g_kernel, strides=2, padding="same", use_bias=False))
        net.add(layers.BatchNormalization())
        net.add(layers.LeakyReLU())
    net.add(layers.Conv2DTranspose(channels, model.g_kernel, strides=2, padding="same"))
    net.add(layers.Activation("tanh", dtype="float32"))
    return net


def build_discriminator(model: ModelConfig, size: int, channels: int) -> keras.Model:
    """Stride-2 convs with LeakyReLU (and dropout if configured), then one real/fake logit in float32."""
    net = keras.Sequential(name="discriminator")
    net.add(keras.Input(shape=(size, size, channels)))
    for width in model.d_widths:
        net.add(layers.Conv2D(width, model.d_kernel, strides=2, padding="same"))
        net.add(layers.LeakyReLU())
        if model.d_dropout > 0:
            net.add(layers.Dropout(model.d_dropout))
    net.add(layers.Flatten())
    net.add(layers.Dense(1, dtype="float32"))
    return net
