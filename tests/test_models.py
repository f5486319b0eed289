import numpy as np
import pytest
from keras import layers

from animegan.config import ModelConfig, valid_sizes
from animegan.models import build_discriminator, build_generator


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
