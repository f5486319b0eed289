"""Training: the step, the run directory, exact resume, interruption, NaN guard and errors."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from helpers import damage_checkpoint, tiny_config, write_blob_faces

from animegan import checkpoints, metricslog, rundir
from animegan.cli import cli
from animegan.errors import UserError
from animegan.step import build_state, make_train_step
from animegan.train import train

ROOT = Path(__file__).resolve().parent.parent


def checkpoint_arrays(prefix: str) -> dict:
    reader = tf.train.load_checkpoint(prefix)
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if name != "_CHECKPOINTABLE_OBJECT_GRAPH"
    }


def watch_train_steps(monkeypatch, after_step):
    """Make train() call after_step(state, stats) after each of its training steps."""
    import animegan.train as train_module

    real_make = train_module.make_train_step

    def make_watched_step(*args):
        step, state = real_make(*args), args[1]

        def watched(batch, regularize=False):
            stats = step(batch, regularize=regularize)
            after_step(state, stats)
            return stats

        return watched

    monkeypatch.setattr(train_module, "make_train_step", make_watched_step)


@pytest.fixture
def op_determinism():
    """Deterministic kernels for one test only: they are slower, and no other test should rely on them."""
    from tensorflow.python.framework import config  # the public API can switch determinism on, not off

    was_on = config.is_op_determinism_enabled()
    tf.config.experimental.enable_op_determinism()
    yield
    if not was_on:
        config.disable_op_determinism()


def test_train_step_lowers_discriminator_loss_on_an_easy_problem(tmp_path):
    # Real images are all white, so D can learn to tell them from G's output quickly.
    cfg = tiny_config(tmp_path, d_lr=1e-3, g_lr=1e-5, augment="", ema_decay=0.0)
    state = build_state(cfg, "float32")
    step = make_train_step(cfg, state, tf.distribute.get_strategy(), 8, xla=False)
    white = tf.fill([8, 16, 16, 1], tf.constant(255, tf.uint8))
    losses = [float(step(white)["d_loss"]) for _ in range(40)]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert int(state.step) == 40


def test_r1_is_applied_every_r1_every_steps_and_logged(tiny_data, monkeypatch):
    regularized = []
    watch_train_steps(monkeypatch, lambda state, stats: regularized.append("r1" in stats))
    cfg = tiny_data
    cfg.train.epochs, cfg.train.r1_gamma, cfg.train.r1_every = 2, 1.0, 3
    run = train(cfg)
    assert regularized == [step % 3 == 0 for step in range(10)]  # 2 epochs of 40 // 8 steps
    assert all(r["r1"] > 0 for r in metricslog.read_metrics(run))


def test_hinge_loss_and_r1_change_the_discriminator_loss(tmp_path):
    """Same weights and batch: the hinge loss and the R1 term each give a different D loss than plain BCE."""
    white = tf.fill([8, 16, 16, 1], tf.constant(255, tf.uint8))

    def first_d_loss(regularize=False, **options):
        cfg = tiny_config(tmp_path, augment="", ema_decay=0.0, **options)
        state = build_state(cfg, "float32")
        return float(
            make_train_step(cfg, state, tf.distribute.get_strategy(), 8, xla=False)(white, regularize=regularize)[
                "d_loss"
            ]
        )

    bce = first_d_loss()
    assert first_d_loss(loss="hinge") != pytest.approx(bce)
    assert first_d_loss(regularize=True, r1_gamma=100.0) > bce
    assert first_d_loss(regularize=True, r1_gamma=0.0) == pytest.approx(bce)


@pytest.mark.parametrize("r1_every", [1, 4])
def test_lazy_r1_is_weighted_gamma_over_two_times_r1_every(tmp_path, r1_every):
    """Applied every N steps, the penalty counts N times, so that its average strength does not depend on N."""
    white = tf.fill([8, 16, 16, 1], tf.constant(255, tf.uint8))

    def first_step(regularize):
        cfg = tiny_config(tmp_path, augment="", ema_decay=0.0, r1_gamma=3.0, r1_every=r1_every)
        state = build_state(cfg, "float32")  # the same seed: the same weights and noise on each call
        stats = make_train_step(cfg, state, tf.distribute.get_strategy(), 8, xla=False)(white, regularize=regularize)
        return {key: float(value) for key, value in stats.items()}

    plain, regularized = first_step(False), first_step(True)
    assert regularized["r1"] > 0
    assert regularized["d_loss"] - plain["d_loss"] == pytest.approx(3.0 / 2 * r1_every * regularized["r1"], rel=1e-4)


def test_a_stopped_worker_of_a_multiworker_run_is_a_one_line_error(tiny_data, monkeypatch):
    import animegan.train as train_module

    def lose_a_worker(self, stop):
        raise tf.errors.UnavailableError(None, None, "Collective ops is aborted by: another worker is gone")

    monkeypatch.setattr(train_module.EpochLoop, "run", lose_a_worker)
    with pytest.raises(tf.errors.UnavailableError):  # on one machine there is no other worker to blame
        train(tiny_data)
    # Make this run's (default) strategy count as multi-worker, which needs several processes to start for real.
    monkeypatch.setattr(tf.distribute, "MultiWorkerMirroredStrategy", type(tf.distribute.get_strategy()))
    with pytest.raises(UserError, match=r"another worker stopped.*then start every worker again with: animegan train"):
        train(tiny_data)


def test_run_directory_contents(tiny_data, capsys):
    cfg = tiny_data
    cfg.train.epochs = 2
    run = train(cfg)
    (cache,) = (Path(cfg.data.dir) / ".animegan-cache").glob("images-*.npy")
    assert f"image cache: {cache.resolve()} (0.00 GB, memory-mapped" in capsys.readouterr().err
    assert run == Path(cfg.train.runs_dir) / "tiny-001"
    for name in (
        "config.yaml",
        "runtime.json",
        "losses.png",
        "progress.gif",
        "samples/epoch_0001.png",
        "samples/epoch_0002.png",
    ):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert not (run / "quality.png").exists()  # no evaluations to draw
    records = metricslog.read_metrics(run)
    assert [r["epoch"] for r in records] == [1, 2]
    assert {"epoch", "step", "d_loss", "g_loss", "d_real", "d_fake", "images_per_s", "wall_s"} <= set(records[0])
    assert records[1]["step"] == 2 * (40 // 8)
    assert sorted(checkpoints.checkpoint_epochs(run)) == [1, 2]
    assert rundir.load_run_config(run).to_dict() == cfg.to_dict()
    # A second run with the same config gets the next counter.
    cfg.train.epochs = 1
    assert train(cfg).name == "tiny-002"


STABILISERS = {"loss": "hinge", "r1_gamma": 1.0, "r1_every": 2, "augment": "", "ema_bn": "standing"}
# Fast adjustments (8 * 3 / 100 per interval) and an interval that does not divide the 5 steps of an
# epoch: the resume lands mid-interval, with p and a half-gathered r_t to restore.
ADAPTIVE = {
    "augment": "translation,cutout,color",
    "augment_p": "auto",
    "ada_kimg": 0.1,
    "ada_interval": 3,
    "d_lr": 5e-3,
}
P_KEY = "augment/p/.ATTRIBUTES/VARIABLE_VALUE"


@pytest.mark.parametrize(
    "options",
    [{"augment": "translation,cutout,color"}, {"augment": ""}, STABILISERS, ADAPTIVE],
    ids=["augment", "plain", "stabilisers", "adaptive"],
)
def test_resume_gives_exactly_the_same_weights(tmp_path, options, op_determinism):
    write_blob_faces(tmp_path / "face")

    def config(epochs, name):
        cfg = tiny_config(tmp_path, epochs=epochs, name=name, **options)
        cfg.model.d_dropout = 0.3  # dropout's random state must be restored too
        if options is STABILISERS:  # spectral norm's power-iteration vectors must be restored too
            cfg.model.d_mbstd, cfg.model.d_spectral_norm = 4, True
        return cfg

    straight = config(2, "straight")
    train(straight)

    split = config(1, "split")
    run = train(split)
    split.train.epochs = 2
    train(split, resume=run)

    a = checkpoint_arrays(checkpoints.resolve_checkpoint(Path(straight.train.runs_dir) / "straight"))
    b = checkpoint_arrays(checkpoints.resolve_checkpoint(run))
    assert a.keys() == b.keys()
    differing = [name for name in a if not np.array_equal(a[name], b[name])]
    assert not differing
    if options is ADAPTIVE:  # D learns fast (d_lr): r_t climbs, and p with it, after the resume too
        records = metricslog.read_metrics(run)
        assert records[1]["ada_rt"] > records[0]["ada_rt"] and records[1]["augment_p"] > records[0]["augment_p"]
        assert a[P_KEY] > records[1]["augment_p"] > 0


def test_a_checkpoint_without_augmentation_state_resumes_with_p_from_scratch(tiny_data, monkeypatch):
    """Checkpoints of animegan 0.1.0 hold no p: the rest resumes, and p starts as a new run's would."""
    with_p = checkpoints.state_checkpoint
    monkeypatch.setattr(checkpoints, "state_checkpoint", lambda state, without=(): with_p(state, without=("augment",)))
    run = train(tiny_data)
    assert not [
        name for name, _ in tf.train.list_variables(checkpoints.resolve_checkpoint(run)) if name.startswith("augment/")
    ]
    monkeypatch.setattr(checkpoints, "state_checkpoint", with_p)
    train(rundir.config_for_resume(run, None, {"train.epochs": 2}, ("train.augment_p=auto",)), resume=run)
    assert [r["step"] for r in metricslog.read_metrics(run)] == [5, 10]
    assert P_KEY in dict(tf.train.list_variables(checkpoints.resolve_checkpoint(run)))


