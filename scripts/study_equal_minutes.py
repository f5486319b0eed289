"""Quality at equal CPU-minutes: the old default grey config against the new, from the studies' scores.

    python scripts/bench_train.py --paired texture:default,texture:k4-deep-ttur,texture:k4-deep-ttur-b64 --batch 128 \
        --precisions mixed_bfloat16 --repeats 8 --steps 16 --out docs/quality/texture/speed-equal-minutes.json
    python scripts/study_equal_minutes.py --speed docs/quality/texture/speed-equal-minutes.json

The new default trains fewer images a second than the old one, so "better at equal images" is not
enough: it must also win at equal minutes. No run is trained here. The scores come from the studies
(the old default is the stabiliser study's `mbstd-ada`, scored with standing statistics every 5
epochs to 50; the new ones are the texture study's grey runs), the speed from a `bench_train.py
--paired` run on the CPU the studies ran on, and the minutes to reach epoch E are
E x training images / that variant's median img/s (training steps only; sample grids, checkpoints
and evaluations cost both alike). At each --budgets mark every variant is shown at its last scored
epoch that fits: the checkpoint a `train --minutes` run would have had. A variant whose scores end
before a mark is shown at its last epoch and flagged, so an old default that would have trained on
is never shown better than it was. Prints a Markdown table, writes JSON and a plot beside --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import studylib  # noqa: E402
from study_texture import COLUMNS  # noqa: E402

QUALITY = studylib.ROOT / "docs" / "quality"
# (label, bench variant, results file, variant in it, suffix of its score keys)
CURVES = [
    ("old default", "texture:default", QUALITY / "stabilisers" / "results.json", "mbstd-ada", "-standing"),
    ("new, batch 128", "texture:k4-deep-ttur", QUALITY / "texture" / "grey.json", "k4-deep-ttur", ""),
    ("new, batch 64", "texture:k4-deep-ttur-b64", QUALITY / "texture" / "grey.json", "k4-deep-ttur-b64", ""),
]
# The texture study's columns that the old default's scores (no fd, no spectrum) have too.
FIGURES = [column for column in COLUMNS if column[0] not in ("fd", "spectrum", "spectrum_hf", "nn_ratio")]


def epoch_scores(path: Path, variant: str, suffix: str) -> dict[int, dict]:
    """{epoch: scores} of one study variant, its keys `<epoch><suffix>`."""
    scores = json.loads(path.read_text())["variants"][variant]["scores"]
    return {int(key.removesuffix(suffix)): s for key, s in scores.items() if key.endswith(suffix)}


def bench_rates(report: dict, precision: str) -> dict[str, float]:
    """{bench variant: median img/s} of a bench_train.py --paired report, at one precision."""
    return {row["variant"]: row["images_per_s"] for row in report["paired"] if row["precision"] == precision}


def at_budget(minutes_by_epoch: dict[int, float], budget: float) -> tuple[int, bool]:
    """(the last scored epoch reached within `budget` minutes, whether the run's scores end before it)."""
    within = [epoch for epoch, minutes in minutes_by_epoch.items() if minutes <= budget]
    epoch = max(within, default=min(minutes_by_epoch))
    return epoch, max(minutes_by_epoch.values()) < budget


def plot(curves: list[dict], budgets: list[float], path: Path) -> None:
    from matplotlib.figure import Figure

    from animegan.monitor import save_png

    panels = [figure for figure in FIGURES if figure[0] in ("swd", "recall", "coverage", "near_duplicates")]
    figure = Figure(figsize=(4 * len(panels), 3.4), layout="constrained")
    for axis, (key, title, _) in zip(figure.subplots(1, len(panels)), panels):
        for curve in curves:
            epochs = sorted(curve["scores"])
            axis.plot(
                [curve["minutes"][e] for e in epochs],
                [curve["scores"][e][key] for e in epochs],
                "o-",
                label=curve["label"],
                markersize=3,
            )
        for budget in budgets:
            axis.axvline(budget, color="grey", linestyle=":", linewidth=1)
        axis.set(title=title, xlabel="CPU-minutes (2 cores)")
    figure.axes[0].legend(fontsize=8)
    save_png(figure, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speed", type=Path, required=True, help="a bench_train.py --paired JSON")
    parser.add_argument("--precision", default="mixed_bfloat16", help="which of the bench's precisions")
    parser.add_argument("--budgets", default="20,60", help="comma list of minutes")
    parser.add_argument("--train-images", type=int, default=18669 - studylib.HELD_OUT)
    parser.add_argument("--out", type=Path, default=QUALITY / "texture" / "equal-minutes.json")
    args = parser.parse_args()
    report = json.loads(args.speed.read_text())
    rates = bench_rates(report, args.precision)
    missing = [bench for _, bench, *_ in CURVES if bench not in rates]
    if missing:
        parser.error(f"{args.speed} has no {args.precision} figure for {', '.join(missing)}; bench them with --paired")
    budgets = [float(b) for b in args.budgets.split(",")]

    curves, rows = [], []
    for label, bench, results, variant, suffix in CURVES:
        scores = epoch_scores(results, variant, suffix)
        minutes = {epoch: epoch * args.train_images / rates[bench] / 60 for epoch in scores}
        curves.append(
            {"label": label, "bench": bench, "images_per_s": rates[bench], "minutes": minutes, "scores": scores}
        )
        for budget in budgets:
            epoch, ended = at_budget(minutes, budget)
            cells = [fmt.format(scores[epoch][key]) for key, _, fmt in FIGURES]
            mark = f"{epoch}" + (" (last scored)" if ended else "")
            rows.append([f"{budget:g}", label, f"{rates[bench]:.0f}", mark, f"{minutes[epoch]:.1f}", *cells])
    rows.sort(key=lambda row: float(row[0]))
    print(
        studylib.markdown_table(
            ["budget min", "config", "img/s", "epoch", "minutes", *(title for _, title, _ in FIGURES)], rows
        )
    )
    plot(curves, budgets, args.out.with_suffix(".png"))
    studylib.write_json(
        args.out,
        {
            "cpu": report.get("cpu", "not recorded"),
            "speed": str(args.speed),
            "precision": args.precision,
            "train_images": args.train_images,
            "curves": curves,
        },
    )


if __name__ == "__main__":
    main()
