"""Time the command line's start-up: how long `animegan --help` and friends take in a fresh process.

    python scripts/bench_cli.py                 # 5 runs of each command
    python scripts/bench_cli.py --runs 10

Each command runs as `python -m animegan ...` from this checkout, start-up included (the Python
interpreter, click, the config module). The commands that only print help or the version must not
import TensorFlow, which takes seconds; the "modules" column counts what each one imports and
"tensorflow" says whether TensorFlow was among them. Prints a table and writes JSON (default
bench-out/cli.json). This was an assertion in the tests once; a timing depends on the machine and
its load, so it lives here and the tests only check that TensorFlow stays out.
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
COMMANDS = (["--help"], ["--version"], ["preprocess", "--help"], ["train", "--help"], ["sample", "--help"])


def run_once(args: list[str]) -> tuple[float, set[str]]:
    """Seconds for one `python -X importtime -m animegan ARGS` process, and the modules it imported."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "animegan", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"`animegan {' '.join(args)}` failed:\n{result.stderr[-2000:]}")
    # -X importtime writes one "import time: ... | module" line per module imported.
    modules = {
        line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")
    }
    return seconds, modules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=int, default=5, help="Processes per command (default 5); the median is reported."
    )
    parser.add_argument(
        "--json", type=Path, default=ROOT / "bench-out" / "cli.json", help="Where to write the results."
    )
    args = parser.parse_args()

    rows = []
    for command in COMMANDS:
        run_once(command)  # warm the file cache and the .pyc files, as a user's second call would be
        seconds, modules = zip(*(run_once(command) for _ in range(args.runs)))
        rows.append(
            {
                "command": "animegan " + " ".join(command),
                "median_s": round(statistics.median(seconds), 3),
                "runs_s": [round(s, 3) for s in seconds],
                "modules": len(modules[-1]),
                "tensorflow": any(m.split(".")[0] in ("tensorflow", "keras") for m in modules[-1]),
            }
        )
    results = {
        "rows": rows,
        "runs": args.runs,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")

    width = max(len(row["command"]) for row in rows)
    print(f"{'command':<{width}}  {'median s':>8}  {'modules':>7}  tensorflow")
    for row in rows:
        print(
            f"{row['command']:<{width}}  {row['median_s']:>8.3f}  "
            f"{row['modules']:>7}  {'yes' if row['tensorflow'] else 'no'}"
        )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
