"""Texture study at equal images: which change gives crisp faces without losing the variety.

    animegan preprocess ../shared/data/anime-faces-64 face/                          # 56x56 grey
    animegan preprocess ../shared/data/anime-faces-64 face64/ --size 64 --color      # 64x64 colour
    python scripts/study_texture.py --faces face/ --epochs 10,20 default resize ttur
    python scripts/study_texture.py --faces face64/ --config anime64-rgb --tag rgb --epochs 10 default resize
    animegan demo-data demo-raw/ --n 4000 && animegan preprocess demo-raw/ demo-face4k/ --config demo
    python scripts/study_texture.py --faces demo-face4k/ --config demo --tag demo --epochs 40 demo demo-k4-deep

Each variant is the default config as it was when the study began (studylib.TEXTURE_BASE; with
--config demo, the demo config's DEMO_BASE) plus the --set items of studylib.TEXTURE_VARIANTS
(DEMO_VARIANTS), trained from the same seed on the same faces, with the same studylib.HELD_OUT
faces kept out (a seeded split). At every epoch of --epochs the run is trained to
that epoch (a shorter run is resumed, a longer one left alone) and its EMA generator, as its
checkpoint holds it, is scored on --n samples against --n held-out faces with SWD, prdc, fd,
diversity and spectrum; its 8x8 grid of the first 64 scoring noises is written beside the JSON.
Results go to --out after every score (scores already there are kept: a checkpoint's scores do not
change), and a Markdown table is printed after every variant. Stop it any time and start it again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import studylib  # noqa: E402

METRICS = ["swd", "prdc", "fd", "diversity", "spectrum"]
COLUMNS = [
    ("swd", "SWD", "{:.1f}"),
    ("fd", "FD", "{:.1f}"),
    ("spectrum", "spectrum dB", "{:.2f}"),
    ("spectrum_hf", "HF dB", "{:+.2f}"),
    ("precision", "precision", "{:.2f}"),
    ("recall", "recall", "{:.3f}"),
    ("density", "density", "{:.2f}"),
    ("coverage", "coverage", "{:.2f}"),
    ("near_duplicates", "near-dup", "{:.1%}"),
    ("nn_ratio", "NN ratio", "{:.2f}"),
]


def table(results: dict) -> str:
    rows = []
    for variant, entry in results["variants"].items():
        for epoch, scores in sorted(entry["scores"].items(), key=lambda item: int(item[0])):
            cells = [fmt.format(scores[key]) if key in scores else "–" for key, _, fmt in COLUMNS]
            rows.append([variant, epoch, *cells, f"{entry.get('images_per_s', 0):.0f}"])
    return studylib.markdown_table(["variant", "epoch", *(title for _, title, _ in COLUMNS), "img/s"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "variants", nargs="+", help="names in studylib.TEXTURE_VARIANTS (DEMO_VARIANTS with --config demo)"
    )
    parser.add_argument("--faces", type=Path, default=Path("face"), help="preprocessed faces, read only")
    parser.add_argument("--config", default=None, help="the config each variant starts from (default: default)")
    parser.add_argument("--tag", default="grey", help="names the work folder and the results file")
    parser.add_argument(
        "--work", type=Path, default=Path("study-out"), help="split folders and runs go to WORK/texture-TAG"
    )
    parser.add_argument("--epochs", default="10,20", help="comma list: train to each, score each")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=None, help="default: docs/quality/texture/TAG.json")
    args = parser.parse_args()
    base, variants = studylib.STUDIES["demo" if args.config == "demo" else "texture"]
    unknown = sorted(set(args.variants) - set(variants))
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(variants)}")
    epochs = sorted(int(e) for e in args.epochs.split(","))
    out = args.out or studylib.ROOT / "docs" / "quality" / "texture" / f"{args.tag}.json"

    work = args.work / f"texture-{args.tag}"
    train_dir, heldout = studylib.split_faces(args.faces, work)
    results = studylib.read_results(out, {"variants": {}})
    results.update(
        {
            "cpu": studylib.cpu_name(),
            "n": args.n,
            "held_out": studylib.HELD_OUT,
            "config": args.config or "default",
            "base": base,
        }
    )
    for variant in args.variants:
        overrides = [
            "train.save_every=5",
            "train.keep_checkpoints=100",
            "train.sample_every=5",
            *base,
            *variants[variant],
        ]
        entry = results["variants"].setdefault(variant, {"scores": {}})
        entry["overrides"] = variants[variant]
        for epoch in epochs:
            run = studylib.train(variant, overrides, train_dir, work / "runs", epoch, args.config)
            entry["images_per_s"] = studylib.images_per_second(run)
            if str(epoch) not in entry["scores"]:
                entry["scores"][str(epoch)] = studylib.score(run, heldout, epoch, args.n, "live", METRICS)
                generator, _ = studylib.scored_generator(run, epoch, "live")
                studylib.write_grid(generator, out.parent / f"{args.tag}-{variant}-epoch{epoch}.png")
                studylib.write_json(out, results)
        if len(entry["scores"]) >= 3:
            records = [{"epoch": int(e), "event": "evaluate", **s} for e, s in entry["scores"].items()]
            studylib.plot_curve(
                records,
                f"{variant}: {args.n:,} samples vs {args.n:,} held-out faces",
                out.parent / f"{args.tag}-{variant}-quality.png",
            )
        studylib.write_json(out, results)
        print(table(results), flush=True)


if __name__ == "__main__":
    main()
