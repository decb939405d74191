"""Aggregates over seeds: the mean with a bootstrap CI, and the interquartile mean (IQM).

A seed is the unit of replication: each seed's score is one number (e.g. its mean meta-test
return over the held-out tasks), and the interval says how far the mean over *seeds* could
move, as Agarwal et al. (2021, "Deep RL at the edge of the statistical precipice") recommend.
For scores of several tasks (a table's cells) the IQM over all seed × task scores gets a
*stratified* bootstrap CI: seeds are resampled within each task, as ``rliable``'s
``StratifiedBootstrap`` does. Both use :func:`scipy.stats.bootstrap` with percentile intervals
(``rliable``'s default), not a hand-written resampler.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

RESAMPLES = 5000
"""Bootstrap resamples of every interval."""


def iqm(scores: np.ndarray | Sequence[float]) -> float:
    """The interquartile mean: the mean of the middle 50 % of all scores (``rliable``'s IQM)."""
    return float(stats.trim_mean(np.ravel(np.asarray(scores, np.float64)), 0.25))


def seed_mean(
    values: np.ndarray | Sequence[float], confidence: float = 0.95, seed: int = 0
) -> dict[str, Any]:
    """Mean over seeds with a percentile-bootstrap confidence interval.

    Args:
        values: One score per seed, ``[seeds]``.
        confidence: Level of the interval.
        seed: Seed of the resampling.

    Returns:
        ``mean``, ``ci_low``, ``ci_high`` (``None`` with fewer than 2 seeds), ``seeds``.
    """
    x = np.asarray(values, np.float64).ravel()
    out: dict[str, Any] = {"mean": float(x.mean()), "ci_low": None, "ci_high": None}
    out["seeds"] = int(x.size)
    if x.size >= 2:
        low, high = _interval((x,), _mean_of_first, confidence, seed)
        out["ci_low"], out["ci_high"] = low, high
    return out


def seed_band(values: np.ndarray) -> dict[str, list[float]]:
    """Per column of ``[seeds, points]``: the mean over seeds and its 95 % bootstrap CI.

    Returns:
        ``mean``, ``ci95_low`` and ``ci95_high``, one value per point (the bounds NaN with
        fewer than 2 seeds).
    """
    x = np.asarray(values, np.float64)
    aggs = [seed_mean(x[:, k]) for k in range(x.shape[1])]
    nan = float("nan")
    return {
        "mean": [a["mean"] for a in aggs],
        "ci95_low": [nan if a["ci_low"] is None else a["ci_low"] for a in aggs],
        "ci95_high": [nan if a["ci_high"] is None else a["ci_high"] for a in aggs],
    }


def stratified_iqm(scores: np.ndarray, confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """IQM over all scores of several tasks with a stratified-bootstrap confidence interval.

    Args:
        scores: ``[seeds, tasks]`` (e.g. one normalized score per reproduction cell).
        confidence: Level of the interval.
        seed: Seed of the resampling.

    Returns:
        ``iqm``, ``ci_low``, ``ci_high`` (``None`` with fewer than 2 seeds), ``seeds``, ``tasks``.
    """
    x = np.asarray(scores, np.float64)
    if x.ndim != 2:
        raise ValueError(f"scores must be [seeds, tasks], got shape {x.shape}")
    out: dict[str, Any] = {"iqm": iqm(x), "ci_low": None, "ci_high": None}
    out.update(seeds=int(x.shape[0]), tasks=int(x.shape[1]))
    if x.shape[0] >= 2:
        columns = tuple(x[:, j] for j in range(x.shape[1]))
        out["ci_low"], out["ci_high"] = _interval(columns, _iqm_of_all, confidence, seed)
    return out


def _mean_of_first(x: np.ndarray, axis: int) -> np.ndarray:
    return np.mean(x, axis=axis)


def _iqm_of_all(*columns: np.ndarray, axis: int) -> np.ndarray:
    return stats.trim_mean(np.concatenate(columns, axis=axis), 0.25, axis=axis)


def _interval(data: tuple, statistic: Any, confidence: float, seed: int) -> tuple[float, float]:
    """Percentile-bootstrap interval; each sample in ``data`` is resampled on its own."""
    result = stats.bootstrap(
        data,
        statistic,
        n_resamples=RESAMPLES,
        vectorized=True,
        paired=False,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)
