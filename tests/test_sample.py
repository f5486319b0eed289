"""`animegan sample`: grids, seeds, truncation, GIF walks, exact pixels, and its one-line errors."""

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import CHECKPOINT_DAMAGE, damage_checkpoint, generator_with, known_weights, save_untrained_run, tiny_config
from PIL import Image

from animegan.checkpoints import checkpoint_dir, load_generator
from animegan.cli import cli
from animegan.images import make_grid, to_uint8
from animegan.sample import draw_noise, generate, slerp, trace_generator, walk_noise

CELL = 16 + 1  # the fake run's 16 px images plus the 1 px border


def sample(*args):
    return CliRunner().invoke(cli, ["sample", *map(str, args)])


def written(result):
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


@pytest.mark.parametrize(
    "n, cols, rows_cols",
    [(1, None, (1, 1)), (2, None, (1, 2)), (10, None, (3, 4)), (16, None, (4, 4)), (6, 6, (1, 6)), (3, 8, (1, 3))],
)
def test_grid_is_near_square_with_a_border(fake_run, tmp_path, n, cols, rows_cols):
    out = tmp_path / "grid.png"
    args = ["--run", fake_run, "--n", n, "--out", out] + (["--cols", cols] if cols else [])
    assert written(sample(*args)) == str(out)
    rows, cols = rows_cols
    grid = np.asarray(Image.open(out))
    assert grid.shape == (rows * CELL + 1, cols * CELL + 1)
    assert (grid[0] == 255).all() and (grid[:, 0] == 255).all()


def test_newest_run_latest_checkpoint_default_path(fake_run, monkeypatch):
    monkeypatch.chdir(fake_run.parent.parent)
    path = written(sample("--n", 16))
    assert path == "runs/tiny-001/samples/sample_epoch0001_seed0.png"
    assert Image.open(path).size == (4 * CELL + 1, 4 * CELL + 1)


def test_grid_holds_the_generator_images_exactly_and_separate_writes_each(fake_run, tmp_path):
    out, single = tmp_path / "grid.png", tmp_path / "single"
    written(sample("--run", fake_run, "--n", 5, "--seed", 7, "--scale", 2, "--out", out, "--separate", single))
    generator, cfg, _ = load_generator(fake_run)
    expected = to_uint8(generator(draw_noise(5, cfg.model.noise_dim, seed=7), training=False).numpy())
    grid = Image.open(out)
    assert grid.mode == "L"
    assert np.array_equal(np.asarray(grid)[..., None], make_grid(expected, scale=2))
    files = sorted(single.glob("*.png"))
    assert [f.name for f in files] == [f"grid_{i}.png" for i in range(5)]
    assert np.array_equal(np.asarray(Image.open(files[3])), expected[3, :, :, 0].repeat(2, 0).repeat(2, 1))


def test_pixel_decoding_rounds_and_clips():
    decoded = to_uint8(np.array([-2.0, -1.0, -0.999, 0.0, 0.5, 1.0, 1.5]))
    assert decoded.tolist() == [0, 0, 0, 128, 191, 255, 255]


def test_colour_runs_write_rgb(tmp_path):
    cfg = tiny_config(tmp_path)
    cfg.data.channels = 3
    run = save_untrained_run(tmp_path / "runs" / "rgb", cfg)
    out = tmp_path / "rgb.png"
    written(sample("--run", run, "--n", 4, "--out", out))
    assert Image.open(out).mode == "RGB"


def test_mixed_precision_checkpoint_samples_exactly_as_in_float32(tmp_path):
    # A run trained with mixed precision, sampled in a process whose policy is still mixed (as right
    # after training): the generator must compute in float32 all the same, or the same seed would
    # give other pixels here than on a float32 machine.
    import keras

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        run = save_untrained_run(tmp_path / "runs" / "mixed", tiny_config(tmp_path))
        written(sample("--run", run, "--n", 16, "--out", tmp_path / "under-mixed.png"))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    written(sample("--run", run, "--n", 16, "--out", tmp_path / "under-float32.png"))
    assert (tmp_path / "under-mixed.png").read_bytes() == (tmp_path / "under-float32.png").read_bytes()


def test_same_seed_same_bytes_other_seed_other_picture(fake_run, tmp_path):
    paths = [tmp_path / name for name in ("a.png", "b.png", "c.png")]
    for path, seed in zip(paths, (3, 3, 4)):
        written(sample("--run", fake_run, "--n", 9, "--seed", seed, "--out", path))
    a, b, c = (p.read_bytes() for p in paths)
    assert a == b
    assert a != c


