"""Each hand rule of the foundation against its optax twin on the same gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrbench import rules

FOUNDATION = ["sgd", "momentum", "nesterov"]


def _max_rel_diff(dtype, name, steps=100):
    rng = np.random.default_rng(0)
    params = {
        "w": jnp.asarray(rng.normal(size=(5, 3)), dtype),
        "b": jnp.asarray(rng.normal(size=3), dtype),
    }
    grads = [
        jax.tree_util.tree_map(lambda p: jnp.asarray(rng.normal(size=p.shape), dtype), params)
        for _ in range(steps)
    ]
    hp = {k: 0.9 for k in rules.spec(name).hparams}
    results = []
    for impl in ("hand", "optax"):
        tx = rules.make(name, impl, learning_rate=0.05, **hp)
        state, p = tx.init(params), params
        for g in grads:
            upd, state = tx.update(g, state, p)
            p = jax.tree_util.tree_map(lambda a, u: a + u, p, upd)
        results.append(p)
    hand, twin = results
    diffs = [
        float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))
        for a, b in zip(
            jax.tree_util.tree_leaves(hand), jax.tree_util.tree_leaves(twin), strict=True
        )
    ]
    return max(diffs), hand


@pytest.mark.parametrize("name", FOUNDATION)
def test_twin_float64(name, x64):
    diff, hand = _max_rel_diff(jnp.float64, name)
    assert jax.tree_util.tree_leaves(hand)[0].dtype == jnp.float64
    assert diff <= 1e-12


@pytest.mark.parametrize("name", FOUNDATION)
def test_twin_float32(name):
    diff, _ = _max_rel_diff(jnp.float32, name)
    assert diff <= 1e-5


@pytest.mark.slow
def test_twin_audit_trains_through_the_engine(x64):
    """The audit's rows for AdaGrad (which differs from its twin by rounding) at 20 steps:
    float64 pairs agree within ``AGREE``, the floor is above 0, and the final training loss
    is that of a plain full-batch optax loop from the engine's initial weights."""
    import dataclasses

    import optax

    from experiments import twin_audit
    from lrbench import data, models
    from lrbench.sweep import Optimizer

    sweep = dataclasses.replace(
        twin_audit.ci_config(), epochs=20, validation_freq=20, optimizers=(Optimizer("adagrad"),)
    )
    runs = twin_audit.audit(sweep)
    assert set(runs["impl"]) == {"hand", "optax"} and set(runs["dtype"]) == {"float32", "float64"}
    f64 = runs[runs["dtype"] == "float64"]
    assert (f64["max_rel_diff"] <= twin_audit.AGREE).all()
    assert (runs["floor"] > 0).all()

    ds = data.load("blobs")
    net = models.build(sweep.model, ds.num_classes)
    params = net.init(jax.random.split(jax.random.PRNGKey(0))[0], jnp.asarray(ds.x_train[:1]))
    params = jax.tree_util.tree_map(lambda p: p.astype(jnp.float64), params["params"])
    x = ds.x_train.astype(np.float64)

    def loss_fn(p):
        logits = net.apply({"params": p}, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, ds.y_train).mean()

    tx = optax.adagrad(1e-3, initial_accumulator_value=0.1, eps=1e-7)  # the rule's defaults
    state = tx.init(params)
    for _ in range(sweep.epochs):
        updates, state = tx.update(jax.grad(loss_fn)(params), state, params)
        params = optax.apply_updates(params, updates)
    row = f64[f64["impl"] == "optax"].iloc[0]
    np.testing.assert_allclose(row["final_train_loss"], loss_fn(params), rtol=1e-10)
