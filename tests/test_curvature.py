"""Curvature probes (``lrbench.curvature``) against dense Hessians and closed forms.

Every reference number is computed independently of the code under test: ``jax.hessian`` of
the flattened loss and ``numpy.linalg.eigvalsh``/``eig``, a quadratic whose eigenvalues are
chosen in NumPy, optax's own Adam step, NumPy norms. All in float64, scoped with the ``x64``
fixture (JAX's ``enable_x64`` context; the suite's default is float32).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from lrbench import curvature
from lrbench.errors import ConfigError

pytestmark = pytest.mark.usefixtures("x64")


# -- a tiny 3-4-2 tanh MLP with mean squared error on a fixed batch -----------------------------


def _mlp_params(seed):
    rng = np.random.default_rng(seed)
    return {
        "Dense_0": {"kernel": jnp.asarray(rng.normal(size=(3, 4))), "bias": jnp.zeros(4)},
        "Dense_1": {
            "kernel": jnp.asarray(rng.normal(size=(4, 2))),
            "bias": jnp.asarray(0.1 * rng.normal(size=2)),
        },
    }


@functools.cache  # one closure: the jitted probes below compile once for it
def _mlp_loss_fn():
    rng = np.random.default_rng(100)
    x = jnp.asarray(rng.normal(size=(16, 3)))
    y = jnp.asarray(rng.normal(size=(16, 2)))

    def loss_fn(params):
        h = jnp.tanh(x @ params["Dense_0"]["kernel"] + params["Dense_0"]["bias"])
        out = h @ params["Dense_1"]["kernel"] + params["Dense_1"]["bias"]
        return jnp.mean(jnp.sum(jnp.square(out - y), -1))

    return loss_fn


@functools.cache
def _mlp_hessian(seed):
    """The MLP's dense Hessian at ``_mlp_params(seed)`` (``jax.hessian`` of the flattened
    loss) and the function that turns a flat vector into a parameter tree."""
    loss_fn = _mlp_loss_fn()
    flat, unravel = ravel_pytree(_mlp_params(seed))
    return np.asarray(jax.jit(jax.hessian(lambda f: loss_fn(unravel(f))))(flat)), unravel


# jitted once per (loss, iters): the probes as the engine will call them
_top = jax.jit(curvature.top_eigenvalue, static_argnums=(0,), static_argnames=("iters",))


def _flat(tree):
    return np.asarray(ravel_pytree(tree)[0])


# -- a quadratic 1/2 x^T A x with eigenvalues chosen in NumPy -----------------------------------

LAMBDAS = np.array([7.0, 3.0, 1.5, -1.0, 0.25, 0.0])


def _quadratic(lambdas=LAMBDAS, seed=0):
    """loss(params) = 1/2 x^T A x for x the flattened params (two leaves), A = Q diag(l) Q^T;
    returns the loss, a params tree, A and Q."""
    n = len(lambdas)
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))
    a = q @ np.diag(lambdas) @ q.T
    params = {"u": jnp.asarray(np.arange(1.0, 3.0)), "w": jnp.asarray(np.ones((2, n // 2 - 1)))}
    _, unravel = ravel_pytree(params)
    a_j = jnp.asarray(a)

    def loss_fn(p):
        x = ravel_pytree(p)[0]
        return 0.5 * x @ a_j @ x

    return loss_fn, params, a, q, unravel


# -- the Hessian-vector product --------------------------------------------------------------------


def test_hvp_matches_the_dense_hessian_times_the_vector():
    loss_fn, params = _mlp_loss_fn(), _mlp_params(0)
    h, unravel = _mlp_hessian(0)
    v = np.random.default_rng(1).normal(size=h.shape[0])
    hv = curvature.hvp(loss_fn, params, unravel(jnp.asarray(v)))
    assert jax.tree_util.tree_structure(hv) == jax.tree_util.tree_structure(params)
    np.testing.assert_allclose(_flat(hv), h @ v, rtol=1e-10, atol=1e-12)


# -- top eigenvalue -----------------------------------------------------------------------------


def test_top_eigenvalue_of_an_mlp_matches_eigvalsh():
    loss_fn, params = _mlp_loss_fn(), _mlp_params(0)
    h, _ = _mlp_hessian(0)
    eig = np.linalg.eigvalsh(h)
    top = eig[np.argmax(np.abs(eig))]
    assert top > 0 and abs(np.sort(np.abs(eig))[-2]) < 0.9 * top  # a clear gap
    v0 = curvature.random_unit_vector(jax.random.PRNGKey(0), params)
    lam, v = _top(loss_fn, params, v0, iters=200)
    assert abs(float(lam) - top) / top <= 1e-4
    assert float(optax.tree_utils.tree_norm(v)) == pytest.approx(1.0, abs=1e-12)
    # the returned vector is an eigenvector: H v = lam v
    np.testing.assert_allclose(h @ _flat(v), top * _flat(v), atol=1e-4 * top)


def test_top_eigenvalue_of_a_quadratic_and_its_eigenvector():
    loss_fn, params, _, q, _ = _quadratic()
    v0 = curvature.random_unit_vector(jax.random.PRNGKey(3), params)
    lam, v = curvature.top_eigenvalue(loss_fn, params, v0, iters=150)
    assert float(lam) == pytest.approx(LAMBDAS.max(), rel=1e-10)
    overlap = abs(_flat(v) @ q[:, np.argmax(LAMBDAS)])  # up to sign
    assert overlap == pytest.approx(1.0, abs=1e-10)


def test_a_warm_start_at_the_eigenvector_needs_one_iteration():
    loss_fn, params, _, q, unravel = _quadratic()
    v0 = unravel(jnp.asarray(q[:, np.argmax(LAMBDAS)]))
    lam, _ = curvature.top_eigenvalue(loss_fn, params, v0, iters=1)
    assert abs(float(lam) - LAMBDAS.max()) <= 1e-10
    # the same on the MLP, from eigh's top eigenvector
    loss_fn, params = _mlp_loss_fn(), _mlp_params(0)
    h, unravel = _mlp_hessian(0)
    eig, vec = np.linalg.eigh(h)
    lam, _ = curvature.top_eigenvalue(loss_fn, params, unravel(jnp.asarray(vec[:, -1])), iters=1)
    assert abs(float(lam) - eig[-1]) <= 1e-10 * eig[-1]


def test_an_unnormalized_start_gives_the_same_answer():
    loss_fn, params, _, _, _ = _quadratic()
    v0 = curvature.random_unit_vector(jax.random.PRNGKey(5), params)
    for iters in (1, 3):  # one step: the Rayleigh quotient of the start itself
        lam1, v1 = curvature.top_eigenvalue(loss_fn, params, v0, iters)
        lam2, v2 = curvature.top_eigenvalue(
            loss_fn, params, optax.tree_utils.tree_scale(37.0, v0), iters
        )
        assert float(lam2) == pytest.approx(float(lam1), rel=1e-12)
        np.testing.assert_allclose(_flat(v2), _flat(v1), atol=1e-12)


def test_a_dominant_negative_eigenvalue_is_returned_and_a_shift_finds_the_top():
    lambdas = np.array([-9.0, 4.0, 2.0, 1.0, -0.5, 0.1])
    loss_fn, params, _, q, _ = _quadratic(lambdas, seed=2)
    v0 = curvature.random_unit_vector(jax.random.PRNGKey(1), params)
    lam, _ = curvature.top_eigenvalue(loss_fn, params, v0, iters=200)
    assert float(lam) == pytest.approx(-9.0, rel=1e-8)  # the largest |lambda|, with its sign
    lam, v = curvature.top_eigenvalue(loss_fn, params, v0, iters=300, shift=float(lam))
    assert float(lam) == pytest.approx(4.0, rel=1e-8)
    assert abs(_flat(v) @ q[:, 1]) == pytest.approx(1.0, abs=1e-8)


def test_a_zero_hessian_gives_zero_and_a_finite_vector():
    def loss_fn(p):
        return jnp.sum(3.0 * p["w"])  # linear: H = 0

    params = {"w": jnp.ones(3)}
    v0 = curvature.random_unit_vector(jax.random.PRNGKey(0), params)
    lam, v = curvature.top_eigenvalue(loss_fn, params, v0, iters=4)
    assert float(lam) == 0.0 and np.isfinite(_flat(v)).all()


def test_random_unit_vector_is_a_unit_tree_like_the_params():
    params = _mlp_params(0)
    v = curvature.random_unit_vector(jax.random.PRNGKey(4), params)
    assert jax.tree_util.tree_structure(v) == jax.tree_util.tree_structure(params)
    assert all(a.shape == b.shape and a.dtype == b.dtype for a, b in
               zip(jax.tree_util.tree_leaves(v), jax.tree_util.tree_leaves(params), strict=True))  # fmt: skip
    assert np.linalg.norm(_flat(v)) == pytest.approx(1.0, abs=1e-12)
    w = curvature.random_unit_vector(jax.random.PRNGKey(5), params)
    assert abs(_flat(v) @ _flat(w)) < 0.9  # different keys, different directions


def test_vmap_over_three_parameter_sets_matches_three_calls():
    loss_fn = _mlp_loss_fn()
    sets = [_mlp_params(s) for s in (0, 1, 2)]
    starts = [curvature.random_unit_vector(jax.random.PRNGKey(s), p) for s, p in enumerate(sets)]
    stack = lambda trees: jax.tree_util.tree_map(lambda *a: jnp.stack(a), *trees)  # noqa: E731
    probe = jax.jit(jax.vmap(lambda p, v: curvature.top_eigenvalue(loss_fn, p, v, iters=30)))
    lams, vs = probe(stack(sets), stack(starts))
    for i, (p, v0) in enumerate(zip(sets, starts, strict=True)):
        lam, v = _top(loss_fn, p, v0, iters=30)
        assert float(lams[i]) == pytest.approx(float(lam), rel=1e-10)
        got = jax.tree_util.tree_map(lambda a, i=i: a[i], vs)
        np.testing.assert_allclose(_flat(got), _flat(v), atol=1e-10)


# -- preconditioned sharpness ---------------------------------------------------------------------


def test_adam_preconditioner_makes_optax_adams_step_lr_times_p_inverse_m():
    """Adam's update is -lr * P^{-1} m with m optax's (uncorrected) first moment: the
    preconditioner of Cohen et al. 2022, checked against optax's own step."""
    b1, b2, eps, lr = 0.9, 0.99, 1e-3, 0.05
    opt = optax.adam(lr, b1=b1, b2=b2, eps=eps)
    params = {"w": jnp.zeros(4)}
    state = opt.init(params)
    rng = np.random.default_rng(0)
    for _ in range(5):
        grads = {"w": jnp.asarray(rng.normal(size=4))}
        updates, state = opt.update(grads, state, params)
    adam = state[0]
    nu_hat = jax.tree_util.tree_map(lambda n: n / (1 - b2**adam.count), adam.nu)
    p = curvature.adam_preconditioner(nu_hat, b1, adam.count, eps)
    np.testing.assert_allclose(-lr * adam.mu["w"] / p["w"], updates["w"], rtol=1e-12)
    # and by hand: (1 - b1^t) (sqrt(v_hat) + eps)
    p = curvature.adam_preconditioner({"w": jnp.asarray(4.0)}, 0.9, 2, 0.1)
    assert float(p["w"]) == pytest.approx((1 - 0.81) * 2.1, rel=1e-14)


