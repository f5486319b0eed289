"""Where things live in a run directory, how a new run gets its folder, how to find a run again, and its config.

runs/<name>/config.yaml         the resolved config the run trains with
runs/<name>/lock                who writes into the run now (runlock.py)
runs/<name>/checkpoints/        the run's checkpoints: checkpoints.py alone knows their layout
runs/<name>/samples/            epoch_0001.png ... (EMA generator on fixed noise)
runs/<name>/metrics.jsonl       one JSON line per epoch (and per evaluation): metricslog.py
runs/<name>/losses.png          training curves: losses, R1, D outputs, augmentation (monitor.py)
runs/<name>/quality.png         metric curves, once metrics.jsonl holds evaluations
runs/<name>/progress.gif        the epoch grids as an animation
runs/<name>/tensorboard/        TensorBoard event files
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from animegan.config import Config, config_from_dict, flatten, load_config
from animegan.errors import UserError

CONFIG_FILE = "config.yaml"
LOCK_FILE = "lock"


def samples_dir(run: Path) -> Path:
    return Path(run) / "samples"


def metrics_path(run: Path) -> Path:
    return Path(run) / "metrics.jsonl"


def check_run_name(name: str) -> None:
    """A run name is one folder under runs_dir: never a path that leads elsewhere."""
    if name in (".", "..") or "\0" in name or Path(name).name != name:
        raise UserError(
            f"train.name '{name}' is not a folder name (no '/', '.' or '..'); give a plain name such as --name my-run"
        )


def new_run_dir(cfg: Config, create: bool = True) -> Path:
    """runs/<train.name>, or runs/<config name>-<next free counter> when no name is given, made now
    (`create`): each of two trainers that start at once makes its own counter's folder, since only
    one mkdir of a name succeeds. A named folder may exist; claim_run (runlock.py) checks it is free."""
    root = Path(cfg.train.runs_dir)
    if cfg.train.name:
        check_run_name(cfg.train.name)
    while True:
        if cfg.train.name:
            run = root / cfg.train.name
        else:
            taken = [
                int(m.group(1))
                for p in root.glob(f"{cfg.name}-*")
                if (m := re.fullmatch(rf"{re.escape(cfg.name)}-(\d+)", p.name))
            ]
            run = root / f"{cfg.name}-{max(taken, default=0) + 1:03d}"
        if not create:
            return run
        try:
            run.mkdir(parents=True, exist_ok=bool(cfg.train.name))
            return run
        except FileExistsError:
            if cfg.train.name:  # a file of that name
                raise UserError(f"'{run}' is a file, not a run folder; pick another --name") from None
            # Another trainer took this counter between the glob and the mkdir: count again.
        except OSError as exc:
            raise UserError(f"cannot write '{run}': {exc.strerror}; choose a writable train.runs_dir") from None


def check_free(run: Path) -> None:
    """Refuse a named run folder that holds anything but its lock: it is a run, or files of someone's."""
    if (Path(run) / CONFIG_FILE).exists():
        raise UserError(f"run '{run}' already exists; resume it with --resume {run}, or pick another --name")
    if others := sorted(p.name for p in Path(run).iterdir() if p.name != LOCK_FILE):
        raise UserError(
            f"'{run}' holds {', '.join(others[:3])}{', ...' if len(others) > 3 else ''} but no {CONFIG_FILE}; "
            f"resume it with --resume {run} --config FILE (the config it was trained with), or pick another --name"
        )


def save_config(run: Path, cfg: Config) -> None:
    from animegan.files import atomic_path

    with atomic_path(Path(run) / CONFIG_FILE) as tmp:
        tmp.write_text(cfg.to_yaml(), encoding="utf-8")


def load_run_config(run: Path) -> Config:
    """The run's config.yaml; a missing or damaged one is a one-line error naming it."""
    path = Path(run) / CONFIG_FILE
    if not path.is_file():
        raise UserError(f"'{run}' is not a run directory (no {CONFIG_FILE}); point at a folder under runs/")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = f"not valid YAML{f' at line {mark.line + 1}' if mark else ''}"
    except (OSError, UnicodeDecodeError) as exc:
        problem = f"unreadable: {getattr(exc, 'strerror', None) or exc}"
    else:
        problem = None if isinstance(data, dict) else "empty" if data is None else "not a mapping of config sections"
    if problem is not None:
        raise UserError(f"{path} is damaged ({problem}); fix it, or put back the config.yaml the run was trained with")
    return config_from_dict(data, str(path))


def newest_run(runs_dir: Path) -> Path:
    """The most recently modified run under runs_dir that has a config."""
    runs = [p.parent for p in Path(runs_dir).glob(f"*/{CONFIG_FILE}")]
    if not runs:
        raise UserError(f"no runs found in '{runs_dir}/'; train one with `animegan train`, or pass --run DIR")
    return max(runs, key=lambda p: (p / CONFIG_FILE).stat().st_mtime_ns)


def find_run(run: Path | None, runs_dir: Path) -> Path:
    if run is None:
        return newest_run(runs_dir)
    if not Path(run).is_dir():
        raise UserError(f"run directory '{run}' does not exist; list your runs with `ls {runs_dir}`")
    return Path(run)


# Keys that change the networks' variables (or the data's shape): a checkpoint of one value cannot
# be restored into networks built with another, so a resume cannot change them. tests/test_rundir.py
# derives this list from the models. d_dropout and d_mbstd count because 0 removes a layer.
FROZEN_ON_RESUME = (
    "data.size",
    "data.channels",
    "model.noise_dim",
    "model.g_width",
    "model.g_kernel",
    "model.g_upsample",
    "model.g_output_kernel",
    "model.d_widths",
    "model.d_kernel",
    "model.d_dropout",
    "model.d_mbstd",
    "model.d_spectral_norm",
)


def config_for_resume(run: Path, config_path: str | None, overrides: dict[str, Any], sets: tuple[str, ...]) -> Config:
    """The run's saved config with this command's flags applied; shape-changing keys must not change.
    With --config, a run folder that lost its config.yaml resumes too: the file says what it was trained with."""
    if config_path is not None and Path(run).is_dir() and not (Path(run) / CONFIG_FILE).exists():
        saved = None
    else:
        saved = load_run_config(run)
    if config_path is not None:
        cfg = load_config(config_path, overrides, sets)
    else:
        cfg = load_run_config(run)
        from animegan.config import apply_overrides, parse_set_options, validate

        apply_overrides(cfg, {k: v for k, v in overrides.items() if v is not None}, "command line")
        apply_overrides(cfg, parse_set_options(sets), "--set")
        validate(cfg, "command line")
    saved_flat, new_flat = flatten((saved or cfg).to_dict()), flatten(cfg.to_dict())
    for key in FROZEN_ON_RESUME:
        if saved_flat[key] != new_flat[key]:
            raise UserError(
                f"--resume {run}: '{key}' is {saved_flat[key]} in the run but {new_flat[key]} now; "
                "shape-changing keys cannot change on resume, start a new run instead"
            )
    cfg.train.name = Path(run).name
    cfg.train.runs_dir = str(Path(run).parent)
    return cfg
