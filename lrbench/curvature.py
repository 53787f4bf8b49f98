"""Curvature of a training loss: sharpness, preconditioned sharpness, gradient norm and the
update-to-weight ratio, as pure JAX functions of one run's parameters.

Every function takes ``loss_fn(params) -> scalar`` (a closure over a fixed batch, e.g. the
engine's loss on the full training set or a probe batch) and ``params``, the pytree a task's
``init`` returns. Nothing depends on the data through Python control flow: the power
iteration runs a fixed number of Hessian-vector products in a ``lax.fori_loop``, so each
function jits, and vmaps over runs (stacked parameter trees, stacked start vectors).

The sharpness is the top eigenvalue of the Hessian H of the loss, found by power iteration
on Hessian-vector products (forward-over-reverse: ``jax.jvp`` of ``jax.grad``), warm-started
from the previous probe's eigenvector. Gradient descent on a quadratic is stable iff
lr < 2 / sharpness; during training the sharpness rises to about 2 / lr and hovers there, the
edge of stability (Cohen et al., ICLR 2021, arXiv:2103.00065). For Adam the matching
quantity is the preconditioned sharpness, the top eigenvalue of P^{-1} H
(:func:`adam_preconditioner`; Cohen et al. 2022, arXiv:2207.14484).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax.tree_utils as otu

from lrbench.errors import ConfigError

PyTree = Any
LossFn = Callable[[PyTree], jax.Array]


def hvp(loss_fn: LossFn, params: PyTree, v: PyTree) -> PyTree:
    """The Hessian of ``loss_fn`` at ``params`` times the tree ``v`` (same structure as
    ``params``): forward-over-reverse, ``jax.jvp`` of ``jax.grad``, one gradient's cost
    about three times over and no Hessian stored."""
    return jax.jvp(jax.grad(loss_fn), (params,), (_cast_like(v, params),))[1]


def random_unit_vector(key: jax.Array, params: PyTree) -> PyTree:
    """A random direction shaped like ``params`` (standard normal leaves, each with its own
    key, in the leaves' dtypes) scaled to unit Euclidean norm over all leaves: the first start
    of :func:`top_eigenvalue`, whose later calls start from the previous eigenvector."""
    v = otu.tree_random_like(key, params)
    return _normalize(_cast_like(v, params), v)


def top_eigenvalue(
    loss_fn: LossFn, params: PyTree, v0: PyTree, iters: int = 20, shift: float = 0.0
) -> tuple[jax.Array, PyTree]:
    """The Hessian's eigenvalue of largest magnitude, by ``iters`` steps of power iteration.

    ``v0`` (same structure as ``params``; any nonzero norm) is the start: the eigenvector of
    the previous probe (a warm start, which often needs only a few steps), or
    :func:`random_unit_vector` at first. Each step takes the normalized iterate u, computes
    w = H u (one Hessian-vector product), the Rayleigh quotient uᵀHu = uᵀw, and moves on to
    w / ‖w‖. Returns ``(eigenvalue, eigenvector)``: the Rayleigh quotient of the last
    normalized iterate u, and the unit vector w / ‖w‖ one power step further (the better
    start for the next probe). ``iters`` is the number of Hessian-vector products; there is
    no data-dependent stopping, so a vmap over runs costs the same for each run.

    Power iteration converges to the eigenvalue of largest ``|λ|``, with its sign, at the rate
    (|λ₂| / |λ₁|)^(2·iters) for the Rayleigh quotient. Where the most negative eigenvalue
    dominates (early in training, at a saddle), the result is that negative number, not the
    top algebraic eigenvalue; where λ and −λ tie it does not converge. ``shift`` (a number,
    default 0) runs the iteration on H − shift·I and adds ``shift`` back: a second call with
    ``shift`` set to a dominant negative eigenvalue λ₋ finds the largest eigenvalue λ_max,
    since H − λ₋·I is positive semidefinite with top eigenvalue λ_max − λ₋. The default leaves
    it to the caller (a sharpness probe during training mostly sees a positive dominant
    eigenvalue, and the sign tells when it did not).

    A Hessian that is zero along every iterate (a linear loss) gives eigenvalue 0 and keeps
    the iterate as the eigenvector, never NaN.
    """

    def matvec(u):
        return hvp(loss_fn, params, u)

    return _power_iteration(matvec, _cast_like(v0, params), iters, shift)


def preconditioned_top_eigenvalue(
    loss_fn: LossFn,
    params: PyTree,
    precond: PyTree,
    v0: PyTree,
    iters: int = 20,
    shift: float = 0.0,
) -> tuple[jax.Array, PyTree]:
    """The eigenvalue of largest magnitude of P⁻¹H, for the diagonal preconditioner P whose
    diagonal is the tree ``precond`` (positive, shaped like ``params``; for Adam
    :func:`adam_preconditioner`).

    P⁻¹H is not symmetric, but it is similar to the symmetric S = P^{-1/2} H P^{-1/2}
    (S = P^{1/2} (P⁻¹H) P^{-1/2}), which has the same eigenvalues; power iteration runs on S,
    as in :func:`top_eigenvalue` (same ``iters``, ``shift`` and warm start). The returned
    eigenvector u is S's, the next probe's start; the matching eigenvector of P⁻¹H is
    P^{-1/2} u. An update x ← x − lr·P⁻¹∇L is stable on a quadratic iff lr < 2 / λ_max(P⁻¹H).
    """
    scale = jax.tree_util.tree_map(lambda p, q: jax.lax.rsqrt(q).astype(p.dtype), params, precond)

    def matvec(u):
        return otu.tree_mul(scale, hvp(loss_fn, params, otu.tree_mul(scale, u)))

    return _power_iteration(matvec, _cast_like(v0, params), iters, shift)


def adam_preconditioner(nu_hat: PyTree, b1: float, count, eps: float) -> PyTree:
    """The diagonal of Adam's preconditioner P = (1 − β₁ᵗ)·diag(√v̂ + ε), as a tree.

    Adam's step is −lr · m̂ / (√v̂ + ε) with m̂ = m / (1 − β₁ᵗ), m the exponential average of
    gradients (optax's ``mu``); that is −lr · P⁻¹ m with P as above, a preconditioned
    heavy-ball step whose momentum is an exponential average. Cohen et al. 2022, "Adaptive
    gradient methods at the edge of stability" (arXiv:2207.14484), write Adam this way and
    track λ_max(P⁻¹H), which settles at the stability threshold (2 + 2β₁) / ((1 − β₁)·lr),
    38 / lr for β₁ = 0.9. ``nu_hat`` is the bias-corrected second moment v̂ = v / (1 − β₂ᵗ)
    (optax's ``nu`` divided by it), ``count`` the step count t of that state (optax's
    ``count``: 1 after the first update), ``eps`` Adam's ε outside the square root. The
    tests check that −lr · mu / P is optax.adam's update.
    """
    factor = 1.0 - jnp.power(b1, count)
    return jax.tree_util.tree_map(lambda v: factor * (jnp.sqrt(v) + eps), nu_hat)


def grad_norm(loss_fn: LossFn, params: PyTree) -> jax.Array:
    """The Euclidean norm of the loss's gradient over all parameters."""
    return otu.tree_norm(jax.grad(loss_fn)(params))


def update_ratio(update: PyTree, params: PyTree, per: str = "layer") -> PyTree:
    """‖update‖ / ‖params‖ (Euclidean norms) per layer or per leaf.

    ``per="layer"`` (the default): a layer is one child of the top of the parameter tree
    (``Dense_0``, ``Dense_1``, ... for the built-in MLPs, whose kernel and bias are one layer),
    its norms taken over all its leaves; the result has the top level's structure with one
    number per child (a dict ``{"Dense_0": r0, ...}``). A tree that is a single array is one
    layer. ``per="leaf"``: one number per array (kernel and bias apart), in ``params``'
    structure. ``update`` is the step actually applied (new params minus old). A part whose
    parameters are all zero (a bias at initialization, per leaf) gives inf, or NaN if its
    update is zero too.
    """
    if per not in ("layer", "leaf"):
        raise ConfigError("per", f"{per!r} is not one of 'layer', 'leaf'")

    def ratio(u, p):
        return otu.tree_norm(u) / otu.tree_norm(p)

    if per == "leaf":
        return jax.tree_util.tree_map(ratio, update, params)
    # the children of the root: each is a leaf of a depth-one flattening
    children, treedef = jax.tree_util.tree_flatten(params, is_leaf=lambda x: x is not params)
    updates = treedef.flatten_up_to(update)
    ratios = [ratio(u, p) for u, p in zip(updates, children, strict=True)]
    return jax.tree_util.tree_unflatten(treedef, ratios)


# -- helpers --------------------------------------------------------------------------------


def _cast_like(v: PyTree, params: PyTree) -> PyTree:
    return jax.tree_util.tree_map(lambda a, p: jnp.asarray(a, p.dtype), v, params)


def _normalize(w: PyTree, fallback: PyTree) -> PyTree:
    """``w / ‖w‖``, or ``fallback`` where ‖w‖ is zero (or not finite)."""
    norm = otu.tree_norm(w)
    ok = norm > 0
    safe = jnp.where(ok, norm, 1)
    return otu.tree_where(ok, otu.tree_scale(1 / safe, w), fallback)


def _power_iteration(matvec, v0: PyTree, iters: int, shift: float):
    if not isinstance(iters, int) or isinstance(iters, bool) or iters < 1:
        raise ConfigError("iters", f"{iters!r} must be a whole number >= 1")
    u0 = _normalize(v0, v0)
    dtype = jnp.result_type(*jax.tree_util.tree_leaves(u0))

    def step(_, carry):
        u, _ = carry
        w = otu.tree_add_scale(matvec(u), -shift, u)  # (H - shift I) u; shift may be traced
        lam = otu.tree_vdot(u, w).astype(dtype)
        return _normalize(w, u), lam

    shift = jnp.asarray(shift, dtype)
    u, lam = jax.lax.fori_loop(0, iters, step, (u0, jnp.zeros([], dtype)))
    return lam + shift, u
