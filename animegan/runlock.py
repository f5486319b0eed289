"""One writer at a time per run: the run lock, and how a trainer claims its run folder.

runs/<name>/lock is locked with flock(2) by whoever writes into the run (`train`, and `evaluate`
while it appends to metrics.jsonl); `sample`, `plot` and `export` only read and take no lock. The
kernel drops a flock when its process ends, however it ends (kill -9 included), so a dead holder
never blocks a run. The file's text, one JSON line with the holder's pid, host, start time and
command, is only for the message a second writer gets; a holder that dies leaves it behind, and
the next holder takes over with a note.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from animegan import rundir
from animegan.config import Config
from animegan.errors import UserError
from animegan.files import remove_temp_files
from animegan.say import say


def _describe(holder: dict) -> str:
    return (
        f"`animegan {holder.get('command', '?')}` (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
        f"since {holder.get('since', '?')})"
    )


def _read_holder(fd: int) -> dict:
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
    except (OSError, ValueError):  # empty (released, or a holder still starting) or garbled
        return {}
    return holder if isinstance(holder, dict) else {}


def _open_locked(path: Path, run: Path) -> int:
    """An open descriptor of `path` holding its flock; a UserError naming the holder if another has it."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise UserError(f"cannot write '{path}': {exc.strerror}; check the run folder's permissions") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            who = _describe(holder) if holder else "another animegan process (starting up)"
            raise UserError(
                f"run '{run}' is in use by {who}; wait for it to finish or stop it, then try again"
            ) from None
        # A start that failed removes its new folder's lock file (claim_run): the lock got between
        # open and flock guards a file no one else can open any more, so open the path again.
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


@contextmanager
def run_lock(run: Path, command: str) -> Iterator[None]:
    """Hold the run's lock for the block; a second writer gets a one-line error naming this one."""
    path = Path(run) / rundir.LOCK_FILE
    fd = _open_locked(path, Path(run))
    try:
        left = _read_holder(fd)
        host = socket.gethostname()
        if left and left.get("host") != host:
            # flock may not reach across machines on a network disk: the holder there may be alive.
            raise UserError(
                f"run '{run}' is locked by {_describe(left)}; if nothing runs there any more, "
                f"delete {path} and try again"
            )
        if left:
            say(f"note: taking over the lock of {run} left by {_describe(left)}, which has ended")
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        holder = json.dumps({"pid": os.getpid(), "host": host, "since": since, "command": command})
        os.ftruncate(fd, 0)
        os.pwrite(fd, (holder + "\n").encode("utf-8"), 0)
        yield
    finally:
        os.ftruncate(fd, 0)  # ended cleanly: no text left to take over
        os.close(fd)


@contextmanager
def claim_run(cfg: Config, resume: Path | None, chief: bool) -> Iterator[Path]:
    """The folder `train` writes into, under the run lock for the block: `resume`, or a new one
    (rundir.new_run_dir) that must hold nothing but its lock. A new folder that never got its
    config.yaml (a start that failed early, on bad data say) is removed again. Non-chief workers
    write nothing into the run (their checkpoints go to a scratch folder) and take no lock."""
    if not chief:
        yield Path(resume) if resume is not None else rundir.new_run_dir(cfg, create=False)
        return
    run = Path(resume) if resume is not None else rundir.new_run_dir(cfg)
    with run_lock(run, "train"):
        try:
            _remove_leftovers(run)  # first: a new run's folder that holds only these is free
            if resume is None:
                rundir.check_free(run)
            yield run
        finally:
            if resume is None and not (run / rundir.CONFIG_FILE).exists():
                _remove_if_only_the_lock(run)


def _remove_leftovers(run: Path) -> None:
    """What writes a kill interrupted left behind: atomic_path's temp files, unfinished checkpoints."""
    from animegan.checkpoints import remove_unfinished

    removed = [*remove_temp_files(run), *remove_temp_files(rundir.samples_dir(run)), *remove_unfinished(run)]
    if removed:
        say(f"note: removed what interrupted writes left in {run}: {', '.join(removed)}")


def _remove_if_only_the_lock(run: Path) -> None:
    """Remove a new run's folder again, with its lock still held: another trainer that opened the lock
    file meanwhile finds it gone (_open_locked) instead of holding a lock on a removed file."""
    if [p.name for p in run.iterdir()] == [rundir.LOCK_FILE]:
        (run / rundir.LOCK_FILE).unlink()
        run.rmdir()
