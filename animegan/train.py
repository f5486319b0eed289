"""The DCGAN training loop: state, one tf.function step, the epoch loop, checkpoints, signals, NaN guard."""

from __future__ import annotations

import json
import math
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from animegan import __version__, rundir
from animegan.augment import AdaptiveAugment, small_data_note
from animegan.config import Config
from animegan.data import epoch_dataset, load_images
from animegan.distribute import choose_precision, choose_strategy, choose_xla, describe_device, is_chief, setup_devices
from animegan.ema import ema_beta, standing_batchnorm_stats, update_ema
from animegan.errors import UserError
from animegan.images import make_grid, to_uint8, write_png
from animegan.losses import LOSSES, r1_penalty
from animegan.models import build_discriminator, build_generator

SAMPLE_GRID = 64  # images in each epoch's sample grid (8x8)
EVAL_IMAGES = 2000  # images per set for the metrics run every train.eval_every epochs
FETCH_EVERY = 10  # steps between reading losses back from the device (each read is a sync)


def log(message: str) -> None:
    """Messages go to stderr, between progress bars; stdout stays free for results."""
    tqdm.write(message, file=sys.stderr)


@dataclass
class TrainState:
    """Everything a checkpoint holds: restoring it continues the run exactly."""

    generator: keras.Model
    discriminator: keras.Model
    ema_generator: keras.Model  # the generator itself when the EMA is off
    g_optimizer: keras.optimizers.Optimizer
    d_optimizer: keras.optimizers.Optimizer
    # Read the counters with .numpy(): under a tf.distribute strategy they are MirroredVariables, which int() refuses.
    epoch: tf.Variable  # epochs completed
    step: tf.Variable  # optimizer steps taken
    rng: tf.random.Generator  # noise and augmentation
    augment: AdaptiveAugment  # DiffAugment and its strength p
    fixed_noise: tf.Variable  # the sample grid's noise, the same for the whole run
    dropout_seeds: list  # Keras keeps dropout's RNG state outside the model's checkpointed weights

    def checkpoint(self, without: tuple[str, ...] = ()) -> tf.train.Checkpoint:
        return tf.train.Checkpoint(**{k: v for k, v in self.__dict__.items() if k not in without})


def make_optimizer(lr: float, cfg: Config, precision: str) -> keras.optimizers.Optimizer:
    optimizer = keras.optimizers.Adam(learning_rate=lr, beta_1=cfg.train.beta1, beta_2=cfg.train.beta2)
    # float16 gradients underflow without loss scaling; bfloat16 has float32's range and needs none.
    return keras.optimizers.LossScaleOptimizer(optimizer) if precision == "mixed_float16" else optimizer


def build_state(cfg: Config, precision: str) -> TrainState:
    """Create networks, optimizers and counters; call inside the strategy's scope."""
    keras.utils.set_random_seed(cfg.train.seed)
    size, channels = cfg.data.size, cfg.data.channels
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    generator = build_generator(cfg.model, size, channels, sync_batchnorm=replicas > 1)
    discriminator = build_discriminator(cfg.model, size, channels)
    ema_generator = generator
    if cfg.train.ema_decay > 0:
        ema_generator = build_generator(cfg.model, size, channels)
        ema_generator.set_weights(generator.get_weights())
    g_optimizer = make_optimizer(cfg.train.g_lr, cfg, precision)
    d_optimizer = make_optimizer(cfg.train.d_lr, cfg, precision)
    g_optimizer.build(generator.trainable_variables)
    d_optimizer.build(discriminator.trainable_variables)
    noise = np.random.default_rng(cfg.train.seed).standard_normal((SAMPLE_GRID, cfg.model.noise_dim)).astype(np.float32)
    return TrainState(
        generator,
        discriminator,
        ema_generator,
        g_optimizer,
        d_optimizer,
        epoch=tf.Variable(0, dtype=tf.int64, trainable=False),
        step=tf.Variable(0, dtype=tf.int64, trainable=False),
        rng=tf.random.Generator.from_seed(cfg.train.seed),
        augment=AdaptiveAugment(cfg.train),
        fixed_noise=tf.Variable(noise, trainable=False),
        dropout_seeds=[
            layer.seed_generator.state for layer in discriminator.layers if hasattr(layer, "seed_generator")
        ],
    )


