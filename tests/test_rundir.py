import pytest

from animegan.errors import UserError
from animegan.rundir import load_generator, newest_run, resolve_checkpoint


def test_load_generator_restores_checkpoint(fake_run):
    generator, cfg, epoch = load_generator(fake_run)
    assert epoch == 1
    assert generator.output_shape == (None, cfg.data.size, cfg.data.size, cfg.data.channels)


def test_newest_run_and_missing_runs(fake_run, tmp_path):
    assert newest_run(fake_run.parent) == fake_run
    with pytest.raises(UserError, match="no runs found"):
        newest_run(tmp_path / "nowhere")


def test_unknown_epoch_lists_available(fake_run):
    with pytest.raises(UserError, match="available epochs: 1"):
        resolve_checkpoint(fake_run, "7")
