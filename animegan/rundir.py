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
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from animegan.config import Config, config_from_dict, flatten, load_config
from animegan.errors import UserError

CONFIG_FILE = "config.yaml"
CHECKPOINT_PREFIX = "ckpt"
# A checkpoint's own files; TensorFlow's "<prefix>_temp" staging folders of an unfinished save are not one.
CHECKPOINT_FILE = re.compile(rf"{CHECKPOINT_PREFIX}-(\d+)\.(?:index|data-\d+-of-\d+)")


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
    taken = [
        int(m.group(1))
        for p in root.glob(f"{cfg.name}-*")
        if (m := re.fullmatch(rf"{re.escape(cfg.name)}-(\d+)", p.name))
    ]
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


def checkpoint_prefixes(run: Path) -> list[str]:
    """Every checkpoint of the run, newest (highest step) first, found by its files rather than by
    TensorFlow's index of them (one more file that can be damaged); one that lost its .index counts."""
    steps = {
        int(m.group(1))
        for p in checkpoint_dir(run).glob(f"{CHECKPOINT_PREFIX}-*")
        if (m := CHECKPOINT_FILE.fullmatch(p.name))
    }
    return [str(checkpoint_dir(run) / f"{CHECKPOINT_PREFIX}-{step}") for step in sorted(steps, reverse=True)]


def checkpoint_epochs(run: Path) -> dict[int, str]:
    """Epoch -> checkpoint prefix. Checkpoints are numbered by step; an epoch maps to the earliest
    checkpoint that has completed it (a Ctrl-C save mid-way through the next epoch comes later)."""
    found = {}
    for prefix in checkpoint_prefixes(run):
        try:
            found[checkpoint_epoch(prefix)] = prefix
        except Exception:  # an unreadable checkpoint is simply not offered
            continue
    return found


def resolve_checkpoint(run: Path, checkpoint: str | None = None) -> str:
    """A checkpoint prefix from None (the newest), an epoch number, or a path."""
    if checkpoint is None:
        prefixes = checkpoint_prefixes(run)
        if not prefixes:
            raise _no_checkpoint_yet(run)
        return prefixes[0]
    if str(checkpoint).isdigit():
        epochs = checkpoint_epochs(run)
        if int(checkpoint) not in epochs:
            have = ", ".join(map(str, sorted(epochs))) or "none"
            unreadable = [Path(p).name for p in checkpoint_prefixes(run) if p not in epochs.values()]
            damaged = f" ({', '.join(unreadable)} cannot be read)" if unreadable else ""
            raise UserError(f"run '{run}' has no checkpoint for epoch {checkpoint}; available epochs: {have}{damaged}")
        return epochs[int(checkpoint)]
    prefix = str(checkpoint)[: -len(".index")] if str(checkpoint).endswith(".index") else str(checkpoint)
    if not Path(prefix + ".index").is_file():
        raise UserError(
            f"checkpoint '{checkpoint}' not found; give an epoch number or a path like {checkpoint_dir(run)}/ckpt-5"
        )
    return prefix


def _no_checkpoint_yet(run: Path) -> UserError:
    return UserError(f"run '{run}' has no checkpoint yet; train it (or resume it) for at least one epoch")


def checkpoint_epoch(prefix: str) -> int:
    import tensorflow as tf

    return int(tf.train.load_checkpoint(prefix).get_tensor("epoch/.ATTRIBUTES/VARIABLE_VALUE"))


