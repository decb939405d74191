import dataclasses

import jax
import numpy as np
import pytest

from quickstudy import tasks
from quickstudy.algorithms.maml import MAMLConfig, make_maml
from quickstudy.errors import ConfigError
from quickstudy.learners.inner_sgd import inner_step
from quickstudy.runner import train_program
from quickstudy.tasks.fewshot import sinusoid_points


def _flat(tree):
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])


def _meta_test(algo, params, key, test, steps):
    return jax.jit(algo.meta_test, static_argnums=3)(params, key, test, steps)


def _small(**kw):
    base = dict(total_steps=3, meta_batch_size=4, hidden_sizes=(8, 8), test_steps=2)
    return MAMLConfig(**{**base, **kw})


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"first_order": True},
        {"learn_inner_lr": True},
        {"variant": "pretrained"},
        {"variant": "oracle"},
        {"inner_steps": 2},
    ],
)
def test_maml_variants_train_and_meta_test(kw):
    algo = make_maml(_small(**kw), tasks.make("sinusoid-k5"))
    state, metrics = jax.jit(train_program(algo))(jax.random.key(0))
    assert int(state.update) == 3
    assert np.isfinite(np.asarray(metrics["query_loss"])).all()
    assert ("alpha" in state.params) == bool(kw.get("learn_inner_lr"))
    result = _meta_test(algo, state.params, jax.random.key(1), algo.tasks.test_tasks(6), 2)
    assert result.values.shape == (6, 3)
    assert result.metric == "mse" and result.axis == "gradient step"
    assert not result.higher_is_better and result.first_index == 0
    assert np.isfinite(np.asarray(result.values)).all()


def test_maml_training_is_deterministic_in_the_key():
    algo = make_maml(_small(), tasks.make("sinusoid-k5"))
    train = jax.jit(train_program(algo))
    a, _ = train(jax.random.key(3))
    b, _ = train(jax.random.key(3))
    c, _ = train(jax.random.key(4))
    np.testing.assert_array_equal(_flat(a.params), _flat(b.params))
    assert not np.array_equal(_flat(a.params), _flat(c.params))


def test_meta_test_column_k_is_the_loss_after_k_explicit_steps():
    algo = make_maml(_small(), tasks.make("sinusoid-k10"))
    state = algo.init(jax.random.key(0))
    test = algo.tasks.test_tasks(1)
    key = jax.random.key(5)
    losses = np.asarray(algo.meta_test(state.params, key, test, 2).values)[0]
    task = jax.tree.map(lambda x: x[0], test)
    k_support, k_query = jax.random.split(jax.random.split(key, 1)[0])
    support = sinusoid_points(k_support, task, 10)
    query = sinusoid_points(k_query, task, algo.config.test_query_points)

    def support_loss(net, batch):
        return algo.parts["loss"](net, batch, task)

    net = state.params["net"]
    for k in range(3):
        np.testing.assert_allclose(losses[k], algo.parts["loss"](net, query, task), rtol=1e-5)
        net = inner_step(support_loss, net, support, algo.config.inner_lr)


def test_sinusoid_tasks_follow_the_paper():
    dist = tasks.make("sinusoid-k10")
    params = dist.sample(jax.random.key(0), 4000)
    amp, phase = np.asarray(params.amplitude), np.asarray(params.phase)
    assert amp.min() >= 0.1 and amp.max() <= 5.0 and abs(amp.mean() - 2.55) < 0.1
    assert phase.min() >= 0.0 and phase.max() <= np.pi
    task = jax.tree.map(lambda x: x[0], params)
    batch, query = dist.sets(jax.random.key(1), task, 50, 7)
    assert query.x.shape == (7, 1)
    x = np.asarray(batch.x)
    assert x.shape == (50, 1) and x.min() >= -5 and x.max() <= 5
    np.testing.assert_allclose(batch.y, amp[0] * np.sin(x - phase[0]), rtol=1e-5, atol=1e-6)
    a, b = dist.test_tasks(), dist.test_tasks()
    assert a.amplitude.shape == (600,)
    np.testing.assert_array_equal(a.amplitude, b.amplitude)
    assert tasks.names("fewshot")[:3] == ["sinusoid-k5", "sinusoid-k10", "sinusoid-k20"]


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"inner_lr": -0.1}, "inner_lr"),
        ({"meta_lr": 0}, "meta_lr"),
        ({"total_steps": 0}, "total_steps"),
        ({"meta_batch_size": 2.5}, "meta_batch_size"),
        ({"variant": "reptile"}, "variant"),
        ({"hidden_sizes": (40, 0)}, "hidden_sizes"),
        ({"inner_steps": -1}, "inner_steps"),
        ({"learn_inner_lr": True, "variant": "oracle"}, "learn_inner_lr"),
    ],
)
def test_bad_config_names_the_field(kw, field):
    with pytest.raises(ConfigError, match=field):
        MAMLConfig(**kw)


def test_maml_refuses_rl_tasks():
    with pytest.raises(ConfigError, match="few-shot"):
        make_maml(MAMLConfig(), tasks.make("nav2d"))


def test_short_training_improves_post_adaptation_loss():
    cfg = dataclasses.replace(_small(total_steps=400, meta_batch_size=10), hidden_sizes=(40, 40))
    algo = make_maml(cfg, tasks.make("sinusoid-k10"))
    test = algo.tasks.test_tasks(200)
    key = jax.random.key(1)
    init = algo.init(jax.random.key(0)).params
    before = np.asarray(_meta_test(algo, init, key, test, 1).values)
    state, _ = jax.jit(train_program(algo))(jax.random.key(0))
    after = np.asarray(_meta_test(algo, state.params, key, test, 1).values)
    assert after[:, 1].mean() < 0.8 * before[:, 1].mean()
    assert after[:, 1].mean() < after[:, 0].mean()  # one step helps after meta-training
