"""The metrics log: appending, a torn last line (a kill mid-append), a corrupt line, tidying for a resume."""

import pytest

from animegan.errors import UserError
from animegan.metricslog import append_metrics, read_metrics, tidy_metrics
from animegan.rundir import metrics_path

TORN = '{"epoch": 3, "step": 15, "d_lo'


def write_log(run, records, tail=""):
    for record in records:
        append_metrics(run, record)
    with open(metrics_path(run), "a", encoding="utf-8") as f:
        f.write(tail)


def test_tidy_metrics_drops_later_epochs_and_keeps_evaluations(tmp_path):
    records = [{"epoch": e, "step": 5 * e, "d_loss": 0.5} for e in (1, 2, 3, 4)]
    records.insert(3, {"epoch": 3, "event": "evaluate", "swd": 1.0})
    write_log(tmp_path, records)
    assert tidy_metrics(tmp_path, 2) == 2
    assert read_metrics(tmp_path) == records[:2] + [records[3]]
    assert tidy_metrics(tmp_path, 2) == 0


def test_a_torn_last_line_is_skipped_by_readers_and_removed_by_a_writer(tmp_path, capsys):
    records = [{"epoch": e, "step": 5 * e} for e in (1, 2)]
    write_log(tmp_path, records, TORN)
    before = metrics_path(tmp_path).read_bytes()
    assert read_metrics(tmp_path) == records
    assert metrics_path(tmp_path).read_bytes() == before  # a reader changes nothing
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"warning: {metrics_path(tmp_path)}: the last line is cut short") and "skipping it" in err

    assert tidy_metrics(tmp_path) == 0
    assert "removing it" in capsys.readouterr().err
    append_metrics(tmp_path, {"epoch": 3, "step": 15})
    assert read_metrics(tmp_path) == [*records, {"epoch": 3, "step": 15}]
    assert capsys.readouterr().err == ""


def test_a_corrupt_line_in_the_middle_is_an_error_naming_it(tmp_path):
    write_log(tmp_path, [{"epoch": 1}], TORN + "\n")
    append_metrics(tmp_path, {"epoch": 2})
    with pytest.raises(UserError, match=rf"{metrics_path(tmp_path)}, line 2: not a metrics record"):
        read_metrics(tmp_path)
    with pytest.raises(UserError, match="line 2"):
        tidy_metrics(tmp_path, 1)
