"""Classical tabular-MDP learners, the baselines of RL²'s MDP table (Duan et al. 2016, §4.2).

They follow the finite-horizon agents of Osband's TabulaRL (used by the RL² paper): a conjugate
posterior over the unknown MDP — Gaussian over each mean reward with known noise precision ``tau``,
Dirichlet over each transition row — updated after every step, a new plan ``Q[h, s, a]`` at the
start of every episode by backward induction over the horizon, and actions greedy in ``Q`` (random
tie-breaking) or ε-greedy. The transition out of an episode's last step is not counted, as in
TabulaRL.
NumPy on the host, batched over trials: posterior sampling draws millions of Dirichlet rows, and
NumPy's Gamma sampler is about 20x faster than JAX's on CPU.

Planners (each a pure function of the posterior):

- ``psrl``: one MDP sampled from the posterior (Osband et al. 2013).
- ``opsrl``: ``num_samples`` sampled MDPs, the element-wise max of their ``Q`` (optimistic PSRL).
- ``ucrl2``: extended value iteration with reward and L1 transition confidence bonuses
  (Jaksch et al. 2010), scaled by ``scaling``; a nearly flat prior.
- ``beb``: posterior means plus bonuses ``~ beta / (1 + n(s, a))`` (Kolter & Ng 2009).
- ``epsilon-greedy`` / ``greedy``: the posterior-mean MDP under a nearly flat prior, acted on
  ε-greedily (greedy: ε = 0).
- ``random``: uniform actions.

Two one-step (myopic) players that are not columns of the paper's table, for diagnosis: they
re-plan after every step (``play(..., every_step=True)``) and look no further than the next
reward. ``plan_myopic`` is greedy in the current state's posterior-mean rewards;
``plan_pooled_myopic`` pools each action's rewards over all states, i.e. treats the MDP as a
single bandit and ignores the state it is in.

The RL² authors tuned ``scaling`` (UCRL2, BEB), the number of samples (OPSRL) and ε per setting;
:mod:`quickstudy.presets.rl2_tables` holds the grids.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from quickstudy.envs.tabular_mdp import MDPParams


class Posterior(NamedTuple):
    """Conjugate posteriors over ``N`` tabular MDPs (one per trial).

    Attributes:
        mu: Posterior mean of each mean reward ``[N, S, A]``.
        tau: Posterior precision of each mean reward ``[N, S, A]``.
        alpha: Dirichlet parameters of each transition row ``[N, S, A, S]``.
        visits: Times each ``(s, a)`` was taken ``[N, S, A]``.
    """

    mu: np.ndarray
    tau: np.ndarray
    alpha: np.ndarray
    visits: np.ndarray


class Prior(NamedTuple):
    """TabulaRL's prior and noise model.

    Attributes:
        alpha0: Dirichlet pseudo-count of every next state.
        mu0: Prior mean of every mean reward.
        tau0: Prior precision of every mean reward.
        tau: Known precision of the reward noise.
    """

    alpha0: float = 1.0
    mu0: float = 0.0
    tau0: float = 1.0
    tau: float = 1.0


DEFAULT_PRIOR = Prior()


def init_posterior(num: int, num_states: int, num_actions: int, prior: Prior) -> Posterior:
    """The prior as ``num`` posteriors with no data."""
    shape = (num, num_states, num_actions)
    return Posterior(
        mu=np.full(shape, prior.mu0),
        tau=np.full(shape, prior.tau0),
        alpha=np.full(shape + (num_states,), prior.alpha0),
        visits=np.zeros(shape),
    )


def update_posterior(
    post: Posterior,
    s_tm1: np.ndarray,
    a_tm1: np.ndarray,
    r_t: np.ndarray,
    s_t: np.ndarray,
    continues: bool,
    prior: Prior,
) -> None:
    """Adds one transition per trial, in place; next states count only if episodes continue.

    Args:
        post: The posteriors (modified).
        s_tm1: State of each trial ``[N]``.
        a_tm1: Action taken ``[N]``.
        r_t: Reward received ``[N]``.
        s_t: Next state ``[N]``.
        continues: Whether the episodes go on after this step.
        prior: Noise model (``tau``).
    """
    n = np.arange(s_tm1.shape[0])
    tau0 = post.tau[n, s_tm1, a_tm1]
    tau1 = tau0 + prior.tau
    post.mu[n, s_tm1, a_tm1] = (post.mu[n, s_tm1, a_tm1] * tau0 + r_t * prior.tau) / tau1
    post.tau[n, s_tm1, a_tm1] = tau1
    post.visits[n, s_tm1, a_tm1] += 1.0
    if continues:
        post.alpha[n, s_tm1, a_tm1, s_t] += 1.0


def backward_induction(r: np.ndarray, p: np.ndarray, horizon: int) -> np.ndarray:
    """Finite-horizon optimal ``Q [H, N, S, A]`` of MDPs ``r [N, S, A]``, ``p [N, S, A, S]``."""
    q = np.zeros((horizon,) + r.shape)
    v = np.zeros(r.shape[:2])
    for h in range(horizon - 1, -1, -1):
        q[h] = r + np.einsum("nsat,nt->nsa", p, v)
        v = q[h].max(axis=-1)
    return q


def optimistic_transition(p_hat: np.ndarray, radius: np.ndarray, v_next: np.ndarray) -> np.ndarray:
    """The distributions in the L1 balls ``||p - p_hat||_1 <= radius`` maximising ``p @ v_next``.

    Jaksch et al. (2010), Fig. 2: move up to ``radius / 2`` mass onto the best next state, taking
    it from the worst states first.

    Args:
        p_hat: Empirical next-state distributions ``[N, S, A, S]``.
        radius: L1 radii ``[N, S, A]``.
        v_next: Next-state values ``[N, S]``.

    Returns:
        The optimistic distributions ``[N, S, A, S]``.
    """
    order = np.broadcast_to(np.argsort(v_next, axis=-1)[:, None, None, :], p_hat.shape)
    p = np.take_along_axis(p_hat, order, axis=-1)  # worst first; the best state is last
    p[..., -1] = np.minimum(1.0, p[..., -1] + radius / 2.0)
    excess = p.sum(axis=-1) - 1.0
    mass = p.copy()
    mass[..., -1] = 0.0  # never take from the best state
    taken_before = np.cumsum(mass, axis=-1) - mass
    p -= np.clip(excess[..., None] - taken_before, 0.0, mass)
    out = np.empty_like(p)
    np.put_along_axis(out, order, p, axis=-1)
    return out


def extended_value_iteration(
    r: np.ndarray, p_hat: np.ndarray, radius: np.ndarray, horizon: int
) -> np.ndarray:
    """Optimistic ``Q [H, N, S, A]`` over all MDPs with transitions in the L1 balls ``radius``."""
    q = np.zeros((horizon,) + r.shape)
    v = np.zeros(r.shape[:2])
    for h in range(horizon - 1, -1, -1):
        p = optimistic_transition(p_hat, radius, v)
        q[h] = r + np.einsum("nsat,nt->nsa", p, v)
        v = q[h].max(axis=-1)
    return q


def mean_mdp(post: Posterior) -> tuple[np.ndarray, np.ndarray]:
    """Posterior-mean rewards ``[N, S, A]`` and transitions ``[N, S, A, S]``."""
    return post.mu, post.alpha / post.alpha.sum(-1, keepdims=True)


def sample_mdp(rng: np.random.Generator, post: Posterior) -> tuple[np.ndarray, np.ndarray]:
    """One MDP per trial drawn from the posterior."""
    r = post.mu + rng.standard_normal(post.mu.shape) / np.sqrt(post.tau)
    g = rng.gamma(post.alpha)
    return r, g / g.sum(-1, keepdims=True)


PlanFn = Callable[[np.random.Generator, Posterior, int, int], np.ndarray]
"""``plan(rng, posterior, episode, horizon) -> Q [H, N, S, A]``; ``episode`` counts from 1."""


def plan_mean(rng: np.random.Generator, post: Posterior, episode: int, horizon: int) -> np.ndarray:
    """Certainty equivalence: plan in the posterior-mean MDP."""
    del rng, episode
    return backward_induction(*mean_mdp(post), horizon)


def plan_psrl(rng: np.random.Generator, post: Posterior, episode: int, horizon: int) -> np.ndarray:
    """Posterior sampling: plan in one sampled MDP."""
    del episode
    return backward_induction(*sample_mdp(rng, post), horizon)


def plan_opsrl(
    rng: np.random.Generator, post: Posterior, episode: int, horizon: int, num_samples: int
) -> np.ndarray:
    """Optimistic posterior sampling: the max over ``num_samples`` sampled MDPs' ``Q``."""
    q = plan_psrl(rng, post, episode, horizon)
    for _ in range(num_samples - 1):
        q = np.maximum(q, plan_psrl(rng, post, episode, horizon))
    return q


