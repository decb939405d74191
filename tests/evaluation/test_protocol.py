"""One meta-test record and summary for every family."""

import json

import numpy as np
import pytest

from quickstudy.evaluation.protocol import (
    load_result,
    metric_label,
    summarize_result,
    write_meta_test,
)
from quickstudy.types import MetaTestResult


def test_an_episode_axis_summarises_points_and_the_trials_total():
    values = np.array([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]])
    success = np.array([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    result = MetaTestResult(values, success, {"lengths": np.full((2, 3), 7.0)})
    summary = summarize_result(result)
    assert summary["xs"] == [1, 2, 3] and summary["num_tasks"] == 2
    assert [row["mean"] for row in summary["per_index"]] == [2.0, 3.0, 4.0]
    assert summary["trial_return"]["mean"] == 9.0
    assert summary["trial_return"]["se"] == pytest.approx(3.0)
    assert [row["mean"] for row in summary["success_per_index"]] == [0.0, 0.5, 1.0]
    assert summary["mean_length_per_index"] == [7.0, 7.0, 7.0]
    assert metric_label(result) == "return"


def test_a_gradient_step_axis_starts_at_zero_and_has_no_trial_total():
    result = MetaTestResult(
        np.array([[4.0, 1.0], [2.0, 1.0]]),
        metric="mse",
        axis="gradient step",
        higher_is_better=False,
    )
    summary = summarize_result(result)
    assert summary["xs"] == [0, 1] and "trial_return" not in summary
    assert summary["higher_is_better"] is False and summary["metric"] == "mse"
    assert metric_label(result) == "query mse"


def test_write_and_load_round_trip(tmp_path):
    result = MetaTestResult(
        np.arange(6.0).reshape(3, 2),
        extras={"losses": np.ones((3, 2))},
        metric="accuracy",
        axis="gradient step",
    )
    summary = write_meta_test(result, tmp_path / "eval", "maml", "title", algo="maml", seed=3)
    on_disk = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary)) and on_disk["seed"] == 3
    assert (tmp_path / "eval" / "adaptation.png").stat().st_size > 1000
    back = load_result(tmp_path / "eval", on_disk)
    np.testing.assert_array_equal(back.values, result.values)
    np.testing.assert_array_equal(back.extras["losses"], 1.0)
    assert (back.metric, back.axis, back.success) == ("accuracy", "gradient step", None)
