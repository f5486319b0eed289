"""Training speed and memory: the TensorFlow-tutorial DCGAN loop against animegan's, at 56x56x1, batch 256.

    python scripts/bench_train.py                 # float32 + every precision this CPU runs natively
    python scripts/bench_train.py --precisions float32,mixed_bfloat16 --repeats 5
    python scripts/bench_train.py --study study:r1,texture:resize --steps 32   # study variants' cost (studylib.py)
    python scripts/bench_train.py --paired animegan+augment,animegan+ada --repeats 20   # adaptive p's cost
    python scripts/bench_train.py --paired texture:k4-deep-ttur,texture:k4-deep-ttur-b64 --batch 128 --steps 16

Each measurement runs in a fresh child process (so peak memory, VmHWM, belongs to that variant
alone); variants are interleaved and repeated, and the table gives medians. "tutorial" is the
plain keras-io/TensorFlow-tutorial loop: Sequential models, GradientTape, @tf.function,
from_tensor_slices(float32).shuffle().batch(256), D called twice, run as TensorFlow runs it by
default; "tutorial+onednn" is the same loop with TF_ENABLE_ONEDNN_OPTS=1, the setting animegan
makes (TensorFlow turns oneDNN on by itself only on AVX-512-class CPUs), so the table separates
what that switch gives from what the rest of animegan gives. "animegan" is the real training
step and input pipeline (uint8 data set, index-batch gather, DiffAugment off so both do the same
maths) with the default config's models; "animegan+augment" adds the default DiffAugment ops on
every image (train.augment_p: 1) and "animegan+ada" the same ops at an adaptive strength (train.augment_p: auto:
per-image masks and the p update), whose cost does not depend on p's value. "animegan train" runs
the whole `train()` for 2 epochs and reports the second epoch's images/s including sampling and
checkpointing.
Prints a table and writes JSON (default bench-out/train.json).

--paired times two or more of the animegan step variants in one process instead, alternating
blocks of --steps steps for --repeats rounds: on a machine other jobs load, the load then falls on
every variant alike, and the median of the per-round ratios measures a few percent that separate
processes' medians cannot (their spread here was 20-30%). Animegan's steps take --batch images
(default 256, the tutorial's), except a variant that sets its own train.batch_size: the table names
each variant's batch, and img/s is images, so variants at different batches compare fairly.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # measure this checkout, not whichever animegan is installed

SIZE, BATCH, NOISE = 56, 256, 160
VARIANTS = ("tutorial", "tutorial+onednn", "animegan", "animegan+augment", "animegan+ada", "animegan train")


def peak_memory_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed_steps(step, batches, batch: int, warmup: int, steps: int) -> float:
    """Images/s over `steps` steps of `batch` images after `warmup` untimed ones (tracing, allocator warm-up)."""
    iterator = iter(batches)
    for _ in range(warmup):
        step(next(iterator))
    start = time.perf_counter()
    for _ in range(steps):
        result = step(next(iterator))
    float(result)  # wait for the last step
    return steps * batch / (time.perf_counter() - start)


def tutorial(images, warmup: int, steps: int) -> float:
    """The TensorFlow DCGAN tutorial, scaled to 56x56 as in the blog recipe."""
    import tensorflow as tf
    from tensorflow.keras import layers

    generator = tf.keras.Sequential(
        [
            layers.Input((NOISE,)),
            layers.Dense(7 * 7 * 256, use_bias=False),
            layers.BatchNormalization(),
            layers.LeakyReLU(),
            layers.Reshape((7, 7, 256)),
            layers.Conv2DTranspose(128, 5, strides=1, padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.LeakyReLU(),
            layers.Conv2DTranspose(64, 5, strides=2, padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.LeakyReLU(),
            layers.Conv2DTranspose(32, 5, strides=2, padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.LeakyReLU(),
            layers.Conv2DTranspose(1, 5, strides=2, padding="same", use_bias=False, activation="tanh"),
        ]
    )
    discriminator = tf.keras.Sequential(
        [
            layers.Input((SIZE, SIZE, 1)),
            layers.Conv2D(64, 5, strides=2, padding="same"),
            layers.LeakyReLU(),
            layers.Dropout(0.3),
            layers.Conv2D(128, 5, strides=2, padding="same"),
            layers.LeakyReLU(),
            layers.Dropout(0.3),
            layers.Flatten(),
            layers.Dense(1),
        ]
    )
    bce = tf.keras.losses.BinaryCrossentropy(from_logits=True)
    g_opt, d_opt = tf.keras.optimizers.Adam(1e-4), tf.keras.optimizers.Adam(1e-4)

    @tf.function
    def train_step(real):
        noise = tf.random.normal([BATCH, NOISE])
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = generator(noise, training=True)
            real_out, fake_out = discriminator(real, training=True), discriminator(fake, training=True)
            g_loss = bce(tf.ones_like(fake_out), fake_out)
            d_loss = bce(tf.ones_like(real_out), real_out) + bce(tf.zeros_like(fake_out), fake_out)
        g_opt.apply_gradients(
            zip(g_tape.gradient(g_loss, generator.trainable_variables), generator.trainable_variables)
        )
        d_opt.apply_gradients(
            zip(d_tape.gradient(d_loss, discriminator.trainable_variables), discriminator.trainable_variables)
        )
        return d_loss

    data = (images.astype("float32") - 127.5) / 127.5  # the tutorial holds the data set as float32
    batches = tf.data.Dataset.from_tensor_slices(data).shuffle(len(data)).batch(BATCH).repeat()
    return timed_steps(train_step, batches, BATCH, warmup, steps)


def animegan_stepper(images, precision: str, batch: int, augment: str = "", sets: tuple = ()):
    """(one step returning its d_loss, endless batches, the batch size) of the real train step; `sets`
    are config overrides (a study variant; its train.batch_size wins over `batch`). Lazy R1 runs every
    train.r1_every steps as in training, so time at least r1_every steps to include it fairly."""
    import itertools

    import keras
    import tensorflow as tf

    from animegan.config import Config, apply_overrides, parse_set_options
    from animegan.data import epoch_dataset
    from animegan.step import build_state, make_train_step

    cfg = Config()
    cfg.train.augment = augment
    cfg.train.batch_size = batch
    apply_overrides(cfg, parse_set_options(sets), "bench")
    keras.mixed_precision.set_global_policy(precision)
    strategy = tf.distribute.get_strategy()
    state = build_state(cfg, precision)
    batch = cfg.train.batch_size
    step = make_train_step(cfg, state, strategy, batch, xla=False)
    batches = epoch_dataset(images, batch, 0, 1).repeat()
    counter = itertools.count()
    r1_every = cfg.train.r1_every if cfg.train.r1_gamma > 0 else 0

    def one_step(batch):
        regularize = bool(r1_every) and next(counter) % r1_every == 0
        return step(batch, regularize=regularize)["d_loss"]

    if r1_every:
        one_step(next(iter(batches)))  # trace the regularised step outside the timing, like the plain one
    return one_step, batches, batch


def animegan_config(variant: str) -> tuple[str, tuple]:
    """(train.augment, --set items) of an animegan step variant."""
    from animegan.config import Config

    if variant == "animegan":
        return "", ()
    if variant.startswith(("study:", "texture:")):
        from studylib import variant_overrides

        return Config().train.augment, tuple(variant_overrides(variant))
    return Config().train.augment, ("train.augment_p=auto",) if variant == "animegan+ada" else ("train.augment_p=1",)


def paired_rates(images, precision: str, batch: int, variants: list[str], warmup: int, steps: int, rounds: int) -> dict:
    """Images/s of each variant in each round (their blocks of `steps` steps alternate in this one
    process), and each variant's batch size."""
    steppers = [animegan_stepper(images, precision, batch, *animegan_config(v)) for v in variants]
    iterators = [(step, iter(batches), size) for step, batches, size in steppers]
    for step, batches, size in iterators:
        timed_steps(step, batches, size, warmup, 1)
    rates = [[timed_steps(step, batches, size, 0, steps) for step, batches, size in iterators] for _ in range(rounds)]
    return {"rounds": rates, "batches": [size for _, _, size in iterators]}


