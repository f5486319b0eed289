"""Side-by-side study of GAN stabilisers at equal images: each variant trains from the same seed on
the same faces, then its EMA generator is scored against faces kept out of training.

    animegan preprocess ../shared/data/anime-faces-64 face/           # once: 18,669 faces, 56x56 gray
    python scripts/study_stabilisers.py --faces face/ --epochs 10 baseline mbstd r1 sn hinge
    python scripts/study_stabilisers.py --faces face/ --epochs 50 --eval-epochs 10,20,30,40,50 mbstd-ada

Each variant is the default config as it was before the study (BEFORE) plus the --set overrides in
VARIANTS. The script holds out HELD_OUT faces (a seeded choice; the same on every machine for the
same folder) and trains on the rest; the training and held-out folders are symlink farms under
--work. A variant already trained to --epochs is only scored, at the epochs not scored before (a
checkpoint's scores do not change); a shorter one is resumed: stop the script any time and start
it again. Results (SWD, precision/recall/density/coverage, near-duplicates, images/s, the CPU) go
to --out as JSON after every score, and a Markdown table is printed after every variant; each
variant's 8x8 grid at its last evaluated epoch is written next to the JSON. Every checkpoint is
scored twice: with the EMA generator's BatchNorm statistics as training left them, and with
standing statistics (train.ema_bn: standing), which changes no training step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HELD_OUT = 2000
SEED = 0
METRICS = ["swd", "prdc", "diversity"]

# The default config as it was before this study (no minibatch stddev, the live generator's BatchNorm
# statistics in the EMA generator, DiffAugment on every image): every variant starts from it, so the
# study stays the same study whatever the default becomes. Keys are config keys (--set).
BEFORE = ["model.d_mbstd=0", "train.ema_bn=live", "train.augment_p=1"]

# Each stabiliser alone, then combinations of the ones that help.
VARIANTS = {
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


def cpu_name() -> str:
    flags = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in flags.splitlines() if line.startswith("model name")), platform.processor())
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
    from animegan.rundir import read_metrics

    epochs = [r["epoch"] for r in read_metrics(run) if "event" not in r] if (run / "metrics.jsonl").exists() else []
    return max(epochs, default=0)


def train(name: str, overrides: list[str], train_dir: Path, runs: Path, epochs: int) -> Path:
    """Train runs/<name> to `epochs` with the --set items `overrides` (resuming a shorter run; a
    finished one is left alone). A resume gets them too: a key added since keeps its study value."""
    run = runs / name
    done = trained_epochs(run)
    if done >= epochs:
        return run
    command = [str(Path(sys.executable).with_name("animegan")), "train", "--epochs", str(epochs)]
    if (run / "config.yaml").exists():
        command += ["--resume", str(run)]
    else:
        command += ["--data", str(train_dir), "--name", name, "--set", f"train.runs_dir={runs}"]
    for item in overrides:
        command += ["--set", item]
    print(" ".join(command), flush=True)
    subprocess.run(command, check=True)
    return run


def images_per_second(run: Path) -> float:
    from animegan.rundir import read_metrics

    rates = [r["images_per_s"] for r in read_metrics(run) if "images_per_s" in r]
    return statistics.median(rates)


def scored_generator(run: Path, epoch: int, bn: str):
    """(EMA generator at `epoch`, config). bn "standing" first gives it BatchNorm statistics of its own
    (train.ema_bn: standing): that changes no training step, so every variant is scored both ways
    from the same checkpoint."""
    from animegan.rundir import load_generator
    from animegan.ema import standing_batchnorm_stats

    generator, cfg, _ = load_generator(run, str(epoch))
    if bn == "standing":
        standing_batchnorm_stats(generator, cfg.train.seed)
    return generator, cfg


def score(run: Path, heldout: Path, epoch: int, n: int, bn: str) -> dict:
    """The EMA generator at `epoch`, with BatchNorm statistics `bn`, against the held-out faces."""
    from animegan.metrics.evaluate import cached_real_features, extract_all, feature_extractors, generate_images
    from animegan.metrics.evaluate import score as compare

    generator, cfg = scored_generator(run, epoch, bn)
    extractors = feature_extractors(METRICS)
    real = cached_real_features(heldout, cfg.data.size, cfg.data.channels, n, extractors, show_progress=False)
    return compare(METRICS, real, extract_all(extractors, generate_images(generator, n, seed=0)))


def write_grids(run: Path, epoch: int, stem: Path) -> None:
    """The 8x8 grid of the first 64 scoring noises, with the EMA generator's BatchNorm statistics both ways."""
    from animegan.images import make_grid, to_uint8, write_png
    from animegan.rundir import load_generator
    from animegan.sample import draw_noise
    from animegan.ema import standing_batchnorm_stats

    generator, cfg, _ = load_generator(run, str(epoch))
    noise = draw_noise(64, generator.input_shape[-1], 0)
    for bn in ("live", "standing"):
        if bn == "standing":
            standing_batchnorm_stats(generator, cfg.train.seed)
        write_png(Path(f"{stem}-{bn}.png"), make_grid(to_uint8(generator(noise, training=False).numpy())))


