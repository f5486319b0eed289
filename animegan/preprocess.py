"""`animegan preprocess`: turn a messy folder of images into a flat folder of same-size PNGs.

The flow, one way:
  list SRC, sorted -> convert each file in a worker pool (decode, make square, resize, write a PNG
  under a temp name in DST) -> in the parent, in source order: drop duplicates, stop at the limit,
  rename each kept PNG to its final name, log the file in DST's journal -> write DST/preprocess.json
  and print a summary.

Workers do the work, file creation included (on some file systems it costs as much as decoding).
Every decision is the parent's, taken in source order, so the output is the same for
any number of workers, and an image gets its final name only once it is complete. The journal holds
what the workers found (pixel hashes, or why a file was skipped), one line per source file.
Replaying it rebuilds the parent's state exactly, which is how a rerun resumes where an interrupted
one stopped.

The workers' side (decoding, squaring, writing PNGs, the pool) is animegan/convert.py. No TensorFlow here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from animegan.convert import TEMP_PATTERN, Converted, Settings, converted_files, load_cascade
from animegan.errors import UserError
from animegan.files import IMAGE_SUFFIXES, atomic_path
from animegan.say import say

REPORT_NAME = "preprocess.json"
JOURNAL_NAME = "preprocess-journal.jsonl"


# ---------------------------------------------------------------- decisions, in the parent


def printable(name: str, errors: str = "backslashreplace") -> str:
    """A file name as text that any UTF-8 file or terminal takes: a byte that is not UTF-8 (a surrogate in the str
    os.listdir gives) becomes '\\xff', or with errors='replace' the replacement character."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", errors)


def output_stem(file: str, index: int, crop_faces: bool) -> str:
    """'sub/dir/a b.jpg' -> 'sub__dir__a b' (sub-folders flattened); its second face: 'sub__dir__a b-face2'.
    Bytes that are not UTF-8 become U+FFFD, so that every output has a name any tool can read."""
    stem = printable(os.path.splitext(file)[0], "replace").replace("/", "__")
    return f"{stem}-face{index + 1}" if crop_faces else stem


class Tally:
    """What the run has decided so far, file by file in source order. Replaying the journal rebuilds it exactly."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.done: set[str] = set()  # source files handled, relative to SRC
        self.names: list[str] = []  # output files written, in order
        self.taken: set[str] = set()  # their names casefolded: 'A.png' and 'a.png' are one file on macOS and Windows
        self.first_with: dict[str, str] = {}  # pixel hash -> the first output with those pixels
        self.duplicates: list[dict] = []
        self.skipped: list[dict] = []

    def limit_reached(self) -> bool:
        return 0 < self.settings.limit <= len(self.names)

    def add(self, record: dict) -> list[tuple[int, str]]:
        """Take one source file's journal record; return (output index, file name) for each image to write."""
        file = record["file"]
        self.done.add(file)
        if "skipped" in record:
            self.skipped.append({"file": file, "reason": record["skipped"], "detail": record.get("detail", "")})
            return []
        to_write = []
        for index, pixel_hash in enumerate(record["hashes"]):
            if self.limit_reached():
                break
            if self.settings.dedupe and pixel_hash in self.first_with:
                self.duplicates.append({"file": file, "same_as": self.first_with[pixel_hash]})
                continue
            name = self.free_name(output_stem(file, index, self.settings.crop_faces))
            self.names.append(name)
            self.taken.add(name.casefold())
            self.first_with.setdefault(pixel_hash, name)
            to_write.append((index, name))
        return to_write

    def free_name(self, stem: str) -> str:
        """'stem.png', or 'stem~2.png', 'stem~3.png'... when flattening made it collide with an earlier file."""
        name, n = f"{stem}.png", 1
        while name.casefold() in self.taken:
            n += 1
            name = f"{stem}~{n}.png"
        return name


def journal_record(file: str, stat: tuple[int, int], result: Converted) -> dict:
    """One source file's line in the journal, with its size and mtime: a file edited since is done again."""
    record = {"file": file, "size": stat[0], "mtime_ns": stat[1]}
    if result.skip_reason:
        return record | {"skipped": result.skip_reason, "detail": result.detail}
    return record | {"hashes": result.hashes}


