"""`animegan export`: write a run's generator (EMA weights) so that plain TensorFlow can run it.

Every format maps float32 noise of shape (batch, noise_dim) to images (batch, size, size,
channels) in [-1, 1], the same numbers `animegan sample` decodes; pixels = round((x + 1) * 127.5)
clipped to 0..255. Noise is standard normal (`animegan.sample.draw_noise`).

    keras       one .keras file: keras.saving.load_model(path)
    savedmodel  a folder: tf.saved_model.load(path).serve(noise), or its "serving_default" signature
    tflite      one file converted from that SavedModel. The batch dimension stays dynamic: the
                interpreter starts at batch 1; call resize_tensor_input(index, [n, noise_dim]) and
                allocate_tensors() for more.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from animegan.checkpoints import load_generator
from animegan.errors import UserError
from animegan.files import refuse_to_replace
from animegan.rundir import find_run


def export_generator(
    run_dir: Path | None,
    fmt: str,
    out: Path,
    checkpoint: str | None = None,
    runs_dir: Path = Path("runs"),
    force: bool = False,
) -> Path:
    """Write the run's generator to `out` as `fmt` (keras, savedmodel or tflite) and return `out`;
    an existing `out` is replaced only with `force`."""
    out = Path(out)
    check_out(fmt, out, force)
    run = find_run(run_dir, runs_dir)
    generator, _, _ = load_generator(run, checkpoint)
    write = {"keras": write_keras, "savedmodel": write_savedmodel, "tflite": write_tflite}[fmt]
    with staged_output(out) as staged:
        write(generator, staged)
    return out


# The file name each single-file format needs; a wrong one is most likely a slip (--out notes.txt).
SUFFIXES = {"keras": ".keras", "tflite": ".tflite"}


def check_out(fmt: str, out: Path, force: bool) -> None:
    """Refuse outputs that would fail late or land under a misleading name, and any replacement without
    `force` (a folder of other files even with it: that is never an earlier export)."""
    if fmt == "savedmodel":
        if out.is_file():
            raise UserError(f"--out '{out}' is a file; a SavedModel is a folder, give a folder path")
        if out.is_dir() and any(out.iterdir()):
            if not (out / "saved_model.pb").is_file():
                raise UserError(
                    f"--out '{out}' is a folder of other files; give a new folder "
                    "(only an earlier SavedModel is replaced, with --force)"
                )
            refuse_to_replace(out, "--out", force)
        return
    if out.is_dir():
        raise UserError(f"--out '{out}' is a folder; give a file path such as {out / 'generator'}{SUFFIXES[fmt]}")
    suffix = SUFFIXES[fmt]
    if out.suffix != suffix:
        raise UserError(f"--out '{out}': {fmt} needs a file name ending in {suffix}, e.g. generator{suffix}")
    refuse_to_replace(out, "--out", force)


def write_keras(generator, path: Path) -> None:
    generator.save(path)


def write_savedmodel(generator, path: Path) -> None:
    import tensorflow as tf

    # Name the input "noise" and leave the batch size open, for whoever calls the signature.
    noise = tf.TensorSpec([None, generator.input_shape[-1]], tf.float32, name="noise")
    generator.export(str(path), format="tf_saved_model", verbose=False, input_signature=[noise])


def write_tflite(generator, path: Path) -> None:
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "savedmodel"
        write_savedmodel(generator, saved)
        path.write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert())


@contextmanager
def staged_output(out: Path):
    """Yield a path named like `out` in a new temp folder beside it; move it over `out` only if the block succeeds.

    files.atomic_path's temp-file names do not fit here: Keras insists on the .keras suffix and a
    SavedModel is a folder. Staging beside `out` keeps the final rename on one filesystem.
    """
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as exc:
        raise UserError(f"cannot write '{out}': {exc.strerror}; choose a writable location") from None
    try:
        yield stage / out.name
        if out.is_dir():  # an earlier SavedModel: a rename cannot replace a folder that has files
            os.replace(out, stage / f"{out.name}.previous")
        os.replace(stage / out.name, out)
    except OSError as exc:
        raise UserError(f"cannot write '{out}': {exc.strerror}; check free space and permissions") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
