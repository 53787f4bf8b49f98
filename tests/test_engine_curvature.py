"""The engine's curvature probes (``sharpness``, ``preconditioned_sharpness``, ``grad_norm``,
``update_ratio``) against dense Hessians, closed forms and an Adam state rebuilt with optax.

Reference numbers come from computations independent of the engine: ``jax.hessian`` of the
training loss written out here (flax's ``apply`` and optax's cross-entropy), NumPy's
``eigvalsh``, the quadratic bowl's closed-form iterates, optax's own Adam. Float64 where a
tolerance is tight (the ``x64`` fixture).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from lrbench import data, engine, models, probes, runner, spec, tasks
from lrbench.errors import ConfigError
from lrbench.models import MLPConfig
from lrbench.sweep import Optimizer, Sweep, expand

TINY = Sweep(
    experiment="test",
    dataset="blobs",
    model=MLPConfig(hidden=(4,)),
    epochs=2,
    batch_size=100,
    lrs=(0.5,),
    seeds=(3,),
)


def _net_loss(sweep, n=None):
    """The classifier's training loss on the first ``n`` training examples (all: None), written
    with flax and optax directly, in float64; and the initial parameters of ``seed``."""
    ds = data.load(sweep.dataset)
    net = models.build(sweep.model, ds.num_classes)
    x = jnp.asarray(ds.x_train[:n], jnp.float64)
    y = jnp.asarray(ds.y_train[:n])

    def loss_fn(p):
        logits = net.apply({"params": p}, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def init(seed):
        key = jax.random.split(jax.random.PRNGKey(seed))[0]
        params = net.init(key, jnp.asarray(ds.x_train[:1]))["params"]
        return jax.tree_util.tree_map(lambda p: p.astype(jnp.float64), params)

    return loss_fn, init


def _at(tree, run, step):
    """A step probe's parameter tree (leaves ``[N, steps, ...]``) of one run after one step."""
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a[run, step]), tree)


def _dense_eigs(loss_fn, params, scale=None):
    """Ascending eigenvalues of the dense Hessian of ``loss_fn`` at ``params`` (or of
    ``diag(scale) H diag(scale)``), by ``jax.hessian`` and ``numpy.linalg.eigvalsh``."""
    flat, unravel = ravel_pytree(params)
    h = np.asarray(jax.hessian(lambda f: loss_fn(unravel(f)))(flat))
    if scale is not None:
        h = scale[:, None] * h * scale[None, :]
    return np.linalg.eigvalsh((h + h.T) / 2)


@pytest.mark.slow
def test_sharpness_and_grad_norm_match_a_dense_hessian(x64):
    """Every probed step's sharpness is the top eigenvalue of the dense Hessian of the loss on
    the probe batch (the first 200 of 500 training examples) at that step's parameters, and
    its gradient norm that of ``jax.grad``; NaN at the steps not probed."""
    sweep = dataclasses.replace(TINY, dtype="float64", lrs=(0.5, 2.0))
    every, n = 3, 200
    got = probes.train(
        sweep, probes=("sharpness", "grad_norm", "params"), probe_every=every, probe_iters=60,
        probe_batch=n,
    )  # fmt: skip
    loss_fn, _ = _net_loss(sweep, n)
    sharp, gnorm = got.probes.steps["sharpness"], got.probes.steps["grad_norm"]
    total = sharp.shape[1]
    probed = (np.arange(total) + 1) % every == 0
    assert total == 10 and probed.sum() == 3
    assert np.isnan(sharp[:, ~probed]).all() and np.isnan(gnorm[:, ~probed]).all()
    for run in range(2):
        for step in np.flatnonzero(probed):
            params = _at(got.probes.steps["params"], run, step)
            eigs = _dense_eigs(loss_fn, params)
            assert eigs[-1] > abs(eigs[0])  # the top eigenvalue dominates: power iteration's
            np.testing.assert_allclose(sharp[run, step], eigs[-1], rtol=1e-4)
            flat_grad = ravel_pytree(jax.grad(loss_fn)(params))[0]
            np.testing.assert_allclose(gnorm[run, step], np.linalg.norm(flat_grad), rtol=1e-10)


