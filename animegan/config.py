"""Typed configuration: dataclass defaults, `--set` overrides, layering and validation of the values.

Finding and reading a config file (configs/ names, YAML syntax, duplicate keys) is configfile.py.

The dataclass defaults below are the default config; `configs/default.yaml` spells out the
same values (a test keeps the two equal). Every other YAML file overrides some of them.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from animegan.configfile import read_config_file, resolve_config_path
from animegan.errors import UserError


@dataclass
class DataConfig:
    dir: str = "face"  # the preprocessed training set
    size: int = 56  # images are size x size
    channels: int = 1  # 1 = grayscale, 3 = RGB
    limit: int = 20000  # at most this many training images (0 = no limit)
    cache_dir: str | None = (
        None  # a folder for the decoded-image cache (one sub-folder per data folder); default: <dir>/.animegan-cache
    )


@dataclass
class PreprocessConfig:
    fit: str = "crop"  # how non-square images become square: crop | pad | stretch
    dedupe: bool = True  # drop byte-identical outputs
    workers: int = 0  # 0 = one per CPU core
    crop_faces: bool = False  # detect faces with an OpenCV cascade and crop each
    cascade: str | None = None  # path to the cascade XML (needed by crop_faces)
    face_margin: float = 0.25  # margin around each detected face, as a fraction of its size


@dataclass
class ModelConfig:
    noise_dim: int = 160
    g_width: int = 256  # channels after the generator's dense layer; halved by each upsampling
    g_kernel: int = 4  # 4, not the recipe's 5: stride 2 divides it, so every output pixel gets as many taps
    g_upsample: str = (
        "transpose"  # how G doubles its size: transpose (stride-2 transposed conv) | resize (nearest, then conv)
    )
    # 0: the last upsampling draws the image, as in the recipe; k: it draws features and a stride-1
    # k x k conv draws the image from them, so pixels of either parity get their colour alike
    g_output_kernel: int = 0
    d_widths: list = field(default_factory=lambda: [64, 128, 256])  # one stride-2 conv per entry
    d_kernel: int = 5
    d_dropout: float = 0.0
    leaky_slope: float = 0.3  # LeakyReLU's negative slope in both networks (Keras' default, as in the recipe)
    d_mbstd: int = 4  # minibatch standard-deviation group size in D (ProGAN); 0 = off
    d_spectral_norm: bool = False  # spectral normalisation of D's weight layers


@dataclass
class TrainConfig:
    epochs: int = 500
    max_minutes: float = 0.0  # stop (with a checkpoint) at the first epoch end after this long; 0 = no limit
    batch_size: int = 64
    g_lr: float = 1e-4  # TTUR (Heusel et al. 2017): D learns 4x faster than G
    d_lr: float = 4e-4
    beta1: float = 0.5
    beta2: float = 0.999
    ema_decay: float = 0.999  # 0 turns the generator EMA off
    ema_rampup: float = 0.05  # EMA half-life grows to this fraction of the images seen (0 = off)
    ema_bn: str = (
        "standing"  # the EMA generator's BatchNorm statistics: standing (its own, at each epoch end) | live (copied)
    )
    loss: str = "bce"  # bce (non-saturating, the recipe's) | hinge
    r1_gamma: float = 0.0  # weight of the R1 gradient penalty on real images; 0 = off
    r1_every: int = 16  # apply R1 every N steps, scaled by N (StyleGAN2's lazy regularisation)
    augment: str = "translation,cutout"  # DiffAugment ops, comma-separated; "" = none
    augment_p: str = "auto"  # chance that each op applies to each image: a number in [0, 1], or auto (ADA's adaptive p)
    ada_target: float = 0.6  # auto: the E[sign(D(real))] that p steers the discriminator towards
    ada_kimg: float = 100.0  # auto: thousands of images p takes to move from 0 to 1 (ADA's speed)
    ada_interval: int = 4  # auto: steps between adjustments of p
    precision: str = "auto"  # auto | float32 | mixed_float16 | mixed_bfloat16
    xla: str = "auto"  # auto | on | off
    strategy: str = "auto"  # auto | default | mirrored | multiworker
    seed: int = 0
    save_every: int = 1  # epochs between checkpoints
    keep_checkpoints: int = 3
    sample_every: int = 1  # epochs between sample grids
    eval_every: int = 0  # epochs between cheap metric runs (0 = never)
    eval_metric: str = "swd"  # scored every eval_every epochs; its best checkpoint is kept in checkpoints/best/
    eval_diversity: bool = (
        True  # also log precision/recall, density/coverage, fd, near-duplicates and the spectrum at each evaluation
    )
    runs_dir: str = "runs"
    name: str | None = None  # run folder name; default: <config name>-<counter>


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    name: str = "default"  # the config's name: the stem of its file

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


CHOICES = {
    "preprocess.fit": ("crop", "pad", "stretch"),
    "train.precision": ("auto", "float32", "mixed_float16", "mixed_bfloat16"),
    "train.xla": ("auto", "on", "off"),
    "train.strategy": ("auto", "default", "mirrored", "multiworker"),
    "train.eval_metric": ("swd", "fid", "kid", "fd", "spectrum"),
    "train.loss": ("bce", "hinge"),
    "train.ema_bn": ("live", "standing"),
    "model.g_upsample": ("transpose", "resize"),
    "data.channels": (1, 3),
}
AUGMENT_OPS = ("translation", "cutout", "color")


def augment_ops(text: str) -> list[str]:
    """'translation, cutout' -> ['translation', 'cutout']; '' -> []."""
    return [op.strip() for op in text.split(",") if op.strip()]


def augment_probability(text: str) -> float | None:
    """train.augment_p as a number, or None for auto; ValueError for anything else."""
    if text.strip().lower() == "auto":
        return None
    p = float(text)
    if not 0.0 <= p <= 1.0:  # also refuses nan
        raise ValueError(text)
    return p


MAX_D_LAYERS = 8  # each halves the image: 512 px is down to 2 px after 8
MAX_WIDTH = 4096  # channels of a layer, as model.g_width


# (low, high) inclusive; None = unbounded on that side.
RANGES = {
    "data.size": (16, 512),
    "data.limit": (0, None),
    "preprocess.workers": (0, 256),
    "preprocess.face_margin": (0.0, 2.0),
    "model.noise_dim": (1, 4096),
    "model.g_width": (8, MAX_WIDTH),
    "model.g_kernel": (1, 9),
    "model.g_output_kernel": (0, 9),
    "model.d_kernel": (1, 9),
    "model.d_dropout": (0.0, 0.9),
    "model.leaky_slope": (0.0, 1.0),
    "model.d_mbstd": (0, 64),
    "train.epochs": (1, None),
    "train.max_minutes": (0.0, None),
    "train.batch_size": (1, 65536),
    "train.g_lr": (0.0, 1.0),
    "train.d_lr": (0.0, 1.0),
    "train.beta1": (0.0, 0.9999),
    "train.beta2": (0.0, 0.9999),
    "train.ema_decay": (0.0, 0.99999),
    "train.ema_rampup": (0.0, 1.0),
    "train.r1_gamma": (0.0, 1e4),
    "train.r1_every": (1, 10000),
    "train.ada_target": (0.0, 1.0),
    "train.ada_kimg": (0.001, 1e6),
    "train.ada_interval": (1, 10000),
    "train.save_every": (1, None),
    "train.keep_checkpoints": (1, 1000),
    "train.sample_every": (1, None),
    "train.eval_every": (0, None),
}


def generator_base(size: int) -> tuple[int, int]:
    """Split `size` into base * 2**k with 3 <= base <= 8: the generator's starting grid and its upsamplings."""
    k = 0
    while size % 2 == 0 and size // 2 >= 3 and size > 8:
        size //= 2
        k += 1
    if k == 0 or not 3 <= size <= 8:
        raise ValueError
    return size, k


