"""Reference values for the metrics: what real faces, blurred faces, faces with grain added,
repeated faces and noise score against 2,000 real faces. Tells how to read a run's numbers, and checks
that each metric moves the way it should.

    python scripts/metric_references.py --faces face/          # 56x56 grayscale faces from preprocess
    python scripts/metric_references.py --faces face64/ --size 64 --channels 3 \\
        --out bench-out/metric-references-rgb.json

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

METRICS = ["swd", "prdc", "fd", "diversity", "spectrum"]
COLUMNS = ["precision", "recall", "density", "coverage", "near_duplicates", "swd", "fd", "spectrum", "spectrum_hf"]
GRAIN_SIGMA = 8.0  # grey levels of per-pixel Gaussian noise: visible speckle, as in the grainy grids


def blurred(images: np.ndarray) -> np.ndarray:
    return np.stack([cv2.GaussianBlur(x, (7, 7), 2).reshape(x.shape) for x in images])


def grainy(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.clip(images + rng.normal(0, GRAIN_SIGMA, images.shape), 0, 255).astype(np.uint8)


def main() -> None:
    from animegan.data import load_images
    from animegan.metrics.evaluate import extract_all, feature_extractors, score

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=Path, default=Path("face"))
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--size", type=int, default=56)
    parser.add_argument("--channels", type=int, default=1, choices=(1, 3))
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "metric-references.json")
    args = parser.parse_args()

    images = load_images(args.faces, args.size, args.channels, 0, show_progress=False, cache=False)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(images))
    real, other = images[order[: args.n]], images[order[args.n : 2 * args.n]]
    sets = {
        f"{args.n:,} other real faces": other,
        "the same faces, Gaussian-blurred (7x7, sigma 2)": blurred(other),
        f"the same faces, grain added (Gaussian, sigma {GRAIN_SIGMA:g} grey levels)": grainy(other, rng),
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
