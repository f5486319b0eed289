"""One source file into same-size PNGs, in a `preprocess` worker: decode, make square, resize, write; and the pool.

Pillow decodes and resizes: its JPEG "draft" mode is libjpeg's reduced-resolution decoding (the
same as OpenCV's IMREAD_REDUCED_*), it refuses truncated files where OpenCV fills them with grey,
and it reads every pixel format. OpenCV (and numpy) load only for --crop-faces. No TensorFlow here.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import multiprocessing
import os
import signal
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from PIL import Image, ImageOps

from animegan.errors import UserError
from animegan.files import IMAGE_SUFFIXES

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


def start_worker(parent: int) -> None:
    """Worker start-up. Ctrl-C reaches every process of the terminal; the parent alone handles it and stops the pool.
    A worker whose parent is gone (killed outright) exits quietly, instead of printing a BrokenPipeError
    traceback when it sends its next result: a write to the dead parent's pipe ends it with SIGPIPE (the
    default, which Python turns off), and a watcher ends one that waits on another worker's lock."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    threading.Thread(target=exit_with_parent, args=(parent,), daemon=True, name="parent-watcher").start()


def exit_with_parent(parent: int, every: float = 0.25) -> None:
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(0)


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
    with multiprocessing.Pool(workers, initializer=start_worker, initargs=(os.getpid(),)) as pool:
        yield pool.imap(convert, paths, chunksize=chunksize)