def valid_sizes(low: int = 16, high: int = 256) -> list[int]:
    sizes = []
    for s in range(low, high + 1):
        try:
            generator_base(s)
            sizes.append(s)
        except ValueError:
            pass
    return sizes


def _sections(cfg: Config) -> dict[str, Any]:
    return {
        f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if dataclasses.is_dataclass(getattr(cfg, f.name))
    }


def all_keys() -> list[str]:
    cfg = Config()
    keys = ["name"]
    for section, obj in _sections(cfg).items():
        keys += [f"{section}.{f.name}" for f in dataclasses.fields(obj)]
    return keys


def _did_you_mean(key: str) -> str:
    close = difflib.get_close_matches(key, all_keys(), n=1, cutoff=0.4)
    if not close:
        short = key.split(".")[-1]
        close = [k for k in all_keys() if k.split(".")[-1] == short] or difflib.get_close_matches(
            short, [k.split(".")[-1] for k in all_keys()], n=1
        )
        close = [k for k in all_keys() if close and k.split(".")[-1] == close[0].split(".")[-1]]
    return f" (did you mean '{close[0]}'?)" if close else ""


def _coerce(key: str, value: Any, type_hint: Any, source: str) -> Any:
    """Check `value` against the field's type, converting strings from `--set` where it is safe."""
    # `str | None` is a types.UnionType, `Optional[str]` a typing.Union: both are optional.
    optional = get_origin(type_hint) in (Union, types.UnionType) and type(None) in get_args(type_hint)
    if optional:
        if value is None or (isinstance(value, str) and value.lower() in ("null", "none", "")):
            return None
        type_hint = next(a for a in get_args(type_hint) if a is not type(None))
    wanted = type_hint
    if wanted is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off", "1", "0"):
            return value.lower() in ("true", "yes", "on", "1")
    elif wanted is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif wanted is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif wanted is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    elif wanted is list:
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip().startswith("[") else [v for v in value.split(",") if v]
        if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return value
        raise UserError(f"{source}: '{key}' must be a list of integers, like [64, 128]; got {value!r}")
    type_name = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[wanted]
    raise UserError(f"{source}: '{key}' must be {type_name}; got {value!r}")


