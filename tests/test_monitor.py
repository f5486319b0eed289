"""losses.png and quality.png: which panels and lines a run's records give, and the files written."""

import math

import numpy as np
import pytest
from PIL import Image

from animegan import metricslog
from animegan.errors import UserError
from animegan.monitor import PANEL_PX, TITLE_PX, plot_run, quality_figure, series, training_figure, write_plots

METRICS = {
    "swd": 90.0,
    "swd_32": 60.0,
    "swd_16": 120.0,
    "precision": 0.5,
    "recall": 0.4,
    "density": 0.8,
    "coverage": 0.6,
    "near_duplicates": 0.02,
    "nn_ratio": 0.9,
    "spread_ratio": 0.95,
}


def training_records(epochs: int, **extra) -> list[dict]:
    """What end_of_epoch logs, with `extra` keys (r1, augment_p, ...) in every record."""
    return [
        {
            "epoch": e,
            "step": 10 * e,
            "d_loss": 1.3 - 0.01 * e,
            "g_loss": 0.7 + 0.02 * e,
            "d_real": 0.55,
            "d_fake": 0.45,
            "images_per_s": 300.0,
            "wall_s": 2.0,
            **extra,
        }
        for e in range(1, epochs + 1)
    ]


def evaluate_record(epoch: int, **results) -> dict:
    return {"epoch": epoch, "event": "evaluate", "real": "face", "n": 5000, "seed": 0, **results}


def legends(figure) -> list[list[str]]:
    """Each panel's legend entries, top to bottom."""
    return [[text.get_text() for text in ax.get_legend().get_texts()] for ax in figure.axes]


def drawn_lines(figure):
    """The data lines: not the legend's style samples (no data) nor the dotted reference lines."""
    return [
        line for ax in figure.axes for line in ax.get_lines() if len(line.get_xdata()) and line.get_linestyle() != ":"
    ]


@pytest.mark.parametrize(
    "extra, expected",
    [
        ({}, [["d_loss", "g_loss"], ["d_real", "d_fake", "0.5: cannot tell"]]),
        ({"r1": 0.2}, [["d_loss", "g_loss"], ["r1"], ["d_real", "d_fake", "0.5: cannot tell"]]),
        (
            {"augment_p": 0.1, "ada_rt": 0.6},
            [["d_loss", "g_loss"], ["d_real", "d_fake", "0.5: cannot tell"], ["augment_p", "ada_rt"]],
        ),
    ],
    ids=["plain", "r1", "ada"],
)
def test_training_panels_follow_the_keys(extra, expected):
    figure = training_figure(training_records(5, **extra))
    assert legends(figure) == expected
    assert all(ax.get_title(loc="left") and ax.get_ylabel() for ax in figure.axes)
    assert figure.axes[-1].get_xlabel() == "epoch"
    assert [line.get_xdata().tolist() for line in figure.axes[0].get_lines()] == [[1, 2, 3, 4, 5]] * 2


def test_probabilities_have_their_own_axis_from_0_to_1():
    figure = training_figure(training_records(3, augment_p=0.1, ada_rt=0.6))
    losses, outputs, augmentation = figure.axes
    for ax in (outputs, augmentation):
        low, high = ax.get_ylim()
        assert -0.05 < low < 0 and 1 < high < 1.05
    assert losses.get_ylim()[1] < 1.5  # the losses' own scale, not [0, 1]


def test_a_value_outside_0_1_widens_the_axis_instead_of_being_cut():
    figure = training_figure(training_records(3, augment_p=0.1, ada_rt=-0.2))
    assert figure.axes[-1].get_ylim()[0] < -0.2


def test_no_training_records_no_training_figure():
    assert training_figure([]) is None
    assert training_figure([evaluate_record(5, swd=80.0)]) is None


def test_quality_figure_only_with_evaluations():
    assert quality_figure(training_records(4)) is None


