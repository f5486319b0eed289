"""What a run shows people: per-epoch metrics lines, TensorBoard, the curve plots and the progress GIF.

    losses.png    training curves by epoch: losses, R1, D's mean outputs, adaptive augmentation
    quality.png   metric curves by epoch: SWD, precision/recall/coverage, ratios to the real set, FID,
                  KID; written only once metrics.jsonl holds evaluations (train.eval_every or
                  `animegan evaluate`)

matplotlib is imported inside the functions that draw: it takes about a second, and `animegan --help`
must stay instant. Figures are matplotlib.figure.Figure objects printed by the Agg canvas, never
pyplot, so nothing global (the backend, pyplot's list of open figures) changes for a program that
imports us, and a figure is freed as soon as it is saved.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from PIL import Image

from animegan import metricslog, rundir
from animegan.errors import UserError
from animegan.files import atomic_path
from animegan.images import write_gif

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI, WIDTH_PX, PANEL_PX, TITLE_PX = 100, 1000, 260, 40
MARKERS_UP_TO = 40  # points per line; with more, markers hide the curve's shape


@dataclass(frozen=True)
class Panel:
    title: str
    ylabel: str
    keys: tuple[str, ...]
    thin: tuple[str, ...] = ()  # detail lines drawn thinner than the main ones (SWD per pyramid level)
    ylim: tuple[float, float] | None = None  # the range always shown, so that 0 and 1 keep their place
    reference: tuple[float, str] | None = None  # a dotted horizontal line and its legend text


TRAINING_PANELS = (
    Panel("Losses", "loss", ("d_loss", "g_loss")),
    # Its own panel: a squared gradient norm, on no scale shared with the losses.
    Panel("R1 penalty: D's squared gradient norm on real images, before its gamma weight", "R1", ("r1",)),
    Panel(
        "D's mean output: the probability it gives that an image is real",
        "probability",
        ("d_real", "d_fake"),
        ylim=(0.0, 1.0),
        reference=(0.5, "0.5: cannot tell"),
    ),
    Panel("Adaptive augmentation", "probability", ("augment_p", "ada_rt"), ylim=(0.0, 1.0)),
)


def quality_panels(records: list[dict]) -> tuple[Panel, ...]:
    # The SWD levels depend on the image size (swd_56, swd_28 at 56 px); finest first.
    levels = sorted({key for r in records for key in r if re.fullmatch(r"swd_\d+", key)}, key=lambda k: -int(k[4:]))
    if len(levels) == 1:  # the only level's SWD is the mean itself
        levels = []
    return (
        Panel(
            "Sliced Wasserstein distance, lower is better" + (" (thin: per pyramid level, swd_<px>)" if levels else ""),
            "SWD ×10³",
            ("swd",),
            thin=tuple(levels),
        ),
        # Shares in [0, 1] apart from density and the ratios, which are about 1 at best and not capped.
        Panel(
            "Shares of images: precision, recall, coverage higher is better; near_duplicates lower",
            "share",
            ("precision", "recall", "coverage", "near_duplicates"),
            ylim=(0.0, 1.0),
        ),
        Panel(
            "Ratios to the real set: about 1 when as faithful (density) and as varied as real images",
            "ratio",
            ("density", "nn_ratio", "spread_ratio"),
            reference=(1.0, "1: like the real set"),
        ),
        Panel("Fréchet Inception distance, lower is better", "FID", ("fid",)),
        Panel("Kernel Inception distance, lower is better", "KID ×10³", ("kid",)),
    )


@dataclass(frozen=True)
class Source:
    """Which records a line is drawn from, and how."""

    name: str  # the line style's legend entry, in figures that draw more than one source
    linestyle: str
    event: str | None  # the records' "event" value; training's own records have none


# Training's evaluations and `animegan evaluate`'s are drawn apart: they may differ in image count,
# real set and seed, so their numbers are not one series.
TRAINING = Source("training (eval_every)", "-", None)
EVALUATE = Source("animegan evaluate", "--", "evaluate")


class Line(NamedTuple):
    colour: str  # one per key, the same in every source
    key: str
    source: Source
    epochs: list[int]
    values: list[float]


def series(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(epochs, values) of `key`, one finite value per epoch. A later record wins: a resume redoes the
    epochs after its checkpoint, and a second evaluation of a checkpoint replaces the first."""
    latest = {}
    for record in records:
        value = record.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            latest[record["epoch"]] = float(value)
    epochs = sorted(latest)
    return epochs, [latest[epoch] for epoch in epochs]


