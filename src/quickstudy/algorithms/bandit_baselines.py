"""Classical Bernoulli-bandit players, the baselines of RL²'s bandit table (Duan et al. 2016, §4.1).

Every player keeps the counts of successes ``s`` and failures ``f`` of each arm (a Beta(1, 1)
prior makes the posterior Beta(1 + s, 1 + f)) and chooses an arm from them with a rule
``choose(rng, s, f, t) -> arm`` applied to a batch of trials at once; :func:`play` runs a rule
over whole trials. NumPy on the host: the samplers (Beta draws) are an order of magnitude faster
there than JAX's on CPU, and a pull is a handful of array operations over all trials.

Rules (ties go to the lowest index unless the rule is randomised):

- ``random``: uniform arm.
- ``greedy``: posterior mean ``(1 + s) / (2 + s + f)``.
- ``epsilon-greedy``: with probability ε a uniform arm, else greedy.
- ``ucb1``: ``(1 + s) / (2 + m) + c * sqrt(2 ln t / (2 + m))`` with ``m = s + f`` (counts start at
  one success in two pulls, as in the RL² authors' code) and ``t`` the pulls so far.
- ``thompson``: one draw from each arm's Beta posterior.
- ``optimistic-thompson`` (OTS): as in the RL² authors' code, the most probable of several joint
  posterior draws.
- ``gittins``: the Gittins index of the arm's Beta posterior under discount γ, from a table
  computed by backward induction (:func:`gittins_table`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

ChooseFn = Callable[[np.random.Generator, np.ndarray, np.ndarray, int], np.ndarray]
"""``choose(rng, s [N, k], f [N, k], t) -> arms [N]``: one arm per trial from the counts."""


class BanditResult(NamedTuple):
    """Outcome of playing trials.

    Attributes:
        rewards: Reward of every pull, ``[N, n]``.
        actions: Arm of every pull, ``[N, n]``.
    """

    rewards: np.ndarray
    actions: np.ndarray


def posterior_mean(s: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Mean of the Beta(1 + s, 1 + f) posterior, per arm (any shape)."""
    return (1.0 + s) / (2.0 + s + f)


def choose_random(rng: np.random.Generator, s: np.ndarray, f: np.ndarray, t: int) -> np.ndarray:
    """A uniformly random arm per trial."""
    del f, t
    return rng.integers(0, s.shape[-1], size=s.shape[:-1])


def choose_greedy(rng: np.random.Generator, s: np.ndarray, f: np.ndarray, t: int) -> np.ndarray:
    """The arm with the highest posterior mean (lowest index on ties)."""
    del rng, t
    return np.argmax(posterior_mean(s, f), axis=-1)


def choose_epsilon_greedy(
    rng: np.random.Generator, s: np.ndarray, f: np.ndarray, t: int, epsilon: float
) -> np.ndarray:
    """With probability ``epsilon`` a uniform arm, otherwise the greedy one."""
    explore = rng.random(s.shape[:-1]) < epsilon
    return np.where(explore, choose_random(rng, s, f, t), choose_greedy(rng, s, f, t))


def choose_ucb1(
    rng: np.random.Generator, s: np.ndarray, f: np.ndarray, t: int, c: float
) -> np.ndarray:
    """UCB1 (Auer et al. 2002) on prior-initialised counts (1 success in 2 pulls per arm).

    Args:
        rng: Unused.
        s: Successes per arm ``[N, k]``.
        f: Failures per arm ``[N, k]``.
        t: Pulls made so far (the first pull, ``t = 0``, has no bonus: arm 0).
        c: Exploration weight.
    """
    del rng
    m = 2.0 + s + f
    return np.argmax((1.0 + s) / m + c * np.sqrt(2.0 * np.log(max(t, 1)) / m), axis=-1)


