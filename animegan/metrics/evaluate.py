"""Score a generator against real images: `evaluate_run` for `animegan evaluate`, `Evaluator` for training.

Both compare the first n real images with n generated ones. `animegan evaluate` reads the images in
file-name order, as data.py loads them for training, so for the same checkpoint, n and seed the
trainer's numbers and the command's agree.

`evaluate_run` caches the real images' features in <real>/.animegan-cache/<kind>-<fingerprint>.npz.
The fingerprint covers the image files used (names, sizes, modification times), the image size and
channels, and the exact computation (SWD settings, Inception weights): any change recomputes them.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from animegan.checkpoints import load_generator
from animegan.data import CACHE_DIR, find_images, fingerprint, load_images
from animegan.errors import UserError
from animegan.files import atomic_path
from animegan.images import to_uint8
from animegan.metrics import diversity, embedding, inception, spectrum, swd
from animegan.metrics.registry import METRICS, Features
from animegan.metricslog import append_metrics, read_metrics, tidy_metrics
from animegan.rundir import find_run
from animegan.runlock import run_lock
from animegan.sample import draw_noise, generate, trace_generator
from animegan.say import say

EVAL_IMAGES = 2000  # images per set for the metrics run every train.eval_every epochs


class FeatureExtractor(NamedTuple):
    cache_key: str  # names the exact computation, so a cache never hands back features made another way
    extract: Callable[[np.ndarray], Features]  # uint8 NHWC images -> named arrays


def parse_metric_names(names: str | Iterable[str]) -> list[str]:
    """'swd, fid' or ['swd', 'fid'] -> ['swd', 'fid'], each a key of METRICS."""
    parsed = [name.strip().lower() for name in (names.split(",") if isinstance(names, str) else names) if name.strip()]
    unknown = [name for name in parsed if name not in METRICS]
    if unknown or not parsed:
        given = f"unknown metric '{unknown[0]}'" if unknown else "no metric"
        raise UserError(f"{given} in --metrics; give a comma list of {', '.join(METRICS)}, e.g. --metrics swd,fid")
    return list(dict.fromkeys(parsed))


def feature_extractors(
    metric_names: list[str], inception_model=None, inception_weights: Path | None = None, show_progress: bool = False
) -> dict[str, FeatureExtractor]:
    """One extractor per kind of features the metrics compare. Inception is loaded for fid or kid, and
    given an Inception network or its weights, prdc measures in Inception's space instead of the random one."""
    kinds = {METRICS[name].features for name in metric_names}
    extractors = {}
    if "swd" in kinds:
        extractors["swd"] = FeatureExtractor(swd.SETTINGS, partial(swd.swd_features, show_progress=show_progress))
    if "pixels" in kinds:
        extractors["pixels"] = FeatureExtractor("pixels", diversity.pixel_summary)
    if "spectrum" in kinds:
        extractors["spectrum"] = FeatureExtractor(spectrum.SETTINGS, spectrum.radial_power)
    use_inception = "inception" in kinds or (
        "embedding" in kinds and (inception_model is not None or inception_weights is not None)
    )
    if use_inception:
        model = inception_model if inception_model is not None else inception.load_inception(inception_weights)
        key = inception.network_fingerprint(model)
        if "inception" in kinds:
            extractors["inception"] = FeatureExtractor(
                key, partial(inception.inception_features, model, show_progress=show_progress)
            )
        if "embedding" in kinds:
            extractors["embedding"] = FeatureExtractor(
                key, partial(embedding.inception_vectors, model, show_progress=show_progress)
            )
    elif "embedding" in kinds:
        extractors["embedding"] = FeatureExtractor(
            embedding.SETTINGS, partial(embedding.embedding_features, show_progress=show_progress)
        )
    return extractors


def extract_all(extractors: dict[str, FeatureExtractor], images: np.ndarray) -> dict[str, Features]:
    return {kind: extractor.extract(images) for kind, extractor in extractors.items()}


def score(metric_names: list[str], real: dict[str, Features], fake: dict[str, Features]) -> dict[str, float]:
    results = {}
    for name in metric_names:
        metric = METRICS[name]
        results.update(metric.score(real[metric.features], fake[metric.features]))
    return results


