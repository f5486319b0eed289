"""`animegan sample`: decode seeded noise into a PNG grid, single PNGs, or a GIF walk through the latent space.

The recipe: load the generator, draw noise, run the generator in batches, map [-1, 1] back to
pixels. Noise comes from numpy's seeded generator rather than TensorFlow's, so a seed means the
same noise on every machine, and the same seed and checkpoint give a byte-identical PNG.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from animegan.checkpoints import load_generator
from animegan.errors import UserError
from animegan.files import refuse_to_replace
from animegan.images import make_grid, to_uint8, write_gif, write_png, written_by_animegan
from animegan.rundir import find_run, samples_dir

BATCH_SIZE = 256  # images per generator call: the fastest of 32..1000 on a CPU for the default model

# Redrawing components until all lie within +/-T takes about 1/P(|z| < T) rounds: fine down to 0.01,
# endless near 0. Below 0.1 every image is already close to the average face anyway.
MIN_TRUNCATION = 0.01
# One call's images sit in memory at once (10,000 of 256 px RGB is 2 GB); more is several calls with other seeds.
MAX_IMAGES = 10_000


def sample_command(
    n: int,
    run_dir: Path | None,
    checkpoint: str | None,
    seed: int,
    out: Path | None,
    cols: int | None,
    scale: int,
    separate: Path | None,
    truncation: float | None,
    interpolate: int | None,
    frames: int,
    runs_dir: Path,
    force: bool = False,
) -> Path:
    """Write a grid PNG (or, with `interpolate`, a GIF of n latent walks) and return its path."""
    check_options(n, out, separate, truncation, interpolate, frames)
    run = find_run(run_dir, runs_dir)
    generator, cfg, epoch = load_generator(run, checkpoint)
    noise_dim = cfg.model.noise_dim
    cols = min(cols, n) if cols else None
    if out is None:
        out = samples_dir(run) / f"sample_epoch{epoch:04d}_seed{seed}{'.gif' if interpolate else '.png'}"
    else:
        refuse_to_replace(out, "--out", force, ours=written_by_animegan(out))
    singles = [] if separate is None else separate_paths(separate, out, n)
    for path in singles:
        refuse_to_replace(path, "--separate", force, ours=written_by_animegan(path))
    traced = trace_generator(generator)

    if interpolate:
        walk = walk_noise(n, interpolate, frames, noise_dim, seed, truncation)
        images = to_uint8(generate(traced, walk.reshape(-1, noise_dim)))
        per_frame = images.reshape(len(walk), n, *images.shape[1:])
        return write_gif(out, [make_grid(frame, cols, scale=scale) for frame in per_frame])

    images = to_uint8(generate(traced, draw_noise(n, noise_dim, seed, truncation)))
    for path, image in zip(singles, images):
        # A one-cell grid without a border is the image upscaled like the grid's cells.
        write_png(path, make_grid(image[None], border=0, scale=scale))
    return write_png(out, make_grid(images, cols, scale=scale))


def separate_paths(separate: Path, out: Path, n: int) -> list[Path]:
    """Where --separate writes the grid's n images: <grid name>_<i>.png, numbered with equal digits."""
    digits = len(str(n - 1))
    return [separate / f"{out.stem}_{i:0{digits}d}.png" for i in range(n)]


def check_options(
    n: int, out: Path | None, separate: Path | None, truncation: float | None, interpolate: int | None, frames: int
) -> None:
    """Reject bad combinations before the slow part (importing TensorFlow, loading the checkpoint)."""
    if not 1 <= n <= MAX_IMAGES:
        raise UserError(
            f"--n {n}: give 1 to {MAX_IMAGES:,} images; for more, call sample several times with other --seed values"
        )
    # "not >=" also catches nan, which fails every comparison; inf would redraw nothing and mean "no truncation".
    if truncation is not None and not (MIN_TRUNCATION <= truncation < math.inf):
        raise UserError(
            f"--truncation {truncation}: use a number of {MIN_TRUNCATION} or more (0.5 to 1 is the usual range)"
        )
    if interpolate and n * interpolate * frames > MAX_IMAGES:
        raise UserError(
            f"--n {n} x --interpolate {interpolate} x --frames {frames} is {n * interpolate * frames:,} images; "
            f"keep the product at {MAX_IMAGES:,} or less"
        )
    wanted = ".gif" if interpolate else ".png"
    if out is not None and out.suffix.lower() != wanted:
        what = "an interpolation is written as a GIF" if interpolate else "a grid is written as a PNG"
        raise UserError(f"--out '{out}': {what}; give a path ending in {wanted}")
    if interpolate and separate is not None:
        raise UserError("--separate writes the images of a grid; it does not combine with --interpolate")


def draw_noise(n: int, noise_dim: int, seed: int, truncation: float | None = None) -> np.ndarray:
    """n standard-normal noise vectors, float32 of shape (n, noise_dim), from numpy's generator seeded with `seed`.

    With `truncation` T, components beyond +/-T are redrawn from the same generator (so the result
    still depends on the seed alone) until all lie within: less variety, more typical faces.
    """
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n, noise_dim))
    if truncation is not None:
        outside = np.abs(noise) > truncation
        while outside.any():
            noise[outside] = rng.standard_normal(int(outside.sum()))
            outside = np.abs(noise) > truncation
    return noise.astype(np.float32)


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation from the rows of `a` to those of `b` at fraction t.

    Gaussian noise lives near a sphere; a straight line between two points cuts through its
    inside, where the generator has seen no noise and draws washed-out faces.
    """
    cos = np.sum(a * b, axis=-1, keepdims=True) / (
        np.linalg.norm(a, axis=-1, keepdims=True) * np.linalg.norm(b, axis=-1, keepdims=True)
    )
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    sin = np.sin(omega)
    straight = sin < 1e-6  # (anti)parallel rows, e.g. with noise_dim 1: no plane to turn in
    curved = (np.sin((1 - t) * omega) * a + np.sin(t * omega) * b) / np.where(straight, 1.0, sin)
    return np.where(straight, (1 - t) * a + t * b, curved).astype(np.float32)


def walk_noise(
    n: int, points: int, frames: int, noise_dim: int, seed: int, truncation: float | None = None
) -> np.ndarray:
    """n walks through `points` random latent points each, `frames` steps per leg: shape
    (points * frames, n, noise_dim).

    Each walk returns to its first point, so the looping GIF has no jump. The first frame is the
    grid that `sample` draws with the same n, seed and truncation.
    """
    stops = draw_noise(points * n, noise_dim, seed, truncation).reshape(points, n, noise_dim)
    next_stops = np.roll(stops, -1, axis=0)
    return np.stack([slerp(stops[p], next_stops[p], step / frames) for p in range(points) for step in range(frames)])


def trace_generator(generator):
    """The generator in inference mode as one tf.function.

    The input signature leaves the batch size open, so it traces once and serves every batch,
    the short last one included.
    """
    import tensorflow as tf

    noise_dim = generator.input_shape[-1]
    return tf.function(
        lambda noise: generator(noise, training=False), input_signature=[tf.TensorSpec([None, noise_dim], tf.float32)]
    )


def generate(traced, noise: np.ndarray, batch_size: int = BATCH_SIZE, show_progress: bool = False) -> np.ndarray:
    """Run `trace_generator`'s function over noise in batches; images NHWC in [-1, 1]."""
    from tqdm import tqdm

    starts = tqdm(
        range(0, len(noise), batch_size), desc="generating", unit="batch", disable=not show_progress, leave=False
    )
    return np.concatenate([traced(noise[i : i + batch_size]).numpy() for i in starts])
