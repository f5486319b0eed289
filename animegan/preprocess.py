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

Pillow decodes and resizes: its JPEG "draft" mode is libjpeg's reduced-resolution decoding (the
same as OpenCV's IMREAD_REDUCED_*), it refuses truncated files where OpenCV fills them with grey,
and it reads every pixel format. OpenCV (and numpy) load only for --crop-faces. No TensorFlow here.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import multiprocessing
import os
import signal
import struct
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TextIO

from PIL import Image, ImageOps
from tqdm import tqdm

from animegan.errors import UserError
from animegan.files import atomic_path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")
REPORT_NAME = "preprocess.json"
JOURNAL_NAME = "preprocess-journal.jsonl"
TEMP_PATTERN = ".*.png.tmp"  # a worker's PNG before the parent keeps it; the trainer skips dot-files
temp_numbers = itertools.count()  # with the process id, a unique temp name for each PNG a process writes


@dataclass(frozen=True)
class Settings:
    """Everything that decides which images land in DST and how they look (not how fast)."""

    size: int
    channels: int
    fit: str
    limit: int
    dedupe: bool
    crop_faces: bool
    cascade: str | None
    face_margin: float | None

    @classmethod
    def from_config(cls, cfg) -> Settings:
        faces = cfg.preprocess.crop_faces
        return cls(
            size=cfg.data.size,
            channels=cfg.data.channels,
            fit=cfg.preprocess.fit,
            limit=cfg.data.limit,
            dedupe=cfg.preprocess.dedupe,
            crop_faces=faces,
            # Left out without face crops, so that changing them then does not block resuming.
            cascade=cfg.preprocess.cascade if faces else None,
            face_margin=cfg.preprocess.face_margin if faces else None,
        )


# ---------------------------------------------------------------- one file, in a worker


class Converted(NamedTuple):
    """What a worker sends back for one source file."""

    temp_files: list[str]  # one PNG in DST per output image (per face with --crop-faces); empty when skipped
    hashes: list[str]  # the pixel hash of each of those images, for dedupe
    skip_reason: str = ""
    detail: str = ""  # the decoder's complaint, for the report


def convert_file(settings: Settings, dst: str, path: str) -> Converted:
    """Decode one source file into its output images in DST. A bad file gives a skip reason, never an exception."""
    if not path.lower().endswith(IMAGE_SUFFIXES):
        return Converted([], [], "unsupported file type")
    try:
        if os.path.getsize(path) == 0:
            return Converted([], [], "empty file")
        picture = decode(path, settings)
    except Exception as exc:  # damaged files make decoders raise all sorts: OSError, SyntaxError, ValueError...
        return Converted([], [], "cannot decode", f"{type(exc).__name__}: {exc}")
    pictures = face_crops(picture, settings) if settings.crop_faces else [picture]
    if not pictures:
        return Converted([], [], "no face found")
    squares = [to_square(p, settings.size, settings.fit) for p in pictures]
    return Converted([write_temp_png(s, dst) for s in squares], [pixel_hash(s) for s in squares])


def decode(path: str, settings: Settings) -> Image.Image:
    """The picture in `path` (its first frame), upright, as 8-bit 'L' or 'RGB', transparency flattened onto white."""
    mode = "RGB" if settings.channels == 3 else "L"
    with Image.open(path) as image:
        if not settings.crop_faces:  # faces can be small, so face crops want every pixel
            # JPEG only: libjpeg decodes at 1/2, 1/4 or 1/8 scale while both sides stay >= size.
            image.draft(mode, (settings.size, settings.size))
        ImageOps.exif_transpose(image, in_place=True)  # this loads the pixels, so damage shows up here
    if image.mode.startswith("I"):
        # 16-bit grey: Pillow's own conversion to 8 bits clips at 255 instead of scaling.
        image = image.point(lambda value: value / 257 + 0.5)
    if image.has_transparency_data:
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA"))
    return image if image.mode == mode else image.convert(mode)