def build_figure(
    panels: tuple[Panel, ...], records: list[dict], sources: tuple[Source, ...], title: str
) -> Figure | None:
    """One panel per Panel with data, stacked over a shared epoch axis; None when no panel has any."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    chosen = {source: [r for r in records if r.get("event") == source.event] for source in sources}
    filled = []
    for panel in panels:
        lines = [
            Line(f"C{i}", key, source, *series(chosen[source], key))
            for i, key in enumerate(panel.keys + panel.thin)
            for source in sources
        ]
        lines = [line for line in lines if line.epochs]
        if lines:
            filled.append((panel, lines))
    if not filled:
        return None
    figure = Figure(figsize=(WIDTH_PX / DPI, (TITLE_PX + PANEL_PX * len(filled)) / DPI), dpi=DPI, layout="constrained")
    figure.suptitle(title)
    axes = figure.subplots(len(filled), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (panel, lines) in zip(axes, filled):
        labelled = set()  # colour names the key, line style the source: one legend entry each
        for colour, key, source, epochs, values in lines:
            thin = key in panel.thin
            ax.plot(
                epochs,
                values,
                color=colour,
                linestyle=source.linestyle,
                linewidth=1 if thin else 2,
                alpha=0.6 if thin else 1.0,
                marker="o" if len(epochs) <= MARKERS_UP_TO else None,
                markersize=3 if thin else 4,
                label=None if key in labelled else key,
            )
            labelled.add(key)
        if len(sources) > 1:
            drawn = {line.source for line in lines}
            for source in (s for s in sources if s in drawn):
                ax.plot([], [], color="0.3", linestyle=source.linestyle, label=source.name)
        if panel.reference is not None:
            ax.axhline(panel.reference[0], color="0.4", linestyle=":", linewidth=1, label=panel.reference[1])
        if panel.ylim is not None:
            values = [v for line in lines for v in line.values]
            low, high = min(panel.ylim[0], *values), max(panel.ylim[1], *values)
            ax.set_ylim(low - 0.03 * (high - low), high + 0.03 * (high - low))
        ax.set_title(panel.title, loc="left", fontsize=10)
        ax.set_ylabel(panel.ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1].set_xlabel("epoch")
    return figure


def training_figure(records: list[dict], title: str = "training") -> Figure | None:
    return build_figure(TRAINING_PANELS, records, (TRAINING,), title)


def quality_figure(records: list[dict], title: str = "sample quality") -> Figure | None:
    return build_figure(quality_panels(records), records, (TRAINING, EVALUATE), title)


def save_png(figure: Figure, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    with atomic_path(path) as tmp:
        FigureCanvasAgg(figure).print_png(tmp)


def write_plots(run: Path, records: list[dict]) -> list[Path]:
    """Draw losses.png and quality.png into the run from its metrics records; returns the files written."""
    run = Path(run)
    figures = {
        run / "losses.png": training_figure(records, f"{run.name}: training"),
        run / "quality.png": quality_figure(records, f"{run.name}: sample quality"),
    }
    for path, figure in figures.items():
        if figure is not None:
            save_png(figure, path)
    return [path for path, figure in figures.items() if figure is not None]


def plot_run(run_dir: Path | None, runs_dir: Path) -> list[Path]:
    """`animegan plot`: redraw a run's plots from its metrics.jsonl (the newest run without run_dir)."""
    run = rundir.find_run(run_dir, runs_dir)
    records = metricslog.read_metrics(run)
    if not records:
        raise UserError(f"'{run}' has no {rundir.metrics_path(run).name} records yet; train it for an epoch first")
    return write_plots(run, records)


def write_progress_gif(run: Path, max_frames: int = 100) -> Path | None:
    """Animate the epoch grids (at most `max_frames`, evenly spaced, always including the last)."""
    grids = sorted(rundir.samples_dir(run).glob("epoch_*.png"))
    if not grids:
        return None
    step = max(1, len(grids) // max_frames)
    chosen = grids[::step]
    if chosen[-1] != grids[-1]:
        chosen.append(grids[-1])
    frames = [np.asarray(Image.open(p).convert("RGB")) for p in chosen]
    return write_gif(Path(run) / "progress.gif", frames, duration_ms=200)


class RunLog:
    """Writes one metrics line per epoch, TensorBoard scalars and grids, and redraws the plots."""

    def __init__(self, run: Path):
        import tensorflow as tf

        self.run = Path(run)
        self.writer = tf.summary.create_file_writer(str(self.run / "tensorboard"))
        # The plots' history: read once (a resumed run continues its curves, and earlier
        # `animegan evaluate` results stay on quality.png), then kept in memory.
        self.history = metricslog.read_metrics(self.run)

    def epoch(self, record: dict, grid: np.ndarray | None) -> None:
        import tensorflow as tf

        metricslog.append_metrics(self.run, record)
        with self.writer.as_default(step=record["step"]):
            for key, value in record.items():
                if key not in ("epoch", "step") and isinstance(value, (int, float)):
                    tf.summary.scalar(key, value)
            if grid is not None:
                tf.summary.image("samples", grid[None], max_outputs=1)
        self.writer.flush()
        self.history.append(record)
        write_plots(self.run, self.history)

    def close(self) -> None:
        self.writer.close()