def _set_key(cfg: Config, key: str, value: Any, source: str) -> None:
    parts = key.split(".")
    sections = _sections(cfg)
    if len(parts) == 1 and parts[0] == "name":
        cfg.name = str(value)
        return
    if len(parts) != 2 or parts[0] not in sections:
        raise UserError(f"{source}: unknown config key '{key}'{_did_you_mean(key)}")
    obj = sections[parts[0]]
    hints = get_type_hints(type(obj))
    if parts[1] not in hints:
        raise UserError(f"{source}: unknown config key '{key}'{_did_you_mean(key)}")
    setattr(obj, parts[1], _coerce(key, value, hints[parts[1]], source))


def flatten(data: dict) -> dict[str, Any]:
    """{'train': {'epochs': 5}, 'name': 'x'} -> {'train.epochs': 5, 'name': 'x'}"""
    flat = {}
    for section, body in data.items():
        if isinstance(body, dict):
            for key, value in body.items():
                flat[f"{section}.{key}"] = value
        else:
            flat[str(section)] = body
    return flat


def validate(cfg: Config, source: str = "config") -> Config:
    """Check every range and choice; raise UserError naming the key and what is allowed."""
    flat = flatten(cfg.to_dict())
    for key, choices in CHOICES.items():
        if flat[key] not in choices:
            raise UserError(f"{source}: '{key}' is {flat[key]!r}; choose one of {', '.join(map(str, choices))}")
    for key, (low, high) in RANGES.items():
        value = flat[key]
        # nan passes both comparisons (they are false), so it is rejected by name.
        if math.isnan(value) or (low is not None and value < low) or (high is not None and value > high):
            allowed = f"{low} to {high}" if high is not None else f">= {low}"
            raise UserError(f"{source}: '{key}' is {value}; allowed: {allowed}")
    try:
        generator_base(cfg.data.size)
    except ValueError:
        raise UserError(
            f"{source}: 'data.size' {cfg.data.size} cannot be built as base*2^k with base 3..8; "
            f"valid sizes include {', '.join(map(str, valid_sizes()))}"
        ) from None
    for op in augment_ops(cfg.train.augment):
        if op not in AUGMENT_OPS:
            raise UserError(
                f"{source}: 'train.augment' has unknown op '{op}'; use a comma list of {', '.join(AUGMENT_OPS)}"
            )
    try:
        augment_probability(cfg.train.augment_p)
    except ValueError:
        raise UserError(
            f"{source}: 'train.augment_p' is {cfg.train.augment_p!r}; use auto or a number from 0 to 1"
        ) from None
    widths = cfg.model.d_widths
    if not 1 <= len(widths) <= MAX_D_LAYERS or any(not 1 <= w <= MAX_WIDTH for w in widths):
        raise UserError(
            f"{source}: 'model.d_widths' is {widths}; give 1 to {MAX_D_LAYERS} widths (one stride-2 layer each) "
            f"from 1 to {MAX_WIDTH}, like [64, 128]"
        )
    if cfg.model.g_width >> generator_base(cfg.data.size)[1] < 1:
        raise UserError(f"{source}: 'model.g_width' {cfg.model.g_width} is too small to halve for every upsampling")
    if cfg.preprocess.crop_faces and not cfg.preprocess.cascade:
        raise UserError(
            f"{source}: 'preprocess.crop_faces' needs 'preprocess.cascade' (--cascade PATH), "
            "an OpenCV cascade XML such as lbpcascade_animeface.xml"
        )
    return cfg


