"""Decode a preprocessed folder once into a uint8 cache file, memory-map it, and feed it to training with tf.data.

The cache is one .npy file (N, size, size, channels) beside the data, in .animegan-cache/, or in
data.cache_dir. It is written once, in chunks, so building it needs little memory whatever the
set's size; load_images returns it memory-mapped, not loaded, and the training pipeline reads each
batch's images from the file (the OS page cache keeps what fits in memory), so the trainer's
resident memory stays flat however large the set.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import itertools
import mmap
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from animegan.errors import UserError
from animegan.files import IMAGE_SUFFIXES, atomic_path

CACHE_DIR = ".animegan-cache"
CHUNK = 1024  # images decoded before they are written to the cache: bounds a build's memory


def list_images(folder: Path) -> list[Path]:
    """The training images of a folder, in sorted order (not recursive: preprocess writes a flat folder)."""
    return sorted(
        p for p in Path(folder).iterdir() if p.name.lower().endswith(IMAGE_SUFFIXES) and not p.name.startswith(".")
    )


def find_images(folder: Path, limit: int = 0) -> list[Path]:
    """The first `limit` (0 = all) images of a preprocessed folder; a missing or empty folder is a UserError."""
    folder = Path(folder)
    hint = f"run `animegan preprocess YOUR_IMAGES/ {folder}` first, or point at another folder"
    if not folder.is_dir():
        raise UserError(f"data folder '{folder}' does not exist; {hint}")
    paths = list_images(folder)
    if not paths:
        raise UserError(f"data folder '{folder}' holds no images; {hint}")
    return paths[:limit] if limit else paths


def fingerprint(paths: list[Path], *settings) -> str:
    """Changes whenever a file is added, removed, renamed or rewritten, or any of `settings` changes."""
    digest = hashlib.sha1()
    for path in paths:
        stat = path.stat()
        # The name as bytes: a name that is not UTF-8 (say, byte 0xff) is a str with surrogates.
        digest.update(os.fsencode(path.name) + f"\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    digest.update("\0".join(map(str, settings)).encode())
    return digest.hexdigest()[:16]


def _describe(channels: int) -> str:
    return "grayscale" if channels == 1 else "RGB"


def _read(path: Path) -> np.ndarray | None:
    """Decode a file as stored: HWC uint8 with the file's own channels (BGR order), or None."""
    data = np.fromfile(str(path), dtype=np.uint8)  # np.fromfile copes with unicode paths everywhere
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        return None
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    return image[..., None] if image.ndim == 2 else image


def _to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Gray(+alpha) to 1 channel, BGR(A) to RGB; an alpha channel is dropped (preprocess composites it)."""
    if channels == 1:
        return image[..., :1]
    return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)


def load_images(
    folder: Path,
    size: int,
    channels: int,
    limit: int = 0,
    show_progress: bool = True,
    cache: bool = True,
    cache_dir: Path | None = None,
) -> np.ndarray:
    """The first `limit` (0 = all) images of `folder` as uint8 (N, size, size, channels), in file-name order.

    With `cache`, a read-only np.memmap of the cache file in `cache_dir` (default: the folder's
    .animegan-cache/), decoded into it first when there is none for exactly these files. Without,
    an array in memory.
    """
    folder = Path(folder)
    paths = find_images(folder, limit)
    shape = (len(paths), size, size, channels)
    chunks = _decoded_chunks(paths, folder, size, channels, show_progress)
    if not cache:
        images = np.empty(shape, np.uint8)
        for start, chunk in zip(range(0, len(paths), CHUNK), chunks):
            images[start : start + len(chunk)] = chunk
        return images
    path = _cache_folder(folder, cache_dir) / f"images-{fingerprint(paths)}-{size}x{size}x{channels}.npy"
    images = _open_cache(path, shape)
    return images if images is not None else _write_cache(path, shape, chunks)


def _cache_folder(folder: Path, cache_dir: Path | None) -> Path:
    """folder/.animegan-cache/, or a sub-folder of `cache_dir` for this data folder alone: a build
    deletes the other caches in its folder, and two data sets sharing data.cache_dir must not
    delete each other's. A data folder we may not write to (a shared or read-only mount) gets its
    cache in the user's cache folder instead of an error."""
    if cache_dir is None:
        local = folder / CACHE_DIR
        if _writable(local if local.is_dir() else folder):
            return local
        cache_dir = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "animegan"
    resolved = folder.resolve()
    return Path(cache_dir) / f"{resolved.name}-{hashlib.sha1(str(resolved).encode()).hexdigest()[:8]}"


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


