"""A run's life through kills and mistakes (issue 18): the metrics log, the run lock, runs stopped
before their first checkpoint, the best checkpoint, run names and folders, damaged configs, and the
leftovers of interrupted writes. One test kills a real `animegan train` with SIGKILL; the other
kills are simulated in-process by an exception nothing catches."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tensorflow as tf
from click.testing import CliRunner
from helpers import damage_checkpoint, tiny_config, write_blob_faces

from animegan import checkpoints, metricslog, rundir
from animegan.cli import cli
from animegan.errors import UserError
from animegan.metrics import evaluate_run
from animegan.runlock import run_lock
from animegan.train import train

ROOT = Path(__file__).resolve().parent.parent
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


# --- item 4: one run lock ------------------------------------------------------------------------------


def test_a_second_writer_is_refused_naming_the_holder(fake_run, tmp_path):
    with run_lock(fake_run, "train"):
        since = json.loads((fake_run / rundir.LOCK_FILE).read_text())["since"]
        holder = f"`animegan train` (pid {os.getpid()} on {socket.gethostname()}, since {since})"
        for args in (["train", "--resume", fake_run], ["evaluate", fake_run, "--real", tmp_path, "--n", 4]):
            line = one_line_error(invoke(*args))
            assert f"run '{fake_run}' is in use by {holder}; wait for it to finish or stop it" in line
        # Readers take no lock.
        assert invoke("sample", "--run", fake_run, "--n", 1, "--out", tmp_path / "s.png").exit_code == 0
    assert (fake_run / rundir.LOCK_FILE).read_text() == ""  # released: no holder left to name


def test_a_lock_left_by_a_dead_process_is_taken_over_and_one_from_another_host_is_not(fake_run, tmp_path, capsys):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left = {"pid": int(dead.stdout), "host": socket.gethostname(), "since": "2026-01-01 00:00:00", "command": "train"}
    (fake_run / rundir.LOCK_FILE).write_text(json.dumps(left))
    with run_lock(fake_run, "evaluate"):
        assert json.loads((fake_run / rundir.LOCK_FILE).read_text())["pid"] == os.getpid()
    err = capsys.readouterr().err
    assert err.startswith(f"note: taking over the lock of {fake_run} left by `animegan train` (pid {left['pid']}")

    (fake_run / rundir.LOCK_FILE).write_text(json.dumps({**left, "host": "elsewhere"}))
    with pytest.raises(UserError, match=f"on elsewhere.*delete {fake_run / rundir.LOCK_FILE} and try again"):
        with run_lock(fake_run, "train"):
            pass


def test_trainers_started_at_once_without_a_name_get_folders_of_their_own(tmp_path):
    cfg = tiny_config(tmp_path)
    # Each folder is made when it is chosen, not when the config is written seconds later.
    first, second = rundir.new_run_dir(cfg), rundir.new_run_dir(cfg)
    assert (first.name, second.name) == ("tiny-001", "tiny-002") and first.is_dir() and second.is_dir()


def test_a_start_that_fails_early_leaves_no_run_folder(tmp_path):
    cfg = tiny_config(tmp_path)  # no data folder
    with pytest.raises(UserError, match="does not exist"):
        train(cfg)
    assert list(Path(cfg.train.runs_dir).glob("*")) == []


def run_cli(args, cwd, stderr=subprocess.PIPE):
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "animegan", *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True
    )


TINY = ["--data", "face", "--set", "data.size=16", "--set", "model.noise_dim=8", "--set", "model.g_width=16"]
TINY += ["--set", "model.d_widths=[8,16]", "--batch-size", "8", "--precision", "float32"]


def test_kill_9_frees_the_lock_and_the_resume_logs_every_epoch_once(tmp_path):
    write_blob_faces(tmp_path / "face", n=400)
    with open(tmp_path / "first.err", "w") as first_err:  # a file: a pipe nobody reads would fill and block
        first = run_cli(["train", *TINY, "--epochs", "1000", "--name", "x"], tmp_path, stderr=first_err)
    run = tmp_path / "runs" / "x"
    deadline = time.time() + 120
    while len(epochs_logged(run) if rundir.metrics_path(run).exists() else []) < 2 and time.time() < deadline:
        time.sleep(0.2)
    second = run_cli(["train", "--resume", "runs/x", "--epochs", "1000"], tmp_path)
    _, err = second.communicate(timeout=120)
    assert second.returncode == 2 and f"is in use by `animegan train` (pid {first.pid} on" in err, err
    first.kill()
    first.wait(timeout=60)
    target = len(epochs_logged(run)) + 1  # the resume goes back to the newest checkpoint that restores
    third = run_cli(["train", "--resume", "runs/x", "--epochs", str(target)], tmp_path)
    _, err = third.communicate(timeout=120)
    assert third.returncode == 0, err
    assert f"(pid {first.pid} on {socket.gethostname()}" in err and "Traceback" not in err
    assert epochs_logged(run) == list(range(1, target + 1))


# --- item 5: the best checkpoint survives a resume ------------------------------------------------------


def test_a_resume_compares_with_the_best_score_so_far(tiny_data, monkeypatch):
    from animegan.metrics import Evaluator

    cfg = tiny_data
    cfg.train.eval_every, cfg.train.eval_diversity = 1, False
    run = train(cfg)
    best = checkpoints.best_checkpoint(run)
    score = metricslog.read_metrics(run)[0]["swd"]
    assert checkpoints.read_value(best, "best_swd") == score
    monkeypatch.setattr(Evaluator, "evaluate", lambda self, generator: {"swd": score + 1.0})
    cfg.train.epochs = 2
    train(cfg, resume=run)
    assert checkpoints.best_checkpoint(run) == best


# --- item 6: run names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags",
    [["--name", "../../escape"], ["--name", "/abs/path"], ["--name", ".."], ["--set", "train.name=../x"]],
    ids=["up", "absolute", "dot-dot", "set"],
)
def test_a_run_name_must_be_one_folder_name(tiny_data, tmp_path, flags):
    line = one_line_error(invoke("train", "--data", tiny_data.data.dir, "--set", f"train.runs_dir={tmp_path}", *flags))
    assert "is not a folder name (no '/', '.' or '..')" in line
    assert not (tmp_path.parent / "escape").exists() and not Path("/abs/path").exists()


def test_run_names_with_spaces_and_unicode_are_fine(tmp_path):
    cfg = tiny_config(tmp_path, name="my run ü")
    assert rundir.new_run_dir(cfg) == Path(cfg.train.runs_dir) / "my run ü"


# --- item 7: a folder without config.yaml is not free (the refusal itself: test_train.py) ------------------


def test_a_folder_that_lost_its_config_resumes_with_config(tiny_data, tmp_path):
    run = train(tiny_data)
    (run / rundir.CONFIG_FILE).unlink()
    same = tmp_path / "same.yaml"
    same.write_text(tiny_data.to_yaml())
    result = invoke("train", "--resume", run, "--config", same, "--epochs", 2)
    assert result.exit_code == 0, result.output
    assert epochs_logged(run) == [1, 2] and rundir.load_run_config(run).model.g_width == 16  # config.yaml is back


# --- item 8: a damaged run config ------------------------------------------------------------------------

DAMAGE = {
    "garbage appended": lambda text: text + "garbage: [\n",
    "a YAML list": lambda text: "- 1\n- 2\n",
    "empty": lambda text: "",
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_run_config_is_a_one_line_error_naming_it(fake_run, tmp_path, damage):
    path = fake_run / rundir.CONFIG_FILE
    path.write_text(DAMAGE[damage](path.read_text()))
    for args in (
        ["sample", "--run", fake_run],
        ["train", "--resume", fake_run],
        ["export", fake_run, "--out", tmp_path / "g.keras"],
        ["evaluate", fake_run, "--real", tmp_path],
    ):
        assert f"error: {path} is damaged (" in one_line_error(invoke(*args)), args


# --- item 9: leftovers of interrupted writes ---------------------------------------------------------------


def test_leftovers_of_interrupted_writes_are_removed_on_resume(tiny_data, capsys):
    cfg = tiny_data
    cfg.train.epochs = 2
    run = train(cfg)
    folder = checkpoints.checkpoint_dir(run)
    (folder / "ckpt-99_temp").mkdir()
    (folder / "ckpt-99_temp" / "part-00000-of-00001.index").write_bytes(b"abc")
    (run / ".metrics.x1y2.jsonl.tmp").write_text("{")
    # A kill while a save moved its files into place: files the index never recorded, cut short.
    for suffix in (".index", ".data-00000-of-00001"):
        (folder / f"ckpt-15{suffix}").write_bytes((folder / f"ckpt-10{suffix}").read_bytes())
    damage_checkpoint(folder / "ckpt-15")
    capsys.readouterr()
    cfg.train.epochs = 3
    train(cfg, resume=run)
    err = capsys.readouterr().err
    assert "warning" not in err
    assert f"note: removed what interrupted writes left in {run}: " in err
    for name in (".metrics.x1y2.jsonl.tmp", "ckpt-99_temp", "ckpt-15"):
        assert name in err
    assert not list(run.rglob("*_temp")) and not list(run.glob(".*.tmp"))
    assert f"resumed {folder}/ckpt-10 (epoch 2, step 10)" in err
    assert epochs_logged(run) == [1, 2, 3]


def test_a_run_whose_only_checkpoint_was_cut_short_by_a_kill_starts_afresh(tiny_data, monkeypatch):
    cfg = tiny_data
    kill_at_save(monkeypatch, at=1, after=True)
    with pytest.raises(Killed):
        train(cfg)
    run = Path(cfg.train.runs_dir) / "tiny-001"
    (checkpoints.checkpoint_dir(run) / "checkpoint").unlink()  # the index was never written...
    damage_checkpoint(checkpoints.resolve_checkpoint(run), "index garbled")  # ...and the index file cut short
    monkeypatch.undo()
    result = invoke("train", "--resume", run, "--epochs", 1)
    assert result.exit_code == 0, result.output
    assert "ckpt-5" in result.stderr and "starting it afresh" in result.stderr
    assert epochs_logged(run) == [1] and sorted(checkpoints.checkpoint_epochs(run)) == [1]


def test_a_resume_whose_config_does_not_fit_prints_one_line_and_no_tensorflow_warnings(tiny_data, tmp_path):
    run = train(tiny_data)
    wider = tmp_path / "wider.yaml"
    wider.write_text(tiny_data.to_yaml().replace("g_width: 16", "g_width: 32"))
    (run / rundir.CONFIG_FILE).unlink()  # else the shape check on resume refuses it first
    # A subprocess: TensorFlow warns about the values left unrestored when the process exits.
    proc = subprocess.run(
        [sys.executable, "-m", "animegan", "train", "--resume", str(run), "--config", str(wider), "--epochs", "2"],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(f"error: checkpoint '{checkpoints.checkpoint_dir(run)}/ckpt-5' does not fit")
