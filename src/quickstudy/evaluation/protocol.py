"""The meta-test protocol shared by every algorithm: one result record, one summary, one figure.

For each held-out task, start from the meta-trained state, adapt along the algorithm's axis
(in-context learners: the ``K`` episodes of one trial; MAML: ``k`` gradient steps; PEARL: posterior
updates) and record the metric at every point: a :class:`~quickstudy.types.MetaTestResult` with
``values[task, k]``. :func:`summarize_result` gives mean, s.e. and 95% CI per point (and, for
episodes, of the trial's total, the RL² papers' metric); :func:`write_meta_test` writes
``summary.json``, ``results.npz`` and ``adaptation.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from quickstudy.evaluation.plots import plot_adaptation_curve
from quickstudy.evaluation.stats import per_index_summary, summarize
from quickstudy.tracking.run_dir import write_json_atomic
from quickstudy.types import MetaTestResult

AXIS_LABELS = {
    "episode": "episode in trial",
    "gradient step": "gradient steps at meta-test",
    "posterior update": "posterior updates",
}


def metric_label(result: MetaTestResult) -> str:
    """How the metric reads on an axis or in a table, e.g. ``"return"`` or ``"query mse"``."""
    if result.metric == "return":
        return "return" if result.axis == "episode" else "mean episode return"
    return f"query {result.metric}"


def positions(result: MetaTestResult) -> list[int]:
    """The axis position of every column: episodes ``1..K``, steps ``0..K-1``."""
    first = result.first_index
    return list(range(first, first + np.shape(result.values)[1]))


def summarize_result(result: MetaTestResult) -> dict[str, Any]:
    """Summarises a meta-test.

    Returns:
        A JSON-able dict: ``metric``, ``axis``, ``higher_is_better``, ``num_tasks``, ``xs``
        (the axis position of each column), ``per_index`` (a summary per column), and where
        defined ``success_per_index``, ``mean_length_per_index``, ``length_per_index`` (steps
        per episode; an episode that failed counts its cap) and
        ``trial_return`` (episodes only: the summary of each trial's total).

    Raises:
        ValueError: ``values`` is not ``[tasks, points]``.
    """
    values = np.asarray(result.values, np.float64)
    if values.ndim != 2:
        raise ValueError(f"values must be [tasks, points], got shape {values.shape}")
    out: dict[str, Any] = {
        "metric": result.metric,
        "axis": result.axis,
        "higher_is_better": result.higher_is_better,
        "num_tasks": int(values.shape[0]),
        "xs": positions(result),
        "per_index": per_index_summary(values),
    }
    if result.axis == "episode" and result.metric == "return":
        out["trial_return"] = summarize(values.sum(axis=1))
    if result.success is not None:
        out["success_per_index"] = per_index_summary(np.asarray(result.success, np.float64))
    if "lengths" in result.extras:
        lengths = np.asarray(result.extras["lengths"], np.float64)
        out["mean_length_per_index"] = lengths.mean(0).tolist()
        out["length_per_index"] = per_index_summary(lengths)
    return out


def write_meta_test(
    result: MetaTestResult,
    eval_dir: str | Path,
    label: str,
    title: str,
    reference: tuple[str, MetaTestResult] | None = None,
    **record: Any,
) -> dict[str, Any]:
    """Writes ``summary.json``, ``results.npz`` and ``adaptation.png`` into ``eval_dir``.

    Args:
        result: The meta-test.
        eval_dir: Output directory (created if missing).
        label: The curve's legend entry.
        title: The figure's title.
        reference: ``(name, result)`` of a reference on the same tasks, e.g. the policy before
            meta-training; its mean per index is drawn as a dashed line and recorded in the
            summary's ``reference``.
        **record: Further JSON-able fields of the summary (algorithm, task, seed).

    Returns:
        The summary as written.
    """
    eval_dir = Path(eval_dir)
    eval_dir.mkdir(parents=True, exist_ok=True)
    summary = {**summarize_result(result), **record}
    references = {}
    if reference is not None:
        name, ref = reference
        means = [row["mean"] for row in summarize_result(ref)["per_index"]]
        summary["reference"] = {"label": name, "mean_per_index": means}
        references[name] = means
    write_json_atomic(eval_dir / "summary.json", summary)
    arrays = {"values": np.asarray(result.values)}
    if result.success is not None:
        arrays["success"] = np.asarray(result.success)
    arrays.update({k: np.asarray(v) for k, v in result.extras.items()})
    np.savez_compressed(eval_dir / "results.npz", **arrays)
    plot_adaptation_curve(
        {label: summary["per_index"]},
        eval_dir / "adaptation.png",
        xlabel=AXIS_LABELS.get(result.axis, result.axis),
        ylabel=metric_label(result),
        title=title,
        xs=summary["xs"],
        references=references,
        note=f"bands: 95% confidence interval of the mean over {summary['num_tasks']} "
        "held-out tasks",
    )
    return summary


def load_result(eval_dir: str | Path, summary: dict[str, Any]) -> MetaTestResult:
    """Reads back what :func:`write_meta_test` wrote."""
    with np.load(Path(eval_dir) / "results.npz") as data:
        arrays = {k: data[k] for k in data.files}
    values, success = arrays.pop("values"), arrays.pop("success", None)
    return MetaTestResult(
        values,
        success,
        arrays,
        metric=summary["metric"],
        axis=summary["axis"],
        higher_is_better=summary["higher_is_better"],
    )
