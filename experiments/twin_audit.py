"""Twin audit: every update rule written by hand against its optax twin.

Each rule trains the same MLP on the same data from the same initial weights (the seed's,
as the engine draws them), full batch, for 1,000 steps, once written by hand
(``lrbench.rules``) and once as its optax twin, in float32 and in float64; the learning rate
and hyperparameters are traced inputs of the program, as in the engine. Per rule the table
gives:

- the largest relative parameter difference after training, max over layers of
  ‖θ_hand − θ_optax‖∞ / ‖θ_optax‖∞, in each dtype;
- the *floor* of each dtype: the optax twin against itself started from θ₀ scaled by
  1 + a few units in the last place. Two implementations that round differently cannot be
  expected to end closer than that;
- the final training loss of each, and each one's speed in model-steps per second (the
  compiled 1,000-step program, best of two executions, compile excluded);
- a note saying how the pair agrees, and why where it does not.

Every point of the sweep's optimizer axis is a row (a rule at its defaults, or at the
hyperparameters given), so ``--set optimizer=adam --set b2=0.99,0.95`` audits two settings.
The audit fixes ``dtype`` and ``impls`` (both); ``batch_size`` must be the training-set size
(one step per epoch, so ``epochs`` counts steps).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from lrbench import data, models, report, results, rules, runner
from lrbench.errors import ConfigError
from lrbench.models import MLPConfig
from lrbench.sweep import Optimizer, Sweep, run_id

DTYPES = ("float32", "float64")
# Relative change of θ₀ that measures how chaotic a run is: a few units in the last place.
NUDGE = {"float32": 1e-6, "float64": 1e-15}
AGREE = 1e-10  # float64 agreement the tests require
REPEATS = 2  # timed executions of each program; the best counts


def get_config() -> Sweep:
    n_train = len(data.load("blobs").x_train)
    return Sweep(
        experiment="twin_audit",
        description="every update rule, hand-written vs optax twin: 1,000 full-batch MLP steps "
        "in float32 and float64",
        dataset="blobs",
        model=MLPConfig(hidden=(50,), activation="relu", kernel_init="he_uniform"),
        epochs=1000,
        batch_size=n_train,
        lrs=(1e-3,),
        optimizers=tuple(Optimizer(name) for name in rules.names()),  # at their defaults
        seeds=(0,),
        impls=("hand", "optax"),
    )


def _label(name: str, hp: dict) -> str:
    """``rmsprop_centered(eps_root=0.0001)``: the rule and the values not at their defaults."""
    defaults = rules.spec(name).hparams
    changed = ",".join(f"{k}={v:g}" for k, v in hp.items() if float(v) != defaults[k])
    return f"{name}({changed})" if changed else name


def _max_rel_diff(a, b) -> float:
    return max(
        float(
            np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)))
            / np.max(np.abs(y))
        )
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)
    )


def _compile(sweep: Sweep, name: str, impl: str, dtype: str, net, arrays):
    """The compiled ``train(params0, lr, hparams) -> (params, train loss, test loss, test acc)``."""
    x_tr, y_tr, x_te, y_te = arrays

    def loss_fn(params, x, y):
        logits = net.apply({"params": params}, x)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))

    def train(params, lr, hp):
        def step(carry, _):
            p, s = carry
            g = jax.grad(loss_fn)(p, x_tr, y_tr)
            updates, s = rules.make(name, impl, learning_rate=lr, **hp).update(g, s, p)
            return (optax.apply_updates(p, updates), s), None

        state = rules.make(name, impl, learning_rate=lr, **hp).init(params)
        (p, _), _ = jax.lax.scan(step, (params, state), None, length=sweep.epochs)
        logits = net.apply({"params": p}, x_te)
        acc = jnp.mean((jnp.argmax(logits, -1) == y_te).astype(dtype))
        return p, loss_fn(p, x_tr, y_tr), loss_fn(p, x_te, y_te), acc

    spec = lambda shape: jax.ShapeDtypeStruct(shape, jnp.dtype(dtype))  # noqa: E731
    params_spec = jax.tree_util.tree_map(
        lambda p: spec(p.shape), net.init(jax.random.PRNGKey(0), x_tr[:1])["params"]
    )
    hp_spec = {k: spec(()) for k in rules.spec(name).hparams}
    start = time.perf_counter()
    exe = jax.jit(train).lower(params_spec, spec(()), hp_spec).compile()
    return exe, time.perf_counter() - start


def _timed(exe, steps: int, *args):
    """The program's outputs and its speed in steps/s (best of ``REPEATS`` executions)."""
    best = np.inf
    for _ in range(REPEATS):
        start = time.perf_counter()
        out = jax.block_until_ready(exe(*args))
        best = min(best, time.perf_counter() - start)
    return out, steps / best


