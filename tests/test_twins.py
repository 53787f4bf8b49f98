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