def make_train_step(cfg: Config, state: TrainState, strategy: tf.distribute.Strategy, global_batch: int, xla: bool):
    """One optimisation step of both networks, as a tf.function taking a (distributed) uint8 batch
    and a Python bool `regularize`: True adds the R1 penalty to D's loss (the loop asks every
    train.r1_every steps; each value of the flag is traced once)."""
    G, D = state.generator, state.discriminator
    scaled = isinstance(state.g_optimizer, keras.optimizers.LossScaleOptimizer)
    gan_losses = LOSSES[cfg.train.loss]
    # Lazy regularisation: a penalty applied every N steps is weighted N times to keep its average strength.
    r1_weight = cfg.train.r1_gamma / 2 * cfg.train.r1_every

    def average(per_image):
        return tf.nn.compute_average_loss(per_image, global_batch_size=global_batch)

    def replica_step(real_uint8, global_noise, regularize):
        real = tf.cast(real_uint8, tf.float32) / 127.5 - 1.0
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        noise = tf.reshape(global_noise, [strategy.num_replicas_in_sync, -1, cfg.model.noise_dim])[replica]
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = G(noise, training=True)
            real, fake = state.augment(real, state.rng), state.augment(fake, state.rng)
            # Two D calls: one call on concat(real, fake) measured slower on CPU (278 vs 335 img/s).
            if regularize:
                penalty, real_logits = r1_penalty(D, real)
            else:
                real_logits = tf.reshape(D(real, training=True), [-1])
            fake_logits = tf.reshape(D(fake, training=True), [-1])
            d_per_image, g_per_image = gan_losses(real_logits, fake_logits)
            if regularize:
                d_per_image += r1_weight * penalty
            d_loss, g_loss = average(d_per_image), average(g_per_image)
            d_target = state.d_optimizer.scale_loss(d_loss) if scaled else d_loss
            g_target = state.g_optimizer.scale_loss(g_loss) if scaled else g_loss
        d_grads = d_tape.gradient(d_target, D.trainable_variables)
        g_grads = g_tape.gradient(g_target, G.trainable_variables)
        if scaled and strategy.num_replicas_in_sync > 1:
            d_grads, g_grads = overflow_everywhere(d_grads), overflow_everywhere(g_grads)
        state.d_optimizer.apply_gradients(zip(d_grads, D.trainable_variables))
        state.g_optimizer.apply_gradients(zip(g_grads, G.trainable_variables))
        stats = {
            "d_loss": d_loss,
            "g_loss": g_loss,
            "d_real": average(tf.sigmoid(real_logits)),
            "d_fake": average(tf.sigmoid(fake_logits)),
            "ada_rt": average(tf.sign(real_logits)),  # summed over the replicas: r_t of this step
        }
        if regularize:
            stats["r1"] = average(penalty)
        return stats

    replica_step = tf.function(replica_step, jit_compile=xla)

    @tf.function
    def train_step(batch, regularize=False):
        # The noise of the whole global batch is drawn here, outside the replicas, and each replica
        # takes its own rows: drawn inside, a tf.random.Generator hashes in the replica id, so N
        # replicas would not see the noise one device sees. Augmentation draws inside, per replica.
        noise = state.rng.normal([global_batch, cfg.model.noise_dim])
        per_replica = strategy.run(replica_step, args=(batch, noise, regularize))
        stats = {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}
        stats.update(state.augment.update(stats["ada_rt"], global_batch))
        if state.ema_generator is not state.generator:
            update_ema(state.ema_generator, state.generator, ema_beta(cfg, state.step, global_batch))
        state.step.assign_add(1)
        return stats

    return train_step


def overflow_everywhere(grads: list) -> list:
    """Turn this replica's gradients to NaN when any replica's have overflowed (call in replica context).

    Keras's LossScaleOptimizer decides whether to skip a step from each replica's own gradients,
    before they are summed: when only some replicas overflow it either applies the summed Inf
    (replica 0 decides, so the weights break) or the replicas disagree about joining the sum (a
    hang with XLA on GPUs). After this every replica skips the step, as one device would.
    """
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
    overflowed = tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.SUM, tf.cast(~finite, tf.float32)
    )
    return [tf.where(overflowed > 0, tf.constant(float("nan"), g.dtype), g) for g in grads]


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
        log("stopping after this step (Ctrl-C again to stop at once)...")

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


