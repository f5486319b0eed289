"""Kill `animegan train` with SIGKILL again and again, resume after each kill, and check the run's invariants.

    python scripts/torture.py                     # 100 cycles
    python scripts/torture.py --cycles 10 --seed 1 --work /tmp/torture

One tiny run (64 demo faces at 16x16 grey, a tiny model via --set, 8 steps an epoch, two checkpoints
kept) lives through every cycle. A cycle starts `animegan train` on it (the first one, and any
start killed before it wrote its config, with --name; the others with --resume) and SIGKILLs it:

    random   after a random delay: during start-up, mid-epoch, at an epoch end or a checkpoint write
    aimed    the moment one of its first three checkpoint saves shows on disk (TensorFlow's
             ckpt-N_temp staging folder, or the new ckpt-N.index before the index records it)

then resumes the run to one epoch past where it stands, and checks, after that resume: every epoch
once in metrics.jsonl (1..N, N the newest checkpoint's epoch); the newest checkpoint reads in full
and restores; `animegan sample` works; no temp folders or files are left; the lock is released;
no traceback in any stderr. Prints a table and writes JSON (default bench-out/torture.json).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # check this checkout, not whichever animegan is installed

TINY = ["--data", "face", "--batch-size", "8", "--precision", "float32", "--xla", "off"]
for _key in ("data.size=16", "model.noise_dim=8", "model.g_width=16", "model.d_widths=[8,16]"):
    TINY += ["--set", _key]
TINY += ["--set", "model.g_kernel=3", "--set", "model.d_kernel=3", "--set", "train.keep_checkpoints=2"]
NAME = "t"
POLL_S = 0.001


def animegan(args: list[str], work: Path, stderr) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "animegan", *args]
    return subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True)


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def train_args(run: Path, epochs: int) -> list[str]:
    """--resume once the run has its config; until then a start with --name (its folder is free)."""
    if (run / "config.yaml").is_file():
        return ["train", "--resume", f"runs/{NAME}", "--epochs", str(epochs)]
    return ["train", *TINY, "--name", NAME, "--epochs", str(epochs)]


def where_it_stands(run: Path) -> tuple[int, str]:
    """The last epoch in the log or in a checkpoint, whichever is further (a kill leaves either ahead),
    and what reading the log warned about (a line the kill cut short)."""
    from animegan import checkpoints, metricslog

    with contextlib.redirect_stderr(io.StringIO()) as warned:
        logged = [r["epoch"] for r in metricslog.read_metrics(run)]
    saved = checkpoints.checkpoint_epochs(run) if checkpoints.checkpoint_dir(run).is_dir() else {}
    return max([0, *logged, *saved]), warned.getvalue().strip()


def saves_on_disk(folder: Path, before: set[str]) -> set[str]:
    """The checkpoints being saved or just saved: a staging folder, or a ckpt-N.index not there before."""
    names = os.listdir(folder) if folder.is_dir() else []
    return {
        name.removesuffix("_temp").removesuffix(".index")
        for name in names
        if name.endswith("_temp") or (name.endswith(".index") and name not in before)
    }


def kill_run(work: Path, run: Path, mode: str, rng: random.Random, target: int, log: Path) -> dict:
    """Start the trainer and SIGKILL it as `mode` says; what happened, for the table."""
    folder = run / "checkpoints"
    with open(log, "w") as err:
        proc = animegan(train_args(run, target), work, err)
    start = time.perf_counter()
    if mode == "random":
        delay = rng.uniform(0.5, 16.0)
        while proc.poll() is None and time.perf_counter() - start < delay:
            time.sleep(0.01)
        what = f"after {delay:.1f} s"
    else:
        wanted, saves = rng.randint(1, 3), set()
        before = set(os.listdir(folder)) if folder.is_dir() else set()
        while proc.poll() is None and len(saves) < wanted and time.perf_counter() - start < 90:
            saves |= saves_on_disk(folder, before)
            time.sleep(POLL_S)
        what = f"at save {wanted} ({max(saves, key=lambda n: int(n.split('-')[1]))})" if saves else "no save seen"
    finished = proc.poll() is not None
    if not finished:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    return {"kill": what if not finished else f"{what}: ended first", "killed_rc": proc.returncode}


def check_run(run: Path, work: Path, epochs: int) -> list[str]:
    """The invariants after a resume that ran to `epochs`; the ones that fail."""
    from click.testing import CliRunner

    from animegan import checkpoints, metricslog
    from animegan.cli import cli

    failures = []
    logged = [r["epoch"] for r in metricslog.read_metrics(run) if "event" not in r]
    if logged != list(range(1, epochs + 1)):
        failures.append(f"metrics epochs {logged[:3]}...{logged[-3:]} (len {len(logged)}), not 1..{epochs}")
    prefixes = checkpoints.checkpoint_prefixes(run)
    if len(prefixes) > 2:
        failures.append(f"{len(prefixes)} checkpoints, keep_checkpoints is 2")
    newest = prefixes[0] if prefixes else None
    if newest is None or (damage := checkpoints.checkpoint_damage(newest)) is not None:
        failures.append(f"newest checkpoint {newest} does not read: {damage if newest else 'none'}")
    else:
        try:
            _, _, epoch = checkpoints.load_generator(run, newest)
            if epoch != epochs:
                failures.append(f"newest checkpoint {newest} is epoch {epoch}, not {epochs}")
        except Exception as exc:  # any failure to restore is what this checks
            failures.append(f"newest checkpoint {newest} does not restore: {exc}")
    sampled = CliRunner().invoke(cli, ["sample", "--run", str(run), "--n", "4", "--out", str(work / "s.png")])
    if sampled.exit_code != 0:
        failures.append(f"sample: exit {sampled.exit_code}: {sampled.output.strip()[-200:]}")
    leftovers = [p.name for pattern in ("*_temp", ".*.tmp", "checkpoint.tmp*") for p in run.rglob(pattern)]
    if leftovers:
        failures.append(f"leftovers: {', '.join(leftovers)}")
    if (run / "lock").read_text():
        failures.append(f"lock still names a holder: {(run / 'lock').read_text().strip()}")
    return failures


def setup(work: Path) -> None:
    for args in (["demo-data", "demo", "--n", "64"], ["preprocess", "demo", "face", "--size", "16", "--quiet"]):
        proc = animegan(args, work, subprocess.PIPE)
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"`animegan {' '.join(args)}` failed:\n{err}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=100, help="Kill-and-resume cycles (default 100).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the kill modes and delays.")
    parser.add_argument("--work", type=Path, help="Folder for the data and the run (default: a new temp folder).")
    parser.add_argument(
        "--json", type=Path, default=ROOT / "bench-out" / "torture.json", help="Where to write the results."
    )
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="animegan-torture-"))
    work.mkdir(parents=True, exist_ok=True)
    setup(work)
    from animegan.clikit import quiet_tensorflow, stderr_silenced

    quiet_tensorflow(verbose=False)
    with stderr_silenced(True):  # the checks run TensorFlow in this process too: without its start-up noise
        import tensorflow  # noqa: F401
    run, rng, rows, started = work / "runs" / NAME, random.Random(args.seed), [], time.perf_counter()
    print(f"{'cycle':>5}  {'mode':<6}  {'kill':<34}  {'rc':>4}  {'epochs':>6}  {'s':>5}  result")
    for cycle in range(1, args.cycles + 1):
        cycle_start = time.perf_counter()
        mode = "aimed" if cycle % 2 == 0 else "random"
        killed_log, resumed_log = work / "killed.err", work / "resumed.err"
        target = where_it_stands(run)[0] + 15  # more epochs than a kill leaves it time for, mostly
        row = {"cycle": cycle, "mode": mode, **kill_run(work, run, mode, rng, target, killed_log)}
        stands, row["after_kill"] = where_it_stands(run)
        epochs = stands + 1
        with open(resumed_log, "w") as err:
            resumed = animegan(train_args(run, epochs), work, err)
        resumed.wait()
        failures = [] if row["killed_rc"] in (0, -signal.SIGKILL) else [f"killed run exited {row['killed_rc']}"]
        if resumed.returncode != 0:
            failures.append(f"resume exit {resumed.returncode}: {resumed_log.read_text().strip()[-300:]}")
        for log in (killed_log, resumed_log):
            if "Traceback" in log.read_text():
                failures.append(f"traceback in {log.name}")
        if resumed.returncode == 0:
            failures += check_run(run, work, epochs)
        notes = [
            line
            for line in resumed_log.read_text().splitlines()
            if line.startswith(("note:", "warning:", "WARNING:", "dropped", "resumed"))
        ]
        row.update(epochs=epochs, seconds=round(time.perf_counter() - cycle_start, 1), failures=failures, notes=notes)
        rows.append(row)
        if failures:
            keep = work / f"failure-{cycle:03d}"
            keep.mkdir()
            for log in (killed_log, resumed_log):
                (keep / log.name).write_text(log.read_text())
        print(
            f"{cycle:>5}  {mode:<6}  {row['kill'][:34]:<34}  {row['killed_rc']:>4}  {epochs:>6}  "
            f"{row['seconds']:>5.1f}  {'; '.join(failures) or 'ok'}",
            flush=True,
        )
    results = {
        "cycles": args.cycles,
        "failures": sum(bool(row["failures"]) for row in rows),
        "wall_s": round(time.perf_counter() - started, 1),
        "seed": args.seed,
        "work": str(work),
        "python": platform.python_version(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "rows": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"{results['failures']} of {args.cycles} cycles failed in {results['wall_s']:.0f} s on {results['cpu']}")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
