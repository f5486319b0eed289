"""The decoded-image cache (built once, memory-mapped, rebuilt when the images change, never trusted
half-written) and the tf.data pipeline that gathers batches from it."""

from __future__ import annotations

import errno
import fcntl
import os
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import write_blob_faces

import animegan.data as data
from animegan.data import CACHE_DIR, epoch_dataset, epoch_order, load_images
from animegan.errors import UserError


@pytest.fixture
def face(tmp_path):
    return write_blob_faces(tmp_path / "face", n=40)


def caches(folder):
    return sorted(p.name for p in (folder / CACHE_DIR).iterdir())


def no_decoding(monkeypatch):
    def refuse(path):
        raise AssertionError(f"decoded {path} again")

    monkeypatch.setattr(data, "_read", refuse)


def test_the_cache_is_built_once_and_then_mapped_without_decoding(face, monkeypatch):
    first = load_images(face, 16, 1)
    assert isinstance(first, np.memmap) and not first.flags.writeable
    assert first.shape == (40, 16, 16, 1)
    assert np.array_equal(first, load_images(face, 16, 1, cache=False))
    (cache,) = (face / CACHE_DIR).glob("images-*.npy")
    assert str(first.filename) == str(cache.resolve())

    no_decoding(monkeypatch)
    again = load_images(face, 16, 1)
    assert again.filename == first.filename and np.array_equal(again, first)


@pytest.mark.parametrize("change", ["rewrite", "add"])
def test_changed_or_added_images_rebuild_the_cache(face, monkeypatch, change):
    load_images(face, 16, 1)
    old = caches(face)
    if change == "rewrite":
        cv2.imwrite(str(face / "img_0003.png"), np.full((16, 16), 7, np.uint8))
    else:
        cv2.imwrite(str(face / "img_9999.png"), np.full((16, 16), 7, np.uint8))
    images = load_images(face, 16, 1)
    assert np.all(images[3 if change == "rewrite" else -1] == 7)
    assert len(images) == (40 if change == "rewrite" else 41)
    assert len(caches(face)) == 1 and caches(face) != old  # the stale cache is gone

    no_decoding(monkeypatch)
    assert np.array_equal(load_images(face, 16, 1), images)


def test_a_damaged_cache_is_rebuilt(face):
    images = np.array(load_images(face, 16, 1))
    (cache,) = (face / CACHE_DIR).glob("images-*.npy")
    cache.write_bytes(cache.read_bytes()[:1000])  # cut short, as by a copy that failed
    assert np.array_equal(load_images(face, 16, 1), images)


def test_a_data_folder_we_may_not_write_caches_in_the_users_cache(face, tmp_path, monkeypatch):
    import animegan.data as data

    monkeypatch.setattr(data, "_writable", lambda path: False)  # as a read-only mount (root may write anywhere)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    images = load_images(face, 16, 1)
    assert not (face / CACHE_DIR).exists()
    assert Path(images.filename).is_relative_to((tmp_path / "user-cache" / "animegan").resolve())
    assert np.array_equal(images, load_images(face, 16, 1, cache=False))


def test_cache_dir_holds_a_cache_per_data_folder(face, tmp_path):
    other = write_blob_faces(tmp_path / "other" / "face", n=12, seed=1)  # the same folder name elsewhere
    first = load_images(face, 16, 1, cache_dir=tmp_path / "caches")
    second = load_images(other, 16, 1, cache_dir=tmp_path / "caches")
    assert not (face / CACHE_DIR).exists()
    for images in (first, second):
        assert Path(images.filename).is_relative_to((tmp_path / "caches").resolve())
    assert len(list((tmp_path / "caches").glob("*/images-*.npy"))) == 2  # neither build deleted the other's


class FullDisk:
    """A file whose writes fail with ENOSPC once `room` bytes are written, as on a disk that fills up."""

    def __init__(self, file, room: int):
        self.file, self.room = file, room

    def write(self, piece):
        self.room -= memoryview(piece).nbytes
        if self.room < 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.file.write(piece)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self.file.__exit__(*exc)


def test_a_full_disk_is_a_one_line_error_and_leaves_no_cache(face, monkeypatch):
    monkeypatch.setattr(data, "CHUNK", 8)  # several writes, so the disk fills up halfway
    monkeypatch.setattr(data, "open", lambda *args: FullDisk(open(*args), room=3000), raising=False)
    with pytest.raises(UserError) as error:
        load_images(face, 16, 1)
    message = str(error.value)
    assert str(face / CACHE_DIR) in message and "disk is full" in message and "data.cache_dir" in message
    assert "\n" not in message
    assert caches(face) == [], "no cache and no temp file left behind"

    monkeypatch.undo()
    assert np.array_equal(load_images(face, 16, 1), load_images(face, 16, 1, cache=False))