def test_out_replaces_our_own_grid_on_a_rerun(fake_run, tmp_path):
    out = tmp_path / "grid.png"
    written(sample("--run", fake_run, "--n", 4, "--out", out))
    first = out.read_bytes()
    written(sample("--run", fake_run, "--n", 9, "--out", out))
    assert out.read_bytes() != first


@pytest.mark.parametrize(
    "args, users_file",
    [(["--out", "theirs.png"], "theirs.png"), (["--out", "grid.png", "--separate", "."], "grid_0.png")],
)
def test_a_users_file_is_replaced_only_with_force(fake_run, tmp_path, monkeypatch, args, users_file):
    monkeypatch.chdir(tmp_path)
    Image.new("L", (5, 5)).save(users_file)  # a PNG from some other program
    users_bytes = (tmp_path / users_file).read_bytes()
    result = sample("--run", fake_run, "--n", 4, *args)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert f"'{users_file}' already exists; add --force" in result.stderr
    assert (tmp_path / users_file).read_bytes() == users_bytes
    written(sample("--run", fake_run, "--n", 4, *args, "--force"))
    assert (tmp_path / users_file).read_bytes() != users_bytes


def test_truncation_redraws_only_components_beyond_it():
    plain = draw_noise(64, 8, seed=1)
    truncated = draw_noise(64, 8, seed=1, truncation=0.5)
    assert np.abs(truncated).max() <= 0.5
    inside = np.abs(plain) <= 0.5
    assert np.array_equal(truncated[inside], plain[inside])
    assert np.array_equal(truncated, draw_noise(64, 8, seed=1, truncation=0.5))


def test_truncation_changes_the_picture_deterministically(fake_run, tmp_path):
    paths = [tmp_path / name for name in ("plain.png", "t1.png", "t2.png")]
    written(sample("--run", fake_run, "--n", 4, "--out", paths[0]))
    for path in paths[1:]:
        written(sample("--run", fake_run, "--n", 4, "--truncation", 0.5, "--out", path))
    plain, t1, t2 = (p.read_bytes() for p in paths)
    assert t1 == t2 != plain


def test_gif_walk_frame_count_and_size(fake_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = written(sample("--run", fake_run, "--n", 4, "--interpolate", 3, "--frames", 5, "--scale", 2))
    assert path == f"{fake_run}/samples/sample_epoch0001_seed0.gif"
    gif = Image.open(path)
    assert gif.n_frames == 3 * 5
    assert gif.size == (2 * (2 * 16 + 1) + 1,) * 2


def test_walk_starts_at_the_grid_noise_and_loops_back():
    frames = 4
    walk = walk_noise(n=2, points=3, frames=frames, noise_dim=8, seed=5)
    assert walk.shape == (12, 2, 8)
    assert np.allclose(walk[0], draw_noise(2, 8, seed=5))
    # The last leg starts at the third latent point and its frames head for the first point, so the
    # looping GIF's jump from the last frame to the first is one more step of that leg.
    last_leg_start = walk[-frames]
    for k in range(1, frames):
        assert np.allclose(walk[-frames + k], slerp(last_leg_start, walk[0], k / frames), atol=1e-6)
    assert not np.allclose(last_leg_start, walk[0])


def test_slerp_keeps_the_norm_and_survives_parallel_rows():
    a, b = np.array([[3.0, 0.0]]), np.array([[0.0, 3.0]])
    assert np.allclose(slerp(a, b, 0.0), a) and np.allclose(slerp(a, b, 1.0), b)
    assert np.isclose(np.linalg.norm(slerp(a, b, 0.5)), 3.0)
    assert np.allclose(slerp(np.array([[1.0]]), np.array([[-1.0]]), 0.25), [[0.5]])


def test_generator_is_traced_once_for_all_batches(fake_run):
    generator, cfg, _ = load_generator(fake_run)
    traced = trace_generator(generator)
    images = generate(traced, draw_noise(23, cfg.model.noise_dim, seed=0), batch_size=10)
    assert images.shape == (23, 16, 16, 1)
    assert traced.experimental_get_tracing_count() == 1


def break_checkpoint_data(run):
    for data in checkpoint_dir(run).glob("*.data-*"):
        data.write_bytes(b"not a checkpoint")


def change_noise_dim(run):
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("noise_dim: 8", "noise_dim: 9"))


def remove_checkpoints(run):
    for path in checkpoint_dir(run).iterdir():
        path.unlink()


