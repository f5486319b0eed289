"""Shared fixtures: tiny configs and runs that train in seconds."""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest

from animegan.config import Config


def tiny_config(tmp_path, **train) -> Config:
    """A 16x16 grayscale config with small networks: one epoch takes well under a second."""
    cfg = Config(name="tiny")
    cfg.data.dir = str(tmp_path / "face")
    cfg.data.size = 16
    cfg.data.channels = 1
    cfg.data.limit = 0
    cfg.model.noise_dim = 8
    cfg.model.g_width = 16
    cfg.model.d_widths = [8, 16]
    cfg.model.g_kernel = 3
    cfg.model.d_kernel = 3
    cfg.train.batch_size = 8
    cfg.train.epochs = 1
    cfg.train.runs_dir = str(tmp_path / "runs")
    cfg.train.precision = "float32"
    for key, value in train.items():
        setattr(cfg.train, key, value)
    return cfg


def save_untrained_run(run, cfg, epochs=(1,)):
    """Write `cfg` and, for each of `epochs`, a checkpoint ckpt-<epoch> of a freshly initialised
    generator into `run` (each initialised anew, so each checkpoint draws other pictures)."""
    import tensorflow as tf

    from animegan.models import build_generator
    from animegan.rundir import CHECKPOINT_PREFIX, checkpoint_dir, save_config

    save_config(run, cfg)
    for epoch in epochs:
        generator = build_generator(cfg.model, cfg.data.size, cfg.data.channels)
        ckpt = tf.train.Checkpoint(ema_generator=generator, epoch=tf.Variable(epoch, dtype=tf.int64))
        manager = tf.train.CheckpointManager(
            ckpt, checkpoint_dir(run), max_to_keep=len(epochs), checkpoint_name=CHECKPOINT_PREFIX
        )
        manager.save(checkpoint_number=epoch)
    return run


@pytest.fixture
def fake_run(tmp_path):
    """A run directory with a config and one checkpoint of an untrained generator (epoch 1)."""
    return save_untrained_run(tmp_path / "runs" / "tiny-001", tiny_config(tmp_path))


@pytest.fixture
def three_checkpoint_run(tmp_path):
    """A run directory with checkpoints ckpt-1, ckpt-2 and ckpt-3 (epochs 1 to 3) of three different untrained generators."""
    return save_untrained_run(tmp_path / "runs" / "tiny-001", tiny_config(tmp_path), epochs=(1, 2, 3))


def write_blob_faces(folder, n: int = 40, size: int = 16, channels: int = 1, seed: int = 0):
    """A tiny training set drawn in the test: a bright disc at a random place on a dark background."""
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        image = np.full((size, size, 3), 30, np.uint8)
        centre = tuple(int(v) for v in rng.integers(size // 4, 3 * size // 4, 2))
        cv2.circle(image, centre, size // 4, tuple(int(v) for v in rng.integers(120, 255, 3)), -1)
        if channels == 1:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        cv2.imwrite(str(folder / f"img_{i:04d}.png"), image)
    return folder


@pytest.fixture
def tiny_data(tmp_path):
    """A tiny config and its 40-image training folder."""
    cfg = tiny_config(tmp_path)
    write_blob_faces(tmp_path / "face")
    return cfg


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


# Ways a checkpoint's files get damaged: a save or copy cut short, a bad sector, a lost file.
CHECKPOINT_DAMAGE = {
    "data cut short": lambda prefix: _data_file(prefix).write_bytes(b"abc"),
    "data byte flipped": lambda prefix: _flip_a_byte(_data_file(prefix)),
    "data missing": lambda prefix: _data_file(prefix).unlink(),
    "index garbled": lambda prefix: Path(f"{prefix}.index").write_bytes(b"abc"),
    "index missing": lambda prefix: Path(f"{prefix}.index").unlink(),
}


def _data_file(prefix):
    (data,) = Path(prefix).parent.glob(f"{Path(prefix).name}.data-*")
    return data


def damage_checkpoint(prefix, how="data cut short"):
    CHECKPOINT_DAMAGE[how](prefix)
