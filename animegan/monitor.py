"""What a run shows people: per-epoch metrics lines, TensorBoard, the loss curves picture and the progress GIF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from animegan import rundir
from animegan.files import atomic_path
from animegan.images import write_gif

CURVES = (("d_loss", (200, 40, 40)), ("g_loss", (40, 90, 200)), ("d_real", (40, 160, 60)), ("d_fake", (220, 140, 0)))


def plot_curves(records: list[dict], path: Path, width: int = 640, height: int = 360) -> None:
    """Draw losses and mean D outputs per epoch as lines on one chart, with a legend and value range."""
    margin = 40
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    epochs = [r["epoch"] for r in records]
    values = [r[key] for r in records for key, _ in CURVES]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    first, last = epochs[0], epochs[-1]

    def point(epoch, value):
        x = margin + (epoch - first) / max(last - first, 1) * (width - 2 * margin)
        y = height - margin - (value - low) / span * (height - 2 * margin)
        return x, y

    draw.rectangle([margin, margin, width - margin, height - margin], outline=(160, 160, 160))
    for i, (key, colour) in enumerate(CURVES):
        points = [point(r["epoch"], r[key]) for r in records]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        else:
            x, y = points[0]
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        draw.text((margin + 8 + i * 110, 12), key, fill=colour)
    draw.text((4, margin - 6), f"{high:.2f}", fill="black")
    draw.text((4, height - margin - 6), f"{low:.2f}", fill="black")
    draw.text((margin, height - margin + 8), f"epoch {first}", fill="black")
    draw.text((width - margin - 60, height - margin + 8), f"epoch {last}", fill="black")
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


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
    """Writes one metrics line per epoch, TensorBoard scalars and grids, and redraws losses.png."""

    def __init__(self, run: Path):
        import tensorflow as tf

        self.run = Path(run)
        self.writer = tf.summary.create_file_writer(str(self.run / "tensorboard"))
        # The curves' history: read once (a resumed run continues its plot), then kept in memory.
        self.history = [r for r in rundir.read_metrics(self.run) if "d_loss" in r]

    def epoch(self, record: dict, grid: np.ndarray | None) -> None:
        import tensorflow as tf

        rundir.append_metrics(self.run, record)
        with self.writer.as_default(step=record["step"]):
            for key, value in record.items():
                if key not in ("epoch", "step") and isinstance(value, (int, float)):
                    tf.summary.scalar(key, value)
            if grid is not None:
                tf.summary.image("samples", grid[None], max_outputs=1)
        self.writer.flush()
        self.history.append(record)
        plot_curves(self.history, self.run / "losses.png")

    def close(self) -> None:
        self.writer.close()
