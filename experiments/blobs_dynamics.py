"""All five grids of Machine Learning Mastery's blobs tutorial, 10 seeds each (seed 004).

The tutorial trains Dense(50, relu, he_uniform) → Dense(3, softmax) on `make_blobs` (3
classes, cluster_std 2, random_state 2; 500 train / 500 test) for 200 epochs with batch 32,
and varies one thing at a time: the SGD learning rate (1 … 1e-7), momentum at lr 0.01 (0, 0.5,
0.9, 0.99), Keras' time-based decay at lr 0.01 (1e-1 … 1e-4), ReduceLROnPlateau's patience at
lr 0.01 (2, 5, 10, 15) and the optimizer at Keras' defaults (SGD, RMSprop, Adagrad, Adam). It
reads its claims off plots of one run per setting; here each claim is one number over seeds
with a threshold. *Good accuracy* is 80% test accuracy (the best settings end at about 0.83);
*epochs to 80%* is the first epoch at or above it, and a seed that never gets there counts as
the epoch after the last, so a median over seeds says *never* when most seeds never do. The
five grids are one study: seed s has the same initial weights and minibatch order in every
grid, and SGD at lr 0.01 (in the lr and the optimizer grids) is trained once.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from lrbench import claims, diagnose, report, results, runner
from lrbench.claims import Claim, Measured, Select
from lrbench.models import MLPConfig
from lrbench.study import Study
from lrbench.sweep import Optimizer, Schedule, Sweep

NAME = "blobs_dynamics"
TITLE = "the five grids of the MLM blobs tutorial (seed 004)"
ARTICLE = (
    'Jason Brownlee, "Understanding the Impact of Learning Rate on Neural Network '
    "Performance\", Machine Learning Mastery (seed 004's companion tutorial)"
)
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
GRIDS = ("lr", "momentum", "decay", "patience", "optimizer")  # each its runs-table column
TARGET = 0.8


def get_config() -> Sweep:
    """The ``lr`` grid; :func:`study` derives the other four from it (seeds, epochs, data)."""
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


def study(sweep: Sweep) -> Study:
    """The five grids as one study; ``sweep`` itself is the ``lr`` grid."""
    at_base = dict(lrs=(BASE_LR,), optimizers=(Optimizer("sgd"),), schedules=(Schedule(),))

    def variant(**changes) -> Sweep:
        return dataclasses.replace(sweep, **{**at_base, **changes})

    plateau = Schedule("reduce_on_plateau", {**PLATEAU, "patience": PATIENCES})
    grids = {
        "lr": sweep,
        "momentum": variant(optimizers=(Optimizer("momentum_keras", {"momentum": MOMENTA}),)),
        "decay": variant(schedules=(Schedule("time_based", {"decay": DECAYS}),)),
        "patience": variant(schedules=(plateau,)),
        "optimizer": tuple(
            variant(lrs=(lr,), optimizers=(o,)) for lr, o in KERAS_DEFAULTS.values()
        ),
    }
    return Study(sweep.experiment, grids, sweep.description)


# ---------------------------------------------------------------------------------------------
# Measures


FROZEN_LR = 1e-6  # at or below it the lr grid learns nothing in 200 epochs


def run_measures(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """``runs`` plus, per run: ``setting`` (the value its grid varies), ``loss_ratio`` (final
    over initial training loss), ``acc_gain`` (final minus first-epoch test accuracy),
    ``late_gain`` (final test accuracy minus that at mid-training), ``acc_jitter`` (mean |change|
    of test accuracy from epoch to epoch over the second half), ``final_lr``, ``first_cut``
    (first epoch trained below the base lr), ``frozen_at`` (first epoch with lr ≤
    ``FROZEN_LR``), and ``epochs_to_80`` / ``frozen_by`` (``epochs_to_target`` / ``frozen_at``
    with *never* counted as the epoch after the last, so that a median over seeds says
    *never* when most seeds never got there)."""
    acc, lr = results.per_epoch(curves, "test_acc"), results.per_epoch(curves, "lr")
    mid = acc.shape[1] // 2
    per_run = pd.DataFrame(
        {
            "acc_gain": acc.iloc[:, -1] - acc.iloc[:, 0],
            "late_gain": acc.iloc[:, -1] - acc.iloc[:, mid - 1],
            "acc_jitter": np.nanmean(np.abs(np.diff(acc.iloc[:, mid:].to_numpy(), axis=1)), axis=1),
            "final_lr": lr.iloc[:, -1],
            "first_cut": diagnose.first_true(lr.lt(lr.iloc[:, 0] * (1 - 1e-6), axis=0)),
            "frozen_at": diagnose.first_true(lr <= FROZEN_LR),
        },
        index=acc.index,
    )
    setting = [row[row["grid"]] for _, row in runs.iterrows()]
    ratio = runs["final_train_loss"] / runs["initial_train_loss"]
    out = runs.assign(setting=setting, loss_ratio=ratio).join(per_run, on="run_id")
    never = acc.shape[1] + 1
    return out.assign(
        epochs_to_80=out["epochs_to_target"].fillna(never), frozen_by=out["frozen_at"].fillna(never),
        reached=out["epochs_to_target"].notna(),
    )  # fmt: skip


# The settings table: column -> (column of run_measures, aggregate over a setting's seeds)
SETTINGS = {
    "lr": ("lr", "first"), "seeds": ("lr", "size"),
    "test_acc_mean": ("final_test_acc", "mean"), "test_acc_std": ("final_test_acc", "std0"),
    "epochs_to_target_median": ("epochs_to_target", "median"),
    "reached_target": ("epochs_to_target", "count"), "loss_ratio_mean": ("loss_ratio", "mean"),
    "acc_gain_mean": ("acc_gain", "mean"), "acc_jitter_mean": ("acc_jitter", "mean"),
    "final_lr_median": ("final_lr", "median"), "late_gain_mean": ("late_gain", "mean"),
    "first_cut_median": ("first_cut", "median"), "cut_seeds": ("first_cut", "count"),
    "frozen_seeds": ("frozen_at", "count"), "frozen_at_median": ("frozen_at", "median"),
    "status": ("status", "mode"),
    "oscillating_seeds": ("status", lambda v: int((v == "oscillating").sum())),
}  # fmt: skip


def settings_table(measured: pd.DataFrame) -> pd.DataFrame:
    """One row per grid and setting: :data:`SETTINGS` over its seeds."""
    return results.summarize(measured, ["grid", "setting"], SETTINGS).reset_index()


def grid_table(settings: pd.DataFrame, grid: str) -> pd.DataFrame:
    """The paper table of one grid: final test accuracy and epochs to the target."""
    t = settings[settings["grid"] == grid]
    pct = f"{TARGET:.0%}"
    table = pd.DataFrame(
        {
            "final test acc": list(map(report.mean_std, t["test_acc_mean"], t["test_acc_std"])),
            f"epochs to {pct} (median of seeds reaching it)": [
                "—" if not np.isfinite(e) else f"{e:.0f}" for e in t["epochs_to_target_median"]
            ],
            f"seeds reaching {pct}": list(map("{}/{}".format, t["reached_target"], t["seeds"])),
        },
        index=[s if isinstance(s, str) else f"{float(s):g}" for s in t["setting"]],
    )
    if grid == "optimizer":
        table.insert(0, "lr", [f"{lr:g}" for lr in t["lr"]])
    if grid in ("decay", "patience"):
        table["final lr (median)"] = [f"{v:.3g}" for v in t["final_lr_median"]]
    if grid == "patience":
        for title, median, seeds in (
            ("first cut", "first_cut_median", "cut_seeds"),
            (f"lr ≤ {FROZEN_LR:g} from", "frozen_at_median", "frozen_seeds"),
        ):
            table[f"{title} (median epoch)"] = [
                f"{e:.0f} ({k}/{n})" if 2 * k > n else f"— ({k}/{n})"
                for e, k, n in zip(t[median], t[seeds], t["seeds"], strict=True)
            ]  # fmt: skip
    return table.rename_axis(grid)


# ---------------------------------------------------------------------------------------------
# The tutorial's claims, as data: ``settings`` (one row per grid and setting) and ``runs``

GOOD_WITHIN = 50  # "within ~50 epochs"
SLOW_BASELINE = 150  # "instead of 200": plain SGD needs at least this many epochs to 80%
EARLY = 50  # "early": within the first quarter of the 200 epochs
MID_LRS = (1e-1, 1e-2, 1e-3)


def at(grid: str, setting, column: str) -> Select:
    return Select("settings", column, {"grid": grid, "setting": setting})


def worst(grid: str, settings, column: str, what: str, fmt: str = ".3g", table: str = "settings",
          aggregate: str = "mean") -> claims.Extreme:  # fmt: skip
    """The largest ``column`` (``aggregate`` over a setting's rows of ``table``) among
    ``settings`` of ``grid``; the detail: ``what at grid s: value; ...``."""
    select = Select(table, column, {"grid": grid}, aggregate)
    return claims.Extreme(select, "setting", tuple(settings), "max", fmt, f"{what} at {grid} ")


def slowest(grid: str, settings, aggregate: str = "max") -> claims.Extreme:
    """The slowest seed's (or the median) epochs to 80% among ``settings`` of ``grid``."""
    what = "slowest seed" if aggregate == "max" else aggregate
    return worst(grid, settings, "epochs_to_80", what, ".0f", "runs", aggregate)


def gap(grid: str, best, worse) -> claims.Combined:
    """Mean final test accuracy at ``best`` minus the best of ``worse`` (settings of ``grid``)."""
    worse = worst(grid, worse, "test_acc_mean", "")
    return claims.Combined("-", at(grid, best, "test_acc_mean"), worse, detail=True)


def slower_steps(tables) -> Measured:
    epochs = slowest("lr", MID_LRS, "median").series(tables)
    detail = f"median epochs to 80% at lr {claims.listing(epochs, '.0f')}"
    return Measured(int((epochs.diff() > 0).sum()), detail=detail)


CLAIMS = (
    Claim("lr_1_oscillates", "lr 1.0 oscillates", "share of seeds at lr 1 whose status is "
          "oscillating", claims.ratio(at("lr", 1.0, "oscillating_seeds"), at("lr", 1.0, "seeds")),
          ">", 0.5),
    Claim("lr_1_jitters", "lr 1.0 oscillates", "test-accuracy jitter (second half) at lr 1 "
          "over that at lr 0.1", claims.ratio(at("lr", 1.0, "acc_jitter_mean"),
                                              at("lr", 0.1, "acc_jitter_mean")), ">=", 3.0),
    Claim("tiny_lrs_learn_nothing", "lr 1e-6 and 1e-7 learn nothing", "largest test-accuracy "
          "gain of a seed over training, lr 1e-6 and 1e-7", worst("lr", [1e-6, 1e-7], "acc_gain",
          "largest gain of a seed", ".3f", "runs", "max"), "<", 0.05),
    Claim("mid_lrs_learn", "lr 1e-1, 1e-2 and 1e-3 learn", "largest mean final / initial "
          "training loss, lr 1e-1, 1e-2, 1e-3", worst("lr", MID_LRS, "loss_ratio_mean",
          "final / initial loss", ".2f"), "<=", 0.5),
    Claim("mid_lrs_learn_slower", "... more slowly as the learning rate falls", "steps down "
          "in lr (1e-1 → 1e-2 → 1e-3) after which the median epochs to 80% rise",
          slower_steps, ">=", 2),
    Claim("momentum_within_50", "momentum 0.9 and 0.99 reach good accuracy within ~50 epochs",
          "slowest seed's epochs to 80%, momentum 0.9 and 0.99", slowest("momentum", [0.9, 0.99]),
          "<=", GOOD_WITHIN, expected="no", expected_ci="yes"),  # one seed of 0.99 needs 60
    Claim("no_momentum_needs_200", "... instead of 200 without momentum", "median epochs to "
          "80% of plain SGD (momentum 0)", slowest("momentum", [0.0], "median"), ">=",
          SLOW_BASELINE, expected="no"),
    Claim("big_decays_too_fast", "decay 1e-1 and 1e-2 decay too fast", "final test accuracy "
          "of decay 1e-4 minus the better of 1e-1 and 1e-2", gap("decay", 1e-4, [1e-1, 1e-2]),
          ">=", 0.03),
    Claim("big_decays_never_reach_80", "decay 1e-1 and 1e-2 decay too fast (to reach good "
          "accuracy)", "larger share of seeds reaching 80%, decay 1e-1 and 1e-2",
          worst("decay", [1e-1, 1e-2], "reached", "share of seeds reaching 80%", ".2f", "runs"),
          "<", 0.5),
    Claim("short_patience_stalls", "patience 2 and 5 stall", "larger mean test-accuracy gain "
          "over the second half, patience 2 and 5",
          worst("patience", [2, 5], "late_gain_mean", "second-half gain", "+.3f"), "<", 0.02),
    Claim("short_patience_below_80", "patience 2 and 5 do not reach good accuracy",
          "larger mean final test accuracy, patience 2 and 5",
          worst("patience", [2, 5], "test_acc_mean", "final test accuracy", ".3f"), "<",
          TARGET),
    Claim("short_patience_behind_15", "patience 2 and 5 end behind longer patience",
          "final test accuracy of patience 15 minus the better of 2 and 5",
          gap("patience", 15, [2, 5]), ">=", 0.03),
    Claim("short_patience_min_lr_early", "patience 2 and 5 hit the minimum lr early",
          f"larger median epoch at which lr ≤ {FROZEN_LR:g}, patience 2 and 5", worst("patience",
          [2, 5], "frozen_by", "median epoch", ".0f", "runs", "median"), "<=", EARLY,
          expected="no"),
    Claim("rmsprop_adam_within_50", "RMSprop and Adam learn within ~50 epochs",
          "slowest seed's epochs to 80%, RMSprop and Adam (Keras defaults)",
          slowest("optimizer", ["rmsprop", "adam"]), "<=", GOOD_WITHIN),
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Figures, files, summary

TITLES = {
    "lr": "SGD: learning rate",
    "momentum": "SGD(0.01): momentum (Keras)",
    "decay": "SGD(0.01): time-based decay",
    "patience": "SGD(0.01): ReduceLROnPlateau patience",
    "optimizer": "Keras defaults: optimizer",
}


# curves.png: mean test accuracy per epoch, one panel per grid, one line per setting; and the
# learning rate of every plateau run (one thin line per seed, the median bold)
CURVES = dict(
    titles=TITLES, reference=TARGET, ylim=(0.2, 0.9), band="std",
    traces="patience", traces_reference=FROZEN_LR, traces_ylim=(1e-12, 0.05),
    traces_title="ReduceLROnPlateau: learning rate",
    title="MLM blobs, Dense(50, relu) → Dense(3): test accuracy per epoch",
)  # fmt: skip


def run(sweep: Sweep, out: str | Path | None = None, quiet: bool = False) -> runner.Result:
    """Trains the five grids (one study) and, when ``out`` is given, writes their folder
    atomically."""
    result = runner.run(study(sweep), quiet=quiet)
    runs, curves = result.runs, result.curves
    measured = run_measures(runs, curves)
    settings = settings_table(measured)
    caption = (f"final test accuracy (mean ± std) and epochs to {TARGET:.0%} test accuracy over "
               f"{len(sweep.seeds)} seeds")  # fmt: skip
    return claims.finish(
        sys.modules[__name__], sweep, runs, curves, result.meta, out, quiet,
        found=claims.evaluate(CLAIMS, {"runs": measured, "settings": settings}, ARTICLE),
        tables={f"grid_{g}": (grid_table(settings, g), f"MLM blobs, {title}: {caption}")
                for g, title in TITLES.items()},
        figures={"curves.png": (lambda path: report.settings_figure(
            measured, curves, path, "test_acc", "grid", "setting", **CURVES), FIGURE)},
        files={"settings.csv": report.rounded(settings)},
        setting_table=claims.setting(study(sweep)),
    )  # fmt: skip


FIGURE = (
    "mean test accuracy per epoch (band: ± std over seeds) for every grid, and the plateau "
    f"runs' learning rate (thin: seeds, bold: median; the dotted line is {FROZEN_LR:g})"
)