def test_too_little_free_space_is_refused_before_decoding(face, monkeypatch):
    class Usage:
        free = 1000

    monkeypatch.setattr(data.shutil, "disk_usage", lambda path: Usage)
    no_decoding(monkeypatch)
    with pytest.raises(
        UserError, match=r"needs 0\.00 GB in .* but that disk has 0\.00 GB free; free .* or set data.cache_dir"
    ):
        load_images(face, 16, 1)


def test_a_killed_builds_temp_file_is_removed_but_a_running_ones_is_not(face):
    load_images(face, 16, 1)
    orphan = face / CACHE_DIR / ".images-killed.npy.tmp"
    orphan.write_bytes(b"half a cache")
    running = face / CACHE_DIR / ".images-running.npy.tmp"
    with open(running, "wb") as writing:
        fcntl.flock(writing, fcntl.LOCK_EX)
        write_blob_faces(face, n=41)  # a new image: the next load builds a new cache
        load_images(face, 16, 1)
        assert not orphan.exists() and running.exists()


@pytest.mark.parametrize("epoch, skip", [(1, 0), (2, 3)])
def test_batches_are_the_in_memory_gather_of_the_epoch_order(face, epoch, skip):
    cached, in_memory = load_images(face, 16, 1), load_images(face, 16, 1, cache=False)
    batches = [batch.numpy() for batch in epoch_dataset(cached, 8, seed=5, epoch=epoch, skip_batches=skip)]
    order = epoch_order(40, seed=5, epoch=epoch)
    assert len(batches) == 5 - skip
    for number, batch in enumerate(batches, start=skip):
        assert np.array_equal(batch, in_memory[order[number * 8 : (number + 1) * 8]])


def test_a_view_of_the_cache_gathers_its_own_rows(face):
    cached, in_memory = load_images(face, 16, 1)[8:], load_images(face, 16, 1, cache=False)[8:]
    (batch,) = [batch.numpy() for batch in epoch_dataset(cached, 32, seed=1, epoch=1)]
    assert np.array_equal(batch, in_memory[epoch_order(32, seed=1, epoch=1)])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the mapping's resident size from /proc")
def test_an_epoch_leaves_none_of_the_cache_in_resident_memory(tmp_path):
    images = load_images(write_blob_faces(tmp_path / "face", n=2000, size=32), 32, 1)  # 2 MB

    def resident_kb():
        """This process's resident KB of the cache file's mapping."""
        lines = open("/proc/self/smaps").read().splitlines()
        start = next(i for i, line in enumerate(lines) if line.endswith(str(images.filename)))
        return int(next(line.split()[1] for line in lines[start + 1 :] if line.startswith("Rss:")))

    assert sum(int(batch.numpy().sum()) for batch in epoch_dataset(images, 100, seed=0, epoch=1)) > 0
    assert resident_kb() == 0
    assert images[::7].sum() > 0  # reading through the mapping instead...
    assert resident_kb() > 1000  # ...makes it resident (pages, or whole folios, of the file)


def test_a_second_trainers_build_leaves_the_cache_a_first_one_reads(face):
    """Item 5 of issue 18: `train --set data.limit=32` on a folder another trainer reads built its
    cache and deleted the first one's, whose next batch died with FileNotFoundError."""
    first = load_images(face, 16, 1)  # the long run's cache, still in use
    expected = np.array(first)
    second = load_images(face, 16, 1, limit=32)  # another fingerprint: a new build, which removes stale caches
    assert len(second) == 32
    assert Path(first.filename).exists(), "a cache that another trainer reads is not removed"
    (batch,) = [batch.numpy() for batch in epoch_dataset(first, 40, seed=2, epoch=1)]
    assert np.array_equal(batch, expected[epoch_order(40, seed=2, epoch=1)])

    Path(first.filename).unlink()  # even a cache removed by hand (or by a build that raced the lock)...
    (batch,) = [batch.numpy() for batch in epoch_dataset(first, 40, seed=2, epoch=1)]
    assert np.array_equal(batch, expected[epoch_order(40, seed=2, epoch=1)])  # ...reads on through its handle

    del first, second
    write_blob_faces(face, n=41)
    load_images(face, 16, 1)
    assert len([name for name in caches(face) if name.endswith(".npy")]) == 1, "caches nobody reads are removed"


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS file systems refuse names that are not UTF-8")
def test_a_file_name_that_is_not_utf8_is_fingerprinted_and_loaded(face):
    """Item 8 of issue 18: a training image named with byte 0xff made the fingerprint die with UnicodeEncodeError."""
    odd = Path(os.fsdecode(bytes(face / "img_0003.png").replace(b"img_0003", b"img_\xff")))
    (face / "img_0003.png").rename(odd)
    images = load_images(face, 16, 1)
    assert len(images) == 40 and np.array_equal(images, load_images(face, 16, 1, cache=False))
