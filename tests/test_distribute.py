"""tf.distribute on a CPU: two mirrored replicas train like one device, two worker processes train a
run that one process resumes, and the choice of strategy and chief."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from helpers import tiny_config

from animegan import distribute
from animegan.distribute import choose_precision, choose_strategy, choose_xla, describe_device, is_chief
from animegan.errors import UserError
from animegan.metricslog import read_metrics
from animegan.train import fit_batch_size

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKERS_TIMEOUT_S = 240  # both workers together; a tiny run takes well under a minute


def run_python(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=WORKERS_TIMEOUT_S)


# --- two replicas in one process ------------------------------------------------------------------


@pytest.fixture(scope="module")
def mirrored_report():
    result = run_python(str(REPO_ROOT / "tests" / "mirrored_check.py"))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_mirrored_strategy_uses_both_logical_cpus(mirrored_report):
    assert mirrored_report["replicas"] == 2


def test_two_replicas_end_with_the_weights_of_one_device(mirrored_report):
    # Noise drawn for the global batch, BatchNorm over the global batch, losses averaged over it and
    # gradients summed over the replicas: the same arithmetic up to rounding.
    for network, difference in mirrored_report["weight_difference"].items():
        assert difference < 1e-5, network
    one_device, two_replicas = mirrored_report["losses"]
    for one, two in zip(one_device, two_replicas):
        assert two == pytest.approx(one, rel=1e-5)


def test_adaptive_p_follows_the_global_batch_on_two_replicas(mirrored_report):
    one_device, two_replicas = mirrored_report["ada"]
    assert two_replicas == pytest.approx(one_device)
    assert one_device[0] != 0  # r_t was measured: the p update saw the summed signs, not one replica's


def test_replicas_hold_identical_copies_of_every_variable(mirrored_report):
    assert mirrored_report["replica_spread"] < 1e-6


def test_dropout_and_augmentation_draw_differently_on_each_replica(mirrored_report):
    assert mirrored_report["dropout_masks_differ"]
    assert mirrored_report["random_draws_differ"]  # from the tf.random.Generator DiffAugment uses


def test_loss_scaling_skips_a_step_that_overflowed_on_one_replica_only(mirrored_report):
    assert mirrored_report["loss_scale_skips_overflow"]


# --- two worker processes ---------------------------------------------------------------------------


def free_local_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now; skips the test where loopback sockets are unavailable."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    except OSError as exc:
        pytest.skip(f"cannot open sockets on 127.0.0.1 ({exc}); the workers need them to talk")
    finally:
        for s in sockets:
            s.close()


def write_training_images(folder: Path, count: int = 32) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        cv2.imwrite(str(folder / f"{i:03d}.png"), rng.integers(0, 256, (16, 16), dtype=np.uint8))


def run_workers(tmp_path: Path, config: Path, count: int) -> None:
    """Run `count` workers of one cluster on 127.0.0.1 to the end; a worker still running at the
    deadline is killed (one that crashed leaves the others waiting for it) and fails the test."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_local_ports(count)]}
    command = [
        sys.executable,
        "-m",
        "animegan",
        "train",
        "--config",
        str(config),
        "--name",
        "dist",
        "--strategy",
        "multiworker",
    ]
    workers = []
    try:
        for index in range(count):
            scratch = tmp_path / f"tmp-worker{index}"
            scratch.mkdir()
            tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CONFIG": tf_config, "TMPDIR": str(scratch)}
            with open(tmp_path / f"worker{index}.log", "w") as log:
                workers.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + WORKERS_TIMEOUT_S
        for worker in workers:
            worker.wait(timeout=max(deadline - time.monotonic(), 1))
    except subprocess.TimeoutExpired:
        pass  # reported below, with the logs
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    for index, worker in enumerate(workers):
        log = (tmp_path / f"worker{index}.log").read_text()
        assert worker.returncode == 0, f"worker {index} exited with {worker.returncode}:\n{log[-3000:]}"


def test_two_workers_train_a_run_that_one_process_resumes(tmp_path):
    write_training_images(tmp_path / "face")
    config = tmp_path / "tiny.yaml"
    cfg = tiny_config(tmp_path, epochs=1, augment="translation,cutout,color")
    cfg.model.d_dropout = 0.3  # dropout and augmentation draw random numbers in every replica
    config.write_text(cfg.to_yaml())

    run_workers(tmp_path, config, count=2)

    runs = tmp_path / "runs"
    run = runs / "dist"
    assert [p.name for p in runs.iterdir()] == ["dist"]
    # 32 images in global batches of 8 is 4 steps: each worker took its half of every batch.
    assert [(r["epoch"], r["step"]) for r in read_metrics(run)] == [(1, 4)]
    assert (run / "checkpoints" / "ckpt-4.index").is_file()
    assert (run / "samples" / "epoch_0001.png").is_file()
    assert json.loads((run / "runtime.json").read_text())["replicas"] == 2
    assert len(list((run / "tensorboard").iterdir())) == 1  # written by the chief alone
    assert not list((tmp_path / "tmp-worker1").glob("animegan-worker-*"))  # its throwaway checkpoints are gone

    resumed = run_python("-m", "animegan", "train", "--resume", str(run), "--epochs", "2", "--strategy", "default")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "(epoch 1, step 4)" in resumed.stdout + resumed.stderr
    assert [r["step"] for r in read_metrics(run)] == [4, 8]


