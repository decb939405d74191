"""RL² through the host collector: the same run as through lax.scan, checkpointed and resumed."""

import dataclasses

import jax
import numpy as np
import pytest

from quickstudy import runner
from quickstudy.algorithms.rl2 import RL2_PPO, RL2Config
from quickstudy.errors import ConfigError

CONFIG = RL2Config(
    total_steps=4 * 8 * 50,
    num_envs=8,
    hidden_size=16,
    rollout_len=50,
    ppo=dataclasses.replace(RL2_PPO, num_minibatches=2),
)
SETTINGS = runner.RunSettings(seed=2, chunk_updates=3, checkpoint_every=1, eval_tasks=6)


def test_host_and_scan_collectors_train_the_same_rl2(tmp_path):
    runs = {
        task: runner.create_run("rl2", task, CONFIG, SETTINGS, run_dir=tmp_path / task)
        for task in ("nav2d", "nav2d-numpy")
    }
    assert runs["nav2d"].algo.jittable and not runs["nav2d-numpy"].algo.jittable
    states = {task: runner.train(run) for task, run in runs.items()}
    for a, b in zip(
        jax.tree.leaves(states["nav2d"].params),
        jax.tree.leaves(states["nav2d-numpy"].params),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # The meta-tests of both paths: tests/rollout/test_host.py.


def test_a_host_run_interrupted_mid_chunk_resumes_bit_exactly(tmp_path):
    full = runner.train(runner.create_run("rl2", "nav2d-numpy", CONFIG, SETTINGS, tmp_path / "a"))
    part = runner.create_run("rl2", "nav2d-numpy", CONFIG, SETTINGS, run_dir=tmp_path / "b")
    runner.train(part, stop_after_updates=2)
    resumed = runner.train(runner.open_run(tmp_path / "b"))
    for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(resumed), strict=True):
        a, b = (
            jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x
            for x in (a, b)
        )
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    rows = [(tmp_path / d / "metrics.jsonl").read_text() for d in ("a", "b")]
    assert rows[0] == rows[1]


def test_a_host_algorithm_is_not_one_program():
    run_algo = runner.registry.build("rl2", "nav2d-numpy", CONFIG)
    with pytest.raises(ConfigError, match="host"):
        runner.train_program(run_algo)
