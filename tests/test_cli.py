"""The command line: help, version, clean one-line errors, Ctrl-C, config show, and lazy imports."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import animegan
from animegan.cli import cli
from animegan.config import load_config
from animegan.configfile import CONFIG_DIR

COMMANDS = ["demo-data", "preprocess", "train", "sample", "export", "evaluate", "plot", "config"]
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def restore_tensorflow_log_env(monkeypatch):
    """The CLI sets TensorFlow's log-level variables; keep them from leaking into other tests."""
    for name in ("TF_CPP_MIN_LOG_LEVEL", "ABSL_MIN_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)


def run(*args: str):
    return CliRunner().invoke(cli, list(args), prog_name="animegan")


def assert_clean_error(result, exit_code: int = 2) -> str:
    """Exit code, nothing on stdout, and exactly one 'error:' line on stderr, no traceback."""
    assert result.exit_code == exit_code, result.output
    assert result.stdout == ""
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# --- help and version -----------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_every_command(flag):
    result = run(flag)
    assert result.exit_code == 0
    listed = result.stdout.split("Commands:")[1]
    for command in COMMANDS:
        assert f"  {command} " in listed


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = run(command, "--help")
    assert result.exit_code == 0, result.output
    assert f"animegan {command}" in result.stdout


def test_the_quickstarts_commands_in_its_folder_layout(tmp_path, monkeypatch):
    """scripts/quickstart.sh's own commands, in its order and folders (demo/ beside `--config demo`),
    with tiny networks and one epoch so that it takes seconds."""
    monkeypatch.chdir(tmp_path)
    tiny = ["--set", "model.g_width=16", "--set", "model.d_widths=[8]", "--epochs", "1", "--precision", "float32"]
    for args in (
        ["demo-data", "demo/", "--n", "12"],
        ["preprocess", "demo/", "demo-face/", "--config", "demo"],
        ["train", "--config", "demo", "--name", "quickstart", *tiny],
        ["sample", "--run", "runs/quickstart", "--n", "4", "--scale", "2"],
    ):
        result = run(*args)
        assert result.exit_code == 0, (args, result.output)
    assert len(list((tmp_path / "demo-face").glob("*.png"))) == 12
    assert result.stdout.strip().endswith(".png") and Path(result.stdout.strip()).is_file()


def test_evaluate_help_names_every_registered_metric():
    from animegan.metrics import METRICS

    listed = " ".join(run("evaluate", "--help").stdout.split())
    for name in METRICS:
        assert f" {name}," in listed or f" {name}." in listed, name


def test_version():
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"animegan, version {animegan.__version__}"


# --- errors -------------------------------------------------------------------------------------


def test_unknown_config_key(tmp_path):
    line = assert_clean_error(run("config", "show", "--set", "trian.epochs=3"))
    assert "'trian.epochs'" in line and "did you mean 'train.epochs'" in line


def test_missing_config_file():
    assert "config file 'no-such-config' not found" in assert_clean_error(
        run("config", "show", "--config", "no-such-config")
    )


def test_bad_stage_flag_value_is_reported_before_the_stage_is_imported():
    assert "'data.size' 100" in assert_clean_error(run("preprocess", "in", "out", "--size", "100"))


def test_train_config_error_comes_before_importing_tensorflow(monkeypatch):
    # A None entry makes `import animegan.train` fail, so reaching the import would end in
    # an ImportError (exit 1) instead of the config error (exit 2).
    monkeypatch.setitem(sys.modules, "animegan.train", None)
    assert "unknown op 'flip'" in assert_clean_error(run("train", "--augment", "flip"))


def test_demo_data_into_an_uncreatable_folder(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert "cannot create" in assert_clean_error(run("demo-data", str(blocker / "faces"), "--n", "1"))


def test_plot_a_run_with_no_metrics_yet(tmp_path):
    assert "no metrics.jsonl records yet" in assert_clean_error(run("plot", str(tmp_path)))


def test_plot_prints_the_files_it_drew(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(
        '{"epoch": 1, "step": 5, "d_loss": 1.3, "g_loss": 0.7, "d_real": 0.5, "d_fake": 0.5}\n'
    )
    result = run("plot", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [str(tmp_path / "losses.png")]


def test_verbose_shows_the_traceback_too():
    result = run("--verbose", "config", "show", "--set", "trian.epochs=3")
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and "UserError" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: ")


def test_ctrl_c_exits_130_with_a_short_message(monkeypatch, tmp_path):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("animegan.demo_data.write_demo_faces", interrupted)
    result = run("demo-data", str(tmp_path))
    assert result.exit_code == 130
    assert result.stderr.strip() == "interrupted"
    assert "Traceback" not in result.output


# --- commands that work without TensorFlow ----------------------------------------------------------


def test_demo_data_writes_faces(tmp_path):
    result = run("demo-data", str(tmp_path / "faces"), "--n", "3", "--seed", "7")
    assert result.exit_code == 0, result.output
    assert f"wrote 3 faces to {tmp_path / 'faces'}" in result.stdout
    assert len(list((tmp_path / "faces").iterdir())) == 3


def test_config_show_prints_yaml_that_round_trips(tmp_path):
    result = run("config", "show")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout) == load_config(CONFIG_DIR / "default.yaml").to_dict()
    saved = tmp_path / "saved.yaml"
    saved.write_text(result.stdout, encoding="utf-8")
    assert run("config", "show", "--config", str(saved)).stdout == result.stdout


def test_config_show_applies_config_and_set():
    result = run("config", "show", "--config", "demo", "--set", "train.epochs=3")
    shown = yaml.safe_load(result.stdout)
    assert shown["name"] == "demo"
    assert shown["train"]["epochs"] == 3
    assert shown["data"]["size"] == 32


# --- a real process: the entry point and its imports -----------------------------------------------


@pytest.mark.parametrize("args", [["--help"], ["preprocess", "--help"]], ids=["help", "preprocess-help"])
def test_help_does_not_import_tensorflow(args):
    # Importing TensorFlow is what would make --help slow; scripts/bench_cli.py measures the time itself.
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "animegan", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Usage: animegan" in result.stdout
    # -X importtime writes one "import time: ... | module" line per module imported.
    imported = {
        line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")
    }
    assert "click" in imported
    assert not {m for m in imported if m.split(".")[0] in ("tensorflow", "keras", "matplotlib")}


@pytest.mark.parametrize("user_value, expected", [(None, "1"), ("0", "0")], ids=["default-on", "user-wins"])
def test_importing_animegan_turns_onednn_on_unless_the_user_chose(user_value, expected):
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    if user_value is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = user_value
    result = subprocess.run(
        [sys.executable, "-c", "import os, animegan; print(os.environ['TF_ENABLE_ONEDNN_OPTS'])"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == expected, result.stderr


def test_say_puts_messages_on_stderr_and_results_on_stdout_between_progress_bars(capsys):
    from tqdm import tqdm

    from animegan.say import say

    with tqdm(total=2, file=sys.stderr) as bar:
        say("note: a message")
        say("swd: 1.0000", output=True)
        say("no newline", output=True, end="")
        bar.update(2)
    out, err = capsys.readouterr()
    assert out == "swd: 1.0000\nno newline"  # nothing of the bar or the messages in a command's output
    assert "note: a message\n" in err


@pytest.mark.parametrize("command", ["plot", "sample"])
def test_runs_dir_defaults_to_the_default_configs_train_runs_dir(tmp_path, monkeypatch, command):
    import animegan.configfile

    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "default.yaml").write_text("train:\n  runs_dir: elsewhere\n")
    monkeypatch.setattr(animegan.configfile, "CONFIG_DIR", configs)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, [command])
    assert result.exit_code == 2
    assert "no runs found in 'elsewhere/'" in result.stderr