@pytest.mark.slow
def test_quadratic_closed_form():
    """On the bowl ½·Σλ_i(w_i − 1)² with full-batch gradient descent, from w = 0:
    w_i(t) − 1 = −(1 − ηλ_i)^t, so the sharpness is max λ, the gradient norm
    ‖λ ⊙ (w(t) − 1)‖ and the update ratio ‖w(t) − w(t−1)‖ / ‖w(t−1)‖; NaN off the probed
    steps (every 2nd)."""
    lam = np.array([4.0, 1.0, 0.25])
    lr, every, epochs = 0.3, 2, 6
    sweep = Sweep(
        task=tasks.Quadratic(eigenvalues=tuple(lam)), epochs=epochs, batch_size=len(lam),
        lrs=(lr,), seeds=(0,), validation_freq=0,
    )  # fmt: skip
    names = ("sharpness", "grad_norm", "update_ratio")
    got = probes.train(sweep, probes=names, probe_every=every, probe_iters=30)
    steps = got.probes.steps
    t = np.arange(1, epochs + 1)
    w = 1 - (1 - lr * lam[None]) ** t[:, None]  # [steps, d]
    w_prev = np.vstack([np.zeros(len(lam)), w[:-1]])
    probed = t % every == 0
    np.testing.assert_allclose(steps["sharpness"][0, probed], lam.max(), rtol=1e-5)
    grad = np.linalg.norm(lam * (w - 1), axis=1)
    np.testing.assert_allclose(steps["grad_norm"][0, probed], grad[probed], rtol=1e-5)
    with np.errstate(divide="ignore"):  # w(0) = 0: step 1's ratio is inf (not probed)
        ratio = np.linalg.norm(w - w_prev, axis=1) / np.linalg.norm(w_prev, axis=1)
    np.testing.assert_allclose(steps["update_ratio"]["w"][0, probed], ratio[probed], rtol=1e-5)
    for a in (steps["sharpness"], steps["grad_norm"], steps["update_ratio"]["w"]):
        assert a.shape == (1, epochs) and np.isnan(a[0, ~probed]).all()
    table = probes.probes_table(got.runs["run_id"], steps, every)
    assert list(table.columns) == ["run_id", "step", "grad_norm", "sharpness", "update_ratio/w"]
    assert table["step"].tolist() == [2, 4, 6]
    np.testing.assert_array_equal(table["sharpness"], steps["sharpness"][0, probed])


@pytest.mark.slow
@pytest.mark.parametrize("impl", ["hand", "optax"])
def test_preconditioned_sharpness_matches_an_explicit_adam_preconditioner(impl, x64):
    """Full-batch Adam: the top eigenvalue of P^-1/2 H P^-1/2, P = (1 − β₁ᵗ)·diag(√v̂ + ε)
    from an Adam state rebuilt with ``optax.adam`` in a plain loop (its parameters checked
    against the engine's), H the dense Hessian; every step probed."""
    b1, b2, eps, lr = 0.9, 0.99, 1e-8, 0.05
    adam = Optimizer("adam", {"b1": b1, "b2": b2, "eps": eps})
    sweep = dataclasses.replace(
        TINY, dtype="float64", batch_size=500, epochs=4, lrs=(lr,), optimizers=(adam,),
        impls=(impl,),
    )  # fmt: skip
    got = probes.train(
        sweep, probes=("preconditioned_sharpness", "sharpness", "params"), probe_iters=100
    )
    loss_fn, init = _net_loss(sweep)
    params = init(TINY.seeds[0])
    tx = optax.adam(lr, b1=b1, b2=b2, eps=eps)
    state = tx.init(params)
    for step in range(sweep.epochs):
        updates, state = tx.update(jax.grad(loss_fn)(params), state, params)
        params = optax.apply_updates(params, updates)
        engine_params = _at(got.probes.steps["params"], 0, step)
        jax.tree_util.tree_map(
            lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12),
            engine_params,
            params,
        )
        t = step + 1
        nu = np.asarray(ravel_pytree(state[0].nu)[0])
        precond = (1 - b1**t) * (np.sqrt(nu / (1 - b2**t)) + eps)
        eigs = _dense_eigs(loss_fn, params, scale=1 / np.sqrt(precond))
        assert eigs[-1] > abs(eigs[0])
        np.testing.assert_allclose(
            got.probes.steps["preconditioned_sharpness"][0, step], eigs[-1], rtol=1e-4
        )
        # and it is not the plain sharpness (the test could tell them apart)
        assert abs(got.probes.steps["sharpness"][0, step] / eigs[-1] - 1) > 1e-2


@pytest.mark.slow
def test_curvature_probes_leave_the_training_bitwise_unchanged():
    """The same grid with and without curvature probes: identical histories, bit for bit."""
    sweep = dataclasses.replace(TINY, lrs=(0.5, 0.05), seeds=(0, 1), optimizers=("adam",))
    _, plain, _ = runner.train(sweep)
    names = ("sharpness", "preconditioned_sharpness", "grad_norm", "update_ratio")
    got = probes.train(sweep, probes=names, probe_every=2, probe_iters=5)
    for a, b in zip(plain, got.history, strict=True):
        np.testing.assert_array_equal(a, b)


