"""Figures of meta-test results (matplotlib, Agg canvas; no pyplot global state)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter


def adaptation_curve_figure(
    summaries: Mapping[str, Sequence[Mapping[str, Any]]],
    xlabel: str = "episode",
    ylabel: str = "return",
    title: str = "",
    *,
    xs: Sequence[float] | None = None,
    references: Mapping[str, Sequence[float]] | None = None,
    note: str = "",
) -> Figure:
    """Mean return per adaptation index with its 95% CI band, one line per method.

    Args:
        summaries: Method name -> per-index summaries (``K`` dicts with ``mean``, ``ci95_low``
            and ``ci95_high``, as from `quickstudy.evaluation.stats.per_index_summary`).
        xlabel: x-axis label.
        ylabel: y-axis label.
        title: Figure title.
        xs: x positions of the ``K`` indices; ``1..K`` if ``None`` (use ``0..K-1`` for MAML
            inner steps, where 0 is before adaptation).
        references: Reference name -> ``K`` values (e.g. the policy before meta-training),
            drawn as dashed grey lines without a band.
        note: A line under the plot, e.g. what the bands are.

    Returns:
        The figure (save it with :func:`save_png`).
    """
    if not summaries:
        raise ValueError("nothing to plot: summaries is empty")
    fig = Figure(figsize=(6.0, 4.3 if note else 4.0), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    _draw_curves(ax, summaries, xs)
    for i, (name, values) in enumerate((references or {}).items()):
        values = np.asarray(values, dtype=float)
        x = np.arange(1, values.size + 1) if xs is None else np.asarray(xs, dtype=float)
        style = ("--", ":", "-.")[i % 3]
        ax.plot(x, values, style, color="0.45", label=name)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if note:
        fig.text(0.5, 0.01, note, ha="center", va="bottom", fontsize=7, color="0.3")
    fig.tight_layout(rect=(0, 0.04 if note else 0, 1, 1))
    return fig


def save_png(fig: Figure, path: str | Path) -> Path:
    """Writes ``fig`` as a PNG file (its directory is created if missing) and returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def plot_adaptation_curve(summaries, path: str | Path, *args: Any, **kwargs: Any) -> Path:
    """:func:`adaptation_curve_figure` saved to ``path``."""
    return save_png(adaptation_curve_figure(summaries, *args, **kwargs), path)


def plot_adaptation_panels(panels, path: str | Path, **kwargs: Any) -> Path:
    """:func:`adaptation_panels_figure` saved to ``path``."""
    return save_png(adaptation_panels_figure(panels, **kwargs), path)


def plot_learning_curves(panels, path: str | Path, **kwargs: Any) -> Path:
    """:func:`learning_curves_figure` saved to ``path``."""
    return save_png(learning_curves_figure(panels, **kwargs), path)


def _draw_curves(
    ax: Any, summaries: Mapping[str, Sequence[Mapping[str, Any]]], xs: Sequence[float] | None
) -> None:
    for name, rows in summaries.items():
        if len(rows) == 0:
            raise ValueError(f"method {name!r} has no summaries")
        x = np.arange(1, len(rows) + 1) if xs is None else np.asarray(xs, dtype=float)
        if x.shape != (len(rows),):
            raise ValueError(f"xs has {x.size} positions but {name!r} has {len(rows)} summaries")
        mean = np.array([row["mean"] for row in rows], dtype=float)
        low = np.array([row["ci95_low"] for row in rows], dtype=float)
        high = np.array([row["ci95_high"] for row in rows], dtype=float)
        (line,) = ax.plot(x, mean, marker="o" if len(rows) <= 20 else None, label=name)
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)


def adaptation_panels_figure(
    panels: Sequence[tuple[str, Mapping[str, Sequence[Mapping[str, Any]]]]],
    *,
    xs: Sequence[float] | None = None,
    xlabel: str = "episode",
    ylabel: str = "return",
    title: str = "",
    log_y: bool = False,
    ylim: tuple[float, float] | None = None,
) -> Figure:
    """Adaptation curves of several settings side by side, one panel per setting.

    Args:
        panels: ``(setting label, method -> per-index summaries)`` per panel (see
            :func:`plot_adaptation_curve`).
        xs: x positions of the indices (``1..K`` if ``None``).
        xlabel: x-axis label.
        ylabel: y-axis label (of the first panel).
        title: Figure title.
        log_y: Logarithmic y axis (for losses spanning decades).
        ylim: y range of every panel (curves that diverge then leave the frame instead of
            flattening the others).

    Returns:
        The figure (save it with :func:`save_png`).
    """
    if not panels:
        raise ValueError("nothing to plot: no panels")
    fig = Figure(figsize=(max(4.4 * len(panels), 7.5), 3.8), dpi=110)
    FigureCanvasAgg(fig)
    for i, (name, summaries) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        _draw_curves(ax, summaries, xs)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if log_y:
            ax.set_yscale("log")
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.set_xlabel(xlabel)
        if i == 0:
            ax.set_ylabel(ylabel)
            ax.legend(fontsize=8)
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3, which="both")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def learning_curves_figure(
    panels: Sequence[tuple[str, Mapping[str, tuple[Sequence[float], Sequence[float]]]]],
    *,
    asymptotes: Sequence[Mapping[str, float]] | None = None,
    xlabel: str = "environment steps",
    ylabel: str = "return",
    title: str = "",
    log_x: bool = False,
) -> Figure:
    """Training curves of several settings side by side, published values as dashed lines.

    Args:
        panels: ``(setting label, method -> (steps, values))`` per panel; a curve given as
            ``(steps, values, low, high)`` is drawn with a band between ``low`` and ``high``.
        asymptotes: Per panel, method -> published value, drawn as a horizontal dashed line
            in the method's colour.
        xlabel: x-axis label.
        ylabel: y-axis label (of the first panel of each row).
        title: Figure title.
        log_x: Logarithmic x axis (budgets that differ by orders of magnitude).

    Returns:
        The figure (save it with :func:`save_png`).
    """
    if not panels:
        raise ValueError("nothing to plot: no panels")
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    width = max(4.4 * cols, 6.0)
    fig = Figure(figsize=(width, 3.4 * rows), dpi=110)
    FigureCanvasAgg(fig)
    for i, (name, curves) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        published = asymptotes[i] if asymptotes is not None else {}
        for j, (method, curve) in enumerate(curves.items()):
            color = f"C{j}"
            x, y = np.asarray(curve[0], float), np.asarray(curve[1], float)
            keep = x > 0 if log_x else np.ones(len(x), bool)  # no step 0 on a log axis
            x, y = x[keep], y[keep]
            ax.plot(x, y, color=color, marker="." if len(x) <= 30 else None, label=method)
            if len(curve) == 4:
                low, high = (np.asarray(c, float)[keep] for c in curve[2:])
                ax.fill_between(x, low, high, color=color, alpha=0.2, linewidth=0)
            if published.get(method) is not None:
                ax.axhline(
                    published[method],
                    color=color,
                    linestyle="--",
                    linewidth=1,
                    label=f"{method}, published",
                )
        ax.set_xlabel(xlabel)
        if log_x:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        if i % cols == 0:
            ax.set_ylabel(ylabel)
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(textwrap.fill(title, width=int(10 * width)), fontsize=11)
    fig.tight_layout()
    return fig
