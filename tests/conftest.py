"""Shared fixtures: tiny configs and runs that train in seconds (the helpers behind them are in helpers.py)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402
from helpers import save_untrained_run, tiny_config, write_blob_faces  # noqa: E402


@pytest.fixture
def fake_run(tmp_path):
    """A run directory with a config and one checkpoint of an untrained generator (epoch 1)."""
    return save_untrained_run(tmp_path / "runs" / "tiny-001", tiny_config(tmp_path))


@pytest.fixture
def three_checkpoint_run(tmp_path):
    """A run directory with checkpoints ckpt-1, ckpt-2 and ckpt-3 (epochs 1 to 3) of three different
    untrained generators."""
    return save_untrained_run(tmp_path / "runs" / "tiny-001", tiny_config(tmp_path), epochs=(1, 2, 3))


@pytest.fixture
def tiny_data(tmp_path):
    """A tiny config and its 40-image training folder."""
    cfg = tiny_config(tmp_path)
    write_blob_faces(tmp_path / "face")
    return cfg