def audit(sweep: Sweep, progress: runner.Progress | None = None) -> pd.DataFrame:
    """One row per (rule point, impl, dtype, lr, seed): final metrics, the difference to the
    other implementation, the floor of that dtype, speed and compile time."""
    progress = progress or runner.Progress(quiet=True)
    ds = data.load(sweep.dataset)
    if sweep.batch_size != len(ds.x_train):
        raise ConfigError(
            "batch_size",
            f"batch_size={sweep.batch_size} must be {len(ds.x_train)}, the size of the "
            f"training set of {sweep.dataset!r}: the twin audit trains full-batch",
        )
    net = models.build(sweep.model, ds.num_classes)
    compiled = {}  # (rule, impl, dtype) -> (executable, compile seconds)
    rows = []
    for dtype in DTYPES:
        for opt in sweep.optimizers:
            for hp in opt.points():
                for lr in sweep.lrs:
                    for seed in sweep.seeds:
                        rows += _audit_one(
                            sweep, net, ds, compiled, progress, dtype, opt.name, hp, lr, seed
                        )
    runs = pd.DataFrame(rows)
    # Hyperparameter columns sit between ``rule`` and ``seed``, as in every runs table.
    first = ["run_id", "experiment", "dataset", "model", "optimizer", "impl", "dtype", "rule", "lr"]
    last = ["seed", "steps", "final_train_loss", "final_test_loss", "final_test_acc",
            "max_rel_diff", "floor", "steps_per_second", "compile_seconds"]  # fmt: skip
    middle = [c for c in runs.columns if c not in first + last]
    return runs[[*first, *middle, *last]]


def _audit_one(sweep, net, ds, compiled, progress, dtype, name, hp, lr, seed) -> list[dict]:
    """Both implementations of one rule point at one dtype, learning rate and seed."""
    arrays = tuple(
        jnp.asarray(a, dtype) if a.dtype.kind == "f" else jnp.asarray(a)
        for a in (ds.x_train, ds.y_train, ds.x_test, ds.y_test)
    )
    for impl in rules.IMPLS:  # hyperparameters are inputs: one program per rule and dtype
        if (name, impl, dtype) not in compiled:
            progress.say(f"compiling {name}/{impl} {dtype} ...")
            compiled[name, impl, dtype] = _compile(sweep, name, impl, dtype, net, arrays)
    init_key, _ = jax.random.split(jax.random.PRNGKey(seed))  # the engine's initial weights
    params0 = net.init(init_key, arrays[0][:1])["params"]
    params0 = jax.tree_util.tree_map(lambda p: p.astype(dtype), params0)
    args = (jnp.asarray(lr, dtype), {k: jnp.asarray(v, dtype) for k, v in hp.items()})
    out, speed = {}, {}
    for impl in rules.IMPLS:
        out[impl], speed[impl] = _timed(
            compiled[name, impl, dtype][0], sweep.epochs, params0, *args
        )
    diff = _max_rel_diff(out["hand"][0], out["optax"][0])
    nudged = jax.tree_util.tree_map(lambda p: p * (1 + NUDGE[dtype]), params0)
    floor = _max_rel_diff(compiled[name, "optax", dtype][0](nudged, *args)[0], out["optax"][0])
    rows = []
    for impl in rules.IMPLS:
        _, train_loss, test_loss, test_acc = out[impl]
        config = {"audit": sweep.experiment, "dataset": sweep.dataset,
                  "model": dataclasses.asdict(sweep.model), "steps": sweep.epochs,
                  "optimizer": name, "impl": impl, "dtype": dtype, "hparams": hp,
                  "lr": float(lr), "seed": int(seed)}  # fmt: skip
        rows.append(
            {
                "run_id": run_id(config),
                "experiment": sweep.experiment,
                "dataset": sweep.dataset,
                "model": sweep.model.name,
                "optimizer": name,
                "impl": impl,
                "dtype": dtype,
                "rule": _label(name, hp),
                "lr": float(lr),
                **hp,
                "seed": int(seed),
                "steps": sweep.epochs,
                "final_train_loss": float(train_loss),
                "final_test_loss": float(test_loss),
                "final_test_acc": float(test_acc),
                "max_rel_diff": diff,
                "floor": floor,
                "steps_per_second": speed[impl],
                "compile_seconds": compiled[name, impl, dtype][1],
            }
        )
    return rows


