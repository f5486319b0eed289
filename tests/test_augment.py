"""DiffAugment: what each op does to known images, that the training step augments real and fake images alike,
and its strength p: per-image masks, ADA's p update, and what a small data set is told."""

import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_config

from animegan.augment import AdaptiveAugment, cutout, diff_augment, memorising_advice, small_data_note, translation
from animegan.config import TrainConfig, augment_probability
from animegan.step import build_state, make_train_step

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
        matches = [
            (dy, dx)
            for dy in range(-pad, pad + 1)
            for dx in range(-pad, pad + 1)
            if np.array_equal(result, shifted(image, dy, dx, pad))
        ]
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
            assert (
                len(extent) == SIZE // 2 or extent[0] == 0 or extent[-1] == SIZE - 1
            )  # shorter only where cut by an edge
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
    cfg = tiny_config(tmp_path, augment=augment, augment_p="1", ema_decay=0.0)
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


# --- the strength p -------------------------------------------------------------------------------

BATCH = 32


def adaptive(**options) -> AdaptiveAugment:
    return AdaptiveAugment(TrainConfig(**{"augment": "translation,cutout", "augment_p": "auto", **options}))


def drive(augment: AdaptiveAugment, mean_sign: float, steps: int) -> list[float]:
    """p after each of `steps` updates fed the same per-step mean sign(D(real)), in a tf.function as in training."""
    update = tf.function(lambda: augment.update(tf.constant(mean_sign), BATCH))
    return [float(update()["augment_p"]) for _ in range(steps)]


def test_p_rises_every_interval_while_the_discriminator_is_sure_of_every_real():
    augment = adaptive(ada_kimg=1.0, ada_interval=4)  # each adjustment: 32 * 4 / 1000
    ps = drive(augment, 1.0, 12)  # all-positive real logits: sign 1 on every image
    assert ps == pytest.approx([0, 0, 0, 0.128, 0.128, 0.128, 0.128, 0.256, 0.256, 0.256, 0.256, 0.384])
    assert float(augment.rt) == 1.0


def test_p_falls_while_the_discriminator_is_below_the_target_and_stays_within_0_and_1():
    augment = adaptive(ada_kimg=0.1, ada_interval=2, ada_target=0.6)  # each adjustment 0.64
    assert drive(augment, 1.0, 6)[-1] == 1.0  # clipped at the ceiling
    assert drive(augment, 0.2, 2)[-1] == pytest.approx(0.36)  # r_t 0.2 < 0.6: p goes down
    assert drive(augment, -1.0, 4)[-1] == 0.0  # and stops at 0
    assert float(augment.rt) == -1.0


def test_r_t_is_the_mean_over_the_interval():
    augment = adaptive(ada_interval=4)
    for sign in (1.0, 1.0, 0.5, -0.5):
        drive(augment, sign, 1)
    assert float(augment.rt) == pytest.approx(0.5)
    assert float(augment.p) == 0.0  # 0.5 < the target 0.6: p would fall, and is at 0 already


def test_a_fixed_p_never_moves():
    augment = adaptive(augment_p="0.3", ada_kimg=0.1, ada_interval=1)
    assert drive(augment, 1.0, 5) == pytest.approx([0.3] * 5)


def ones() -> tf.Tensor:
    return tf.ones([400, 16, 16, 1])


def test_p_1_applies_every_op_to_every_image_exactly_as_plain_diffaugment():
    augment = adaptive(augment_p="1")
    a = augment(ones(), tf.random.Generator.from_seed(3))
    b = diff_augment(ones(), tf.random.Generator.from_seed(3), ["translation", "cutout"])
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_p_0_and_no_ops_leave_images_alone():
    np.testing.assert_array_equal(adaptive(augment_p="0")(ones(), rng()).numpy(), ones().numpy())
    np.testing.assert_array_equal(adaptive(augment="")(ones(), rng()).numpy(), ones().numpy())


@pytest.mark.parametrize("p", [0.25, 0.75])
def test_each_image_decides_alone_with_probability_p(p):
    """Cutout always blanks pixels of an all-ones image, so the share of changed images is the share cut."""
    augment = adaptive(augment="cutout")
    augment.p.assign(p)  # the auto path: p read from its variable
    out = augment(ones(), tf.random.Generator.from_seed(1)).numpy()
    changed = np.mean([not np.array_equal(image, np.ones_like(image)) for image in out])
    assert changed == pytest.approx(p, abs=0.07)  # 400 images: 3 standard deviations is about 0.065


def test_small_data_note_says_what_is_done():
    assert small_data_note(TrainConfig(), 5000, 128) is None
    note = small_data_note(TrainConfig(augment_p="auto"), 400, 128)
    assert "400 images" in note and "train.augment_p=auto" in note and "batch 128, 3 steps per epoch" in note
    assert "no augmentation (try --set train.augment=translation,cutout" in small_data_note(
        TrainConfig(augment=""), 400, 128
    )


@pytest.mark.parametrize(
    "options, rt, p, advice",
    [
        (
            {"augment": ""},
            0.95,
            0.0,
            "augmentation off); try more images, --set train.augment=translation,cutout --set train.augment_p=auto",
        ),
        (
            {"augment_p": "0.5"},
            0.95,
            0.5,
            "p=0.50); try more images, --set train.augment_p=auto, --set train.augment=translation,cutout,color",
        ),
        (
            {"augment_p": "auto"},
            0.95,
            1.0,
            "p=1.00); try more images, --set train.augment=translation,cutout,color, an earlier",
        ),
        ({"augment_p": "auto"}, 0.95, 0.7, None),  # p can still rise
        ({"augment": ""}, 0.85, 0.0, None),
    ],
)
def test_memorising_advice(options, rt, p, advice):
    cfg = TrainConfig(**options)
    warning = memorising_advice(cfg.augment, augment_probability(cfg.augment_p), rt, p, 120, 7)
    if advice is None:
        assert warning is None
    else:
        assert warning.startswith(
            "warning: the discriminator is memorising the training images "
            "(r_t = E[sign(D(real))] = 0.95 over the 120 steps to epoch 7, "
        )
        assert advice in warning and "\n" not in warning


def epochs_of(augment: AdaptiveAugment, rts: list[float], steps_per_epoch: int, first_step: int = 0) -> list:
    """memorising_warning's answer after each epoch with these r_t (augmentation off)."""
    return [
        augment.memorising_warning({"epoch": i + 1, "step": first_step + (i + 1) * steps_per_epoch, "ada_rt": rt})
        for i, rt in enumerate(rts)
    ]


def test_memorising_is_judged_over_enough_steps_past_the_opening_and_said_once():
    # The opening: r_t near 1 while G draws noise, however long it lasts in epochs.
    assert epochs_of(adaptive(augment=""), [1.0] * 20, 20) == [None] * 20
    # Two-step epochs of a small set: one sure epoch among unsure ones is not enough.
    spiky = epochs_of(adaptive(augment=""), [0.2, 0.2, 1.0] * 40, 2, first_step=600)
    assert spiky == [None] * 120
    # Sure for 100 steps and more: one warning, then silence.
    sure = epochs_of(adaptive(augment=""), [0.95] * 120, 2, first_step=600)
    assert [i for i, w in enumerate(sure) if w] == [50]  # the first 100 steps after the baseline epoch
    assert "over the 100 steps to epoch 51" in sure[50]