def plan_beb(
    rng: np.random.Generator, post: Posterior, episode: int, horizon: int, scaling: float
) -> np.ndarray:
    """Bayesian exploration bonus (Kolter & Ng 2009) in TabulaRL's form.

    Plans in the posterior-mean MDP with a reward bonus ``1 / (tau(s, a) + 1)`` and a
    transition bonus ``beta / (1 + n(s, a))`` per step still to go, ``beta = 2 H^2 H scaling``,
    where ``n(s, a)`` is the Dirichlet mass of the row (prior included).
    """
    del rng, episode
    r, p = mean_mdp(post)
    r = r + 1.0 / (post.tau + 1.0)
    p_bonus = 2.0 * horizon**2 * scaling * horizon / (1.0 + post.alpha.sum(-1))
    q = np.zeros((horizon,) + r.shape)
    v = np.zeros(r.shape[:2])
    for h in range(horizon - 1, -1, -1):
        q[h] = r + np.einsum("nsat,nt->nsa", p, v) + p_bonus * (horizon - h - 1)
        v = q[h].max(axis=-1)
    return q


def plan_ucrl2(
    rng: np.random.Generator,
    post: Posterior,
    episode: int,
    horizon: int,
    delta: float,
    scaling: float,
    prior: Prior,
) -> np.ndarray:
    """UCRL2's optimistic plan (Jaksch et al. 2010) in TabulaRL's finite-horizon form.

    With ``n_r = max(1, tau(s, a) - tau0)`` reward observations, ``n_p = max(1, row mass -
    alpha0)`` transition observations and ``L = ln(2 S A (episode + 1) / delta)``::

        reward bonus:         scaling * sqrt(4 L / n_r)
        transition L1 radius: scaling * sqrt(4 S L / n_p)
    """
    del rng
    _, num_states, num_actions = post.mu.shape
    log_term = np.log(2.0 * num_states * num_actions * (episode + 1) / delta)
    n_r = np.maximum(1.0, post.tau - prior.tau0)
    n_p = np.maximum(1.0, post.alpha.sum(-1) - prior.alpha0)
    r_bonus = scaling * np.sqrt(4.0 * log_term / n_r)
    radius = scaling * np.sqrt(4.0 * num_states * log_term / n_p)
    r, p = mean_mdp(post)
    return extended_value_iteration(r + r_bonus, p, radius, horizon)