class Checkpoints:
    """Saves and finds the run's checkpoints. Non-chief workers save too (collective ops need every
    worker) but into a throwaway folder. Each save writes new files under a new step number and only
    then updates the index, so a kill during a save leaves the previous checkpoint intact."""

    def __init__(self, state: TrainState, run: Path, keep: int, chief: bool):
        self.state, self.checkpoint = state, state.checkpoint()
        if chief:
            directory = rundir.checkpoint_dir(run)
        else:
            self.scratch = tempfile.TemporaryDirectory(prefix="animegan-worker-")  # deleted with this object
            directory = self.scratch.name
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, str(directory), max_to_keep=keep, checkpoint_name=rundir.CHECKPOINT_PREFIX
        )

    def save(self, step: int) -> str:
        try:
            return self.manager.save(checkpoint_number=step)
        except (OSError, tf.errors.OpError) as exc:
            raise UserError(
                f"cannot write a checkpoint in '{self.manager.directory}' ({getattr(exc, 'message', exc)}); "
                f"free some disk space, then resume from the last good one with --resume"
            ) from None

    def restore_latest(self, run: Path) -> str:
        """Restore the newest checkpoint that restores (older ones stand in for damaged ones)."""
        prefix, _ = rundir.restore_newest(run, self._restore)
        return prefix

    def _restore(self, prefix: str):
        # A checkpoint from before p was checkpointed (animegan 0.1.0) resumes everything else; p starts afresh.
        old = not any(name.startswith("augment/") for name, _ in tf.train.list_variables(prefix))
        return (
            (self.state.checkpoint(without=("augment",)) if old else self.checkpoint)
            .restore(prefix)
            .assert_existing_objects_matched()
        )


def fit_batch_size(requested: int, num_images: int, replicas: int) -> int:
    """The global batch: `requested`, shrunk to the data set when that is smaller (a warning, not an error)."""
    if requested % replicas:
        raise UserError(
            f"train.batch_size {requested} does not split evenly over {replicas} replicas; use a multiple of {replicas}"
        )
    if num_images < max(2, replicas):
        raise UserError(
            f"only {num_images} training image(s); at least {max(2, replicas)} are needed: add images and re-run preprocess"
        )
    if num_images >= requested:
        return requested
    fitted = num_images - num_images % replicas
    log(f"warning: only {num_images} images, fewer than one batch of {requested}; training with batch size {fitted}")
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
    # Only the chief insists on a new run folder: on a shared disk it may already have written it.
    run = Path(resume) if resume is not None else rundir.new_run_dir(cfg, must_be_new=chief)

    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        with strategy.scope():
            state = build_state(cfg, precision)
        checkpoints = Checkpoints(state, run, cfg.train.keep_checkpoints, chief)
        if resume is not None:
            restored = checkpoints.restore_latest(run)
            done = int(state.epoch.numpy())
            log(f"resumed {restored} (epoch {done}, step {int(state.step.numpy())})")
            if done >= cfg.train.epochs:
                log(
                    f"run {run} already has {done} epochs and --epochs ({cfg.train.epochs}) is the total to reach, "
                    f"not a number to add; to train more: animegan train --resume {run} --epochs {done + max(10, done // 2)}"
                )
                return run
            if chief and (dropped := rundir.drop_metrics_after(run, done)):
                log(
                    f"dropped {dropped} line(s) past epoch {done} from {rundir.metrics_path(run)}: those epochs are trained again"
                )
        images = load_images(
            Path(cfg.data.dir),
            cfg.data.size,
            cfg.data.channels,
            cfg.data.limit,
            show_progress=chief,
            cache_dir=cfg.data.cache_dir,
        )
        if chief:
            log(
                f"image cache: {images.filename} ({images.nbytes / 1e9:.2f} GB, memory-mapped; safe to delete, rebuilt when "
                f"needed; data.cache_dir puts it elsewhere)"
            )
        global_batch = fit_batch_size(cfg.train.batch_size, len(images), strategy.num_replicas_in_sync)
        steps_per_epoch = len(images) // global_batch
        if chief and (note := small_data_note(cfg.train, len(images), global_batch)):
            log(note)
        if chief:
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
            (run / "runtime.json").write_text(json.dumps(runtime, indent=2) + "\n", encoding="utf-8")
        log(
            f"run {run}: {len(images)} images, batch {global_batch}, {steps_per_epoch} steps/epoch, "
            f"{precision}, XLA {'on' if xla else 'off'}, {strategy.num_replicas_in_sync} replica(s) on {describe_device(gpus)}"
        )
        train_step = make_train_step(cfg, state, strategy, global_batch, xla)
        loop = EpochLoop(
            cfg, state, strategy, train_step, checkpoints, run, chief, images, global_batch, steps_per_epoch
        )
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
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    return run