def test_preconditioned_top_eigenvalue_matches_the_dense_symmetric_form():
    loss_fn, params = _mlp_loss_fn(), _mlp_params(0)
    h, unravel = _mlp_hessian(0)
    rng = np.random.default_rng(7)
    nu_hat = unravel(jnp.asarray(rng.uniform(0.01, 4.0, size=h.shape[0])))
    precond = curvature.adam_preconditioner(nu_hat, 0.9, 10, 1e-8)
    d = 1.0 / np.sqrt(_flat(precond))
    eig = np.linalg.eigvalsh(d[:, None] * h * d[None, :])
    top = eig[np.argmax(np.abs(eig))]
    assert top > 0 and np.sort(np.abs(eig))[-2] < 0.9 * top
    # P^{-1} H has the same spectrum (a P-versus-P^{-1} mix-up would not)
    assert np.max(np.linalg.eigvals(h / _flat(precond)[:, None]).real) == pytest.approx(top)
    assert np.max(np.linalg.eigvals(h * _flat(precond)[:, None]).real) != pytest.approx(top)
    v0 = curvature.random_unit_vector(jax.random.PRNGKey(2), params)
    lam, v = curvature.preconditioned_top_eigenvalue(loss_fn, params, precond, v0, iters=300)
    assert abs(float(lam) - top) / top <= 1e-4
    np.testing.assert_allclose(
        d * (h @ (d * _flat(v))), top * _flat(v), atol=1e-4 * top
    )  # an eigenvector of the symmetric form