def read_journal(path: Path) -> tuple[Settings, list[dict]] | None:
    """The settings and the records of the run logged in `path`, or None if there is no journal."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    try:
        settings = Settings(**json.loads(lines[0])["settings"])
        records = []
        for line in lines[1:]:
            try:
                records.append(json.loads(line))
            except ValueError:  # the line being written when a run was killed; that file is simply done again
                continue
        replay(settings, records)  # a record without its keys fails here, not halfway through a run
    except (IndexError, ValueError, KeyError, TypeError, AttributeError):
        raise UserError(f"'{path}' is damaged; delete it and the PNGs beside it to start that folder afresh") from None
    return settings, records


def replay(settings: Settings, records: list[dict]) -> Tally:
    tally = Tally(settings)
    for record in records:
        tally.add(record)
    return tally


def unchanged(record: dict, sources: dict[str, tuple[int, int]]) -> bool:
    """Whether the record's source file is still there as it was (records of old journals have no size: kept)."""
    stat = sources.get(record["file"])
    return stat is not None and ("size" not in record or stat == (record["size"], record["mtime_ns"]))


def open_journal(
    dst: Path, settings: Settings, overwrite: bool, sources: dict[str, tuple[int, int]]
) -> tuple[Tally, TextIO]:
    """The tally to continue from and the journal file to append to: DST's previous run's, or fresh ones.

    Records are replayed up to the first source file that is gone or was edited since: every later
    decision may hang on it (which copy is the duplicate, a '~2' name, the limit), so the files from
    there on are done again, and their images, ours by the journal, are removed first."""
    path = dst / JOURNAL_NAME
    journal = read_journal(path)
    if journal is not None and overwrite:
        for name in replay(*journal).names:
            (dst / name).unlink(missing_ok=True)
        journal = None
    if journal is None:
        path.write_text(json.dumps({"settings": dataclasses.asdict(settings)}) + "\n", encoding="utf-8")
        return Tally(settings), path.open("a", encoding="utf-8")
    old_settings, records = journal
    if old_settings != settings:
        old, new = dataclasses.asdict(old_settings), dataclasses.asdict(settings)
        key = next(k for k in old if old[k] != new[k])
        raise UserError(
            f"'{dst}' was made with {key}={old[key]!r}, not {new[key]!r}; "
            "add --overwrite to redo it, or choose another output folder"
        )
    kept = next((i for i, record in enumerate(records) if not unchanged(record, sources)), len(records))
    tally = replay(settings, records[:kept])
    if kept < len(records):
        for name in set(replay(settings, records).names) - set(tally.names):
            (dst / name).unlink(missing_ok=True)  # before the journal forgets them: a kill here redoes the same
        lines = [json.dumps({"settings": dataclasses.asdict(settings)})] + [json.dumps(r) for r in records[:kept]]
        with atomic_path(path) as tmp:
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif not path.read_bytes().endswith(b"\n"):
        with path.open("a", encoding="utf-8") as file:
            file.write("\n")  # end the line a killed run left half-written, so the next record starts clean
    # Buffered, not a write per record: a record is buffered only after its images have their final
    # names, so whatever reaches the file is finished work; a run killed outright loses at most the
    # unwritten tail, whose files the next run simply does again.
    return tally, path.open("a", encoding="utf-8")


# ---------------------------------------------------------------- the command


def list_source_files(src: Path, dst: Path) -> dict[str, tuple[int, int]]:
    """Every file under SRC, relative to it, sorted (each run sees them in the same order), with its size and mtime."""
    if not src.is_dir():
        raise UserError(f"source folder '{printable(str(src))}' not found; give the folder that holds your images")
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
        raise UserError(
            f"output folder '{printable(str(dst))}' is inside source folder '{printable(str(src))}', "
            "so it would be read back in; choose one outside it"
        )
    files = []
    for folder, _, names in os.walk(src):
        relative = Path(folder).relative_to(src).as_posix()  # '.' for SRC itself
        files += [name if relative == "." else f"{relative}/{name}" for name in names]
    if not any(file.lower().endswith(IMAGE_SUFFIXES) for file in files):
        raise UserError(
            f"no images in '{printable(str(src))}' (looked for {', '.join(IMAGE_SUFFIXES)} in every sub-folder); "
            "give the folder that holds them"
        )
    return {file: file_stat(src / file) for file in sorted(files)}


