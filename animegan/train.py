"""The DCGAN training loop and what runs around it: setting up a run, the epochs, signals, the NaN guard.

The state and the step it repeats are in step.py; checkpoints.py saves and restores them.
"""

from __future__ import annotations

import json
import math
import signal
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from animegan import __version__, checkpoints, metricslog, rundir, runlock
from animegan.augment import small_data_note
from animegan.config import Config
from animegan.data import epoch_dataset, load_images
from animegan.distribute import choose_precision, choose_strategy, choose_xla, describe_device, is_chief, setup_devices
from animegan.ema import standing_batchnorm_stats
from animegan.errors import UserError
from animegan.files import atomic_path
from animegan.images import make_grid, to_uint8, write_png
from animegan.say import say
from animegan.step import TrainState, build_state, make_train_step

FETCH_EVERY = 10  # steps between reading losses back from the device (each read is a sync)


def mean(sums: dict, key: str) -> float:
    """The average of one stat summed by EpochLoop.fetch."""
    return sums[key] / sums[f"{key}_n"]


class GracefulStop:
    """Ctrl-C or SIGTERM asks the loop to stop after the current step; a second Ctrl-C stops at once."""

    def __init__(self):
        self.signum = None
        self.previous = {}

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        say("stopping after this step (Ctrl-C again to stop at once)...")

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: signals stay as they were
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def fit_batch_size(requested: int, num_images: int, replicas: int) -> int:
    """The global batch: `requested`, shrunk to the data set when that is smaller (a warning, not an error)."""
    if requested % replicas:
        raise UserError(
            f"train.batch_size {requested} does not split evenly over {replicas} replicas; use a multiple of {replicas}"
        )
    if num_images < max(2, replicas):
        raise UserError(
            f"only {num_images} training image(s); at least {max(2, replicas)} are needed: "
            "add images and re-run preprocess"
        )
    if num_images >= requested:
        return requested
    fitted = num_images - num_images % replicas
    say(f"warning: only {num_images} images, fewer than one batch of {requested}; training with batch size {fitted}")
    return fitted


def sample_grid(state: TrainState) -> np.ndarray:
    images = state.ema_generator(state.fixed_noise, training=False)
    return make_grid(to_uint8(images.numpy()))


def train(cfg: Config, resume: Path | None = None) -> Path:
    """Train (or resume) a run; returns the run directory."""
    gpus = setup_devices()
    precision = choose_precision(cfg.train.precision, gpus)
    xla = choose_xla(cfg.train.xla, gpus)
    strategy = choose_strategy(cfg.train.strategy)
    chief = is_chief(strategy.cluster_resolver)
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        with runlock.claim_run(cfg, resume, chief) as run:
            with strategy.scope():
                state = build_state(cfg, precision)
            saver = checkpoints.Checkpoints(state, run, cfg.train.keep_checkpoints, chief)
            if resume is not None and not restore_run(cfg, saver, run, chief):
                return run
            train_run(cfg, state, strategy, saver, run, chief, precision, xla, gpus)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    return run


def restore_run(cfg: Config, saver: checkpoints.Checkpoints, run: Path, chief: bool) -> bool:
    """Restore the newest checkpoint into the state, or leave it new when the run was stopped before
    its first checkpoint; tidy the metrics log to match. False when the run has its epochs already."""
    done = 0
    if not checkpoints.checkpoint_prefixes(run):
        say(f"note: run {run} has no checkpoint yet (it stopped before its first epoch ended); starting it afresh")
    else:
        restored = saver.restore_latest(run)
        done = int(saver.state.epoch.numpy())
        say(f"resumed {restored} (epoch {done}, step {int(saver.state.step.numpy())})")
        if done >= cfg.train.epochs:
            say(
                f"run {run} already has {done} epochs and --epochs ({cfg.train.epochs}) is the total to reach, "
                f"not a number to add; to train more: "
                f"animegan train --resume {run} --epochs {done + max(10, done // 2)}"
            )
            return False
    if chief and (dropped := metricslog.tidy_metrics(run, done)):
        say(f"dropped {dropped} {rundir.metrics_path(run)} line(s) past epoch {done}: those epochs are trained again")
    return True