def test_an_identity_preconditioner_gives_the_plain_sharpness():
    loss_fn, params, _, _, _ = _quadratic()
    ones = jax.tree_util.tree_map(jnp.ones_like, params)
    v0 = curvature.random_unit_vector(jax.random.PRNGKey(0), params)
    plain = curvature.top_eigenvalue(loss_fn, params, v0, iters=20)
    pre = curvature.preconditioned_top_eigenvalue(loss_fn, params, ones, v0, iters=20)
    assert float(pre[0]) == pytest.approx(float(plain[0]), rel=1e-12)


# -- gradient norm and update ratio ---------------------------------------------------------------


def test_grad_norm_is_the_norm_of_a_x():
    loss_fn, params, a, _, _ = _quadratic()
    x = _flat(params)
    assert float(curvature.grad_norm(loss_fn, params)) == pytest.approx(
        np.linalg.norm(a @ x), rel=1e-12
    )


def test_update_ratio_per_layer_and_per_leaf():
    params = _mlp_params(0)  # Dense_0's bias is zero
    update = jax.tree_util.tree_map(lambda a: 0.01 * a + 0.001, _mlp_params(1))
    np_p = jax.tree_util.tree_map(np.asarray, params)
    np_u = jax.tree_util.tree_map(np.asarray, update)
    by_layer = curvature.update_ratio(update, params)
    assert set(by_layer) == {"Dense_0", "Dense_1"}
    for layer in ("Dense_0", "Dense_1"):
        u = np.concatenate([np_u[layer]["kernel"].ravel(), np_u[layer]["bias"].ravel()])
        p = np.concatenate([np_p[layer]["kernel"].ravel(), np_p[layer]["bias"].ravel()])
        assert float(by_layer[layer]) == pytest.approx(np.linalg.norm(u) / np.linalg.norm(p))
    by_leaf = curvature.update_ratio(update, params, per="leaf")
    for layer in ("Dense_0", "Dense_1"):
        for leaf in ("kernel", "bias"):
            with np.errstate(divide="ignore"):
                want = np.linalg.norm(np_u[layer][leaf]) / np.linalg.norm(np_p[layer][leaf])
            assert float(by_leaf[layer][leaf]) == pytest.approx(want)
    assert float(by_leaf["Dense_0"]["bias"]) == np.inf  # a zero bias, per leaf
    ratio = curvature.update_ratio(jnp.ones(4), 2 * jnp.ones(4))  # one array: one layer
    assert float(ratio) == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="per"):
        curvature.update_ratio(update, params, per="module")


def test_iters_must_be_a_whole_number_of_at_least_one():
    loss_fn, params, _, _, _ = _quadratic()
    v0 = curvature.random_unit_vector(jax.random.PRNGKey(0), params)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ConfigError, match="iters"):
            curvature.top_eigenvalue(loss_fn, params, v0, iters=bad)