def file_stat(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError:  # a dangling link, or gone already: the worker reports it
        return -1, -1
    return stat.st_size, stat.st_mtime_ns


def remove_temp_files(dst: Path) -> None:
    for temp_file in dst.glob(TEMP_PATTERN):
        temp_file.unlink()


def available_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_preprocess(src: Path, dst: Path, cfg, overwrite: bool = False, show_progress: bool = True) -> dict:
    """Convert the images under SRC into DST; print a summary and return the report written to DST/preprocess.json."""
    started = time.perf_counter()
    src, dst = Path(src), Path(dst)
    settings = Settings.from_config(cfg)
    files = list_source_files(src, dst)
    if settings.crop_faces:
        load_cascade(settings.cascade)  # fail here, once, rather than in every worker
    try:
        dst.mkdir(parents=True, exist_ok=True)
        remove_temp_files(dst)  # a killed run's
        tally, journal = open_journal(dst, settings, overwrite, files)
    except OSError as exc:
        raise UserError(f"cannot write to output folder '{dst}': {exc.strerror}; choose a writable folder") from None

    todo = [] if tally.limit_reached() else [file for file in files if file not in tally.done]
    workers = min(cfg.preprocess.workers or available_cpus(), len(todo))
    paths = [os.path.join(src, file) for file in todo]
    read = 0
    try:
        # The pool starts before the progress bar's thread: forking a process that runs threads is unsafe.
        with (
            journal,
            converted_files(paths, settings, dst, workers) as results,
            tqdm(total=len(todo), unit="file", desc="preprocess", disable=not show_progress) as progress,
        ):
            for file, result in zip(todo, results):
                record = journal_record(file, files[file], result)
                kept = dict(tally.add(record))
                for index, temp_file in enumerate(result.temp_files):
                    if index in kept:
                        os.replace(temp_file, os.path.join(dst, kept[index]))
                    else:  # a duplicate, or past the limit
                        os.unlink(temp_file)
                journal.write(json.dumps(record) + "\n")  # after the renames: a logged file is a finished file
                read += 1
                progress.update()
                if tally.limit_reached():
                    break
    except OSError as exc:
        raise UserError(
            f"cannot write to output folder '{dst}': {exc.strerror}; check free space and permissions"
        ) from None
    finally:
        remove_temp_files(dst)  # the PNGs of files still in the pool when the run stopped

    report = make_report(src, tally, len(files), read, time.perf_counter() - started, workers)
    with atomic_path(dst / REPORT_NAME) as tmp:
        tmp.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if not tally.names:
        reasons = ", ".join(f"{n} {reason}" for reason, n in report["counts"]["skipped_by_reason"].items())
        raise UserError(
            f"none of the {len(files)} files in '{printable(str(src))}' gave an image ({reasons or 'none read'}); "
            f"see {printable(str(dst / REPORT_NAME))} for each file, then give a folder of readable images"
        )
    say(summary(report, dst), output=True)
    return report


def make_report(src: Path, tally: Tally, files_found: int, read: int, seconds: float, workers: int) -> dict:
    """Settings and counts of everything in DST (earlier runs included), this run's speed, every file left out."""
    return {
        "source": printable(str(src)),
        "settings": dataclasses.asdict(tally.settings),
        "counts": {
            "files": files_found,
            "read": len(tally.done),
            "written": len(tally.names),
            "duplicates": len(tally.duplicates),
            "skipped": len(tally.skipped),
            "skipped_by_reason": dict(sorted(Counter(s["reason"] for s in tally.skipped).items())),
            "limit_reached": tally.limit_reached(),
        },
        "last_run": {
            "read": read,
            "workers": workers,
            "seconds": round(seconds, 3),
            "files_per_second": round(read / seconds, 1),
        },
        # Names that are not UTF-8 as '\\xff': the report is UTF-8 JSON for people and tools alike.
        "skipped": [{key: printable(value) for key, value in entry.items()} for entry in tally.skipped],
        "duplicates": [{key: printable(value) for key, value in entry.items()} for entry in tally.duplicates],
    }


def summary(report: dict, dst: Path) -> str:
    counts, run = report["counts"], report["last_run"]
    reasons = ", ".join(f"{n} {reason}" for reason, n in counts["skipped_by_reason"].items())
    limit = f" (the limit, {report['settings']['limit']})" if counts["limit_reached"] else ""
    return (
        f"read {run['read']} files in {run['seconds']:.1f} s, {run['files_per_second']:.0f} per second\n"
        f"{printable(str(dst))}: {counts['written']} images{limit}; {counts['duplicates']} duplicates dropped; "
        f"{counts['skipped']} files skipped{f' ({reasons})' if reasons else ''}; "
        f"details in {printable(str(dst / REPORT_NAME))}"
    )
