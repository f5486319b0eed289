"""The run's metrics log, runs/<name>/metrics.jsonl: one JSON object a line, each with its "epoch".

Training appends a line per epoch, before that epoch's checkpoint: a kill between the two leaves a
line whose epoch a resume trains again, and the resume drops it (`tidy_metrics`), so every epoch
is in the log once. `animegan evaluate` appends lines marked "event".

A kill or a full disk during an append can leave the last line cut short. Readers skip it with a
warning; a writer, holding the run lock (runlock.py), first rewrites the file without it, so that
no line is ever appended onto a torn one. A bad line anywhere else is an error naming it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from animegan.errors import UserError
from animegan.files import atomic_path
from animegan.rundir import metrics_path
from animegan.say import say


def _parse(path: Path) -> tuple[list[tuple[str, dict[str, Any]]], str | None]:
    """The file's (line, record) pairs, and its torn last line (None when it ends whole)."""
    if not path.is_file():
        return [], None
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    entries = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            valid = isinstance(record, dict) and isinstance(record.get("epoch"), int)
        except ValueError:
            valid = False
        if valid:
            entries.append((line, record))
        elif number == len(lines):
            return entries, line
        else:
            raise UserError(
                f"{path}, line {number}: not a metrics record ({line[:40]!r}); fix or delete that line, then run again"
            )
    return entries, None


def _torn_warning(path: Path, torn: str, what: str) -> None:
    say(f"warning: {path}: the last line is cut short ({torn[:40]!r}, an interrupted write); {what}")


def read_metrics(run: Path) -> list[dict[str, Any]]:
    """Every record of the run's log; a torn last line is skipped with a warning (left for a writer to remove)."""
    entries, torn = _parse(metrics_path(run))
    if torn is not None:
        _torn_warning(metrics_path(run), torn, "skipping it")
    return [record for _, record in entries]


def append_metrics(run: Path, record: dict[str, Any]) -> None:
    """Append one JSON line; a line is written whole or not at all (one write call, then flush)."""
    with open(metrics_path(run), "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def tidy_metrics(run: Path, last_epoch: int | None = None) -> int:
    """Make the log safe to append to (call holding the run lock): drop a torn last line and, given
    `last_epoch`, the training lines past it (a resume from an older checkpoint trains those epochs
    again and writes them anew; evaluation lines stay). Returns how many training lines went."""
    path = metrics_path(run)
    entries, torn = _parse(path)
    kept = [line for line, r in entries if "event" in r or last_epoch is None or r["epoch"] <= last_epoch]
    if torn is None and len(kept) == len(entries):
        return 0
    if torn is not None:
        _torn_warning(path, torn, "removing it")
    with atomic_path(path) as tmp:
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    return len(entries) - len(kept)
