"""All five grids of Machine Learning Mastery's blobs tutorial, 10 seeds each (seed 004).

"Understanding the Impact of Learning Rate on Neural Network Performance" trains
Dense(50, relu, he_uniform) -> Dense(3, softmax) on ``make_blobs`` (3 classes, cluster_std 2,
random_state 2; 500 train / 500 test) for 200 epochs with batch 32, and varies one thing at a
time:

1. ``lr``: SGD at lr 1, 1e-1, ..., 1e-7;
2. ``momentum``: Keras' ``SGD(0.01, momentum=μ)`` (rule ``momentum_keras``), μ ∈ {0, 0.5, 0.9,
   0.99};
3. ``decay``: Keras' legacy ``SGD(0.01, decay=d)``, lr / (1 + d·iterations) (schedule
   ``time_based``, per step), d ∈ {1e-1, 1e-2, 1e-3, 1e-4};
4. ``patience``: ``ReduceLROnPlateau(monitor="val_loss", factor=0.1, min_delta=1e-7,
   patience=p)`` on SGD at lr 0.01 (schedule ``reduce_on_plateau``, monitor = test loss,
   ``min_lr`` 0 as in Keras), p ∈ {2, 5, 10, 15};
5. ``optimizer``: SGD, RMSprop, Adagrad and Adam at Keras' defaults (``KERAS_DEFAULTS``).

A sweep has one learning-rate axis for all its optimizers, so :func:`run` trains one sweep per
grid (one per optimizer in the last) and stacks their tidy tables with a ``grid`` column. A
run that belongs to two grids (SGD at lr 0.01 is in ``lr`` and in ``optimizer``) is trained
once and listed once per grid: ``(grid, run_id)`` is the key of ``runs``, ``run_id`` that of
``curves``.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lrbench import report, results, runner
from lrbench.models import MLPConfig
from lrbench.sweep import Optimizer, Schedule, Sweep, expand

NAME = "blobs_dynamics"
MODEL = MLPConfig(hidden=(50,), activation="relu", kernel_init="he_uniform")
LRS = (1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7)
BASE_LR = 0.01
MOMENTA = (0.0, 0.5, 0.9, 0.99)
DECAYS = (1e-1, 1e-2, 1e-3, 1e-4)
PATIENCES = (2, 5, 10, 15)
PLATEAU = {"monitor": 1, "factor": 0.1, "min_delta": 1e-7, "min_lr": 0.0, "cooldown": 0}
# Keras 3 defaults (README, "Matching optax, Keras or PyTorch"): name -> (lr, Optimizer).
# Keras' Adam adds ε = 1e-7 to √v before bias correction; eps 1e-7 after it is the nearest rule.
KERAS_DEFAULTS = {
    "sgd": (0.01, Optimizer("sgd")),
    "rmsprop": (1e-3, Optimizer("rmsprop", {"rho": 0.9, "eps": 0.0, "eps_root": 1e-7})),
    "adagrad": (
        1e-3,
        Optimizer("adagrad", {"initial_accumulator_value": 0.1, "eps": 0.0, "eps_root": 1e-7}),
    ),
    "adam": (1e-3, Optimizer("adam", {"b1": 0.9, "b2": 0.999, "eps": 1e-7})),
}
# grid -> the runs-table column that names its settings (the rows of its table)
GRIDS = {
    "lr": "lr",
    "momentum": "momentum",
    "decay": "decay",
    "patience": "patience",
    "optimizer": "optimizer",
}
TARGET = 0.8


def get_config() -> Sweep:
    """The ``lr`` grid; :func:`run` derives the other four from it (seeds, epochs, data)."""
    return Sweep(
        experiment=NAME,
        description="MLM blobs: lr, momentum, time-based decay, plateau patience and Keras "
        "optimizers (10 seeds, 200 epochs)",
        dataset="blobs",
        model=MODEL,
        epochs=200,
        batch_size=32,
        lrs=LRS,
        optimizers=(Optimizer("sgd"),),
        seeds=tuple(range(10)),
        target_acc=TARGET,
    )


def ci_config() -> Sweep:
    return dataclasses.replace(get_config(), seeds=(0, 1, 2))


def grids(sweep: Sweep) -> dict[str, list[Sweep]]:
    """The sweeps of each grid; ``sweep`` itself is the ``lr`` grid."""
    at_base = dict(lrs=(BASE_LR,), optimizers=(Optimizer("sgd"),), schedules=(Schedule(),))

    def variant(**changes) -> Sweep:
        return dataclasses.replace(sweep, **{**at_base, **changes})

    return {
        "lr": [sweep],
        "momentum": [variant(optimizers=(Optimizer("momentum_keras", {"momentum": MOMENTA}),))],
        "decay": [variant(schedules=(Schedule("time_based", {"decay": DECAYS}),))],
        "patience": [
            variant(schedules=(Schedule("reduce_on_plateau", {**PLATEAU, "patience": PATIENCES}),))
        ],
        "optimizer": [variant(lrs=(lr,), optimizers=(o,)) for lr, o in KERAS_DEFAULTS.values()],
    }


def _ordered(runs: pd.DataFrame) -> pd.DataFrame:
    """Configuration columns first (``grid`` after ``experiment``), then seed and metrics."""
    first = ["run_id", "experiment", "grid"]
    config = [c for c in runs.columns if c not in {*first, "seed", *results.RUN_METRICS}]
    return runs[[*first, *config, "seed", *results.RUN_METRICS]].reset_index(drop=True)


def train(sweep: Sweep, quiet: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Trains every grid; returns ``(runs, curves, timing)`` (a shared run trained once)."""
    progress = runner.Progress(quiet)
    chunk = len(MOMENTA) * len(sweep.seeds)  # one SGD program for the lr, decay and patience grids
    trained: dict[str, pd.Series] = {}
    runs, curves = [], []
    timing = {"compile_seconds": 0.0, "train_seconds": 0.0, "programs": 0}
    for grid, sweeps in grids(sweep).items():
        for s in sweeps:
            ids = expand(s)["run_id"]
            if ids.isin(list(trained)).all():
                runs.append(pd.DataFrame([trained[i] for i in ids]).assign(grid=grid))
                continue
            progress.say(f"{grid}: {len(ids)} runs ...")
            result = runner.run(s, quiet=True, max_chunk=chunk)
            for key in timing:
                timing[key] += result.meta[key]
            for _, row in result.runs.iterrows():
                trained[row["run_id"]] = row
            runs.append(result.runs.assign(grid=grid))
            curves.append(result.curves)
    return (
        _ordered(pd.concat(runs, ignore_index=True)),
        pd.concat(curves, ignore_index=True),
        timing,
    )


