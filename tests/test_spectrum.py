"""The texture figures: the power-spectrum comparison (`spectrum`) and the Fréchet distance in the
random network's space (`fd`)."""

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from animegan.cli import cli
from animegan.metrics import METRICS, embedding, spectrum


def line_drawings(count, size, seed, channels=1):
    """Flat shapes with hard outlines, like the demo faces: power at every frequency, as real drawings have."""
    rng = np.random.default_rng(seed)
    images = np.empty((count, size, size, channels), dtype=np.uint8)
    for image in images:
        canvas = np.full((size, size, channels), rng.integers(80, 200, channels), dtype=np.uint8)
        for _ in range(3):
            centre = tuple(int(v) for v in rng.integers(0, size, 2))
            colour = tuple(int(v) for v in rng.integers(0, 256, channels))
            cv2.circle(canvas, centre, int(rng.integers(size // 8, size // 3)), colour, -1)
            cv2.circle(canvas, centre, int(rng.integers(size // 8, size // 3)), (0,) * channels, 1)
        image[:] = canvas.reshape(size, size, channels)
    return images


def scores(real, fake):
    return spectrum.spectrum_scores(spectrum.radial_power(real), spectrum.radial_power(fake))


def test_a_cosine_puts_its_power_in_its_own_ring():
    side, frequency = 32, 5
    x = np.arange(side)
    wave = (127.5 + 100 * np.cos(2 * np.pi * frequency * x / side))[None, :].repeat(side, axis=0)
    power = spectrum.radial_power(wave.astype(np.uint8)[None, :, :, None])["power"][0]
    assert power.shape == (round(side / 2 * np.sqrt(2)),)  # out to the corners
    assert np.argmax(power) == frequency - 1  # ring 1 is index 0
    assert power[frequency - 1] > 100 * np.delete(power, frequency - 1).max()


def test_two_sets_of_one_kind_score_near_zero_and_grain_blur_checkerboard_score_more():
    real, other = line_drawings(300, 32, seed=0), line_drawings(300, 32, seed=1)
    rng = np.random.default_rng(2)
    grain = np.clip(other + rng.normal(0, 24, other.shape), 0, 255).astype(np.uint8)
    blur = np.stack([cv2.GaussianBlur(x, (5, 5), 1.5)[..., None] for x in other])
    checker = np.clip(other + 30.0 * (np.indices((32, 32)).sum(axis=0) % 2 * 2 - 1)[None, :, :, None], 0, 255).astype(
        np.uint8
    )

    same = scores(real, other)
    assert same["spectrum"] < 0.5
    assert scores(real, real)["spectrum"] == 0
    for name, fake in {"grain": grain, "blur": blur, "checkerboard": checker}.items():
        assert scores(real, fake)["spectrum"] > 2.5 * same["spectrum"], name
    # The sign of the upper rings tells grain from blur.
    assert scores(real, grain)["spectrum_hf"] > 0.8 and scores(real, blur)["spectrum_hf"] < -1
    # A checkerboard is power at the highest ring above all others.
    difference = spectrum.spectrum_difference_db(spectrum.radial_power(real), spectrum.radial_power(checker))[0]
    assert np.argmax(difference) == len(difference) - 1


def test_rainbow_noise_shows_in_the_colour_channels():
    real = line_drawings(200, 32, seed=0, channels=3)
    other = line_drawings(200, 32, seed=1, channels=3)
    rng = np.random.default_rng(3)
    rainbow = np.clip(other + rng.normal(0, 24, other.shape), 0, 255).astype(np.uint8)  # independent per channel
    assert spectrum.radial_power(real)["power"].shape[0] == 3
    assert scores(real, rainbow)["spectrum"] > 3 * scores(real, other)["spectrum"]


def test_fd_is_frechets_formula_on_the_random_networks_features():
    real, other = line_drawings(400, 32, seed=0), line_drawings(400, 32, seed=1)
    blur = np.stack([cv2.GaussianBlur(x, (7, 7), 3)[..., None] for x in other])
    features = {
        name: embedding.embedding_features(images)
        for name, images in {"real": real, "other": other, "blur": blur}.items()
    }
    assert embedding.fd_score(features["real"], features["real"])["fd"] == pytest.approx(0, abs=1e-6)
    assert (
        embedding.fd_score(features["real"], features["blur"])["fd"]
        > 1.5 * embedding.fd_score(features["real"], features["other"])["fd"]
    )


def test_both_are_registered_lower_is_better_metrics():
    assert METRICS["spectrum"].features == "spectrum" and METRICS["fd"].features == "embedding"


def test_cli_evaluate_images_prints_a_spectrum_line(tmp_path):
    real, fake = tmp_path / "real", tmp_path / "fake"
    for folder, images in ((real, line_drawings(40, 32, seed=0)), (fake, line_drawings(40, 32, seed=1))):
        folder.mkdir()
        for i, image in enumerate(images):
            cv2.imwrite(str(folder / f"{i:03d}.png"), image)
    result = CliRunner().invoke(
        cli, ["evaluate", "--images", str(fake), "--real", str(real), "--metrics", "spectrum,fd", "--n", "40"]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()  # the figures; progress bars go to stderr
    assert any(line.startswith("spectrum: ") for line in lines) and any(line.startswith("fd: ") for line in lines)