def plan_myopic(
    rng: np.random.Generator, post: Posterior, episode: int, horizon: int
) -> np.ndarray:
    """One-step lookahead: ``Q[h] = `` the posterior-mean rewards at every ``h``."""
    del rng, episode
    return np.broadcast_to(post.mu, (horizon,) + post.mu.shape)


def plan_pooled_myopic(
    rng: np.random.Generator, post: Posterior, episode: int, horizon: int, prior: Prior
) -> np.ndarray:
    """One-step lookahead on each action's posterior-mean reward pooled over states.

    Every state shares the action values: the conjugate posterior of one mean per action given
    all its rewards, whichever state they came from.
    """
    del rng, episode
    reward_sums = (post.mu * post.tau - prior.mu0 * prior.tau0).sum(1)  # noise-precision weighted
    precision = prior.tau0 + (post.tau - prior.tau0).sum(1)
    pooled = (prior.mu0 * prior.tau0 + reward_sums) / precision  # [N, A]
    return np.broadcast_to(pooled[None, :, None, :], (horizon,) + post.mu.shape)


def act(rng: np.random.Generator, q: np.ndarray, epsilon: float) -> np.ndarray:
    """ε-greedy actions from ``q [N, A]``, ties broken uniformly at random; ``[N]``."""
    noise = rng.random(q.shape)
    greedy = np.argmax(np.where(q >= q.max(axis=-1, keepdims=True), noise, -1.0), axis=-1)
    random = rng.integers(0, q.shape[-1], size=q.shape[0])
    return np.where(rng.random(q.shape[0]) < epsilon, random, greedy)


