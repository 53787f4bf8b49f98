"""Twin audit: every update rule written by hand against its optax twin.

Each rule trains the same MLP on the same data from the same initial weights, full batch,
once written by hand (``lrbench.rules``) and once as its optax twin (the engine's ``impl``
axis), in float32 and in float64; the table sets the largest relative parameter difference
beside the *floor* of each dtype (the optax twin against itself from θ₀ nudged by a few units
in the last place), the final losses and the speeds. What each column means and how to read
it: ``notes/twin_audit.md``, the README's notes.

Every point of the sweep's optimizer axis is a row (a rule at its defaults, or at the
hyperparameters given), so ``--set optimizer=adam --set b2=0.99,0.95`` audits two settings.
The audit fixes ``dtype`` and ``impls`` (both); ``batch_size`` must be the training-set size
(one step per epoch, so ``epochs`` counts steps).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from lrbench import claims, data, probes, report, results, rules, runner
from lrbench.claims import Claim, Select
from lrbench.errors import ConfigError
from lrbench.models import MLPConfig
from lrbench.sweep import Optimizer, Sweep
from lrbench.tasks import Classifier

NAME = "twin_audit"
TITLE = "every update rule written by hand against its optax twin"
DTYPES = ("float32", "float64")
# Relative change of θ₀ that measures how chaotic a run is: a few units in the last place.
NUDGE = {"float32": 1e-6, "float64": 1e-15}
AGREE = 1e-10  # float64 agreement the tests require
REPEATS = 2  # timed executions of each program; the best counts

ARTICLE = "lrbench's contract: every hand-written rule has an optax twin, checked against it"
CLAIMS = (
    Claim("float64_twins_agree", "every update rule written by hand and its optax twin train to "
          "the same weights", "largest max rel Δθ between hand and optax over every rule point, "
          "float64", Select("runs", "max_rel_diff", {"dtype": "float64"}, "max"), "<=", AGREE),
    Claim("most_twins_are_bitwise", "most pairs compile to the same operations", "share of rule "
          "points whose float64 weights are bitwise identical", lambda t: float((t["runs"].query(
              "dtype == 'float64'").groupby("rule")["max_rel_diff"].max() == 0).mean()), ">=", 0.5),
)  # fmt: skip


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
        validation_freq=1000,  # the test set once, after the last step
    )


def ci_config() -> Sweep:
    """Three rules (two bitwise pairs, RMSProp, which differs by rounding), 100 steps."""
    return dataclasses.replace(
        get_config(),
        epochs=100,
        validation_freq=100,
        optimizers=tuple(Optimizer(name) for name in ("sgd", "adam", "rmsprop")),
    )


@dataclasses.dataclass(frozen=True)
class Nudged(Classifier):
    """The classifier started from ``θ₀·(1 + nudge)``, θ₀ in the run's dtype: the floor of a
    dtype is how far the optax twin ends from itself started so (the nudge is applied after
    the cast, so ``1e-15`` is not lost to a float32 product)."""

    nudge: float = 0.0

    def init(self, key, x):
        params = super().init(key, x)
        return jax.tree_util.tree_map(lambda p: p.astype(x.dtype) * (1 + self.nudge), params)

    def config(self):
        return {**super().config(), "nudge": self.nudge}


def _label(name: str, hp: dict) -> str:
    """``rmsprop_centered(eps_root=0.0001)``: the rule and the values of its hyperparameters
    (``hp``: a runs-table row) not at their defaults."""
    defaults = rules.spec(name).hparams
    changed = ",".join(f"{k}={float(hp[k]):g}" for k in defaults if float(hp[k]) != defaults[k])
    return f"{name}({changed})" if changed else name


def _train(sweep: Sweep) -> tuple[probes.Probed, float, float]:
    """One rule's runs of one impl through the engine ``REPEATS`` times: the probed sweep
    (final parameters, training-set loss after every step), the best training seconds and the
    seconds spent compiling."""
    best, compile_s = np.inf, 0.0
    for _ in range(REPEATS):
        got = probes.train(sweep, probes=("train_loss",), final_params=True)
        best = min(best, got.timing["train_seconds"])
        compile_s += got.timing["compile_seconds"]  # the second execution reuses the program
    return got, best, compile_s


def audit(sweep: Sweep, progress: runner.Progress | None = None) -> pd.DataFrame:
    """One row per (rule point, impl, dtype, lr, seed): final metrics, the difference to the
    other implementation, the floor of that dtype, speed and compile time."""
    progress = progress or runner.Progress(quiet=True)
    ds = sweep.task_spec.data()
    if sweep.batch_size != len(ds.x_train):
        raise ConfigError(
            "batch_size",
            f"batch_size={sweep.batch_size} must be {len(ds.x_train)}, the size of the "
            f"training set of {sweep.dataset!r}: the twin audit trains full-batch",
        )
    parts = []
    count = progress.counter(3 * len(DTYPES) * len(sweep.optimizers), "programs", "auditing")
    for dtype in DTYPES:
        for opt in sweep.optimizers:
            count.start(f"{opt.name} {dtype}: hand, optax and the nudged twin")
            one = dataclasses.replace(sweep, optimizers=(opt,), dtype=dtype)
            got = {impl: _train(dataclasses.replace(one, impls=(impl,))) for impl in rules.IMPLS}
            nudged = dataclasses.replace(
                one,
                impls=("optax",),
                task=Nudged(dataset=sweep.dataset, model=sweep.model, nudge=NUDGE[dtype]),
                dataset=Sweep.dataset,
                model=Sweep.model,
            )
            floor = probes.train(nudged, final_params=True).probes.params
            final = {impl: got[impl][0].probes.params for impl in rules.IMPLS}
            diff = probes.max_rel_diff(final["hand"], final["optax"])
            for run, seconds, compile_s in got.values():
                h = run.history
                parts.append(
                    run.runs.assign(
                        dtype=dtype,
                        rule=[_label(opt.name, hp) for hp in run.runs.to_dict("records")],
                        steps=sweep.epochs,
                        final_train_loss=run.probes.steps["train_loss"][:, -1],
                        final_test_loss=h.test_loss[:, -1],
                        final_test_acc=h.test_acc[:, -1],
                        max_rel_diff=diff,
                        floor=probes.max_rel_diff(floor, final["optax"]),
                        steps_per_second=sweep.epochs * len(run.runs) / seconds,
                        compile_seconds=compile_s,
                    )
                )
            count.advance(3)
    count.close()
    runs = pd.concat(parts, ignore_index=True)
    # Hyperparameter columns sit between ``rule`` and ``seed``, as in every runs table.
    first = ["run_id", "experiment", "dataset", "model", "optimizer", "impl", "dtype", "rule", "lr"]
    last = ["seed", "steps", "final_train_loss", "final_test_loss", "final_test_acc",
            "max_rel_diff", "floor", "steps_per_second", "compile_seconds"]  # fmt: skip
    hparams = {k for name in runs["optimizer"].unique() for k in rules.spec(name).hparams}
    middle = [c for c in runs.columns if c in hparams]
    return runs[[*first, *middle, *last]]


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
    keys = ["rule", "lr"]
    agg = {"optimizer": ("optimizer", "first"), "diff": ("max_rel_diff", "max"),
           "floor": ("floor", "max"), "loss": ("final_train_loss", "mean"),
           "speed": ("steps_per_second", "mean")}  # fmt: skip
    w = runs.groupby([*keys, "dtype", "impl"], sort=False).agg(**agg).unstack(["dtype", "impl"])
    w = w.reindex(pd.MultiIndex.from_frame(runs[keys].drop_duplicates()))
    name, f64 = w["optimizer", DTYPES[0], "optax"], ("float64", "optax")
    out = {"optax twin": name.map(lambda n: rules.spec(n).twin_name)}
    for d in DTYPES:
        out[f"max rel Δθ f{d[-2:]}"] = w["diff", d, "optax"].map("{:.1e}".format)
        out[f"floor f{d[-2:]}"] = w["floor", d, "optax"].map("{:.1e}".format)
    for column, label, spec in (("loss", "loss", "{:.6f}"), ("speed", "steps/s", "{:,.0f}")):
        for d in DTYPES:
            out |= {f"{label} {i} f{d[-2:]}": w[column, d, i].map(spec.format) for i in rules.IMPLS}
    out["note"] = [_note(*a) for a in zip(name, w[("diff", *f64)], w[("floor", *f64)], strict=True)]
    several = runs["lr"].nunique() > 1
    rows = [f"{rule} lr={lr:g}" if several else rule for rule, lr in w.index]
    return pd.DataFrame(out).set_axis(pd.Index(rows, name="rule"))


def run(sweep: Sweep, out: str | Path | None = None, quiet: bool = False) -> runner.Result:
    """Runs the audit (float32 and float64, hand and optax) and writes ``out`` atomically."""
    start = time.perf_counter()
    with jax.enable_x64(True):  # float64 programs; float32 ones stay float32
        runs = audit(sweep, runner.Progress(quiet))
    compile_s = runs.groupby(["optimizer", "impl", "dtype"])["compile_seconds"].first().sum()
    meta = results.meta(
        sweep, start, n_runs=len(runs),
        programs=3 * runs.groupby(["optimizer", "dtype"]).ngroups,  # hand, optax, nudged optax
        compile_seconds=round(float(compile_s), 3),
    )  # fmt: skip
    module, n_train = sys.modules[__name__], len(data.load(sweep.dataset).x_train)
    shown = [f for f in claims.setting(sweep).index if f != "dtype"]  # the audit runs both
    return claims.finish(
        module, sweep, runs, pd.DataFrame(columns=results.CURVE_COLUMNS), meta, out, quiet,
        found=claims.evaluate(CLAIMS, {"runs": runs}, ARTICLE),
        tables={"table": (twin_table(runs), f"{sweep.experiment}: hand-written rules vs optax "
                          f"twins, {sweep.epochs} steps")},
        setting_table=claims.setting(sweep, shown, {"dtypes": ", ".join(DTYPES)}),
        notes=claims.notes_text(module, sweep=sweep, n_train=n_train, NUDGE=NUDGE,
                                REPEATS=REPEATS, meta=meta, devices=len(meta["devices"])),
    )  # fmt: skip


def summary(result: runner.Result) -> str:
    """What ``lrbench run twin_audit`` prints: the audit table."""
    return "\ntwin audit: hand-written rules vs optax twins\n\n" + report.to_markdown(
        twin_table(result.runs)
    )
