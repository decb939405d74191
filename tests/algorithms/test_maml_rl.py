import jax
import jax.numpy as jnp
import numpy as np
import pytest
from support import nav2d_return_bound

from quickstudy import tasks
from quickstudy.algorithms.maml_rl import MAMLRLConfig, make_maml_rl
from quickstudy.errors import ConfigError
from quickstudy.learners.trpo import TrustRegionConfig
from quickstudy.networks.distributions import DiagGaussian
from quickstudy.rollout.episodes import host_sample_episodes, sample_episodes
from quickstudy.runner import train_program


def _small(**kw):
    base = dict(
        meta_batch_size=4,
        episodes_per_task=4,
        hidden_sizes=(16, 16),
        test_episodes=4,
        test_steps=2,
        total_steps=2 * 4 * 4 * 100 * 2,
    )
    return MAMLRLConfig(**{**base, **kw})


def _assert_same_and_different(reference, same, other):
    """``same`` equals ``reference`` leaf for leaf; ``other`` differs in some leaf."""
    ref = jax.tree.leaves(reference)
    for x, y in zip(ref, jax.tree.leaves(same), strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, z) for x, z in zip(ref, jax.tree.leaves(other), strict=True))


def test_gaussian_kl_matches_the_closed_form():
    p = jnp.array([0.3, -1.0, np.log(0.5), np.log(2.0)])
    q = jnp.array([0.0, 0.0, 0.0, 0.0])
    expected = sum(
        np.log(sq / sp) + (sp**2 + (mp - mq) ** 2) / (2 * sq**2) - 0.5
        for mp, mq, sp, sq in [(0.3, 0.0, 0.5, 1.0), (-1.0, 0.0, 2.0, 1.0)]
    )
    assert float(DiagGaussian(2).kl(p, q)) == pytest.approx(expected, rel=1e-5)
    assert float(DiagGaussian(2).kl(p, p)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"variant": "pretrained"},
        {"variant": "oracle"},
        {"outer": "ppo", "ppo_epochs": 2},
        {"first_order": True},
        {"fvp_tasks": 2},
        {"inner_steps": 2, "total_steps": 2 * 4 * 4 * 100 * 3},
    ],
)
def test_maml_rl_variants_train_and_meta_test(kw):
    algo = make_maml_rl(_small(**kw), tasks.make("nav2d"))
    inner = algo.config.train_inner_steps
    assert algo.steps_per_update == 4 * 4 * 100 * (inner + 1)
    assert algo.num_updates == algo.config.total_steps // algo.steps_per_update
    state, metrics = jax.jit(train_program(algo))(jax.random.key(0))
    assert int(state.update) == algo.num_updates
    for name in ("return_pre", "return_post", "loss_before", "kl"):
        assert np.isfinite(np.asarray(metrics[name])).all(), name
    if algo.config.outer == "trpo":
        assert float(np.max(metrics["kl"])) <= algo.config.trust_region.max_kl + 1e-6
        assert float(np.max(metrics["kl"])) > 0.0  # a step was taken
    meta_test = jax.jit(algo.meta_test, static_argnums=3)
    result = meta_test(state.params, jax.random.key(1), algo.tasks.test_tasks(3), 2)
    assert result.values.shape == (3, 3) and result.success.shape == (3, 3)
    assert result.axis == "gradient step" and result.metric == "return"
    # No policy can beat the bound set by the clipped steps (a missing action clip would).
    bound = nav2d_return_bound(algo.tasks.test_tasks(3).goal)
    assert np.all(np.asarray(result.values) <= bound[:, None] + 1e-4)


def test_oracle_sees_the_goal():
    algo = make_maml_rl(_small(variant="oracle"), tasks.make("nav2d"))
    params = algo.init(jax.random.key(0)).params
    assert params["mean"]["params"]["hidden_0"]["kernel"].shape == (4, 16)  # obs 2 + goal 2


def test_maml_rl_is_deterministic_in_the_key():
    algo = make_maml_rl(_small(), tasks.make("nav2d"))
    train = jax.jit(train_program(algo))
    a, _ = train(jax.random.key(7))
    b, _ = train(jax.random.key(7))
    c, _ = train(jax.random.key(8))
    _assert_same_and_different(a.params, b.params, c.params)