def apply_overrides(cfg: Config, overrides: dict[str, Any], source: str) -> Config:
    for key, value in overrides.items():
        _set_key(cfg, key, value, source)
    return cfg


def parse_set_options(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Turn `--set section.key=value` strings into a dict, parsing values as YAML scalars."""
    out = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--set '{item}' needs the form section.key=value, e.g. --set train.g_lr=0.0002")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        out[key.strip()] = value
    return out


def load_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None, sets: tuple[str, ...] = ()
) -> Config:
    """Build the effective config: defaults <- YAML file <- stage flags <- `--set` items, then validate."""
    cfg = Config()
    source = "defaults"
    if path is not None:
        file = resolve_config_path(str(path))
        source = str(file)
        data = read_config_file(file)
        cfg.name = file.stem
        apply_overrides(cfg, flatten(data), source)
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    apply_overrides(cfg, flags, "command line")
    apply_overrides(cfg, parse_set_options(sets), "--set")
    # A bad value may come from any layer, so name every layer that set something.
    layers = [source]
    if flags:
        layers.append("command line")
    if sets:
        layers.append("--set")
    return validate(cfg, " + ".join(layers))


# Keys added after runs were already being saved, with the value that keeps such a run as it was
# trained: a run saved without `model.d_mbstd` had no minibatch-stddev layer, whatever today's default.
BEFORE_THE_KEY_EXISTED = {
    "model.leaky_slope": 0.3,
    "model.d_mbstd": 0,
    "model.d_spectral_norm": False,
    "model.g_upsample": "transpose",
    "model.g_output_kernel": 0,
    "train.loss": "bce",
    "train.r1_gamma": 0.0,
    "train.ema_bn": "live",
    "train.eval_diversity": False,
    "train.augment_p": "1",
}


def config_from_dict(data: dict, source: str) -> Config:
    """Rebuild a config saved in a run directory (keys it lacks: as before they existed)."""
    cfg = Config()
    saved = flatten(data)
    apply_overrides(cfg, {k: v for k, v in BEFORE_THE_KEY_EXISTED.items() if k not in saved}, source)
    apply_overrides(cfg, saved, source)
    return validate(cfg, source)