def test_a_small_data_set_is_named_and_memorising_is_warned_about_once(tiny_data, capsys, monkeypatch):
    import animegan.augment

    monkeypatch.setattr(animegan.augment, "OPENING_STEPS", 0)  # 40 blobs are memorised within the opening
    monkeypatch.setattr(animegan.augment, "MEMORISING_STEPS", 5)  # one epoch
    cfg = tiny_data
    cfg.train.epochs, cfg.train.augment, cfg.train.d_lr = 4, "", 5e-3  # nothing keeps this D from memorising 40 blobs
    run = train(cfg)
    err = capsys.readouterr().err
    assert "small data set: 40 images (under 5,000)" in err and "augmentation: no augmentation" in err
    warned = [
        r["epoch"] for r in metricslog.read_metrics(run)[1:] if r["ada_rt"] > 0.9
    ]  # epoch 1 is where the window starts
    assert warned and err.count("warning: the discriminator is memorising") == 1
    assert f"over the 5 steps to epoch {warned[0]}, augmentation off); try more images" in err


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tiny_data, monkeypatch):
    def poison(state, stats):
        if int(state.step) > 7:  # epoch 2 of 5 steps
            stats["g_loss"] = tf.constant(float("nan"))

    watch_train_steps(monkeypatch, poison)
    cfg = tiny_data
    cfg.train.epochs = 3
    with pytest.raises(UserError, match=r"diverged at epoch 2 .*ckpt-5"):
        train(cfg)
    run = Path(cfg.train.runs_dir) / "tiny-001"
    assert sorted(checkpoints.checkpoint_epochs(run)) == [1]


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
    return subprocess.Popen(
        [sys.executable, "-m", "animegan", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


TINY_FLAGS = [
    "--data",
    "face",
    "--set",
    "data.size=16",
    "--set",
    "model.noise_dim=8",
    "--set",
    "model.g_width=16",
    "--set",
    "model.d_widths=[8,16]",
    "--batch-size",
    "8",
    "--precision",
    "float32",
]


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_a_checkpoint_and_resume_finishes(tmp_path, sig, code):
    steps_per_epoch = 400 // 8
    write_blob_faces(tmp_path / "face", n=400)
    proc = run_cli(["train", *TINY_FLAGS, "--epochs", "1000", "--name", "x"], tmp_path)
    metrics = tmp_path / "runs" / "x" / "metrics.jsonl"
    deadline = time.time() + 120
    while not metrics.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    # The handler's own checkpoint: where it says, the newest, at the step it says, after the last whole epoch.
    saved = re.search(r"saved (\S+) at step (\d+); resume with: animegan train --resume", err)
    assert saved, err
    run, prefix, step = tmp_path / "runs" / "x", str(tmp_path / saved.group(1)), int(saved.group(2))
    assert checkpoints.resolve_checkpoint(run) == prefix
    assert checkpoints.read_counter(prefix, "step") == step
    done_epochs = len(metricslog.read_metrics(run))
    assert checkpoints.read_counter(prefix, "epoch") == done_epochs >= 1
    assert done_epochs * steps_per_epoch <= step < (done_epochs + 1) * steps_per_epoch
    resumed = run_cli(["train", "--resume", "runs/x", "--epochs", str(done_epochs + 1)], tmp_path)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    # The resumed epoch skipped the batches done before the signal: it ends on its own last step.
    assert [(r["epoch"], r["step"]) for r in metricslog.read_metrics(run)][-2:] == [
        (done_epochs, done_epochs * steps_per_epoch),
        (done_epochs + 1, (done_epochs + 1) * steps_per_epoch),
    ]


@pytest.mark.parametrize("signal_after_step", [7, 5], ids=["mid-epoch", "last-step-of-an-epoch"])
def test_ctrl_c_saves_the_step_it_stopped_at_and_resume_runs_only_the_rest(tiny_data, monkeypatch, signal_after_step):
    steps = []

    def press_ctrl_c(state, stats):
        steps.append(int(state.step))
        if steps[-1] == signal_after_step:
            signal.raise_signal(signal.SIGINT)

    watch_train_steps(monkeypatch, press_ctrl_c)
    cfg = tiny_data  # 40 images, batch 8: 5 steps per epoch
    cfg.train.epochs = 3
    with pytest.raises(SystemExit) as stopped:
        train(cfg)
    assert stopped.value.code == 130
    run = Path(cfg.train.runs_dir) / "tiny-001"
    newest = checkpoints.resolve_checkpoint(run)
    assert checkpoints.read_counter(newest, "step") == signal_after_step
    assert checkpoints.read_counter(newest, "epoch") == 1  # epoch 2 unfinished, or epoch 1 finished by its last step
    assert [r["epoch"] for r in metricslog.read_metrics(run)] == [1]

    steps.clear()
    cfg.train.epochs = 2
    train(cfg, resume=run)
    assert steps == list(range(signal_after_step + 1, 11))
    assert [(r["epoch"], r["step"]) for r in metricslog.read_metrics(run)] == [(1, 5), (2, 10)]


def test_eval_every_logs_the_metric_and_keeps_the_best_checkpoint(tiny_data):
    cfg = tiny_data
    cfg.train.epochs, cfg.train.eval_every = 2, 1
    run = train(cfg)
    records = metricslog.read_metrics(run)
    assert all(r["swd"] > 0 for r in records)
    assert (run / "quality.png").is_file()
    best_epoch = checkpoints.checkpoint_epoch(checkpoints.best_checkpoint(run))
    assert records[best_epoch - 1]["swd"] == min(r["swd"] for r in records)


# --- the generator EMA ------------------------------------------------------------------------------


# --- schedule keys and run names ----------------------------------------------------------------------


def test_save_every_sample_every_and_keep_checkpoints(tiny_data):
    cfg = tiny_data
    cfg.train.epochs, cfg.train.save_every, cfg.train.sample_every, cfg.train.keep_checkpoints = 5, 2, 2, 2
    run = train(cfg)
    # Every 2nd epoch and the last; of those, the newest 2 are kept.
    assert sorted(checkpoints.checkpoint_epochs(run)) == [4, 5]
    assert sorted(p.name for p in rundir.samples_dir(run).glob("epoch_*.png")) == [
        "epoch_0002.png",
        "epoch_0004.png",
        "epoch_0005.png",
    ]
    assert [r["epoch"] for r in metricslog.read_metrics(run)] == [1, 2, 3, 4, 5]


def test_max_minutes_stops_at_the_first_epoch_end_with_a_checkpoint(tiny_data, capsys):
    cfg = tiny_data
    cfg.train.epochs, cfg.train.max_minutes, cfg.train.save_every, cfg.train.sample_every = 5, 1e-6, 10, 10
    run = train(cfg)
    assert [r["epoch"] for r in metricslog.read_metrics(run)] == [1]
    assert sorted(checkpoints.checkpoint_epochs(run)) == [1]  # saved although save_every is 10
    assert [p.name for p in rundir.samples_dir(run).glob("epoch_*.png")] == ["epoch_0001.png"]
    assert f"train.max_minutes (1e-06) reached after epoch 1; continue with --resume {run}" in capsys.readouterr().err


@pytest.mark.parametrize("config", [True, False], ids=["a-run", "checkpoints-without-config"])
def test_name_of_an_existing_folder_is_refused(fake_run, tmp_path, config):
    """A folder is free only when it holds nothing; one that lost its config.yaml is someone's run too."""
    if not config:
        (fake_run / rundir.CONFIG_FILE).unlink()
    before = {p: p.read_bytes() for p in fake_run.rglob("*") if p.is_file()}
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--name",
            fake_run.name,
            "--data",
            str(tmp_path / "face"),
            "--set",
            f"train.runs_dir={fake_run.parent}",
        ],
    )
    assert result.exit_code == 2, result.output
    if config:
        expected = f"run '{fake_run}' already exists; resume it with --resume {fake_run}, or pick another --name"
    else:
        expected = (
            f"'{fake_run}' holds checkpoints but no config.yaml; resume it with --resume {fake_run} --config FILE "
            "(the config it was trained with), or pick another --name"
        )
    assert result.stderr == f"error: {expected}\n"
    # Nothing changed but the lock file that was taken to look (empty again: no one holds it).
    assert (fake_run / rundir.LOCK_FILE).read_bytes() == b""
    assert {p: p.read_bytes() for p in fake_run.rglob("*") if p.is_file() and p.name != rundir.LOCK_FILE} == before