def generate_images(generator, n: int, seed: int, show_progress: bool = False) -> np.ndarray:
    """n uint8 NHWC images from the same seeded noise `animegan sample --seed` draws."""
    noise = draw_noise(n, generator.input_shape[-1], seed)
    return to_uint8(generate(trace_generator(generator), noise, show_progress=show_progress))


def compute_real_features(
    real_images: np.ndarray, metric_names: str | Iterable[str], n: int, inception_model=None
) -> dict[str, Features]:
    """Features of the first n real images, to compute once and pass to every evaluate_generator call."""
    return extract_all(feature_extractors(parse_metric_names(metric_names), inception_model), real_images[:n])


def evaluate_generator(
    generator,
    real_images_uint8: np.ndarray,
    metric_names: str | Iterable[str],
    n: int,
    seed: int,
    *,
    real_features: dict[str, Features] | None = None,
    inception_model=None,
) -> dict[str, float]:
    """Score n generated images against the first n real ones; writes nothing.

    `generator` maps (batch, noise_dim) noise to NHWC images in [-1, 1]. `real_features`, from
    compute_real_features, saves extracting the real images' features again at every call;
    `inception_model` (from inception.load_inception) saves loading InceptionV3 at every fid/kid call.
    """
    names = parse_metric_names(metric_names)
    extractors = feature_extractors(names, inception_model)
    if real_features is None:
        real_features = extract_all(extractors, real_images_uint8[:n])
    return score(names, real_features, extract_all(extractors, generate_images(generator, n, seed)))


class Evaluator:
    """Scores a generator during training, every train.eval_every epochs: train.eval_metric and, with
    train.eval_diversity, prdc, fd, diversity and spectrum, against the first EVAL_IMAGES training
    images, whose features (and Inception, for fid and kid) are computed once here."""

    def __init__(self, cfg, images: np.ndarray):
        self.metrics = [cfg.train.eval_metric]
        if cfg.train.eval_diversity:
            self.metrics += ["prdc", "fd", "diversity", "spectrum"]
        self.n = min(EVAL_IMAGES, len(images))
        self.seed = cfg.train.seed
        self.inception = inception.load_inception() if cfg.train.eval_metric in ("fid", "kid") else None
        self.real = np.array(images[: self.n])  # a copy in memory: the metric reads it at every evaluation
        self.real_features = compute_real_features(self.real, self.metrics, self.n, self.inception)

    def evaluate(self, generator) -> dict[str, float]:
        return evaluate_generator(
            generator,
            self.real,
            self.metrics,
            self.n,
            self.seed,
            real_features=self.real_features,
            inception_model=self.inception,
        )


