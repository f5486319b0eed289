"""What the quality studies share: the held-out split, training a variant as a child `animegan train`,
scoring a checkpoint against the held-out faces, grids, curves, tables and the JSON they write.

Scripts import it with `sys.path.insert(0, <scripts>)`; it imports animegan lazily, so a study's
--help stays fast. The variant tables live here too, so that bench_train.py can time any study's
variant without importing a study script.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # study this checkout, not whichever animegan is installed

HELD_OUT = 2000
SEED = 0

# The stabiliser study (study_stabilisers.py): the default as it was before that study (no minibatch
# stddev, the live generator's BatchNorm statistics in the EMA generator, DiffAugment on every
# image), plus each variant's --set items.
STABILISER_BASE = ["model.d_mbstd=0", "train.ema_bn=live", "train.augment_p=1"]
STABILISER_VARIANTS = {
    "baseline": [],
    "mbstd": ["model.d_mbstd=4"],
    "r1": ["train.r1_gamma=1.0"],
    "r1-strong": ["train.r1_gamma=10.0"],
    "sn": ["model.d_spectral_norm=true"],
    "hinge": ["train.loss=hinge"],
    "slope0.2": ["model.leaky_slope=0.2"],
    "d-deeper": ["model.d_widths=[64,128,256]"],
    "ttur": ["train.g_lr=0.0001", "train.d_lr=0.0004"],
    "color": ["train.augment=translation,cutout,color"],
    "ema-short": ["train.ema_rampup=0.02"],
    "mbstd-sn": ["model.d_mbstd=4", "model.d_spectral_norm=true"],
    "mbstd-r1": ["model.d_mbstd=4", "train.r1_gamma=1.0"],
    "mbstd-ada": ["model.d_mbstd=4", "train.augment_p=auto"],
    "mbstd-ttur": ["model.d_mbstd=4", "train.g_lr=0.0001", "train.d_lr=0.0004"],
    "mbstd-ada-ttur": ["model.d_mbstd=4", "train.augment_p=auto", "train.g_lr=0.0001", "train.d_lr=0.0004"],
    # mbstd-ada's run copied at epoch 25 (its checkpoints to 25) and resumed with a lower target:
    # by then r_t had passed 0.3, so p rises and holds D there.
    "mbstd-ada-t03": ["model.d_mbstd=4", "train.augment_p=auto", "train.ada_target=0.3"],
}

# The texture study (study_texture.py): the default config as it was when that study began
# (minibatch stddev, standing statistics, adaptive augmentation) plus each variant's --set items.
TEXTURE_BASE = [
    "model.g_upsample=transpose",
    "model.g_kernel=5",
    "model.d_widths=[64,128]",
    "model.d_kernel=5",
    "model.d_mbstd=4",
    "train.g_lr=0.0002",
    "train.d_lr=0.0002",
    "train.ema_rampup=0.05",
    "train.ema_bn=standing",
    "train.r1_gamma=0",
    "train.augment_p=auto",
]
# The texture study's answer, today's default: G kernel 4, a third D layer, TTUR.
K4_DEEP_TTUR = ["model.g_kernel=4", "model.d_widths=[64,128,256]", "train.g_lr=0.0001", "train.d_lr=0.0004"]
TEXTURE_VARIANTS = {
    "default": [],
    "resize": ["model.g_upsample=resize", "model.g_kernel=3"],
    "k4": ["model.g_kernel=4"],
    "ttur": ["train.g_lr=0.0001", "train.d_lr=0.0004"],
    "ema-long": ["train.ema_rampup=0.25"],
    "no-mbstd": ["model.d_mbstd=0"],
    "r1": ["train.r1_gamma=1.0"],
    "float32": ["train.precision=float32"],
    "d-wide": ["model.d_widths=[96,192]"],
    "translate": ["train.augment=translation", "train.augment_p=1"],
    # A deeper D (its minibatch-stddev feature then sees 7x7 maps: shapes, not pixels), paid for by G's
    # kernel 4, which also spreads the stride-2 taps evenly.
    "k4-deep": ["model.g_kernel=4", "model.d_widths=[64,128,256]"],
    "k4-deep-ttur": K4_DEEP_TTUR,
    # The new default at half the batch: twice the steps for the same images (the demo's best lever).
    "k4-deep-ttur-b64": [*K4_DEEP_TTUR, "train.batch_size=64"],
    # ... and G's learning rate doubled as well (colour starts slowly at G 1e-4).
    "k4-deep-ttur-b64-glr2": [*K4_DEEP_TTUR, "train.batch_size=64", "train.g_lr=0.0002"],
    # Colour at batch 64 without the color op: its saturation jitter may teach D to overlook chroma noise.
    "k4-deep-ttur-b64-nocolor": [*K4_DEEP_TTUR, "train.batch_size=64", "train.augment=translation,cutout"],
    "k4-deep-ttur-nocolor": [*K4_DEEP_TTUR, "train.augment=translation,cutout"],
    # The new default with a 3x3 conv at full size drawing the image (model.g_output_kernel).
    "k4-deep-ttur-out3": [*K4_DEEP_TTUR, "model.g_output_kernel=3"],
}

# The texture study on the demo config (study_texture.py --config demo): its networks are smaller, so
# its base and variants are its own.
DEMO_BASE = [
    "model.g_width=128",
    "model.g_kernel=5",
    "model.d_widths=[32,64]",
    "model.d_kernel=5",
    "model.d_mbstd=4",
    "train.g_lr=0.0002",
    "train.d_lr=0.0002",
    "train.ema_rampup=0.05",
    "train.batch_size=32",
    "train.augment_p=auto",
]
DEMO_VARIANTS = {
    "demo": [],
    "demo-k4-deep": ["model.g_kernel=4", "model.d_widths=[32,64,128]"],
    "demo-k4-wide-deep": ["model.g_kernel=4", "model.d_widths=[64,128,256]"],
    "demo-no-mbstd": ["model.d_mbstd=0"],
    "demo-ttur": ["train.g_lr=0.0001", "train.d_lr=0.0004"],
    "demo-float32": ["train.precision=float32"],
    "demo-sn": ["model.d_spectral_norm=true"],
    "demo-resize": ["model.g_upsample=resize", "model.g_kernel=3"],
    # R1 smooths D's gradient on real faces, the gradient G follows: a noisy one draws noise.
    "demo-r1": ["train.r1_gamma=1.0"],
    "demo-r1-10": ["train.r1_gamma=10.0"],
    # The demo G's last hidden layer has 16 channels (g_width 128 halved three times): too few for
    # flat colours? A wider G, and twice the steps at the same images.
    "demo-g256": ["model.g_width=256"],
    "demo-g256-resize": ["model.g_width=256", "model.g_upsample=resize", "model.g_kernel=3"],
    "demo-b16": ["train.batch_size=16"],
    # DiffAugment's colour op shifts brightness, saturation and contrast of every image D sees: a D
    # taught to shrug at colour may let G's hues wander. Without it, and with no augmentation at all.
    "demo-b16-translation": ["train.batch_size=16", "train.augment=translation"],
    "demo-b16-noaug": ["train.batch_size=16", "train.augment_p=0"],
    # The live G's colours flicker from step to step (its own grid is noisier than the EMA's): a longer
    # EMA averages more of the flicker away.
    "demo-b16-ema": [
        "train.batch_size=16",
        "train.augment=translation",
        "train.ema_decay=0.9995",
        "train.ema_rampup=0.2",
    ],
    # The last stride-2 layer draws features, a 3x3 conv at full size the colours (model.g_output_kernel).
    "demo-out3": ["model.g_output_kernel=3"],
    # More of each step: twice the learning rate.
    "demo-b16-lr4": ["train.batch_size=16", "train.g_lr=0.0004", "train.d_lr=0.0004"],
    "demo-b16-out3": ["train.batch_size=16", "train.augment=translation", "model.g_output_kernel=3"],
    "demo-b16-out3-color": ["train.batch_size=16", "model.g_output_kernel=3"],
    "demo-b16-out3-k4": [
        "train.batch_size=16",
        "train.augment=translation",
        "model.g_output_kernel=3",
        "model.g_kernel=4",
    ],
}

STUDIES = {
    "study": (STABILISER_BASE, STABILISER_VARIANTS),
    "texture": (TEXTURE_BASE, TEXTURE_VARIANTS),
    "demo": (DEMO_BASE, DEMO_VARIANTS),
}


def variant_overrides(spec: str) -> list[str]:
    """'texture:resize' (or 'study:mbstd', the stabiliser study) -> that variant's --set items, its base first."""
    study, _, name = spec.partition(":")
    base, variants = STUDIES[study]
    return base + variants[name]


