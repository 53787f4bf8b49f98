"""``lrbench bench``: what a whole grid costs, against other ways of running the same work.

Methods, on identical work (same N runs × steps × batch, same initialisation, same
minibatches, same per-step learning rates):

``lrbench``  the engine: every run in one jitted program (seed groups vmapped, chunked).
``b1``       a Python loop over runs, each a jitted whole-run ``lax.scan`` with the learning
             rate traced (compiles once): the engine's program for one run, its minibatch
             orders computed inside it.
``b2``       a Python loop calling a jitted train *step* once per step (the flax-example
             style).
``c``        a PyTorch eager loop over runs (``lrbench.bench_torch``), threads = cores.
``c′``       ``torch.func.vmap`` over stacked models with a hand-written update.
``roof``     a large dense float32 GEMM: the machine's practical FLOP/s ceiling.

Loops (b1, b2, c) are timed on their first ``*_runs`` runs: their throughput per run does
not depend on N. Reported: model-steps/s (runs × optimizer steps per second), samples/s,
achieved GFLOP/s (≈ 6·P·B FLOPs per model-step: forward 2·P·B, backward 4·P·B), compile
seconds apart, the median of ``repeats`` timings, the largest difference of a run's final
training loss from the engine's, and peak memory: XLA's own account of a compiled program
(arguments + outputs + temporaries) and the resident-set high-water mark of a fresh process
running the method once (:func:`rss_peak`).

``lever_times`` times the engine's speed levers on the blobs workload at N = 1024.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from lrbench import bench_torch, data, engine, models, report, results, schedules, spec
from lrbench.models import MLPConfig
from lrbench.sweep import Optimizer, Schedule, Sweep, expand

WORKLOADS = {
    "blobs 2-50-3 b32": ("blobs", MLPConfig((50,), "relu", "he_uniform"), 32),
    "digits 64-256-256-10 b128": ("digits", MLPConfig((256, 256), "relu", "he_uniform"), 128),
}
SIZES = (1, 8, 64, 256, 1024, 4096)
QUICK_SIZES = (1, 8, 64)
SCHEDULES = (
    Schedule("constant"),
    Schedule("step", {"step_size": 2, "gamma": 0.5}),
    Schedule("exponential", {"decay_rate": 0.9}),
    Schedule("time_based", {"decay": 1e-3}),
)
LEVER_WORKLOAD, LEVER_N = "blobs 2-50-3 b32", 1024
MIB = 2**20


def sweep_for(workload: str, n: int, epochs: int) -> Sweep:
    """``n`` runs of SGD with momentum over a mix of schedules and learning rates.

    Training only (``validation_freq=0``), as every baseline: no method evaluates the test
    set, so all do the same work (the levers table shows what a per-epoch evaluation costs).
    """
    dataset, model, batch = WORKLOADS[workload]
    n_lrs = max(1, n // len(SCHEDULES)) if n >= len(SCHEDULES) else n
    lrs = tuple(float(v) for v in np.geomspace(1e-3, 1e-1, n_lrs))
    scheds = SCHEDULES if n >= len(SCHEDULES) else SCHEDULES[:1]
    return Sweep(
        experiment="bench",
        dataset=dataset,
        model=model,
        epochs=epochs,
        batch_size=batch,
        lrs=lrs,
        optimizers=(Optimizer("momentum", {"momentum": 0.9}),),
        schedules=scheds,
        seeds=(0,),
        validation_freq=0,
    )


def num_params(sizes: list[int]) -> int:
    """Weights and biases of a dense network with layer widths ``sizes`` (inputs first)."""
    return sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:], strict=True))


def flops_per_step(workload: str) -> int:
    """6·P·B: a dense layer's forward is 2·P·B FLOPs, its backward (input and weight
    gradients) 4·P·B; activations, loss and update are lower order."""
    dataset, model, batch = WORKLOADS[workload]
    ds = data.load(dataset)
    return 6 * num_params([ds.num_features, *model.hidden, ds.num_classes]) * batch


def _time(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` calls of ``fn`` (:func:`_rounds` of one method)."""
    return statistics.median(seconds for seconds, _ in _rounds([_clocked(fn)], repeats)[0])


