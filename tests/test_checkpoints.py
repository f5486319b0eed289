"""Finding and loading checkpoints (restoring a whole run is tested in test_train.py, damage in test_sample.py)."""

import numpy as np
import pytest
from helpers import known_weights, save_untrained_run, tiny_config

from animegan.checkpoints import checkpoint_epochs, checkpoint_prefixes, load_generator, resolve_checkpoint
from animegan.errors import UserError


def test_load_generator_restores_the_weights_written_into_the_checkpoint(tmp_path):
    cfg = tiny_config(tmp_path)
    run = save_untrained_run(tmp_path / "runs" / "tiny-001", cfg, epochs=(1, 2), known=True)
    for wanted in (None, "1"):  # the newest (epoch 2), then epoch 1 by number
        generator, loaded_cfg, epoch = load_generator(run, wanted)
        assert epoch == (2 if wanted is None else 1)
        assert generator.output_shape == (None, cfg.data.size, cfg.data.size, cfg.data.channels)
        for variable, value in zip(generator.weights, known_weights(cfg, epoch), strict=True):
            np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.path)


def test_unknown_epoch_lists_available(fake_run):
    with pytest.raises(UserError, match="available epochs: 1"):
        resolve_checkpoint(fake_run, "7")


def test_checkpoints_are_found_newest_first_and_by_epoch(three_checkpoint_run):
    prefixes = checkpoint_prefixes(three_checkpoint_run)
    assert [p.rsplit("-", 1)[1] for p in prefixes] == ["3", "2", "1"]
    assert checkpoint_epochs(three_checkpoint_run) == {3: prefixes[0], 2: prefixes[1], 1: prefixes[2]}
    assert resolve_checkpoint(three_checkpoint_run) == prefixes[0]
    assert resolve_checkpoint(three_checkpoint_run, prefixes[1] + ".index") == prefixes[1]
