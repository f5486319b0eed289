"""Input pipeline memory and speed: the memory-mapped image cache against the in-memory tensor it replaced.

    python scripts/bench_data.py                     # 100,000 RGB 128x128 images (a 4.9 GB cache), 20,000 compared
    python scripts/bench_data.py --big 40000 --keep  # a smaller big set, kept in bench-out/data/ for the next run

Draws synthetic PNGs (random pixels: what they show does not matter to the pipeline), then, each
in a fresh child process so that its peak memory is its own:
  build      load_images decoding the PNGs into the cache file (once per set: seconds, peak RSS)
  in-memory  the pipeline before the cache: the set loaded into a tf.constant, tf.gather per batch.
             Small set only: it holds the set two or three times while loading; the big one would need over 10 GB
  cache      epoch_dataset over load_images' memory-mapped cache, on the small and on the big set
each in two modes: "pipeline" reads --epochs epochs of batches of --batch and does nothing else;
"+ step" feeds --steps batches to a tiny training step (two convolutions, Adam), as training would.
Each reports images/s, CPU milliseconds per 1,000 images (user + sys, all threads; it barely moves
when other work shares the machine, wall time does) and peak RSS (ru_maxrss, which counts mapped
file pages too). They run interleaved, --repeats times; the table shows medians. The page cache is
warm in every run (the sets fit in this machine's memory): it measures the pipeline, not the disk.
Prints a table, writes JSON (default bench-out/data.json) and deletes the drawn sets unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # measure this checkout, not whichever animegan is installed


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def draw_set(folder: Path, n: int, size: int) -> Path:
    """n PNGs of random RGB pixels, stored uncompressed (fast to write; random pixels do not compress anyway)."""
    marker = folder.parent / f"{folder.name}.complete"
    if marker.is_file() and marker.read_text() == f"{n} {size}":
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    import cv2

    def draw(i: int) -> None:
        pixels = np.random.default_rng(i).integers(0, 256, (size, size, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"{i:06d}.png"), pixels, [cv2.IMWRITE_PNG_COMPRESSION, 0])

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(draw, range(n)))
    marker.write_text(f"{n} {size}")
    return folder


def tiny_step(size: int):
    """A training step small enough that the input pipeline's share of the time shows."""
    import keras
    import tensorflow as tf

    model = keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.Conv2D(16, 5, strides=2, padding="same", activation="relu"),
            keras.layers.Conv2D(32, 5, strides=2, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(1),
        ]
    )
    optimizer = keras.optimizers.Adam(1e-4)

    @tf.function
    def step(batch):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.softplus(-model(tf.cast(batch, tf.float32) / 127.5 - 1.0, training=True)))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    return step