def _first_line(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def checkpoint_damage(prefix: str) -> str | None:
    """Why the checkpoint's files cannot be read in full (missing, cut short, failed checksum), or
    None when every tensor reads: then a restore that failed was a mismatch with the networks."""
    import tensorflow as tf

    if not Path(prefix + ".index").is_file():
        return "its .index file is missing"
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except (IndexError, ValueError, tf.errors.OpError) as exc:  # IndexError: a data file cut short
        return _first_line(exc)
    return None


class DamagedCheckpoint(Exception):
    """A checkpoint whose files cannot be read; restore_newest skips it unless the user named it."""

    def __init__(self, prefix: str, reason: str):
        super().__init__(f"checkpoint '{prefix}' is damaged ({reason})")
        self.prefix, self.reason = prefix, reason


def restore_newest(run: Path, restore: Callable[[str], Any], checkpoint: str | None = None) -> tuple[str, Any]:
    """Call restore(prefix) on `checkpoint` (an epoch or a path), or by default on the newest
    checkpoint that restores; return the prefix and what restore returned.

    Only damaged files (a full disk, a copy cut short) make it fall back to an older checkpoint,
    with one warning line per checkpoint skipped, which stays where it is. A checkpoint the user
    named is never swapped for another, and one that reads but does not fit the config is an
    error at once: the older ones come from the same config.
    """
    if checkpoint is not None:
        prefix = resolve_checkpoint(run, checkpoint)
        try:
            return prefix, _restore(run, prefix, restore)
        except DamagedCheckpoint as exc:
            raise UserError(
                f"{exc}; pick another with --checkpoint (available epochs: "
                f"{', '.join(map(str, sorted(checkpoint_epochs(run)))) or 'none'})"
            ) from None
    prefixes = checkpoint_prefixes(run)
    if not prefixes:
        raise _no_checkpoint_yet(run)
    damaged = []
    for prefix in prefixes:
        try:
            result = _restore(run, prefix, restore)
        except DamagedCheckpoint as exc:
            damaged.append(exc)
            continue
        for exc in damaged:
            print(
                f"warning: {exc}; using {Path(prefix).name}, the newest checkpoint that restores "
                f"(the damaged files are left in place)",
                file=sys.stderr,
            )
        return prefix, result
    raise UserError(
        f"no checkpoint of run '{run}' can be read: {'; '.join(f'{Path(e.prefix).name}: {e.reason}' for e in damaged)}; "
        f"copy the run's checkpoints/ back from a backup, or start the run again"
    )


def _restore(run: Path, prefix: str, restore: Callable[[str], Any]) -> Any:
    import gc
    import logging

    import tensorflow as tf

    # A failed restore makes TensorFlow log warnings about the values it left unrestored, some when
    # its leftovers are garbage-collected; the line restore_newest prints says what matters.
    logger = logging.getLogger("tensorflow")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        try:
            return restore(prefix)
        except (AssertionError, IndexError, ValueError, tf.errors.OpError) as exc:
            error = _first_line(exc)
        gc.collect()  # out of the except block, so the traceback no longer holds the leftovers
        reason = checkpoint_damage(prefix)
    finally:
        logger.setLevel(level)
    if reason is not None:
        raise DamagedCheckpoint(prefix, reason)
    raise UserError(
        f"checkpoint '{prefix}' does not fit the networks of {Path(run) / CONFIG_FILE} ({error}); "
        f"give a checkpoint of this run, or put back the config.yaml it was trained with"
    )


def load_generator(run: Path, checkpoint: str | None = None):
    """Build the run's generator in float32 and load its EMA weights (or the raw ones without EMA)
    from `checkpoint`, or from the newest checkpoint that restores.

    Returns (generator, config, epoch). Works on any machine: mixed-precision runs store float32
    variables, so a GPU checkpoint samples on a CPU.
    """
    import keras
    import tensorflow as tf

    from animegan.models import build_generator

    cfg = load_run_config(run)
    keras.mixed_precision.set_global_policy("float32")
    generator = build_generator(cfg.model, cfg.data.size, cfg.data.channels)

    def restore(prefix: str) -> int:
        tf.train.Checkpoint(ema_generator=generator).restore(prefix).expect_partial().assert_existing_objects_matched()
        return checkpoint_epoch(prefix)

    _, epoch = restore_newest(run, restore, checkpoint)
    return generator, cfg, epoch


def append_metrics(run: Path, record: dict[str, Any]) -> None:
    """Append one JSON line; a line is written whole or not at all (one write call, then flush)."""
    with open(metrics_path(run), "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def drop_metrics_after(run: Path, epoch: int) -> int:
    """Remove the per-epoch training lines past `epoch` (a resume from an older checkpoint trains
    those epochs again and writes them anew); evaluation lines stay. Returns how many went."""
    path = metrics_path(run)
    if not path.is_file():
        return 0
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)

    def superseded(line: str) -> bool:
        record = json.loads(line)
        return "event" not in record and record.get("epoch", 0) > epoch

    kept = [line for line in lines if not (line.strip() and superseded(line))]
    if len(kept) < len(lines):
        from animegan.files import atomic_path

        with atomic_path(path) as tmp:
            tmp.write_text("".join(kept), encoding="utf-8")
    return len(lines) - len(kept)


def read_metrics(run: Path) -> list[dict[str, Any]]:
    path = metrics_path(run)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# Keys that change the shape of the networks or the data: a resume cannot change them.
FROZEN_ON_RESUME = (
    "data.size",
    "data.channels",
    "model.noise_dim",
    "model.g_width",
    "model.g_kernel",
    "model.d_widths",
    "model.d_kernel",
)


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
