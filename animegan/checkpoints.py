"""What a checkpoint holds, and how it is saved, found and restored: the one module that knows the format.

runs/<name>/checkpoints/ckpt-<step>.index, .data-*     the newest train.keep_checkpoints, by optimizer step
runs/<name>/checkpoints/best/best-<step>.*             the best train.eval_metric so far (train.eval_every)

TensorFlow writes a checkpoint's files into "<prefix>_temp/", moves them into place, and only then
records the checkpoint in its index (the "checkpoint" file). A kill on the way leaves that folder,
or files of a checkpoint the index never recorded; the trainer removes both when it starts
(`remove_unfinished`), and keeps train.keep_checkpoints by the files on disk, since the index's
own bookkeeping cannot know the unrecorded ones.

A checkpoint holds every field of the TrainState (step.py) under its field name: both networks, the
EMA generator, both optimizers, the epoch and step counters, the random generator, the augmentation's
p, the sample grid's noise and dropout's seeds; restoring it continues a run exactly. `sample`,
`export` and `evaluate` read only `ema_generator` and `epoch` (`load_generator`), which is all that
`save_generator` writes for tests and benchmarks.

TensorFlow is imported inside the functions: `animegan --help` and the run-finding errors stay instant.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from animegan.errors import UserError
from animegan.rundir import CONFIG_FILE, load_run_config
from animegan.say import say

PREFIX = "ckpt"
BEST = "best"
# TensorFlow's leftovers of a save a kill interrupted: the staging folder, and its index's temp file.
LEFTOVERS = ("*_temp", "checkpoint.tmp*")


def checkpoint_dir(run: Path) -> Path:
    return Path(run) / "checkpoints"


def state_checkpoint(state, without: tuple[str, ...] = (), **extra):
    """A tf.train.Checkpoint of every field of `state` (a step.TrainState) but those `without`, and `extra`."""
    import tensorflow as tf

    return tf.train.Checkpoint(**{k: v for k, v in state.__dict__.items() if k not in without}, **extra)


def _manager(checkpoint, directory: Path | str, name: str, keep: int | None):
    import tensorflow as tf

    return tf.train.CheckpointManager(checkpoint, str(directory), max_to_keep=keep, checkpoint_name=name)


# --- saving ---------------------------------------------------------------------------------------


class Checkpoints:
    """Saves and restores the run's checkpoints. Non-chief workers save too (collective ops need every
    worker) but into a throwaway folder. Each save writes new files under a new step number and only
    then updates the index, so a kill during a save leaves the previous checkpoint intact."""

    def __init__(self, state, run: Path, keep: int, chief: bool):
        self.state, self.checkpoint, self.keep = state, state_checkpoint(state), keep
        if chief:
            directory = checkpoint_dir(run)
        else:
            self.scratch = tempfile.TemporaryDirectory(prefix="animegan-worker-")  # deleted with this object
            directory = self.scratch.name
        self.manager = _manager(self.checkpoint, directory, PREFIX, keep)

    def save(self, step: int) -> str:
        import tensorflow as tf

        try:
            prefix = self.manager.save(checkpoint_number=step)
        except (OSError, tf.errors.OpError) as exc:
            raise UserError(
                f"cannot write a checkpoint in '{self.manager.directory}' ({getattr(exc, 'message', exc)}); "
                f"free some disk space, then resume from the last good one with --resume"
            ) from None
        # The manager deletes only what its index lists: not a checkpoint whose save a kill cut off
        # after its files were in place, which a resume restores (the newest on disk) all the same.
        for old in _prefixes(Path(self.manager.directory), PREFIX)[self.keep :]:
            _delete(old)
        return prefix

    def restore_latest(self, run: Path) -> str:
        """Restore the newest checkpoint that restores. Damaged newer ones are deleted: training goes
        on from the older one and saves those steps anew (and they must not count as kept ones)."""
        prefix, _ = restore_newest(run, self._restore, delete_damaged=True)
        return prefix

    def _restore(self, prefix: str):
        import tensorflow as tf

        # A checkpoint from before p was checkpointed (animegan 0.1.0) resumes everything else; p starts afresh.
        old = not any(name.startswith("augment/") for name, _ in tf.train.list_variables(prefix))
        checkpoint = state_checkpoint(self.state, without=("augment",)) if old else self.checkpoint
        return checkpoint.restore(prefix).assert_existing_objects_matched()


class BestCheckpoint:
    """Keeps the checkpoint with the lowest `metric` so far in checkpoints/best/ (one; lower is better
    for every metric train.eval_metric may name). The score is saved in that checkpoint, as
    best_<metric>, so that a resumed run goes on comparing with it."""

    def __init__(self, run: Path, metric: str):
        import tensorflow as tf

        self.directory, self.key = checkpoint_dir(run) / BEST, f"best_{metric}"
        self.value = float("inf")
        if (prefix := best_checkpoint(run)) is not None:
            try:
                self.value = read_value(prefix, self.key)
            except (IndexError, ValueError, tf.errors.OpError):  # no score of this metric (another one, an
                pass  # older run), or a damaged best checkpoint: the next evaluation replaces it

    def offer(self, state, value: float) -> str | None:
        """Save `state` if `value` beats the best so far; returns the new checkpoint's prefix, else None."""
        import tensorflow as tf

        if not value < self.value:
            return None
        self.value = value
        checkpoint = state_checkpoint(state, **{self.key: tf.Variable(value, dtype=tf.float64, trainable=False)})
        return _manager(checkpoint, self.directory, BEST, keep=1).save(checkpoint_number=int(state.step.numpy()))


def best_checkpoint(run: Path) -> str | None:
    import tensorflow as tf

    return tf.train.latest_checkpoint(str(checkpoint_dir(run) / BEST))


