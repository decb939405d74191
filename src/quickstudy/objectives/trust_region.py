"""Trust-region policy optimisation pieces: conjugate gradient and a backtracking KL line search.

Schulman et al. (2015), TRPO, Appendix C: solve ``H s = g`` for the Fisher (KL Hessian) ``H`` with
conjugate gradient using Hessian-vector products only, scale the step to the KL bound, then
backtrack until the surrogate improves and the KL constraint holds. Parameters are flat vectors
here; callers ravel their pytrees (``jax.flatten_util.ravel_pytree``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp


def conjugate_gradient(
    matvec: Callable[[jax.Array], jax.Array], b: jax.Array, iters: int, tol: float = 1e-10
) -> jax.Array:
    """Approximately solves ``A x = b`` for symmetric positive-definite ``A``.

    Args:
        matvec: ``v -> A v``.
        b: Right-hand side ``[P]``.
        iters: Iterations (TRPO: 10); stops early once ``r^T r < tol``.
        tol: Residual threshold.

    Returns:
        ``x`` ``[P]`` (exact after ``P`` iterations in exact arithmetic).
    """

    def body(_, carry):
        x, r, p, rr = carry
        active = rr >= tol
        ap = matvec(p)
        alpha = rr / jnp.maximum(jnp.vdot(p, ap), 1e-30)
        x_new = x + alpha * p
        r_new = r - alpha * ap
        rr_new = jnp.vdot(r_new, r_new)
        p_new = r_new + (rr_new / jnp.maximum(rr, 1e-30)) * p
        keep = lambda new, old: jnp.where(active, new, old)  # noqa: E731
        return keep(x_new, x), keep(r_new, r), keep(p_new, p), keep(rr_new, rr)

    x0 = jnp.zeros_like(b)
    carry = (x0, b, b, jnp.vdot(b, b))
    return jax.lax.fori_loop(0, iters, body, carry)[0]


class TrustRegionInfo(NamedTuple):
    """Diagnostics of one trust-region step (scalars).

    Attributes:
        loss_before: Surrogate loss at the old parameters.
        loss_after: At the accepted parameters.
        kl: KL at the accepted parameters.
        backtracks: Backtracking steps taken (``max_backtracks`` when none was accepted).
        accepted: Whether a step was accepted (else the parameters are unchanged).
    """

    loss_before: jax.Array
    loss_after: jax.Array
    kl: jax.Array
    backtracks: jax.Array
    accepted: jax.Array


def trust_region_step(
    loss_fn: Callable[[jax.Array], jax.Array],
    kl_fn: Callable[[jax.Array], jax.Array],
    theta: jax.Array,
    max_kl: float,
    cg_iters: int = 10,
    damping: float = 1e-5,
    backtrack_ratio: float = 0.8,
    max_backtracks: int = 15,
    fvp: Callable[[jax.Array], jax.Array] | None = None,
) -> tuple[jax.Array, TrustRegionInfo]:
    """One TRPO step: natural-gradient direction, KL-scaled step, backtracking line search.

    Args:
        loss_fn: Surrogate loss to minimise, ``theta [P] -> scalar``.
        kl_fn: Mean KL from the data-collecting policy, ``theta -> scalar`` (0 with zero
            gradient at the old ``theta`` for plain TRPO; MAML's KL is of the adapted policies).
        theta: Current flat parameters ``[P]``.
        max_kl: KL bound δ.
        cg_iters: Conjugate-gradient iterations.
        damping: Added to the Hessian-vector product (``H v + damping v``).
        backtrack_ratio: Step shrink factor per backtrack.
        max_backtracks: Backtracks before giving up (parameters then stay).
        fvp: Fisher-vector product ``v -> F v`` at ``theta`` (e.g. :func:`gauss_newton_fvp`);
            default: the Hessian-vector product of ``kl_fn`` (forward-over-reverse).

    Returns:
        The new parameters and diagnostics.
    """
    loss_before, g = jax.value_and_grad(loss_fn)(theta)
    if fvp is None:
        kl_grad = jax.grad(kl_fn)

        def fvp(v):
            return jax.jvp(kl_grad, (theta,), (v,))[1]

    def hvp(v):
        return fvp(v) + damping * v

    direction = conjugate_gradient(hvp, g, cg_iters)
    shs = jnp.vdot(direction, hvp(direction))
    full_step = jnp.sqrt(2.0 * max_kl / (shs + 1e-8)) * direction

    def candidate(k):
        new = theta - backtrack_ratio**k * full_step
        return new, loss_fn(new), kl_fn(new)

    def ok(loss, kl):
        return (loss < loss_before) & (kl <= max_kl) & jnp.isfinite(loss) & jnp.isfinite(kl)

    def cond(carry):
        k, _, loss, kl = carry
        return (k < max_backtracks) & ~ok(loss, kl)

    def body(carry):
        k = carry[0] + 1
        new, loss, kl = candidate(k)
        return k, new, loss, kl

    new, loss, kl = candidate(0)
    k, new, loss, kl = jax.lax.while_loop(cond, body, (jnp.zeros((), jnp.int32), new, loss, kl))
    accepted = ok(loss, kl)
    theta_new = jnp.where(accepted, new, theta)
    info = TrustRegionInfo(
        loss_before=loss_before,
        loss_after=jnp.where(accepted, loss, loss_before),
        kl=jnp.where(accepted, kl, 0.0),
        backtracks=k,
        accepted=accepted,
    )
    return theta_new, info


def gauss_newton_fvp(
    dist_fn: Callable[[jax.Array], jax.Array],
    theta: jax.Array,
    metric: Callable[[jax.Array], jax.Array],
) -> Callable[[jax.Array], jax.Array]:
    """Fisher-vector products ``J^T M J v`` of a policy with distribution parameters ``dist_fn``.

    At the parameters that collected the data this equals the Hessian of the mean KL (the KL's
    gradient with respect to the distribution parameters vanishes there), at the cost of one
    linearised forward and one transposed pass per product; the primal is computed once.

    Args:
        dist_fn: ``theta [P] -> distribution parameters`` of every sample (any shape).
        theta: Point of linearisation ``[P]``.
        metric: ``u -> M u``: the Fisher metric of the distribution parameters, already weighted
            by each sample's share of the mean (e.g. ``valid / count``).

    Returns:
        ``v [P] -> F v [P]``.
    """
    _, jvp_fn = jax.linearize(dist_fn, theta)
    vjp_fn = jax.linear_transpose(jvp_fn, theta)

    def fvp(v: jax.Array) -> jax.Array:
        return vjp_fn(metric(jvp_fn(v)))[0]

    return fvp
