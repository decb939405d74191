"""The meta-test protocol shared by every algorithm.

For each held-out task, start from the meta-trained state, adapt for ``K`` episodes (in context for
RL²-style agents, by gradient steps for MAML) and record the return and success of each episode:
``returns[task, k]``. The summary reports mean, s.e. and 95% CI per ``k`` and of the trial's total
return (the RL² papers' metric for bandits and tabular MDPs). Supervised MAML records the query loss
after ``k = 0, 1, ...`` gradient steps instead (:func:`summarize_adaptation_steps`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from quickstudy.evaluation.stats import per_index_summary, summarize


def summarize_meta_test(
    returns: np.ndarray, success: np.ndarray | None = None, lengths: np.ndarray | None = None
) -> dict[str, Any]:
    """Summarises meta-test results.

    Args:
        returns: Per-task, per-episode returns ``[N, K]``.
        success: Per-task, per-episode success flags ``[N, K]``, or ``None`` when undefined.
        lengths: Per-task, per-episode lengths ``[N, K]``, optional.

    Returns:
        A JSON-able dict: ``num_tasks``, ``episodes``, ``per_episode`` (a summary per k),
        ``trial_return`` (summary of the total over the K episodes), ``success_per_episode``
        and ``mean_length_per_episode`` when given.
    """
    returns = np.asarray(returns, np.float64)
    if returns.ndim != 2:
        raise ValueError(f"returns must be [tasks, episodes], got shape {returns.shape}")
    out: dict[str, Any] = {
        "num_tasks": int(returns.shape[0]),
        "episodes": int(returns.shape[1]),
        "per_episode": per_index_summary(returns),
        "trial_return": summarize(returns.sum(axis=1)),
    }
    if success is not None:
        out["success_per_episode"] = per_index_summary(np.asarray(success, np.float64))
    if lengths is not None:
        out["mean_length_per_episode"] = np.asarray(lengths, np.float64).mean(0).tolist()
    return out


def summarize_adaptation_steps(values: np.ndarray, metric: str) -> dict[str, Any]:
    """Summarises a metric recorded after ``k = 0..K-1`` adaptation (gradient) steps.

    Args:
        values: Per-task values ``[N, K]``; column ``k`` is after ``k`` steps (0: before).
        metric: Name of the metric, e.g. ``"mse"`` or ``"return"``.

    Returns:
        A JSON-able dict: ``metric``, ``num_tasks``, ``steps`` (``K - 1``) and ``per_step``
        (a summary per k, as from `quickstudy.evaluation.stats.per_index_summary`).
    """
    values = np.asarray(values, np.float64)
    if values.ndim != 2:
        raise ValueError(f"values must be [tasks, steps + 1], got shape {values.shape}")
    return {
        "metric": metric,
        "num_tasks": int(values.shape[0]),
        "steps": int(values.shape[1] - 1),
        "per_step": per_index_summary(values),
    }