def gemm_roof(size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a dense float32 ``size × size`` matmul."""
    a = jnp.ones((size, size), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    seconds = _time(lambda: f(a).block_until_ready(), repeats)
    return 2 * size**3 / seconds / 1e9


def group(workload: str, n: int, epochs: int) -> tuple[engine.Static, engine.RunData]:
    sweep = sweep_for(workload, n, epochs)
    runs = expand(sweep)
    ((static, index),) = list(spec.static_groups(sweep, runs))
    return static, spec.run_data(static, runs.loc[index])


def problem(static: engine.Static, runs: engine.RunData) -> bench_torch.Problem:
    """The engine's work as NumPy arrays, computed as the engine computes it.

    Initial weights and minibatch orders come from each seed exactly as in
    ``engine.make_train``; the learning rate of every step is the run's base rate times
    ``schedules.evaluate``.
    """
    ds = static.task.data()
    net = models.build(static.task.model, ds.num_classes)
    n_train, spe = len(ds.x_train), engine.steps_per_epoch(len(ds.x_train), static.batch_size)
    seeds, which = np.unique(runs.seed, return_inverse=True)
    inits = []
    x = jnp.asarray(ds.x_train[:1], jnp.float32)
    for seed in seeds:
        params = net.init(data.seed_keys(int(seed))[0], x)["params"]
        inits.append([params[f"Dense_{i}"] for i in range(len(params))])
    orders = data.minibatch_orders(seeds, static.epochs, n_train)
    layers = [
        tuple(
            np.stack([np.asarray(p[i][name], np.float32) for p in inits])
            for name in ("kernel", "bias")
        )
        for i in range(len(inits[0]))
    ]
    steps = jnp.arange(engine.total_steps(static))

    def factors(kind, params, unit):
        return jax.vmap(lambda t: schedules.evaluate(kind, params, unit, t, spe))(steps)

    factor = jax.vmap(factors)(runs.schedule_kind, runs.schedule_params, runs.unit_is_step)
    lr = (jnp.asarray(runs.lr)[:, None] * factor).astype(jnp.float32)
    return bench_torch.Problem(
        x_train=np.asarray(ds.x_train, np.float32),
        y_train=np.asarray(ds.y_train),
        layers=layers,
        orders=orders,
        which=which.astype(np.int64),
        lr=np.asarray(lr),
        momentum=np.asarray(runs.hparams["momentum"], np.float32),
        batch_size=static.batch_size,
    )


def _b2_state(prob: bench_torch.Problem, i: int):
    """Run ``i``'s initial parameters and SGD-momentum state, as b2's step takes them."""
    j = prob.which[i]
    p = {
        f"Dense_{k}": {"kernel": jnp.asarray(w[j]), "bias": jnp.asarray(b[j])}
        for k, (w, b) in enumerate(prob.layers)
    }
    return p, optax.sgd(1.0, momentum=0.9).init(p)


def _b2_step(static: engine.Static, prob: bench_torch.Problem):
    return _train_step(static.task.model, int(prob.layers[-1][1].shape[-1]))


def per_step_bytes(static: engine.Static, prob: bench_torch.Problem) -> int:
    """XLA's account of b2's single-step program (a full minibatch)."""
    p, s = _b2_state(prob, 0)
    idx = prob.orders[0, 0, : prob.batch_size]
    x, y = jnp.asarray(prob.x_train[idx]), jnp.asarray(prob.y_train[idx])
    return _program_bytes(_b2_step(static, prob).lower(p, s, x, y, 0.1, 0.9).compile())


def per_step_loop(
    static: engine.Static, prob: bench_torch.Problem, k: int
) -> tuple[float, np.ndarray]:
    """b2: a jitted single train step called from Python, for runs 0 … k−1.

    Returns (seconds, final epoch's mean training loss per run).
    """
    step = _b2_step(static, prob)
    x, y = jnp.asarray(prob.x_train), jnp.asarray(prob.y_train)
    n_train, epochs = len(prob.x_train), prob.orders.shape[1]
    p, s = _b2_state(prob, 0)
    batches = bench_torch._minibatches(prob, prob.orders[0, 0])
    for _, idx in (batches[0], batches[-1]):  # compile the full and the partial minibatch
        jax.block_until_ready(step(p, s, x[idx], y[idx], 0.1, 0.9))
    final = np.empty(k)
    start = time.perf_counter()  # compiled above: the loop is timed, not the compile
    for i in range(k):
        p, s = _b2_state(prob, i)
        lrs, momentum = prob.lr[i].tolist(), float(prob.momentum[i])
        for epoch in range(epochs):
            total = 0.0
            for t, idx in bench_torch._minibatches(prob, prob.orders[prob.which[i], epoch]):
                p, s, loss = step(p, s, x[idx], y[idx], lrs[epoch * prob.n_steps + t], momentum)
                total = total + loss * len(idx)
        final[i] = float(total) / n_train
    return time.perf_counter() - start, final


@functools.cache
def _train_step(model: MLPConfig, num_classes: int):
    """b2's jitted step (one per model, so a second loop reuses its compiled programs)."""
    net = models.build(model, num_classes)

    def loss_fn(p, xb, yb):
        logits = net.apply({"params": p}, xb)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    @jax.jit
    def step(p, s, xb, yb, lr, momentum):
        loss, g = jax.value_and_grad(loss_fn)(p, xb, yb)
        u, s = optax.sgd(lr, momentum=momentum).update(g, s, p)
        return optax.apply_updates(p, u), s, loss

    return step


_ONE_RUN: dict[tuple, Any] = {}


def _one_run_exe(static: engine.Static, run: engine.RunData):
    """(b1's executable, seconds spent compiling now): compiled once per static signature."""
    key = (static, tuple(sorted(run.hparams)))
    if key in _ONE_RUN:
        return _ONE_RUN[key], 0.0
    start = time.perf_counter()
    arrays = engine.arrays_for(static)
    train = engine.make_train(static)

    def one_run(arrays, run):  # the whole run in one program, its minibatch orders included
        orders = data.seed_orders(run.seed[0, 0], static.epochs, engine.train_size(static))
        return train(arrays, run, orders[None])

    _ONE_RUN[key] = jax.jit(one_run).lower(arrays, run).compile()
    return _ONE_RUN[key], time.perf_counter() - start


def _one_run_loop(static: engine.Static, runs: engine.RunData, k: int):
    """b1: the engine's program for one run (its orders inside), jitted on one device, called
    for runs 0 … k−1.

    Returns (the loop, returning each run's final-epoch loss; compile seconds; program bytes).
    """
    arrays = engine.arrays_for(static)
    one = [engine.take(runs, np.array([[i]])) for i in range(k)]  # a [1, 1] layout each
    exe, compile_s = _one_run_exe(static, one[0])

    def go():
        losses = [exe(arrays, run).train_loss[0, 0, -1] for run in one]
        return np.asarray(jax.block_until_ready(jnp.stack(losses)))

    return go, compile_s, _program_bytes(exe)


def _program_bytes(compiled) -> int:
    """XLA's account of a compiled program's peak: arguments + outputs + temporaries."""
    m = compiled.memory_analysis()
    if m is None:
        return -1
    return int(
        m.argument_size_in_bytes
        + m.output_size_in_bytes
        + m.temp_size_in_bytes
        - m.alias_size_in_bytes
    )


def _engine_exe(static: engine.Static, runs: engine.RunData, max_chunk: int = 4096):
    layout, _ = engine.plan_group(static, runs.seed, max_chunk)
    return engine.compiled(static, layout, tuple(sorted(runs.hparams)))


def _median_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Median |a − b| over the runs where both are finite."""
    d = np.abs(np.asarray(a, float) - np.asarray(b, float))
    d = d[np.isfinite(d)]
    return float(np.median(d)) if len(d) else float("nan")


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a − b| over runs; inf when only one of the two is finite."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    both = np.isfinite(a) & np.isfinite(b)
    if (np.isfinite(a) != np.isfinite(b)).any():
        return float("inf")
    return float(np.max(np.abs(a[both] - b[both]), initial=0.0))


def run(
    sizes=SIZES,
    epochs: int = 2,
    repeats: int = 3,
    b1_runs: int = 64,
    b2_runs: int = 4,
    c_runs: int = 16,
    max_n: dict[str, int] | None = None,
    quiet: bool = False,
    workloads: tuple[str, ...] = tuple(WORKLOADS),
) -> pd.DataFrame:
    """One row per (workload, method, N).

    ``max_n`` caps N per workload or method name (``{"c′": 1024}``): larger grids are left out.
    """
    rows, max_n = [], max_n or {}
    loops = {"b1": b1_runs, "b2": b2_runs, "c": c_runs}
    for workload in workloads:
        for n in _capped(sizes, workload, max_n):
            rows += _measure(workload, n, epochs, repeats, loops, max_n, quiet)
    roof = gemm_roof()
    rows.append({"workload": "dense GEMM 2048", "method": "roof", "N": 1, "gflops": roof})
    return pd.DataFrame(rows)


def _capped(sizes, name: str, max_n: dict[str, int]) -> list[int]:
    return [n for n in sizes if n <= max_n.get(name, n)]


class _Method(NamedTuple):
    name: str
    timed_runs: int
    compile_s: float  # nan: nothing compiled for it here
    memory: int  # XLA program bytes, -1 when not a JAX program
    call: Callable[[], tuple[float, np.ndarray]]  # -> (seconds, final-epoch loss per timed run)


def _clocked(fn) -> Callable[[], tuple[float, np.ndarray]]:
    """A method that does not time itself: ``fn() -> loss`` as ``() -> (seconds, loss)``."""

    def call():
        start = time.perf_counter()
        loss = fn()
        return time.perf_counter() - start, loss

    return call


def _rounds(calls: list[Callable], repeats: int) -> list[list[tuple[float, Any]]]:
    """Every method's answers ``(seconds, result)`` to ``repeats`` calls, made in rounds: one
    call of each method a round, the order rotated each round, so every method meets the
    machine's slow and quick spells alike and the ratios of one run compare like with like.
    With fewer than 3 repeats an untimed round goes first: a first call's one-off costs
    (buffers, thread pools) would otherwise be the measurement; a median of 3 drops them."""
    answers: list[list] = [[] for _ in calls]
    if repeats < 3:
        for call in calls:
            call()
    for r in range(repeats):
        for i in np.roll(np.arange(len(calls)), -r):
            answers[i].append(calls[i]())
    return answers


def _measure(workload, n, epochs, repeats, loops, max_n, quiet) -> list[dict]:
    """Every method on one grid of ``n`` runs: one row each."""
    static, rundata = group(workload, n, epochs)
    prob = problem(static, rundata)
    n_runs, steps, flops = len(rundata.seed), prob.lr.shape[1], flops_per_step(workload)
    nan = float("nan")

    exe, compile_s = _engine_exe(static, rundata)  # compiled here, so no repeat includes it
    lrbench = lambda: engine.train_group(static, rundata)[0].train_loss[:, -1]  # noqa: E731
    methods = [_Method("lrbench", n_runs, compile_s, _program_bytes(exe), _clocked(lrbench))]
    k = min(n_runs, loops["b1"])
    go, compile_s, memory = _one_run_loop(static, rundata, k)
    methods.append(_Method("b1", k, compile_s, memory, _clocked(go)))
    k = min(n_runs, loops["b2"])
    b2 = functools.partial(per_step_loop, static, prob, k)
    methods.append(_Method("b2", k, nan, per_step_bytes(static, prob), b2))
    if bench_torch.available():
        k = min(n_runs, loops["c"])
        bench_torch.eager_loop(prob, 1)  # untimed: PyTorch's first call sets itself up
        for name, threads in (("c", None), ("c 1-thread", 1)):
            c = functools.partial(bench_torch.eager_loop, prob, k, threads=threads)
            methods.append(_Method(name, k, nan, -1, c))
        if _capped([n_runs], "c′", max_n):
            bench_torch.vmapped(_first_run(prob))  # untimed: torch.func's first call
            cv = functools.partial(bench_torch.vmapped, prob)
            methods.append(_Method("c′", n_runs, nan, -1, cv))

    answers = _rounds([m.call for m in methods], repeats)
    reference = answers[0][-1][1]  # lrbench's final losses
    rows = []
    for m, got in zip(methods, answers, strict=True):
        seconds, loss = statistics.median(a[0] for a in got), got[-1][1]
        model_steps = m.timed_runs * steps
        rows.append(
            {
                "workload": workload, "method": m.name, "N": n_runs, "timed_runs": m.timed_runs,
                "model_steps_per_s": model_steps / seconds,
                "samples_per_s": model_steps * static.batch_size / seconds,
                "gflops": model_steps * flops / seconds / 1e9,
                "compile_s": m.compile_s or nan,  # 0: the program was compiled before
                "seconds": seconds, "max_loss_diff": _max_diff(loss, reference[: m.timed_runs]),
                "median_loss_diff": _median_diff(loss, reference[: m.timed_runs]),
                "xla_mib": m.memory / MIB if m.memory >= 0 else nan,
            }
        )  # fmt: skip
        if not quiet:
            rate = model_steps / seconds
            line = f"{workload:28s} {m.name:8s} N={n_runs:5d} {rate:12.0f} model-steps/s"
            print(line, flush=True)
    return rows


# ---------------------------------------------------------------------------------------------
# How fast the command line answers, each call a fresh process

CLI_COMMANDS = {
    "lrbench --help": ["--help"],
    "lrbench list": ["list"],
    "lrbench run nosuch (an argument error)": ["run", "nosuch"],
}


def cli_times(commands: dict[str, list[str]] | None = None, repeats: int = 3) -> pd.DataFrame:
    """Wall seconds of each command line (``label -> argv``; default :data:`CLI_COMMANDS`,
    run as ``python -m lrbench ARGS``) in a fresh process: the median of ``repeats`` calls,
    made in rounds as the methods are (:func:`_rounds`). What a user waits for before the
    command answers: interpreter start, imports and the answer itself."""
    if commands is None:
        commands = {k: [sys.executable, "-m", "lrbench", *v] for k, v in CLI_COMMANDS.items()}

    def call(argv):
        def go():
            start = time.perf_counter()
            done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ})
            return time.perf_counter() - start, done.returncode

        return go

    answers = _rounds([call(argv) for argv in commands.values()], max(repeats, 3))
    rows = []
    for label, got in zip(commands, answers, strict=True):
        seconds = [s for s, _ in got]
        rows.append(
            {
                "command": label,
                "median_s": statistics.median(seconds),
                "max_s": max(seconds),
                "calls": len(seconds),
                "exit_code": got[-1][1],
            }
        )
    return pd.DataFrame(rows)


def _cli_lines(cli: pd.DataFrame) -> list[str]:
    view = cli.assign(median_s=cli["median_s"].round(2), max_s=cli["max_s"].round(2))
    return [
        "## Command line responsiveness",
        "",
        "Wall seconds until the command answers, a fresh `python -m lrbench` process each call "
        f"(median of {int(cli['calls'].max())}, in rounds); the goal is under a second.",
        "",
        report.to_markdown(view.set_index("command").astype(str)),
        "",
    ]


# ---------------------------------------------------------------------------------------------
# What the curvature probes cost: plain steps against steps with sharpness probes

PROBE_WORKLOAD, PROBE_N, PROBE_EVERY, PROBE_ITERS = "blobs 2-50-3 b32", 256, 10, 20
# A fixed probe batch the size of a minibatch, and the whole training set (probe_batch=0).
PROBE_BATCHES = (32, 0)


def probe_overhead(workload: str = PROBE_WORKLOAD, n: int = PROBE_N, epochs: int = 2,
                   repeats: int = 3, every: int = PROBE_EVERY, iters: int = PROBE_ITERS,
                   batches: tuple[int, ...] = PROBE_BATCHES, quiet: bool = False) -> pd.DataFrame:  # fmt: skip
    """Seconds per step of the engine on ``n`` runs of ``workload``, plain and with the
    ``sharpness`` probe every ``every`` steps (``iters`` Hessian-vector products a probe,
    warm-started), its loss on each of ``batches`` (a probe batch of that many examples; 0
    the whole training set). One process, every program compiled first, the variants timed
    in interleaved rounds (:func:`_rounds`); ``ratio`` is a variant's time over plain's."""
    static, rundata = group(workload, n, epochs)
    steps = engine.total_steps(static)
    variants = {"plain": None}
    for b in batches:
        where = f"a fixed {b}-example batch" if b else "the whole training set"
        label = f"sharpness every {every} steps ({iters} HVPs, warm-started) on {where}"
        variants[label] = static._replace(
            probes=("sharpness",), probe_every=every, probe_iters=iters, probe_batch=b
        )
    compile_s = {"plain": engine.train_group(static, rundata)[1].compile_seconds}
    calls = [_clocked(lambda: engine.train_group(static, rundata)[0].train_loss)]
    for label, probed in list(variants.items())[1:]:
        compile_s[label] = engine.probe_group(probed, rundata)[2].compile_seconds
        calls.append(_clocked(lambda probed=probed: engine.probe_group(probed, rundata)[0]))
    answers = _rounds(calls, repeats)
    plain = statistics.median(a[0] for a in answers[0])
    rows = []
    for label, got in zip(variants, answers, strict=True):
        seconds = statistics.median(a[0] for a in got)
        rows.append(
            {
                "variant": label, "N": n, "steps": steps, "seconds": seconds,
                "ms_per_step": 1e3 * seconds / steps, "ratio": seconds / plain,
                "compile_s": compile_s[label] or float("nan"),  # 0: compiled before
                "repeats": repeats,
            }
        )  # fmt: skip
        if not quiet:
            print(f"probes {label:70s} {1e3 * seconds / steps:8.2f} ms/step "
                  f"{seconds / plain:6.2f}x", flush=True)  # fmt: skip
    return pd.DataFrame(rows)


def _probe_lines(table: pd.DataFrame) -> list[str]:
    view = table.assign(
        ms_per_step=table["ms_per_step"].round(2),
        ratio=table["ratio"].round(2),
        compile_s=table["compile_s"].round(2),
        seconds=table["seconds"].round(3),
    ).set_index("variant")[["N", "steps", "seconds", "ms_per_step", "ratio", "compile_s"]]
    n, repeats = int(table["N"].iloc[0]), int(table["repeats"].iloc[0])
    return [
        f"## Curvature probe overhead: {PROBE_WORKLOAD}, N = {n}",
        "",
        "Seconds per step of the whole grid, plain and with the `sharpness` probe (power "
        "iteration on Hessian-vector products, warm-started from the previous probe), measured "
        f"in one process in interleaved rounds (median of {repeats}); `ratio` is over plain "
        "(the goal: at most 2). A probe's cost is that of its Hessian-vector products on its "
        "loss's examples, paid at probed steps only (a `lax.cond` branch).",
        "",
        report.to_markdown(view.astype(str)),
        "",
    ]


# ---------------------------------------------------------------------------------------------
# Peak resident memory, each measurement in a fresh process


def _first_run(prob: bench_torch.Problem) -> bench_torch.Problem:
    return prob._replace(which=prob.which[:1], lr=prob.lr[:1], momentum=prob.momentum[:1])


def _hwm_reset() -> int:
    """Resets the kernel's resident-set high-water mark (Linux ``clear_refs`` 5); returns RSS."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status("VmRSS")


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _rss_child(method: str, workload: str, n: int, epochs: int) -> dict:
    """Runs ``method`` once after its compile; returns the RSS peak above the state before."""
    static, rundata = group(workload, n, epochs)
    prob = problem(static, rundata)
    if method == "lrbench":
        _engine_exe(static, rundata)  # compile first: the compiler's memory is not the run's
        go = lambda: engine.train_group(static, rundata)  # noqa: E731
    elif method == "b1":
        go = _one_run_loop(static, rundata, n)[0]
    elif method == "b2":
        per_step_loop(static, prob, 1)  # compiles its step programs
        go = lambda: per_step_loop(static, prob, n)  # noqa: E731
    elif method == "c":
        bench_torch.eager_loop(prob, 1)  # imports torch and initialises its kernels
        go = lambda: bench_torch.eager_loop(prob, n)  # noqa: E731
    else:
        bench_torch.vmapped(_first_run(prob))
        go = lambda: bench_torch.vmapped(prob)  # noqa: E731
    base = _hwm_reset()
    go()
    return {"rss_peak_mib": (_status("VmHWM") - base) / MIB, "rss_base_mib": base / MIB}


def rss_peak(method: str, workload: str, n: int, epochs: int, env: dict | None = None) -> dict:
    """Peak RSS growth of ``method`` on N runs, measured in a fresh Python process.

    The child builds the runs and compiles, resets the kernel's high-water mark
    (``/proc/self/clear_refs``), runs the method once and reads ``VmHWM`` from
    ``/proc/self/status``: the peak resident memory above what was resident before the run.
    """
    return _child(
        {"task": "rss", "method": method, "workload": workload, "n": n, "epochs": epochs}, env
    )


def _child(job: dict, env: dict | None = None) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "lrbench.bench", json.dumps(job)],
        env={**os.environ, **(env or {})}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_table(
    plan: list[tuple[str, str, int]], epochs: int, quiet: bool = False
) -> pd.DataFrame:
    rows = []
    for workload, method, n in plan:
        if method in ("c", "c′") and not bench_torch.available():
            continue
        rows.append(
            {
                "workload": workload,
                "method": method,
                "N": n,
                **rss_peak(method, workload, n, epochs),
            }
        )
        if not quiet:
            print(
                f"{workload:28s} {method:8s} N={n:5d} peak RSS +{rows[-1]['rss_peak_mib']:.1f} MiB",
                flush=True,
            )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Speed levers of the engine, measured


def _lever_child(workload: str, n: int, epochs: int, repeats: int) -> dict:
    """Engine throughput in this process (its device count and dtype come from the parent)."""
    static, rundata = group(workload, n, epochs)
    if jax.config.jax_enable_x64:
        static = static._replace(dtype="float64")
        rundata = spec.run_data(static, expand(sweep_for(workload, n, epochs)))
    _, timing = engine.train_group(static, rundata)
    seconds = _time(lambda: engine.train_group(static, rundata), repeats)
    return {"seconds": seconds, "compile_s": timing.compile_seconds, "devices": jax.device_count()}


def _donating(static: engine.Static, runs: engine.RunData, donate: bool):
    """The engine's program (one chunk of all runs) compiled with or without donating ``runs``."""
    fn = jax.jit(engine.program(static), donate_argnums=(1,) if donate else ())
    arrays = engine.arrays_for(static)
    positions = engine.plan_group(static, runs.seed)[1][0]
    orders = engine.group_orders(static, runs, positions)
    runs = engine.take(runs, positions)
    with warnings.catch_warnings():  # XLA says which donated buffers no output could reuse
        warnings.simplefilter("ignore", UserWarning)
        exe = fn.lower(arrays, jax.device_put(runs), orders).compile()
    return lambda: jax.block_until_ready(exe(arrays, jax.device_put(runs), orders))


def lever_times(workload: str = LEVER_WORKLOAD, n: int = LEVER_N, epochs: int = 2,
                repeats: int = 3, chunks=(128, 256, 512), quiet: bool = False) -> pd.DataFrame:  # fmt: skip
    """Model-steps/s of the engine at N runs with one lever changed at a time."""
    static, rundata = group(workload, n, epochs)
    steps = engine.total_steps(static)
    rows = []

    def record(lever, setting, seconds, compile_s=float("nan")):
        rows.append(
            {
                "lever": lever,
                "setting": setting,
                "model_steps_per_s": n * steps / seconds,
                "compile_s": compile_s or float("nan"),  # 0: compiled before
            }
        )
        if not quiet:
            print(
                f"lever {lever:22s} {setting:34s} {n * steps / seconds:12.0f} model-steps/s",
                flush=True,
            )

    job = {"task": "lever", "workload": workload, "n": n, "epochs": epochs, "repeats": repeats}
    flag = "--xla_force_host_platform_device_count="
    one = _child(job, {"XLA_FLAGS": flag + "1"})
    record("devices", "1 CPU device (fresh process)", one["seconds"], one["compile_s"])
    two = _child(job, {"XLA_FLAGS": flag + str(os.cpu_count() or 1)})
    record(
        "devices", f"{two['devices']} CPU devices, grid sharded", two["seconds"], two["compile_s"]
    )
    x64 = _child(job, {"XLA_FLAGS": flag + "1", "JAX_ENABLE_X64": "1"})
    record("dtype", "float64 (1 device, fresh process)", x64["seconds"], x64["compile_s"])

    default = engine.plan_group(static, rundata.seed)[0].slots
    for slots in sorted({1, 4, default, 64, 256, n}):
        layout = engine.plan_group(static, rundata.seed, slots=slots)[0]
        compile_s = engine.compiled(static, layout, tuple(sorted(rundata.hparams)))[1]
        seconds = _time(
            lambda slots=slots: engine.train_group(static, rundata, slots=slots), repeats
        )
        lever = "engine" if slots == default else "seed groups"
        record(lever, f"{layout.groups} groups of {layout.slots} runs", seconds, compile_s)
    for chunk in chunks:
        compile_s = _engine_exe(static, rundata, chunk)[1]
        seconds = _time(
            lambda chunk=chunk: engine.train_group(static, rundata, max_chunk=chunk), repeats
        )
        record("chunk", f"max_chunk={chunk}", seconds, compile_s)

    # a per-step lr table built before training instead of every schedule kind's closed form
    # at every step: the engine's optax-schedule path takes a table; fill it with the hand
    # schedules' own values
    prob = problem(static, rundata)
    table_static = static._replace(schedule_impl="optax")
    table_runs = rundata._replace(lr_table=(prob.lr / rundata.lr[:, None]).astype(np.float32))
    _, timing = engine.train_group(table_static, table_runs)
    seconds = _time(lambda: engine.train_group(table_static, table_runs), repeats)
    record("schedule", "lr table [N, steps] (no per-step switch)", seconds, timing.compile_seconds)

    for donate in (False, True):
        go = _donating(static, rundata, donate)
        go()
        record("donation", f"donate runs: {donate}", _time(go, repeats))

    validated = static._replace(validation_freq=1)  # what `lrbench run` does by default
    _, timing = engine.train_group(validated, rundata)
    seconds = _time(lambda: engine.train_group(validated, rundata), repeats)
    setting = "test set every epoch (validation_freq=1)"
    record("validation", setting, seconds, timing.compile_seconds)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Output


def write(table: pd.DataFrame, out: Path, config: dict, memory: pd.DataFrame | None = None,
          lever_table: pd.DataFrame | None = None, cli: pd.DataFrame | None = None,
          probe_table: pd.DataFrame | None = None) -> Path:  # fmt: skip
    def emit(folder: Path) -> None:
        table.to_csv(folder / "bench.csv", index=False)
        roof = float(table.loc[table["method"] == "roof", "gflops"].iloc[0])
        lines = ["# lrbench bench", ""]
        lines += _header(config, roof)
        for workload, frame in table[table["method"] != "roof"].groupby("workload", sort=False):
            lines += [f"## {workload}", "", "Model-steps/s (ratios: lrbench over the method):", ""]
            lines += [report.to_markdown(_speed_view(frame, roof).astype(str)), ""]
            lines += [
                "Compile seconds, |Δ final training loss| against lrbench (largest over runs, median in "
                "parentheses), XLA program MiB:",
                "",
            ]
            lines += [report.to_markdown(_detail_view(frame).astype(str)), ""]
            if memory is not None and not memory.empty:
                mem = memory[memory["workload"] == workload]
                if not mem.empty:
                    lines += ["Peak RSS above the pre-run state of a fresh process, MiB:", ""]
                    lines += [report.to_markdown(_rss_view(mem).astype(str)), ""]
            lines += _linearity(frame, memory, workload)
        if memory is not None:
            memory.to_csv(folder / "memory.csv", index=False)
        if lever_table is not None:
            lever_table.to_csv(folder / "levers.csv", index=False)
            lines += _lever_lines(lever_table)
        if cli is not None:
            cli.to_csv(folder / "cli.csv", index=False)
            lines += _cli_lines(cli)
        if probe_table is not None:
            probe_table.to_csv(folder / "probes.csv", index=False)
            lines += _probe_lines(probe_table)
        lines += _method_notes(config)
        (folder / "README.md").write_text("\n".join(lines) + "\n")
        env = results.environment()
        meta = {"config": config, "threads": os.cpu_count(), "torch": bench_torch.version(), **env}
        (folder / "meta.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
        _figure(table, folder / "throughput.png")

    return results.write_atomically(out, emit)


def _header(config: dict, roof: float) -> list[str]:
    env = results.environment()
    torch = bench_torch.version()
    absent = "absent: c and c′ skipped (`pip install -e '.[bench]'`)"
    return [
        f"Dense float32 GEMM (2048³) in the same process: **{roof:.1f} GFLOP/s** (the roof).",
        "",
        f"jax {env['versions']['jax']}, torch {torch or absent}, "
        f"{os.cpu_count()} threads, devices {env['devices']}, XLA_FLAGS={env['XLA_FLAGS']!r}; "
        f"{config.get('epochs')} epochs, median of {config.get('repeats')} repeats"
        f"{', quick mode' if config.get('quick') else ''}.",
        "",
    ]


def _speed_view(frame: pd.DataFrame, roof: float) -> pd.DataFrame:
    view = frame.pivot(index="N", columns="method", values="model_steps_per_s")
    cols = [view.round(0)]
    for method in ("b1", "b2", "c", "c′"):
        if method in view:
            cols.append((view["lrbench"] / view[method]).round(1).rename(f"lrbench / {method}"))
    gflops = frame[frame["method"] == "lrbench"].set_index("N")["gflops"]
    cols += [
        gflops.round(2).rename("lrbench GFLOP/s"),
        (gflops / roof * 100).round(1).rename("% of roof"),
    ]
    out = pd.concat(cols, axis=1)
    out.index = out.index.astype(str)
    return out.astype(object).where(out.notna(), "–")


def _detail_view(frame: pd.DataFrame) -> pd.DataFrame:
    compile_s = frame.pivot(index="N", columns="method", values="compile_s")[["lrbench", "b1"]]
    frame = frame.assign(
        diff=[
            f"{a:.1e} ({b:.0e})"
            for a, b in zip(frame["max_loss_diff"], frame["median_loss_diff"], strict=True)
        ]
    )
    diff = frame.pivot(index="N", columns="method", values="diff").drop(columns="lrbench")
    xla = frame.pivot(index="N", columns="method", values="xla_mib")[["lrbench", "b1", "b2"]]
    timed = frame.pivot(index="N", columns="method", values="timed_runs").drop(columns="lrbench")
    out = pd.concat(
        [
            compile_s.round(2).add_prefix("compile s "),
            diff.add_prefix("Δloss "),
            xla.round(2).add_prefix("MiB "),
            timed.astype("Int64").add_prefix("timed runs "),
        ],
        axis=1,
    )
    out.index = out.index.astype(str)
    return out.astype(object).where(out.notna(), "–")


def _rss_view(mem: pd.DataFrame) -> pd.DataFrame:
    view = mem.pivot(index="N", columns="method", values="rss_peak_mib").round(1)
    view.index = view.index.astype(str)
    return view.astype(object).where(view.notna(), "–")


def _linearity(frame: pd.DataFrame, memory: pd.DataFrame | None, workload: str) -> list[str]:
    """Least-squares fit bytes = a + b·N of the engine's memory, and its worst relative residual."""
    lines = []
    series = [("XLA program bytes", frame[frame["method"] == "lrbench"].set_index("N")["xla_mib"])]
    if memory is not None and not memory.empty:
        mem = memory[(memory["workload"] == workload) & (memory["method"] == "lrbench")]
        series.append(("peak RSS", mem.set_index("N")["rss_peak_mib"]))
    for name, s in series:
        s = s.dropna()
        if len(s) < 3:
            continue
        n, y = s.index.to_numpy(float), s.to_numpy(float)
        b, a = np.polyfit(n, y, 1)
        worst = np.max(np.abs(a + b * n - y) / y)
        lines.append(
            f"{name} of lrbench against N, least squares: ≈ {a:.2f} MiB + {b * 1024:.2f} KiB × N "
            f"(worst relative residual {worst:.1%}; at most {y.max():.1f} MiB)."
        )
    return lines + [""] if lines else []


def _lever_lines(levers: pd.DataFrame) -> list[str]:
    base = float(levers.loc[levers["lever"] == "engine", "model_steps_per_s"].iloc[0])
    view = levers.assign(
        vs_current=(levers["model_steps_per_s"] / base).round(2),
        model_steps_per_s=levers["model_steps_per_s"].round(0),
        compile_s=levers["compile_s"].round(2),
    ).set_index("lever")
    return [
        f"## Speed levers: {LEVER_WORKLOAD}, N = {LEVER_N}",
        "",
        "One lever changed at a time; `vs_current` is the ratio to the engine as it is "
        "(`engine`: float32, every CPU device, one chunk, the default seed groups) in this "
        "process. `seed groups`: runs of one seed trained side by side (their shared "
        "minibatch makes the first layer one wide product), groups one after another.",
        "",
        report.to_markdown(view.astype(str)),
        "",
    ]


def _method_notes(config: dict) -> list[str]:
    caps = config.get("max_n") or {}
    cap = "; ".join(f"{m}: N ≤ {v} only" for m, v in caps.items())
    mem_caps = config.get("memory_max_n") or {}
    cap += "".join(f"; peak RSS of {m}: N ≤ {v} only" for m, v in mem_caps.items())
    return [
        "## How it was measured",
        "",
        "- Identical work for every method: the engine's initial weights (copied into PyTorch "
        "as `W.T`), its per-epoch minibatch orders (the last minibatch partial) and its per-step "
        "learning rates. `Δloss` is the largest (and median) difference of a run's final-epoch "
        "mean training loss from lrbench's: float32 rounding, amplified in the runs that train "
        "unstably (on blobs the largest differences sit at learning rates ≥ 0.02 with momentum "
        "0.9, where the loss ends high; below 0.01 they stay under 1e-5).",
        "- Every method trains and records the training loss only: no test-set evaluation "
        "(the engine with `validation_freq=0`; it still computes each run's initial training "
        "loss, which the others do not). The levers table times the engine with a test "
        "evaluation every epoch.",
        "- The repeats run in rounds, one call of every method a round, the order rotated "
        "each round, so all methods meet the same spells of a noisy machine; each method's "
        "time is the median of its calls.",
        "- b1 runs the engine's program for one run, its minibatch orders computed inside it, "
        "jitted on one device and compiled once per workload (its compile time shows at the "
        "first N).",
        f"- Loops (b1, b2, c) are timed on their first {config.get('b1_runs')}, "
        f"{config.get('b2_runs')} and {config.get('c_runs')} runs (`timed runs`): a loop's "
        f"throughput does not depend on N.{' ' + cap + '.' if cap else ''}",
        "- `MiB` (XLA): `compiled.memory_analysis()` of the program, arguments + outputs + "
        "temporaries − aliased; for b2 the single-step program. Peak RSS: a fresh Python process "
        "builds the runs and compiles, resets the kernel's high-water mark (`/proc/self/clear_refs` "
        "5), runs the method once and reads `VmHWM` from `/proc/self/status`; the table gives "
        "the peak above the resident memory before the run (glibc and PyTorch keep freed memory, "
        "so this is the run's own peak, not the process's).",
        "- lrbench lays each chunk out as seed groups (`engine.plan`): runs of one seed side by "
        "side share each minibatch, so the first layer is one wide product; groups train one "
        "after another, so the program's temporaries are one group's and its memory grows "
        "with N only through the runs' inputs and histories. A device whose share of a "
        "chunk is padding only (N = 1 and N = 8 on 2 devices) is not run.",
        "- PyTorch methods get one untimed call first (their one-off set-up).",
        "- GFLOP/s counts 6·P·B FLOPs per model-step (P parameters, batch B).",
        "",
    ]


def _figure(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = list(table[table["method"] != "roof"].groupby("workload", sort=False))
    fig, axes = plt.subplots(1, len(frames), figsize=(5 * len(frames), 3.6), squeeze=False)
    for ax, (workload, frame) in zip(axes[0], frames, strict=True):
        for method, f in frame.groupby("method", sort=False):
            ax.plot(f["N"], f["model_steps_per_s"], "o-", label=method)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("grid size N (runs)")
        ax.set_ylabel("model-steps/s")
        ax.set_title(workload, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def config_for(quick: bool) -> dict:
    if quick:
        return {"sizes": QUICK_SIZES, "epochs": 1, "repeats": 1, "b1_runs": 8, "b2_runs": 2,
                "c_runs": 4, "max_n": {}, "memory_sizes": (), "memory_max_n": {},
                "probe_overhead": {"n": 64, "epochs": 1, "repeats": 1}}  # fmt: skip
    return {"sizes": SIZES, "epochs": 2, "repeats": 3, "b1_runs": 64, "b2_runs": 4, "c_runs": 16,
            "max_n": {"digits 64-256-256-10 b128": 1024}, "memory_sizes": (16, 64, 256, 1024, 4096),
            "memory_max_n": {"digits 64-256-256-10 b128": 256},
            "probe_overhead": {"n": PROBE_N, "epochs": 2, "repeats": 3}}  # fmt: skip


def main(quick: bool, out: Path, quiet: bool, levers: bool = False,
         sizes: tuple[int, ...] | None = None) -> pd.DataFrame:  # fmt: skip
    """Runs the benchmark (``quick``: CI's one-minute variant) and writes ``out``.

    ``levers`` adds the table of the engine's speed levers; ``sizes`` replaces the grid sizes
    N of the chosen mode (the memory table keeps its sizes up to the largest).
    """
    config = {**config_for(quick), "levers": levers}
    if sizes:
        memory_sizes = tuple(n for n in config["memory_sizes"] if n <= max(sizes))
        config.update(sizes=tuple(sorted(set(sizes))), memory_sizes=memory_sizes)
    table = run(config["sizes"], config["epochs"], config["repeats"], config["b1_runs"],
                config["b2_runs"], config["c_runs"], config["max_n"], quiet)  # fmt: skip
    plan = [
        (w, m, n)
        for w in WORKLOADS
        for m in ("lrbench", "c′")
        for n in _capped(config["memory_sizes"], w, {**config["max_n"], **config["memory_max_n"]})
    ]
    plan += [(w, m, 1) for w in WORKLOADS for m in ("b1", "b2", "c")] if not quick else []
    memory = memory_table(plan, 1, quiet)  # one epoch: the memory of a run does not grow with it
    lever_table = lever_times(quiet=quiet) if levers else None
    cli = cli_times()
    if not quiet:
        for row in cli.to_dict("records"):
            print(f"{row['command']:40s} {row['median_s']:6.2f} s (exit {row['exit_code']})")
    probe_table = probe_overhead(**config["probe_overhead"], quiet=quiet)
    write(table, out, {**config, "quick": quick}, memory, lever_table, cli, probe_table)
    return table


if __name__ == "__main__":  # a fresh process for one measurement (see rss_peak, levers)
    engine.use_cpu_cores()  # as the parent (an explicit device count in XLA_FLAGS wins)
    job = json.loads(sys.argv[1])
    task = job.pop("task")
    answer = _rss_child(**job) if task == "rss" else _lever_child(**job)
    print(json.dumps(answer))
