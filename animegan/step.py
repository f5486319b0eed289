"""What training updates and how: the train state, the optimizers, and one tf.function step of both networks.

train.py runs the loop around the step; checkpoints.py saves and restores the state.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from animegan.augment import AdaptiveAugment
from animegan.config import Config
from animegan.ema import ema_beta, update_ema
from animegan.losses import LOSSES, r1_penalty
from animegan.models import build_discriminator, build_generator

SAMPLE_GRID = 64  # images in each epoch's sample grid (8x8), drawn from the state's fixed noise


@dataclass
class TrainState:
    """Everything a checkpoint holds (checkpoints.py saves every field): restoring it continues the run exactly."""

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