def animegan_train(images, precision: str) -> float:
    """Whole epochs of `train()`: the second epoch's images per second of wall time, end-of-epoch work included."""
    import cv2

    from animegan.config import Config
    from animegan.metricslog import read_metrics
    from animegan.train import train

    with tempfile.TemporaryDirectory() as tmp:
        face = Path(tmp) / "face"
        face.mkdir()
        for i, image in enumerate(images[: BATCH * 20]):
            cv2.imwrite(str(face / f"{i:05d}.png"), image)
        cfg = Config()
        cfg.data.dir, cfg.train.runs_dir, cfg.train.epochs, cfg.train.precision = (
            str(face),
            str(Path(tmp) / "runs"),
            2,
            precision,
        )
        cfg.train.batch_size = BATCH
        cfg.train.augment = ""
        run = train(cfg)
        record = read_metrics(run)[-1]
        return 20 * BATCH / record["wall_s"]


def child(variant: str, precision: str, batch: int, warmup: int, steps: int) -> None:
    import numpy as np

    images = np.random.default_rng(0).integers(0, 256, (20000, SIZE, SIZE, 1), dtype=np.uint8)
    if variant.startswith("paired:"):
        names, rounds = variant[len("paired:") :].rsplit(":", 1)
        print(json.dumps(paired_rates(images, precision, batch, names.split(","), warmup, steps, int(rounds))))
        return
    if variant.startswith("tutorial"):
        rate = tutorial(images, warmup, steps)  # before any animegan import, which sets TF_ENABLE_ONEDNN_OPTS
    elif variant == "animegan train":
        rate = animegan_train(images, precision)
    else:
        rate = timed_steps(*animegan_stepper(images, precision, batch, *animegan_config(variant)), warmup, steps)
    print(json.dumps({"images_per_s": rate, "peak_mib": peak_memory_mib()}))