# ---------------------------------------------------------------------------------------------
# Measures


FROZEN_LR = 1e-6  # at or below it the lr grid learns nothing in 200 epochs


def per_epoch(curves: pd.DataFrame, column: str) -> pd.DataFrame:
    """``column`` as a [run_id × epoch] table."""
    return curves.pivot(index="run_id", columns="epoch", values=column)


def first_epoch(mask: pd.DataFrame) -> pd.Series:
    """Per run, the first 1-based epoch where ``mask`` holds; NaN if never."""
    hit = mask.to_numpy()
    first = np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, np.nan)
    return pd.Series(first, index=mask.index)


def run_measures(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """``runs`` plus, per run: ``setting`` (the value its grid varies), ``loss_ratio`` (final
    over initial training loss), ``acc_gain`` (final minus first-epoch test accuracy),
    ``late_gain`` (final test accuracy minus that at mid-training), ``acc_jitter`` (mean |change|
    of test accuracy from epoch to epoch over the second half), ``final_lr``, ``first_cut``
    (first epoch trained below the base lr) and ``frozen_at`` (first epoch with lr ≤
    ``FROZEN_LR``)."""
    acc, lr = per_epoch(curves, "test_acc"), per_epoch(curves, "lr")
    mid = acc.shape[1] // 2
    per_run = pd.DataFrame(
        {
            "acc_gain": acc.iloc[:, -1] - acc.iloc[:, 0],
            "late_gain": acc.iloc[:, -1] - acc.iloc[:, mid - 1],
            "acc_jitter": np.nanmean(np.abs(np.diff(acc.iloc[:, mid:].to_numpy(), axis=1)), axis=1),
            "final_lr": lr.iloc[:, -1],
            "first_cut": first_epoch(lr.lt(lr.iloc[:, 0] * (1 - 1e-6), axis=0)),
            "frozen_at": first_epoch(lr <= FROZEN_LR),
        },
        index=acc.index,
    )
    setting = [row[GRIDS[row["grid"]]] for _, row in runs.iterrows()]
    out = runs.assign(
        setting=setting, loss_ratio=runs["final_train_loss"] / runs["initial_train_loss"]
    )
    return out.join(per_run, on="run_id")


def settings_table(measured: pd.DataFrame) -> pd.DataFrame:
    """One row per grid and setting, in the grids' order: numbers over seeds."""
    rows = []
    for (grid, setting), g in measured.groupby(["grid", "setting"], sort=False):
        reached = g["epochs_to_target"].dropna()
        rows.append(
            {
                "grid": grid,
                "setting": setting,
                "lr": g["lr"].iloc[0],
                "seeds": len(g),
                "test_acc_mean": g["final_test_acc"].mean(),
                "test_acc_std": g["final_test_acc"].std(ddof=0),
                "epochs_to_target_median": reached.median() if len(reached) else np.nan,
                "reached_target": len(reached),
                "loss_ratio_mean": g["loss_ratio"].mean(),
                "acc_gain_mean": g["acc_gain"].mean(),
                "acc_jitter_mean": g["acc_jitter"].mean(),
                "final_lr_median": g["final_lr"].median(),
                "late_gain_mean": g["late_gain"].mean(),
                "first_cut_median": g["first_cut"].median(),
                "cut_seeds": int(g["first_cut"].notna().sum()),
                "frozen_seeds": int(g["frozen_at"].notna().sum()),
                "frozen_at_median": g["frozen_at"].median(),
                "status": g["status"].mode().iloc[0],
                "oscillating_seeds": int((g["status"] == "oscillating").sum()),
            }
        )
    return pd.DataFrame(rows)


def grid_table(settings: pd.DataFrame, grid: str) -> pd.DataFrame:
    """The paper table of one grid: final test accuracy and epochs to the target."""
    t = settings[settings["grid"] == grid]
    pct = f"{TARGET:.0%}"
    table = pd.DataFrame(
        {
            "final test acc": [
                f"{m:.3f} ± {s:.3f}"
                for m, s in zip(t["test_acc_mean"], t["test_acc_std"], strict=True)
            ],
            f"epochs to {pct} (median of seeds reaching it)": [
                "—" if not np.isfinite(e) else f"{e:.0f}" for e in t["epochs_to_target_median"]
            ],
            f"seeds reaching {pct}": [
                f"{k}/{n}" for k, n in zip(t["reached_target"], t["seeds"], strict=True)
            ],
        },
        index=[_label(grid, s) for s in t["setting"]],
    )
    if grid == "optimizer":
        table.insert(0, "lr", [f"{lr:g}" for lr in t["lr"]])
    if grid in ("decay", "patience"):
        table["final lr (median)"] = [f"{v:.3g}" for v in t["final_lr_median"]]
    if grid == "patience":
        table["first cut (median epoch)"] = [
            f"{e:.0f} ({k}/{n})" if 2 * k > n else f"— ({k}/{n})"
            for e, k, n in zip(t["first_cut_median"], t["cut_seeds"], t["seeds"], strict=True)
        ]
        table[f"lr ≤ {FROZEN_LR:g} from (median epoch)"] = [
            f"{e:.0f} ({k}/{n})" if 2 * k > n else f"— ({k}/{n})"
            for e, k, n in zip(t["frozen_at_median"], t["frozen_seeds"], t["seeds"], strict=True)
        ]
    table.index.name = GRIDS[grid]
    return table


def _label(grid: str, setting) -> str:
    if grid == "optimizer":
        return str(setting)
    return f"{int(setting)}" if grid == "patience" else f"{float(setting):g}"


# ---------------------------------------------------------------------------------------------
# The tutorial's claims

GOOD_WITHIN = 50  # "within ~50 epochs"
SLOW_BASELINE = 150  # "instead of 200": plain SGD needs at least this many epochs to 80%
EARLY = 50  # "early": within the first quarter of the 200 epochs


def _epochs(row) -> float:
    """Median epochs to the target, ``inf`` when most seeds never reach it."""
    e = row["epochs_to_target_median"]
    return e if 2 * row["reached_target"] > row["seeds"] and np.isfinite(e) else np.inf


def _fmt_epochs(row) -> str:
    e = _epochs(row)
    return (
        f"{e:.0f} ({row['reached_target']}/{row['seeds']})"
        if np.isfinite(e)
        else (f"never ({row['reached_target']}/{row['seeds']})")
    )


def claims_table(settings: pd.DataFrame, measured: pd.DataFrame) -> pd.DataFrame:
    """One row per claim of the tutorial: the numbers that test it and whether it held."""
    s = settings.set_index(["grid", "setting"])
    needed = [("lr", lr) for lr in (1.0, 1e-1, 1e-2, 1e-3, 1e-6, 1e-7)]
    if not all(key in s.index for key in needed):  # the lr grid was changed (``--set lr=...``)
        empty = {"text": [], "value": [], "held": pd.Series([], dtype=bool)}
        return pd.DataFrame(empty, index=pd.Index([], name="claim"))

    def at(grid, setting):
        return s.loc[(grid, setting)]

    pct = f"{TARGET:.0%}"
    lr1, lr01 = at("lr", 1.0), at("lr", 0.1)
    tiny = measured[(measured["grid"] == "lr") & measured["lr"].isin([1e-6, 1e-7])]
    learning = [at("lr", lr) for lr in (1e-1, 1e-2, 1e-3)]
    speeds = [_epochs(r) for r in learning]
    fast_momenta = [at("momentum", m) for m in (0.9, 0.99)]
    no_momentum = at("momentum", 0.0)
    fast_decays = [at("decay", d) for d in (1e-1, 1e-2)]
    slow_decay = at("decay", 1e-4)
    short_patience = [at("patience", p) for p in (2, 5)]
    long_patience = at("patience", 15)
    adaptive = {name: at("optimizer", name) for name in ("rmsprop", "adam")}
    rows = [
        (
            "lr_1_oscillates",
            "lr 1.0 oscillates",
            f"status oscillating in {lr1['oscillating_seeds']}/{lr1['seeds']} seeds; test accuracy "
            f"moves {lr1['acc_jitter_mean']:.3f} per epoch (second half) vs "
            f"{lr01['acc_jitter_mean']:.3f} at lr 0.1",
            bool(
                2 * lr1["oscillating_seeds"] > lr1["seeds"]
                and lr1["acc_jitter_mean"] >= 3 * lr01["acc_jitter_mean"]
            ),
        ),
        (
            "tiny_lrs_learn_nothing",
            "lr 1e-6 and 1e-7 learn nothing (no seed gains 0.05 test accuracy over training)",
            "; ".join(
                f"{lr:g}: gain {g['acc_gain'].mean():+.3f} (seeds {g['acc_gain'].min():+.3f} … "
                f"{g['acc_gain'].max():+.3f}), "
                f"loss ×{g['loss_ratio'].mean():.2f}"
                for lr, g in tiny.groupby("lr", sort=False)
            ),
            bool(len(tiny) > 0 and (tiny["acc_gain"] < 0.05).all()),
        ),
        (
            "mid_lrs_learn_slower",
            f"lr 1e-1, 1e-2, 1e-3 learn (loss at most half the initial), more slowly as lr falls "
            f"(median epochs to {pct} rise)",
            "; ".join(
                f"{lr:g}: loss ×{r['loss_ratio_mean']:.2f}, {_fmt_epochs(r)}"
                for lr, r in zip((1e-1, 1e-2, 1e-3), learning, strict=True)
            ),
            bool(
                all(r["loss_ratio_mean"] <= 0.5 for r in learning)
                and speeds[0] < speeds[1] < speeds[2]
            ),
        ),
        (
            "momentum_within_50",
            f"momentum 0.9 and 0.99 reach good accuracy ({pct}) within ~{GOOD_WITHIN} epochs, "
            "every seed",
            "; ".join(
                f"{m:g}: {_fmt_epochs(r)}" for m, r in zip((0.9, 0.99), fast_momenta, strict=True)
            ),
            bool(
                all(
                    _epochs(r) <= GOOD_WITHIN and r["reached_target"] == r["seeds"]
                    for r in fast_momenta
                )
            ),
        ),
        (
            "no_momentum_needs_200",
            f"... instead of 200: without momentum {pct} takes ≥ {SLOW_BASELINE} epochs",
            f"momentum 0: {_fmt_epochs(no_momentum)}",
            bool(_epochs(no_momentum) >= SLOW_BASELINE),
        ),
        (
            "big_decays_too_fast",
            f"decay 1e-1 and 1e-2 decay too fast: most seeds never reach {pct}, final accuracy "
            "0.03 or more below decay 1e-4",
            "; ".join(
                f"{d:g}: {r['test_acc_mean']:.3f}, {_fmt_epochs(r)}, final lr {r['final_lr_median']:.2g}"
                for d, r in zip((1e-1, 1e-2), fast_decays, strict=True)
            )
            + f"; 1e-4: {slow_decay['test_acc_mean']:.3f}",
            bool(
                all(
                    2 * r["reached_target"] < r["seeds"]
                    and r["test_acc_mean"] <= slow_decay["test_acc_mean"] - 0.03
                    for r in fast_decays
                )
            ),
        ),
        (
            "short_patience_stalls",
            f"patience 2 and 5 stall: below {pct} at the end, < 0.02 accuracy gained over the "
            "second half, 0.03 or more below patience 15",
            "; ".join(
                f"{p}: final {r['test_acc_mean']:.3f}, second half {r['late_gain_mean']:+.3f}"
                for p, r in zip((2, 5), short_patience, strict=True)
            )
            + f"; 15: final {long_patience['test_acc_mean']:.3f}",
            bool(
                all(
                    r["test_acc_mean"] < TARGET
                    and r["late_gain_mean"] < 0.02
                    and r["test_acc_mean"] <= long_patience["test_acc_mean"] - 0.03
                    for r in short_patience
                )
            ),
        ),
        (
            "short_patience_min_lr_early",
            f"patience 2 and 5 hit the minimum lr early: lr ≤ {FROZEN_LR:g} within the first "
            f"quarter ({EARLY} epochs) in most seeds",
            "; ".join(
                f"{p}: first cut at epoch {r['first_cut_median']:.0f}, lr ≤ {FROZEN_LR:g} in "
                f"{r['frozen_seeds']}/{r['seeds']} seeds, median epoch {r['frozen_at_median']:.0f}"
                for p, r in zip((2, 5), short_patience, strict=True)
            ),
            bool(
                all(
                    2 * r["frozen_seeds"] > r["seeds"] and r["frozen_at_median"] <= EARLY
                    for r in short_patience
                )
            ),
        ),
        (
            "rmsprop_adam_within_50",
            f"RMSprop and Adam (Keras defaults) learn within ~{GOOD_WITHIN} epochs ({pct}, every "
            "seed)",
            "; ".join(f"{name}: {_fmt_epochs(r)}" for name, r in adaptive.items()),
            bool(
                all(
                    _epochs(r) <= GOOD_WITHIN and r["reached_target"] == r["seeds"]
                    for r in adaptive.values()
                )
            ),
        ),
    ]
    table = pd.DataFrame(rows, columns=["claim", "text", "value", "held"]).set_index("claim")
    table["held"] = table["held"].astype(bool)
    return table


# ---------------------------------------------------------------------------------------------
# Figures, files, summary

TITLES = {
    "lr": "SGD: learning rate",
    "momentum": "SGD(0.01): momentum (Keras)",
    "decay": "SGD(0.01): time-based decay",
    "patience": "SGD(0.01): ReduceLROnPlateau patience",
    "optimizer": "Keras defaults: optimizer",
}


def curves_figure(measured: pd.DataFrame, curves: pd.DataFrame, path: Path) -> None:
    """Mean test accuracy per epoch, one panel per grid, one line per setting; and the
    learning rate of every plateau run (one thin line per seed, the median bold)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    acc, lr = per_epoch(curves, "test_acc"), per_epoch(curves, "lr")
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5), constrained_layout=True)
    for ax, grid in zip(axes.flat, GRIDS, strict=False):
        rows = measured[measured["grid"] == grid]
        settings = list(dict.fromkeys(rows["setting"]))
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(settings)))
        for color, setting in zip(colors, settings, strict=True):
            ids = rows.loc[rows["setting"] == setting, "run_id"]
            mean = acc.loc[ids].mean()
            ax.plot(mean.index, mean.to_numpy(), color=color, label=_label(grid, setting))
        ax.axhline(TARGET, color="gray", ls=":", lw=1)
        ax.set(title=TITLES[grid], xlabel="epoch", ylabel="test accuracy", ylim=(0.2, 0.9))
        ax.legend(
            title=GRIDS[grid],
            fontsize=7,
            title_fontsize=7,
            loc="lower right",
            ncol=1 + (grid == "lr"),
        )
        ax.grid(alpha=0.3)
    ax = axes.flat[-1]
    rows = measured[measured["grid"] == "patience"]
    settings = list(dict.fromkeys(rows["setting"]))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(settings)))
    for color, setting in zip(colors, settings, strict=True):
        traces = lr.loc[rows.loc[rows["setting"] == setting, "run_id"]]
        for _, trace in traces.iterrows():
            ax.plot(trace.index, trace.to_numpy(), color=color, lw=0.5, alpha=0.4)
        median = traces.median()
        ax.plot(
            median.index, median.to_numpy(), color=color, lw=2, label=_label("patience", setting)
        )
    ax.axhline(FROZEN_LR, color="gray", ls=":", lw=1)
    ax.set(title="ReduceLROnPlateau: learning rate", xlabel="epoch", ylabel="lr", yscale="log")
    ax.set_ylim(1e-12, 0.05)
    ax.legend(title="patience (median)", fontsize=7, title_fontsize=7, loc="lower left")
    ax.grid(alpha=0.3)
    fig.suptitle("MLM blobs, Dense(50, relu) → Dense(3): mean test accuracy over seeds")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(sweep: Sweep, out: str | Path | None = None, quiet: bool = False) -> runner.Result:
    """Trains the five grids and, when ``out`` is given, writes their folder atomically."""
    progress = runner.Progress(quiet)
    start = time.perf_counter()
    runs, curves, timing = train(sweep, quiet)
    measured = run_measures(runs, curves)
    settings = settings_table(measured)
    tables = {
        "settings": report.rounded(settings),
        "claims": claims_table(settings, measured),
        **{f"grid_{g}": grid_table(settings, g) for g in GRIDS},
    }
    meta = {
        "experiment": sweep.experiment,
        "config": sweep.to_dict(),
        "grids": {g: [s.to_dict() for s in ss] for g, ss in grids(sweep).items()},
        "n_runs": int(runs["run_id"].nunique()),
        **timing,
        "wall_seconds": round(time.perf_counter() - start, 3),
        **results.environment(),
    }

    def write(folder: Path) -> None:
        results.write_tables(folder, runs, curves, meta)
        tables["settings"].to_csv(folder / "settings.csv", index=False)
        report.write_table(
            folder, "claims", tables["claims"], "The tutorial's claims and whether they held"
        )
        for g in GRIDS:
            caption = (
                f"MLM blobs, {TITLES[g]}: final test accuracy (mean ± std) and epochs to "
                f"{TARGET:.0%} test accuracy over {len(sweep.seeds)} seeds"
            )
            report.write_table(folder, f"grid_{g}", tables[f"grid_{g}"], caption)
        curves_figure(measured, curves, folder / "curves.png")
        (folder / "README.md").write_text(readme(tables, measured, meta, sweep))

    return runner.finish(runs, curves, meta, out, write, progress, tables=tables)


def summary(result: runner.Result) -> str:
    tables = result.meta["tables"]
    parts = [f"\n{NAME}: the five grids of the MLM blobs tutorial\n"]
    for g in GRIDS:
        parts += [f"{TITLES[g]}\n", report.to_markdown(tables[f"grid_{g}"])]
    claims = tables["claims"]
    parts += [
        f"claims: {int(claims['held'].sum())} of {len(claims)} held\n",
        report.to_markdown(claims),
    ]
    return "\n".join(parts)


def readme(
    tables: dict[str, pd.DataFrame], measured: pd.DataFrame, meta: dict, sweep: Sweep
) -> str:
    claims = tables["claims"]
    s = tables["settings"].set_index(["grid", "setting"])
    pct = f"{TARGET:.0%}"
    sgd = s.loc[("momentum", 0.0)]
    adagrad = s.loc[("optimizer", "adagrad")]
    lines = [
        "# blobs_dynamics: the five grids of the MLM blobs tutorial (seed 004)",
        "",
        (__doc__ or "").strip(),
        "",
        f"{meta['n_runs']} distinct runs ({len(sweep.seeds)} seeds each, {sweep.epochs} epochs) "
        f"in {meta['programs']} sweeps; {meta['train_seconds']:.1f} s training, "
        f"{meta['compile_seconds']:.1f} s compiling on {meta['backend']}. Common random numbers: "
        "seed s has the same initial weights and minibatch order in every grid.",
        "",
        f"## The claims ({int(claims['held'].sum())} of {len(claims)} held; `claims`)"
        if len(claims)
        else "## The claims (not tested: they need the tutorial's lr grid)",
        "",
        "The tutorial read its claims off plots of one run per setting; here each becomes a "
        f"threshold on numbers over seeds. *Good accuracy* is {pct} test accuracy (the best "
        "settings end at about 0.83); *epochs to "
        f"{pct}* is the first epoch at or above it, median over seeds (the count of seeds that got "
        "there in brackets; *never* when most seeds did not).",
        "",
        report.to_markdown(claims),
    ]
    notes = []
    held = claims["held"].to_dict()
    if not held.get("no_momentum_needs_200", True):
        fast = s.loc[("momentum", 0.9), "epochs_to_target_median"]
        notes.append(
            f"- *Instead of 200* does not hold here: plain SGD at lr 0.01 (momentum 0) reaches "
            f"{pct} after a median of {sgd['epochs_to_target_median']:.0f} epochs and ends at "
            f"{sgd['test_acc_mean']:.3f}. Momentum 0.9 is still "
            f"{sgd['epochs_to_target_median'] / fast:.0f}× faster ({fast:.0f} epochs)."
        )
    if not held.get("short_patience_min_lr_early", True):
        late = [p for p in (2, 5) if not s.loc[("patience", p), "frozen_at_median"] <= EARLY]
        cuts = ", ".join(
            f"patience {p}: epoch {s.loc[('patience', p), 'first_cut_median']:.0f}" for p in late
        )
        notes.append(
            f"- *Hit the minimum lr early* holds only in part: the first cut by 10 comes early "
            f"({cuts}, median; plain SGD needs {sgd['epochs_to_target_median']:.0f} epochs to "
            f"reach {pct}) and the runs stall at the lower rate, but the rate reaches "
            f"{FROZEN_LR:g} only late in training for patience {', '.join(map(str, late))}."
        )
    tiny = measured[(measured["grid"] == "lr") & measured["lr"].isin([1e-6, 1e-7])]
    if len(tiny):
        worst = tiny.loc[tiny["acc_gain"].idxmin()]
        text = (
            f"- *Learn nothing* is read on test accuracy, as in the tutorial's plots: the largest gain "
            f"of a seed at lr 1e-6 or 1e-7 is {tiny['acc_gain'].max():+.3f}. The training loss does "
            f"move at 1e-6 (to ×{tiny.loc[tiny['lr'] == 1e-6, 'loss_ratio'].mean():.2f} of its start "
            "on average)"
        )
        if worst["acc_gain"] < 0:
            text += (
                f"; seed {worst['seed']} at lr {worst['lr']:g} lowers it to "
                f"×{worst['loss_ratio']:.2f} while its test accuracy falls by {-worst['acc_gain']:.3f}"
            )
        notes.append(text + ".")
    explained = {"no_momentum_needs_200", "short_patience_min_lr_early"}
    for claim in claims.index[~claims["held"]]:
        if claim not in explained:
            notes.append(f"- `{claim}` did not hold: {claims.loc[claim, 'value']}.")
    notes.append(
        f"- Not a claim of the tutorial: Adagrad at Keras 3's defaults (lr 0.001, initial "
        f"accumulator 0.1) ends at {adagrad['test_acc_mean']:.3f} and reaches {pct} in "
        f"{adagrad['reached_target']}/{adagrad['seeds']} seeds; the tutorial ran Keras 2, whose "
        "Adagrad default was lr 0.01 with a zero accumulator."
    )
    lines += ["### Notes", "", *notes, ""]
    for g in GRIDS:
        lines += [f"## {TITLES[g]} (`grid_{g}`)", "", report.to_markdown(tables[f"grid_{g}"])]
    lines += [
        "## How the runs follow Keras",
        "",
        "- Momentum is Keras' `SGD(momentum=μ)`: the velocity holds α·g (`momentum_keras`).",
        "- Decay is Keras 2's `SGD(decay=d)`: lr / (1 + d·iterations), iterations counted in "
        "minibatches from 0 (16 per epoch), so after 200 epochs decay 1e-1 leaves lr/321.",
        "- ReduceLROnPlateau monitors the test loss (the tutorial's `val_loss`) at the end of "
        "every epoch with Keras' rules (`min_delta` 1e-7, no cooldown, `min_lr` 0): with "
        "patience 2 the rate is divided by 10 every second epoch while the loss stops improving, "
        "and ends at 0 (float32 underflow).",
        "- Optimizers at Keras 3's defaults: SGD lr 0.01; RMSprop lr 0.001, ρ 0.9, ε 1e-7 inside "
        "the root; Adagrad lr 0.001, initial accumulator 0.1, ε 1e-7 inside the root; Adam lr "
        "0.001, β 0.9/0.999, ε 1e-7 added after bias correction (Keras adds it before, a "
        "difference that fades after ~1000 steps).",
        "- Initial weights (he_uniform) and minibatch order come from JAX's PRNG, not Keras', so "
        "single runs differ from the tutorial's; the claims are tested over seeds.",
        "",
        f"`curves.png`: mean test accuracy per epoch for every grid, and the plateau runs' "
        f"learning rate (thin: seeds, bold: median; the dotted line is {FROZEN_LR:g}).",
        "`settings.csv`: every measure per grid and setting. `runs.csv` / `curves.csv`: every run "
        "(one row per grid it belongs to) and epoch; `meta.json`: versions, device, each grid's "
        "sweep.",
        "",
    ]
    return "\n".join(lines)