def play(
    rng: np.random.Generator,
    tasks: MDPParams,
    horizon: int,
    plan: PlanFn,
    epsilon: float,
    num_episodes: int,
    prior: Prior = DEFAULT_PRIOR,
    every_step: bool = False,
) -> np.ndarray:
    """Plays one trial of ``num_episodes`` episodes on each of ``N`` MDPs at once.

    The dynamics are those of :class:`quickstudy.envs.tabular_mdp.TabularMDP`: start in state 0,
    ``r ~ N(R(s, a), 1)``, ``s' ~ P(. | s, a)``, ``horizon`` steps per episode.

    Args:
        rng: Random generator (plans, actions and environment).
        tasks: The MDPs, leaves ``[N, ...]``.
        horizon: Steps per episode.
        plan: Planner, called at the start of each episode.
        epsilon: Exploration rate of the actions (1: uniformly random play).
        num_episodes: Trial length in episodes.
        prior: Posterior initialisation and reward-noise model.
        every_step: Re-plan after every step instead of at the start of each episode.

    Returns:
        The return of each episode ``[N, num_episodes]``.
    """
    p_true = np.asarray(tasks.transitions, np.float64)
    r_true = np.asarray(tasks.mean_rewards, np.float64)
    num, num_states, num_actions = r_true.shape
    cdf = np.cumsum(p_true, axis=-1)
    n = np.arange(num)
    post = init_posterior(num, num_states, num_actions, prior)
    returns = np.zeros((num, num_episodes))
    for episode in range(num_episodes):
        s = np.zeros(num, np.int64)
        for h in range(horizon):
            if h == 0 or every_step:
                q = plan(rng, post, episode + 1, horizon)
            a = act(rng, q[h, n, s], epsilon)
            r = r_true[n, s, a] + rng.standard_normal(num)
            u = rng.random(num)[:, None]
            s_next = np.minimum((cdf[n, s, a] < u).sum(-1), num_states - 1)
            update_posterior(post, s, a, r, s_next, h < horizon - 1, prior)
            returns[:, episode] += r
            s = s_next
    return returns


ALGORITHMS = ("random", "psrl", "opsrl", "ucrl2", "beb", "epsilon-greedy", "greedy")
"""The RL² MDP table's columns, in its order."""


UCRL2_PRIOR = Prior(alpha0=1e-5, mu0=0.0, tau0=1e-4, tau=1.0)
"""TabulaRL's UCRL2 agent: an almost flat prior, so the statistics are the empirical ones."""

EPSILON_GREEDY_PRIOR = Prior(alpha0=1e-4, mu0=0.0, tau0=1e-4, tau=1.0)
"""TabulaRL's ε-greedy agent (also greedy, ε = 0, and random, ε = 1)."""


def make_player(name: str, **hyper: float) -> tuple[PlanFn, float, Prior]:
    """The planner, action ε and prior of algorithm ``name``, hyperparameters bound.

    Args:
        name: One of :data:`ALGORITHMS`.
        **hyper: ``num_samples`` (opsrl, default 10), ``scaling`` (beb, ucrl2; default 1),
            ``delta`` (ucrl2, default 0.05), ``epsilon`` (epsilon-greedy, default 0.1).
    """
    if name == "random":
        return plan_mean, 1.0, EPSILON_GREEDY_PRIOR
    if name == "greedy":
        return plan_mean, 0.0, EPSILON_GREEDY_PRIOR
    if name == "epsilon-greedy":
        return plan_mean, float(hyper.get("epsilon", 0.1)), EPSILON_GREEDY_PRIOR
    if name == "psrl":
        return plan_psrl, 0.0, DEFAULT_PRIOR
    if name == "opsrl":
        plan = functools.partial(plan_opsrl, num_samples=int(hyper.get("num_samples", 10)))
        return plan, 0.0, DEFAULT_PRIOR
    if name == "beb":
        plan = functools.partial(plan_beb, scaling=float(hyper.get("scaling", 1.0)))
        return plan, 0.0, DEFAULT_PRIOR
    if name == "ucrl2":
        plan = functools.partial(
            plan_ucrl2,
            delta=float(hyper.get("delta", 0.05)),
            scaling=float(hyper.get("scaling", 1.0)),
            prior=UCRL2_PRIOR,
        )
        return plan, 0.0, UCRL2_PRIOR
    raise ValueError(f"unknown MDP algorithm {name!r}; valid: {', '.join(ALGORITHMS)}")
