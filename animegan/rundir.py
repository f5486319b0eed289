"""Where things live in a run directory, and how to find runs and checkpoints again.

    runs/<name>/config.yaml         the resolved config the run trains with
    runs/<name>/checkpoints/        tf.train.Checkpoint files, ckpt-<step>
    runs/<name>/samples/            epoch_0001.png ... (EMA generator on fixed noise)
    runs/<name>/metrics.jsonl       one JSON line per epoch (and per evaluation)
    runs/<name>/losses.png          training curves: losses, R1, D outputs, augmentation (monitor.py)
    runs/<name>/quality.png         metric curves, once metrics.jsonl holds evaluations
    runs/<name>/progress.gif        the epoch grids as an animation
    runs/<name>/tensorboard/        TensorBoard event files
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from animegan.config import Config, config_from_dict, flatten, load_config
from animegan.errors import UserError

CONFIG_FILE = "config.yaml"
CHECKPOINT_PREFIX = "ckpt"


def checkpoint_dir(run: Path) -> Path:
    return Path(run) / "checkpoints"


def samples_dir(run: Path) -> Path:
    return Path(run) / "samples"


def metrics_path(run: Path) -> Path:
    return Path(run) / "metrics.jsonl"


def new_run_dir(cfg: Config, must_be_new: bool = True) -> Path:
    """runs/<train.name>, or runs/<config name>-<next free counter> when no name is given."""
    root = Path(cfg.train.runs_dir)
    if cfg.train.name:
        run = root / cfg.train.name
        if must_be_new and (run / CONFIG_FILE).exists():
            raise UserError(f"run '{run}' already exists; resume it with --resume {run}, or pick another --name")
        return run
    taken = [int(m.group(1)) for p in root.glob(f"{cfg.name}-*") if (m := re.fullmatch(rf"{re.escape(cfg.name)}-(\d+)", p.name))]
    return root / f"{cfg.name}-{max(taken, default=0) + 1:03d}"


def save_config(run: Path, cfg: Config) -> None:
    from animegan.files import atomic_path

    with atomic_path(Path(run) / CONFIG_FILE) as tmp:
        tmp.write_text(cfg.to_yaml(), encoding="utf-8")


def load_run_config(run: Path) -> Config:
    path = Path(run) / CONFIG_FILE
    if not path.is_file():
        raise UserError(f"'{run}' is not a run directory (no {CONFIG_FILE}); point at a folder under runs/")
    return config_from_dict(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))


def newest_run(runs_dir: Path) -> Path:
    """The most recently modified run under runs_dir that has a config."""
    runs = [p.parent for p in Path(runs_dir).glob(f"*/{CONFIG_FILE}")]
    if not runs:
        raise UserError(f"no runs found in '{runs_dir}/'; train one with `animegan train`, or pass --run DIR")
    return max(runs, key=lambda p: (p / CONFIG_FILE).stat().st_mtime_ns)


def find_run(run: Path | None, runs_dir: Path) -> Path:
    if run is None:
        return newest_run(runs_dir)
    if not Path(run).is_dir():
        raise UserError(f"run directory '{run}' does not exist; list your runs with `ls {runs_dir}`")
    return Path(run)


def checkpoint_epochs(run: Path) -> dict[int, str]:
    """Epoch -> checkpoint prefix. Checkpoints are numbered by step; an epoch maps to the earliest
    checkpoint that has completed it (a Ctrl-C save mid-way through the next epoch comes later)."""
    found = {}
    for index in sorted(checkpoint_dir(run).glob(f"{CHECKPOINT_PREFIX}-*.index"), key=_step_of, reverse=True):
        prefix = str(index.with_suffix(""))
        try:
            found[checkpoint_epoch(prefix)] = prefix
        except Exception:  # an unreadable checkpoint is simply not offered
            continue
    return found


def _step_of(index: Path) -> int:
    match = re.fullmatch(rf"{CHECKPOINT_PREFIX}-(\d+)\.index", index.name)
    return int(match.group(1)) if match else -1


def resolve_checkpoint(run: Path, checkpoint: str | None = None) -> str:
    """A checkpoint prefix from None (the latest), an epoch number, or a path."""
    import tensorflow as tf

    if checkpoint is None:
        latest = tf.train.latest_checkpoint(str(checkpoint_dir(run)))
        if latest is None:
            raise UserError(f"run '{run}' has no checkpoint yet; train it (or resume it) for at least one epoch")
        return latest
    if str(checkpoint).isdigit():
        epochs = checkpoint_epochs(run)
        if int(checkpoint) not in epochs:
            have = ", ".join(map(str, sorted(epochs))) or "none"
            raise UserError(f"run '{run}' has no checkpoint for epoch {checkpoint}; available epochs: {have}")
        return epochs[int(checkpoint)]
    prefix = str(checkpoint)[: -len(".index")] if str(checkpoint).endswith(".index") else str(checkpoint)
    if not Path(prefix + ".index").is_file():
        raise UserError(f"checkpoint '{checkpoint}' not found; give an epoch number or a path like {checkpoint_dir(run)}/ckpt-5")
    return prefix


def checkpoint_epoch(prefix: str) -> int:
    import tensorflow as tf

    return int(tf.train.load_checkpoint(prefix).get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE"))


def load_generator(run: Path, checkpoint: str | None = None):
    """Build the run's generator in float32 and load its EMA weights (or the raw ones without EMA).

    Returns (generator, config, epoch). Works on any machine: mixed-precision runs store float32
    variables, so a GPU checkpoint samples on a CPU.
    """
    import keras
    import tensorflow as tf

    from animegan.models import build_generator

    cfg = load_run_config(run)
    prefix = resolve_checkpoint(run, checkpoint)
    keras.mixed_precision.set_global_policy("float32")
    generator = build_generator(cfg.model, cfg.data.size, cfg.data.channels)
    try:
        status = tf.train.Checkpoint(ema_generator=generator).restore(prefix)
        status.expect_partial().assert_existing_objects_matched()
        epoch = checkpoint_epoch(prefix)
    except (ValueError, AssertionError, IndexError, tf.errors.OpError) as exc:  # IndexError: a truncated data file
        first_line = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise UserError(f"checkpoint '{prefix}' is corrupt or does not match {run}/{CONFIG_FILE}: {first_line}") from None
    return generator, cfg, epoch


def append_metrics(run: Path, record: dict[str, Any]) -> None:
    """Append one JSON line; a line is written whole or not at all (one write call, then flush)."""
    with open(metrics_path(run), "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def read_metrics(run: Path) -> list[dict[str, Any]]:
    path = metrics_path(run)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# Keys that change the shape of the networks or the data: a resume cannot change them.
FROZEN_ON_RESUME = ("data.size", "data.channels", "model.noise_dim", "model.g_width", "model.g_kernel", "model.d_widths", "model.d_kernel")


def config_for_resume(run: Path, config_path: str | None, overrides: dict[str, Any], sets: tuple[str, ...]) -> Config:
    """The run's saved config with this command's flags applied; shape-changing keys must not change."""
    saved = load_run_config(run)
    if config_path is not None:
        cfg = load_config(config_path, overrides, sets)
    else:
        cfg = load_run_config(run)
        from animegan.config import apply_overrides, parse_set_options, validate

        apply_overrides(cfg, {k: v for k, v in overrides.items() if v is not None}, "command line")
        apply_overrides(cfg, parse_set_options(sets), "--set")
        validate(cfg, "command line")
    saved_flat, new_flat = flatten(saved.to_dict()), flatten(cfg.to_dict())
    for key in FROZEN_ON_RESUME:
        if saved_flat[key] != new_flat[key]:
            raise UserError(
                f"--resume {run}: '{key}' is {saved_flat[key]} in the run but {new_flat[key]} now; "
                "shape-changing keys cannot change on resume, start a new run instead"
            )
    cfg.train.name = Path(run).name
    cfg.train.runs_dir = str(Path(run).parent)
    return cfg
