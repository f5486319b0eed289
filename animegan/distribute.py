"""Choose the tf.distribute strategy, the precision and XLA for this machine and config."""

from __future__ import annotations

import json
import os
from pathlib import Path

import tensorflow as tf

from animegan.errors import UserError


def setup_devices() -> list:
    """GPU memory growth on (so TensorFlow does not grab the whole card); returns the GPUs."""
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass  # already initialised, e.g. a second run in the same process
    return gpus


def describe_device(gpus: list) -> str:
    if gpus:
        return ", ".join(tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus)
    return "CPU"


def choose_strategy(name: str) -> tf.distribute.Strategy:
    """auto: several workers when TF_CONFIG says so, all local GPUs when there are several, else default.

    mirrored: one replica per local GPU; without GPUs, one per logical CPU device. A CPU is one
    device unless it was split with tf.config.set_logical_device_configuration (the tests do, to
    check that two replicas train like one); TensorFlow already runs CPU ops on every core.
    """
    if name == "auto":
        if os.environ.get("TF_CONFIG"):
            name = "multiworker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if not os.environ.get("TF_CONFIG"):
        raise UserError(
            "train.strategy 'multiworker' needs the TF_CONFIG environment variable on every worker; "
            "to train in one process use --strategy auto (see README 'Several GPUs and several machines')"
        )
    try:
        json.loads(os.environ["TF_CONFIG"])
    except json.JSONDecodeError:
        raise UserError(
            "TF_CONFIG is not valid JSON; see README 'Several GPUs and several machines' for an example"
        ) from None
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(cluster: tf.distribute.cluster_resolver.ClusterResolver | None) -> bool:
    """Whether this process writes checkpoints, samples and logs: the "chief" task when the cluster
    has one, else worker 0 (as in TensorFlow). A single process (no cluster) is its own chief."""
    if cluster is None or not cluster.cluster_spec().as_dict():
        return True
    if "chief" in cluster.cluster_spec().as_dict():
        return cluster.task_type == "chief"
    return cluster.task_type == "worker" and cluster.task_id == 0


CPUINFO = Path("/proc/cpuinfo")  # a module attribute so that tests can stand in other CPUs


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: bfloat16 convolutions run about twice as fast as float32 there."""
    try:
        flags = CPUINFO.read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def choose_precision(setting: str, gpus: list) -> str:
    """auto: bfloat16 on Ampere+ GPUs, float16 on older ones, bfloat16 on CPUs with native bf16, else float32."""
    if setting != "auto":
        return setting
    if gpus:
        major = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))[0]
        return "mixed_bfloat16" if major >= 8 else "mixed_float16" if major >= 7 else "float32"
    return "mixed_bfloat16" if cpu_has_native_bf16() else "float32"


def choose_xla(setting: str, gpus: list) -> bool:
    """auto: XLA on GPUs; off on CPUs, where it halved the speed in our measurements."""
    return setting == "on" or (setting == "auto" and bool(gpus))
