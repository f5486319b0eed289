"""Run by test_distribute.py in a fresh process, because the CPU must be split into two logical
devices before TensorFlow sets its devices up (a pytest process may have done that already).

Trains the same two steps under the default strategy and under MirroredStrategy over the two CPU
devices, probes the pieces that need care with several replicas, and prints the measurements as
one JSON line for the test to judge.
"""

import json
import sys
from pathlib import Path

import tensorflow as tf

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import tiny_config  # noqa: E402

from animegan.data import epoch_dataset  # noqa: E402
from animegan.distribute import choose_strategy  # noqa: E402
from animegan.models import ReplicaDropout  # noqa: E402
from animegan.step import build_state, make_train_step, overflow_everywhere  # noqa: E402

BATCH = 8
IMAGES = np.random.default_rng(0).integers(0, 256, (2 * BATCH, 16, 16, 1), dtype=np.uint8)


def train_two_steps(strategy):
    """Build a fresh state under `strategy` and run one epoch of two batches; returns (state, losses).
    No augmentation: its random draws differ between replicas by design (see random_draws_differ).
    Adaptive p all the same: its r_t must be the global batch's, whatever the replicas (p moves 8 * 2 / 10 a step)."""
    cfg = tiny_config(Path("unused"), augment="", augment_p="auto", ada_interval=1, ada_kimg=0.01, ada_target=0.0)
    with strategy.scope():
        state = build_state(cfg, "float32")
    step = make_train_step(cfg, state, strategy, BATCH, xla=False)
    batches = strategy.experimental_distribute_dataset(epoch_dataset(IMAGES, BATCH, seed=0, epoch=1))
    losses = [{k: float(v) for k, v in step(batch).items()} for batch in batches]
    return state, losses


def networks(state):
    return {"generator": state.generator, "discriminator": state.discriminator, "ema_generator": state.ema_generator}


def max_difference(a: list, b: list) -> float:
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


def replica_spread(state) -> float:
    """The largest difference between two replicas' copies of any weight or optimizer variable."""
    variables = [v for net in networks(state).values() for v in net.variables]
    variables += state.g_optimizer.variables + state.d_optimizer.variables
    copies = [[c.numpy() for c in v.value.values] for v in variables]
    copies += [[c.numpy() for c in v.values] for v in state.augment.variables]  # tf.Variables, not Keras ones
    return max(float(np.max(np.abs(c[0] - other))) for c in copies for other in c[1:])


def per_replica(strategy, fn):
    """Run `fn` on every replica (in a tf.function, as training does) and return each replica's result."""
    return [t.numpy() for t in strategy.experimental_local_results(tf.function(lambda: strategy.run(fn))())]


def loss_scale_skips_overflow_on_one_replica(strategy) -> bool:
    """With Inf gradients on replica 1 only, the loss-scaled step must be skipped on every replica."""
    with strategy.scope():
        weight = keras.Variable([1.0, 2.0])
        optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1))
        optimizer.build([weight])

    def step():
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        grad = tf.where(replica == 1, tf.constant([float("inf"), 1.0]), tf.constant([1.0, 1.0]))
        optimizer.apply_gradients(zip(overflow_everywhere([grad]), [weight]))

    tf.function(lambda: strategy.run(step))()
    return all(np.array_equal(copy.numpy(), [1.0, 2.0]) for copy in weight.value.values)


def main():
    mirrored = choose_strategy("mirrored")
    one_device, one_losses = train_two_steps(tf.distribute.get_strategy())
    two_replicas, two_losses = train_two_steps(mirrored)
    with mirrored.scope():
        dropout = ReplicaDropout(0.5)
        rng = tf.random.Generator.from_seed(0)
    masks = per_replica(mirrored, lambda: dropout(tf.ones([4, 64]), training=True))
    draws = per_replica(mirrored, lambda: rng.normal([4]))
    report = {
        "replicas": mirrored.num_replicas_in_sync,
        "weight_difference": {
            name: max_difference(net.get_weights(), networks(two_replicas)[name].get_weights())
            for name, net in networks(one_device).items()
        },
        "losses": [one_losses, two_losses],
        "ada": [[float(s.augment.rt.numpy()), float(s.augment.p.numpy())] for s in (one_device, two_replicas)],
        "replica_spread": replica_spread(two_replicas),
        "dropout_masks_differ": not np.array_equal(masks[0], masks[1]),
        "random_draws_differ": not np.array_equal(draws[0], draws[1]),
        "loss_scale_skips_overflow": loss_scale_skips_overflow_on_one_replica(mirrored),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
