import pytest

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
    transposed = [layer for layer in generator.layers if layer.__class__.__name__ == "Conv2DTranspose"]
    assert [layer.filters for layer in transposed] == [128, 64, 32, 1]
    assert [layer.strides for layer in transposed] == [(1, 1), (2, 2), (2, 2), (2, 2)]
    assert generator.layers[-1].get_config()["activation"] == "tanh"


def test_valid_sizes_include_the_documented_ones():
    assert {28, 32, 56, 64, 96, 128} <= set(valid_sizes())
    assert 50 not in valid_sizes()
