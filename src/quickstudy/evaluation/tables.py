"""Paper-style result tables: significance marking, Markdown rendering and bar figures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from quickstudy.evaluation.stats import welch_one_sided_p

SCORE_NOTE = (
    "Entries: our mean ± s.e. over the held-out trials (the paper's value in brackets). Bold: "
    "not significantly worse than the best method of the row (one-sided Welch t-test, "
    "p ≥ 0.05), as in the paper."
)


def not_worse_than_best(samples: Mapping[str, Any], alpha: float = 0.05) -> set[str]:
    """Methods not significantly worse than the best one (the RL² paper's bold entries).

    The best method has the highest mean; another is marked when a one-sided Welch t-test of
    "its mean is lower than the best's" gives ``p >= alpha``.

    Args:
        samples: Method -> per-trial scores ``[n]`` (higher is better), ``n >= 2``.
        alpha: Significance level.

    Returns:
        The marked methods (always including the best).
    """
    if not samples:
        return set()
    arrays = {name: np.asarray(x, np.float64) for name, x in samples.items()}
    best = max(arrays, key=lambda name: arrays[name].mean())
    return {
        name
        for name, x in arrays.items()
        if name == best or welch_one_sided_p(x, arrays[best]) >= alpha
    }


def render_markdown(
    title: str,
    row_labels: Sequence[str],
    columns: Sequence[str],
    column_labels: Mapping[str, str],
    cells: Sequence[Mapping[str, Mapping[str, Any]]],
    paper: Sequence[Mapping[str, float | None]],
    decimals: int = 1,
    note: str = SCORE_NOTE,
) -> str:
    """A Markdown table of ``ours ± s.e. (paper)`` entries, marked ones in bold.

    Args:
        title: Heading line.
        row_labels: One label per row.
        columns: Method names in column order.
        column_labels: Method name -> header text.
        cells: Per row, method -> ``{"mean", "se", "bold"}``; a missing method prints "—".
        paper: Per row, method -> published value (or ``None``).
        decimals: Digits after the point.
        note: The legend under the table.

    Returns:
        The Markdown text (title, table, legend).
    """
    header = "| setting | " + " | ".join(column_labels.get(c, c) for c in columns) + " |"
    lines = [f"### {title}", "", header, "|---" * (len(columns) + 1) + "|"]
    for label, row, published in zip(row_labels, cells, paper, strict=True):
        entries = []
        for column in columns:
            result = row.get(column)
            ref = published.get(column)
            ref_text = "—" if ref is None else f"{ref:.{decimals}f}"
            if result is None:
                entries.append(f"— ({ref_text})")
                continue
            text = f"{result['mean']:.{decimals}f} ± {result['se']:.{decimals}f}"
            if result.get("bold"):
                text = f"**{text}**"
            entries.append(f"{text} ({ref_text})")
        lines.append(f"| {label} | " + " | ".join(entries) + " |")
    lines += ["", note]
    return "\n".join(lines) + "\n"


def plot_method_bars(
    panels: Sequence[tuple[str, Mapping[str, Mapping[str, float]]]],
    path: str | Path,
    column_labels: Mapping[str, str] | None = None,
    paper: Sequence[Mapping[str, float | None]] | None = None,
    title: str = "",
) -> Path:
    """One panel per setting; methods as bars with 95% CI error bars (paper values as dots).

    Args:
        panels: ``(setting label, method -> {"mean", "ci95_low", "ci95_high"})`` per panel.
        path: PNG file to write.
        column_labels: Method name -> tick label.
        paper: Per panel, method -> published value, drawn as an orange dot.
        title: Figure title.

    Returns:
        ``path`` as a ``Path``.
    """
    if not panels:
        raise ValueError("nothing to plot: no panels")
    labels = column_labels or {}
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows), dpi=110)
    FigureCanvasAgg(fig)
    for i, (name, results) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        methods = list(results)
        x = np.arange(len(methods))
        mean = np.array([results[m]["mean"] for m in methods])
        low = mean - np.array([results[m]["ci95_low"] for m in methods])
        high = np.array([results[m]["ci95_high"] for m in methods]) - mean
        colors = ["tab:red" if m == "rl2" else "tab:blue" for m in methods]
        ax.bar(x, mean, yerr=np.stack([low, high]), color=colors, alpha=0.8, capsize=2)
        if paper is not None:
            ref = [paper[i].get(m) for m in methods]
            pts = [(j, v) for j, v in enumerate(ref) if v is not None]
            if pts:
                ax.scatter(*zip(*pts, strict=True), marker="D", s=18, color="tab:orange", zorder=3)
        ax.set_xticks(x, [labels.get(m, m) for m in methods], rotation=45, ha="right", fontsize=8)
        ax.set_title(name, fontsize=10)
        top = max(
            mean.max(), max((v for v in (paper[i].values() if paper else []) if v), default=0)
        )
        bottom = min(mean.min(), top) * 0.8
        ax.set_ylim(bottom, top * 1.05 if top > 0 else 1.0)
        ax.grid(axis="y", alpha=0.3)
    if title:
        note = "  (orange dots: the paper; RL² in red)" if paper is not None else ""
        fig.suptitle(title + note, fontsize=11)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
