"""File types and atomic file writes. Standard library only, so that importing it costs nothing (preprocess starts
fast)."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from animegan.errors import UserError

# What preprocess reads (Pillow decodes all of them) and what a training folder may hold.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")

_UMASK = os.umask(0)
os.umask(_UMASK)  # reading the umask means setting it; put it straight back


@contextmanager
def atomic_path(path: Path):
    """Yield a temp path beside `path`; rename it over `path` only if the block succeeds."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix + ".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise UserError(f"cannot write '{path}': {exc.strerror}; choose a writable location") from None
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes owner-only files; give the usual permissions
        os.replace(tmp, path)
    except OSError as exc:
        raise UserError(f"cannot write '{path}': {exc.strerror}; check free space and permissions") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def refuse_to_replace(path: Path, option: str, force: bool, ours: bool = False) -> None:
    """Stop a write that would replace an existing file the user may want, unless it is one of ours or `force`."""
    if Path(path).exists() and not (ours or force):
        raise UserError(f"{option} '{path}' already exists; add --force to replace it, or choose another path")


def remove_temp_files(folder: Path) -> list[str]:
    """Delete the temp files that atomic_path leaves in `folder` when its process is killed mid-write;
    returns their names. Call only where no one else is writing (a run's lock held)."""
    removed = []
    for path in Path(folder).glob(".*.tmp"):
        path.unlink(missing_ok=True)
        removed.append(path.name)
    return removed
