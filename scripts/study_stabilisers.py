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
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import studylib  # noqa: E402
from studylib import STABILISER_BASE as BEFORE  # noqa: E402
from studylib import STABILISER_VARIANTS as VARIANTS

METRICS = ["swd", "prdc", "diversity"]


def write_grids(run: Path, epoch: int, stem: Path) -> None:
    """The 8x8 grid of the first 64 scoring noises, with the EMA generator's BatchNorm statistics both ways."""
    for bn in ("live", "standing"):
        generator, _ = studylib.scored_generator(run, epoch, bn)
        studylib.write_grid(generator, Path(f"{stem}-{bn}.png"))


def plot_curve(entry: dict, variant: str, path: Path) -> None:
    """quality.png's panels for one variant's standing-statistics scores against the held-out faces."""
    records = [
        {"epoch": int(key.split("-")[0]), "event": "evaluate", **scores}
        for key, scores in entry["scores"].items()
        if key.endswith("-standing")
    ]
    studylib.plot_curve(records, f"{variant}: 2,000 samples vs 2,000 held-out faces", path)


def table(results: dict) -> str:
    columns = ["swd", "precision", "recall", "density", "coverage", "near_duplicates", "nn_ratio", "spread_ratio"]
    lines = ["| variant | epoch | EMA BN | " + " | ".join(columns) + " | img/s |", "|---" * (len(columns) + 4) + "|"]
    for variant, entry in results["variants"].items():
        for key, scores in sorted(entry["scores"].items(), key=lambda item: (int(item[0].split("-")[0]), item[0])):
            epoch, bn = key.split("-")
            cells = [f"{scores[c]:.3f}" if c != "swd" else f"{scores[c]:.1f}" for c in columns]
            lines.append(f"| {variant} | {epoch} | {bn} | " + " | ".join(cells) + f" | {entry['images_per_s']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    from animegan.data import list_images

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="+", choices=sorted(VARIANTS))
    parser.add_argument("--faces", type=Path, default=Path("face"), help="preprocessed faces (56x56 gray)")
    parser.add_argument("--work", type=Path, default=Path("study-out"), help="split folders and runs")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--eval-epochs", default=None, help="comma list (default: --epochs)")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=studylib.ROOT / "docs" / "quality" / "stabilisers" / "results.json")
    args = parser.parse_args()
    eval_epochs = [int(e) for e in (args.eval_epochs or str(args.epochs)).split(",")]

    train_dir, heldout = studylib.split_faces(args.faces, args.work)
    runs = args.work / "runs"
    results = studylib.read_results(args.out, {"variants": {}})
    results.update(
        {
            "cpu": studylib.cpu_name(),
            "n": args.n,
            "held_out": studylib.HELD_OUT,
            "train_images": len(list_images(train_dir)),
        }
    )
    for variant in args.variants:
        run = studylib.train(
            variant,
            ["train.save_every=5", "train.keep_checkpoints=100", *BEFORE, *VARIANTS[variant]],
            train_dir,
            runs,
            args.epochs,
        )
        # A checkpoint's scores do not change, so those already in the JSON are kept.
        entry = results["variants"].setdefault(variant, {"scores": {}})
        entry["overrides"] = VARIANTS[variant]
        entry["images_per_s"] = studylib.images_per_second(run)
        for epoch in eval_epochs:
            for bn in ("live", "standing"):
                if f"{epoch}-{bn}" not in entry["scores"]:
                    entry["scores"][f"{epoch}-{bn}"] = studylib.score(run, heldout, epoch, args.n, bn, METRICS)
                    studylib.write_json(args.out, results)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_grids(run, max(eval_epochs), args.out.parent / f"{variant}-epoch{max(eval_epochs)}")
        if len(eval_epochs) >= 3:
            plot_curve(entry, variant, args.out.parent / f"{variant}-quality.png")
        studylib.write_json(args.out, results)
        print(table(results), flush=True)


if __name__ == "__main__":
    main()
