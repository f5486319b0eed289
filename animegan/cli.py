"""The `animegan` command line: thin click commands that build a config and call one stage.

TensorFlow is imported lazily inside the commands that need it, so `--help` stays instant. What the
commands share (error handling, TensorFlow's quiet import, the --config/--set and --runs-dir options) is clikit.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from animegan import __version__
from animegan.clikit import (
    CleanErrors,
    build_config,
    config_options,
    import_tensorflow,
    quiet_tensorflow,
    runs_dir_option,
)
from animegan.say import say

EXAMPLES = """
\b
Examples:
  animegan demo-data anime/ --n 2000        draw synthetic faces to try things on
  animegan preprocess anime/ face/          clean, resize and dedupe into a training set
  animegan train --epochs 500               train on face/ (see configs/default.yaml)
  animegan train --config demo --epochs 5   a quick CPU run that shows faces forming
  animegan sample --n 16                    a 4x4 grid from the newest run
  animegan evaluate --real face/            SWD, precision/recall, near-duplicates of the newest run
  animegan plot runs/default-001            redraw losses.png and quality.png
  animegan export runs/default-001 --format tflite --out g.tflite
  animegan config show --set train.g_lr=1e-4
"""


@click.group(cls=CleanErrors, epilog=EXAMPLES, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="animegan")
@click.option("-v", "--verbose", is_flag=True, help="Show TensorFlow's log and full tracebacks.")
@click.pass_context
def cli(ctx, verbose):
    """Train a DCGAN on a folder of anime faces and sample new ones."""
    ctx.obj = {"verbose": verbose}
    quiet_tensorflow(verbose)


@cli.command("demo-data")
@click.argument("dst", type=click.Path(file_okay=False, path_type=Path))
@click.option("--n", "n", default=2000, show_default=True, type=click.IntRange(1), help="How many faces to draw.")
@click.option("--seed", default=0, show_default=True, type=int, help="Same seed, same pictures.")
@click.option("--force", is_flag=True, help="Draw into DST even though it holds files demo-data did not write.")
def demo_data(dst, n, seed, force):
    """Draw synthetic anime-style faces (JPEG and PNG, 96-512 px) into DST.

    \b
    Example: animegan demo-data anime/ --n 2000
    """
    from animegan.demo_data import write_demo_faces

    written = write_demo_faces(dst, n=n, seed=seed, force=force)
    say(f"wrote {written} faces to {dst}", output=True)


@cli.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path), required=False)
@config_options
@click.option("--size", type=int, help="Output side in pixels [data.size].")
@click.option("--color/--grayscale", "color", default=None, help="RGB or grayscale output [data.channels].")
@click.option(
    "--fit",
    type=click.Choice(["crop", "pad", "stretch"]),
    help="Non-square images: centre crop, pad or stretch [preprocess.fit].",
)
@click.option("--limit", type=click.IntRange(0), help="Write at most N images, 0 = all [data.limit].")
@click.option("--workers", type=click.IntRange(0), help="Worker processes, 0 = one per core [preprocess.workers].")
@click.option("--keep-duplicates", is_flag=True, default=None, help="Keep byte-identical outputs [preprocess.dedupe].")
@click.option(
    "--crop-faces", is_flag=True, default=None, help="Write one crop per detected face [preprocess.crop_faces]."
)
@click.option(
    "--cascade", type=click.Path(path_type=Path), help="OpenCV cascade XML for --crop-faces [preprocess.cascade]."
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Delete the images an earlier run wrote to DST and redo every file (a rerun otherwise resumes).",
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def preprocess(
    src,
    dst,
    config_path,
    sets,
    size,
    color,
    fit,
    limit,
    workers,
    keep_duplicates,
    crop_faces,
    cascade,
    overwrite,
    quiet,
):
    """Turn a folder of images (any size and format) into a clean training set.

    Writes SRC's images to DST (default: data.dir from the config) as PNGs of the configured
    size and colour, drops duplicates and broken files, and writes DST/preprocess.json.

    \b
    Example: animegan preprocess anime/ face/ --size 64 --color
    """
    cfg = build_config(
        config_path,
        sets,
        **{
            "data.size": size,
            "data.channels": None if color is None else (3 if color else 1),
            "preprocess.fit": fit,
            "data.limit": limit,
            "preprocess.workers": workers,
            "preprocess.dedupe": None if keep_duplicates is None else not keep_duplicates,
            "preprocess.crop_faces": crop_faces,
            "preprocess.cascade": None if cascade is None else str(cascade),
        },
    )
    from animegan.preprocess import run_preprocess

    run_preprocess(
        src, dst if dst is not None else Path(cfg.data.dir), cfg, overwrite=overwrite, show_progress=not quiet
    )


@cli.command()
@config_options
@click.option("--data", "data_dir", type=click.Path(path_type=Path), help="Preprocessed training folder [data.dir].")
@click.option(
    "--epochs", type=click.IntRange(1), help="Total epochs the run should reach, also on --resume [train.epochs]."
)
@click.option(
    "--minutes",
    type=click.FloatRange(0),
    help="Stop at the first epoch end after this many minutes, 0 = no limit [train.max_minutes].",
)
@click.option("--batch-size", type=click.IntRange(1), help="Global batch size [train.batch_size].")
@click.option("--lr", type=float, help="Learning rate of both networks [train.g_lr, train.d_lr].")
@click.option("--seed", type=int, help="Seed for weights, noise and shuffling [train.seed].")
@click.option(
    "--precision", type=click.Choice(["auto", "float32", "mixed_float16", "mixed_bfloat16"]), help="[train.precision]"
)
@click.option("--xla", type=click.Choice(["auto", "on", "off"]), help="[train.xla]")
@click.option("--augment", help="DiffAugment ops, e.g. translation,cutout,color; '' for none [train.augment].")
@click.option("--strategy", type=click.Choice(["auto", "default", "mirrored", "multiworker"]), help="[train.strategy]")
@click.option("--name", help="Run folder name under train.runs_dir [train.name].")
@click.option(
    "--resume", type=click.Path(path_type=Path), help="Continue the run in this folder from its latest checkpoint."
)
def train(
    config_path, sets, data_dir, epochs, minutes, batch_size, lr, seed, precision, xla, augment, strategy, name, resume
):
    """Train the DCGAN on the preprocessed images; checkpoints and samples go to runs/<name>/.

    \b
    Examples:
      animegan train --epochs 500
      animegan train --config demo --epochs 5
      animegan train --resume runs/default-001 --epochs 600
    """
    overrides = {
        "data.dir": None if data_dir is None else str(data_dir),
        "train.epochs": epochs,
        "train.max_minutes": minutes,
        "train.batch_size": batch_size,
        "train.g_lr": lr,
        "train.d_lr": lr,
        "train.seed": seed,
        "train.precision": precision,
        "train.xla": xla,
        "train.augment": augment,
        "train.strategy": strategy,
        "train.name": name,
    }
    if resume is not None:
        from animegan.rundir import config_for_resume

        cfg = config_for_resume(resume, config_path, overrides, sets)
    else:
        cfg = build_config(config_path, sets, **overrides)
    # Imported only now: it pulls in TensorFlow, and a config error should not wait for that.
    import_tensorflow()
    from animegan.train import train as run_training

    run_training(cfg, resume=resume)


@cli.command()
@click.option("--n", "n", default=16, show_default=True, type=int, help="How many images.")
@click.option("--run", "run_dir", type=click.Path(path_type=Path), help="Run folder (default: the newest under runs/).")
@click.option("--checkpoint", help="A checkpoint path or epoch number (default: the latest).")
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="Noise seed: same seed and checkpoint, same PNG.",
)
@click.option("--out", type=click.Path(path_type=Path), help="Output file (default: in the run's samples/).")
@click.option("--cols", type=click.IntRange(1), help="Grid columns (default: near-square).")
@click.option("--scale", default=1, show_default=True, type=click.IntRange(1, 16), help="Integer upscale for viewing.")
@click.option("--separate", type=click.Path(file_okay=False, path_type=Path), help="Also write one PNG per image here.")
@click.option(
    "--truncation",
    type=float,
    metavar="T",
    help="Redraw noise components beyond +/-T (0.01 or more; 0.5-1 trades variety for quality).",
)
@click.option("--interpolate", type=click.IntRange(2), help="Write a GIF walking through K latent points.")
@click.option(
    "--frames", default=16, show_default=True, type=click.IntRange(2), help="Frames between two points of a walk."
)
@runs_dir_option
@click.option("--force", is_flag=True, help="Replace --out and --separate's files even if not ours.")
def sample(n, run_dir, checkpoint, seed, out, cols, scale, separate, truncation, interpolate, frames, runs_dir, force):
    """Decode noise into a PNG grid (or a GIF walk) with a trained generator.

    \b
    Examples:
      animegan sample --n 16
      animegan sample --n 64 --seed 3 --scale 2 --out faces.png
      animegan sample --n 4 --interpolate 5 --frames 24 --out walk.gif
    """
    import_tensorflow()
    from animegan.sample import sample_command

    path = sample_command(
        n=n,
        run_dir=run_dir,
        checkpoint=checkpoint,
        seed=seed,
        out=out,
        cols=cols,
        scale=scale,
        separate=separate,
        truncation=truncation,
        interpolate=interpolate,
        frames=frames,
        runs_dir=runs_dir,
        force=force,
    )
    say(str(path), output=True)


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path), required=False)
@click.option(
    "--format", "fmt", type=click.Choice(["keras", "savedmodel", "tflite"]), default="keras", show_default=True
)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output file or folder.")
@click.option("--checkpoint", help="A checkpoint path or epoch number (default: the latest).")
@runs_dir_option
@click.option("--force", is_flag=True, help="Replace an existing --out file or earlier SavedModel.")
def export(run_dir, fmt, out, checkpoint, runs_dir, force):
    """Write the generator (EMA weights) as a .keras file, a SavedModel or a TFLite model.

    \b
    Example: animegan export runs/default-001 --format savedmodel --out generator/
    """
    import_tensorflow()
    from animegan.export import export_generator

    path = export_generator(run_dir=run_dir, fmt=fmt, out=out, checkpoint=checkpoint, runs_dir=runs_dir, force=force)
    say(str(path), output=True)


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path), required=False)
@click.option("--real", type=click.Path(path_type=Path), help="Preprocessed real images (default: the run's data.dir).")
@click.option(
    "--images",
    "images_dir",
    type=click.Path(path_type=Path),
    help="Score this folder of images (from any tool) instead of a run; needs --real.",
)
@click.option(
    "--n", "n", default=5000, show_default=True, type=click.IntRange(2), help="Images to generate and compare."
)
@click.option(
    "--metrics",
    "metric_names",
    default="swd,prdc,diversity",
    show_default=True,
    help="Comma list of swd, prdc, diversity, fd, spectrum, fid, kid.",
)
@click.option(
    "--inception-weights",
    type=click.Path(path_type=Path),
    help="Local InceptionV3 weights file (.h5) for fid/kid; prdc then uses Inception features too.",
)
@click.option("--checkpoint", help="A checkpoint path or epoch number (default: the latest).")
@click.option("--seed", default=0, show_default=True, type=int)
@runs_dir_option
def evaluate(run_dir, real, images_dir, n, metric_names, inception_weights, checkpoint, seed, runs_dir):
    """Score a run's generator, or a folder of images, against real images: SWD (fidelity of local
    detail), precision/recall/density/coverage and near-duplicates (fidelity vs variety); FID and KID
    with Inception weights.

    \b
    Examples: animegan evaluate runs/default-001 --real face/ --metrics swd,prdc,fid
              animegan evaluate --images other-tool-samples/ --real face/
    """
    if images_dir is not None and (run_dir is not None or checkpoint is not None):
        raise click.UsageError("--images scores a folder; leave out RUN_DIR and --checkpoint")
    if images_dir is not None and real is None:
        raise click.UsageError("--images needs --real FOLDER, the real images to compare with")
    import_tensorflow()
    from animegan.metrics import evaluate_images, evaluate_run

    if images_dir is not None:
        results = evaluate_images(images_dir, real, n, metric_names, inception_weights)
    else:
        results = evaluate_run(
            run_dir=run_dir,
            real=real,
            n=n,
            metric_names=metric_names,
            inception_weights=inception_weights,
            checkpoint=checkpoint,
            seed=seed,
            runs_dir=runs_dir,
        )
    for key, value in results.items():
        say(f"{key}: {value:.4f}", output=True)


@cli.command()
@click.argument("run_dir", type=click.Path(path_type=Path), required=False)
@runs_dir_option
def plot(run_dir, runs_dir):
    """Redraw a run's losses.png and quality.png from its metrics.jsonl, e.g. after `animegan evaluate`
    (training redraws them at every epoch end on its own).

    \b
    Example: animegan plot runs/default-001
    """
    from animegan.monitor import plot_run

    for path in plot_run(run_dir, runs_dir):
        say(str(path), output=True)


@cli.group()
def config():
    """Inspect configs."""


@config.command("show")
@config_options
def config_show(config_path, sets):
    """Print the effective config as YAML.

    \b
    Example: animegan config show --config demo --set train.epochs=3
    """
    say(build_config(config_path, sets).to_yaml(), output=True, end="")


def main():
    cli(prog_name="animegan")


if __name__ == "__main__":
    sys.exit(main())
