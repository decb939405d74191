"""One PPO gradient step of the default RL² configuration, for one seed and vmapped over S seeds.

    XLA_FLAGS=--xla_cpu_multi_thread_eigen=false taskset -c 0 \
        python experiments/rl2_vmap_seeds_grad.py [--seeds 1 2 4] [--profile 4]

The step is ``experiments/rl2_grad_profile.py``'s (32 trials of 10 steps, GRU 64 policy and
critic cores, gradient + Adam), repeated 16 times inside one ``lax.scan``; "S = 0" is the plain
step, "S = n" the step ``vmap``-ed over n stacked parameter sets (one batch per seed). With
``--profile S`` it records S's step with ``jax.profiler`` and prints the slowest kernels. The
findings (issue 25's ``vmap`` target) are in docs/results/performance.md.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import optax
from rl2_grad_profile import kernel_times, minibatch, time_body

from quickstudy import tasks as task_registry
from quickstudy.algorithms.rl2 import RL2Config, make_rl2
from quickstudy.learners.base import linear_decay
from quickstudy.learners.ppo import group_optimizer, ppo_loss


def build():
    """The default configuration's policy, optimizer, one minibatch and its gradient step."""
    config = RL2Config()
    algorithm = make_rl2(config, task_registry.make("bandit-k5-n10"))
    policy = algorithm.parts["policy"]
    example = algorithm.tasks.sample_one(jax.random.key(0))
    batch = minibatch(policy, algorithm.parts["env"].observation_space(example).shape[0])
    optimizer = group_optimizer(config.ppo, policy, linear_decay(3e-4, True, 10**6))
    grad_fn = jax.grad(ppo_loss, has_aux=True)

    def step(params, opt_state, batch):
        grads, _ = grad_fn(params, batch, policy, config.ppo)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    return policy, optimizer, batch, step


def inputs(policy, optimizer, batch, seeds: int):
    """Parameters, optimizer state and batch for ``seeds`` stacked seeds (0: unstacked)."""
    keys = jax.random.split(jax.random.key(0), max(seeds, 1))
    if not seeds:
        params = policy.init(keys[0])
        return params, optimizer.init(params), batch
    params = jax.vmap(policy.init)(keys)
    stacked = jax.tree.map(lambda x: jnp.stack([x] * seeds), batch)
    return params, jax.vmap(optimizer.init)(params), stacked


def time_step(step, params, opt_state, batch, seeds: int) -> float:
    """ms per gradient step (``rl2_grad_profile.time_body``: 16 steps per call, min of 7)."""
    body = jax.vmap(step) if seeds else step
    return time_body(lambda p, o: body(p, o, batch), params, opt_state)


def profile(step, params, opt_state, batch, seeds: int, top: int = 20, calls: int = 10) -> None:
    """Prints the slowest kernels of the vmapped step, µs per step (tracing adds overhead)."""
    fn = jax.jit(lambda p, o: jax.vmap(step)(p, o, batch))
    total, count, origin = kernel_times(fn, (params, opt_state), calls)
    print(f"\nS = {seeds}: {'us':>8} {'calls':>6}  kernel  <- operation")
    for name, us in total.most_common(top):
        print(f"{us:8.1f} {count[name]:6.0f}  {name}  <- {origin.get(name, 'loop')[-90:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 4])
    parser.add_argument("--profile", type=int, default=0, help="profile this many seeds (0: no)")
    args = parser.parse_args()
    policy, optimizer, batch, step = build()
    for seeds in args.seeds:
        ms = time_step(step, *inputs(policy, optimizer, batch, seeds), seeds)
        print(f"S = {seeds}: {ms:.3f} ms per gradient step")
    if args.profile:
        profile(step, *inputs(policy, optimizer, batch, args.profile), args.profile)


if __name__ == "__main__":
    main()
