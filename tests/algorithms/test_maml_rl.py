import jax
import jax.numpy as jnp
import numpy as np
import pytest

from quickstudy import tasks
from quickstudy.algorithms.maml_rl import MAMLRLConfig, gaussian_kl, make_maml_rl
from quickstudy.errors import ConfigError


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


def test_gaussian_kl_matches_the_closed_form():
    p = jnp.array([0.3, -1.0, np.log(0.5), np.log(2.0)])
    q = jnp.array([0.0, 0.0, 0.0, 0.0])
    expected = sum(
        np.log(sq / sp) + (sp**2 + (mp - mq) ** 2) / (2 * sq**2) - 0.5
        for mp, mq, sp, sq in [(0.3, 0.0, 0.5, 1.0), (-1.0, 0.0, 2.0, 1.0)]
    )
    assert float(gaussian_kl(p, q, 2)) == pytest.approx(expected, rel=1e-5)
    assert float(gaussian_kl(p, p, 2)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"variant": "pretrained"},
        {"variant": "oracle"},
        {"outer": "ppo", "ppo_epochs": 2},
        {"first_order": True},
        {"inner_steps": 2, "total_steps": 2 * 4 * 4 * 100 * 3},
    ],
)
def test_maml_rl_variants_train_and_meta_test(kw):
    algo = make_maml_rl(_small(**kw), tasks.make("nav2d"))
    inner = algo.config.train_inner_steps
    assert algo.steps_per_update == 4 * 4 * 100 * (inner + 1)
    assert algo.num_updates == algo.config.total_steps // algo.steps_per_update
    state, metrics = jax.jit(algo.train)(jax.random.key(0))
    assert int(state.update) == algo.num_updates
    for name in ("return_pre", "return_post", "loss_before", "kl"):
        assert np.isfinite(np.asarray(metrics[name])).all(), name
    if algo.config.outer == "trpo":
        assert float(np.max(metrics["kl"])) <= algo.config.max_kl + 1e-6
    evaluate = jax.jit(algo.evaluate, static_argnums=3)
    result = evaluate(state.params, jax.random.key(1), algo.tasks.test_tasks(3), 2)
    assert result.returns.shape == (3, 3) and result.success.shape == (3, 3)
    assert float(jnp.max(result.returns)) <= 0.0  # nav2d rewards are negative distances


def test_oracle_sees_the_goal():
    algo = make_maml_rl(_small(variant="oracle"), tasks.make("nav2d"))
    params = algo.init(jax.random.key(0)).params
    assert params["mean"]["params"]["hidden_0"]["kernel"].shape == (4, 16)  # obs 2 + goal 2


def test_maml_rl_is_deterministic_in_the_key():
    algo = make_maml_rl(_small(), tasks.make("nav2d"))
    train = jax.jit(algo.train)
    a, _ = train(jax.random.key(7))
    b, _ = train(jax.random.key(7))
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(x, y)


def test_meta_test_adaptation_improves_a_goal_directed_start():
    # One policy-gradient step from the initial policy already moves towards each goal, so the
    # return after one step beats the return before it (the adaptation machinery works).
    algo = make_maml_rl(_small(test_episodes=20), tasks.make("nav2d"))
    params = algo.init(jax.random.key(0)).params
    result = jax.jit(algo.evaluate, static_argnums=3)(
        params, jax.random.key(2), algo.tasks.test_tasks(10), 1
    )
    assert float(result.returns[:, 1].mean()) > float(result.returns[:, 0].mean()) + 2.0


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"inner_lr": 0}, "inner_lr"),
        ({"max_kl": -1.0}, "max_kl"),
        ({"meta_batch_size": 0}, "meta_batch_size"),
        ({"outer": "sgd"}, "outer"),
        ({"variant": "reptile"}, "variant"),
        ({"gamma": 1.5}, "gamma"),
        ({"hidden_sizes": ()}, "hidden_sizes"),
    ],
)
def test_bad_config_names_the_field(kw, field):
    with pytest.raises(ConfigError, match=field):
        MAMLRLConfig(**kw)


def test_maml_rl_refuses_discrete_and_supervised_tasks():
    with pytest.raises(ConfigError, match="continuous"):
        make_maml_rl(MAMLRLConfig(), tasks.make("bandit-k5-n10"))
    with pytest.raises(ConfigError, match="supervised"):
        make_maml_rl(MAMLRLConfig(), tasks.make("sinusoid-k5"))