def _decoded_chunks(
    paths: list[Path], folder: Path, size: int, channels: int, show_progress: bool
) -> Iterator[np.ndarray]:
    """The images of `paths` in order, checked and converted, CHUNK at a time; a wrong file is a UserError."""
    with (
        ThreadPoolExecutor() as pool,
        tqdm(total=len(paths), desc="decoding images", unit="img", disable=not show_progress) as bar,
    ):
        for start in range(0, len(paths), CHUNK):
            part = paths[start : start + CHUNK]
            chunk = np.empty((len(part), size, size, channels), np.uint8)
            for i, (path, image) in enumerate(zip(part, pool.map(_read, part))):  # cv2 releases the GIL while decoding
                if image is None:
                    raise UserError(f"cannot decode '{path}'; delete it or re-run `animegan preprocess`")
                stored = image.shape[2]
                if image.shape[:2] != (size, size) or stored not in (channels, channels + 1):
                    raise UserError(
                        f"'{path}' is {image.shape[1]}x{image.shape[0]} {_describe(min(stored, 3))} "
                        f"but the config wants {size}x{size} {_describe(channels)}; "
                        f"re-run `animegan preprocess SRC {folder} --size {size} "
                        f"--{'grayscale' if channels == 1 else 'color'} --overwrite`, or change data.size/data.channels"
                    )
                chunk[i] = _to_channels(image, channels)
            bar.update(len(part))
            yield chunk


def _open_cache(path: Path, shape: tuple) -> np.memmap | None:
    """The cache file memory-mapped read-only; None if it is missing, damaged or not `shape` uint8 (then it is
    rebuilt)."""
    try:
        file = open(path, "rb")
    except OSError:
        return None
    try:
        fcntl.flock(file, fcntl.LOCK_SH)  # tells _remove_stale that this cache is being read
        return _mapped(file, path, shape)
    except (OSError, ValueError):
        file.close()
        return None


def _mapped(file, path: Path, shape: tuple) -> np.memmap:
    """A read-only np.memmap of the .npy file open in `file`, which it keeps open (and locked) for as long as it lives.

    Every later read goes through this file handle, never through the name: another trainer's
    build may remove the name (see _remove_stale), and what is open stays readable after that.
    """
    file.seek(0)
    version = np.lib.format.read_magic(file)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    stored_shape, fortran_order, dtype = read_header(file)
    if stored_shape != tuple(shape) or dtype != np.uint8 or fortran_order:
        raise ValueError(f"{path} holds {stored_shape} {dtype}, not {shape} uint8")
    images = np.memmap(file, dtype=np.uint8, mode="r", shape=tuple(shape), offset=file.tell())
    images.filename = str(Path(path).resolve())  # the cache's name, also when `file` was opened under a temp name
    images.cache_file = file  # keeps the handle (and its lock) open while the array or a view of it lives
    return images


def _write_cache(path: Path, shape: tuple, chunks: Iterator[np.ndarray]) -> np.memmap:
    """Write the .npy file chunk by chunk under a temp name, renamed to `path` only once complete; return it mapped.

    Plain writes, not a writable memory map: on a full disk a write raises ENOSPC, where a store
    into a mapped page kills the process with SIGBUS.
    """
    elsewhere = "set data.cache_dir to a folder on a disk with room"
    nbytes = int(np.prod(shape))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(path)
        free = shutil.disk_usage(path.parent).free
    except OSError as exc:
        raise UserError(
            f"cannot write the image cache in '{path.parent}' ({exc.strerror}); set data.cache_dir to a writable folder"
        ) from None
    if free < nbytes:
        raise UserError(
            f"the image cache needs {nbytes / 1e9:.2f} GB in '{path.parent}' "
            f"but that disk has {free / 1e9:.2f} GB free; "
            f"free {(nbytes - free) / 1e9:.2f} GB there or {elsewhere}"
        )
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False, "shape": shape})
    with atomic_path(path) as tmp:
        file = open(tmp, "w+b")  # kept open after the rename: the returned memory map reads through it
        try:
            fcntl.flock(file, fcntl.LOCK_EX)  # tells _remove_stale that this temp file is being written
            for piece in itertools.chain([header.getvalue()], chunks):  # the images decode here, outside the try
                try:
                    file.write(piece)
                except OSError as exc:
                    reason = "the disk is full" if exc.errno == errno.ENOSPC else exc.strerror
                    raise UserError(
                        f"cannot write the image cache '{path}' ({reason}; it needs {nbytes / 1e9:.2f} GB); "
                        f"free that much there or {elsewhere}"
                    ) from None
            file.flush()
        except BaseException:
            file.close()
            raise
    fcntl.flock(file, fcntl.LOCK_SH)  # now a cache being read, like any _open_cache
    return _mapped(file, path, shape)