def _static(sweep=TINY, **fields):
    ((static, _),) = list(spec.static_groups(sweep, expand(sweep)))
    return static._replace(**fields)


def _primitives(jaxpr, found=None) -> list[tuple[str, list]]:
    """(name, names of the primitives inside) of every eqn of ``jaxpr``, nested ones too."""
    found = [] if found is None else found
    for eqn in jaxpr.eqns:
        inner = []
        for param in eqn.params.values():
            for sub in param if isinstance(param, tuple | list) else (param,):
                sub = getattr(sub, "jaxpr", sub)
                if hasattr(sub, "eqns"):
                    inner += [name for name, _ in _primitives(sub, [])]
                    _primitives(sub, found)
        found.append((eqn.primitive.name, inner))
    return found


def _jaxpr(static):
    runs = spec.run_data(static, expand(TINY))
    grouped = engine.take(runs, np.arange(1)[None, :])
    orders = engine.group_orders(static, runs, np.zeros((1, 1), int))
    return jax.make_jaxpr(engine.make_train(static))(engine.arrays_for(static), grouped, orders)


def test_unprobed_steps_skip_the_hessian_products():
    """With ``probe_every`` > 1 the power iteration (a ``fori_loop`` of Hessian-vector
    products, a ``scan`` in the jaxpr) sits in a branch of a ``cond`` that survives the vmap over runs (its predicate
    is the step index, unbatched); a predicate from a run's own data would turn the ``cond``
    into a ``select`` computing both branches at every step."""
    every = _primitives(_jaxpr(_static(probes=("sharpness",), probe_every=10)).jaxpr)
    assert any(name == "cond" and "scan" in inner for name, inner in every)


def test_preconditioned_sharpness_needs_an_adam_type_optimizer():
    with pytest.raises(ConfigError, match="probes.*Adam-type") as e:
        engine.make_train(_static(probes=("preconditioned_sharpness",)))  # TINY trains sgd
    assert "momentum" not in str(e.value) and "'sgd'" in str(e.value)
    adam = dataclasses.replace(TINY, optimizers=("adam",))
    engine.make_train(_static(adam, probes=("preconditioned_sharpness",)))  # allowed


@pytest.mark.parametrize(
    "field, value",
    [
        ("probe_every", 0),
        ("probe_every", 2.0),
        ("probe_iters", 0),
        ("probe_iters", True),
        ("probe_batch", -1),
        ("probe_batch", 501),  # blobs has 500 training examples
    ],
)
def test_probe_fields_are_checked(field, value):
    with pytest.raises(ConfigError, match=field) as e:
        engine.make_train(_static(probes=("sharpness",), **{field: value}))
    assert e.value.field == field and "\n" not in str(e.value)


@pytest.mark.slow
def test_bench_probe_overhead_table():
    """``lrbench bench``'s probe-overhead rows: plain first (ratio 1), one row per probe batch,
    seconds per step from the grid's seconds, and the README section naming the grid size."""
    from lrbench import bench

    table = bench.probe_overhead(n=8, epochs=1, repeats=1, every=4, iters=2, batches=(8,),
                                 quiet=True)  # fmt: skip
    assert table["variant"].tolist()[0] == "plain" and len(table) == 2
    assert table["ratio"].iloc[0] == 1.0 and (table["seconds"] > 0).all()
    np.testing.assert_allclose(table["ms_per_step"], 1e3 * table["seconds"] / table["steps"])
    assert "8-example batch" in table["variant"].iloc[1]
    lines = "\n".join(bench._probe_lines(table))
    assert "N = 8" in lines and "| plain |" in lines


@pytest.mark.slow
@pytest.mark.parametrize("name", ["amsgrad"])  # its own nu_max; adamw and nadam keep adam's state
def test_preconditioned_sharpness_reads_each_adam_type_state(name, x64):
    """The hand rule's state and its optax twin's (another layout: chains, AMSGrad's nu_max)
    give the same preconditioned sharpness at every step, and it differs from the sharpness."""
    sweep = dataclasses.replace(
        TINY, dtype="float64", lrs=(0.05,), optimizers=(name,), impls=("hand", "optax")
    )
    got = probes.train(sweep, probes=("preconditioned_sharpness", "sharpness"), probe_iters=50)
    assert got.runs["impl"].tolist() == ["hand", "optax"]
    pre = got.probes.steps["preconditioned_sharpness"]
    assert np.isfinite(pre).all()
    np.testing.assert_allclose(pre[0], pre[1], rtol=1e-8)
    assert (np.abs(pre[0] / got.probes.steps["sharpness"][0] - 1) > 1e-2).all()
