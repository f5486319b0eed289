"""Finding and loading checkpoints (restoring a whole run is tested in test_train.py, damage in test_sample.py)."""

import pytest

from animegan.checkpoints import checkpoint_epochs, checkpoint_prefixes, load_generator, resolve_checkpoint
from animegan.errors import UserError


def test_load_generator_restores_checkpoint(fake_run):
    generator, cfg, epoch = load_generator(fake_run)
    assert epoch == 1
    assert generator.output_shape == (None, cfg.data.size, cfg.data.size, cfg.data.channels)


def test_unknown_epoch_lists_available(fake_run):
    with pytest.raises(UserError, match="available epochs: 1"):
        resolve_checkpoint(fake_run, "7")


def test_checkpoints_are_found_newest_first_and_by_epoch(three_checkpoint_run):
    prefixes = checkpoint_prefixes(three_checkpoint_run)
    assert [p.rsplit("-", 1)[1] for p in prefixes] == ["3", "2", "1"]
    assert checkpoint_epochs(three_checkpoint_run) == {3: prefixes[0], 2: prefixes[1], 1: prefixes[2]}
    assert resolve_checkpoint(three_checkpoint_run) == prefixes[0]
    assert resolve_checkpoint(three_checkpoint_run, prefixes[1] + ".index") == prefixes[1]
