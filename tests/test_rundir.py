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


def test_drop_metrics_after_keeps_earlier_epochs_and_evaluations(tmp_path):
    from animegan.rundir import append_metrics, drop_metrics_after, read_metrics

    records = [{"epoch": e, "step": 5 * e, "d_loss": 0.5} for e in (1, 2, 3, 4)]
    records.insert(3, {"epoch": 3, "event": "evaluate", "swd": 1.0})
    for record in records:
        append_metrics(tmp_path, record)
    assert drop_metrics_after(tmp_path, 2) == 2
    assert read_metrics(tmp_path) == records[:2] + [records[3]]
    assert drop_metrics_after(tmp_path, 2) == 0