class EpochLoop:
    """Runs epochs until train.epochs is reached, writing what each epoch end owes the run directory."""

    def __init__(
        self, cfg, state, strategy, train_step, checkpoints, run, chief, images, global_batch, steps_per_epoch
    ):
        self.cfg, self.state, self.strategy, self.train_step = cfg, state, strategy, train_step
        self.checkpoints, self.run_dir, self.chief, self.images = checkpoints, run, chief, images
        self.global_batch, self.steps_per_epoch = global_batch, steps_per_epoch
        self.log = None
        self.evaluator = Evaluator(cfg, images, run) if chief and cfg.train.eval_every else None

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
                    log(
                        f"train.max_minutes ({cfg.train.max_minutes:g}) reached after epoch {epoch}; continue with --resume {self.run_dir}"
                    )
                    break
            if self.chief:
                gif = write_progress_gif(self.run_dir)
                last = sorted(rundir.samples_dir(self.run_dir).glob("epoch_*.png"))
                log(f"done: {self.run_dir} (samples: {last[-1] if last else 'none'}; progress: {gif})")
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
                latest = tf.train.latest_checkpoint(str(rundir.checkpoint_dir(self.run_dir)))
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
        prefix = self.checkpoints.save(int(self.state.step.numpy()))
        name = signal.Signals(signum).name
        if self.chief:
            log(
                f"{name}: saved {prefix} at step {int(self.state.step.numpy())}; resume with: animegan train --resume {self.run_dir}"
            )
        raise SystemExit(128 + signum)

    def end_of_epoch(self, epoch: int, sums: dict, seconds: float, epoch_start: float, last: bool) -> None:
        """Sample grid, checkpoint, metrics: `images_per_s` counts the steps alone, `wall_s` the whole epoch."""
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
        if epoch % cfg.train.save_every == 0 or last:
            self.checkpoints.save(int(state.step.numpy()))
        if self.evaluator is not None and epoch % cfg.train.eval_every == 0:
            record.update(self.evaluator.evaluate(state))
        record["wall_s"] = time.perf_counter() - epoch_start
        if self.log is not None:
            if warning := state.augment.memorising_warning(record):
                log(warning)
            self.log.epoch(record, grid)


class Evaluator:
    """Scores the EMA generator with train.eval_metric (and, with train.eval_diversity, prdc, fd,
    diversity and spectrum) every train.eval_every epochs, and keeps the checkpoint with the best eval_metric so far
    in checkpoints/best/ (lower is better for every metric eval_metric may name)."""

    def __init__(self, cfg: Config, images: np.ndarray, run: Path):
        from animegan.metrics import compute_real_features

        self.metric = cfg.train.eval_metric
        self.metrics = [self.metric] + (["prdc", "fd", "diversity", "spectrum"] if cfg.train.eval_diversity else [])
        self.n = min(EVAL_IMAGES, len(images))
        self.seed = cfg.train.seed
        self.inception = None
        if self.metric in ("fid", "kid"):
            from animegan.metrics.inception import load_inception

            self.inception = load_inception()
        self.real = np.array(images[: self.n])  # a copy in memory: the metric reads it at every evaluation
        self.real_features = compute_real_features(self.real, self.metrics, self.n, self.inception)
        self.best_value = math.inf
        self.best_dir = rundir.checkpoint_dir(run) / "best"

    def evaluate(self, state: TrainState) -> dict:
        from animegan.metrics import evaluate_generator

        results = evaluate_generator(
            state.ema_generator,
            self.real,
            self.metrics,
            self.n,
            self.seed,
            real_features=self.real_features,
            inception_model=self.inception,
        )
        if results[self.metric] < self.best_value:
            self.best_value = results[self.metric]
            best = tf.train.CheckpointManager(
                state.checkpoint(), str(self.best_dir), max_to_keep=1, checkpoint_name="best"
            )
            best.save(checkpoint_number=int(state.step.numpy()))
            log(f"new best {self.metric} {self.best_value:.3f}: {best.latest_checkpoint}")
        return results
