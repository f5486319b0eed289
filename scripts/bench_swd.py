"""Time SWD on one set of images, as `animegan evaluate` computes it for the real and the generated set.

python scripts/bench_swd.py face/ --n 5000     the first 5,000 images of a preprocessed folder
python scripts/bench_swd.py --n 5000           random 56x56 grayscale images
"""

import argparse
import time

import numpy as np

from animegan.data import load_images
from animegan.metrics import swd


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", help="a folder written by `animegan preprocess` (default: random images)")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--size", type=int, default=56)
    parser.add_argument("--channels", type=int, default=1, choices=(1, 3))
    args = parser.parse_args()

    if args.folder:
        images = load_images(args.folder, args.size, args.channels, args.n, cache=False)
    else:
        images = np.random.default_rng(0).integers(
            0, 256, (args.n, args.size, args.size, args.channels), dtype=np.uint8
        )
    start = time.perf_counter()
    features = swd.swd_features(images, show_progress=True)
    seconds = time.perf_counter() - start
    print(
        f"{len(images)} images {args.size}x{args.size}x{args.channels}: SWD features in {seconds:.1f} s "
        f"({len(features)} levels; an uncached evaluation extracts two sets, a cached one only the generated set)"
    )


if __name__ == "__main__":
    main()
