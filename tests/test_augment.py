"""DiffAugment: what each op does to known images, and that the training step augments real and fake images alike."""

import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_config

from animegan.augment import cutout, diff_augment, translation
from animegan.train import build_state, make_train_step

SIZE = 16


def images(count, seed=0):
    """Grayscale images with no zero pixel, so zeros in the output can only come from the op."""
    return np.random.default_rng(seed).uniform(0.1, 1.0, (count, SIZE, SIZE, 1)).astype(np.float32)


def rng():
    return tf.random.Generator.from_seed(1)


def shifted(image, dy, dx, pad):
    """out[i, j] = image[i + dy, j + dx], zero (mid-gray) beyond the edges."""
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)))
    return padded[pad + dy : pad + dy + SIZE, pad + dx : pad + dx + SIZE]


def test_translation_shifts_each_image_by_at_most_an_eighth_filling_with_zeros():
    x = images(32)
    out = translation(tf.constant(x), rng()).numpy()
    pad = 2  # 1/8 of 16
    shifts = []
    for image, result in zip(x, out):
        matches = [(dy, dx) for dy in range(-pad, pad + 1) for dx in range(-pad, pad + 1) if np.array_equal(result, shifted(image, dy, dx, pad))]
        assert len(matches) == 1
        shifts.append(matches[0])
    assert len(set(shifts)) > 5  # each image draws its own shift
    assert any(dy and dx for dy, dx in shifts)


def zeroed_rectangle(before, after):
    """The (rows, cols) extent of the zeroed pixels, checking they form one rectangle and nothing else changed."""
    zero = after[..., 0] == 0
    assert np.array_equal(after[~zero], before[~zero])
    return solid_rectangle(zero)


def solid_rectangle(mask):
    """The (rows, cols) extent of a mask that must be one non-empty solid rectangle."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    for extent in (rows, cols):
        assert len(extent) and np.array_equal(extent, np.arange(extent[0], extent[-1] + 1))
    assert np.array_equal(mask, np.outer(mask.any(1), mask.any(0)))
    return rows, cols


def test_cutout_zeroes_one_half_size_square_per_image_clipped_at_the_edges():
    x = images(32)
    out = cutout(tf.constant(x), rng()).numpy()
    whole = 0
    for image, result in zip(x, out):
        rows, cols = zeroed_rectangle(image, result)
        for extent in (rows, cols):
            assert len(extent) == SIZE // 2 or extent[0] == 0 or extent[-1] == SIZE - 1  # shorter only where cut by an edge
        whole += len(rows) == len(cols) == SIZE // 2
    assert whole > 0


def test_color_shifts_each_images_mean_and_scales_its_contrast():
    x = images(16)
    out = diff_augment(tf.constant(x), rng(), ["color"]).numpy()
    shifts = out.mean(axis=(1, 2, 3)) - x.mean(axis=(1, 2, 3))
    assert (np.abs(shifts) <= 0.5).all() and np.ptp(shifts) > 0.1  # brightness: +U(-0.5, 0.5) per image
    for image, result in zip(x, out):
        centred, result_centred = image - image.mean(), result - result.mean()
        contrast = np.sum(centred * result_centred) / np.sum(centred**2)
        assert 0.5 <= contrast <= 1.5
        assert np.allclose(result_centred, contrast * centred, atol=1e-5)  # grayscale: saturation changes nothing


def test_no_ops_leave_the_images_alone():
    x = images(4)
    assert np.array_equal(diff_augment(tf.constant(x), rng(), []).numpy(), x)


class RecordingDiscriminator:
    """The discriminator, keeping a copy of the batches it is shown: call 0 of a step is real, call 1 fake."""

    def __init__(self, net, batch):
        self.net, self.calls = net, 0
        self.inputs = [tf.Variable(tf.zeros([batch, SIZE, SIZE, 1])) for _ in range(2)]

    @property
    def trainable_variables(self):
        return self.net.trainable_variables

    def __call__(self, x, training):
        self.inputs[self.calls % 2].assign(x)
        self.calls += 1
        return self.net(x, training=training)


@pytest.mark.parametrize("augment", ["cutout", ""])
def test_the_train_step_augments_real_and_fake_images_alike(tmp_path, augment):
    cfg = tiny_config(tmp_path, augment=augment, ema_decay=0.0)
    state = build_state(cfg, "float32")
    state.discriminator = seen = RecordingDiscriminator(state.discriminator, 8)
    step = make_train_step(cfg, state, tf.distribute.get_strategy(), 8, xla=False)
    step(tf.fill([8, SIZE, SIZE, 1], tf.constant(255, tf.uint8)))  # all white: 1.0 after scaling
    real, fake = (v.numpy() for v in seen.inputs)
    if not augment:
        assert (real == 1.0).all() and (fake != 0).all()
        return
    for image in real:
        zeroed_rectangle(np.ones_like(image), image)
    for image in fake:  # tanh outputs are never exactly 0: every zero was cut out
        solid_rectangle(image[..., 0] == 0)
