"""Helpers the tests share: tiny configs and data sets, untrained runs, damaged checkpoints.

Fixtures built from them are in conftest.py; test files import these directly (`from helpers import ...`).
"""

from pathlib import Path

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


def save_untrained_run(run, cfg, epochs=(1,), known=False):
    """Write `cfg` and, for each of `epochs`, a checkpoint ckpt-<epoch> of a freshly initialised
    generator into `run` (each initialised anew, so each checkpoint draws other pictures). With
    `known`, ckpt-<epoch> holds known_weights(cfg, epoch) instead, for tests that check what was restored."""
    from animegan.checkpoints import save_generator
    from animegan.rundir import save_config

    save_config(run, cfg)
    for epoch in epochs:
        save_generator(run, generator_with(cfg, known_weights(cfg, epoch) if known else None), epoch)
    return run


def generator_with(cfg, weights=None):
    """A generator of `cfg`'s shape built directly (not via a checkpoint), holding `weights` if given."""
    from animegan.models import build_generator

    generator = build_generator(cfg.model, cfg.data.size, cfg.data.channels)
    if weights is not None:
        generator.set_weights(weights)
    return generator


def known_weights(cfg, seed: int) -> list:
    """Seeded values for every variable of `cfg`'s generator, in `generator.weights` order, BatchNorm's
    moving statistics included. An untrained generator has those at 0 and 1, where inference and
    training mode agree, so a restore or export that dropped or mixed them up would go unseen."""
    import numpy as np

    rng = np.random.default_rng(seed)
    values = []
    for variable in generator_with(cfg).weights:
        positive = variable.path.endswith(("moving_variance", "gamma"))  # a scale: far from 1 but above 0
        value = rng.uniform(0.5, 2.0, variable.shape) if positive else rng.normal(0.0, 0.3, variable.shape)
        values.append(value.astype(np.float32))
    return values


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


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


# Ways TensorFlow's checkpoint files get damaged: a save or copy cut short, a bad sector, a lost file.
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