# --- resuming: damaged checkpoints, finished runs ------------------------------------------------------


def test_resume_falls_back_past_a_damaged_newest_checkpoint(tiny_data, capsys):
    cfg = tiny_data  # 5 steps per epoch
    cfg.train.epochs = 3
    run = train(cfg)
    damage_checkpoint(checkpoints.checkpoint_dir(run) / "ckpt-15")
    capsys.readouterr()

    cfg.train.epochs = 4
    train(cfg, resume=run)
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert (
        f"checkpoint '{checkpoints.checkpoint_dir(run)}/ckpt-15' is damaged" in warnings[0]
        and "using ckpt-10" in warnings[0]
    )
    # Not "left in place": the resume saves epoch 3 anew under that name, and says so.
    assert warnings[0].endswith("(deleted: training goes on from there)")
    assert f"resumed {checkpoints.checkpoint_dir(run)}/ckpt-10 (epoch 2, step 10)" in err
    # Epoch 3's line went with its checkpoint; epoch 3 was trained again, once.
    assert [(r["epoch"], r["step"]) for r in metricslog.read_metrics(run)] == [(1, 5), (2, 10), (3, 15), (4, 20)]
    assert sorted(checkpoints.checkpoint_epochs(run)) == [2, 3, 4]


def test_resume_with_every_checkpoint_damaged_is_a_one_line_error(tiny_data, monkeypatch):
    cfg = tiny_data
    cfg.train.epochs = 2
    run = train(cfg)
    for prefix in checkpoints.checkpoint_prefixes(run):
        damage_checkpoint(prefix)
    for name in ("TF_CPP_MIN_LOG_LEVEL", "ABSL_MIN_LOG_LEVEL"):  # the CLI sets them; keep that to this test
        monkeypatch.setenv(name, "3")
    result = CliRunner().invoke(cli, ["train", "--resume", str(run), "--epochs", "3"])
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert result.stderr.startswith(f"error: no checkpoint of run '{run}' can be read: ckpt-10: ")


def test_resuming_a_finished_run_says_so_and_how_to_train_more(tiny_data, capsys):
    cfg = tiny_data
    cfg.train.epochs = 2
    run = train(cfg)
    files = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    capsys.readouterr()

    cfg.train.epochs = 1
    assert train(cfg, resume=run) == run
    err = capsys.readouterr().err
    assert f"run {run} already has 2 epochs" in err
    more = re.search(rf"to train more: animegan train --resume {re.escape(str(run))} --epochs (\d+)$", err.strip())
    assert more and int(more.group(1)) > 2, err
    assert "done:" not in err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == files  # config.yaml still says 2 epochs