def test_quality_panels_from_training_evaluations():
    records = training_records(4)
    for record in records[1::2]:
        record.update(METRICS)
    figure = quality_figure(records)
    assert legends(figure) == [
        ["swd", "swd_32", "swd_16", "training (eval_every)"],
        ["precision", "recall", "coverage", "near_duplicates", "training (eval_every)"],
        ["density", "nn_ratio", "spread_ratio", "training (eval_every)", "1: like the real set"],
    ]
    assert [ax.get_ylabel() for ax in figure.axes] == ["SWD ×10³", "share", "ratio"]
    swd, *levels = drawn_lines(figure)[:3]
    assert swd.get_xdata().tolist() == [2, 4]
    assert all(line.get_linewidth() < swd.get_linewidth() for line in levels)


def test_evaluate_events_are_drawn_apart_and_fid_kid_get_panels():
    records = training_records(4, swd=100.0) + [
        evaluate_record(2, swd=95.0, fid=80.0),
        evaluate_record(4, fid=60.0, kid=12.0),
    ]
    figure = quality_figure(records)
    assert legends(figure) == [
        ["swd", "training (eval_every)", "animegan evaluate"],
        ["fid", "animegan evaluate"],
        ["kid", "animegan evaluate"],
    ]
    assert [ax.get_ylabel() for ax in figure.axes] == ["SWD ×10³", "FID", "KID ×10³"]
    training, evaluate = drawn_lines(figure)[:2]
    assert (training.get_xdata().tolist(), evaluate.get_xdata().tolist()) == ([1, 2, 3, 4], [2])
    assert training.get_color() == evaluate.get_color() and training.get_linestyle() != evaluate.get_linestyle()


def test_a_single_swd_level_is_not_drawn_twice():
    figure = quality_figure([evaluate_record(1, swd=90.0, swd_16=90.0)])
    assert legends(figure) == [["swd", "animegan evaluate"]]


def test_a_later_record_of_an_epoch_replaces_the_earlier_and_non_finite_values_are_left_out():
    records = training_records(3) + training_records(2)  # a resume that redid epochs 1-2
    records[3]["d_loss"] = 9.0
    records[2]["d_loss"] = math.nan
    assert series(records, "d_loss") == ([1, 2], [9.0, records[4]["d_loss"]])
    assert series([evaluate_record(1, kid=math.inf), evaluate_record(2, kid=3.0)], "kid") == ([2], [3.0])


def test_one_epoch_draws_visible_points():
    records = training_records(1, r1=0.1)
    records[0].update(METRICS)
    for figure in (training_figure(records), quality_figure(records)):
        lines = drawn_lines(figure)
        assert lines and all(line.get_marker() == "o" for line in lines)


def test_plotted_values_are_finite():
    records = training_records(6, r1=0.3, augment_p=0.2, ada_rt=0.5)
    records[2]["g_loss"] = math.nan
    records[3].update(METRICS, kid=math.nan)
    for figure in (training_figure(records), quality_figure(records)):
        for line in drawn_lines(figure):
            assert np.isfinite(np.asarray(line.get_ydata(), dtype=float)).all(), line.get_label()


def png_size(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()
        return image.size


def test_write_plots_writes_pngs_of_the_expected_size(tmp_path):
    records = training_records(3, r1=0.1) + [evaluate_record(3, swd=80.0, fid=40.0)]
    assert write_plots(tmp_path, records) == [tmp_path / "losses.png", tmp_path / "quality.png"]
    assert png_size(tmp_path / "losses.png") == (1000, TITLE_PX + 3 * PANEL_PX)
    assert png_size(tmp_path / "quality.png") == (1000, TITLE_PX + 2 * PANEL_PX)
    assert not list(tmp_path.glob(".*.tmp"))


def test_write_plots_without_evaluations_writes_no_quality_png(tmp_path):
    assert write_plots(tmp_path, training_records(2)) == [tmp_path / "losses.png"]
    assert not (tmp_path / "quality.png").exists()


def test_plot_run_redraws_from_metrics_jsonl(tmp_path):
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    for record in training_records(2) + [evaluate_record(2, swd=70.0)]:
        metricslog.append_metrics(run, record)
    assert plot_run(run, tmp_path / "runs") == [run / "losses.png", run / "quality.png"]


def test_plot_run_without_records_says_so(tmp_path):
    with pytest.raises(UserError, match="no metrics.jsonl records"):
        plot_run(tmp_path, tmp_path)
