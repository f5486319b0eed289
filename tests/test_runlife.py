"""A run's life through kills and mistakes (issue 18): the metrics log, the run lock, runs stopped
before their first checkpoint, the best checkpoint, run names and folders, damaged configs, and the
leftovers of interrupted writes. One test kills a real `animegan train` with SIGKILL; the other
kills are simulated in-process by an exception nothing catches."""

from pathlib import Path

import pytest
import tensorflow as tf
from click.testing import CliRunner

from animegan import checkpoints, metricslog, rundir
from animegan.cli import cli
from animegan.errors import UserError
from animegan.metrics import evaluate_run
from animegan.train import train

TORN = '{"epoch": 1, "step": 8, "d_lo'


@pytest.fixture(autouse=True)
def quiet_tensorflow_env(monkeypatch):
    """The CLI sets TensorFlow's log-level variables; keep that to each test."""
    for name in ("TF_CPP_MIN_LOG_LEVEL", "ABSL_MIN_LOG_LEVEL"):
        monkeypatch.setenv(name, "3")


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: ")
    return result.stderr


def epochs_logged(run) -> list:
    return [r["epoch"] for r in metricslog.read_metrics(run) if "event" not in r]


class Killed(BaseException):
    """A kill, simulated: nothing in animegan catches a BaseException that is not an Exception."""


def kill_at_save(monkeypatch, at: int, after: bool):
    """Make the `at`-th checkpoint save of the run die before it writes anything, or right `after` it."""
    real_save, saves = checkpoints.Checkpoints.save, []

    def save(self, step):
        saves.append(step)
        if len(saves) == at and not after:
            raise Killed
        prefix = real_save(self, step)
        if len(saves) == at:
            raise Killed
        return prefix

    monkeypatch.setattr(checkpoints.Checkpoints, "save", save)


# --- item 1: a torn metrics line -------------------------------------------------------------------


def test_a_torn_metrics_line_is_dropped_by_plot_resume_and_evaluate(tiny_data, tmp_path, capsys):
    cfg = tiny_data
    cfg.train.epochs = 2
    run = train(cfg)
    with open(rundir.metrics_path(run), "a", encoding="utf-8") as f:
        f.write(TORN)  # a kill mid-append
    capsys.readouterr()

    plotted = invoke("plot", run)
    assert plotted.exit_code == 0, plotted.output
    assert plotted.stderr.count("\n") == 1 and "the last line is cut short" in plotted.stderr

    resumed = invoke("train", "--resume", run, "--epochs", 3)
    assert resumed.exit_code == 0, resumed.output
    assert "Traceback" not in resumed.output and "removing it" in resumed.stderr
    assert epochs_logged(run) == [1, 2, 3]

    with open(rundir.metrics_path(run), "a", encoding="utf-8") as f:
        f.write(TORN)
    evaluate_run(run_dir=run, real=Path(cfg.data.dir), n=8, metric_names="swd")
    assert rundir.metrics_path(run).read_text().count('"d_lo') == 3  # the torn line went, the others stayed
    assert [r.get("event") for r in metricslog.read_metrics(run)] == [None, None, None, "evaluate"]


def test_a_corrupt_metrics_line_in_the_middle_is_a_one_line_error(tiny_data):
    run = train(tiny_data)
    path = rundir.metrics_path(run)
    path.write_text(TORN + "\n" + path.read_text())
    assert f"error: {path}, line 1: not a metrics record" in one_line_error(invoke("plot", run))


# --- item 2: every epoch once in metrics.jsonl, whatever the kill ---------------------------------------


@pytest.mark.parametrize("after", [False, True], ids=["before-the-checkpoint", "after-the-checkpoint"])
def test_a_kill_at_an_epoch_end_leaves_every_epoch_once_in_the_log(tiny_data, monkeypatch, after):
    cfg = tiny_data
    cfg.train.epochs, cfg.train.keep_checkpoints = 3, 1
    kill_at_save(monkeypatch, at=2, after=after)
    with pytest.raises(Killed):
        train(cfg)
    run = Path(cfg.train.runs_dir) / "tiny-001"
    assert epochs_logged(run) == [1, 2]  # the line comes before its checkpoint
    monkeypatch.undo()
    train(cfg, resume=run)
    assert [(r["epoch"], r["step"]) for r in metricslog.read_metrics(run)] == [(1, 5), (2, 10), (3, 15)]
    assert sorted(checkpoints.checkpoint_epochs(run)) == [3]


def test_a_checkpoint_the_index_never_recorded_still_counts_against_keep_checkpoints(tiny_data):
    """A kill after a checkpoint's files are in place but before TensorFlow's index records them:
    the resume restores it (the newest on disk), and it is deleted in its turn like any other."""
    cfg = tiny_data
    cfg.train.epochs, cfg.train.keep_checkpoints = 3, 2
    run = train(cfg)
    tf.compat.v1.train.update_checkpoint_state(
        str(checkpoints.checkpoint_dir(run)), "ckpt-10", all_model_checkpoint_paths=["ckpt-10"]
    )
    cfg.train.epochs = 5
    train(cfg, resume=run)
    assert epochs_logged(run) == [1, 2, 3, 4, 5]
    assert sorted(checkpoints.checkpoint_epochs(run)) == [4, 5]


# --- item 3: a run stopped before its first checkpoint -------------------------------------------------


def test_a_run_killed_before_its_first_checkpoint_resumes_from_scratch(tiny_data, monkeypatch):
    cfg = tiny_data
    kill_at_save(monkeypatch, at=1, after=False)
    with pytest.raises(Killed):
        train(cfg)
    run = Path(cfg.train.runs_dir) / "tiny-001"
    assert not checkpoints.checkpoint_prefixes(run) and epochs_logged(run) == [1]
    monkeypatch.undo()
    result = invoke("train", "--resume", run, "--epochs", 2)
    assert result.exit_code == 0, result.output
    assert f"note: run {run} has no checkpoint yet (it stopped before its first epoch ended)" in result.stderr
    assert [(r["epoch"], r["step"]) for r in metricslog.read_metrics(run)] == [(1, 5), (2, 10)]


def test_a_nan_in_epoch_1_can_be_resumed_with_a_lower_learning_rate(tiny_data, monkeypatch):
    import animegan.train as train_module

    real_make = train_module.make_train_step

    def diverging(*args):
        step = real_make(*args)
        return lambda batch, regularize=False: {**step(batch, regularize), "g_loss": tf.constant(float("nan"))}

    monkeypatch.setattr(train_module, "make_train_step", diverging)
    with pytest.raises(UserError, match="diverged at epoch 1 .*the last good checkpoint is none; resume with a lower"):
        train(tiny_data)
    run = Path(tiny_data.train.runs_dir) / "tiny-001"
    assert not checkpoints.checkpoint_prefixes(run) and (run / rundir.CONFIG_FILE).is_file()
    monkeypatch.undo()
    result = invoke("train", "--resume", run, "--lr", "1e-4")
    assert result.exit_code == 0, result.output
    assert "starting it afresh" in result.stderr
    assert epochs_logged(run) == [1] and sorted(checkpoints.checkpoint_epochs(run)) == [1]
