"""Summary statistics of meta-test returns: mean, standard error, t and bootstrap CIs, Welch test.

Pure NumPy (plus ``math``); the Student-t distribution is computed here from the regularized
incomplete beta function (continued fraction, Press et al., *Numerical Recipes*, 3rd ed., §6.4)
so that SciPy is not needed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

_CF_MAX_ITER = 20_000
_CF_EPS = 1e-15
_TINY = 1e-300
_NORMAL_DF = 1e7  # Above this many degrees of freedom the t distribution is the normal one.


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz), NR eq. 6.4.5."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _CF_MAX_ITER + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _CF_EPS:
            return h
    raise ArithmeticError(f"incomplete beta continued fraction did not converge (a={a}, b={b})")


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function ``I_x(a, b)``.

    Args:
        a: First shape parameter, ``> 0``.
        b: Second shape parameter, ``> 0``.
        x: Point in ``[0, 1]``.

    Returns:
        ``I_x(a, b) = B(x; a, b) / B(a, b)``; absolute error about 1e-14 for moderate ``a, b``,
        growing to about 1e-10 at ``max(a, b) ~ 1e6`` (cancellation between log-gammas).
    """
    if a <= 0 or b <= 0:
        raise ValueError(f"betainc needs a > 0 and b > 0, got a={a}, b={b}")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"betainc needs 0 <= x <= 1, got x={x}")
    if x == 0.0 or x == 1.0:
        return x
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def student_t_cdf(t: float, df: float) -> float:
    """CDF of Student's t distribution, ``P(T <= t)``.

    Args:
        t: Point.
        df: Degrees of freedom, ``> 0`` (not necessarily an integer; ``inf`` is the normal).

    Returns:
        The probability.
    """
    if not df > 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    if df > _NORMAL_DF:
        return 0.5 * math.erfc(-t / math.sqrt(2.0))
    tail = 0.5 * betainc(0.5 * df, 0.5, df / (df + t * t))  # P(T > |t|)
    return 1.0 - tail if t > 0 else tail


