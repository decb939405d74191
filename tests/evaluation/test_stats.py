import math

import numpy as np
import pytest

from quickstudy.evaluation import (
    betainc,
    bootstrap_ci,
    per_index_summary,
    student_t_cdf,
    student_t_ppf,
    summarize,
    welch_one_sided_p,
)

# Reference values from standard tables (t quantiles) and scipy.special / scipy.stats 1.17
# (computed once, offline; SciPy is not a dependency).


@pytest.mark.parametrize(
    "df, expected",
    [(1, 12.706204736174), (2, 4.302652729750), (9, 2.262157162799), (100, 1.983971518449)],
)
def test_t_ppf_975(df, expected):
    assert student_t_ppf(0.975, df) == pytest.approx(expected, abs=1e-9)


def test_t_ppf_symmetry_and_inverse():
    for df in [1, 3, 4.5, 30, 1e4]:
        for p in [0.001, 0.2, 0.5, 0.9]:
            t = student_t_ppf(p, df)
            assert student_t_cdf(t, df) == pytest.approx(p, abs=1e-12)
            assert student_t_ppf(1 - p, df) == pytest.approx(-t, abs=1e-9)


def test_t_cdf_known_values():
    # df = 1 is the Cauchy distribution: F(t) = 1/2 + atan(t)/pi.
    for t in [-5.0, -0.3, 0.0, 2.0]:
        assert student_t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-14)
    # df = 2: F(t) = 1/2 + t / (2 sqrt(2 + t^2)).
    for t in [-1.0, 0.7, 3.0]:
        assert student_t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-14)
    assert student_t_cdf(2.0, 10) == pytest.approx(0.963305982615, abs=1e-11)
    # Large df approaches the normal distribution.
    assert student_t_cdf(1.959963984540, 1e8) == pytest.approx(0.975, abs=1e-9)


def test_betainc_known_values():
    assert betainc(1.0, 1.0, 0.3) == pytest.approx(0.3, abs=1e-15)  # uniform
    assert betainc(2.0, 3.0, 0.4) == pytest.approx(0.5248, abs=1e-14)  # polynomial, by hand
    assert betainc(0.5, 0.5, 0.3) == pytest.approx(
        2 / math.pi * math.asin(math.sqrt(0.3)), abs=1e-14
    )  # arcsine distribution
    assert betainc(100.0, 200.0, 0.33) == pytest.approx(0.456618163334, abs=1e-10)
    assert betainc(2.0, 3.0, 0.0) == 0.0 and betainc(2.0, 3.0, 1.0) == 1.0
    with pytest.raises(ValueError):
        betainc(-1.0, 1.0, 0.5)


def test_summarize_hand_computed():
    x = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0])
    s = summarize(x)
    assert s["n"] == 8
    assert s["mean"] == pytest.approx(3.875)
    std = math.sqrt(sum((v - 3.875) ** 2 for v in x) / 7)
    assert s["std"] == pytest.approx(std)
    assert s["se"] == pytest.approx(std / math.sqrt(8))
    half = 2.364624251593 * std / math.sqrt(8)  # t_{0.975, 7}
    assert s["ci95_low"] == pytest.approx(3.875 - half, abs=1e-9)
    assert s["ci95_high"] == pytest.approx(3.875 + half, abs=1e-9)
    assert all(isinstance(s[k], float) for k in ["mean", "std", "se", "ci95_low", "ci95_high"])


def test_summarize_axis_and_single_sample():
    x = np.arange(12.0).reshape(3, 4)
    s = summarize(x, axis=1)
    np.testing.assert_allclose(s["mean"], [1.5, 5.5, 9.5])
    assert s["n"] == 4 and s["ci95_low"].shape == (3,)
    one = summarize(np.array([2.0]))
    assert one["mean"] == 2.0 and math.isnan(one["se"]) and math.isnan(one["ci95_low"])
    with pytest.raises(ValueError):
        summarize(np.zeros(0))


def test_per_index_summary():
    returns = np.array([[0.0, 1.0, 2.0], [2.0, 3.0, 6.0]])
    rows = per_index_summary(returns)
    assert len(rows) == 3
    assert [r["mean"] for r in rows] == [1.0, 2.0, 4.0]
    assert rows[2]["std"] == pytest.approx(math.sqrt(8.0))
    with pytest.raises(ValueError, match="tasks, K"):
        per_index_summary(np.zeros(3))


def test_bootstrap_ci():
    rng = np.random.default_rng(0)
    x = rng.normal(10.0, 2.0, size=200)
    low, high = bootstrap_ci(x, seed=1)
    assert (low, high) == bootstrap_ci(x, seed=1)  # deterministic given the seed
    assert low < x.mean() < high
    s = summarize(x)
    # For n = 200 the percentile bootstrap is close to the t interval.
    assert low == pytest.approx(s["ci95_low"], abs=0.1)
    assert high == pytest.approx(s["ci95_high"], abs=0.1)
    narrow = bootstrap_ci(x, seed=np.random.default_rng(1), level=0.5)
    assert low < narrow[0] < narrow[1] < high
    assert bootstrap_ci(np.full(5, 3.0), seed=0) == (3.0, 3.0)


def test_welch_one_sided_p_reference():
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    b = np.array([2.0, 4.0, 6.0, 8.0, 10.0, 12.0])
    assert welch_one_sided_p(a, b) == pytest.approx(0.024642169103, abs=1e-10)
    # Welch (1947)-style example data (two samples of unequal size and variance).
    c = np.array([19.8, 20.4, 19.6, 17.8, 18.5, 18.9, 18.3, 18.9, 19.5, 22.0])
    d = np.array(
        [28.2, 26.6, 20.1, 23.3, 25.2, 22.1, 17.7, 27.6, 20.6, 13.7]
        + [23.2, 17.5, 20.6, 18.0, 23.9, 21.6, 24.3, 20.4, 23.9, 13.3]
    )
    assert welch_one_sided_p(c, d) == pytest.approx(0.017742265415, abs=1e-10)
    assert welch_one_sided_p(d, c) == pytest.approx(1 - 0.017742265415, abs=1e-10)


def test_welch_by_hand_equal_sizes():
    # Equal n and variances: df = 2(n-1) and t = diff / sqrt(2 s^2 / n).
    a = np.array([0.0, 1.0, 2.0])  # mean 1, s^2 = 1
    b = np.array([1.0, 2.0, 3.0])  # mean 2, s^2 = 1
    t = -1.0 / math.sqrt(2.0 / 3.0)
    assert welch_one_sided_p(a, b) == pytest.approx(student_t_cdf(t, 4.0), abs=1e-14)
    # df = 4 closed form: F(t) = 1/2 + (3/8) x (1 - x^2 / 3) * sign, x = t / sqrt(4 + t^2).
    x = t / math.sqrt(4 + t * t)
    assert welch_one_sided_p(a, b) == pytest.approx(0.5 + 0.75 * x * (1 - x * x / 3), abs=1e-12)


def test_welch_degenerate_and_errors():
    assert welch_one_sided_p(np.zeros(3), np.ones(3)) == 0.0
    assert welch_one_sided_p(np.ones(3), np.zeros(3)) == 1.0
    assert welch_one_sided_p(np.ones(3), np.ones(3)) == 0.5
    with pytest.raises(ValueError, match="at least 2"):
        welch_one_sided_p(np.ones(1), np.ones(3))
    with pytest.raises(ValueError, match="finite"):
        welch_one_sided_p(np.array([1.0, np.nan]), np.ones(3))
