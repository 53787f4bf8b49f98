"""The engine: one program per static group, common random numbers, isolation, determinism."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lrbench import data, engine, models, probes, results, runner, spec
from lrbench.errors import ConfigError
from lrbench.models import MLPConfig
from lrbench.sweep import Optimizer, Schedule, Sweep
from lrbench.sweep import expand as sweep_expand

SMALL = Sweep(
    experiment="test",
    dataset="blobs",
    model=MLPConfig(hidden=(8,)),
    epochs=4,
    batch_size=64,
    lrs=(0.1, 0.01),
    seeds=(0, 1),
)


def _train(sweep):
    runs, history, timing = runner.train(sweep)
    return runs, history, timing


@pytest.mark.slow
def test_one_program_per_optimizer_and_impl():
    sweep = dataclasses.replace(
        SMALL,
        optimizers=(Optimizer("sgd"), Optimizer("momentum", {"momentum": (0.5, 0.9)})),
        impls=("hand", "optax"),
    )
    runs, history, timing = _train(sweep)
    assert timing["programs"] == 4
    assert len(runs) == (1 + 2) * 2 * 2 * 2
    assert history.test_acc.shape == (len(runs), sweep.epochs)


@pytest.mark.slow
def test_alone_equals_inside_grid():
    """A run alone and inside a 64-run grid: final test loss within 1e-5 relative."""
    lone = dataclasses.replace(SMALL, lrs=(0.05,), seeds=(3,), epochs=10)
    grid = dataclasses.replace(
        lone, lrs=tuple(float(x) for x in np.geomspace(1e-3, 0.5, 16)) + (0.05,), seeds=(0, 1, 2, 3)
    )
    runs1, h1, _ = _train(lone)
    runs64, h64, _ = _train(grid)
    assert len(runs64) == 68
    row = runs64.index[(runs64["lr"] == 0.05) & (runs64["seed"] == 3)][0]
    assert runs64.loc[row, "run_id"] == runs1.loc[0, "run_id"]
    np.testing.assert_allclose(h64.test_loss[row, -1], h1.test_loss[0, -1], rtol=1e-5)
    np.testing.assert_allclose(h64.train_loss[row], h1.train_loss[0], rtol=1e-5)


@pytest.mark.slow
def test_same_grid_twice_is_bitwise_identical():
    sweep = dataclasses.replace(SMALL, lrs=(1.0, 0.1, 0.01, 1e-3), seeds=(0, 1, 2, 3))
    _, a, _ = _train(sweep)
    _, b, _ = _train(sweep)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_common_random_numbers():
    """Same seed: same initial weights whatever the learning rate; other seeds differ."""
    sweep = dataclasses.replace(SMALL, lrs=(1e-7, 0.1, 0.5), seeds=(0, 1))
    runs, h, _ = _train(sweep)
    init = runs.assign(init=h.initial_train_loss).groupby("seed")["init"]
    assert (init.nunique() == 1).all()
    assert init.first().nunique() == 2
    # lr 1e-7 barely moves the weights: its first-epoch loss is the initial loss.
    tiny = runs.index[runs["lr"] == 1e-7]
    np.testing.assert_allclose(h.train_loss[tiny, 0], h.initial_train_loss[tiny], rtol=1e-3)


@pytest.mark.slow
def test_matches_a_plain_optax_loop(x64):
    """Independent re-derivation: the same run written as a plain Python loop over optax
    (float64, so the comparison is tight; ``test_probes_match_a_plain_optax_loop`` below checks
    every step of such a loop, with momentum and a schedule)."""
    sweep = dataclasses.replace(
        SMALL, lrs=(0.05,), seeds=(7,), epochs=3, batch_size=96, dtype="float64"
    )
    _, h, _ = _train(sweep)
    ds = data.load("blobs")
    net = models.build(sweep.model, ds.num_classes)
    init_key, order_key = jax.random.split(jax.random.PRNGKey(7))
    params = net.init(init_key, jnp.asarray(ds.x_train[:1]))["params"]
    params = jax.tree_util.tree_map(lambda p: p.astype(jnp.float64), params)
    x_train, x_test = ds.x_train.astype(np.float64), ds.x_test.astype(np.float64)
    tx = optax.sgd(0.05)
    state = tx.init(params)

    def loss_fn(p, x, y):
        logits = net.apply({"params": p}, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    n = len(ds.x_train)
    for epoch in range(sweep.epochs):
        order = np.asarray(jax.random.permutation(jax.random.fold_in(order_key, epoch), n))
        total = 0.0
        for lo in range(0, n, sweep.batch_size):  # the last batch is partial (20 rows)
            idx = order[lo : lo + sweep.batch_size]
            loss, g = jax.value_and_grad(loss_fn)(params, x_train[idx], ds.y_train[idx])
            updates, state = tx.update(g, state, params)
            params = optax.apply_updates(params, updates)
            total += float(loss) * len(idx)
        np.testing.assert_allclose(h.train_loss[0, epoch], total / n, rtol=1e-10)
    logits = net.apply({"params": params}, x_test)
    acc = float(np.mean(np.argmax(logits, -1) == ds.y_test))
    loss = float(optax.softmax_cross_entropy_with_integer_labels(logits, ds.y_test).mean())
    np.testing.assert_allclose(h.test_acc[0, -1], acc, atol=1e-12)
    np.testing.assert_allclose(h.test_loss[0, -1], loss, rtol=1e-10)


def test_new_values_never_recompile(compile_counter):
    """Learning rates, schedules, hyperparameters and seeds are data: no new compilation."""
    base = dataclasses.replace(
        SMALL,
        optimizers=(Optimizer("momentum", {"momentum": 0.9}),),
        schedules=(Schedule("constant"), Schedule("step", {"gamma": 0.5, "step_size": 2})),
    )
    _train(base)  # warm: compiles the program and every incidental op
    other = dataclasses.replace(
        base,
        lrs=(0.3, 0.003),
        seeds=(5, 6),
        optimizers=(Optimizer("momentum", {"momentum": 0.5}),),
        schedules=(
            Schedule("exponential", {"decay_rate": 0.5}),
            Schedule("time_based", {"decay": 0.1}),
        ),
    )
    with compile_counter.counting():
        _, h, timing = _train(other)
    assert compile_counter.count == 0
    assert timing["compile_seconds"] == 0.0
    # ...and the new values were really used: the applied rates follow the new schedules.
    np.testing.assert_allclose(h.lr[0, :3], [0.3, 0.15, 0.075], rtol=1e-6)


def test_schedule_reaches_the_update():
    """The recorded learning rate is the one applied: halving it halves the first step."""
    sweep = dataclasses.replace(
        SMALL,
        lrs=(0.2,),
        seeds=(0,),
        epochs=3,
        schedules=(Schedule("step", {"step_size": 1, "gamma": 0.5}),),
    )
    _, h, _ = _train(sweep)
    np.testing.assert_allclose(h.lr[0], [0.2, 0.1, 0.05], rtol=1e-6)


def test_divergence_is_frozen_and_isolated():
    """lr 1e3 diverges: frozen, NaN afterwards, and its neighbours are untouched bit for bit."""
    near = dataclasses.replace(SMALL, lrs=(1e3, 0.01), seeds=(0,), epochs=6)
    far = dataclasses.replace(near, lrs=(1e-3, 0.01))
    runs, h, _ = _train(near)
    _, h2, _ = _train(far)
    assert h.diverged_at[0] >= 1
    after = h.diverged_at[0] - 1
    assert np.isnan(h.train_loss[0, after:]).all()
    np.testing.assert_array_equal(h.test_loss[1], h2.test_loss[1])
    np.testing.assert_array_equal(h.train_loss[1], h2.train_loss[1])


@pytest.mark.slow
@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-12), ("float32", 1e-4)])
def test_chunks_equal_one_program(dtype, rtol, x64):
    """Chunks of 3 runs (seed groups of 3, and of 1 where a seed's 5 runs leave a rest) give
    the whole grid in one chunk (groups of 5). float64 agrees to rounding. In float32,
    products of other widths round differently and training amplifies it: 1.7e-5 of the
    fourth-epoch loss of one run (lr 0.03), under 1e-6 for the rest."""
    lrs = (0.3, 0.1, 0.03, 0.01, 0.003)
    sweep = dataclasses.replace(SMALL, lrs=lrs, seeds=(0, 1), dtype=dtype)
    whole = runner.train(sweep)[1]
    chunked = runner.train(sweep, max_chunk=3)[1]
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol)


@pytest.mark.slow
def test_float64(x64):
    sweep = dataclasses.replace(SMALL, dtype="float64", lrs=(0.1,), seeds=(0,))
    _, h, _ = _train(sweep)
    assert h.train_loss.dtype == np.float64
    assert np.isfinite(h.train_loss).all()


def test_steps_per_epoch_counts_the_partial_batch():
    assert engine.steps_per_epoch(500, 32) == 16
    assert engine.steps_per_epoch(512, 32) == 16


@pytest.mark.parametrize("lr", [1e-6, 1e-7])
def test_default_sweep_claims(default_sweep_result, lr):
    """The MLM tutorial: lr 1e-6 and 1e-7 learn nothing (below 50% test accuracy)."""
    runs = default_sweep_result
    assert runs.loc[runs["lr"] == lr, "final_test_acc"].mean() < 0.5


def test_default_sweep_lr_ordering(default_sweep_result):
    """The MLM tutorial: 1e-1 ... 1e-3 learn, more slowly as the rate falls: 0.1 beats 1e-3."""
    acc = default_sweep_result.groupby("lr")["final_test_acc"].mean()
    assert acc[0.1] > acc[1e-3]
    assert acc[0.1] > 0.75


@pytest.fixture(scope="module")
def default_sweep_result():
    import experiments

    sweep = experiments.load("blobs_lr").get_config()
    assert sweep.epochs == 200 and sweep.batch_size == 32 and len(sweep.seeds) == 5
    return runner.run(sweep).runs


@pytest.mark.slow
@pytest.mark.parametrize("k", [0, 2, 3])
def test_validation_freq_evaluates_every_k_epochs(k):
    """Keras' ``validation_freq``: epochs k, 2k, ... hold the every-epoch run's test metrics,
    the others NaN; training and the run ids do not change."""
    plateau = Schedule("reduce_on_plateau", {"monitor": 0, "patience": 1, "factor": 0.5})
    every = dataclasses.replace(SMALL, epochs=6, schedules=(Schedule("constant"), plateau))
    runs1, h1, _ = _train(every)
    runs_k, h_k, _ = _train(dataclasses.replace(every, validation_freq=k))
    assert list(runs_k["run_id"]) == list(runs1["run_id"])
    np.testing.assert_allclose(h_k.train_loss, h1.train_loss, rtol=1e-6)
    np.testing.assert_allclose(h_k.lr, h1.lr, rtol=1e-6)  # a train-loss plateau acts alike
    np.testing.assert_allclose(h_k.initial_train_loss, h1.initial_train_loss, rtol=1e-6)
    evaluated = np.array([k > 0 and (e + 1) % k == 0 for e in range(every.epochs)])
    for name in ("test_loss", "test_acc"):
        got, want = getattr(h_k, name), getattr(h1, name)
        assert np.isnan(got[:, ~evaluated]).all()
        np.testing.assert_allclose(got[:, evaluated], want[:, evaluated], rtol=1e-6)
    runs, _ = results.build(runs_k, h_k, every.target_acc)
    last = np.flatnonzero(evaluated)[-1] if evaluated.any() else None
    want_final = h1.test_acc[:, last] if last is not None else np.full(len(runs), np.nan)
    np.testing.assert_allclose(runs["final_test_acc"], want_final, rtol=1e-6)


@pytest.mark.parametrize("k", [-1, 1.5, True])
def test_validation_freq_must_be_a_whole_number(k):
    with pytest.raises(ConfigError, match="validation_freq"):
        dataclasses.replace(SMALL, validation_freq=k).validate()


def test_validation_freq_needs_every_epoch_for_a_test_monitor():
    plateau = dataclasses.replace(SMALL, validation_freq=2)
    for monitor in (1, 2):  # test_loss, test_acc
        sched = Schedule("reduce_on_plateau", {"monitor": monitor})
        with pytest.raises(ConfigError, match="validation_freq=2 must be 1"):
            dataclasses.replace(plateau, schedules=(sched,)).validate()
    on_train = Schedule("reduce_on_plateau", {"monitor": 0})
    dataclasses.replace(plateau, schedules=(on_train,)).validate()


@pytest.mark.slow
@pytest.mark.parametrize("k", [0, 2])
def test_results_folder_without_every_epoch_evaluated(k, tmp_path, monkeypatch):
    """The summary table and the curves figure of a sweep with ``validation_freq`` k: the
    final training loss when nothing is evaluated, and lines through the evaluated epochs."""
    import matplotlib.axes

    drawn, plot = [], matplotlib.axes.Axes.plot

    def record(self, x, y, *args, **kwargs):
        drawn.append(np.asarray(y, float))
        return plot(self, x, y, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", record)
    sweep = dataclasses.replace(SMALL, epochs=4, validation_freq=k)
    result = runner.run(sweep, out=tmp_path / "out")
    table = (tmp_path / "out" / "table.csv").read_text()
    column = "final_train_loss" if k == 0 else "final_test_acc"
    assert table.splitlines()[0] == f"lr,{column}"
    for lr, row in result.runs.groupby("lr")[column].agg(["mean", "std"]).iterrows():
        assert f"{lr:g},{row['mean']:.3f} ± {row['std']:.3f}" in table
    assert drawn and all(len(y) == (4 if k == 0 else 2) and np.isfinite(y).all() for y in drawn)


# ---------------------------------------------------------------------------------------------
# Probes: step-resolution records and final parameters

ANNEAL = Schedule("inverse_time", {"decay_rate": 1.0, "decay_steps": 4.0, "unit": "step"})


@pytest.mark.slow
def test_probes_match_a_plain_optax_loop(x64):
    """Every step's minibatch loss, learning rate, full training-set loss and parameters, and
    the final parameters, against a plain Python loop over optax (float64; the learning rate
    ``η_k = 0.05 / (1 + k/4)`` written out here, the last minibatch of each epoch partial)."""
    sweep = dataclasses.replace(
        SMALL, lrs=(0.05,), seeds=(7,), epochs=2, batch_size=96, dtype="float64",
        optimizers=(Optimizer("momentum", {"momentum": 0.9}),), schedules=(ANNEAL,),
    )  # fmt: skip
    names = ("loss", "lr", "train_loss", "params")
    got = probes.train(sweep, probes=names, final_params=True)
    ds = data.load("blobs")
    net = models.build(sweep.model, ds.num_classes)
    init_key, order_key = jax.random.split(jax.random.PRNGKey(7))
    params = net.init(init_key, jnp.asarray(ds.x_train[:1]))["params"]
    params = jax.tree_util.tree_map(lambda p: p.astype(jnp.float64), params)
    x_train = ds.x_train.astype(np.float64)
    # optax counts steps in int32; the rate is computed in float64 as the engine's is
    tx = optax.sgd(lambda k: 0.05 / (1 + k.astype(jnp.float64) / 4), momentum=0.9)
    state = tx.init(params)

    def loss_fn(p, x, y):
        logits = net.apply({"params": p}, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    n, k = len(ds.x_train), 0
    for epoch in range(sweep.epochs):
        order = np.asarray(jax.random.permutation(jax.random.fold_in(order_key, epoch), n))
        for lo in range(0, n, sweep.batch_size):
            idx = order[lo : lo + sweep.batch_size]
            loss, g = jax.value_and_grad(loss_fn)(params, x_train[idx], ds.y_train[idx])
            updates, state = tx.update(g, state, params)
            params = optax.apply_updates(params, updates)
            step = {name: a[0, k] for name, a in got.probes.steps.items() if name != "params"}
            np.testing.assert_allclose(step["loss"], loss, rtol=1e-12)
            np.testing.assert_allclose(step["lr"], 0.05 / (1 + k / 4), rtol=1e-14)
            np.testing.assert_allclose(
                step["train_loss"], loss_fn(params, x_train, ds.y_train), rtol=1e-12
            )
            jax.tree_util.tree_map(
                lambda a, b, k=k: np.testing.assert_allclose(a[0, k], b, rtol=1e-12),
                got.probes.steps["params"],
                params,
            )
            k += 1
    assert got.probes.steps["loss"].shape == (1, k)
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a[0], b, rtol=1e-12), got.probes.params, params
    )


@pytest.mark.slow
def test_probes_leave_the_training_bitwise_unchanged():
    """The same grid with and without probes: identical histories, bit for bit."""
    sweep = dataclasses.replace(SMALL, lrs=(1.0, 0.1), seeds=(0, 1), schedules=(ANNEAL,))
    _, plain, _ = _train(sweep)
    got = probes.train(sweep, probes=("loss", "train_loss"), final_params=True)
    for a, b in zip(plain, got.history, strict=True):
        np.testing.assert_array_equal(a, b)
    # The per-epoch training loss is the sample-weighted mean of the step losses.
    n, batch = 500, SMALL.batch_size
    sizes = np.diff(np.minimum(np.arange(0, n + batch, batch), n)).astype(np.float32)
    per_epoch = got.probes.steps["loss"].reshape(4, sweep.epochs, -1) @ sizes / n
    np.testing.assert_allclose(per_epoch, plain.train_loss, rtol=1e-6)


def test_unknown_probe_names_its_field():
    static = next(iter(spec.static_groups(SMALL, sweep_expand(SMALL))))[0]
    with pytest.raises(ConfigError, match="probes"):
        engine.make_train(static._replace(probes=("hessian",)))
    with pytest.raises(ConfigError, match="probes"):
        engine.train_group(static._replace(final_params=True), None)


@pytest.mark.slow
def test_compiled_programs_are_kept_within_a_bound(monkeypatch):
    """Each kept executable keeps its machine code mapped: past ``KEEP_EXECUTABLES`` device
    copies the least recently used program is dropped (a ~100-program study on 2 devices
    kept every one and ran out of memory maps: LLVM 'Unable to allocate section memory')."""
    monkeypatch.setattr(engine, "_COMPILED", {})
    monkeypatch.setattr(engine, "KEEP_EXECUTABLES", jax.local_device_count())  # one program
    first = dataclasses.replace(SMALL, epochs=1)
    _train(first)
    _train(SMALL)
    assert len(engine._COMPILED) == 1
    ((static, *_),) = engine._COMPILED
    assert static.epochs == SMALL.epochs  # the newest is the one kept
    runs, _, timing = _train(SMALL)
    assert timing["programs"] == 1 and timing["compile_seconds"] == 0.0  # and reused


def test_packed_runs_unpack_to_the_runs():
    """The runs travel to the program packed (a few arrays); unpacked they are the fields."""
    static, rows = next(iter(spec.static_groups(SMALL, sweep_expand(SMALL))))
    runs = engine.take(spec.run_data(static, sweep_expand(SMALL).loc[rows]), np.arange(4)[None])
    exe, _ = engine.compiled(static, engine.Layout(jax.local_device_count(), 4), ("",)[:0])
    packed = exe.pack(runs)
    assert len(jax.tree_util.tree_leaves(packed)) <= 3 < len(jax.tree_util.tree_leaves(runs))
    back = engine.unpack_runs(exe.template, packed)
    for a, b in zip(jax.tree_util.tree_leaves(back), jax.tree_util.tree_leaves(runs), strict=True):
        assert np.asarray(a).dtype == np.asarray(b).dtype
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "optimizer",
    [Optimizer("sgd"), pytest.param(Optimizer("adam"), marks=pytest.mark.slow)],
    ids=str,
)
def test_one_run_skips_padding_devices_and_orders_on_device(optimizer):
    """A one-run grid: its numbers are those of the same run inside a wider chunk (the
    padding devices are not run; its orders, made inside its device's program, are the
    host's), bit for bit: Adam's update (a division by a root) is the one that rounds
    differently when a program fuses otherwise."""
    one = dataclasses.replace(SMALL, lrs=(0.1,), seeds=(1,), optimizers=(optimizer,))
    static, rows = next(iter(spec.static_groups(one, sweep_expand(one))))
    runs = spec.run_data(static, sweep_expand(one).loc[rows])
    alone, _ = engine.train_group(static, runs)
    names = tuple(sorted(runs.hparams))
    assert engine.compiled(static, engine.plan_group(static, runs.seed)[0], names)[0].own_orders
    host = data.minibatch_orders(np.array([1]), static.epochs, engine.train_size(static))
    orders = jax.jit(engine._seed_orders, static_argnums=(1, 2))
    np.testing.assert_array_equal(orders(np.int32(1), static.epochs, len(host[0, 0])), host)
    assert np.isfinite(alone.train_loss).all() and (alone.diverged_at == 0).all()
    # the run as 2 groups a device: each device's orders come from the host
    copies = 2 * jax.local_device_count()
    many = jax.tree_util.tree_map(lambda x: np.concatenate([x] * copies), runs)
    layout = engine.plan_group(static, many.seed, slots=1)[0]
    assert not engine.compiled(static, layout, names)[0].own_orders
    both, _ = engine.train_group(static, many, slots=1)
    for a, b in zip(alone, both, strict=True):
        for k in range(copies):
            np.testing.assert_array_equal(a[0], b[k])


@pytest.mark.parametrize(
    "seeds", [(0,), pytest.param((0, 1), marks=pytest.mark.slow)], ids=["one seed", "two seeds"]
)
def test_runs_in_order_skip_the_gather_and_scatter_bitwise(seeds, monkeypatch):
    """A small grid whose chunk is its runs in their own order goes in and comes back
    reshaped (``DevicePrograms.rows``): its histories are the gathered and scattered
    path's, bit for bit, and writable; a second call (its plan and program remembered)
    gives them again."""
    sweep = dataclasses.replace(SMALL, seeds=seeds, optimizers=(Optimizer("adam"),))
    runs_table = sweep_expand(sweep).sort_values("seed", kind="stable")
    static, rows = next(iter(spec.static_groups(sweep, runs_table)))
    runs = spec.run_data(static, runs_table.loc[rows])
    assert engine._prepared(static, runs, 4096, None)[2]  # laid out in order
    fast, _ = engine.train_group(static, runs)
    again, _ = engine.train_group(static, runs)
    prepared = engine._prepared

    def in_no_order(*args):
        layout, chunks, _, exe, compile_s = prepared(*args)
        return layout, chunks, 0, exe, compile_s

    monkeypatch.setattr(engine, "_prepared", in_no_order)
    slow, _ = engine.train_group(static, runs)
    for a, b, c in zip(fast, again, slow, strict=True):
        assert a.flags.writeable and a.shape == c.shape and a.dtype == c.dtype
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, c)
    assert np.isfinite(fast.train_loss).all()