def child(variant: str, mode: str, folder: Path, limit: int, cache_dir: Path, args) -> dict:
    from animegan.data import epoch_dataset, epoch_order, load_images

    if variant == "build":
        started, cpu = time.perf_counter(), cpu_seconds()
        images = load_images(folder, args.size, 3, limit, show_progress=False, cache_dir=cache_dir)
        return {
            "seconds": time.perf_counter() - started,
            "cpu_seconds": cpu_seconds() - cpu,
            "peak_mib": peak_mib(),
            "cache_gb": images.nbytes / 1e9,
            "images": len(images),
        }

    import tensorflow as tf

    images = load_images(
        folder, args.size, 3, limit, show_progress=False, cache_dir=cache_dir
    )  # maps the cache "build" wrote
    if variant == "in-memory":
        with tf.device("/cpu:0"):
            data = tf.constant(
                np.load(images.filename)
            )  # as load_images used to load it, then the trainer's tf.constant

        def dataset(epoch: int):
            order = epoch_order(len(images), 0, epoch)
            return (
                tf.data.Dataset.from_tensor_slices(order)
                .batch(args.batch, drop_remainder=True)
                .map(lambda index: tf.gather(data, index), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                .prefetch(tf.data.AUTOTUNE)
            )
    else:

        def dataset(epoch: int):
            return epoch_dataset(images, args.batch, 0, epoch)

    if mode == "pipeline":
        for _ in dataset(0).take(5):  # warm-up: tracing, thread pools
            pass
        rates, cpu, seen = [], cpu_seconds(), 0
        for epoch in range(1, args.epochs + 1):
            started, count = time.perf_counter(), 0
            for batch in dataset(epoch):
                count += int(batch.shape[0])
            rates.append(count / (time.perf_counter() - started))
            seen += count
        rate = statistics.median(rates)
    else:
        step = tiny_step(args.size)
        batches = iter(dataset(1).repeat())
        for _ in range(5):
            float(step(next(batches)))
        cpu, started = cpu_seconds(), time.perf_counter()
        for number in range(args.steps):
            loss = step(next(batches))
            if number % 10 == 0:
                float(loss)  # a sync now and then, as training reads its losses
        float(loss)
        seen = args.steps * args.batch
        rate = seen / (time.perf_counter() - started)
    return {"images_per_s": rate, "cpu_ms_per_1k": 1e6 * (cpu_seconds() - cpu) / seen, "peak_mib": peak_mib()}


def run_child(variant: str, mode: str, folder: Path, limit: int, cache_dir: Path, args) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        variant,
        "--child-mode",
        mode,
        "--child-folder",
        str(folder),
        "--child-limit",
        str(limit),
        "--child-cache",
        str(cache_dir),
        "--size",
        str(args.size),
        "--epochs",
        str(args.epochs),
        "--steps",
        str(args.steps),
        "--batch",
        str(args.batch),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{variant} {mode} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--big", type=int, default=100_000, help="images in the big set")
    parser.add_argument("--small", type=int, default=20_000, help="images in the set both pipelines run on")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3, help="epochs of a pipeline-only run")
    parser.add_argument("--steps", type=int, default=150, help="training steps of a run with the tiny step")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=ROOT / "bench-out" / "data")
    parser.add_argument("--keep", action="store_true", help="keep the drawn images and caches for the next run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "data.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-mode", help=argparse.SUPPRESS)
    parser.add_argument("--child-folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-limit", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-cache", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(
            json.dumps(child(args.child, args.child_mode, args.child_folder, args.child_limit, args.child_cache, args))
        )
        return

    try:
        print(f"drawing {args.big} PNGs of {args.size}x{args.size} RGB in {args.work} ...", file=sys.stderr)
        images = draw_set(args.work / "images", args.big, args.size)
        # The small set is the big one's first images, with a cache of its own.
        sets = {"small": (args.small, args.work / "cache-small"), "big": (args.big, args.work / "cache-big")}
        builds = {name: run_child("build", "", images, limit, cache, args) for name, (limit, cache) in sets.items()}
        for name, build in builds.items():
            print(
                f"  built the {name} cache: {build['cache_gb']:.2f} GB in "
                f"{build['seconds']:.0f} s, peak {build['peak_mib']:.0f} MiB",
                file=sys.stderr,
            )
        variants = [
            (variant, mode, name)
            for mode in ("pipeline", "+ step")
            for variant, name in (("in-memory", "small"), ("cache", "small"), ("cache", "big"))
        ]
        results = {v: [] for v in variants}
        load_before = os.getloadavg()
        for repeat in range(args.repeats):
            for variant, mode, name in variants:
                results[(variant, mode, name)].append(run_child(variant, mode, images, *sets[name], args))
                print(
                    f"  run {repeat + 1}/{args.repeats} {variant} {mode} {name}: "
                    f"{results[(variant, mode, name)][-1]['images_per_s']:.0f} img/s",
                    file=sys.stderr,
                )
        load_after = os.getloadavg()
    finally:
        if not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)

    rows = []
    for (variant, mode, name), runs in results.items():
        rate = statistics.median(r["images_per_s"] for r in runs)
        baseline = statistics.median(r["images_per_s"] for r in results[("in-memory", mode, "small")])
        rows.append(
            {
                "pipeline": variant,
                "mode": mode,
                "set": name,
                "images": sets[name][0],
                "cache_gb": round(builds[name]["cache_gb"], 2),
                "images_per_s": round(rate),
                "runs": [round(r["images_per_s"]) for r in runs],
                "ratio_to_in_memory": round(rate / baseline, 3),
                "cpu_ms_per_1k": round(statistics.median(r["cpu_ms_per_1k"] for r in runs), 1),
                "peak_mib": round(statistics.median(r["peak_mib"] for r in runs)),
            }
        )
    print(
        f"\n{'pipeline':<10} {'mode':<9} {'set':<6} {'images':>8} {'cache GB':>9} {'img/s':>8} {'x in-memory':>12} "
        f"{'CPU ms/1k img':>14} {'peak RSS MiB':>13}"
    )
    for row in rows:
        print(
            f"{row['pipeline']:<10} {row['mode']:<9} {row['set']:<6} "
            f"{row['images']:>8} {row['cache_gb']:>9.2f} {row['images_per_s']:>8} "
            f"{row['ratio_to_in_memory']:>12.2f} {row['cpu_ms_per_1k']:>14.1f} {row['peak_mib']:>13}"
        )
    for name, build in builds.items():
        print(
            f"building the {name} cache ({build['images']} PNGs -> "
            f"{build['cache_gb']:.2f} GB): {build['seconds']:.0f} s, "
            f"{build['cpu_seconds']:.0f} CPU s, peak RSS {build['peak_mib']:.0f} MiB"
        )
    print(
        f"{args.size}x{args.size} RGB, batch {args.batch}, {args.epochs} "
        f"epochs a pipeline run, {args.steps} steps a run with the step, "
        f"medians of {args.repeats} runs; "
        f"cpus {os.cpu_count()}, load average {load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    report = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "size": args.size,
        "batch": args.batch,
        "epochs": args.epochs,
        "steps": args.steps,
        "repeats": args.repeats,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "builds": builds,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
