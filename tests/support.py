"""Reference facts that several tests check results against."""

import numpy as np


def nav2d_return_bound(goals: np.ndarray, horizon: int = 100, max_action: float = 0.1):
    """The highest episode return any policy can get on each nav2d goal ``[N, 2]`` -> ``[N]``.

    After ``t`` steps the point is at most ``t * max_action * sqrt(2)`` from the origin, so the
    reward of step ``t`` (minus the distance to the goal) is at most
    ``-max(0, |g| - t * max_action * sqrt(2))``; an episode that ends early only drops terms.
    """
    reach = max_action * np.sqrt(2.0) * np.arange(1, horizon + 1)
    dist = np.linalg.norm(np.asarray(goals, np.float64), axis=-1)
    return -np.maximum(dist[:, None] - reach[None, :], 0.0).sum(axis=1)


def two_armed_bandit():
    """Bernoulli bandits of 2 arms and 10 pulls (random play: 5.0, the best arm: 6.67)."""
    from quickstudy.envs.bandit import BernoulliBandit, sample_bandit
    from quickstudy.tasks.distribution import TaskDistribution

    return TaskDistribution(
        name="bandit-k2-n10",
        env=BernoulliBandit(2),
        description="test",
        reward="",
        episodes=10,
        sampler=lambda key, n: sample_bandit(key, n, 2),
    )


def leaves(tree):
    """The leaves of ``tree`` as NumPy arrays, PRNG keys as their data (for exact comparisons)."""
    import jax

    for x in jax.tree.leaves(tree):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        yield np.asarray(x)


def train_on_both_collectors(name, config_of, points, updates=2, test_tasks=5):
    """Trains ``name`` briefly on ``point-robot`` (JAX) and its NumPy twin (host-stepped).

    Returns:
        ``{task: (state, meta-test result)}`` for the two tasks, same seeds.
    """
    import jax

    from quickstudy.algorithms import registry

    out = {}
    for task in ("point-robot", "point-robot-numpy"):
        algo = registry.build(name, task, config_of(task))
        init = jax.jit(algo.init) if algo.jittable else algo.init
        update = jax.jit(algo.update) if algo.jittable else algo.update
        state = init(jax.random.key(0))
        for _ in range(updates):
            state, _ = update(state)
        test = jax.jit(algo.meta_test, static_argnums=3) if algo.jittable else algo.meta_test
        key = jax.random.key(1)
        out[task] = state, test(state.params, key, algo.tasks.test_tasks(test_tasks), points)
    return out


def run_on_two_devices(script: str, *args: str) -> dict:
    """Runs ``script`` in a fresh interpreter whose JAX sees two CPU devices.

    The device count is fixed when JAX starts, hence the new process. It uses the persistent
    compilation cache, as the suite's own process does (conftest.py).

    Returns:
        The script's last line of output, read as JSON.
    """
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    # First: XLA stops reading its flags at a token it does not parse.
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2 " + env.get("XLA_FLAGS", "")
    preamble = "from quickstudy import compilation_cache\ncompilation_cache.enable()\n"
    proc = subprocess.run(
        [sys.executable, "-c", preamble + script, *args], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