def train_run(cfg, state, strategy, saver, run, chief, precision, xla, gpus) -> None:
    """Load the data, write the run's config and runtime facts, and run the epochs."""
    data = cfg.data
    images = load_images(Path(data.dir), data.size, data.channels, data.limit, chief, cache_dir=data.cache_dir)
    global_batch = fit_batch_size(cfg.train.batch_size, len(images), strategy.num_replicas_in_sync)
    steps_per_epoch = len(images) // global_batch
    if chief:
        say(
            f"image cache: {images.filename} ({images.nbytes / 1e9:.2f} GB, memory-mapped; safe to delete, "
            "rebuilt when needed; data.cache_dir puts it elsewhere)"
        )
        if note := small_data_note(cfg.train, len(images), global_batch):
            say(note)
        rundir.save_config(run, cfg)
        runtime = {
            "animegan": __version__,
            "tensorflow": tf.__version__,
            "precision": precision,
            "xla": xla,
            "replicas": strategy.num_replicas_in_sync,
            "device": describe_device(gpus),
            "images": len(images),
            "batch_size": global_batch,
            "steps_per_epoch": steps_per_epoch,
        }
        with atomic_path(run / "runtime.json") as tmp:
            tmp.write_text(json.dumps(runtime, indent=2) + "\n", encoding="utf-8")
    say(
        f"run {run}: {len(images)} images, batch {global_batch}, {steps_per_epoch} steps/epoch, "
        f"{precision}, XLA {'on' if xla else 'off'}, "
        f"{strategy.num_replicas_in_sync} replica(s) on {describe_device(gpus)}"
    )
    train_step = make_train_step(cfg, state, strategy, global_batch, xla)
    loop = EpochLoop(cfg, state, strategy, train_step, saver, run, chief, images, global_batch, steps_per_epoch)
    with GracefulStop() as stop:
        try:
            loop.run(stop)
        except tf.errors.UnavailableError:
            if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
                raise
            # A worker that stops (crash, kill, lost machine) aborts the collective ops of all the others.
            raise UserError(
                f"another worker stopped, so this one cannot go on; see that worker's output, then start "
                f"every worker again with: animegan train --resume {run}"
            ) from None