def test_meta_test_adaptation_improves_a_goal_directed_start():
    # One policy-gradient step from the initial policy already moves towards each goal, so the
    # return after one step beats the return before it (the adaptation machinery works).
    algo = make_maml_rl(_small(test_episodes=20), tasks.make("nav2d"))
    params = algo.init(jax.random.key(0)).params
    result = jax.jit(algo.meta_test, static_argnums=3)(
        params, jax.random.key(2), algo.tasks.test_tasks(10), 1
    )
    assert float(result.values[:, 1].mean()) > float(result.values[:, 0].mean()) + 2.0


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"inner_lr": 0}, "inner_lr"),
        ({"trust_region": lambda: TrustRegionConfig(max_kl=-1.0)}, "max_kl"),
        ({"meta_batch_size": 0}, "meta_batch_size"),
        ({"outer": "sgd"}, "outer"),
        ({"variant": "reptile"}, "variant"),
        ({"gamma": 1.5}, "gamma"),
        ({"hidden_sizes": ()}, "hidden_sizes"),
        ({"fvp_tasks": 41}, "fvp_tasks"),
        ({"fvp_tasks": -1}, "fvp_tasks"),
    ],
)
def test_bad_config_names_the_field(kw, field):
    with pytest.raises(ConfigError, match=field):
        MAMLRLConfig(**{k: v() if callable(v) else v for k, v in kw.items()})


def test_maml_rl_refuses_discrete_and_supervised_tasks():
    with pytest.raises(ConfigError, match="continuous"):
        make_maml_rl(MAMLRLConfig(), tasks.make("bandit-k5-n10"))
    with pytest.raises(ConfigError, match="supervised"):
        make_maml_rl(MAMLRLConfig(), tasks.make("sinusoid-k5"))


def test_host_episodes_equal_the_jax_episodes_for_the_same_policy():
    """nav2d stepped in JAX and in NumPy on the host: the same deterministic policy, same data."""
    jax_tasks, host_tasks = tasks.make("nav2d"), tasks.make("nav2d-numpy")
    goals = jax_tasks.test_tasks(3)

    def act(key, obs):  # a fixed pull towards (0.3, -0.2), no noise
        a = jnp.clip(jnp.array([0.3, -0.2]) - obs, -0.1, 0.1)
        return a, a

    host = host_sample_episodes(jax.random.key(0), host_tasks.env, goals, act, 2)
    for i in range(3):
        task = jax.tree.map(lambda x, i=i: x[i], goals)
        ref = sample_episodes(jax.random.key(1), jax_tasks.env, task, act, 2)
        for name in ("obs", "rewards", "valid"):
            np.testing.assert_allclose(
                getattr(host, name)[i], getattr(ref, name), rtol=1e-5, atol=1e-6
            )


def test_maml_rl_trains_and_meta_tests_on_host_stepped_tasks():
    config = MAMLRLConfig(meta_batch_size=3, episodes_per_task=4, test_episodes=4)
    algo = make_maml_rl(config, tasks.make("nav2d-numpy"))
    assert not algo.jittable
    state = algo.init(jax.random.key(0))
    state, metrics = algo.update(state)
    assert all(np.isfinite(np.asarray(v)).all() for v in metrics.values())
    assert int(state.update) == 1
    result = algo.meta_test(state.params, jax.random.key(1), tasks.make("nav2d").test_tasks(5), 2)
    assert result.values.shape == (5, 3)
    # nav2d returns are sums over a 100-step episode of -distance: tens, not per-step means.
    assert (np.asarray(result.values) < -5).all()


def test_fvp_on_every_task_is_the_default_step_and_a_subset_keeps_the_kl_bound():
    def one_update(**kw):
        algo = make_maml_rl(_small(**kw), tasks.make("nav2d"))
        return jax.jit(algo.update)(algo.init(jax.random.key(3)))

    (full, m_full), (same, _), (sub, m_sub) = (
        one_update(),
        one_update(fvp_tasks=4),
        one_update(fvp_tasks=1),
    )
    _assert_same_and_different(full.params, same.params, sub.params)
    assert float(m_sub["kl"]) <= 0.01 + 1e-6 and float(m_full["kl"]) <= 0.01 + 1e-6