def save_generator(run: Path, generator, epoch: int) -> str:
    """Write ckpt-<epoch> holding what `load_generator` reads (the generator as the EMA one, and the
    epoch), beside any others: a run to sample for tests and benchmarks without training one."""
    import tensorflow as tf

    checkpoint = tf.train.Checkpoint(ema_generator=generator, epoch=tf.Variable(epoch, dtype=tf.int64))
    return _manager(checkpoint, checkpoint_dir(run), PREFIX, keep=None).save(checkpoint_number=epoch)


# --- finding --------------------------------------------------------------------------------------


def latest_checkpoint(run: Path) -> str | None:
    """The newest checkpoint in TensorFlow's index of the run's checkpoints (the last one saved)."""
    import tensorflow as tf

    return tf.train.latest_checkpoint(str(checkpoint_dir(run)))


def checkpoint_prefixes(run: Path) -> list[str]:
    """Every checkpoint of the run, newest (highest step) first, found by its files rather than by
    TensorFlow's index of them (one more file that can be damaged); one that lost its .index counts."""
    return _prefixes(checkpoint_dir(run), PREFIX)


def _prefixes(directory: Path, name: str) -> list[str]:
    # A checkpoint's own files; the "<prefix>_temp" staging folders of an unfinished save are not one.
    pattern = re.compile(rf"{name}-(\d+)\.(?:index|data-\d+-of-\d+)")
    steps = {int(m.group(1)) for p in directory.glob(f"{name}-*") if (m := pattern.fullmatch(p.name))}
    return [str(directory / f"{name}-{step}") for step in sorted(steps, reverse=True)]


def _delete(prefix: str) -> None:
    for path in Path(prefix).parent.glob(f"{Path(prefix).name}.*"):
        path.unlink(missing_ok=True)


def remove_unfinished(run: Path) -> list[str]:
    """Delete what saves a kill interrupted left in checkpoints/ and best/ (call holding the run lock):
    TensorFlow's staging folders and temp files, and checkpoints its index never recorded whose files
    do not read in full. Returns the names removed. A damaged checkpoint the index did record was
    whole once: it stays, for restore_newest to skip with a warning."""
    import tensorflow as tf

    removed = []
    for directory, name in ((checkpoint_dir(run), PREFIX), (checkpoint_dir(run) / BEST, BEST)):
        for path in (p for pattern in LEFTOVERS for p in directory.glob(pattern)):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            removed.append(path.name)
        state = tf.train.get_checkpoint_state(str(directory)) if directory.is_dir() else None
        recorded = {Path(p).name for p in state.all_model_checkpoint_paths} if state else set()
        for prefix in _prefixes(directory, name):
            if Path(prefix).name not in recorded and checkpoint_damage(prefix) is not None:
                _delete(prefix)
                removed.append(Path(prefix).name)
    return removed


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
            f"checkpoint '{checkpoint}' not found; give an epoch number or a path like {checkpoint_dir(run)}/{PREFIX}-5"
        )
    return prefix


def _no_checkpoint_yet(run: Path) -> UserError:
    return UserError(f"run '{run}' has no checkpoint yet; train it (or resume it) for at least one epoch")


def read_value(prefix: str, name: str):
    """A variable of the checkpoint (`epoch`, `step`, a best score), read without building any network."""
    import tensorflow as tf

    return tf.train.load_checkpoint(prefix).get_tensor(f"{name}/.ATTRIBUTES/VARIABLE_VALUE").item()


def read_counter(prefix: str, name: str) -> int:
    """The checkpoint's `epoch` or `step`."""
    return int(read_value(prefix, name))


def checkpoint_epoch(prefix: str) -> int:
    return read_counter(prefix, "epoch")


# --- restoring, with the fallback past damaged files ------------------------------------------------


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


def restore_newest(
    run: Path, restore: Callable[[str], Any], checkpoint: str | None = None, delete_damaged: bool = False
) -> tuple[str, Any]:
    """Call restore(prefix) on `checkpoint` (an epoch or a path), or by default on the newest
    checkpoint that restores; return the prefix and what restore returned.

    Only damaged files (a full disk, a copy cut short) make it fall back to an older checkpoint,
    with one warning line per checkpoint skipped, which stays where it is unless `delete_damaged`
    (the trainer, which saves those steps anew). A checkpoint the user named is never swapped for
    another, and one that reads but does not fit the config is an error at once: the older ones
    come from the same config.
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
            if delete_damaged:
                _delete(exc.prefix)
            fate = "deleted: training goes on from there" if delete_damaged else "the damaged files are left in place"
            say(f"warning: {exc}; using {Path(prefix).name}, the newest checkpoint that restores ({fate})")
        return prefix, result
    reasons = "; ".join(f"{Path(e.prefix).name}: {e.reason}" for e in damaged)
    raise UserError(
        f"no checkpoint of run '{run}' can be read: {reasons}; "
        f"copy the run's checkpoints/ back from a backup, or start the run again"
    )


class _UnrestoredValues(logging.Filter):
    """Drops TensorFlow's warnings about checkpoint values a restore left unrestored. It logs them when
    the objects holding them are deleted, which after a restore that failed is at exit, under the
    one line that says what failed; and an older checkpoint that restores in its place fills them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "unrestored values" not in message and "could not be found in the restored object" not in message


def _restore(run: Path, prefix: str, restore: Callable[[str], Any]) -> Any:
    import tensorflow as tf

    try:
        return restore(prefix)
    except (AssertionError, IndexError, ValueError, tf.errors.OpError) as exc:
        error = _first_line(exc)
    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, _UnrestoredValues) for f in logger.filters):
        logger.addFilter(_UnrestoredValues())
    if (reason := checkpoint_damage(prefix)) is not None:
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
