"""Figures: the lines and bands hold the data they are drawn from, and the PNGs decode."""

import numpy as np
import pytest
from PIL import Image

from quickstudy.evaluation import per_index_summary
from quickstudy.evaluation.plots import (
    adaptation_curve_figure,
    adaptation_panels_figure,
    learning_curves_figure,
    plot_adaptation_curve,
    plot_learning_curves,
)


def _line(ax, label):
    (line,) = [ln for ln in ax.lines if ln.get_label() == label]
    return np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)


def test_adaptation_curve_draws_each_methods_means_and_ci_band():
    rng = np.random.default_rng(0)
    data = {"rl2": rng.normal(np.arange(5.0), 1.0, (20, 5)), "random": rng.normal(0, 1, (20, 5))}
    summaries = {name: per_index_summary(x) for name, x in data.items()}
    fig = adaptation_curve_figure(summaries, xlabel="episode in trial", ylabel="return")
    (ax,) = fig.axes
    for name, x in data.items():
        xs, ys = _line(ax, name)
        np.testing.assert_array_equal(xs, np.arange(1, 6))
        np.testing.assert_allclose(ys, x.mean(0))
    (band, _) = ax.collections  # one CI band per method, in order
    verts = band.get_paths()[0].vertices
    lows = [row["ci95_low"] for row in summaries["rl2"]]
    highs = [row["ci95_high"] for row in summaries["rl2"]]
    np.testing.assert_allclose(verts[:, 1].min(), min(lows), rtol=1e-6)
    np.testing.assert_allclose(verts[:, 1].max(), max(highs), rtol=1e-6)
    assert ax.get_xlabel() == "episode in trial"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["rl2", "random"]


def test_adaptation_curve_writes_a_png_of_the_figure_size(tmp_path):
    rows = per_index_summary(np.ones((1, 3)))  # n = 1: NaN bands are skipped, not an error
    path = plot_adaptation_curve({"maml": rows}, tmp_path / "eval" / "c.png", xs=[0, 1, 2])
    assert Image.open(path).size == (720, 480)
    with pytest.raises(ValueError, match="xs"):
        adaptation_curve_figure({"maml": rows}, xs=[0, 1])
    with pytest.raises(ValueError, match="empty"):
        adaptation_curve_figure({})


def test_adaptation_panels_put_each_setting_in_its_own_panel():
    rng = np.random.default_rng(1)
    five, ten = (per_index_summary(rng.gamma(2.0, s, size=(30, 4))) for s in (1.0, 2.0))
    panels = [("5-shot", {"MAML": five, "oracle": five}), ("10-shot", {"MAML": ten})]
    fig = adaptation_panels_figure(panels, xs=[0, 1, 2, 3], log_y=True, ylim=(0.1, 10.0))
    left, right = fig.axes
    assert [ax.get_title() for ax in fig.axes] == ["5-shot", "10-shot"]
    assert left.get_yscale() == "log" and right.get_ylim() == pytest.approx((0.1, 10.0))
    np.testing.assert_allclose(_line(right, "MAML")[1], [row["mean"] for row in ten])
    assert [ln.get_label() for ln in right.lines] == ["MAML"]
    with pytest.raises(ValueError, match="no panels"):
        adaptation_panels_figure([])


def test_learning_curves_draw_the_published_value_as_a_dashed_line(tmp_path):
    steps = np.linspace(0, 1e6, 50)
    values = 5.0 * (1 - np.exp(-steps / 2e5))
    fig = learning_curves_figure(
        [("n=10", {"RL²": (steps, values)}), ("n=25", {"RL²": (steps, values)})],
        asymptotes=[{"RL²": 6.7}, {"RL²": None}],
        ylabel="trial return",
    )
    first, second = fig.axes
    np.testing.assert_allclose(_line(first, "RL²")[1], values)
    _, published = _line(first, "RL², published")
    np.testing.assert_allclose(published, [6.7, 6.7])
    dashed = [ln for ln in first.lines if ln.get_label() == "RL², published"][0]
    assert dashed.get_linestyle() == "--"
    assert (
        dashed.get_color() == [ln for ln in first.lines if ln.get_label() == "RL²"][0].get_color()
    )
    assert [ln.get_label() for ln in second.lines] == ["RL²"]  # no published value, no line
    path = plot_learning_curves([("n=10", {"RL²": (steps, values)})], tmp_path / "l.png")
    assert Image.open(path).format == "PNG"
    with pytest.raises(ValueError, match="no panels"):
        learning_curves_figure([])
