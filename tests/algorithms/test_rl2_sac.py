"""The recurrent SAC baseline in miniature: its replay of segments, both collectors, resume."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from support import leaves, train_on_both_collectors

from quickstudy import runner
from quickstudy.algorithms import registry
from quickstudy.algorithms.rl2_sac import segment_memory
from quickstudy.errors import ConfigError
from quickstudy.networks.distributions import TanhGaussian
from quickstudy.objectives.sac import squashed_gaussian_sample
from quickstudy.rollout.replay import (
    SequenceReplay,
    sequence_replay_add,
    sequence_replay_init,
    sequence_replay_sample,
)

TINY = {
    "total_steps": 3 * 4 * 60,
    "num_envs": 4,
    "memory_size": 8,
    "train_ratio": 0.02,
    "batch_segments": 3,
    "batch_steps": 5,
    "replay_size": 10 * 60,
    "sac": {"hidden_sizes": (16, 16)},
}
SETTINGS = runner.RunSettings(
    seed=3, chunk_updates=2, checkpoint_every=1, eval_tasks=4, eval_every=1
)


def _config(task="point-robot", **overrides):
    return registry.get("rl2-sac").config(task, overrides={**TINY, **overrides})


def test_the_squashed_gaussian_is_sacs_sampler_rescaled_to_the_action_bounds():
    dist = TanhGaussian(2, low=-3.0, high=1.0)
    params = jnp.array([[0.3, -0.5, -1.0, 0.2]])
    key = jax.random.key(0)
    unit, log_prob = squashed_gaussian_sample(key, params[:, :2], params[:, 2:])
    action = dist.sample(key, params)
    np.testing.assert_allclose(action, -3.0 + (unit + 1.0) * 2.0, rtol=1e-6)
    np.testing.assert_allclose(dist.unit(action), unit, rtol=1e-5, atol=1e-6)
    # the rescaling stretches each dimension by 2: its Jacobian takes log 2 per dimension
    np.testing.assert_allclose(dist.log_prob(params, action), log_prob - 2 * np.log(2.0), rtol=1e-4)
    expected_mode = -3.0 + (np.tanh([[0.3, -0.5]]) + 1) * 2
    np.testing.assert_allclose(dist.mode(params), expected_mode, rtol=1e-6)


def test_the_sequence_replay_is_a_ring_of_segments():
    buffer = sequence_replay_init(capacity=3, length=2, obs_dim=1, act_dim=1, carry_dim=1)

    def segments(first):
        n = 2
        values = np.arange(first, first + n, dtype=np.float32)
        return SequenceReplay(
            obs=np.repeat(values[:, None, None], 3, axis=1),
            start=np.zeros((n, 3), bool),
            carry=values[:, None],
            action=np.zeros((n, 2, 1)),
            reward=np.repeat(values[:, None], 2, axis=1),
            done=np.zeros((n, 2)),
            added=0,
        )

    buffer = sequence_replay_add(buffer, segments(0))
    assert int(buffer.size()) == 2
    buffer = sequence_replay_add(buffer, segments(2))  # segment 3 overwrites segment 0
    assert int(buffer.size()) == 3 and int(buffer.added) == 4
    np.testing.assert_array_equal(buffer.carry[:, 0], [3, 1, 2])
    drawn = sequence_replay_sample(buffer, jax.random.key(0), 50)
    assert set(np.asarray(drawn.carry[:, 0]).tolist()) == {1, 2, 3}
    np.testing.assert_array_equal(drawn.reward[:, 0], drawn.carry[:, 0])
    longer = sequence_replay_init(capacity=3, length=4, obs_dim=1, act_dim=1, carry_dim=1)
    with pytest.raises(ConfigError, match="segments of 2 steps"):
        sequence_replay_add(longer, segments(0))


def test_replayed_segments_line_up_with_what_the_policy_saw():
    algo = registry.build("rl2-sac", "point-robot", _config())
    state = jax.jit(algo.init)(jax.random.key(0))
    params0 = algo.parts["policy_params"](state.params)
    state, metrics = jax.jit(algo.update)(state)
    replay = state.replay
    # the critics' targets read a Polyak copy of the GRU: it trails the trained one
    moved = [
        (float(jnp.linalg.norm(t - a)), float(jnp.linalg.norm(e - a)))
        for t, e, a in zip(
            jax.tree.leaves(state.params.target_encoder),
            jax.tree.leaves(state.params.encoder),
            jax.tree.leaves(params0["encoder"]),
            strict=True,
        )
    ]
    assert all(0.0 < t < 0.1 * e for t, e in moved)
    assert int(replay.size()) == 4 and replay.obs.shape == (10, 61, 2 + 2 + 2)
    seg = jax.tree.map(lambda x: x[:4], replay._replace(added=jnp.zeros((10,))))
    # every segment is one whole trial: it starts one, and the following one starts after it
    assert bool(seg.start[:, 0].all()) and bool(seg.start[:, -1].all())
    assert not bool(seg.start[:, 1:-1].any())
    # nothing is terminal: the end of a trial bootstraps into the next one's first step
    assert float(seg.done.sum()) == 0.0
    # the input after step t carries that step's action and reward (RL²'s trial observation)
    dist = algo.parts["policy"].distribution
    np.testing.assert_allclose(
        dist.unit(seg.obs[:, 1:-1, 2:4]), seg.action[:, :-1], rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(seg.obs[:, 1:-1, 4], seg.reward[:, :-1], rtol=1e-6)
    # the memory recomputed from the replay is the one the collecting policy carried
    gru = algo.parts["gru"]
    h = segment_memory(gru, params0["encoder"], seg)
    carry, outs = algo.parts["policy"].init_carry(4), []
    for t in range(60):
        carry, _ = algo.parts["policy"].apply(
            params0, carry, seg.obs[:, t][None], seg.start[:, t][None]
        )
        outs.append(carry)
    np.testing.assert_allclose(h[:, :60], jnp.stack(outs, 1), rtol=1e-5, atol=1e-6)
    for name in ("critic_loss", "actor_loss", "trial_return"):
        assert np.isfinite(float(metrics[name])), name


def test_host_and_jax_collectors_train_the_same_recurrent_sac():
    out = train_on_both_collectors("rl2-sac", _config, points=3)
    (s_jax, r_jax), (s_host, r_host) = out["point-robot"], out["point-robot-numpy"]
    for a, b in zip(
        leaves((s_jax.params, s_jax.replay)), leaves((s_host.params, s_host.replay)), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(r_jax.values, r_host.values, rtol=1e-4, atol=1e-4)


def test_an_interrupted_run_resumes_bit_exactly_replay_included(tmp_path):
    config = _config()
    full = runner.train(
        runner.create_run("rl2-sac", "point-robot", config, SETTINGS, tmp_path / "a")
    )
    part = runner.create_run("rl2-sac", "point-robot", config, SETTINGS, tmp_path / "b")
    runner.train(part, stop_after_updates=1)
    resumed = runner.train(runner.open_run(tmp_path / "b"))
    for a, b in zip(leaves(full), leaves(resumed), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(full.replay.added) == 3 * 4
    rows = [(tmp_path / d / "metrics.jsonl").read_text() for d in ("a", "b")]
    assert rows[0] == rows[1]
    curves = [runner.read_curve(tmp_path / d) for d in ("a", "b")]
    assert curves[0] == curves[1] and len(curves[0][0]["mean"]) == 3


def test_a_host_runs_checkpoints_are_meta_tested_after_the_fact_like_its_curve(tmp_path):
    run = runner.create_run(
        "rl2-sac", "point-robot-numpy", _config("point-robot-numpy"), SETTINGS, tmp_path / "r"
    )
    runner.train(run)
    rows, out = runner.evaluate_checkpoints(runner.open_run(tmp_path / "r"))
    assert [r["update"] for r in rows] == [1, 2, 3] and (out / "curve.png").exists()
    own = {r["update"]: r for r in runner.read_curve(tmp_path / "r")}
    for row in rows:
        np.testing.assert_allclose(row["mean"], own[row["update"]]["mean"], rtol=1e-5)


@pytest.mark.parametrize(
    ("task", "overrides", "match"),
    [
        ("bandit-k5-n10", {}, "continuous"),
        ("point-robot", {"replay_size": 2 * 10**9}, "GiB"),
        ("point-robot", {"train_ratio": 0.0}, "train_ratio"),
    ],
)
def test_configs_that_cannot_run_are_refused_by_name(task, overrides, match):
    spec = registry.get("rl2-sac")
    with pytest.raises(ConfigError, match=match):
        registry.build("rl2-sac", task, spec.config(task, overrides=overrides))