@pytest.mark.parametrize(
    "args, spoil, message",
    [
        (["--n", 0], None, "--n 0: give 1 to 10,000 images"),
        (["--n", 10_001], None, "--n 10001: give 1 to 10,000 images; for more, call sample several times"),
        (["--n", 100, "--interpolate", 10, "--frames", 11], None, "is 11,000 images; keep the product at 10,000"),
        (["--truncation", 0.001], None, "--truncation 0.001: use a number of 0.01 or more"),
        (["--truncation", "nan"], None, "--truncation nan: use a number of 0.01 or more"),
        (["--truncation", "inf"], None, "--truncation inf: use a number of 0.01 or more"),
        (["--out", "grid.jpg"], None, "give a path ending in .png"),
        (["--interpolate", 2, "--out", "walk.png"], None, "give a path ending in .gif"),
        (["--interpolate", 2, "--separate", "single"], None, "does not combine with --interpolate"),
        (["--out", "file.txt/grid.png"], None, "cannot write 'file.txt/grid.png'"),
        (["--separate", "file.txt/single"], None, "cannot write 'file.txt/single/"),
        ([], remove_checkpoints, "has no checkpoint yet; train it"),
        ([], break_checkpoint_data, "can be read: ckpt-1: "),
        ([], change_noise_dim, "does not fit the networks of"),
        (["--checkpoint", 7], None, "no checkpoint for epoch 7; available epochs: 1"),
    ],
)
def test_errors_are_one_line_exit_2(fake_run, tmp_path, monkeypatch, args, spoil, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.txt").write_text("a file where a folder should be")
    if spoil:
        spoil(fake_run)
    result = sample("--run", fake_run, *args)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert message in result.stderr


def test_no_runs_says_where_it_looked_and_how_to_train(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = sample("--n", 4)
    assert result.exit_code == 2
    assert "no runs found in 'runs/'" in result.stderr and "animegan train" in result.stderr


def checkpoint_files(run, name):
    return {p.name: p.read_bytes() for p in checkpoint_dir(run).glob(f"{name}.*")}


@pytest.mark.parametrize("how", CHECKPOINT_DAMAGE)
def test_a_damaged_newest_checkpoint_falls_back_to_the_newest_that_restores(
    three_checkpoint_run, tmp_path, monkeypatch, how
):
    run = three_checkpoint_run
    monkeypatch.chdir(tmp_path)
    expected = written(sample("--run", run, "--checkpoint", 2, "--out", tmp_path / "epoch2.png"))
    damage_checkpoint(checkpoint_dir(run) / "ckpt-3", how)
    damaged_files = checkpoint_files(run, "ckpt-3")

    result = sample("--run", run)
    assert written(result) == f"{run}/samples/sample_epoch0002_seed0.png"
    assert Image.open(result.stdout.strip()).tobytes() == Image.open(expected).tobytes()
    warning = result.stderr.splitlines()
    assert len(warning) == 1 and warning[0].startswith(
        f"warning: checkpoint '{checkpoint_dir(run)}/ckpt-3' is damaged ("
    )
    assert "using ckpt-2" in warning[0]
    assert checkpoint_files(run, "ckpt-3") == damaged_files  # left as it was, for whoever looks into it


@pytest.mark.parametrize("given", ["path", "epoch"])
def test_a_damaged_checkpoint_asked_for_by_name_is_an_error_naming_it(three_checkpoint_run, given):
    run = three_checkpoint_run
    damage_checkpoint(checkpoint_dir(run) / "ckpt-3")
    result = sample("--run", run, "--checkpoint", checkpoint_dir(run) / "ckpt-3" if given == "path" else 3)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "ckpt-3" in result.stderr and "available epochs: 1, 2" in result.stderr


def test_checkpoint_option_picks_that_epochs_generator(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tiny_config(tmp_path)
    run = save_untrained_run(tmp_path / "runs" / "tiny-001", cfg, epochs=(1, 2, 3), known=True)
    grids = {}
    for epoch in (1, 2):
        path = written(sample("--run", run, "--checkpoint", epoch, "--n", 4))
        assert path == f"{run}/samples/sample_epoch{epoch:04d}_seed0.png"
        # The generator built here from the weights written into ckpt-<epoch>, not read back by load_generator.
        generator = generator_with(cfg, known_weights(cfg, epoch))
        expected = make_grid(to_uint8(generator(draw_noise(4, cfg.model.noise_dim, seed=0), training=False).numpy()))
        grids[epoch] = np.asarray(Image.open(path))[..., None]
        assert np.array_equal(grids[epoch], expected)
    assert not np.array_equal(grids[1], grids[2])
