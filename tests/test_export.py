"""`animegan export`: each format loads with plain TensorFlow and draws the pictures `sample` draws."""

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import generator_with, known_weights, save_untrained_run, tiny_config
from PIL import Image

from animegan.cli import cli
from animegan.images import make_grid, to_uint8
from animegan.sample import draw_noise

N, SEED, NOISE_DIM = 4, 5, 8  # NOISE_DIM: the fake run's model.noise_dim


def invoke(*args):
    return CliRunner().invoke(cli, list(map(str, args)))


def run_keras(path, noise):
    import keras

    return keras.saving.load_model(path)(noise, training=False).numpy()


def run_savedmodel(path, noise):
    import tensorflow as tf

    return tf.saved_model.load(str(path)).signatures["serving_default"](noise=tf.constant(noise))["output_0"].numpy()


def run_tflite(path, noise):
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_path=str(path))
    noise_input = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(noise_input, noise.shape)  # the batch dimension is dynamic
    interpreter.allocate_tensors()
    interpreter.set_tensor(noise_input, noise)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
@pytest.mark.parametrize(
    "fmt, name, run_exported, tolerance",
    [
        ("keras", "g.keras", run_keras, 0),
        ("savedmodel", "generator", run_savedmodel, 0),
        # TFLite's own kernels can move a value sitting on a rounding edge by one level.
        ("tflite", "g.tflite", run_tflite, 1),
    ],
)
def test_export_round_trip_matches_the_checkpoint_and_sample(tmp_path, fmt, name, run_exported, tolerance):
    # Weights and BatchNorm moving statistics away from their initial values, as a trained run's are:
    # with BatchNorm at 0 and 1, an export that normalised with batch statistics would still pass.
    cfg = tiny_config(tmp_path)
    run = save_untrained_run(tmp_path / "runs" / "tiny-001", cfg, known=True)
    out = tmp_path / "export" / name
    result = invoke("export", run, "--format", fmt, "--out", out)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    assert sorted(p.name for p in out.parent.iterdir()) == [name]  # no staging left behind

    noise = draw_noise(N, NOISE_DIM, SEED)
    images = to_uint8(run_exported(out, noise))
    # The generator built here from the weights written into the checkpoint, not read back through load_generator.
    expected = to_uint8(generator_with(cfg, known_weights(cfg, 1))(noise, training=False).numpy())
    assert np.abs(images.astype(int) - expected.astype(int)).max() <= tolerance
    grid_png = tmp_path / "sample.png"
    assert invoke("sample", "--run", run, "--n", N, "--seed", SEED, "--out", grid_png).exit_code == 0
    difference = np.abs(make_grid(images)[..., 0].astype(int) - np.asarray(Image.open(grid_png)).astype(int))
    assert difference.max() <= tolerance


def test_savedmodel_export_of_another_checkpoint_replaces_an_earlier_one(three_checkpoint_run, tmp_path):
    from animegan.checkpoints import load_generator

    out, noise = tmp_path / "generator", draw_noise(N, NOISE_DIM, SEED)
    exported = {}
    for epoch, force in ((1, []), (2, ["--force"])):
        args = ["--checkpoint", epoch, "--format", "savedmodel", "--out", out, *force]
        assert invoke("export", three_checkpoint_run, *args).exit_code == 0
        exported[epoch] = run_savedmodel(out, noise)
        generator, _, _ = load_generator(three_checkpoint_run, str(epoch))
        assert np.array_equal(exported[epoch], generator(noise, training=False).numpy())
    assert not np.array_equal(exported[1], exported[2])  # the second export is epoch 2's generator, not the first's
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "generator",
        "runs",
    ]  # no staging or previous copy left beside it


@pytest.mark.parametrize(
    "fmt, out, message",
    [
        ("keras", "g.h5", "--out 'g.h5': keras needs a file name ending in .keras"),
        ("tflite", "notes.txt", "--out 'notes.txt': tflite needs a file name ending in .tflite"),
        ("keras", "old.keras", "--out 'old.keras' already exists; add --force"),
        ("tflite", "old.tflite", "--out 'old.tflite' already exists; add --force"),
        ("savedmodel", "old-savedmodel", "--out 'old-savedmodel' already exists; add --force"),
        ("tflite", "folder", "--out 'folder' is a folder; give a file path"),
        ("savedmodel", "folder", "--out 'folder' is a folder of other files"),
        ("savedmodel", "file.txt", "--out 'file.txt' is a file"),
        ("tflite", "file.txt/g.tflite", "cannot write 'file.txt/g.tflite'"),
    ],
)
def test_export_errors_are_one_line_exit_2(fake_run, tmp_path, monkeypatch, fmt, out, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.txt").write_text("a file where a folder should be")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("not a SavedModel")
    (tmp_path / "notes.txt").write_text("the user's notes")
    for name in ("old.keras", "old.tflite", "old-savedmodel/saved_model.pb"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("an earlier export")
    result = invoke("export", fake_run, "--format", fmt, "--out", out)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert (tmp_path / "notes.txt").read_text() == "the user's notes"


def test_export_without_runs_says_how_to_train(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("export", "--out", "g.keras")
    assert result.exit_code == 2
    assert "no runs found in 'runs/'" in result.stderr and "animegan train" in result.stderr