def _remove_stale(keep: Path) -> None:
    """Delete the folder's other image caches (older fingerprints: the images changed) and the temp
    files of killed builds, before a new cache needs the room. A cache that a trainer still reads,
    or a temp file whose build still runs, is locked and left alone (a later build removes it)."""
    stale = [cache for cache in keep.parent.glob("images-*.npy") if cache != keep]
    for path in stale + list(keep.parent.glob(".images-*.tmp")):
        try:
            with open(path, "rb") as file:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                path.unlink()
        except OSError:  # locked by its reader or its build, or gone already
            continue


def _read_at(fd: int, row: np.ndarray, start: int) -> int:
    """Read into `row` from byte `start` of `fd` without moving its offset (threads share the handle)."""
    if hasattr(os, "preadv"):
        return os.preadv(fd, [row], start)
    data = os.pread(fd, row.nbytes, start)
    row.reshape(-1)[: len(data)] = np.frombuffer(data, np.uint8)
    return len(data)


def epoch_order(num_images: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled image order of one epoch: a function of (seed, epoch) alone, so a resume replays it."""
    return np.random.default_rng([seed, epoch]).permutation(num_images)


def _file_gather(images: np.memmap):
    """A function index -> images[index] that reads the rows from the cache file instead of through its mapping.

    Mapped file pages count in the process's resident memory, and Linux maps a page-cache folio
    whole (up to 2 MB) on the first touch: reading a random tenth of the 48 KB images of a 0.98 GB
    cache through the mapping made 0.92 GB of it resident. Unmapping after
    every batch (madvise) kept it down but cost twice the gather's CPU; plain reads into the batch
    cost 1.6 times a gather from memory and leave the resident memory at one batch. Rows are read
    in file order, which a disk (or the OS's readahead) serves better than a random order.
    """
    path, offset, row_bytes = images.filename, images.offset, images[0].nbytes
    cache_file = getattr(images, "cache_file", None)  # load_images' arrays read through their own handle

    def read_rows(fd: int, rows: list[np.ndarray], starts: list[int], order: list[int]) -> None:
        for position in order:
            if _read_at(fd, rows[position], starts[position]) != row_bytes:
                raise EOFError(f"image cache '{path}' was cut short while training read it; delete it and train again")

    def gather(index: np.ndarray) -> np.ndarray:
        batch = np.empty((len(index), *images.shape[1:]), np.uint8)
        rows, starts = list(batch), (offset + index.astype(np.int64) * row_bytes).tolist()
        order = np.argsort(index).tolist()
        if cache_file is not None:
            read_rows(cache_file.fileno(), rows, starts, order)
        else:
            with open(path, "rb", buffering=0) as file:
                read_rows(file.fileno(), rows, starts, order)
        return batch

    return gather


def epoch_dataset(images: np.ndarray, batch_size: int, seed: int, epoch: int, skip_batches: int = 0):
    """One epoch of batches of uint8 images, shuffled, whole batches only (static shapes), prefetched.

    `images` is a numpy array, usually load_images' memory-mapped cache, whose batches are read
    from the file (see _file_gather); each batch is gathered by shuffled indices in one call, a few
    batches in parallel.

    `batch_size` is the global batch. strategy.experimental_distribute_dataset splits each batch
    between the replicas; with several workers, each builds this same pipeline and TensorFlow's
    auto-sharding keeps every worker's own share of each batch. DATA sharding is named outright:
    the images are one array, not files to divide.
    """
    import tensorflow as tf

    order = epoch_order(len(images), seed, epoch)
    whole_file = isinstance(images, np.memmap) and isinstance(images.base, mmap.mmap)  # not a view of one
    gather = _file_gather(images) if whole_file else images.__getitem__

    def read_batch(index):
        batch = tf.numpy_function(gather, [index], tf.uint8, stateful=False)
        return tf.ensure_shape(batch, (batch_size, *images.shape[1:]))

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return (
        tf.data.Dataset.from_tensor_slices(order)
        .batch(batch_size, drop_remainder=True)
        .skip(skip_batches)
        .map(read_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
        .with_options(options)
    )