def plot_curve(entry: dict, variant: str, path: Path) -> None:
    """quality.png's panels for one variant's standing-statistics scores against the held-out faces."""
    from animegan.monitor import quality_figure, save_png

    records = [{"epoch": int(key.split("-")[0]), "event": "evaluate", **scores}
               for key, scores in entry["scores"].items() if key.endswith("-standing")]
    save_png(quality_figure(sorted(records, key=lambda r: r["epoch"]), f"{variant}: 2,000 samples vs 2,000 held-out faces"), path)


def table(results: dict) -> str:
    columns = ["swd", "precision", "recall", "density", "coverage", "near_duplicates", "nn_ratio", "spread_ratio"]
    lines = ["| variant | epoch | EMA BN | " + " | ".join(columns) + " | img/s |", "|---" * (len(columns) + 4) + "|"]
    for variant, entry in results["variants"].items():
        for key, scores in sorted(entry["scores"].items(), key=lambda item: (int(item[0].split("-")[0]), item[0])):
            epoch, bn = key.split("-")
            cells = [f"{scores[c]:.3f}" if c != "swd" else f"{scores[c]:.1f}" for c in columns]
            lines.append(f"| {variant} | {epoch} | {bn} | " + " | ".join(cells) + f" | {entry['images_per_s']:.0f} |")
    return "\n".join(lines)


def write_json(path: Path, results: dict) -> None:
    """Whole or not at all: the file is read back when the study resumes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(path)


def main() -> None:
    from animegan.data import list_images

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="+", choices=sorted(VARIANTS))
    parser.add_argument("--faces", type=Path, default=Path("face"), help="preprocessed faces (56x56 gray)")
    parser.add_argument("--work", type=Path, default=Path("study-out"), help="split folders and runs")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--eval-epochs", default=None, help="comma list (default: --epochs)")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "quality" / "stabilisers" / "results.json")
    args = parser.parse_args()
    eval_epochs = [int(e) for e in (args.eval_epochs or str(args.epochs)).split(",")]

    train_dir, heldout = split_faces(args.faces, args.work)
    runs = args.work / "runs"
    results = json.loads(args.out.read_text()) if args.out.exists() else {"variants": {}}
    results.update({"cpu": cpu_name(), "n": args.n, "held_out": HELD_OUT, "train_images": len(list_images(train_dir))})
    for variant in args.variants:
        run = train(variant, ["train.save_every=5", "train.keep_checkpoints=100", *BEFORE, *VARIANTS[variant]], train_dir, runs, args.epochs)
        # A checkpoint's scores do not change, so those already in the JSON are kept.
        entry = results["variants"].setdefault(variant, {"scores": {}})
        entry["overrides"] = VARIANTS[variant]
        entry["images_per_s"] = images_per_second(run)
        for epoch in eval_epochs:
            for bn in ("live", "standing"):
                if f"{epoch}-{bn}" not in entry["scores"]:
                    entry["scores"][f"{epoch}-{bn}"] = score(run, heldout, epoch, args.n, bn)
                    write_json(args.out, results)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_grids(run, max(eval_epochs), args.out.parent / f"{variant}-epoch{max(eval_epochs)}")
        if len(eval_epochs) >= 3:
            plot_curve(entry, variant, args.out.parent / f"{variant}-quality.png")
        write_json(args.out, results)
        print(table(results), flush=True)


if __name__ == "__main__":
    main()
