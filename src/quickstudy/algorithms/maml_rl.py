"""MAML for reinforcement learning (Finn, Abbeel & Levine 2017, §5.3) on pure-JAX tasks.

Per task of a meta-batch: sample episodes with θ, fit a linear feature baseline, take ``k`` vanilla
policy-gradient steps θ'_i = θ - α ∇ L_i(θ) (each on fresh episodes of the current adapted policy),
sample episodes with θ'_i, and improve θ on the adapted policies' surrogate, differentiating through
the inner steps. The outer optimiser is TRPO (conjugate gradient on the Hessian of the mean KL of
the adapted policies, KL ≤ 0.01, backtracking line search) as in the paper, or a PPO-style clipped
objective with Adam, recomputing the adaptation every epoch (as in ProMP, Rothfuss et al. 2019,
without its inner-KL penalty).

Facts from the authors' ``maml_rl`` code that the paper does not state: the policy acts in
normalised units ``[-1, 1]`` scaled to the env's action box; Gaussian policy with a learned
state-independent log-std initialised to 0 (std 1) and Xavier-initialised ReLU layers; γ = 0.99,
GAE λ = 1 with the linear baseline fitted on the batch it scores; advantages standardised per task;
the inner loss is ``-mean(log π · A)`` over all valid steps; α = 0.5; at meta-test the first step
uses α and later ones α/2, each on 40 fresh episodes.

Baselines on the same protocol (``variant``): ``pretrained`` (one policy trained on the mixture of
tasks, fine-tuned at meta-test like MAML; ``outer="ppo", ppo_epochs=1`` is the authors' one Adam
step of the policy gradient per batch, while TRPO shrinks the policy's spread until α = 0.5
overshoots), ``oracle`` (the task's parameters — for ``nav2d`` the goal — appended to the
observation). The random-initialisation baseline is the initial policy, fine-tuned.

Inner steps are unrolled in Python: compile time and the memory of the meta-gradient grow linearly
with ``inner_steps`` (each step keeps its episodes and activations).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from quickstudy.envs.base import Box, is_host
from quickstudy.errors import ConfigError
from quickstudy.learners.inner_sgd import inner_step
from quickstudy.learners.trpo import TrustRegionConfig, trust_region_update
from quickstudy.networks.distributions import DiagGaussian
from quickstudy.networks.mlp import MLP
from quickstudy.objectives.policy_gradient import (
    clipped_surrogate,
    fit_linear_baseline,
    linear_features,
    masked_mean,
    ratio_surrogate,
    vpg_surrogate,
)
from quickstudy.objectives.returns import discounted_returns
from quickstudy.rollout.episodes import Episodes, host_sample_episodes, sample_episodes
from quickstudy.tasks.distribution import TaskDistribution
from quickstudy.tasks.trial import task_features
from quickstudy.types import Algorithm, MetaTestResult, Watch, check_choice, check_fields

PyTree = Any
MIN_LOG_STD = float(jnp.log(1e-6))


@dataclasses.dataclass(frozen=True)
class MAMLRLConfig:
    """MAML-RL with a TRPO or PPO outer loop (and its pretrained / oracle baselines).

    Attributes:
        total_steps: Environment steps of meta-training (pre- and post-update episodes).
        variant: ``maml``, ``pretrained`` (no inner step in training) or ``oracle`` (sees the
            task). The oracle has the task parameters appended to the observation and takes no
            inner step.
        outer: Outer optimiser: ``trpo`` (the paper) or ``ppo`` (clipped surrogate, Adam).
        meta_batch_size: Tasks per meta-iteration (the paper's code: 40 on nav2d).
        episodes_per_task: Episodes per task and inner step (the paper: 20).
        inner_steps: Inner policy-gradient steps during meta-training (MAML only).
        inner_lr: Inner step size α (the paper's code: 0.5 on nav2d).
        first_order: Drop the second-order term of the meta-gradient.
        trust_region: The TRPO outer step (KL bound δ = 0.01 as in the paper).
        fvp_tasks: Tasks of the meta-batch in TRPO's Fisher-vector products (0: all of them).
            Each conjugate-gradient iteration differentiates through every task's inner step,
            so fewer tasks make the outer step cheaper (the gradient still uses them all).
            10 of 40 learned as well per iteration on maml-cheetah-dir (20 episodes per task)
            and worse on maml-cheetah-vel (10 per task): docs/results/mujoco.md.
        ppo_epochs: Outer Adam steps per meta-iteration (``outer="ppo"``).
        ppo_lr: Outer Adam step size (``outer="ppo"``).
        clip_eps: Ratio clip (``outer="ppo"``).
        gamma: Discount.
        hidden_sizes: Hidden widths of the Gaussian MLP policy (ReLU).
        init_std: Initial standard deviation of the policy (normalised action units).
        test_steps: Gradient steps at meta-test (returns are recorded after 0 to this many).
        test_episodes: Episodes per task and step at meta-test (the paper: 40).
        test_later_lr_scale: Step-size factor of meta-test steps after the first (the paper: 1/2).
    """

    total_steps: int = 16_000_000
    variant: Literal["maml", "pretrained", "oracle"] = "maml"
    outer: Literal["trpo", "ppo"] = "trpo"
    meta_batch_size: int = 40
    episodes_per_task: int = 20
    inner_steps: int = 1
    inner_lr: float = 0.5
    first_order: bool = False
    trust_region: TrustRegionConfig = TrustRegionConfig()
    fvp_tasks: int = 0
    ppo_epochs: int = 5
    ppo_lr: float = 1e-3
    clip_eps: float = 0.2
    gamma: float = 0.99
    hidden_sizes: tuple[int, ...] = (100, 100)
    init_std: float = 1.0
    test_steps: int = 3
    test_episodes: int = 40
    test_later_lr_scale: float = 0.5

    def __post_init__(self):
        if isinstance(self.hidden_sizes, list):  # as read back from config.json
            object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        check_fields(
            self,
            positive_int=(
                "total_steps",
                "meta_batch_size",
                "episodes_per_task",
                "ppo_epochs",
                "test_episodes",
            ),
            nonneg_int=("inner_steps", "test_steps", "fvp_tasks"),
            positive=("inner_lr", "ppo_lr", "clip_eps", "init_std", "test_later_lr_scale"),
            unit_open=("gamma",),
        )
        check_choice(self, "variant", ("maml", "pretrained", "oracle"))
        check_choice(self, "outer", ("trpo", "ppo"))
        if self.fvp_tasks > self.meta_batch_size:
            raise ConfigError(
                f"fvp_tasks ({self.fvp_tasks}) must be at most meta_batch_size "
                f"({self.meta_batch_size})"
            )
        if not self.hidden_sizes or any(
            not isinstance(w, int) or isinstance(w, bool) or w <= 0 for w in self.hidden_sizes
        ):
            raise ConfigError(f"hidden_sizes must be positive integers, got {self.hidden_sizes!r}")

    @property
    def train_inner_steps(self) -> int:
        """Inner steps inside the meta-objective (0 for the baselines)."""
        return self.inner_steps if self.variant == "maml" else 0


class Batch(NamedTuple):
    """One task's processed episodes, flattened to samples ``[N, T]``.

    Attributes:
        obs: Policy inputs ``[N, T, D]``.
        actions: Sampled actions (normalised units) ``[N, T, A]``.
        adv: Standardised advantages ``[N, T]``.
        valid: Valid steps ``[N, T]``.
        logp_old: Log-probabilities under the sampling policy ``[N, T]``.
        dist_old: Distribution parameters of the sampling policy ``[N, T, 2A]``.
    """

    obs: jax.Array
    actions: jax.Array
    adv: jax.Array
    valid: jax.Array
    logp_old: jax.Array
    dist_old: jax.Array


class MAMLRLState(NamedTuple):
    """Meta-training state.

    Attributes:
        params: Policy parameters ``{"mean": MLP params, "log_std": [A]}``.
        opt_state: Adam state for ``outer="ppo"`` (empty for TRPO).
        key: PRNG key.
        update: Meta-iterations done (int32 scalar).
    """

    params: PyTree
    opt_state: Any
    key: jax.Array
    update: jax.Array


def make_maml_rl(config: MAMLRLConfig, tasks: TaskDistribution) -> Algorithm:
    """Builds MAML-RL for a pure-JAX task distribution with a continuous action box.

    The meta-test adapts each held-out task with ``points`` policy-gradient steps on fresh
    episodes and records the mean episode return (and success rate) after 0..points steps.
    ``parts``: ``adapt(params, key, task, num_steps) -> (params_k, returns [k+1], success)``.

    Raises:
        ConfigError: ``tasks`` is not a pure-JAX RL distribution with a ``Box`` action space.
    """
    if not isinstance(tasks, TaskDistribution):
        raise ConfigError(
            f"maml-rl trains on RL task distributions; {tasks.name} is a supervised few-shot task "
            f"(use maml)"
        )
    host = is_host(tasks.env)
    env = tasks.env
    example = tasks.sample_one(jax.random.key(0))
    space = env.action_space(example)
    if not isinstance(space, Box):
        raise ConfigError(
            f"maml-rl needs continuous actions (a Gaussian policy); {tasks.name} has {space}"
        )
    act_dim = space.shape[0]
    low = jnp.broadcast_to(jnp.asarray(space.low, jnp.float32), space.shape)
    high = jnp.broadcast_to(jnp.asarray(space.high, jnp.float32), space.shape)
    oracle = config.variant == "oracle"
    task_dim = task_features(example).shape[0]
    obs_dim = env.observation_space(example).shape[0] + (task_dim if oracle else 0)
    horizon = env.horizon
    dist = DiagGaussian(act_dim)
    mlp = MLP(tuple(config.hidden_sizes), act_dim, kernel_init=nn.initializers.glorot_uniform())
    inner = config.train_inner_steps
    steps_per_update = config.meta_batch_size * config.episodes_per_task * horizon * (inner + 1)
    num_updates = max(1, config.total_steps // steps_per_update)
    optimizer = optax.adam(config.ppo_lr)

    def policy(params: PyTree, obs: jax.Array) -> jax.Array:
        mean = mlp.apply(params["mean"], obs)
        log_std = jnp.maximum(params["log_std"], MIN_LOG_STD)
        return jnp.concatenate([mean, jnp.broadcast_to(log_std, mean.shape)], axis=-1)

    def inputs(obs: jax.Array, task: PyTree) -> jax.Array:
        if not oracle:
            return obs
        feats = task_features(task).astype(obs.dtype)
        return jnp.concatenate([obs, jnp.broadcast_to(feats, (*obs.shape[:-1], task_dim))], -1)

    def sample(key: jax.Array, params: PyTree, task: PyTree, n: int) -> Episodes:
        params = jax.lax.stop_gradient(params)

        def act(k, obs):
            a = dist.sample(k, policy(params, inputs(obs, task)))
            env_a = low + (jnp.clip(a, -1.0, 1.0) + 1.0) * 0.5 * (high - low)
            return a, env_a

        return sample_episodes(key, env, task, act, n)

    def process(params: PyTree, eps: Episodes, task: PyTree) -> Batch:
        params = jax.lax.stop_gradient(params)
        done = jnp.zeros_like(eps.valid)
        g = jax.vmap(lambda r, d: discounted_returns(r, d, config.gamma))(eps.rewards, done)
        feats = jax.vmap(lambda o: linear_features(o, horizon))(eps.obs)
        w = fit_linear_baseline(feats, g, eps.valid)
        adv = g - feats @ w
        mean = masked_mean(adv, eps.valid)
        std = jnp.sqrt(masked_mean((adv - mean) ** 2, eps.valid))
        adv = jnp.where(eps.valid, (adv - mean) / (std + 1e-8), 0.0)
        obs = inputs(eps.obs, task)
        d_old = policy(params, obs)
        return Batch(obs, eps.actions, adv, eps.valid, dist.log_prob(d_old, eps.actions), d_old)

    def inner_loss(params: PyTree, batch: Batch) -> jax.Array:
        logp = dist.log_prob(policy(params, batch.obs), batch.actions)
        return vpg_surrogate(logp, batch.adv, batch.valid)

    def adapted(params: PyTree, batches: list[Batch], lrs: list[float]) -> PyTree:
        for batch, lr in zip(batches, lrs, strict=True):
            params = inner_step(inner_loss, params, batch, lr, first_order=config.first_order)
        return params

    def collect(key: jax.Array, params: PyTree, task: PyTree):
        """Pre-update batches of the inner steps and the post-update batch of one task."""
        keys = jax.random.split(key, inner + 1)
        batches, returns = [], []
        current = params
        for j in range(inner + 1):
            eps = sample(keys[j], current, task, config.episodes_per_task)
            batch = process(current, eps, task)
            returns.append(eps.returns.mean())
            if j < inner:
                batches.append(batch)
                current = inner_step(inner_loss, current, batch, config.inner_lr)
        return batches, batch, jnp.stack(returns)

    def task_objective(params, batches, post):
        new = adapted(params, batches, [config.inner_lr] * inner)
        d_new = policy(new, post.obs)
        logp = dist.log_prob(d_new, post.actions)
        kl = masked_mean(dist.kl(post.dist_old, d_new), post.valid)
        return logp, kl, d_new

    def meta_objective(params, data, task_loss):
        """Mean over tasks of ``task_loss(logp, post)`` of the adapted policies, and their KL."""
        batches, post = data

        def one(batches, post):
            logp, kl, _ = task_objective(params, batches, post)
            return task_loss(logp, post), kl

        loss, kl = jax.vmap(one)(batches, post)
        return loss.mean(), kl.mean()

    def surrogate(params, data):
        return meta_objective(
            params, data, lambda logp, b: ratio_surrogate(logp, b.logp_old, b.adv, b.valid)
        )

    def ppo_loss(params, data):
        return meta_objective(
            params,
            data,
            lambda logp, b: clipped_surrogate(logp, b.logp_old, b.adv, b.valid, config.clip_eps),
        )

    def init(key: jax.Array) -> MAMLRLState:
        k_net, key = jax.random.split(key)
        params = {
            "mean": mlp.init(k_net, jnp.zeros((1, obs_dim))),
            "log_std": jnp.full((act_dim,), jnp.log(config.init_std), jnp.float32),
        }
        opt_state = optimizer.init(params) if config.outer == "ppo" else ()
        return MAMLRLState(params, opt_state, key, jnp.zeros((), jnp.int32))

    def learn(state: MAMLRLState, key: jax.Array, batches, post, returns):
        """The outer step on collected data: ``batches`` (per inner step) and ``post``."""
        data = (batches, post)
        metrics = {"return_pre": returns[:, 0].mean(), "return_post": returns[:, -1].mean()}
        if config.outer == "trpo":
            # The Fisher metric of the first ``fvp_tasks`` tasks (a random subset: tasks are
            # sampled independently), each task's samples weighted by its share of the mean KL.
            n_fvp = config.fvp_tasks or config.meta_batch_size
            fvp_batches, fvp_post = jax.tree.map(lambda x: x[:n_fvp], (batches, post))

            def dists(params):
                return jax.vmap(lambda b, p: task_objective(params, b, p)[2])(fvp_batches, fvp_post)

            valid = fvp_post.valid
            weight = valid / jnp.maximum(valid.sum((1, 2), keepdims=True), 1.0)
            weight = weight[..., None] / n_fvp
            params, info = trust_region_update(
                state.params,
                lambda p: surrogate(p, data)[0],
                lambda p: surrogate(p, data)[1],
                dists,
                lambda u: dist.fisher_product(fvp_post.dist_old, u) * weight,
                config.trust_region,
            )
            opt_state = state.opt_state
            metrics.update(
                loss_before=info.loss_before,
                loss_after=info.loss_after,
                kl=info.kl,
                backtracks=info.backtracks.astype(jnp.float32),
                accepted=info.accepted.astype(jnp.float32),
            )
        else:

            def epoch(carry, _):
                params, opt_state = carry
                (loss, kl), grads = jax.value_and_grad(ppo_loss, has_aux=True)(params, data)
                updates, opt_state = optimizer.update(grads, opt_state, params)
                return (optax.apply_updates(params, updates), opt_state), (loss, kl)

            (params, opt_state), (losses, kls) = jax.lax.scan(
                epoch, (state.params, state.opt_state), None, length=config.ppo_epochs
            )
            metrics.update(loss_before=losses[0], loss_after=losses[-1], kl=kls[-1])
        metrics["log_std"] = params["log_std"].mean()
        return MAMLRLState(params, opt_state, key, state.update + 1), metrics

    def update(state: MAMLRLState) -> tuple[MAMLRLState, dict[str, jax.Array]]:
        key, k_tasks, k_collect = jax.random.split(state.key, 3)
        batch_tasks = tasks.sample(k_tasks, config.meta_batch_size)
        keys = jax.random.split(k_collect, config.meta_batch_size)
        batches, post, returns = jax.vmap(collect, in_axes=(0, None, 0))(
            keys, state.params, batch_tasks
        )
        return learn(state, key, batches, post, returns)

    def adapt(params: PyTree, key: jax.Array, task: PyTree, num_steps: int):
        keys = jax.random.split(key, num_steps + 1)
        returns, success = [], []
        for k in range(num_steps + 1):
            eps = sample(keys[k], params, task, config.test_episodes)
            returns.append(eps.returns.mean())
            success.append((eps.success.max(axis=1) > 0).mean())
            if k < num_steps:
                lr = config.inner_lr * (1.0 if k == 0 else config.test_later_lr_scale)
                params = inner_step(inner_loss, params, process(params, eps, task), lr)
        return params, jnp.stack(returns), jnp.stack(success)

    def meta_test(params: PyTree, key: jax.Array, test_tasks: PyTree, num_steps: int):
        n = jax.tree.leaves(test_tasks)[0].shape[0]
        keys = jax.random.split(key, n)
        _, returns, success = jax.vmap(lambda k, t: adapt(params, k, t, num_steps))(
            keys, test_tasks
        )
        return MetaTestResult(returns, success, axis="gradient step")

    parts = {"adapt": adapt}
    if host:
        update, meta_test, parts = _host_phases(
            config, tasks, policy, inputs, process, inner_loss, learn, dist, low, high
        )

    return Algorithm(
        config=config,
        tasks=tasks,
        init=init,
        update=update,
        meta_test=meta_test,
        num_updates=num_updates,
        steps_per_update=steps_per_update,
        jittable=not host,
        progress=("return_post", "post-update return"),
        default_points=config.test_steps,
        variant=config.variant,
        progress_point=config.train_inner_steps,
        parts=parts,
        axis="gradient step",
        watch=(Watch("kl", above=1.0),),
    )


def _host_phases(config, tasks, policy, inputs, process, inner_loss, learn, dist, low, high):
    """``update``, ``meta_test`` and the host pieces for a host-stepped task distribution.

    The episodes of every task of a meta-batch are sampled as one host batch (the policy jitted
    and called once per step on all of them); processing, the inner steps and the outer update
    are jitted and run between the host phases, with the same mathematics as the pure-JAX path.

    The pieces (``parts["host"]``, for agents that step environments themselves, e.g.
    Meta-World's official evaluation): ``act(key, params [M], tasks [M], obs [M, N, D]) ->
    (actions, env_actions)``, ``process(params [M], episodes [M, N, T], tasks [M]) -> batch``,
    ``first_step(params, batch)`` and ``later_step(params, batch)`` (the meta-test's inner steps
    at α and α·``test_later_lr_scale``) and ``tile(params, M)``.
    """
    env, m = tasks.env, config.meta_batch_size

    def act(key, params, task, obs):
        def one(k, p, t, o):
            a = dist.sample(k, policy(p, inputs(o, t)))
            return a, low + (jnp.clip(a, -1.0, 1.0) + 1.0) * 0.5 * (high - low)

        return jax.vmap(one)(jax.random.split(key, obs.shape[0]), params, task, obs)

    act = jax.jit(act)
    process_all = jax.jit(jax.vmap(process))

    def adapt_step(lr):
        return jax.jit(jax.vmap(lambda p, b: inner_step(inner_loss, p, b, lr)))

    inner_train = adapt_step(config.inner_lr)
    learn = jax.jit(learn)
    sample_tasks = jax.jit(tasks.sample, static_argnums=1)

    def sample(key, params, task, n):
        return host_sample_episodes(key, env, task, lambda k, o: act(k, params, task, o), n)

    def tile(params, n):
        return jax.tree.map(lambda x: jnp.broadcast_to(x, (n, *x.shape)), params)

    def update(state: MAMLRLState) -> tuple[MAMLRLState, dict[str, jax.Array]]:
        key, k_tasks, k_collect = jax.random.split(state.key, 3)
        batch_tasks = sample_tasks(k_tasks, m)
        keys = jax.random.split(k_collect, config.train_inner_steps + 1)
        current, batches, returns = tile(state.params, m), [], []
        for j in range(config.train_inner_steps + 1):
            eps = sample(keys[j], current, batch_tasks, config.episodes_per_task)
            batch = process_all(current, eps, batch_tasks)
            returns.append(eps.returns.mean(axis=1))
            if j < config.train_inner_steps:
                batches.append(batch)
                current = inner_train(current, batch)
        return learn(state, key, batches, batch, jnp.stack(returns, axis=1))

    later = adapt_step(config.inner_lr * config.test_later_lr_scale)

    def meta_test(params: PyTree, key: jax.Array, test_tasks: PyTree, num_steps: int):
        n = jax.tree.leaves(test_tasks)[0].shape[0]
        keys = jax.random.split(key, num_steps + 1)
        current, returns, success = tile(params, n), [], []
        for k in range(num_steps + 1):
            eps = sample(keys[k], current, test_tasks, config.test_episodes)
            returns.append(eps.returns.mean(axis=1))
            success.append((eps.success.max(axis=2) > 0).mean(axis=1))
            if k < num_steps:
                batch = process_all(current, eps, test_tasks)
                current = (inner_train if k == 0 else later)(current, batch)
        return MetaTestResult(
            jnp.stack(returns, axis=1), jnp.stack(success, axis=1), axis="gradient step"
        )

    host = {
        "act": act,
        "process": process_all,
        "first_step": inner_train,
        "later_step": later,
        "tile": tile,
    }
    return update, meta_test, {"host": host}