def student_t_ppf(p: float, df: float) -> float:
    """Quantile function (inverse CDF) of Student's t distribution.

    Closed forms for ``df`` 1 and 2; otherwise bisection on `student_t_cdf` to full precision.

    Args:
        p: Probability in ``(0, 1)``.
        df: Degrees of freedom, ``> 0``.

    Returns:
        ``t`` with ``P(T <= t) = p``; e.g. ``student_t_ppf(0.975, 9) = 2.2622``.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if not df > 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    if p == 0.5:
        return 0.0
    if df == 1:
        return math.tan(math.pi * (p - 0.5))
    if df == 2:
        return (2.0 * p - 1.0) / math.sqrt(2.0 * p * (1.0 - p))
    q = max(p, 1.0 - p)  # Solve in the upper half, then mirror.
    lo, hi = 0.0, 2.0
    while student_t_cdf(hi, df) < q:
        lo, hi = hi, 2.0 * hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if student_t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
    t = 0.5 * (lo + hi)
    return t if p > 0.5 else -t


def _as_float_array(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension, got a scalar")
    return arr


def _scalar_or_array(x: np.ndarray) -> float | np.ndarray:
    return float(x) if x.ndim == 0 else x


def summarize(x: Any, axis: int = 0) -> dict[str, Any]:
    """Mean, sample standard deviation, standard error and Student-t 95% CI along one axis.

    Args:
        x: Samples, e.g. returns of independent tasks or seeds, ``[n, ...]`` for ``axis=0``.
        axis: The axis of the samples.

    Returns:
        ``{"mean", "std", "se", "ci95_low", "ci95_high", "n"}``. ``std`` uses ``ddof=1``,
        ``se = std / sqrt(n)``, the CI is ``mean -/+ t_{0.975, n-1} * se``. Values are floats for
        1-D input, arrays of ``x``'s shape without ``axis`` otherwise; ``n`` is an int. With
        ``n == 1`` the spread and CI are NaN. NaNs in ``x`` propagate.
    """
    arr = _as_float_array(x, "x")
    n = arr.shape[axis]
    if n == 0:
        raise ValueError("cannot summarize zero samples")
    mean = arr.mean(axis=axis)
    if n > 1:
        std = arr.std(axis=axis, ddof=1)
        t_crit = student_t_ppf(0.975, n - 1)
    else:
        std = np.full_like(mean, np.nan)
        t_crit = math.nan
    se = std / math.sqrt(n)
    return {
        "mean": _scalar_or_array(mean),
        "std": _scalar_or_array(std),
        "se": _scalar_or_array(se),
        "ci95_low": _scalar_or_array(mean - t_crit * se),
        "ci95_high": _scalar_or_array(mean + t_crit * se),
        "n": int(n),
    }


def per_index_summary(returns: Any) -> list[dict[str, Any]]:
    """Summaries over tasks for every adaptation index (episode or inner step).

    Args:
        returns: Meta-test returns ``[tasks, K]``.

    Returns:
        ``K`` dicts as returned by `summarize` (float values), one per column ``k``.
    """
    arr = _as_float_array(returns, "returns")
    if arr.ndim != 2:
        raise ValueError(f"returns must be [tasks, K], got shape {arr.shape}")
    return [summarize(arr[:, k]) for k in range(arr.shape[1])]


def bootstrap_ci(
    x: Any,
    seed: int | np.random.Generator,
    num_resamples: int = 2000,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean (Efron & Tibshirani 1993, §13.3).

    Args:
        x: Samples ``[n]``.
        seed: Seed of a ``numpy.random.Generator``, or the generator itself.
        num_resamples: Number of bootstrap resamples.
        level: Coverage of the interval, in ``(0, 1)``.

    Returns:
        ``(low, high)``: the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the means of
        resamples with replacement.
    """
    arr = _as_float_array(x, "x")
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"x must be a non-empty 1-D array, got shape {arr.shape}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if num_resamples < 1:
        raise ValueError(f"num_resamples must be positive, got {num_resamples}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n = arr.size
    chunk = max(1, 1_000_000 // n)  # Bounds the index matrix to ~8 MB.
    means = np.concatenate(
        [
            arr[rng.integers(0, n, size=(min(chunk, num_resamples - start), n))].mean(axis=1)
            for start in range(0, num_resamples, chunk)
        ]
    )
    alpha = 1.0 - level
    low, high = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def welch_one_sided_p(a: Any, b: Any) -> float:
    """One-sided Welch t-test p-value for ``mean(a) < mean(b)`` (Welch 1947).

    ``t = (mean_a - mean_b) / sqrt(s_a^2/n_a + s_b^2/n_b)`` with Welch–Satterthwaite degrees of
    freedom; the p-value is ``P(T <= t)``. Small values are evidence that ``a`` has the lower
    mean.

    Args:
        a: Samples ``[n_a]``, ``n_a >= 2``.
        b: Samples ``[n_b]``, ``n_b >= 2``.

    Returns:
        The p-value. When both samples have zero variance it is 0, 0.5 or 1 for
        ``mean_a`` below, equal to or above ``mean_b``.
    """
    xa = _as_float_array(a, "a").ravel()
    xb = _as_float_array(b, "b").ravel()
    if xa.size < 2 or xb.size < 2:
        raise ValueError(f"each sample needs at least 2 values, got {xa.size} and {xb.size}")
    if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(xb))):
        raise ValueError("samples must be finite")
    na, nb = xa.size, xb.size
    va, vb = xa.var(ddof=1) / na, xb.var(ddof=1) / nb
    diff = float(xa.mean() - xb.mean())
    se2 = float(va + vb)
    if se2 == 0.0:
        return 0.0 if diff < 0 else (1.0 if diff > 0 else 0.5)
    df = se2**2 / (va**2 / (na - 1) + vb**2 / (nb - 1))
    return student_t_cdf(diff / math.sqrt(se2), float(df))
