import copy
import dataclasses

import pytest
from helpers import tiny_config

from animegan.config import CHOICES, validate
from animegan.errors import UserError
from animegan.rundir import FROZEN_ON_RESUME, newest_run


def test_newest_run_and_missing_runs(fake_run, tmp_path):
    assert newest_run(fake_run.parent) == fake_run
    with pytest.raises(UserError, match="no runs found"):
        newest_run(tmp_path / "nowhere")


def other_values(key: str, value):
    """Values to try in place of `value`: the other choices, the other bool, and for numbers 0 (the
    off switch of several keys) and two more; lists grow by a layer and double."""
    if key in CHOICES:
        return [choice for choice in CHOICES[key] if choice != value]
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [0, value + 1, value * 2]
    if isinstance(value, float):
        return [0.0, value / 2, (value + 1) / 2]
    if isinstance(value, list):
        return [[*value, value[-1]], [2 * v for v in value]]
    return [f"{value}-other"]


def network_variables(cfg) -> list:
    """Each layer's class and variable shapes in both networks: what a checkpoint's restore matches."""
    from animegan.models import build_discriminator, build_generator

    networks = [build(cfg.model, cfg.data.size, cfg.data.channels) for build in (build_generator, build_discriminator)]
    return [[(type(layer).__name__, [tuple(v.shape) for v in layer.variables]) for layer in n.layers] for n in networks]


def test_frozen_on_resume_is_every_key_that_changes_the_networks_variables(tmp_path):
    """The builders take cfg.model and data.size/channels and nothing else, so those are the keys to try."""
    cfg = tiny_config(tmp_path)
    reference = network_variables(cfg)
    changing = set()
    for section in ("data", "model"):
        for field in dataclasses.fields(getattr(cfg, section)):
            key = f"{section}.{field.name}"
            for value in other_values(key, getattr(getattr(cfg, section), field.name)):
                changed = copy.deepcopy(cfg)
                setattr(getattr(changed, section), field.name, value)
                try:
                    validate(changed)
                except UserError:
                    continue  # not a value a config may hold
                if network_variables(changed) != reference:
                    changing.add(key)
    assert changing == set(FROZEN_ON_RESUME)