def _note(name: str, diff64: float, floor64: float) -> str:
    spec = rules.spec(name)
    if diff64 == 0:
        note = "bitwise identical in float64"
    elif diff64 <= AGREE:
        note = f"agree to rounding in float64 (≤ {AGREE:g})"
    elif floor64 > AGREE:
        note = (
            f"cannot agree to {AGREE:g}: the run is chaotic, optax differs from itself by "
            f"{floor64:.0e} after a {NUDGE['float64']:g} nudge of θ₀"
        )
    else:
        note = f"DISAGREE: {diff64:.1e} above a floor of {floor64:.1e}"
    return f"{note}; {spec.twin_note}" if spec.twin_note else note


def twin_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The audit table: one row per rule point (and learning rate, when several)."""
    several_lrs = runs["lr"].nunique() > 1
    out = []
    for (rule, lr), g in runs.groupby(["rule", "lr"], sort=False):
        name = g["optimizer"].iloc[0]

        def pick(col, dtype, impl="optax", g=g):
            return g.loc[(g["impl"] == impl) & (g["dtype"] == dtype), col]

        row = {"rule": f"{rule} lr={lr:g}" if several_lrs else rule}
        row["optax twin"] = rules.spec(name).twin_name
        for dtype in DTYPES:
            row[f"max rel Δθ f{dtype[-2:]}"] = f"{pick('max_rel_diff', dtype).max():.1e}"
            row[f"floor f{dtype[-2:]}"] = f"{pick('floor', dtype).max():.1e}"
        for dtype in DTYPES:
            for impl in rules.IMPLS:
                loss = pick("final_train_loss", dtype, impl).mean()
                row[f"loss {impl} f{dtype[-2:]}"] = f"{loss:.6f}"
        for dtype in DTYPES:
            for impl in rules.IMPLS:
                speed = pick("steps_per_second", dtype, impl).mean()
                row[f"steps/s {impl} f{dtype[-2:]}"] = f"{speed:,.0f}"
        row["note"] = _note(
            name, pick("max_rel_diff", "float64").max(), pick("floor", "float64").max()
        )
        out.append(row)
    return pd.DataFrame(out).set_index("rule")


def _readme(sweep: Sweep, table: pd.DataFrame, meta: dict) -> str:
    n_train = len(data.load(sweep.dataset).x_train)
    lrs = ", ".join(f"{lr:g}" for lr in sweep.lrs)
    seeds = ", ".join(map(str, sweep.seeds))
    return f"""# Twin audit: hand-written update rules vs their optax twins

