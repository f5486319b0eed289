"""Time `animegan preprocess` against the original recipe's serial OpenCV loop, both as whole processes.

    python scripts/bench_preprocess.py                   # 3,000 JPEGs of 512x512 + 500 of ~100 px, 3 runs each
    python scripts/bench_preprocess.py --runs 5 --out bench-out/preprocess.json

The images are drawn once into bench-out/images/ and reused. Each run starts fresh processes
(start-up included) writing into an empty folder; the contestants alternate, so a burst of load
from elsewhere hits all of them, and the table shows medians. A third contestant, the original loop
split over two processes, measures how much a second process can gain on this machine at the time:
the ceiling for any parallel speed-up. The load average goes into the JSON too.

Besides images/s, each contestant's CPU time per image (user + sys of all its processes, pool
workers included, start-up included) is measured: unlike wall time it barely moves when other
work shares the machine, and a parallel preprocess can only be N times the serial loop's speed on
N cores if each image costs it no more CPU than the loop spends.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent

# The original recipe: grey decode, nearest-neighbour resize to 56x56, the first 20,000 files, one loop.
# Optional arguments PART PARTS make it do every PARTS-th file from PART on, for the split contestant.
ORIGINAL_LOOP = """
import os, sys, cv2
src, dst = sys.argv[1], sys.argv[2]
part, parts = (int(sys.argv[3]), int(sys.argv[4])) if len(sys.argv) > 3 else (0, 1)
for name in sorted(os.listdir(src))[:20000][part::parts]:
    img = cv2.imread(os.path.join(src, name), 0)
    img = cv2.resize(img, (56, 56), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(os.path.join(dst, name), img)
"""


def draw_picture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A gradient with filled ellipses, lines and sensor-like noise: JPEG work close to a real drawing's."""
    top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0, 1, height)[:, None, None]
    picture = np.ascontiguousarray(np.broadcast_to(top * (1 - t) + bottom * t, (height, width, 3)).astype(np.uint8))
    scale = max(height, width)
    for _ in range(12):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(scale // 50 + 1, scale // 3)), int(rng.integers(scale // 50 + 1, scale // 3)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.ellipse(picture, centre, axes, float(rng.integers(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
    for _ in range(20):
        start = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        end = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.line(
            picture, start, end, tuple(int(c) for c in rng.integers(0, 256, 3)), int(rng.integers(1, 5)), cv2.LINE_AA
        )
    noise = rng.normal(0, rng.uniform(2, 8), picture.shape)
    return np.clip(picture + noise, 0, 255).astype(np.uint8)


def make_set(folder: Path, n: int, sizes, seed: int) -> Path:
    """`n` JPEGs (quality 80-95) of the sizes `sizes(rng)` gives, drawn once and kept."""
    marker = folder.parent / f"{folder.name}.complete"  # beside the folder: both contestants read all of it
    if marker.is_file() and marker.read_text() == f"{n} {seed}":
        return folder
    marker.unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        height, width = sizes(rng)
        quality = int(rng.integers(80, 96))
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), draw_picture(rng, height, width), [cv2.IMWRITE_JPEG_QUALITY, quality])
    marker.write_text(f"{n} {seed}")
    return folder


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(commands: list[list[str]], out: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + sys, all their processes) that the processes `commands`,
    started together, take to write the new folder `out`."""
    out.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cpu, started = children_cpu(), time.perf_counter()
    processes = [
        subprocess.Popen(c, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in commands
    ]
    if any(p.wait() != 0 for p in processes):
        raise SystemExit(f"failed: {commands}")
    return time.perf_counter() - started, children_cpu() - cpu


def bench_set(name: str, images: Path, n: int, runs: int, work: Path) -> dict:
    def original(out: Path, *part: str) -> list[str]:
        return [sys.executable, "-c", ORIGINAL_LOOP, str(images), str(out), *part]

    def preprocess(out: Path, *flags: str) -> list[str]:
        return [sys.executable, "-m", "animegan", "preprocess", str(images), str(out), *flags]

    contestants = {
        "original": lambda out: [original(out)],
        "original_2procs": lambda out: [original(out, "0", "2"), original(out, "1", "2")],
        "preprocess": lambda out: [preprocess(out)],
        "preprocess_1worker": lambda out: [preprocess(out, "--workers", "1")],
    }
    seconds = {key: [] for key in contestants}
    cpu_seconds = {key: [] for key in contestants}
    for run in range(runs):
        for key, commands in contestants.items():
            out = work / name / f"{key}-{run}"
            wall, cpu = timed(commands(out), out)
            seconds[key].append(round(wall, 3))
            cpu_seconds[key].append(round(cpu, 3))
    report = json.loads((work / name / "preprocess-0" / "preprocess.json").read_text())
    per_s = {key: round(n / statistics.median(s), 1) for key, s in seconds.items()}
    cpu_ms = {key: round(1000 * statistics.median(s) / n, 3) for key, s in cpu_seconds.items()}
    return {
        "set": name,
        "images": n,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "per_s": per_s,
        "cpu_ms_per_image": cpu_ms,
        "cpu_ratio": round(cpu_ms["preprocess"] / cpu_ms["original"], 2),
        "speedup": round(per_s["preprocess"] / per_s["original"], 2),
        "two_process_ceiling": round(per_s["original_2procs"] / per_s["original"], 2),
        "preprocess_workers": report["last_run"]["workers"],
        "preprocess_written": report["counts"]["written"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=3000, help="JPEGs of 512x512")
    parser.add_argument("--n-small", type=int, default=500, help="JPEGs of 80-120 px a side")
    parser.add_argument("--runs", type=int, default=3, help="runs of each contestant per set; medians are reported")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "preprocess.json")
    parser.add_argument("--work", type=Path, default=ROOT / "bench-out", help="where the images and outputs go")
    args = parser.parse_args()

    sets = [
        ("512x512", args.n, make_set(args.work / "images" / "512", args.n, lambda rng: (512, 512), seed=1)),
        (
            "~100px",
            args.n_small,
            make_set(args.work / "images" / "small", args.n_small, lambda rng: tuple(rng.integers(80, 121, 2)), seed=2),
        ),
    ]
    # Every run writes a new folder and all are deleted at the end, not between runs: on ext4 without
    # a journal (this VM's disk) creating files in the 30 s after thousands were deleted costs up to
    # 20 times the system time (the inode allocator skips recently deleted inodes one by one), which
    # would bill each contestant for the previous one's clean-up.
    outputs = args.work / "outputs"
    shutil.rmtree(outputs, ignore_errors=True)
    load_before = os.getloadavg()
    try:
        rows = [bench_set(name, images, n, args.runs, outputs) for name, n, images in sets]
    finally:
        shutil.rmtree(outputs, ignore_errors=True)
    load_after = os.getloadavg()

    print(
        f"{'set':<9} {'images':>6} {'original loop/s':>16} "
        f"{'preprocess/s':>13} {'ratio':>6}   {'original in 2 procs/s':>21}"
        f"   {'CPU ms/img: loop':>16} {'preprocess':>10} {'ratio':>6} {'1 worker':>8}"
    )
    for row in rows:
        per_s, cpu_ms = row["per_s"], row["cpu_ms_per_image"]
        print(
            f"{row['set']:<9} {row['images']:>6} {per_s['original']:>16.0f} "
            f"{per_s['preprocess']:>13.0f} {row['speedup']:>5.2f}x"
            f"   {per_s['original_2procs']:>14.0f} ({row['two_process_ceiling']:.2f}x)"
            f"   {cpu_ms['original']:>16.3f} {cpu_ms['preprocess']:>10.3f} "
            f"{row['cpu_ratio']:>5.2f}x {cpu_ms['preprocess_1worker']:>8.3f}"
        )
    print(
        f"cpus {os.cpu_count()}, load average {load_before[0]:.2f} "
        f"before, {load_after[0]:.2f} after; medians of {args.runs} runs"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "rows": rows,
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "runs": args.runs,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