def to_square(picture: Image.Image, size: int, fit: str) -> Image.Image:
    """Make `picture` size x size: crop its centre, pad it with white, or stretch it."""
    width, height = picture.size
    if width != height and fit == "crop":
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        picture = picture.crop((left, top, left + side, top + side))
    elif width != height and fit == "pad":
        side = max(width, height)
        padded = Image.new(picture.mode, (side, side), "white")
        padded.paste(picture, ((side - width) // 2, (side - height) // 2))
        picture = padded
    # BOX is area averaging: every source pixel counts, so shrinking does not alias.
    shrinking = min(picture.size) >= size
    return picture.resize((size, size), Image.Resampling.BOX if shrinking else Image.Resampling.BICUBIC)


def write_temp_png(picture: Image.Image, dst: str) -> str:
    """Write `picture` as a PNG under a fresh temp name in DST; return that name."""
    path = os.path.join(dst, f".{os.getpid()}-{next(temp_numbers)}.png.tmp")  # matches TEMP_PATTERN
    with open(path, "wb") as file:
        file.write(png_bytes(picture))
    return path


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_COLOUR_TYPES = {"L": 0, "RGB": 2}  # 8 bits a sample


def png_bytes(picture: Image.Image) -> bytes:
    """`picture` ('L' or 'RGB') as a PNG file whose pixel data is stored, not deflated.

    Deflating (Pillow's encoder at its fastest level, zlib level 1) took more CPU per image than the
    reduced JPEG decode before it: about 0.1 ms for a 56x56 grey image, 0.3 ms for 64x64 RGB, which
    made preprocess spend more CPU per image than the loop it replaces. Stored, the files are 25-35%
    larger, yet a 56x56 grey image still fits one 4 KB disk block, and data.py reads them faster.
    Only the source's pixels are written: no metadata (ICC profile, transparency key) comes along.
    """
    width, height = picture.size
    row = width * len(picture.getbands())
    # Every row of PNG pixel data starts with its filter type; 0 leaves the row's bytes as they are.
    rows = Image.new("L", (row + 1, height), 0)
    rows.paste(Image.frombytes("L", (row, height), picture.tobytes()), (1, 0))
    header = struct.pack(">IIBBBBB", width, height, 8, PNG_COLOUR_TYPES[picture.mode], 0, 0, 0)
    return (
        PNG_SIGNATURE
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(rows.tobytes(), 0))
        + png_chunk(b"IEND", b"")
    )


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def pixel_hash(picture: Image.Image) -> str:
    return hashlib.blake2b(picture.tobytes(), digest_size=16).hexdigest()


def face_crops(picture: Image.Image, settings: Settings) -> list[Image.Image]:
    """One crop per face the cascade finds, widened by face_margin on every side (within the picture)."""
    import cv2  # only face crops need OpenCV and numpy; the default path starts faster without them
    import numpy as np

    grey = cv2.equalizeHist(np.asarray(picture.convert("L")))
    # The detection settings lbpcascade_animeface's author recommends.
    faces = load_cascade(settings.cascade).detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
    crops = []
    for left, top, width, height in sorted(tuple(map(int, face)) for face in faces):  # face1 is the leftmost
        margin = round(settings.face_margin * max(width, height))
        box = (left - margin, top - margin, left + width + margin, top + height + margin)
        crops.append(
            picture.crop((max(box[0], 0), max(box[1], 0), min(box[2], picture.width), min(box[3], picture.height)))
        )
    return crops


@functools.cache
def load_cascade(path: str):
    """The OpenCV cascade classifier in `path`, loaded once per process."""
    import cv2

    if not Path(path).is_file():
        raise UserError(
            f"cascade file '{path}' not found; download lbpcascade_animeface.xml "
            "(github.com/nagadomi/lbpcascade_animeface) and pass its path to --cascade"
        )
    try:
        cascade = cv2.CascadeClassifier(path)
    except (cv2.error, SystemError):  # OpenCV raises on files that are not XML at all
        cascade = None
    if cascade is None or cascade.empty():
        raise UserError(
            f"'{path}' is not an OpenCV cascade XML file; pass one such as lbpcascade_animeface.xml to --cascade"
        )
    return cascade


def ignore_ctrl_c() -> None:
    """Worker start-up: Ctrl-C reaches every process of the terminal; the parent alone handles it and stops the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def converted_files(paths: list[str], settings: Settings, dst: Path, workers: int) -> Iterator[Iterator[Converted]]:
    """Each path's Converted result, in order: in this process for one worker, else from a pool started once
    (and stopped on leaving the block, also when the caller stops early)."""
    convert = functools.partial(convert_file, settings, str(dst))
    if workers <= 1:
        yield map(convert, paths)
        return
    # Chunks save pipe round trips (a file takes about a millisecond); 4 per worker or more keep all busy to the end.
    chunksize = max(1, min(32, len(paths) // (4 * workers)))
    with multiprocessing.Pool(workers, initializer=ignore_ctrl_c) as pool:
        yield pool.imap(convert, paths, chunksize=chunksize)


# ---------------------------------------------------------------- decisions, in the parent


def output_stem(file: str, index: int, crop_faces: bool) -> str:
    """'sub/dir/a b.jpg' -> 'sub__dir__a b' (sub-folders flattened); its second face: 'sub__dir__a b-face2'."""
    stem = os.path.splitext(file)[0].replace("/", "__")
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


def journal_record(file: str, result: Converted) -> dict:
    if result.skip_reason:
        return {"file": file, "skipped": result.skip_reason, "detail": result.detail}
    return {"file": file, "hashes": result.hashes}


def read_journal(path: Path) -> Tally | None:
    """The tally of the run logged in `path`, or None if there is no journal."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return None
    try:
        tally = Tally(Settings(**json.loads(lines[0])["settings"]))
    except (IndexError, ValueError, KeyError, TypeError):
        raise UserError(f"'{path}' is damaged; delete it and the PNGs beside it to start that folder afresh") from None
    for line in lines[1:]:
        try:
            record = json.loads(line)
        except ValueError:  # the line being written when a run was killed; that file is simply done again
            continue
        tally.add(record)
    return tally


def open_journal(dst: Path, settings: Settings, overwrite: bool) -> tuple[Tally, TextIO]:
    """The tally to continue from and the journal file to append to: DST's previous run's, or fresh ones."""
    path = dst / JOURNAL_NAME
    tally = read_journal(path)
    if tally is not None and overwrite:
        for name in tally.names:
            (dst / name).unlink(missing_ok=True)
        tally = None
    if tally is None:
        path.write_text(json.dumps({"settings": dataclasses.asdict(settings)}) + "\n", encoding="utf-8")
        tally = Tally(settings)
    elif tally.settings != settings:
        old, new = dataclasses.asdict(tally.settings), dataclasses.asdict(settings)
        key = next(k for k in old if old[k] != new[k])
        raise UserError(
            f"'{dst}' was made with {key}={old[key]!r}, not {new[key]!r}; add --overwrite to redo it, or choose another output folder"
        )
    elif not path.read_bytes().endswith(b"\n"):
        with path.open("a", encoding="utf-8") as journal:
            journal.write("\n")  # end the line a killed run left half-written, so the next record starts clean
    # Buffered, not a write per record: a record is buffered only after its images have their final
    # names, so whatever reaches the file is finished work; a run killed outright loses at most the
    # unwritten tail, whose files the next run simply does again.
    return tally, path.open("a", encoding="utf-8")


# ---------------------------------------------------------------- the command


def list_source_files(src: Path, dst: Path) -> list[str]:
    """Every file under SRC, relative to it, sorted: each run sees them in the same order."""
    if not src.is_dir():
        raise UserError(f"source folder '{src}' not found; give the folder that holds your images")
    if dst.resolve() == src.resolve() or src.resolve() in dst.resolve().parents:
        raise UserError(
            f"output folder '{dst}' is inside source folder '{src}', so it would be read back in; choose one outside it"
        )
    files = []
    for folder, _, names in os.walk(src):
        relative = Path(folder).relative_to(src).as_posix()  # '.' for SRC itself
        files += [name if relative == "." else f"{relative}/{name}" for name in names]
    files.sort()
    if not any(file.lower().endswith(IMAGE_SUFFIXES) for file in files):
        raise UserError(
            f"no images in '{src}' (looked for {', '.join(IMAGE_SUFFIXES)} in every sub-folder); give the folder that holds them"
        )
    return files


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
        tally, journal = open_journal(dst, settings, overwrite)
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
                record = journal_record(file, result)
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
    print(summary(report, dst))
    return report


def make_report(src: Path, tally: Tally, files_found: int, read: int, seconds: float, workers: int) -> dict:
    """Settings and counts of everything in DST (earlier runs included), this run's speed, every file left out."""
    return {
        "source": str(src),
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
        "skipped": tally.skipped,
        "duplicates": tally.duplicates,
    }


def summary(report: dict, dst: Path) -> str:
    counts, run = report["counts"], report["last_run"]
    reasons = ", ".join(f"{n} {reason}" for reason, n in counts["skipped_by_reason"].items())
    limit = f" (the limit, {report['settings']['limit']})" if counts["limit_reached"] else ""
    return (
        f"read {run['read']} files in {run['seconds']:.1f} s, {run['files_per_second']:.0f} per second\n"
        f"{dst}: {counts['written']} images{limit}; {counts['duplicates']} duplicates dropped; "
        f"{counts['skipped']} files skipped{f' ({reasons})' if reasons else ''}; details in {dst / REPORT_NAME}"
    )