`lrbench run twin_audit` trains every rule of `lrbench.rules` twice — written by hand and as
its optax twin — on the same MLP ({sweep.model.name}, {sweep.model.kernel_init}), the same
data (`{sweep.dataset}`, {n_train} training rows, full batch), the same initial weights (seed
{seeds}) and learning rate ({lrs}), for {sweep.epochs:,} steps, in float32 and float64, each
rule at its default hyperparameters. The learning rate and hyperparameters are traced inputs
of the compiled program, as in the engine.

- **max rel Δθ**: max over layers of ‖θ_hand − θ_optax‖∞ / ‖θ_optax‖∞ after training.
- **floor**: the optax twin against itself, started from θ₀·(1 + {NUDGE["float32"]:g}) in
  float32 and θ₀·(1 + {NUDGE["float64"]:g}) in float64: how far apart two runs end that
  differ by a rounding error at the start. Two implementations that round differently cannot
  be expected to agree much below it.
- **loss**: final full-batch training loss (cross-entropy) of each implementation.
- **steps/s**: model-steps per second of the compiled {sweep.epochs:,}-step program (best of
  {REPEATS} executions, compile excluded; {meta["backend"]}, {len(meta["devices"])} device(s)).

{report.to_markdown(table)}
How to read it. Most pairs compile to the same operations and are bitwise identical. AdaGrad
and RMSProp differ by rounding: optax computes `rsqrt(ν + ε)·g`, the hand rule
`g / (√(ν + ε_root) + ε)`, which also takes ε outside the root. In float32, {sweep.epochs:,}
steps amplify such rounding differences up to the floor and sometimes beyond it (the floor is
one sample of a chaotic spread). The tests (`tests/test_rules.py`) require float64 pairs to
agree within 1e-10 and float32 within 1e-4 on a smaller MLP with a decaying learning rate,
check every rule against a NumPy re-derivation of its equations, and show that where a pair
cannot agree (centered RMSProp at ε_root = 1e-8 on that problem) optax cannot agree with
itself either. Settings optax cannot express (ε outside the root of AdaGrad and RMSProp,
PyTorch's convention) have no twin: `rules.make(..., impl="optax")` refuses them.

Wall time {meta["wall_seconds"]:.0f} s, of which compiling {meta["compile_seconds"]:.0f} s
({meta["programs"]} programs).
"""


def run(sweep: Sweep, out: str | Path | None = None, quiet: bool = False) -> runner.Result:
    """Runs the audit (float32 and float64, hand and optax) and writes ``out`` atomically."""
    runner.own_loop(sweep, sweep.experiment)
    progress = runner.Progress(quiet)
    start = time.perf_counter()
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)  # float64 programs; float32 ones stay float32
    try:
        runs = audit(sweep, progress)
    finally:
        jax.config.update("jax_enable_x64", previous)
    table = twin_table(runs)
    meta = {
        "experiment": sweep.experiment,
        "config": sweep.to_dict(),
        "n_runs": len(runs),
        "programs": len(compiled := runs.groupby(["optimizer", "impl", "dtype"])),
        "compile_seconds": round(float(compiled["compile_seconds"].first().sum()), 3),
        "wall_seconds": round(time.perf_counter() - start, 3),
        **results.environment(),
    }
    curves = pd.DataFrame(columns=results.CURVE_COLUMNS)
    folder = None
    if out is not None:
        progress.say(f"writing {out} ...")

        def write(tmp: Path) -> None:
            runs.to_csv(tmp / "runs.csv", index=False)
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
            caption = f"{sweep.experiment}: hand-written rules vs optax twins, {sweep.epochs} steps"
            report.write_table(tmp, "table", table, caption)
            (tmp / "README.md").write_text(_readme(sweep, table, meta))

        folder = results.write_atomically(out, write)
    return runner.Result(runs, curves, meta, folder)


def summary(result: runner.Result) -> str:
    """What ``lrbench run twin_audit`` prints: the audit table."""
    return "\ntwin audit: hand-written rules vs optax twins\n\n" + report.to_markdown(
        twin_table(result.runs)
    )
