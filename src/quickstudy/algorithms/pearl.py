"""PEARL: off-policy meta-RL with probabilistic context variables (Rakelly et al. 2019).

Meta-RL as inference: a permutation-invariant encoder turns a task's transitions into a Gaussian
posterior ``q(z | c)``; SAC's actor and critics act and evaluate on ``(s, z)``. Exploration on a
new task is posterior sampling: act for an episode with ``z`` drawn from the prior, add what
happened to the context, draw ``z`` from the narrowed posterior, act again.

One meta-training iteration (Algorithm 1 of the paper, as in its code):

1. for ``num_tasks_sample`` training tasks drawn at random: empty the task's encoder buffer, then
   collect ``num_steps_prior`` steps with ``z`` from the prior (a new draw per episode),
   ``num_steps_posterior`` steps with ``z`` from the posterior of a context batch of the
   encoder buffer (the first episode still from the prior), both added to the encoder and RL
   buffers, and ``num_extra_rl_steps_posterior`` more the same way that go to the RL buffer
   only;
2. ``num_train_steps_per_itr`` gradient steps, each on ``meta_batch`` tasks with a context batch
   from their encoder buffers and an RL batch from their RL buffers
   (:func:`~quickstudy.algorithms.pearl_update.make_pearl_update`).

Before the first iteration every training task gets ``num_initial_steps`` steps with prior ``z``.
Phases are collected in whole episodes (a step count is rounded up to a multiple of the horizon),
and the sampled tasks of one iteration are distinct and collected side by side.

The ``oracle`` variant replaces ``z`` by the true task parameters (no encoder): the upper bound a
meta-learner's return is measured against.

Pure-JAX tasks are collected inside the jitted update; host-stepped (MuJoCo) tasks are stepped on
the host, one jitted policy call per step, by :mod:`quickstudy.algorithms.pearl_host`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from quickstudy.algorithms.pearl_host import Episodes, host_episodes
from quickstudy.algorithms.pearl_update import (
    PEARLParams,
    PEARLUpdateConfig,
    context_features,
    make_pearl_update,
    with_z,
)
from quickstudy.envs.base import Box, is_host
from quickstudy.errors import ConfigError
from quickstudy.learners.sac import SACConfig, Transitions, make_sac
from quickstudy.networks.context import sample_z
from quickstudy.networks.distributions import TanhGaussian
from quickstudy.rollout.replay import (
    TaskReplay,
    replay_bytes,
    replay_clear,
    replay_extend,
    replay_init,
    replay_sample,
)
from quickstudy.tasks.distribution import TaskDistribution
from quickstudy.tasks.trial import task_features
from quickstudy.types import (
    Algorithm,
    MetaTestResult,
    Watch,
    check_choice,
    check_fields,
    leaves_of,
)

PyTree = Any
VARIANTS = ("pearl", "oracle")
REPLAY_BUDGET = 4 * 2**30
"""Most bytes the replay buffers of one run may take (the issue's budget)."""

PEARL_SAC = SACConfig(hidden_sizes=(128, 128, 128), reward_scale=5.0, alpha=1.0, auto_alpha=False)
"""PEARL's SAC on 2 CPU cores: its fixed temperature and reward scale, narrower networks."""


@dataclasses.dataclass(frozen=True)
class PEARLConfig:
    """PEARL's meta-training schedule, its networks and its meta-test.

    Attributes:
        total_steps: Environment steps of meta-training, the initial collection included.
        variant: ``pearl``, or ``oracle`` (SAC given the task parameters instead of ``z``).
        num_train_tasks: Training tasks with a buffer each (0: the task's finite training set,
            or 100 tasks drawn once from a continuous distribution).
        meta_batch: Tasks per gradient step.
        num_initial_steps: Steps per training task before the first iteration (z ~ prior).
        num_tasks_sample: Tasks collected on per iteration.
        num_steps_prior: Steps per sampled task with z ~ prior (to both buffers).
        num_steps_posterior: Steps per sampled task with z ~ posterior (to both buffers).
        num_extra_rl_steps_posterior: Steps per sampled task with z ~ posterior, RL buffer only.
        num_train_steps_per_itr: Gradient steps per iteration.
        batch_size: RL transitions per task in a gradient step (the paper's 256 costs 4x more
            per step on 2 CPU cores and learned the point robot no better here).
        embedding_batch_size: Context transitions per task (training and collection).
        replay_size: Transitions kept over all training tasks (split evenly between them).
        exploration_episodes: Meta-test episodes acted with z from the prior, a fresh draw for
            each, before the posterior is used (the paper's ``num_exp_traj_eval``).
        deterministic_eval: Act with the actor's mean at meta-test (the paper's).
        dense_critic: Train the critics on the environment's ``info["dense_reward"]`` while
            the encoder reads the task's own (sparse) reward, as the authors' code does on
            ``sparse-point-robot``.
        sac: The SAC learner (PEARL: fixed temperature 1, reward scale 5).
        encoder: The context encoder and its KL weight.
    """

    total_steps: int = 200_000
    variant: Literal["pearl", "oracle"] = "pearl"
    num_train_tasks: int = 0
    meta_batch: int = 16
    num_initial_steps: int = 200
    num_tasks_sample: int = 5
    num_steps_prior: int = 200
    num_steps_posterior: int = 0
    num_extra_rl_steps_posterior: int = 200
    num_train_steps_per_itr: int = 1000
    batch_size: int = 64
    embedding_batch_size: int = 64
    replay_size: int = 1_000_000
    exploration_episodes: int = 1
    deterministic_eval: bool = True
    dense_critic: bool = False
    sac: SACConfig = PEARL_SAC
    encoder: PEARLUpdateConfig = PEARLUpdateConfig(encoder_hidden=(128, 128, 128))

    def __post_init__(self):
        check_fields(
            self,
            positive_int=(
                "total_steps",
                "meta_batch",
                "num_tasks_sample",
                "num_train_steps_per_itr",
                "batch_size",
                "embedding_batch_size",
                "replay_size",
            ),
            nonneg_int=(
                "num_train_tasks",
                "num_initial_steps",
                "num_steps_prior",
                "num_steps_posterior",
                "num_extra_rl_steps_posterior",
                "exploration_episodes",
            ),
        )
        check_choice(self, "variant", VARIANTS)
        if self.num_steps_prior + self.num_steps_posterior + self.num_extra_rl_steps_posterior <= 0:
            raise ConfigError("an iteration must collect some steps (prior, posterior or extra)")
        if self.num_steps_prior + self.num_steps_posterior <= 0 and self.variant == "pearl":
            raise ConfigError(
                "the encoder needs context: num_steps_prior + num_steps_posterior must be > 0"
            )


class PEARLState(NamedTuple):
    """Everything needed to continue meta-training bit-exactly.

    Attributes:
        params: The learner: SAC's and the encoder's parameters and optimiser states.
        rl_replay: Every training task's RL buffer.
        enc_replay: Every training task's encoder (context) buffer.
        train_tasks: The training tasks (leaves ``[K, ...]``).
        key: PRNG key.
        update: Iterations done (int32 scalar).
        env_steps: Environment steps collected so far, the initial collection included.
    """

    params: PEARLParams
    rl_replay: TaskReplay
    enc_replay: TaskReplay
    train_tasks: PyTree
    key: jax.Array
    update: jax.Array
    env_steps: jax.Array


def episodes_per(steps: int, horizon: int) -> int:
    """Whole episodes that collect at least ``steps`` steps."""
    return -(-steps // horizon)


def make_pearl(config: PEARLConfig, tasks: TaskDistribution) -> Algorithm:
    """Builds PEARL (or its oracle) for a continuous-action task distribution.

    ``parts``: ``sac``, ``posterior`` (``posterior(encoder, context, mask)``),
    ``scale_action``, ``run_episodes`` (``(actor, tasks [n], z [n, Z], keys [n],
    deterministic) -> Episodes [n, H]``) and ``features`` (episodes to context features, which
    ``posterior`` reads as they are).

    Raises:
        ConfigError: ``tasks`` is not an RL distribution with a bounded continuous action
            space, or the buffers would exceed their budget.
    """
    if not isinstance(tasks, TaskDistribution):
        raise ConfigError(f"pearl trains on RL task distributions; {tasks.name} is not one")
    env = tasks.env
    example = tasks.sample_one(jax.random.key(0))
    space = env.action_space(example)
    if not isinstance(space, Box) or not (math.isfinite(space.low) and math.isfinite(space.high)):
        raise ConfigError(
            f"pearl needs a bounded continuous action space; {tasks.name} has {space}"
        )
    obs_dim = int(math.prod(env.observation_space(example).shape))
    act_dim = int(math.prod(space.shape))
    oracle = config.variant == "oracle"
    feat_dim = int(task_features(example).shape[0])
    latent = feat_dim if oracle else config.encoder.latent_dim
    if config.dense_critic and "dense_reward" not in _info_keys(env, example):
        raise ConfigError(f"dense_critic needs info['dense_reward'], which {tasks.name} lacks")
    horizon = env.horizon
    eps_prior = episodes_per(config.num_steps_prior, horizon)
    eps_post = episodes_per(config.num_steps_posterior, horizon)
    eps_extra = episodes_per(config.num_extra_rl_steps_posterior, horizon)
    eps_init = episodes_per(config.num_initial_steps, horizon)
    num_train = _num_train_tasks(config, tasks)
    if config.num_tasks_sample > num_train:
        raise ConfigError(
            f"num_tasks_sample ({config.num_tasks_sample}) exceeds the {num_train} training tasks"
        )
    per_iteration = config.num_tasks_sample * horizon * (eps_prior + eps_post + eps_extra)
    initial = num_train * horizon * eps_init
    num_updates = max(1, (config.total_steps - initial) // per_iteration)
    capacity = max(config.replay_size // num_train, horizon * (eps_prior + eps_post + eps_extra))
    enc_capacity = horizon * max(eps_init, eps_prior + eps_post, 1)
    replay_need = replay_bytes(num_train, capacity + enc_capacity, obs_dim, act_dim)
    if replay_need > REPLAY_BUDGET:
        raise ConfigError(
            f"replay buffers of {num_train} tasks x ({capacity:,} RL + {enc_capacity:,} "
            f"encoder) transitions need {replay_need / 2**30:.2f} GiB, over the "
            f"{REPLAY_BUDGET / 2**30:.0f} GiB budget; lower replay_size, num_train_tasks or the "
            "steps collected per task (num_initial_steps, num_steps_prior, "
            "num_steps_posterior, num_extra_rl_steps_posterior)"
        )

    sac = make_sac(config.sac, obs_dim + latent, act_dim)
    context_dim = obs_dim + act_dim + 1 + (obs_dim if config.encoder.use_next_obs else 0)
    init_learner, pearl_update, posterior = make_pearl_update(config.encoder, sac, context_dim)
    scale_action = TanhGaussian(act_dim, float(space.low), float(space.high)).scale

    def features(ep: Episodes) -> jax.Array:
        batch = Transitions(ep.obs, ep.action, ep.reward, ep.next_obs, ep.done)
        return context_features(batch, config.encoder.use_next_obs)

    def oracle_update(params: PEARLParams, context, rl_batch: Transitions, key, feats):
        del context
        sac_state, metrics = sac.update(params.sac, with_z(rl_batch, feats), key)
        return params._replace(sac=sac_state), {**metrics, "kl": jnp.zeros(())}

    def act(actor, obs, z, key, deterministic=False):
        """One environment's step: ``(action in [-1, 1], scaled action, env key)``."""
        k_act, k_env = jax.random.split(key)
        a = sac.act(actor, jnp.concatenate([obs, z])[None], k_act, deterministic)[0]
        return a, scale_action(a), k_env

    def z_prior(task, key):
        return task_features(task) if oracle else jax.random.normal(key, (latent,))

    def z_sampled(encoder, pool, mask, key):
        """Z from the posterior of a context batch drawn from one task's ``pool`` [P, C]."""
        k_idx, k_z = jax.random.split(key)
        logits = jnp.where(mask > 0, 0.0, -jnp.inf)
        idx = jax.random.categorical(k_idx, logits, shape=(config.embedding_batch_size,))
        mean, var = posterior(encoder, pool[idx])
        return sample_z(k_z, mean, var)

    def choose_z(params, task_batch, pool, mask, j, keys):
        """Episode ``j`` of a posterior phase: prior z first, then posterior z (``[S, Z]``)."""
        k_z, k_ep = _split_each(keys)
        prior = jax.vmap(z_prior)(task_batch, k_z)
        if oracle:
            return prior, k_ep
        post = jax.vmap(z_sampled, in_axes=(None, 0, 0, 0))(params.encoder, pool, mask, k_z)
        return jnp.where(j == 0, prior, post), k_ep

    def test_z(params, priors, pool, mask, j, keys):
        """Meta-test episode ``j``: a fresh prior z per exploring episode, then the posterior.

        ``priors`` ``[S, E, Z]`` holds one prior z per exploration episode (E of them), as the
        authors' meta-test draws a new z from the prior after every exploration trajectory.
        """
        k_z, k_ep = _split_each(keys)
        prior = priors[:, jnp.minimum(j, priors.shape[1] - 1)]
        if oracle:
            return prior, jnp.zeros(prior.shape[:1]), k_ep
        mean, var = posterior(params.encoder, pool, mask)
        use_prior = j < config.exploration_episodes
        z = jnp.where(use_prior, prior, jax.vmap(sample_z)(k_z, mean, var))
        return z, jnp.where(use_prior, 1.0, jnp.sqrt(var).mean(-1)), k_ep

    def write(pool, mask, ep: Episodes, slot):
        """Episodes ``[S, H]`` into the pools ``[S, P, C]`` at position ``slot``."""
        pool = jax.lax.dynamic_update_slice_in_dim(pool, features(ep), slot, 1)
        return pool, jax.lax.dynamic_update_slice_in_dim(mask, ep.valid * 1.0, slot, 1)

    def prior_z_batch(task_batch, keys):
        return jax.vmap(jax.vmap(z_prior, in_axes=(None, 0)))(task_batch, keys)

    if is_host(env):
        run_eps = host_episodes(env, act, config.dense_critic)
        choose_z, test_z, write = jax.jit(choose_z), jax.jit(test_z), jax.jit(write)
        prior_z_batch, jit = jax.jit(prior_z_batch), jax.jit
        loop = _python_scan
    else:
        run_eps = jax.vmap(_jax_episode(env, act, config.dense_critic), (None, 0, 0, 0, None))
        jit, loop = _unchanged, jax.lax.scan

    def prior_episodes(actor, task_batch, key, num):
        """``num`` episodes per task with a new prior z each, in one batch: ``[S, num, H]``."""
        s = jax.tree.leaves(task_batch)[0].shape[0]
        keys = jax.random.split(key, (s, num, 2))
        z = prior_z_batch(task_batch, keys[..., 0])
        tiled = jax.tree.map(lambda x: jnp.repeat(jnp.asarray(x), num, axis=0), task_batch)
        eps = run_eps(actor, tiled, z.reshape(s * num, -1), keys[..., 1].reshape(-1), False)
        return jax.tree.map(lambda x: x.reshape(s, num, *x.shape[1:]), eps)

    def posterior_phase(params, task_batch, pool, mask, key, num, offset, grow):
        """``num`` episodes per task, one at a time (prior z first, then posterior z)."""
        s = jax.tree.leaves(task_batch)[0].shape[0]
        keys = jax.random.split(key, (num, s))

        def body(carry, inp):
            pool, mask = carry
            j, keys_j = inp
            z, k_ep = choose_z(params, task_batch, pool, mask, j, keys_j)
            ep = run_eps(params.sac.actor, task_batch, z, k_ep, False)
            if grow:
                pool, mask = write(pool, mask, ep, offset + j * horizon)
            return (pool, mask), ep

        (pool, mask), eps = loop(body, (pool, mask), (jnp.arange(num), keys))
        return pool, mask, jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), eps)

    pool_len = horizon * (eps_prior + eps_post)

    def collect(params, task_batch, key):
        """One iteration's episodes on the sampled tasks: (to both buffers, RL only)."""
        s = jax.tree.leaves(task_batch)[0].shape[0]
        k_prior, k_post, k_extra = jax.random.split(key, 3)
        pool, mask = jnp.zeros((s, pool_len, context_dim)), jnp.zeros((s, pool_len))
        both = []
        if eps_prior:
            prior = prior_episodes(params.sac.actor, task_batch, k_prior, eps_prior)
            pool, mask = write(pool, mask, prior.flat(), 0)
            both.append(prior)
        if eps_post:
            pool, mask, post = posterior_phase(
                params, task_batch, pool, mask, k_post, eps_post, eps_prior * horizon, True
            )
            both.append(post)
        extra = None
        if eps_extra:
            extra = posterior_phase(params, task_batch, pool, mask, k_extra, eps_extra, 0, False)
            extra = extra[2]
        return both, extra

    def sample_train_tasks(key):
        if tasks.finite and not config.num_train_tasks:
            return jax.tree.map(jnp.asarray, tasks.train_set)
        return tasks.sample(key, num_train)

    store, clear = jit(_store, static_argnames="to_encoder"), jit(replay_clear)

    def init(key: jax.Array) -> PEARLState:
        k_tasks, k_learner, k_collect, key = jax.random.split(key, 4)
        train_tasks = jit(sample_train_tasks)(k_tasks)
        params = jit(init_learner)(k_learner)
        rl = replay_init(num_train, capacity, obs_dim, act_dim)
        enc = replay_init(num_train, enc_capacity, obs_dim, act_dim)
        steps = jnp.zeros((), jnp.int32)
        if eps_init:
            eps = prior_episodes(params.sac.actor, train_tasks, k_collect, eps_init)
            rl, enc = store(rl, enc, jnp.arange(num_train), eps.flat(), to_encoder=True)
            steps = eps.valid.sum().astype(jnp.int32)
        zero = jnp.zeros((), jnp.int32)
        return PEARLState(params, rl, enc, train_tasks, key, zero, steps)

    def gradient_steps(params, rl, enc, train_tasks, key):
        feats = jax.vmap(task_features)(train_tasks) if oracle else None

        def one(params, k):
            k_tasks, k_ctx, k_rl, k_up = jax.random.split(k, 4)
            idx = jax.random.randint(k_tasks, (config.meta_batch,), 0, num_train)
            context = replay_transitions(
                replay_sample(enc, k_ctx, idx, config.embedding_batch_size)
            )
            batch = replay_transitions(replay_sample(rl, k_rl, idx, config.batch_size))
            if oracle:
                return oracle_update(params, context, batch, k_up, feats[idx])
            return pearl_update(params, context, batch, k_up)

        keys = jax.random.split(key, config.num_train_steps_per_itr)
        params, metrics = jax.lax.scan(one, params, keys)
        return params, jax.tree.map(jnp.mean, metrics)

    def begin(state: PEARLState):
        key, k_tasks, k_collect, k_train = jax.random.split(state.key, 4)
        idx = jax.random.choice(k_tasks, num_train, (config.num_tasks_sample,), replace=False)
        task_batch = jax.tree.map(lambda x: x[idx], state.train_tasks)
        return key, idx, task_batch, k_collect, k_train

    def finish(state: PEARLState, key, idx, both, extra, k_train):
        rl, enc = state.rl_replay, clear(state.enc_replay, idx)
        steps = jnp.zeros((), jnp.int32)
        for eps in both:
            rl, enc = _store(rl, enc, idx, eps.flat(), to_encoder=True)
            steps += eps.valid.sum().astype(jnp.int32)
        if extra is not None:
            rl, enc = _store(rl, enc, idx, extra.flat(), to_encoder=False)
            steps += extra.valid.sum().astype(jnp.int32)
        params, metrics = gradient_steps(state.params, rl, enc, state.train_tasks, k_train)
        env_steps = state.env_steps + steps
        metrics = {
            **metrics,
            **_return_metrics(both, extra, eps_prior),
            "env_steps": env_steps.astype(jnp.float32),
        }
        new = PEARLState(params, rl, enc, state.train_tasks, key, state.update + 1, env_steps)
        return new, metrics

    begin, finish = jit(begin), jit(finish)

    def update(state: PEARLState) -> tuple[PEARLState, dict[str, jax.Array]]:
        key, idx, task_batch, k_collect, k_train = begin(state)
        both, extra = collect(state.params, task_batch, k_collect)
        return finish(state, key, idx, both, extra, k_train)

    def meta_test(params: PEARLParams, key, test_tasks, points) -> MetaTestResult:
        n = jax.tree.leaves(test_tasks)[0].shape[0]
        k0, k_eps = jax.random.split(key)
        prior_keys = exploration_keys(jax.random.split(k0, n), config.exploration_episodes)
        priors = prior_z_batch(test_tasks, prior_keys)
        keys = jax.random.split(k_eps, (points, n))
        size = points * horizon

        def body(carry, inp):
            pool, mask = carry
            j, keys_j = inp
            z, std, k_ep = test_z(params, priors, pool, mask, j, keys_j)
            ep = run_eps(params.sac.actor, test_tasks, z, k_ep, config.deterministic_eval)
            pool, mask = write(pool, mask, ep, j * horizon)
            return (pool, mask), (ep.returns(), ep.success.max(-1), ep.valid.sum(-1), std)

        carry = (jnp.zeros((n, size, context_dim)), jnp.zeros((n, size)))
        _, out = loop(body, carry, (jnp.arange(points), keys))
        ret, success, length, std = (jnp.swapaxes(x, 0, 1) for x in out)
        return MetaTestResult(ret, success, {"lengths": length, "posterior_std": std})

    progress = ("return_posterior", "return (posterior z)")
    if not (eps_post + eps_extra) or oracle:
        progress = ("return_prior", "return (prior z)" if not oracle else "return")
    return Algorithm(
        config=config,
        tasks=tasks,
        init=init,
        update=update,
        meta_test=meta_test,
        num_updates=num_updates,
        steps_per_update=per_iteration,
        jittable=not is_host(env),
        progress=progress,
        default_points=max(tasks.episodes, config.exploration_episodes + 1),
        derived={
            "train_tasks": num_train,
            "initial_steps": initial,
            "steps_per_iteration": per_iteration,
            "replay_capacity_per_task": capacity,
            "replay_bytes": replay_need,
        },
        variant=config.variant,
        initial_steps=initial,
        parts={
            "sac": sac,
            "posterior": posterior,
            "scale_action": scale_action,
            "run_episodes": run_eps,
            "features": features,
        },
        watch=(Watch("critic_loss", growth=1e4),),
        data_axes=lambda state: leaves_of(state, "rl_replay", "enc_replay", "train_tasks"),
    )


def _num_train_tasks(config: PEARLConfig, tasks: TaskDistribution) -> int:
    if config.num_train_tasks:
        return config.num_train_tasks
    if tasks.finite:
        return int(jax.tree.leaves(tasks.train_set)[0].shape[0])
    return 100


def _info_keys(env: Any, task: PyTree) -> set[str]:
    if is_host(env):  # one environment, reset on the host
        one = jax.tree.map(lambda x: np.asarray(x)[None], task)
        return set(env.reset(np.random.default_rng(0), one)[1].info)
    _, ts = jax.eval_shape(env.reset, jax.random.key(0), task)
    return set(ts.info)


def _store(rl: TaskReplay, enc: TaskReplay, idx, eps: Episodes, to_encoder: bool):
    """Writes flat episodes ``[S, N]`` of tasks ``idx`` to the RL (critic reward) buffers."""
    rl = replay_extend(
        rl, idx, eps.obs, eps.action, eps.critic_reward, eps.next_obs, eps.done, eps.valid
    )
    if to_encoder:
        enc = replay_extend(
            enc, idx, eps.obs, eps.action, eps.reward, eps.next_obs, eps.done, eps.valid
        )
    return rl, enc


def replay_transitions(sample: TaskReplay) -> Transitions:
    """A replay sample ``[M, B, ...]`` as SAC's ``Transitions``."""
    return Transitions(sample.obs, sample.action, sample.reward, sample.next_obs, sample.done)


def exploration_keys(first: jax.Array, episodes: int) -> jax.Array:
    """Keys of the prior's z for each exploration episode of a meta-test trial.

    Args:
        first: One key per task ``[N]``, the first exploration episode's.
        episodes: Exploration episodes E (at least one key each is made).

    Returns:
        Keys ``[N, max(E, 1)]``: ``first``, then ``fold_in(first, j)`` for episode ``j``.
    """
    later = jnp.arange(1, max(episodes, 1))
    more = jax.vmap(lambda k: jax.vmap(lambda j: jax.random.fold_in(k, j))(later))(first)
    return jnp.concatenate([first[:, None], more], axis=1)


def _split_each(keys: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Splits each of ``[S]`` keys in two: ``([S], [S])``."""
    pairs = jax.vmap(jax.random.split)(keys)
    return pairs[:, 0], pairs[:, 1]


def _jax_episode(env: Any, act, dense_critic: bool):
    """``episode(actor, task, z, key, deterministic) -> Episodes [H]`` of a pure-JAX task."""

    def episode(actor, task, z, key, deterministic=False) -> Episodes:
        k_reset, k_steps = jax.random.split(key)
        state, ts = env.reset(k_reset, task)

        def step(carry, k):
            state, obs, ended = carry
            a, scaled, k_env = act(actor, obs, z, k, deterministic)
            state, nts = env.step(k_env, state, scaled, task)
            rec = Episodes(
                obs=obs,
                action=a,
                reward=nts.reward,
                critic_reward=nts.info["dense_reward"] if dense_critic else nts.reward,
                next_obs=nts.obs,
                done=nts.terminated.astype(jnp.float32),
                valid=~ended,
                success=nts.info.get("success", jnp.zeros(())).astype(jnp.float32),
            )
            return (state, nts.obs, ended | nts.terminated | nts.truncated), rec

        carry = (state, ts.obs.astype(jnp.float32), jnp.asarray(False))
        return jax.lax.scan(step, carry, jax.random.split(k_steps, env.horizon))[1]

    return episode


def _python_scan(body, carry, xs):
    """``lax.scan``'s contract as a Python loop (for bodies that step host environments)."""
    outs = []
    for i in range(len(jax.tree.leaves(xs)[0])):
        carry, out = body(carry, jax.tree.map(lambda x, i=i: x[i], xs))
        outs.append(out)
    return carry, jax.tree.map(lambda *x: jnp.stack(x), *outs)


def _unchanged(fn, **kwargs):
    return fn


def _return_metrics(both: list[Episodes], extra: Episodes | None, eps_prior: int):
    """Mean episode return with prior z and (where collected) posterior z in an iteration."""
    prior, post = [], []
    if eps_prior:
        prior.append(both[0].returns().ravel())
    later = both[1:] if eps_prior else both
    if extra is not None:
        later = [*later, extra]
    for eps in later:  # each phase's first episode still acts with the prior
        r = eps.returns()
        prior.append(r[:, 0])
        post.append(r[:, 1:].ravel())
    out = {"return_prior": jnp.concatenate(prior).mean()}
    if post:  # a schedule of prior-z steps only has no posterior returns to report
        out["return_posterior"] = jnp.concatenate(post).mean()
    return out
