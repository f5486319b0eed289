"""Load a preprocessed folder into one uint8 array (cached), and feed it to training with tf.data."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from animegan.errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
CACHE_DIR = ".animegan-cache"


def list_images(folder: Path) -> list[Path]:
    """The training images of a folder, in sorted order (not recursive: preprocess writes a flat folder)."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


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
        digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
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


def load_images(folder: Path, size: int, channels: int, limit: int = 0, show_progress: bool = True, cache: bool = True) -> np.ndarray:
    """The first `limit` (0 = all) images of `folder` as uint8 (N, size, size, channels), in file-name order.

    With `cache`, the array is kept beside the data (one file, replaced when the images change), so
    the next training start skips decoding.
    """
    folder = Path(folder)
    paths = find_images(folder, limit)
    cache_file = folder / CACHE_DIR / f"images-{fingerprint(paths)}-{size}x{size}x{channels}.npy"
    if cache and cache_file.is_file():
        try:
            return np.load(cache_file)
        except (OSError, ValueError):
            cache_file.unlink(missing_ok=True)  # a damaged cache is rebuilt, never trusted

    images = np.empty((len(paths), size, size, channels), dtype=np.uint8)
    with ThreadPoolExecutor() as pool:  # cv2 releases the GIL while decoding
        decoded = pool.map(_read, paths)
        for i, (path, image) in enumerate(tqdm(zip(paths, decoded), total=len(paths), desc="loading images", unit="img", disable=not show_progress)):
            if image is None:
                raise UserError(f"cannot decode '{path}'; delete it or re-run `animegan preprocess`")
            stored = image.shape[2]
            if image.shape[:2] != (size, size) or stored not in (channels, channels + 1):
                raise UserError(
                    f"'{path}' is {image.shape[1]}x{image.shape[0]} {_describe(min(stored, 3))} but the config wants "
                    f"{size}x{size} {_describe(channels)}; re-run `animegan preprocess SRC {folder} --size {size} "
                    f"--{'grayscale' if channels == 1 else 'color'} --overwrite`, or change data.size/data.channels"
                )
            images[i] = _to_channels(image, channels)
    if cache:
        _write_cache(cache_file, images)
    return images


def _write_cache(cache: Path, images: np.ndarray) -> None:
    """Best effort: a read-only data folder just means no cache."""
    try:
        cache.parent.mkdir(exist_ok=True)
        for stale in cache.parent.glob("images-*.npy"):
            stale.unlink()
        tmp = cache.with_suffix(".tmp.npy")
        np.save(tmp, images)
        tmp.replace(cache)
    except OSError:
        pass


def epoch_order(num_images: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled image order of one epoch: a function of (seed, epoch) alone, so a resume replays it."""
    return np.random.default_rng([seed, epoch]).permutation(num_images)


def epoch_dataset(images, batch_size: int, seed: int, epoch: int, skip_batches: int = 0):
    """One epoch of batches of uint8 images, shuffled, whole batches only (static shapes), prefetched.

    `images` is a tf.Tensor holding the data set; batches are gathered from shuffled indices, which
    costs one gather per batch instead of per-image work in a shuffle buffer.

    `batch_size` is the global batch. strategy.experimental_distribute_dataset splits each batch
    between the replicas; with several workers, each builds this same pipeline and TensorFlow's
    auto-sharding keeps every worker's own share of each batch. DATA sharding is named outright:
    the images are one tensor, not files to divide.
    """
    import tensorflow as tf

    order = epoch_order(int(images.shape[0]), seed, epoch)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return (
        tf.data.Dataset.from_tensor_slices(order)
        .batch(batch_size, drop_remainder=True)
        .skip(skip_batches)
        .map(lambda index: tf.gather(images, index), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
        .with_options(options)
    )
