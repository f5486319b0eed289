"""Training: the step, the run directory, exact resume, interruption, NaN guard and errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from animegan import rundir
from animegan.errors import UserError
from animegan.train import build_state, make_train_step, train
from conftest import tiny_config, write_blob_faces

ROOT = Path(__file__).resolve().parent.parent


def checkpoint_arrays(prefix: str) -> dict:
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map() if name != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def test_train_step_lowers_discriminator_loss_on_an_easy_problem(tmp_path):
    # Real images are all white, so D can learn to tell them from G's output quickly.
    cfg = tiny_config(tmp_path, d_lr=1e-3, g_lr=1e-5, augment="", ema_decay=0.0)
    state = build_state(cfg, "float32")
    step = make_train_step(cfg, state, tf.distribute.get_strategy(), 8, xla=False)
    white = tf.fill([8, 16, 16, 1], tf.constant(255, tf.uint8))
    losses = [float(step(white)["d_loss"]) for _ in range(30)]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert int(state.step) == 30


def test_run_directory_contents(tiny_data, capsys):
    cfg = tiny_data
    cfg.train.epochs = 2
    run = train(cfg)
    (cache,) = (Path(cfg.data.dir) / ".animegan-cache").glob("images-*.npy")
    assert f"image cache: {cache.resolve()} (0.00 GB, memory-mapped" in capsys.readouterr().err
    assert run == Path(cfg.train.runs_dir) / "tiny-001"
    for name in ("config.yaml", "runtime.json", "losses.png", "progress.gif", "samples/epoch_0001.png", "samples/epoch_0002.png"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    records = rundir.read_metrics(run)
    assert [r["epoch"] for r in records] == [1, 2]
    assert {"epoch", "step", "d_loss", "g_loss", "d_real", "d_fake", "images_per_s", "wall_s"} <= set(records[0])
    assert records[1]["step"] == 2 * (40 // 8)
    assert sorted(rundir.checkpoint_epochs(run)) == [1, 2]
    assert rundir.load_run_config(run).to_dict() == cfg.to_dict()
    # A second run with the same config gets the next counter.
    cfg.train.epochs = 1
    assert train(cfg).name == "tiny-002"


@pytest.mark.parametrize("options", [{"augment": "translation,cutout,color"}, {"augment": ""}])
def test_resume_gives_exactly_the_same_weights(tmp_path, options):
    tf.config.experimental.enable_op_determinism()
    write_blob_faces(tmp_path / "face")
    straight = tiny_config(tmp_path, epochs=2, name="straight", **options)
    straight.model.d_dropout = 0.3  # dropout's random state must be restored too
    train(straight)

    split = tiny_config(tmp_path, epochs=1, name="split", **options)
    split.model.d_dropout = 0.3
    run = train(split)
    split.train.epochs = 2
    train(split, resume=run)

    a = checkpoint_arrays(rundir.resolve_checkpoint(Path(straight.train.runs_dir) / "straight"))
    b = checkpoint_arrays(rundir.resolve_checkpoint(run))
    assert a.keys() == b.keys()
    differing = [name for name in a if not np.array_equal(a[name], b[name])]
    assert not differing


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tiny_data, monkeypatch):
    import animegan.train as train_module

    real_make = train_module.make_train_step

    def make_poisoned_step(*args):
        step = real_make(*args)
        state = args[1]

        def poisoned(batch):
            stats = step(batch)
            if int(state.step) > 7:  # epoch 2 of 5 steps
                stats["g_loss"] = tf.constant(float("nan"))
            return stats

        return poisoned

    monkeypatch.setattr(train_module, "make_train_step", make_poisoned_step)
    cfg = tiny_data
    cfg.train.epochs = 3
    with pytest.raises(UserError, match=r"diverged at epoch 2 .*ckpt-5"):
        train(cfg)
    run = Path(cfg.train.runs_dir) / "tiny-001"
    assert sorted(rundir.checkpoint_epochs(run)) == [1]


def test_small_data_shrinks_the_batch(tmp_path, capsys):
    cfg = tiny_config(tmp_path)
    write_blob_faces(tmp_path / "face", n=5)
    run = train(cfg)
    assert json.loads((run / "runtime.json").read_text())["batch_size"] == 5
    assert "fewer than one batch" in capsys.readouterr().err


@pytest.mark.parametrize(
    "prepare, message",
    [
        (lambda d: None, "does not exist"),
        (lambda d: d.mkdir(), "holds no images"),
        (lambda d: write_blob_faces(d, n=1), "only 1 training image"),
        (lambda d: write_blob_faces(d, n=4, size=32), r"img_0000.png' is 32x32 grayscale but the config wants 16x16"),
        (lambda d: write_blob_faces(d, n=4, channels=3), "RGB but the config wants 16x16 grayscale"),
    ],
)
def test_data_errors(tmp_path, prepare, message):
    cfg = tiny_config(tmp_path)
    prepare(tmp_path / "face")
    with pytest.raises(UserError, match=message):
        train(cfg)


def test_resume_refuses_a_changed_network_shape(tiny_data):
    from animegan.rundir import config_for_resume

    run = train(tiny_data)
    with pytest.raises(UserError, match="model.g_width"):
        config_for_resume(run, None, {}, ("model.g_width=32",))


def test_unwritable_runs_dir(tiny_data, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    tiny_data.train.runs_dir = str(blocker / "runs")
    with pytest.raises(UserError, match="cannot write"):
        train(tiny_data)


def run_cli(args, cwd, **kwargs):
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "animegan", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


TINY_FLAGS = ["--data", "face", "--set", "data.size=16", "--set", "model.noise_dim=8", "--set", "model.g_width=16",
              "--set", "model.d_widths=[8,16]", "--batch-size", "8", "--precision", "float32"]


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_a_checkpoint_and_resume_finishes(tmp_path, sig, code):
    write_blob_faces(tmp_path / "face", n=400)
    proc = run_cli(["train", *TINY_FLAGS, "--epochs", "1000", "--name", "x"], tmp_path)
    metrics = tmp_path / "runs" / "x" / "metrics.jsonl"
    deadline = time.time() + 120
    while not metrics.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "resume with: animegan train --resume" in err
    assert "Traceback" not in err
    run = tmp_path / "runs" / "x"
    saved_step = int(tf.train.load_checkpoint(rundir.resolve_checkpoint(run)).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))
    assert saved_step >= 50  # at least one whole epoch of 50 steps
    done_epochs = len(rundir.read_metrics(run))
    resumed = run_cli(["train", "--resume", "runs/x", "--epochs", str(done_epochs + 1)], tmp_path)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert rundir.read_metrics(run)[-1]["epoch"] == done_epochs + 1


def test_eval_every_logs_the_metric_and_keeps_the_best_checkpoint(tiny_data):
    cfg = tiny_data
    cfg.train.epochs, cfg.train.eval_every = 2, 1
    run = train(cfg)
    records = rundir.read_metrics(run)
    assert all(r["swd"] > 0 for r in records)
    best = tf.train.latest_checkpoint(str(rundir.checkpoint_dir(run) / "best"))
    best_epoch = int(tf.train.load_checkpoint(best).get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE"))
    assert records[best_epoch - 1]["swd"] == min(r["swd"] for r in records)
