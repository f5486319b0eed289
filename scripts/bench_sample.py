"""Time `animegan sample` on this machine: time to first image, and images/s for 1,000 images.

    python scripts/bench_sample.py                        # an untrained default-config generator
    python scripts/bench_sample.py --run runs/default-001

Time to first image: from starting `python -m animegan sample --n 1` to its PNG appearing, so it
includes importing TensorFlow, loading the checkpoint and tracing the generator (median of
--repeats runs). Images/s: decoding --n images to uint8 pixels in this process after one
warm-up batch; "traces" counts how often the generator was traced (1 = once, not per batch).
Prints a table and writes JSON (default bench-out/sample.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # measure this checkout, not whichever animegan is installed

from animegan.checkpoints import checkpoint_prefixes, load_generator, save_generator  # noqa: E402
from animegan.config import Config  # noqa: E402
from animegan.images import to_uint8  # noqa: E402
from animegan.rundir import save_config  # noqa: E402
from animegan.sample import BATCH_SIZE, draw_noise, generate, trace_generator  # noqa: E402


def untrained_default_run(run: Path) -> Path:
    """A run with the default config and a checkpoint of a freshly initialised generator (epoch 0).

    Untrained weights decode exactly as fast as trained ones of the same shape.
    """
    from animegan.models import build_generator

    if not checkpoint_prefixes(run):
        cfg = Config()
        save_config(run, cfg)
        save_generator(run, build_generator(cfg.model, cfg.data.size, cfg.data.channels), epoch=0)
    return run


def time_to_first_image(run: Path, png: Path) -> float:
    """Seconds from starting a fresh `animegan sample --n 1` process to its PNG existing."""
    png.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "animegan", "sample", "--n", "1", "--run", str(run), "--out", str(png)]
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while not png.exists():  # the PNG is renamed into place whole, so existing means written
        if process.poll() is not None:
            raise SystemExit(f"`{' '.join(command)}` failed:\n{process.stderr.read()}")
        time.sleep(0.005)
    elapsed = time.perf_counter() - start
    process.communicate()
    return elapsed


def images_per_second(run: Path, n: int, repeats: int) -> tuple[float, int]:
    """Best rate over `repeats` decodes of n images, and how often the generator was traced."""
    generator, cfg, _ = load_generator(run)
    traced = trace_generator(generator)
    noise = draw_noise(n, cfg.model.noise_dim, seed=0)
    generate(traced, noise[:BATCH_SIZE])  # warm-up: the one trace
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        to_uint8(generate(traced, noise))
        seconds.append(time.perf_counter() - start)
    return n / min(seconds), traced.experimental_get_tracing_count()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run", type=Path, help="Run to sample (default: an untrained default-config run in bench-out/)."
    )
    parser.add_argument("--n", type=int, default=1000, help="Images for the images/s figure (default 1000).")
    parser.add_argument("--repeats", type=int, default=3, help="Runs of each measurement (default 3).")
    parser.add_argument(
        "--json", type=Path, default=ROOT / "bench-out" / "sample.json", help="Where to write the results."
    )
    args = parser.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    bench_out = args.json.parent
    run = args.run or untrained_default_run(bench_out / "runs" / "default-untrained")
    first_image = [time_to_first_image(run, bench_out / "first.png") for _ in range(args.repeats)]
    rate, traces = images_per_second(run, args.n, args.repeats)

    import tensorflow as tf

    results = {
        "run": str(run),
        "time_to_first_image_s": round(statistics.median(first_image), 3),
        "time_to_first_image_runs_s": [round(s, 3) for s in first_image],
        "images_per_s": round(rate, 1),
        "n": args.n,
        "batch_size": BATCH_SIZE,
        "traces": traces,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "tensorflow": tf.__version__,
    }
    bench_out.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"{'time to first image':<22}{results['time_to_first_image_s']:>8.2f} s   (median of {args.repeats})")
    print(
        f"{'images/s':<22}{results['images_per_s']:>8.1f}     ({args.n} images, batch {BATCH_SIZE}, traced {traces}x)"
    )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
