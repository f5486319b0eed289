import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from animegan.config import ModelConfig, valid_sizes
from animegan.models import MinibatchStdDev, build_discriminator, build_generator


@pytest.mark.parametrize("size", [28, 32, 56, 64, 96, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_for_every_size_and_channel_count(size, channels):
    model = ModelConfig(g_width=32, d_widths=[8, 16], noise_dim=16)
    generator = build_generator(model, size, channels)
    discriminator = build_discriminator(model, size, channels)
    assert generator.output_shape == (None, size, size, channels)
    assert discriminator.output_shape == (None, 1)


def test_default_generator_follows_the_recipe():
    generator = build_generator(ModelConfig(), 56, 1)
    dense = generator.layers[0]
    assert generator.input_shape == (None, 160)
    assert dense.units == 7 * 7 * 256 and not dense.use_bias
    convs = [layer for layer in generator.layers if layer.__class__.__name__ in ("Conv2D", "Conv2DTranspose")]
    assert [layer.__class__.__name__ for layer in convs] == ["Conv2D"] + ["Conv2DTranspose"] * 3
    assert [layer.filters for layer in convs] == [128, 64, 32, 1]
    assert [layer.strides for layer in convs] == [(1, 1), (2, 2), (2, 2), (2, 2)]
    assert generator.layers[-1].get_config()["activation"] == "tanh"


@pytest.mark.parametrize("upsample", ["transpose", "resize"])
def test_output_kernel_draws_the_image_at_full_size(upsample):
    model = ModelConfig(g_width=32, noise_dim=16, g_output_kernel=3, g_upsample=upsample)
    generator = build_generator(model, 32, 3)
    assert generator.output_shape == (None, 32, 32, 3)
    last = [layer for layer in generator.layers if isinstance(layer, (layers.Conv2D, layers.Conv2DTranspose))][-1]
    assert type(last) is layers.Conv2D and last.strides == (1, 1) and last.kernel_size == (3, 3)
    assert last.input.shape[1:3] == (32, 32) and last.filters == 3
    # The recipe's generator has one layer fewer: its last upsampling draws the image itself.
    recipe = build_generator(ModelConfig(g_width=32, noise_dim=16, g_upsample=upsample), 32, 3)
    assert len(generator.layers) == len(recipe.layers) + 3


def test_a_stride_one_conv2d_equals_the_recipes_conv2d_transpose():
    """Why the generator may use Conv2D for the recipe's stride-1 Conv2DTranspose: flip the kernel
    in space and swap its channel axes, and the two compute the same function."""
    transposed = layers.Conv2DTranspose(8, 5, strides=1, padding="same", use_bias=False)
    conv = layers.Conv2D(8, 5, strides=1, padding="same", use_bias=False)
    x = np.random.default_rng(0).standard_normal((2, 7, 7, 3)).astype("float32")
    transposed(x), conv(x)
    conv.set_weights([np.flip(transposed.get_weights()[0], axis=(0, 1)).transpose(0, 1, 3, 2)])
    np.testing.assert_allclose(conv(x), transposed(x), atol=1e-5)


def test_valid_sizes_include_the_documented_ones():
    assert {28, 32, 56, 64, 96, 128} <= set(valid_sizes())
    assert 50 not in valid_sizes()


def stabilised(**keys):
    model = ModelConfig(d_widths=[8, 16], d_kernel=3)
    for key, value in keys.items():
        setattr(model, key, value)
    return model


def test_leaky_slope_reaches_every_leaky_relu():
    model = ModelConfig(g_width=16, d_widths=[8, 16], leaky_slope=0.2)
    nets = [build_generator(model, 16, 1), build_discriminator(model, 16, 1)]
    slopes = {layer.negative_slope for net in nets for layer in net.layers if isinstance(layer, keras.layers.LeakyReLU)}
    assert slopes == {0.2}


def test_minibatch_stddev_feature_is_the_groups_spread():
    layer = MinibatchStdDev(group_size=2)
    x = np.random.default_rng(0).standard_normal((4, 3, 3, 2)).astype(np.float32)
    out = layer(tf.constant(x)).numpy()
    assert out.shape == (4, 3, 3, 3)
    np.testing.assert_array_equal(out[..., :2], x)
    # Groups are images (0, 1) and (2, 3): the feature is the mean over pixels and channels of their std.
    for first in (0, 2):
        spread = np.sqrt(np.var(x[[first, first + 1]], axis=0) + 1e-8).mean()
        np.testing.assert_allclose(out[[first, first + 1], :, :, 2], spread, rtol=1e-5)
    assert np.allclose(layer(tf.constant(np.repeat(x[:1], 4, axis=0))).numpy()[..., 2], 1e-4)


def test_minibatch_stddev_groups_a_batch_that_does_not_divide():
    out = MinibatchStdDev(group_size=4)(tf.random.normal([6, 2, 2, 1]))  # groups of gcd(4, 6) = 2
    assert out.shape == (6, 2, 2, 2)


def test_d_mbstd_puts_the_layer_in_the_discriminator():
    net = build_discriminator(stabilised(d_mbstd=4), 16, 1)
    assert any(isinstance(layer, MinibatchStdDev) for layer in net.layers)
    assert net(tf.zeros([8, 16, 16, 1])).shape == (8, 1)


def test_spectral_norm_bounds_every_weight_layer():
    net = build_discriminator(stabilised(d_spectral_norm=True), 16, 1)
    wrapped = [layer for layer in net.layers if isinstance(layer, keras.layers.SpectralNormalization)]
    assert len(wrapped) == 3  # two convs and the logit
    for layer in wrapped:
        layer.layer.kernel.assign(layer.layer.kernel * 50)
    for _ in range(30):  # power iteration converges during training calls
        net(tf.random.normal([4, 16, 16, 1]), training=True)
    for layer in wrapped:
        kernel = layer.layer.kernel.numpy()
        assert np.linalg.norm(kernel.reshape(-1, kernel.shape[-1]), ord=2) == pytest.approx(1.0, rel=0.05)
