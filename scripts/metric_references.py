"""Reference values for the metrics: what real faces, blurred faces, repeated faces and noise score
against 2,000 real faces. Tells how to read a run's numbers, and checks that each metric moves the
way it should.

    python scripts/metric_references.py --faces face/          # 56x56 grayscale faces from preprocess

Two disjoint random sets of --n faces (seeded) play "real" and "other real". Prints a Markdown
table and writes JSON (default bench-out/metric-references.json).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

METRICS = ["swd", "prdc", "diversity"]
COLUMNS = ["precision", "recall", "density", "coverage", "near_duplicates", "swd"]


def main() -> None:
    from animegan.data import load_images
    from animegan.metrics.evaluate import extract_all, feature_extractors, score

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=Path, default=Path("face"))
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "metric-references.json")
    args = parser.parse_args()

    images = load_images(args.faces, 56, 1, 0, show_progress=False, cache=False)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(images))
    real, other = images[order[: args.n]], images[order[args.n : 2 * args.n]]
    sets = {
        f"{args.n:,} other real faces": other,
        "the same faces, Gaussian-blurred (7x7, sigma 2)": np.stack([cv2.GaussianBlur(x, (7, 7), 2)[..., None] for x in other]),
        "20 real faces, each repeated": other[rng.integers(0, 20, args.n)],
        "one real face, repeated": np.repeat(other[:1], args.n, axis=0),
        "uniform noise": rng.integers(0, 256, other.shape).astype(np.uint8),
    }
    extractors = feature_extractors(METRICS)
    real_features = extract_all(extractors, real)
    results = {name: score(METRICS, real_features, extract_all(extractors, fake)) for name, fake in sets.items()}

    print(f"| compared with {args.n:,} real faces | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for name, scores in results.items():
        print(f"| {name} | " + " | ".join(f"{scores[c]:.3g}" for c in COLUMNS) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