def read_cache(path: Path) -> Features | None:
    """The arrays cached in `path`, or None when it is missing or damaged (then they are recomputed)."""
    try:
        with np.load(path) as cached:
            return {key: cached[key] for key in cached.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def write_cache(path: Path, features: Features) -> None:
    """Write atomically; a read-only data folder only costs the cache, not the evaluation."""
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as file:
            np.savez(file, **features)
    except UserError as exc:
        say(f"warning: not caching the real-image features: {exc}")


def cached_real_features(
    folder: Path, size: int, channels: int, n: int, extractors: dict[str, FeatureExtractor], show_progress: bool
) -> dict[str, Features]:
    """Each kind's features of the first n real images, from the cache or computed and cached; the
    images are read only on a miss."""
    paths = find_images(folder, n)
    features, images = {}, None
    for kind, extractor in extractors.items():
        cache = Path(folder) / CACHE_DIR / f"{kind}-{fingerprint(paths, extractor.cache_key, size, channels)}.npz"
        features[kind] = read_cache(cache)
        if features[kind] is None:
            if images is None:
                images = load_images(folder, size, channels, n, show_progress, cache=False)
            features[kind] = extractor.extract(images)
            write_cache(cache, features[kind])
    return features


def score_generator(
    generator, real: Path, size: int, channels: int, metric_names: str | Iterable[str], n: int, seed: int = 0
) -> dict[str, float]:
    """n images of `generator` against the first n of the folder `real` (features cached there); writes
    nothing in any run. For studies that score many checkpoints against one held-out set."""
    names = parse_metric_names(metric_names)
    extractors = feature_extractors(names)
    real_features = cached_real_features(Path(real), size, channels, n, extractors, show_progress=False)
    return score(names, real_features, extract_all(extractors, generate_images(generator, n, seed)))


def evaluate_run(
    run_dir: Path | None,
    real: Path | None,
    n: int,
    metric_names: str | Iterable[str],
    inception_weights: Path | None = None,
    checkpoint: str | None = None,
    seed: int = 0,
    runs_dir: Path = Path("runs"),
    inception_model=None,
) -> dict[str, float]:
    """`animegan evaluate`: score a run's EMA generator against real images and log it in the run's metrics.jsonl.

    `real` defaults to the run's data.dir. `inception_model` is a ready InceptionV3 feature model (tests
    pass one with random weights); without it, fid and kid load `inception_weights` or Keras' ImageNet weights.
    """
    names = parse_metric_names(metric_names)
    run = find_run(run_dir, Path(runs_dir))
    # The lock from the start: a trainer on the run refuses at once, not after minutes of scoring.
    with run_lock(run, "evaluate"):
        generator, cfg, epoch = load_generator(run, checkpoint)
        folder = Path(real) if real is not None else Path(cfg.data.dir)
        if len(find_images(folder)) < 2:  # checked now, not after loading Inception
            raise UserError(f"'{folder}' holds a single image; the metrics compare sets, give --real a folder of many")
        extractors = feature_extractors(names, inception_model, inception_weights, show_progress=True)
        real_features = cached_real_features(folder, cfg.data.size, cfg.data.channels, n, extractors, True)
        fake_features = extract_all(extractors, generate_images(generator, n, seed, show_progress=True))
        results = score(names, real_features, fake_features)
        tidy_metrics(run)  # a line torn by a kill goes first: the new one must not join it
        append_metrics(run, {"epoch": epoch, "event": "evaluate", "real": str(folder), "n": n, "seed": seed, **results})
        from animegan.monitor import write_plots  # matplotlib: imported here, not for every evaluate_generator call

        write_plots(run, read_metrics(run))
    return results


def read_image_folder(folder: Path, size: int, channels: int, limit: int) -> np.ndarray:
    """The first `limit` images of any folder (any sizes, formats and modes) as uint8 (N, size, size,
    channels), area-resized: how samples from other tools are brought to the real set's size."""
    from PIL import Image, UnidentifiedImageError

    images = []
    for path in tqdm(find_images(folder, limit), desc="reading images", unit="img", leave=False):
        try:
            with Image.open(path) as picture:
                picture = picture.convert("L" if channels == 1 else "RGB").resize((size, size), Image.Resampling.BOX)
        except (OSError, UnidentifiedImageError, ValueError):
            raise UserError(
                f"cannot read '{path}' as an image; remove it from the folder or re-save it as PNG"
            ) from None
        images.append(np.asarray(picture, dtype=np.uint8).reshape(size, size, channels))
    return np.stack(images)


def evaluate_images(
    images_dir: Path,
    real: Path,
    n: int,
    metric_names: str | Iterable[str],
    inception_weights: Path | None = None,
    inception_model=None,
) -> dict[str, float]:
    """`animegan evaluate --images DIR`: score a folder of images (from any tool) against real images.

    The images are resized to the real set's size and channels; both sets use the same count, the
    smaller of n and the folder's images, since the k-NN metrics depend on the set size."""
    names = parse_metric_names(metric_names)
    count = min(n, len(find_images(images_dir)))
    reals = find_images(real)
    if count < 2 or len(reals) < 2:
        raise UserError(f"'{images_dir if count < 2 else real}' holds fewer than 2 images; the metrics compare sets")
    count = min(count, len(reals))
    size, channels = image_shape(reals[0])
    extractors = feature_extractors(names, inception_model, inception_weights, show_progress=True)
    real_features = cached_real_features(Path(real), size, channels, count, extractors, show_progress=True)
    fake_features = extract_all(extractors, read_image_folder(images_dir, size, channels, count))
    return score(names, real_features, fake_features)


def image_shape(path: Path) -> tuple[int, int]:
    """(side, channels) of a preprocessed image: the size every compared image is brought to."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            width, height = picture.size
            channels = 1 if picture.mode in ("L", "LA", "I", "I;16", "1") else 3
    except (OSError, UnidentifiedImageError):
        raise UserError(f"cannot read '{path}' as an image; re-run `animegan preprocess` on the real images") from None
    if width != height:
        raise UserError(
            f"'{path}' is {width}x{height}, not square; give --real a folder written by `animegan preprocess`"
        )
    return width, channels