def cpu_name() -> str:
    """The CPU's model name, core count and native bf16 flags: every published figure names it."""
    flags = Path("/proc/cpuinfo").read_text()
    model = next(
        (line.split(":", 1)[1].strip() for line in flags.splitlines() if line.startswith("model name")),
        platform.processor(),
    )
    extras = [flag for flag in ("avx512_bf16", "amx_bf16") if f" {flag}" in flags]
    return f"{model}, {os.cpu_count()} cores" + (f" ({', '.join(extras)})" if extras else " (no native bf16)")


def held_out_split(faces: Path) -> tuple[list[Path], list[Path]]:
    """(training paths, HELD_OUT held-out paths): a seeded choice, the same on every machine for the same folder."""
    from animegan.data import list_images

    paths = list_images(faces)
    held = set(np.random.default_rng(SEED).choice(len(paths), HELD_OUT, replace=False).tolist())
    return [p for i, p in enumerate(paths) if i not in held], [p for i, p in enumerate(paths) if i in held]


def link_farm(paths: list[Path], folder: Path) -> Path:
    """A folder of symlinks to `paths`: a training set without copying (or writing into) the faces."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in paths:
        link = folder / path.name
        if not link.exists():
            link.symlink_to(path.resolve())
    return folder


def split_faces(faces: Path, work: Path) -> tuple[Path, Path]:
    """Symlink farms work/train and work/heldout."""
    train_paths, held_paths = held_out_split(faces)
    return link_farm(train_paths, work / "train"), link_farm(held_paths, work / "heldout")


def trained_epochs(run: Path) -> int:
    from animegan.metricslog import read_metrics

    epochs = [r["epoch"] for r in read_metrics(run) if "event" not in r] if (run / "metrics.jsonl").exists() else []
    return max(epochs, default=0)


def train(name: str, overrides: list[str], train_dir: Path, runs: Path, epochs: int, config: str | None = None) -> Path:
    """Train runs/<name> to `epochs` with the --set items `overrides` (resuming a shorter run; a
    finished one is left alone). A resume gets them too: a key added since keeps its study value."""
    run = runs / name
    if trained_epochs(run) >= epochs:
        return run
    command = [str(Path(sys.executable).with_name("animegan")), "train", "--epochs", str(epochs)]
    if (run / "config.yaml").exists():
        command += ["--resume", str(run)]
    else:
        command += ["--data", str(train_dir), "--name", name, "--set", f"train.runs_dir={runs}"]
        command += ["--config", config] if config else []
    for item in overrides:
        command += ["--set", item]
    print(" ".join(command), flush=True)
    subprocess.run(command, check=True)
    return run


def images_per_second(run: Path) -> float:
    from animegan.metricslog import read_metrics

    return statistics.median(r["images_per_s"] for r in read_metrics(run) if "images_per_s" in r)


def scored_generator(run: Path, epoch: int, bn: str):
    """(EMA generator at `epoch`, config). bn "standing" first gives it BatchNorm statistics of its own
    (train.ema_bn: standing): that changes no training step, so a variant can be scored both ways
    from the same checkpoint; "live" scores it as the checkpoint holds it."""
    from animegan.checkpoints import load_generator
    from animegan.ema import standing_batchnorm_stats

    generator, cfg, _ = load_generator(run, str(epoch))
    if bn == "standing":
        standing_batchnorm_stats(generator, cfg.train.seed)
    return generator, cfg


def score(run: Path, heldout: Path, epoch: int, n: int, bn: str, metrics: list[str]) -> dict:
    """The EMA generator at `epoch`, with BatchNorm statistics `bn`, against n held-out faces."""
    from animegan.metrics import score_generator

    generator, cfg = scored_generator(run, epoch, bn)
    return score_generator(generator, heldout, cfg.data.size, cfg.data.channels, metrics, n)


def write_grid(generator, path: Path) -> None:
    """The 8x8 grid of the first 64 scoring noises (seed 0, as score() draws them)."""
    from animegan.images import make_grid, to_uint8, write_png
    from animegan.sample import draw_noise

    noise = draw_noise(64, generator.input_shape[-1], 0)
    write_png(path, make_grid(to_uint8(generator(noise, training=False).numpy())))


def plot_curve(records: list[dict], title: str, path: Path) -> None:
    """quality.png's panels for one variant's scores at several epochs."""
    from animegan.monitor import quality_figure, save_png

    save_png(quality_figure(sorted(records, key=lambda r: r["epoch"]), title), path)


def write_json(path: Path, results: dict) -> None:
    """Whole or not at all: the file is read back when the study resumes."""
    from animegan.files import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(results, indent=2) + "\n")


def read_results(path: Path, empty: dict) -> dict:
    """The results a study wrote so far (it resumes from them), or `empty`."""
    return json.loads(path.read_text()) if path.exists() else empty


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(
        ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"] + ["| " + " | ".join(r) + " |" for r in rows]
    )
