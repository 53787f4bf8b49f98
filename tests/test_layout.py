"""The engine's layout: runs grouped by seed, groups one after another, chunks of one shape.

``engine.plan`` is checked against a plain-Python grouping of the rows by seed; the program
is checked to gather each minibatch once per seed group and to multiply it with the whole
group's first-layer weights in one product; and every layout gives the same numbers
(float64: to rounding).
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrbench import engine, runner, spec, tasks
from lrbench.models import MLPConfig
from lrbench.sweep import Sweep, expand

SMALL = Sweep(
    experiment="test",
    dataset="blobs",
    model=MLPConfig(hidden=(8,)),
    epochs=3,
    batch_size=64,
    lrs=(0.3, 0.1, 0.03, 0.01, 0.003),
    seeds=(0, 1, 2),
)


def _distinct_prefix(group: np.ndarray) -> np.ndarray:
    """A group's own rows: the padding repeats its last row at the end."""
    last = int(np.argmax(group == group[-1]))
    assert (group[last:] == group[-1]).all()
    return group[: last + 1]


@settings(max_examples=200, deadline=None)
@given(
    seeds=st.lists(st.integers(0, 5), min_size=1, max_size=60),
    max_chunk=st.integers(1, 40),
    slot_cap=st.integers(1, 50),
)
def test_plan_groups_rows_by_seed(seeds, max_chunk, slot_cap):
    seeds = np.array(seeds)
    n_dev = jax.local_device_count()
    layout, chunks = engine.plan(seeds, max_chunk, slot_cap)
    assert layout.groups % n_dev == 0
    assert 1 <= layout.slots <= slot_cap
    # at least one group a device, even where max_chunk is narrower (layout independence)
    assert layout.size <= max(max_chunk, n_dev * layout.slots)
    assert all(c.shape == (layout.groups, layout.slots) for c in chunks)

    by_seed = {}  # plain Python: each seed's rows in their given order
    for row, seed in enumerate(seeds.tolist()):
        by_seed.setdefault(seed, []).append(row)
    assert layout.slots <= max(len(rows) for rows in by_seed.values())

    seen = []
    groups = [g for chunk in chunks for g in chunk]
    for k, group in enumerate(groups):
        own = _distinct_prefix(group)
        assert len(set(seeds[own])) == 1  # one seed a group
        if k and np.array_equal(group, groups[k - 1]):
            continue  # a padding group of the last chunk
        rows = by_seed[int(seeds[own[0]])]
        start = rows.index(int(own[0]))
        assert own.tolist() == rows[start : start + len(own)]  # a run of the seed's rows
        seen += own.tolist()
    assert sorted(seen) == list(range(len(seeds)))  # every row exactly once


def test_plan_fills_wide_groups_and_every_device():
    n_dev = jax.local_device_count()
    layout, chunks = engine.plan(np.zeros(1024, int), slot_cap=20)
    assert layout.slots == 20 and len(chunks) == 1
    # no cap: the seed's one group, whatever the device count (the groups axis is padded to
    # a multiple of it: a group's width never depends on the devices)
    layout, _ = engine.plan(np.zeros(1024, int))
    assert layout == engine.Layout(n_dev, 1024)
    # 144 runs a seed, at most 100 a group: two even groups of 72, not 100 + 44 padded
    layout, chunks = engine.plan(np.repeat(np.arange(10), 144), max_chunk=300, slot_cap=100)
    if n_dev <= 2:
        assert layout.slots == 72
        assert layout.groups == 4 and len(chunks) == 5  # 20 groups in even chunks of 4
    assert layout.size <= 300 and len(chunks) * layout.size >= 1440
    # 4096 runs of one seed in chunks of at most 4096: two even chunks, not 4080 + 16
    layout, chunks = engine.plan(np.zeros(4096, int), slot_cap=20)
    assert len(chunks) == 2 and layout.size * 2 - 4096 < 2 * 20 * n_dev


def test_max_slots_makes_the_first_product_about_1024_wide():
    static, _ = _group(SMALL)
    assert engine.max_slots(static) == engine.WIDE_COLUMNS // 8
    wide = static._replace(task=tasks.Classifier(model=MLPConfig(hidden=(4096,))))
    assert engine.max_slots(wide) == 1


def _group(sweep):
    runs = expand(sweep)
    ((static, index),) = list(spec.static_groups(sweep, runs))
    return static, spec.run_data(static, runs.loc[index])


def _dot_shapes(jaxpr) -> list[tuple[tuple, tuple]]:
    """(lhs shape, rhs shape) of every dot_general in ``jaxpr`` and the jaxprs inside it."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "dot_general":
            found.append(tuple(tuple(v.aval.shape) for v in eqn.invars))
        for param in eqn.params.values():
            for sub in param if isinstance(param, tuple | list) else (param,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    found += _dot_shapes(inner)
    return found


def test_the_minibatch_is_shared_by_a_seed_group():
    """The first layer's product takes the [batch, features] minibatch itself (gathered once
    for the group) against all the group's kernels [slots, features, width]; with two
    features the bias rides in the product (BiasTrickDense): one more column and row."""
    static, runs = _group(dataclasses.replace(SMALL, seeds=(0,)))
    slots = 5
    grouped = engine.take(runs, np.arange(slots)[None, :])  # one group of 5 runs
    orders = engine.group_orders(static, runs, np.zeros((1, slots), int))
    jaxpr = jax.make_jaxpr(engine.make_train(static))(engine.arrays_for(static), grouped, orders)
    shapes = _dot_shapes(jaxpr.jaxpr)
    features, width, batch = 2 + 1, 8, static.batch_size
    assert ((batch, features), (slots, features, width)) in shapes
    # no product takes a per-run copy of the minibatch
    assert not [s for s in shapes if s[0] in ((slots, batch, 2), (slots, batch, features))]


@pytest.mark.slow
@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 1e-5)])
def test_every_layout_gives_the_same_runs(dtype, rtol, x64):
    """Each run alone in its group (slots 1: no shared product) vs groups of 2 and of 5:
    float64 agrees to rounding; float32 to ~1e-6 (products of other widths round
    differently)."""
    static, runs = _group(dataclasses.replace(SMALL, dtype=dtype))
    alone, _ = engine.train_group(static, runs, slots=1)
    for slots in (2, 5):
        grouped, _ = engine.train_group(static, runs, slots=slots)
        for a, b in zip(alone, grouped, strict=True):
            np.testing.assert_allclose(b, a, rtol=rtol)


@pytest.mark.slow
def test_runner_chunks_follow_the_plan():
    """A sweep in chunks of at most 4 runs trains each chunk once and returns every run."""
    sweep = dataclasses.replace(SMALL, seeds=(0, 1))
    runs, history, timing = runner.train(sweep, max_chunk=4)
    layout, chunks = engine.plan_group(_group(sweep)[0], runs["seed"].to_numpy(), 4)
    assert timing["chunks"] == len(chunks) and timing["trained_runs"] == len(runs)
    assert np.isfinite(history.train_loss).all()
