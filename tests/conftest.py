"""Shared fixtures: tiny configs and runs that train in seconds."""

import os

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


def save_untrained_run(run, cfg):
    """Write `cfg` and one checkpoint (epoch 1) of a freshly initialised generator into `run`."""
    import tensorflow as tf

    from animegan.models import build_generator
    from animegan.rundir import CHECKPOINT_PREFIX, checkpoint_dir, save_config

    save_config(run, cfg)
    generator = build_generator(cfg.model, cfg.data.size, cfg.data.channels)
    ckpt = tf.train.Checkpoint(ema_generator=generator, epoch=tf.Variable(1, dtype=tf.int64))
    tf.train.CheckpointManager(ckpt, checkpoint_dir(run), max_to_keep=3, checkpoint_name=CHECKPOINT_PREFIX).save(checkpoint_number=1)
    return run


@pytest.fixture
def fake_run(tmp_path):
    """A run directory with a config and one checkpoint of an untrained generator (epoch 1)."""
    return save_untrained_run(tmp_path / "runs" / "tiny-001", tiny_config(tmp_path))


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
