import jax
import jax.numpy as jnp
import numpy as np
import pytest

from quickstudy.learners.inner_sgd import adapt, inner_step


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
