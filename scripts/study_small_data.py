"""Small data sets at equal images: nested subsets of the faces, trained with no augmentation, with
today's fixed DiffAugment and with adaptive augmentation (ADA's p), each for the same number of
images; scored against faces kept out of every subset, and checked for copying.

    nice -n 10 python scripts/study_small_data.py --faces ../main/face 1000 300 3000 16669

The held-out faces are studylib's (HELD_OUT seeded faces); the subsets are drawn from
the rest with another seed and are nested (the 300 are the first 300 of the 1,000, ...; 16669 is
all of them). Each (subset, variant) run trains for about --images images at the default config's
batch size, in --work/runs/<subset>-<variant>, as a child `animegan train` process, and is scored
half-way and at the end (scores already in --out are kept). A finished run is left alone, a
shorter one is resumed: stop the script any time and start it again.

Scores: SWD, precision/recall/density/coverage and the within-set diversity figures ("swd,prdc,
diversity", studylib.score) on --n samples against --n held-out faces; and copying: each
sample's RMS pixel distance (in [0, 1]) to its nearest training image, against the same for the
held-out faces. A generator that copies its training images sits closer to them than unseen real
faces do (train_nn_ratio below 1, copies above 0.01). Results go to --out as JSON after every
score, a Markdown table is printed, and each run's final 8x8 sample grid is copied next to the JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from studylib import (
    ROOT,
    SEED,
    cpu_name,
    held_out_split,
    images_per_second,
    link_farm,
    score,
    scored_generator,
    train,
    write_json,
)  # noqa: E402

BATCH = 128  # the default config's: each run's epochs are counted from it
# The default config when this study ran (minibatch stddev in D, the EMA generator's own BatchNorm
# statistics): every variant starts from it, so the study stays the same study whatever the default becomes.
BASE = ["model.d_mbstd=4", "train.ema_bn=standing"]
VARIANTS = {
    "none": ["train.augment="],
    "fixed": ["train.augment=translation,cutout", "train.augment_p=1"],
    "ada": ["train.augment=translation,cutout", "train.augment_p=auto"],
}
METRICS = ["swd", "prdc", "diversity"]
AS_SAVED = "live"  # score the EMA generator with the BatchNorm statistics its checkpoint holds (standing, from BASE)
COPY_QUANTILE = 0.01  # a "copy" is closer to a training image than 99% of held-out faces are


def nested_subsets(faces: Path, work: Path, sizes: list[int]) -> tuple[dict[int, Path], Path]:
    """Link farms work/subset-<n> (nested, seeded) and work/heldout."""
    train_paths, held_paths = held_out_split(faces)
    order = np.random.default_rng([SEED, 1]).permutation(len(train_paths))
    subsets = {n: link_farm([train_paths[i] for i in order[:n]], work / f"subset-{n}") for n in sizes}
    return subsets, link_farm(held_paths, work / "heldout")


def half_way(images: int, subset: int) -> int:
    """Epochs for half of `images` (an epoch is whole batches only)."""
    return math.ceil(images / 2 / ((subset // BATCH) * BATCH))


def copying(run: Path, epoch: int, train_dir: Path, heldout: Path, n: int) -> dict:
    """How close samples sit to the training images, against how close unseen real faces sit."""
    from animegan.data import load_images
    from animegan.metrics.diversity import nearest_distances
    from animegan.metrics.evaluate import generate_images

    generator, cfg = scored_generator(run, epoch, AS_SAVED)
    size, channels = cfg.data.size, cfg.data.channels
    training = load_images(train_dir, size, channels, show_progress=False, cache=False)
    samples = nearest_distances(generate_images(generator, n, seed=0), training)
    held = nearest_distances(load_images(heldout, size, channels, n, show_progress=False, cache=False), training)
    return {
        "sample_train_nn_median": float(np.median(samples)),
        "sample_train_nn_mean": float(np.mean(samples)),
        "heldout_train_nn_median": float(np.median(held)),
        "heldout_train_nn_mean": float(np.mean(held)),
        "train_nn_ratio": float(np.median(samples) / np.median(held)),
        "copies": float(np.mean(samples < np.quantile(held, COPY_QUANTILE))),
    }


def adaptive_state(run: Path, epoch: int) -> dict:
    """augment_p and ada_rt of that epoch, as metrics.jsonl logged them (a resume's last record of it counts)."""
    from animegan.metricslog import read_metrics

    record = [r for r in read_metrics(run) if r.get("epoch") == epoch and "event" not in r][-1]
    return {k: record[k] for k in ("augment_p", "ada_rt") if k in record}


def table(results: dict) -> str:
    columns = [
        ("images", "images", "{:,}"),
        ("swd", "SWD", "{:.1f}"),
        ("near_duplicates", "near-dup", "{:.3f}"),
        ("nn_ratio", "nn ratio", "{:.2f}"),
        ("precision", "precision", "{:.2f}"),
        ("recall", "recall", "{:.2f}"),
        ("coverage", "coverage", "{:.2f}"),
        ("sample_train_nn_median", "sample→train NN", "{:.4f}"),
        ("heldout_train_nn_median", "held-out→train NN", "{:.4f}"),
        ("train_nn_ratio", "NN ratio", "{:.2f}"),
        ("copies", "copies", "{:.3f}"),
        ("augment_p", "p", "{:.2f}"),
        ("ada_rt", "r_t", "{:.2f}"),
        ("images_per_s", "img/s", "{:.0f}"),
    ]
    lines = [
        "| faces | variant | seed | " + " | ".join(title for _, title, _ in columns) + " |",
        "|---" * (len(columns) + 3) + "|",
    ]
    for entry in sorted(
        results["runs"].values(), key=lambda e: (e["subset"], list(VARIANTS).index(e["variant"]), e.get("seed", 0))
    ):
        for point in sorted(entry["scores"].values(), key=lambda point: point["epoch"]):
            values = {**point, **{k: entry[k] for k in ("images_per_s",) if k in entry}}
            cells = [fmt.format(values[key]) if key in values else "–" for key, _, fmt in columns]
            lines.append(
                f"| {entry['subset']:,} | {entry['variant']} | {entry.get('seed', 0)} | " + " | ".join(cells) + " |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("subsets", nargs="+", type=int, help="subset sizes, run in this order (e.g. 1000 300 3000)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {', '.join(VARIANTS)}")
    parser.add_argument("--faces", type=Path, default=Path("face"), help="preprocessed faces (56x56 gray), read only")
    parser.add_argument("--work", type=Path, default=Path("study-small-out"), help="subset link farms and runs")
    parser.add_argument("--images", type=int, default=200_000, help="images each run trains for (scored half-way too)")
    parser.add_argument(
        "--seed", type=int, default=0, help="train.seed: another seed repeats a run to show the spread between seeds"
    )
    parser.add_argument("--n", type=int, default=2000, help="samples and held-out faces per score")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "quality" / "small-data" / "results.json")
    args = parser.parse_args()
    variants = [v.strip() for v in args.variants.split(",")]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")

    from animegan.checkpoints import checkpoint_epochs

    subsets, heldout = nested_subsets(args.faces, args.work, args.subsets)
    results = write_header(args)
    for subset in args.subsets:
        for variant in variants:
            name = f"{subset}-{variant}" + (f"-seed{args.seed}" if args.seed else "")
            overrides = BASE + VARIANTS[variant] + ([f"train.seed={args.seed}"] if args.seed else [])
            half = half_way(args.images, subset)
            entry = results["runs"].setdefault(
                name, {"subset": subset, "variant": variant, "seed": args.seed, "scores": {}}
            )
            entry.update({"overrides": overrides, "epochs": 2 * half})
            # Trained in two legs, each scored as it ends: the half-way checkpoint need not be kept.
            extra = (
                f"train.save_every={max(1, half // 4)}",
                "train.keep_checkpoints=2",
                f"train.sample_every={max(1, half // 4)}",
            )
            for epochs in (half, 2 * half):
                run = train(name, [*extra, *overrides], subsets[subset], args.work / "runs", epochs)
                if str(epochs) not in entry["scores"] and epochs in checkpoint_epochs(
                    run
                ):  # a finished run is not scored twice
                    entry["scores"][str(epochs)] = {
                        "epoch": epochs,
                        "images": epochs * (subset // BATCH) * BATCH,
                        **adaptive_state(run, epochs),
                        **score(run, heldout, epochs, args.n, AS_SAVED, METRICS),
                        **copying(run, epochs, subsets[subset], heldout, args.n),
                    }
                    write_json(args.out, results)
            entry["images_per_s"] = images_per_second(run)
            shutil.copyfile(run / "samples" / f"epoch_{2 * half:04d}.png", args.out.parent / f"{name}.png")
            write_json(args.out, results)
            print(table(results), flush=True)


def write_header(args) -> dict:
    """The results so far (a resumed study keeps them) with this invocation's settings."""
    results = json.loads(args.out.read_text()) if args.out.exists() else {"runs": {}}
    results.update({"cpu": cpu_name(), "n": args.n, "images_per_run": args.images, "batch_size": BATCH})
    command = "python scripts/study_small_data.py " + " ".join(sys.argv[1:])
    results.setdefault("commands", [])
    if command not in results["commands"]:
        results["commands"].append(command)
    write_json(args.out, results)
    return results


if __name__ == "__main__":
    main()