def run_child(variant: str, precision: str, batch: int, warmup: int, steps: int) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)  # TensorFlow's default for "tutorial", animegan's for the rest
    if variant == "tutorial+onednn":
        env["TF_ENABLE_ONEDNN_OPTS"] = "1"
    command = [
        sys.executable,
        __file__,
        "--child",
        variant,
        "--precisions",
        precision,
        "--batch",
        str(batch),
        "--warmup",
        str(warmup),
        "--steps",
        str(steps),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{variant} {precision} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precisions", help="comma list (default: float32 plus the CPU's native bf16 if any)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--batch", type=int, default=BATCH, help="animegan steps' batch size (a variant's train.batch_size wins)"
    )
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--no-train", action="store_true", help="skip the whole-epoch `animegan train` measurement")
    parser.add_argument("--variants", help=f"comma list of {', '.join(VARIANTS)} (default: all)")
    parser.add_argument(
        "--study",
        help="comma list of study variants to time instead, study:NAME (stabilisers) or texture:NAME "
        "(scripts/studylib.py)",
    )
    parser.add_argument(
        "--paired", help="comma list of animegan step variants to time in one process, alternating (see above)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out" / "train.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.precisions, args.batch, args.warmup, args.steps)
        return

    from animegan.distribute import cpu_has_native_bf16

    precisions = (
        args.precisions.split(",")
        if args.precisions
        else ["float32"] + (["mixed_bfloat16"] if cpu_has_native_bf16() else [])
    )
    if args.paired:
        paired_main(args, precisions)
        return
    chosen = (
        args.variants.split(",")
        if args.variants
        else [v for v in VARIANTS if not ((args.no_train or args.study) and v == "animegan train")]
    )
    if set(chosen) - set(VARIANTS):
        parser.error(f"unknown variant in --variants; choose from {', '.join(VARIANTS)}")
    tutorials = [(v, "float32") for v in chosen if v.startswith("tutorial")]
    if args.study:
        variants = tutorials + [(name, p) for name in args.study.split(",") for p in precisions]
    else:
        variants = tutorials + [(v, p) for v in chosen if not v.startswith("tutorial") for p in precisions]
    results = {v: [] for v in variants}
    for repeat in range(args.repeats):
        for variant in variants:
            results[variant].append(run_child(*variant, args.batch, args.warmup, args.steps))
            print(
                f"  run {repeat + 1}/{args.repeats} {variant[0]} {variant[1]}: "
                f"{results[variant][-1]['images_per_s']:.0f} img/s",
                file=sys.stderr,
            )

    rates = {key: statistics.median(r["images_per_s"] for r in runs) for key, runs in results.items()}
    # Ratios against the tutorial (both settings) and, for the adaptive strength, against fixed DiffAugment.
    baselines = {
        "tutorial": lambda p: ("tutorial", "float32"),
        "tutorial_onednn": lambda p: ("tutorial+onednn", "float32"),
        "augment": lambda p: ("animegan+augment", p),
    }
    rows = []
    for (variant, precision), runs in results.items():
        rate = rates[(variant, precision)]
        ratios = {
            f"ratio_to_{name}": round(rate / rates[key(precision)], 3)
            for name, key in baselines.items()
            if key(precision) in rates
        }
        rows.append(
            {
                "variant": variant,
                "precision": precision,
                "images_per_s": round(rate, 1),
                "runs": [round(r["images_per_s"], 1) for r in runs],
                **ratios,
                "peak_mib": round(statistics.median(r["peak_mib"] for r in runs)),
            }
        )
    print(
        f"\n{'variant':<22} {'precision':<15} {'img/s':>8} "
        f"{'x tutorial':>11} {'x tut+onednn':>13} {'x augment':>10} {'peak MiB':>9}"
    )
    for row in rows:
        cells = [
            f"{row[k]:.2f}" if k in row else "-"
            for k in ("ratio_to_tutorial", "ratio_to_tutorial_onednn", "ratio_to_augment")
        ]
        print(
            f"{row['variant']:<22} {row['precision']:<15} {row['images_per_s']:>8.0f} "
            f"{cells[0]:>11} {cells[1]:>13} {cells[2]:>10} {row['peak_mib']:>9}"
        )
    write_report(args.out, batch=args.batch, repeats=args.repeats, steps=args.steps, rows=rows)


def write_report(path: Path, **fields) -> None:
    """The JSON beside the printed table: the machine and load, then the measurements."""
    from studylib import cpu_name

    from animegan.distribute import cpu_has_native_bf16

    report = {
        "machine": platform.processor() or platform.machine(),
        "cpu": cpu_name(),
        "cpus": os.cpu_count(),
        "native_bf16": cpu_has_native_bf16(),
        "size": SIZE,
        "load_avg": os.getloadavg(),
        **fields,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {path}")


def paired_main(args, precisions: list[str]) -> None:
    names = args.paired.split(",")
    studies = {n for n in names if n.startswith(("study:", "texture:"))}
    if len(names) < 2 or set(names) - {"animegan", "animegan+augment", "animegan+ada"} - studies:
        raise SystemExit(
            "--paired takes two or more of animegan, animegan+augment, animegan+ada, study:NAME, texture:NAME"
        )
    rows = []
    for precision in precisions:
        timed = run_child(f"paired:{args.paired}:{args.repeats}", precision, args.batch, args.warmup, args.steps)
        rounds = timed["rounds"]
        for i, name in enumerate(names):
            ratios = [r[i] / r[0] for r in rounds]
            rows.append(
                {
                    "variant": name,
                    "precision": precision,
                    "batch": timed["batches"][i],
                    "images_per_s": round(statistics.median(r[i] for r in rounds), 1),
                    "ratio_to_first": round(statistics.median(ratios), 3),
                    "ratio_quartiles": [round(q, 3) for q in statistics.quantiles(ratios, n=4)]
                    if len(ratios) > 1
                    else None,
                    "rounds": [round(r[i], 1) for r in rounds],
                }
            )
    header = f"{'variant':<22} {'precision':<15} {'batch':>6} {'img/s':>8} {'x ' + names[0]:>20}"
    print(f"\n{header} {'quartiles of the ratio':>24}")
    for row in rows:
        quartiles = (
            f"{row['ratio_quartiles'][0]:.3f}-{row['ratio_quartiles'][2]:.3f}" if row["ratio_quartiles"] else "-"
        )
        print(
            f"{row['variant']:<22} {row['precision']:<15} {row['batch']:>6} {row['images_per_s']:>8.0f} "
            f"{row['ratio_to_first']:>20.3f} {quartiles:>24}"
        )
    write_report(args.out, batch=args.batch, rounds=args.repeats, steps=args.steps, paired=rows)


if __name__ == "__main__":
    main()
