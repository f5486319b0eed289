"""What the `animegan` commands share: clean one-line errors, TensorFlow's quiet import, and the options
several commands take (--config/--set, --runs-dir). click and the standard library only: `--help` stays instant.
"""

from __future__ import annotations

import os
import sys
import traceback
from contextlib import contextmanager
from pathlib import Path

import click

from animegan.errors import UserError
from animegan.say import say


def quiet_tensorflow(verbose: bool) -> None:
    """Hide TensorFlow's start-up noise (cuInit, remapper, oneDNN banners) unless --verbose."""
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")


@contextmanager
def stderr_silenced(enabled: bool):
    """Point file descriptor 2 at /dev/null: TensorFlow's C++ start-up log ignores TF_CPP_MIN_LOG_LEVEL."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow() -> None:
    """Import TensorFlow once, hiding its start-up noise unless --verbose."""
    verbose = click.get_current_context().find_root().params.get("verbose", False)
    with stderr_silenced(not verbose):
        import tensorflow  # noqa: F401


class CleanErrors(click.Group):
    """Turn UserError into one line and exit 2; Ctrl-C into exit 130."""

    def invoke(self, ctx: click.Context):
        verbose = bool(ctx.params.get("verbose"))
        try:
            return super().invoke(ctx)
        except UserError as exc:
            if verbose:
                traceback.print_exc()
            say(f"error: {exc}")
            ctx.exit(2)
        except KeyboardInterrupt:
            if verbose:
                traceback.print_exc()
            say("interrupted")
            ctx.exit(130)


def config_options(func):
    """--config and --set, shared by every command that reads the config."""
    func = click.option(
        "--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE", help="Override any config key (repeatable)."
    )(func)
    func = click.option(
        "--config",
        "config_path",
        metavar="FILE",
        help="YAML config file, or the name of one in configs/ (default: configs/default.yaml).",
    )(func)
    return func


def build_config(config_path, sets, **overrides):
    from animegan.config import load_config

    return load_config(config_path or _default_config_path(), overrides, sets)


def _runs_dir_from_config(ctx, param, value):
    # Read the default config only when --runs-dir is left out: a command given one need not parse it.
    return value if value is not None else Path(build_config(None, ()).train.runs_dir)


runs_dir_option = click.option(
    "--runs-dir",
    type=click.Path(path_type=Path),
    callback=_runs_dir_from_config,
    help="Where to look for runs (default: train.runs_dir of configs/default.yaml, 'runs').",
)


def _default_config_path():
    from animegan.configfile import CONFIG_DIR

    default = CONFIG_DIR / "default.yaml"
    return default if default.is_file() else None