def choose_thompson(rng: np.random.Generator, s: np.ndarray, f: np.ndarray, t: int) -> np.ndarray:
    """Thompson sampling: the arm whose Beta posterior draw is largest."""
    del t
    return np.argmax(rng.beta(1.0 + s, 1.0 + f), axis=-1)


def choose_optimistic_thompson(
    rng: np.random.Generator, s: np.ndarray, f: np.ndarray, t: int, num_samples: int
) -> np.ndarray:
    """OTS as in the RL² authors' baseline code: the most probable of several posterior draws.

    Draws ``num_samples`` joint samples of all arms' means from the Beta posteriors, keeps the
    one with the highest joint posterior density and plays its best arm. (The paper calls it
    optimistic Thompson sampling; the per-arm max of draws reproduces its table worse.)
    """
    del t
    a, b = 1.0 + s, 1.0 + f
    draws = rng.beta(a, b, size=(num_samples,) + s.shape)  # [M, N, k]
    x = np.clip(draws, 1e-12, 1.0 - 1e-12)
    log_density = ((a - 1.0) * np.log(x) + (b - 1.0) * np.log1p(-x)).sum(-1)  # [M, N]
    best = np.argmax(log_density, axis=0)
    return np.argmax(np.take_along_axis(draws, best[None, :, None], axis=0)[0], axis=-1)


def choose_index(
    rng: np.random.Generator, s: np.ndarray, f: np.ndarray, t: int, table: np.ndarray
) -> np.ndarray:
    """The arm whose tabulated index ``table[s, f]`` is largest (e.g. the Gittins index)."""
    del rng, t
    return np.argmax(table[s.astype(np.int64), f.astype(np.int64)], axis=-1)


def play(
    rng: np.random.Generator, probs: np.ndarray, choose: ChooseFn, num_pulls: int
) -> BanditResult:
    """Plays one trial of ``num_pulls`` pulls on each of ``N`` bandits at once.

    Args:
        rng: Random generator (arm choices and rewards).
        probs: Success probability of each arm ``[N, k]``.
        choose: Arm-selection rule.
        num_pulls: Trial length ``n``.

    Returns:
        Rewards and arms ``[N, n]``.
    """
    probs = np.asarray(probs, np.float64)
    num, k = probs.shape
    s = np.zeros((num, k))
    f = np.zeros((num, k))
    rows = np.arange(num)
    rewards = np.zeros((num, num_pulls))
    actions = np.zeros((num, num_pulls), np.int64)
    for t in range(num_pulls):
        arm = choose(rng, s, f, t)
        reward = (rng.random(num) < probs[rows, arm]).astype(np.float64)
        s[rows, arm] += reward
        f[rows, arm] += 1.0 - reward
        rewards[:, t] = reward
        actions[:, t] = arm
    return BanditResult(rewards, actions)