# --- choosing the strategy and the chief ----------------------------------------------------------


@pytest.mark.parametrize(
    "tf_config, chief",
    [
        ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}, True),
        ({"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}, False),
        ({"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "chief", "index": 0}}, True),
        ({"cluster": {"chief": ["a:1"], "worker": ["b:1"]}, "task": {"type": "worker", "index": 0}}, False),
    ],
)
def test_chief_is_the_chief_task_or_else_worker_0(monkeypatch, tf_config, chief):
    import tensorflow as tf

    monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    assert is_chief(tf.distribute.cluster_resolver.TFConfigClusterResolver()) is chief


def test_a_single_process_is_its_own_chief(monkeypatch):
    import tensorflow as tf

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert is_chief(None)
    assert is_chief(tf.distribute.cluster_resolver.TFConfigClusterResolver())


@pytest.mark.parametrize(
    "tf_config, message", [(None, "needs the TF_CONFIG environment variable"), ("{cluster", "not valid JSON")]
)
def test_multiworker_without_a_usable_tf_config_is_a_user_error(monkeypatch, tf_config, message):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(UserError, match=message):
        choose_strategy("multiworker")


def test_global_batch_must_split_evenly_over_the_replicas():
    assert fit_batch_size(8, 100, replicas=2) == 8
    with pytest.raises(UserError, match="batch_size 10 does not split evenly over 4 replicas"):
        fit_batch_size(10, 100, replicas=4)


# --- precision, XLA and devices from what the machine has ------------------------------------------


def fake_cpu(monkeypatch, tmp_path, flags):
    """Stand in a CPU with these /proc/cpuinfo flags (None: no /proc/cpuinfo, as on macOS)."""
    cpuinfo = tmp_path / "cpuinfo"
    if flags is not None:
        cpuinfo.write_text(
            f"processor\t: 0\nflags\t\t: fpu sse2 {flags}\n\nprocessor\t: 1\nflags\t\t: fpu sse2 {flags}\n"
        )
    monkeypatch.setattr(distribute, "CPUINFO", cpuinfo)


def fake_gpus(monkeypatch, count, details):
    """Stand in `count` GPUs that report `details` (compute_capability, device_name)."""
    import tensorflow as tf

    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda gpu: details)
    return [SimpleNamespace(name=f"/physical_device:GPU:{i}", device_type="GPU") for i in range(count)]


@pytest.mark.parametrize(
    "flags, expected",
    [
        ("avx2 avx512f avx512_bf16", "mixed_bfloat16"),
        ("avx2 amx_bf16 amx_tile", "mixed_bfloat16"),
        ("avx2 avx512f avx512bw", "float32"),
        ("avx2", "float32"),
        (None, "float32"),
    ],
)
def test_auto_precision_on_a_cpu_uses_bfloat16_only_with_native_bf16_instructions(
    monkeypatch, tmp_path, flags, expected
):
    fake_cpu(monkeypatch, tmp_path, flags)
    assert choose_precision("auto", []) == expected
    assert choose_precision("float32", []) == "float32"  # a setting other than auto is taken as it is
    assert choose_xla("auto", []) is False


@pytest.mark.parametrize(
    "capability, expected",
    [
        ((9, 0), "mixed_bfloat16"),
        ((8, 0), "mixed_bfloat16"),
        ((7, 5), "mixed_float16"),
        ((7, 0), "mixed_float16"),
        ((6, 1), "float32"),
        (None, "float32"),
    ],
)
def test_auto_precision_on_a_gpu_follows_its_compute_capability(monkeypatch, tmp_path, capability, expected):
    fake_cpu(monkeypatch, tmp_path, "avx512_bf16")  # the GPU decides, whatever the CPU has
    gpus = fake_gpus(monkeypatch, 1, {} if capability is None else {"compute_capability": capability})
    assert choose_precision("auto", gpus) == expected
    assert choose_precision("mixed_float16", gpus) == "mixed_float16"
    assert choose_xla("auto", gpus) is True


@pytest.mark.parametrize(
    "setting, with_gpu, expected",
    [("on", False, True), ("off", True, False), ("auto", True, True), ("auto", False, False)],
)
def test_xla_setting(setting, with_gpu, expected):
    assert choose_xla(setting, ["/physical_device:GPU:0"] if with_gpu else []) is expected


@pytest.mark.parametrize(
    "logical_gpus, tf_config, expected",
    [(0, None, "default"), (1, None, "default"), (2, None, "mirrored:2"), (2, "{}", "multiworker")],
)
def test_auto_strategy_follows_the_gpus_and_tf_config(monkeypatch, logical_gpus, tf_config, expected):
    import tensorflow as tf

    devices = [SimpleNamespace(name=f"/device:GPU:{i}") for i in range(logical_gpus)]
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind: devices if kind == "GPU" else [])
    monkeypatch.setattr(tf.distribute, "MirroredStrategy", lambda names: f"mirrored:{len(names)}")
    monkeypatch.setattr(tf.distribute, "MultiWorkerMirroredStrategy", lambda: "multiworker")
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    strategy = choose_strategy("auto")
    assert (strategy if isinstance(strategy, str) else "default") == expected


def test_the_run_records_the_gpus_by_name(monkeypatch):
    assert describe_device([]) == "CPU"
    assert describe_device(fake_gpus(monkeypatch, 2, {"device_name": "NVIDIA H200"})) == "NVIDIA H200, NVIDIA H200"
