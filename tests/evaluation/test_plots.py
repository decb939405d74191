import numpy as np
import pytest

from quickstudy.evaluation import per_index_summary
from quickstudy.evaluation.plots import plot_adaptation_curve


def test_plot_adaptation_curve_writes_png(tmp_path):
    rng = np.random.default_rng(0)
    summaries = {
        "rl2": per_index_summary(rng.normal(np.arange(5.0), 1.0, size=(20, 5))),
        "random": per_index_summary(rng.normal(0.0, 1.0, size=(20, 5))),
    }
    path = plot_adaptation_curve(summaries, tmp_path / "eval" / "curve.png", title="bandit")
    assert path.exists() and path.stat().st_size > 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_adaptation_curve_custom_x_and_errors(tmp_path):
    rows = per_index_summary(np.ones((1, 3)))  # n = 1: NaN bands are skipped, not an error
    path = plot_adaptation_curve({"maml": rows}, tmp_path / "c.png", xs=[0, 1, 2])
    assert path.stat().st_size > 0
    with pytest.raises(ValueError, match="xs"):
        plot_adaptation_curve({"maml": rows}, tmp_path / "d.png", xs=[0, 1])
    with pytest.raises(ValueError, match="empty"):
        plot_adaptation_curve({}, tmp_path / "e.png")


def test_plot_adaptation_panels(tmp_path):
    from quickstudy.evaluation.plots import plot_adaptation_panels

    rng = np.random.default_rng(1)
    rows = per_index_summary(rng.gamma(2.0, 1.0, size=(30, 4)))
    panels = [("5-shot", {"MAML": rows, "oracle": rows}), ("10-shot", {"MAML": rows})]
    path = plot_adaptation_panels(panels, tmp_path / "f.png", xs=[0, 1, 2, 3], log_y=True)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no panels"):
        plot_adaptation_panels([], tmp_path / "g.png")
