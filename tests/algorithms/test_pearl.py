"""PEARL end to end in miniature: its budget, its two collectors, resume, meta-test, bad configs."""

import jax
import numpy as np
import pytest

from quickstudy import runner
from quickstudy.algorithms import registry
from quickstudy.errors import ConfigError

TINY = {
    "total_steps": 80 * 200 + 3 * 5 * (200 + 60 + 200),
    "num_steps_posterior": 60,
    "num_train_steps_per_itr": 3,
    "meta_batch": 4,
    "batch_size": 16,
    "embedding_batch_size": 8,
    "replay_size": 80 * 1000,
    "sac": {"hidden_sizes": (16, 16)},
    "encoder": {"encoder_hidden": (16,), "latent_dim": 3},
}
SETTINGS = runner.RunSettings(
    seed=3, chunk_updates=2, checkpoint_every=1, eval_tasks=4, eval_every=1
)


def _config(task="point-robot", **overrides):
    return registry.get("pearl").config(task, overrides={**TINY, **overrides})


def _leaves(tree):
    for x in jax.tree.leaves(tree):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        yield np.asarray(x)


def test_the_budget_counts_the_initial_collection_and_every_phase():
    algo = registry.build("pearl", "point-robot", _config())
    assert algo.initial_steps == 80 * 200 and algo.steps_per_update == 5 * (200 + 60 + 200)
    assert algo.num_updates == 3
    state = jax.jit(algo.init)(jax.random.key(0))
    assert int(state.env_steps) == 16_000
    np.testing.assert_array_equal(state.rl_replay.size(), 200)
    state, metrics = jax.jit(algo.update)(state)
    assert float(metrics["env_steps"]) == 16_000 + algo.steps_per_update
    # five tasks got 460 RL transitions and 260 encoder ones (its buffer was emptied first)
    grew = np.flatnonzero(np.asarray(state.rl_replay.size()) > 200)
    assert len(grew) == 5
    np.testing.assert_array_equal(state.rl_replay.size()[grew], 660)
    np.testing.assert_array_equal(state.enc_replay.size()[grew], 260)
    for name in ("critic_loss", "kl", "return_prior", "return_posterior"):
        assert np.isfinite(float(metrics[name])), name


def test_the_meta_test_explores_with_the_prior_then_samples_the_posterior():
    algo = registry.build("pearl", "point-robot", _config(exploration_episodes=2))
    params = jax.jit(algo.init)(jax.random.key(0)).params
    result = jax.jit(algo.meta_test, static_argnums=3)(
        params, jax.random.key(1), algo.tasks.test_tasks(6), 4
    )
    assert result.values.shape == (6, 4) and result.success.shape == (6, 4)
    std = np.asarray(result.extras["posterior_std"])
    np.testing.assert_array_equal(std[:, :2], 1.0)  # the prior while exploring
    assert (std[:, 2:] < 1.0).all() and (std[:, 3] <= std[:, 2] + 1e-6).all()
    np.testing.assert_array_equal(result.extras["lengths"], 20)


def test_each_exploration_episode_draws_its_own_z_from_the_prior():
    out = {}
    for explore in (1, 2):
        algo = registry.build("pearl", "point-robot", _config(exploration_episodes=explore))
        assert algo.config.deterministic_eval
        params = jax.jit(algo.init)(jax.random.key(0)).params
        tasks = algo.tasks.test_tasks(6)
        out[explore] = np.asarray(algo.meta_test(params, jax.random.key(1), tasks, 3).values)
    # The point robot starts at the origin and the actor acts with its mean: one z for both
    # exploration episodes would repeat the first episode exactly.
    assert (out[2][:, 0] != out[2][:, 1]).all()
    np.testing.assert_array_equal(out[2][:, 0], out[1][:, 0])  # the first draw is unchanged