def gittins_table(gamma: float, max_pulls: int, depth: int = 2000, grid: int = 512) -> np.ndarray:
    """Gittins indices of Bernoulli arms with a Beta(1, 1) prior, by backward induction.

    The index of the posterior Beta(1 + s, 1 + f) is the retirement reward ``λ`` per step at which
    pulling the arm forever-optimally and retiring are equally good (Gittins 1979; the calibration
    of Whittle 1980). For each ``λ`` on a ``grid`` over [0, 1], one backward pass over all
    posteriors with ``s + f <= depth`` gives the value ``W_λ`` of the optimal-stopping problem::

        W_λ(s, f) = max(λ / (1 - γ), p (1 + γ W_λ(s + 1, f)) + (1 - p) γ W_λ(s, f + 1)),
        p = (1 + s) / (2 + s + f),

    with ``W_λ = max(λ, p) / (1 - γ)`` beyond ``depth`` (the posterior no longer moves). The
    index is the ``λ`` where continuing stops being better than retiring, located by linear
    interpolation between grid points (the difference is convex and decreasing in ``λ``).

    Args:
        gamma: Discount in (0, 1).
        max_pulls: Largest ``s + f`` whose index is returned.
        depth: Truncation of the pull count, ``>= max_pulls``.
        grid: Number of ``λ`` grid points.

    Returns:
        ``index[s, f]`` for ``s + f <= max_pulls``, shape ``[max_pulls + 1, max_pulls + 1]``
        (entries with ``s + f > max_pulls`` are NaN).
    """
    if not 0.0 < gamma < 1.0:
        raise ValueError(f"gamma must lie in (0, 1), got {gamma}")
    if depth < max_pulls:
        raise ValueError(f"depth ({depth}) must be >= max_pulls ({max_pulls})")
    lam = np.linspace(0.0, 1.0, grid)[:, None]  # [G, 1]
    retire = lam / (1.0 - gamma)
    index = np.full((max_pulls + 1, max_pulls + 1), np.nan)
    # Values on the diagonal s + f = m, indexed by s = 0..m: [G, m + 1].
    p = (1.0 + np.arange(depth + 2)) / (depth + 3.0)
    w_next = np.maximum(lam, p[None, :]) / (1.0 - gamma)
    for m in range(depth, -1, -1):
        s = np.arange(m + 1)
        p = (1.0 + s) / (m + 2.0)
        cont = p * (1.0 + gamma * w_next[:, 1:]) + (1.0 - p) * gamma * w_next[:, :-1]
        if m <= max_pulls:
            gap = cont - retire  # [G, m + 1], decreasing in λ
            first = np.argmax(gap <= 0.0, axis=0)  # first grid point where retiring wins
            hi = np.maximum(first, 1)
            g0 = gap[hi - 1, s]
            g1 = gap[hi, s]
            lam0 = lam[hi - 1, 0]
            lam1 = lam[hi, 0]
            root = lam0 + (lam1 - lam0) * g0 / np.where(g0 - g1 > 0, g0 - g1, 1.0)
            index[s, m - s] = np.clip(root, 0.0, 1.0)
        w_next = np.maximum(retire, cont)
    return index


@functools.cache
def _cached_gittins(gamma: float, max_pulls: int) -> np.ndarray:
    # Truncate where gamma^depth < 1e-6 (the tail no longer moves the index), at most at
    # max(2000, 2 max_pulls) pulls (the RL² authors used 1000).
    tail = math.ceil(math.log(1e-6) / math.log(gamma))
    depth = max(max_pulls, min(tail, max(2000, 2 * max_pulls)))
    return gittins_table(gamma, max_pulls, depth=depth)


def make_choose(name: str, num_pulls: int, **hyper: float) -> ChooseFn:
    """The selection rule ``name`` with its hyperparameters bound.

    Args:
        name: One of :data:`ALGORITHMS`.
        num_pulls: Trial length (sizes the Gittins table).
        **hyper: ``epsilon`` (epsilon-greedy), ``c`` (ucb1), ``num_samples``
            (optimistic-thompson), ``gamma`` (gittins).
    """
    if name == "random":
        return choose_random
    if name == "greedy":
        return choose_greedy
    if name == "epsilon-greedy":
        return functools.partial(choose_epsilon_greedy, epsilon=float(hyper["epsilon"]))
    if name == "ucb1":
        return functools.partial(choose_ucb1, c=float(hyper["c"]))
    if name == "thompson":
        return choose_thompson
    if name == "optimistic-thompson":
        return functools.partial(
            choose_optimistic_thompson, num_samples=int(hyper.get("num_samples", 5))
        )
    if name == "gittins":
        table = np.nan_to_num(_cached_gittins(float(hyper["gamma"]), num_pulls), nan=-1.0)
        return functools.partial(choose_index, table=table)
    raise ValueError(f"unknown bandit algorithm {name!r}; valid: {', '.join(ALGORITHMS)}")


ALGORITHMS = (
    "random",
    "gittins",
    "thompson",
    "optimistic-thompson",
    "ucb1",
    "epsilon-greedy",
    "greedy",
)
"""The RL² table's columns, in its order."""
