import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from quickstudy import tasks
from quickstudy.algorithms.maml import MAMLConfig, adapt, inner_step, make_maml
from quickstudy.errors import ConfigError
from quickstudy.tasks.fewshot import sinusoid_points


def _tiny_problem(dtype):
    """A two-layer tanh regression: support and query sets of one task."""
    rng = np.random.default_rng(0)
    params = {
        "w": jnp.asarray(rng.normal(size=(2, 3)), dtype),
        "v": jnp.asarray(rng.normal(size=(3,)), dtype),
        "b": jnp.asarray(0.3, dtype),
    }
    x_s, x_q = (jnp.asarray(rng.normal(size=(5, 2)), dtype) for _ in range(2))
    y_s, y_q = (jnp.asarray(rng.normal(size=(5,)), dtype) for _ in range(2))

    def loss(p, batch):
        x, y = batch
        return jnp.mean((jnp.tanh(x @ p["w"]) @ p["v"] + p["b"] - y) ** 2)

    return params, loss, (x_s, y_s), (x_q, y_q)


def _flat(tree):
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])


def _unflat(vec, like):
    leaves, treedef = jax.tree.flatten(like)
    out, i = [], 0
    for leaf in leaves:
        out.append(jnp.asarray(vec[i : i + leaf.size].reshape(leaf.shape), leaf.dtype))
        i += leaf.size
    return jax.tree.unflatten(treedef, out)


@pytest.mark.parametrize("num_steps", [1, 2])
def test_second_order_meta_gradient_matches_finite_differences(num_steps):
    with jax.enable_x64(True):
        params, loss, support, query = _tiny_problem(jnp.float64)
        alpha = 0.3

        def meta(p):
            return loss(adapt(loss, p, support, num_steps, alpha), query)

        grad = _flat(jax.grad(meta)(params))
        theta, eps = _flat(params), 1e-6
        fd = np.array(
            [
                (
                    float(meta(_unflat(theta + eps * e, params)))
                    - float(meta(_unflat(theta - eps * e, params)))
                )
                / (2 * eps)
                for e in np.eye(theta.size)
            ]
        )
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


def test_first_order_drops_exactly_the_hessian_term():
    with jax.enable_x64(True):
        params, loss, support, query = _tiny_problem(jnp.float64)
        alpha = 0.3

        def meta(p, first_order):
            adapted = adapt(loss, p, support, 1, alpha, first_order=first_order)
            return loss(adapted, query)

        second = _flat(jax.grad(meta)(params, False))
        first = _flat(jax.grad(meta)(params, True))
        # First order: the query gradient at the adapted parameters, taken as dL/dθ.
        adapted = inner_step(loss, params, support, alpha)
        g_query = _flat(jax.grad(loss)(adapted, query))
        np.testing.assert_allclose(first, g_query, rtol=1e-12)
        # Second order: (I - α H_support(θ)) g_query.
        theta = _flat(params)
        hess = jax.hessian(lambda t: loss(_unflat(t, params), support))(jnp.asarray(theta))
        np.testing.assert_allclose(second, g_query - alpha * np.asarray(hess) @ g_query, rtol=1e-9)
        assert np.abs(second - first).max() > 1e-3  # the term is not negligible here


@pytest.mark.parametrize("remat", [True, False])
def test_k_step_adapt_equals_k_explicit_steps(remat):
    with jax.enable_x64(True):
        params, loss, support, query = _tiny_problem(jnp.float64)

        def scanned(p):
            return adapt(loss, p, support, 3, 0.2, remat=remat)

        def explicit(p):
            for _ in range(3):
                p = inner_step(loss, p, support, 0.2)
            return p

        np.testing.assert_allclose(_flat(scanned(params)), _flat(explicit(params)), rtol=1e-12)
        g_scan = jax.grad(lambda p: loss(scanned(p), query))(params)
        g_explicit = jax.grad(lambda p: loss(explicit(p), query))(params)
        np.testing.assert_allclose(_flat(g_scan), _flat(g_explicit), rtol=1e-10)
    assert adapt(loss, params, support, 0, 0.2) is params


def test_per_parameter_step_sizes_match_a_uniform_scalar():
    params, loss, support, _ = _tiny_problem(jnp.float32)
    uniform = jax.tree.map(lambda p: jnp.full_like(p, 0.1), params)
    a = adapt(loss, params, support, 2, uniform)
    b = adapt(loss, params, support, 2, 0.1)
    np.testing.assert_allclose(_flat(a), _flat(b), rtol=1e-6)
    # A zero step size on one leaf freezes exactly that leaf.
    frozen = dict(uniform, b=jnp.zeros(()))
    c = inner_step(loss, params, support, frozen)
    assert float(c["b"]) == float(params["b"])
    assert not np.allclose(c["w"], params["w"])


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
    state, metrics = jax.jit(algo.train)(jax.random.key(0))
    assert int(state.update) == 3
    assert np.isfinite(np.asarray(metrics["query_loss"])).all()
    assert ("alpha" in state.params) == bool(kw.get("learn_inner_lr"))
    losses = algo.evaluate(state.params, jax.random.key(1), algo.tasks.test_tasks(6), 2).losses
    assert losses.shape == (6, 3)
    assert np.isfinite(np.asarray(losses)).all()


def test_maml_training_is_deterministic_in_the_key():
    algo = make_maml(_small(), tasks.make("sinusoid-k5"))
    train = jax.jit(algo.train)
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
    losses = np.asarray(algo.evaluate(state.params, key, test, 2).losses)[0]
    task = jax.tree.map(lambda x: x[0], test)
    k_support, k_query = jax.random.split(jax.random.split(key, 1)[0])
    support = sinusoid_points(k_support, task, 10)
    query = sinusoid_points(k_query, task, algo.config.test_query_points)

    def support_loss(net, batch):
        return algo.loss(net, batch, task)

    net = state.params["net"]
    for k in range(3):
        np.testing.assert_allclose(losses[k], algo.loss(net, query, task), rtol=1e-5)
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
    before = np.asarray(algo.evaluate(algo.init(jax.random.key(0)).params, key, test, 1).losses)
    state, _ = jax.jit(algo.train)(jax.random.key(0))
    after = np.asarray(algo.evaluate(state.params, key, test, 1).losses)
    assert after[:, 1].mean() < 0.8 * before[:, 1].mean()
    assert after[:, 1].mean() < after[:, 0].mean()  # one step helps after meta-training