def test_host_and_jax_collectors_train_the_same_pearl():
    out = {}
    for task in ("point-robot", "point-robot-numpy"):
        algo = registry.build("pearl", task, _config(total_steps=16_000 + 2 * 2300))
        init = jax.jit(algo.init) if algo.jittable else algo.init
        update = jax.jit(algo.update) if algo.jittable else algo.update
        state = init(jax.random.key(0))
        for _ in range(algo.num_updates):
            state, _ = update(state)
        test = jax.jit(algo.meta_test, static_argnums=3) if algo.jittable else algo.meta_test
        out[task] = state, test(state.params, jax.random.key(1), algo.tasks.test_tasks(5), 3)
    (s_jax, r_jax), (s_host, r_host) = out["point-robot"], out["point-robot-numpy"]
    for a, b in zip(_leaves(s_jax), _leaves(s_host), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(r_jax.values, r_host.values, rtol=1e-4, atol=1e-4)


def test_an_interrupted_run_resumes_bit_exactly_buffers_included(tmp_path):
    config = _config()
    full = runner.train(runner.create_run("pearl", "point-robot", config, SETTINGS, tmp_path / "a"))
    part = runner.create_run("pearl", "point-robot", config, SETTINGS, tmp_path / "b")
    runner.train(part, stop_after_updates=1)
    resumed = runner.train(runner.open_run(tmp_path / "b"))
    for a, b in zip(_leaves(full), _leaves(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.asarray(full.rl_replay.added).sum() == 80 * 200 + 3 * 5 * 460
    rows = [(tmp_path / d / "metrics.jsonl").read_text() for d in ("a", "b")]
    assert rows[0] == rows[1]
    assert '"step": 22900' in rows[0]  # the initial collection counts in the step axis
    curves = [runner.read_curve(tmp_path / d) for d in ("a", "b")]
    assert curves[0] == curves[1]  # the learning curve survives the interruption unchanged
    assert [r["update"] for r in curves[0]] == [0, 1, 2, 3]
    assert [r["step"] for r in curves[0]] == [16_000, 18_300, 20_600, 22_900]
    assert len(curves[0][0]["mean"]) == 3 and curves[0][0]["axis"] == "episode"


def test_the_oracle_acts_on_the_task_parameters():
    algo = registry.build("pearl", "point-robot", _config(variant="oracle"))
    state = jax.jit(algo.init)(jax.random.key(0))
    state, metrics = jax.jit(algo.update)(state)
    assert float(metrics["kl"]) == 0.0
    # the actor reads obs (2) + the goal (2), not a latent of 3
    first = jax.tree.leaves(state.params.sac.actor)
    assert any(np.shape(x)[0] == 4 for x in first if np.ndim(x) == 2)
    result = algo.meta_test(state.params, jax.random.key(1), algo.tasks.test_tasks(3), 2)
    np.testing.assert_array_equal(result.extras["posterior_std"], 0.0)


@pytest.mark.parametrize(
    ("task", "overrides", "match"),
    [
        ("bandit-k5-n10", {}, "continuous"),
        ("point-robot", {"dense_critic": True}, "dense_reward"),
        ("point-robot", {"num_tasks_sample": 81}, "num_tasks_sample"),
        ("point-robot", {"replay_size": 2 * 10**9}, "GiB"),
    ],
)
def test_configs_that_cannot_run_are_refused_by_name(task, overrides, match):
    spec = registry.get("pearl")
    with pytest.raises(ConfigError, match=match):
        config = spec.config(task, overrides=overrides)
        registry.build("pearl", task, config)


def test_the_sparse_robots_critic_reads_the_dense_reward_like_the_authors():
    config = registry.get("pearl").config("sparse-point-robot", overrides=TINY)
    assert config.dense_critic and config.sac.gamma == 0.9 and config.encoder.kl_weight == 1.0
    algo = registry.build("pearl", "sparse-point-robot", config)
    state = jax.jit(algo.init)(jax.random.key(0))
    rl, enc = state.rl_replay, state.enc_replay
    assert float(rl.reward[:, :200].max()) <= 0.0  # dense: minus the distance
    assert float(enc.reward[:, :200].min()) >= 0.0  # sparse: 0 outside the goal radius


def test_the_exploration_pictures_draw_from_a_trained_run(tmp_path):
    from quickstudy.reproduce import pearl_pictures

    settings = runner.RunSettings(seed=0, chunk_updates=1, checkpoint_every=1)
    config = _config(total_steps=16_000 + 2300)
    runner.train(runner.create_run("pearl", "point-robot", config, settings, tmp_path / "r"))
    args = [str(tmp_path / "r"), "--out", str(tmp_path / "pics"), "--tasks", "2"]
    assert pearl_pictures.main([*args, "--episodes", "3"]) == 0
    for name in ("exploration.png", "posterior.png"):
        assert (tmp_path / "pics" / name).stat().st_size > 10_000
    run = runner.open_run(tmp_path / "r")
    params = runner.load_state(run, runner.latest_checkpoint(run.path / "checkpoints")).params
    paths, returns, pool = pearl_pictures.exploration_episodes(
        run, params, run.algo.tasks.test_tasks(2), 3
    )
    assert paths.shape == (2, 3, 21, 2) and returns.shape == (2, 3) and pool.shape[:2] == (2, 60)
    np.testing.assert_allclose(paths[:, :, 0], 0.0)  # every episode starts at the origin