class EpochLoop:
    """Runs epochs until train.epochs is reached, writing what each epoch end owes the run directory."""

    def __init__(self, cfg, state, strategy, train_step, saver, run, chief, images, global_batch, steps_per_epoch):
        self.cfg, self.state, self.strategy, self.train_step = cfg, state, strategy, train_step
        self.saver, self.run_dir, self.chief, self.images = saver, run, chief, images
        self.global_batch, self.steps_per_epoch = global_batch, steps_per_epoch
        self.log = None
        self.evaluator = self.best = None
        if chief and cfg.train.eval_every:
            from animegan.metrics import Evaluator

            self.evaluator, self.best = Evaluator(cfg, images), checkpoints.BestCheckpoint(run, cfg.train.eval_metric)

    def run(self, stop: GracefulStop) -> None:
        from animegan.monitor import RunLog, write_progress_gif

        cfg, state = self.cfg, self.state
        self.log = RunLog(self.run_dir) if self.chief else None
        deadline = time.monotonic() + cfg.train.max_minutes * 60 if cfg.train.max_minutes else math.inf
        try:
            # A resume from a mid-epoch checkpoint replays that epoch's order and skips the done batches.
            done_in_epoch = int(state.step.numpy()) - int(state.epoch.numpy()) * self.steps_per_epoch
            skip = done_in_epoch if 0 <= done_in_epoch < self.steps_per_epoch else 0
            for epoch in range(int(state.epoch.numpy()) + 1, cfg.train.epochs + 1):
                epoch_start = time.perf_counter()
                sums, seconds = self.run_epoch(epoch, skip, stop)
                finished = skip + sums["steps"] == self.steps_per_epoch
                skip = 0
                # A signal during an epoch's last step still ends that epoch: saved at its last step
                # but not counted, the epoch would be trained again from its first batch on resume.
                if stop.signum is not None and not finished:
                    self.stop_for_signal(stop.signum)
                state.epoch.assign(epoch)
                out_of_time = time.monotonic() >= deadline
                self.end_of_epoch(epoch, sums, seconds, epoch_start, last=out_of_time or epoch == cfg.train.epochs)
                if stop.signum is not None:
                    self.stop_for_signal(stop.signum)
                if out_of_time:
                    say(
                        f"train.max_minutes ({cfg.train.max_minutes:g}) reached after epoch {epoch}; "
                        f"continue with --resume {self.run_dir}"
                    )
                    break
            if self.chief:
                gif = write_progress_gif(self.run_dir)
                last = sorted(rundir.samples_dir(self.run_dir).glob("epoch_*.png"))
                say(f"done: {self.run_dir} (samples: {last[-1] if last else 'none'}; progress: {gif})")
        finally:
            if self.log is not None:
                self.log.close()

    def run_epoch(self, epoch: int, skip: int, stop: GracefulStop) -> tuple[dict, float]:
        """Train one epoch (from batch `skip`); returns summed stats and seconds spent in steps."""
        dataset = epoch_dataset(self.images, self.global_batch, self.cfg.train.seed, epoch, skip)
        batches = self.strategy.experimental_distribute_dataset(dataset)
        sums, pending, steps = {}, [], 0
        step = int(self.state.step.numpy())
        r1_every = self.cfg.train.r1_every if self.cfg.train.r1_gamma > 0 else 0
        bar = tqdm(
            total=self.steps_per_epoch,
            initial=skip,
            desc=f"epoch {epoch}/{self.cfg.train.epochs}",
            unit="step",
            disable=not self.chief,
            dynamic_ncols=True,
        )
        start = time.perf_counter()
        for batch in batches:
            pending.append(self.train_step(batch, regularize=bool(r1_every) and (step + steps) % r1_every == 0))
            steps += 1
            bar.update(1)
            if len(pending) == FETCH_EVERY or stop.signum is not None:
                self.fetch(pending, sums, epoch)
                bar.set_postfix(
                    d=f"{mean(sums, 'd_loss'):.3f}",
                    g=f"{mean(sums, 'g_loss'):.3f}",
                    img_s=f"{steps * self.global_batch / (time.perf_counter() - start):.0f}",
                )
            if stop.signum is not None:
                break
        self.fetch(pending, sums, epoch)
        seconds = time.perf_counter() - start
        bar.close()
        sums["steps"] = steps
        return sums, seconds

    def fetch(self, pending: list, sums: dict, epoch: int) -> None:
        """Read queued step stats back, add them up, and stop the run on a NaN or Inf loss."""
        for stats in pending:
            values = {k: float(v) for k, v in stats.items()}
            if not all(math.isfinite(v) for v in values.values()):
                latest = checkpoints.latest_checkpoint(self.run_dir)
                raise UserError(
                    f"training diverged at epoch {epoch} (d_loss={values['d_loss']}, g_loss={values['g_loss']}); "
                    f"nothing was saved after it, the last good checkpoint is {latest or 'none'}; "
                    f"resume with a lower --lr or --precision float32"
                )
            for key, value in values.items():
                sums[key] = sums.get(key, 0.0) + value
                sums[f"{key}_n"] = sums.get(f"{key}_n", 0) + 1  # per key: r1 comes only every r1_every steps
        pending.clear()

    def stop_for_signal(self, signum: int) -> None:
        if self.cfg.train.ema_bn == "standing":
            standing_batchnorm_stats(self.state.ema_generator, self.cfg.train.seed)
        prefix = self.saver.save(int(self.state.step.numpy()))
        name = signal.Signals(signum).name
        if self.chief:
            say(
                f"{name}: saved {prefix} at step {int(self.state.step.numpy())}; "
                f"resume with: animegan train --resume {self.run_dir}"
            )
        raise SystemExit(128 + signum)

    def end_of_epoch(self, epoch: int, sums: dict, seconds: float, epoch_start: float, last: bool) -> None:
        """Sample grid, metrics line, checkpoint: `images_per_s` counts the steps alone, `wall_s` the whole
        epoch. The line goes first: a kill before the checkpoint leaves a line a resume drops and writes
        anew, where the other order would lose it for good."""
        cfg, state = self.cfg, self.state
        record = {"epoch": epoch, "step": int(state.step.numpy())}
        record.update(
            {
                k: mean(sums, k)
                for k in ("d_loss", "g_loss", "d_real", "d_fake", "r1", "augment_p", "ada_rt")
                if k in sums
            }
        )
        record["images_per_s"] = sums["steps"] * self.global_batch / max(seconds, 1e-9)
        if cfg.train.ema_bn == "standing":
            standing_batchnorm_stats(state.ema_generator, cfg.train.seed)
        grid = sample_grid(state) if self.chief and (epoch % cfg.train.sample_every == 0 or last) else None
        if grid is not None:
            write_png(rundir.samples_dir(self.run_dir) / f"epoch_{epoch:04d}.png", grid)
        evaluated = self.evaluator is not None and epoch % cfg.train.eval_every == 0
        if evaluated:
            record.update(self.evaluator.evaluate(state.ema_generator))
        record["wall_s"] = time.perf_counter() - epoch_start
        if self.log is not None:
            if warning := state.augment.memorising_warning(record):
                say(warning)
            self.log.epoch(record, grid)
        if epoch % cfg.train.save_every == 0 or last:
            self.saver.save(int(state.step.numpy()))
        if evaluated and (best := self.best.offer(state, record[cfg.train.eval_metric])):
            say(f"new best {cfg.train.eval_metric} {record[cfg.train.eval_metric]:.3f}: {best}")
