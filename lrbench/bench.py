"""``lrbench bench``: what a whole grid costs, against other ways of running the same work.

Methods, all in one process, on identical work (same N runs × steps × batch, same
initialisation, same minibatches):

``lrbench``  the engine: every run in one jitted, vmapped program (chunked).
``b1``       a Python loop over runs, each a jitted whole-run ``lax.scan`` with the learning
             rate traced (compiles once): the engine called with one run at a time.
``b2``       a Python loop calling a jitted train *step* once per step (the flax-example
             style); timed on a subset of runs, as throughput does not depend on N.
``roof``     a large dense float32 GEMM: the machine's practical FLOP/s ceiling.

Reported: model-steps/s (runs × optimizer steps per second), samples/s, achieved GFLOP/s
(≈ 6·P·B FLOPs per model-step: forward 2·P·B, backward 4·P·B), compile seconds apart, and
the median of ``repeats`` timings.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from lrbench import data, engine, models, results
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


def sweep_for(workload: str, n: int, epochs: int) -> Sweep:
    """``n`` runs of SGD with momentum over a mix of schedules and learning rates."""
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
    )


def _time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def gemm_roof(size: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a dense float32 ``size × size`` matmul."""
    a = jnp.ones((size, size), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    seconds = _time(lambda: f(a).block_until_ready(), repeats)
    return 2 * size**3 / seconds / 1e9


def _group(sweep: Sweep):
    runs = expand(sweep)
    (static, index), = list(engine.static_groups(sweep, runs))
    return static, engine.run_data(static, runs.loc[index]), runs


def _per_step_loop(static: engine.Static, rundata: engine.RunData, k: int, n_steps: int) -> tuple[float, float]:
    """b2: a jitted single train step called from Python, for the first ``k`` runs.

    Returns (seconds, final mean training loss of the last epoch's steps).
    """
    ds = data.load(static.dataset)
    net = models.build(static.model, ds.num_classes)
    x, y = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
    n, batch = len(ds.x_train), static.batch_size

    def loss_fn(p, xb, yb):
        return optax.softmax_cross_entropy_with_integer_labels(net.apply({"params": p}, xb), yb).mean()

    @jax.jit
    def step(p, s, xb, yb, lr):
        loss, g = jax.value_and_grad(loss_fn)(p, xb, yb)
        u, s = optax.sgd(lr, momentum=0.9).update(g, s, p)
        return optax.apply_updates(p, u), s, loss

    warm = net.init(jax.random.PRNGKey(0), x[:1])["params"]
    jax.block_until_ready(step(warm, optax.sgd(1.0, momentum=0.9).init(warm), x[:batch], y[:batch], 0.1))
    start = time.perf_counter()  # compiled above: the loop is timed, not the compile
    loss = jnp.nan
    for i in range(k):
        init_key, order_key = jax.random.split(jax.random.PRNGKey(int(rundata.seed[i])))
        p = net.init(init_key, x[:1])["params"]
        s = optax.sgd(1.0, momentum=0.9).init(p)
        order = np.asarray(jax.random.permutation(jax.random.fold_in(order_key, 0), n))
        for t in range(n_steps):
            idx = order[(t * batch) % n : (t * batch) % n + batch]
            p, s, loss = step(p, s, x[idx], y[idx], float(rundata.lr[i]))
    jax.block_until_ready(loss)
    return time.perf_counter() - start, float(loss)


def run(
    sizes=SIZES,
    epochs: int = 2,
    repeats: int = 3,
    b1_runs: int = 64,
    b2_runs: int = 4,
    quiet: bool = False,
    workloads: tuple[str, ...] = tuple(WORKLOADS),
) -> pd.DataFrame:
    rows = []
    for workload in workloads:
        for n in sizes:
            sweep = sweep_for(workload, n, epochs)
            static, rundata, runs = _group(sweep)
            n_runs = len(runs)
            steps = sweep.steps_per_epoch * epochs
            params = models.num_params(
                models.build(static.model, data.load(static.dataset).num_classes).init(
                    jax.random.PRNGKey(0), jnp.zeros((1, data.load(static.dataset).num_features))
                )["params"]
            )
            flops = 6 * params * static.batch_size

            def record(method, seconds, compile_s, measured_runs=n_runs):
                model_steps = measured_runs * steps
                rows.append(
                    {
                        "workload": workload, "method": method, "N": n_runs, "params": params,
                        "model_steps_per_s": model_steps / seconds,
                        "samples_per_s": model_steps * static.batch_size / seconds,
                        "gflops": model_steps * flops / seconds / 1e9,
                        "compile_s": compile_s, "seconds": seconds,
                    }
                )  # fmt: skip
                if not quiet:
                    print(f"{workload:28s} {method:8s} N={n_runs:5d} {model_steps / seconds:12.0f} model-steps/s", flush=True)

            engine._COMPILED.clear()
            _, timing = engine.train_group(static, rundata)  # compiles
            seconds = _time(lambda: engine.train_group(static, rundata), repeats)
            record("lrbench", seconds, timing.compile_seconds)

            k1 = min(n_runs, b1_runs)  # a loop's throughput per run does not depend on N
            sub = jax.tree_util.tree_map(lambda a, k1=k1: a[:k1], rundata)
            _, timing = engine.train_group(static, sub, max_chunk=1)
            seconds = _time(lambda sub=sub: engine.train_group(static, sub, max_chunk=1), repeats)
            record("b1", seconds, timing.compile_seconds, k1)

            k = min(n_runs, b2_runs)
            seconds, _ = _per_step_loop(static, rundata, k, steps)
            record("b2", seconds, float("nan"), k)
    roof = gemm_roof()
    rows.append({"workload": "dense GEMM 2048", "method": "roof", "N": 1, "gflops": roof})
    return pd.DataFrame(rows)


def write(table: pd.DataFrame, out: Path, config: dict) -> Path:
    def emit(folder: Path) -> None:
        from lrbench import report

        table.to_csv(folder / "bench.csv", index=False)
        roof = float(table.loc[table["method"] == "roof", "gflops"].iloc[0])
        lines = ["# lrbench bench", "", f"Dense float32 GEMM (2048³): **{roof:.1f} GFLOP/s** (the roof).", ""]
        for workload, frame in table[table["method"] != "roof"].groupby("workload", sort=False):
            view = frame.pivot(index="N", columns="method", values="model_steps_per_s")
            ratio = (view["lrbench"] / view["b1"]).rename("lrbench / b1")
            ratio2 = (view["lrbench"] / view["b2"]).rename("lrbench / b2")
            pct = (frame[frame["method"] == "lrbench"].set_index("N")["gflops"] / roof * 100).rename("lrbench % of roof")
            out_table = pd.concat([view.round(0), ratio.round(2), ratio2.round(1), pct.round(1)], axis=1)
            out_table.index = out_table.index.astype(str)
            lines += [f"## {workload}: model-steps/s", "", report.to_markdown(out_table.astype(str))]
        (folder / "README.md").write_text("\n".join(lines) + "\n")
        (folder / "meta.json").write_text(
            json.dumps({"config": config, "threads": os.cpu_count(), **results.environment()}, indent=2, default=str) + "\n"
        )
        _figure(table, folder / "throughput.png")

    return results.write_atomically(out, emit)


def _figure(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = list(table[table["method"] != "roof"].groupby("workload", sort=False))
    fig, axes = plt.subplots(1, len(frames), figsize=(5 * len(frames), 3.6), squeeze=False)
    for ax, (workload, frame) in zip(axes[0], frames, strict=True):
        for method, f in frame.groupby("method"):
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


def main(quick: bool, out: Path, quiet: bool) -> pd.DataFrame:
    config = {
        "sizes": QUICK_SIZES if quick else SIZES,
        "epochs": 1 if quick else 2,
        "repeats": 1 if quick else 3,
        "b1_runs": 8 if quick else 64,
        "b2_runs": 2 if quick else 4,
    }
    table = run(config["sizes"], config["epochs"], config["repeats"], config["b1_runs"], config["b2_runs"], quiet)
    write(table, out, {**config, "quick": quick})
    return table

