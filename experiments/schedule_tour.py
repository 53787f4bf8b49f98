"""Seed 001: Coursera Staff, "Understanding the Learning Rate in Neural Networks".

The article lists kinds of learning rate (constant, step decay, exponential decay, time-based
decay, adaptive: AdaGrad, AdaDelta, RMSProp, Adam) with pros and cons. Here every kind
trains the same problem: ``digits`` (8×8 images, 10 classes), Dense(64, relu, he_uniform) ->
Dense(10), softmax cross-entropy, batch 128, 40 epochs, 5 seeds.

Kinds (``lrbench.schedules`` and ``lrbench.rules``):

- SGD with ``constant``; ``step`` (γ = 0.5 every ``step_size`` ∈ {E/8, E/4, E/2} epochs,
  the step size tuned with the lr); ``exponential`` (per epoch, ``decay_rate`` = 0.1^(1/E):
  the rate ends at a tenth); ``time_based`` (Keras ``decay`` per step, lr/(1 + decay·t),
  ``decay`` = 9 / total steps: also a tenth at the end). SGD base lrs 0.01, 0.03, 0.1, 0.3, 1, 3.
- ``adagrad``, ``adadelta``, ``rmsprop``, ``adam`` at their default hyperparameters, constant
  rate, on a grid of four or five lrs that holds their usual defaults (AdaGrad 0.01, AdaDelta 1,
  RMSProp 0.001 and 0.01, Adam 0.001; spaced ×3 or ×3.3).

Tuned fairly: each kind is reported at its best setting (base lr and, for ``step``, step
size), the one with the highest final test accuracy averaged over seeds (a diverged run
scores 0); the measures and how a claim is read follow the tables.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from lrbench import claims, diagnose, report, results, runner
from lrbench.claims import NO, YES, Claim
from lrbench.models import MLPConfig
from lrbench.study import Study
from lrbench.sweep import Optimizer, Schedule, Sweep

NAME = "schedule_tour"
TITLE = 'the kinds of learning rate of Coursera\'s "Understanding the Learning Rate"'
ARTICLE = 'Coursera Staff, "Understanding the Learning Rate in Neural Networks"'
TARGET = 0.95
SGD_LRS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
ADAPTIVE_LRS = {
    "adagrad": (0.01, 0.03, 0.1, 0.3, 1.0),
    "adadelta": (1.0, 3.0, 10.0, 30.0),
    "rmsprop": (0.001, 0.003, 0.01, 0.03),
    "adam": (0.001, 0.003, 0.01, 0.03),
}
ADAPTIVE = tuple(ADAPTIVE_LRS)
CONSTANT = ("constant",)
DYNAMIC = ("step", "exponential", "time_based")
CURVE_MEASURES = ("loss_auc", "up_share", "roughness", "early_roughness", "test_loss_rise")
MEASURES = ("final_test_acc", "epochs_to_target", *CURVE_MEASURES, "lr_sensitivity")


def get_config() -> Sweep:
    """The SGD part; :func:`study` adds the adaptive optimizers on the same problem."""
    return Sweep(
        experiment=NAME,
        description="Coursera tour: constant, step, exponential, time-based decay (SGD) vs "
        "AdaGrad, AdaDelta, RMSProp, Adam; digits, 5 seeds, 40 epochs",
        dataset="digits",
        model=MLPConfig(hidden=(64,), activation="relu", kernel_init="he_uniform"),
        epochs=40,
        batch_size=128,
        lrs=SGD_LRS,
        optimizers=(Optimizer("sgd"),),
        seeds=(0, 1, 2, 3, 4),
        target_acc=TARGET,
    )


def ci_config() -> Sweep:
    return dataclasses.replace(
        get_config(),
        seeds=(0, 1, 2),
        epochs=20,
        description="schedule_tour, CI size: 3 seeds, 20 epochs",
    )


def sgd_schedules(epochs: int, steps_per_epoch: int) -> tuple[Schedule, ...]:
    """The four SGD kinds, scaled to ``epochs`` (the decays end at a tenth of the base lr)."""
    steps = sorted({max(1, epochs // k) for k in (8, 4, 2)})
    return (
        Schedule("constant"),
        Schedule("step", {"step_size": tuple(float(s) for s in steps), "gamma": 0.5}),
        Schedule("exponential", {"decay_rate": 0.1 ** (1 / epochs)}),
        Schedule("time_based", {"decay": 9.0 / (epochs * steps_per_epoch)}),
    )


def study(sweep: Sweep) -> Study:
    """One grid per kind: SGD with each schedule of :func:`sgd_schedules`, and each adaptive
    rule at a constant rate on its own lrs (one program per optimizer)."""
    schedules = sgd_schedules(sweep.epochs, sweep.steps_per_epoch)
    sgd = {s.kind: dataclasses.replace(sweep, schedules=(s,)) for s in schedules}
    adaptive = {
        n: dataclasses.replace(sweep, lrs=lrs, optimizers=(Optimizer(n),), schedules=(Schedule(),))
        for n, lrs in ADAPTIVE_LRS.items()
    }
    return Study(sweep.experiment, {**sgd, **adaptive}, sweep.description)


# ---------------------------------------------------------------------------------------------
# Measures on the curves, tuning, tables


def curve_measures(curves: pd.DataFrame) -> pd.DataFrame:
    """Per run: ``loss_auc``, ``up_share``, ``roughness``, ``early_roughness``
    (:func:`lrbench.diagnose.rising_share`, :func:`~lrbench.diagnose.roughness`; NaN unless
    the train loss is finite throughout) and ``test_loss_rise``."""
    loss, test = results.per_epoch(curves, "train_loss"), results.per_epoch(curves, "test_loss")
    finite, quarter = np.isfinite(loss).all(axis=1), max(3, loss.shape[1] // 4)
    each = lambda f, frame: [f(row) for row in frame.to_numpy(np.float64)]  # noqa: E731
    return pd.DataFrame({
        "loss_auc": pd.Series(loss.to_numpy(np.float64).mean(1), loss.index).where(finite),
        "up_share": pd.Series(each(diagnose.rising_share, loss), loss.index).where(finite),
        "roughness": each(diagnose.roughness, loss),
        "early_roughness": each(diagnose.roughness, loss.iloc[:, :quarter]),
        "test_loss_rise": (test.iloc[:, -1] - test.min(axis=1)).where(np.isfinite(test.iloc[:, -1])),
    }, index=loss.index)  # fmt: skip


def measure_runs(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """``runs`` plus the curve measures, ``score`` (test accuracy, 0 when diverged) and
    ``setting``: the non-lr setting a kind tunes (``step_size=10`` for ``step``, else "")."""
    out = runs.join(curve_measures(curves), on="run_id")
    score = out["final_test_acc"].where(out["diverged_at"].isna(), 0.0).fillna(0.0)
    step = out.get("step_size", pd.Series(np.nan, index=out.index))
    setting = step.map(lambda v: f"step_size={v:g}" if np.isfinite(v) else "")
    return out.assign(score=score, setting=setting)


def best_runs(measured: pd.DataFrame) -> pd.DataFrame:
    """Per kind, the runs at its best (setting, lr): highest mean score over seeds (a tie goes
    to the first in sorted order), with ``lr_sensitivity``: per seed, the score there minus
    the mean score at the grid's neighbouring lrs (one neighbour at an edge)."""
    parts = []
    for _, rows in measured.groupby("kind", sort=False):
        setting, lr = rows.groupby(["setting", "lr"])["score"].mean().idxmax()
        rows = rows[rows["setting"] == setting]
        by_seed = rows.pivot_table(index="seed", columns="lr", values="score")
        i = by_seed.columns.get_loc(lr)
        near = by_seed.iloc[:, [j for j in (i - 1, i + 1) if 0 <= j < by_seed.shape[1]]]
        best = rows[rows["lr"] == lr]
        parts.append(best.assign(lr_sensitivity=best["seed"].map(by_seed[lr] - near.mean(axis=1))))
    return pd.concat(parts, ignore_index=True)


def kind_numbers(best: pd.DataFrame) -> pd.DataFrame:
    """One row per kind: best lr and setting, and mean/std/n over seeds of every measure."""
    first = best.groupby("kind", sort=False)[["lr", "setting"]].first()
    stats = report.group_stats(best, "kind", MEASURES)
    return first.rename(columns={"lr": "best_lr"}).join(stats).reset_index()


def paper_table(numbers: pd.DataFrame, n_seeds: int) -> pd.DataFrame:
    digits = {"final_test_acc": 3, "epochs_to_target": 1, "loss_auc": 3, "up_share": 2}
    numbers = numbers.set_index("kind")
    head = pd.DataFrame({"best lr": numbers["best_lr"].map("{:g}".format),
                         "setting": numbers["setting"].replace("", "—")})  # fmt: skip
    return head.join(report.mean_std_columns(numbers, MEASURES, digits, n_seeds))


def step_size_table(measured: pd.DataFrame) -> pd.DataFrame:
    """``step`` only: per step size (best first), its best lr and mean score."""
    best = results.best_mean(measured[measured["kind"] == "step"], ["setting", "lr"], "setting",
                             "score")  # fmt: skip
    return best.rename(columns={"score": "final_test_acc_mean"}).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Claims (the CI variant's 3 seeds and 20 epochs leave two of the full run's "yes" in noise)


def versus(
    id: str, quote: str, measure: str, a, relation: str, b, expected: str, expected_ci: str = ""
) -> Claim:
    """Claim: mean ``measure`` of kinds ``a`` minus that of kinds ``b`` has the sign of
    ``relation`` beyond noise (each kind at its best setting; a group averages its members
    seed by seed)."""
    sides = "+".join(a), "+".join(b)

    def difference(t) -> claims.Measured:
        va, vb = (t["best"][t["best"]["kind"].isin(k)].groupby("seed")[measure].mean()
                  for k in (a, b))  # fmt: skip
        return claims.difference(va, vb, f"{sides[0]} {va.mean():.4g}, {sides[1]} {vb.mean():.4g}")

    quantity = f"{measure}: {sides[0]} minus {sides[1]}"
    return Claim(id, quote, quantity, difference, relation, 0.0, whole_interval=True,
                 expected=expected, expected_ci=expected_ci)  # fmt: skip


def step_size_difference(t) -> claims.Measured:
    """Best minus worst step size (each at its own best lr): final test accuracy."""
    (best, best_lr), (worst, worst_lr) = step_size_table(t["measured"]).iloc[[0, -1], :2].to_numpy()
    step = t["measured"].set_index(["kind", "setting", "lr"])["score"]
    return claims.difference(step.loc[("step", best, best_lr)], step.loc[("step", worst, worst_lr)],
                             f"best {best}, worst {worst}")  # fmt: skip


CLAIMS = (
    versus("constant_easier_to_tune", "Easier to tune than dynamic learning rates",
           "lr_sensitivity", CONSTANT, "<", DYNAMIC, NO),
    versus("constant_lower_accuracy",
           "May have lower accuracy and slower convergence than dynamic learning rates",
           "final_test_acc", CONSTANT, "<", DYNAMIC, NO),
    versus("constant_slower_convergence",
           "May have lower accuracy and slower convergence than dynamic learning rates",
           "loss_auc", CONSTANT, ">", DYNAMIC, NO),
    versus("adaptive_high_accuracy", "High accuracy [vs constant SGD]",
           "final_test_acc", ADAPTIVE, ">", CONSTANT, NO),
    versus("adaptive_fast_to_target", "Fast convergence [epochs to 95% test accuracy]",
           "epochs_to_target", ADAPTIVE, "<", CONSTANT, NO),
    versus("adaptive_fast_loss_area", "Fast convergence [train-loss area]",
           "loss_auc", ADAPTIVE, "<", CONSTANT, NO),
    versus("adaptive_fast_final_loss", "Fast convergence [final train loss]",
           "final_train_loss", ADAPTIVE, "<", CONSTANT, YES),
    versus("adaptive_harder_to_tune", "Harder to tune than constant learning rates",
           "lr_sensitivity", ADAPTIVE, ">", CONSTANT, NO),
    versus("adaptive_overfits", "May lead to overfitting [test-loss rise]",
           "test_loss_rise", ADAPTIVE, ">", CONSTANT, YES, NO),
    versus("step_converges", "High convergence and generalization [train-loss area]",
           "loss_auc", ("step",), "<", CONSTANT, NO),
    versus("step_generalizes", "High convergence and generalization [final test accuracy]",
           "final_test_acc", ("step",), ">", CONSTANT, NO),
    versus("step_overfits", "May overfit [test-loss rise]",
           "test_loss_rise", ("step",), ">", CONSTANT, NO),
    Claim("step_size_matters", "Convergence quality is dependent on the step size",
          "final_test_acc: best step size minus worst, each at its best lr",
          step_size_difference, ">", 0.0, whole_interval=True, expected=NO),
    versus("exponential_smooth", "Smooth training curve [roughness]",
           "roughness", ("exponential",), "<", CONSTANT, YES),
    versus("exponential_rarely_rises", "Smooth training curve [share of rising epochs]",
           "up_share", ("exponential",), "<", CONSTANT, NO),
    versus("exponential_converges",
           "Improved convergence and generalization ability of training [train-loss area]",
           "loss_auc", ("exponential",), "<", CONSTANT, NO),
    versus("exponential_generalizes",
           "Improved convergence and generalization ability of training [final test accuracy]",
           "final_test_acc", ("exponential",), ">", CONSTANT, NO),
    versus("time_based_precise_late",
           "Smaller adjustments later in training allow for more precise convergence",
           "final_train_loss", ("time_based",), "<", CONSTANT, NO),
    versus("time_based_less_smooth", "May not perform as smoothly as exponential decay",
           "roughness", ("time_based",), ">", ("exponential",), NO),
    versus("time_based_early_fluctuations",
           "May have large performance fluctuations at the beginning of training",
           "early_roughness", ("time_based",), ">", ("exponential",), NO),
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Run


def run(sweep: Sweep, out: str | Path | None = None, quiet: bool = False) -> runner.Result:
    """Trains every kind (one study; ``kind``: its grid) and, when ``out`` is given, writes
    its folder atomically."""
    result = runner.run(study(sweep), quiet=quiet)
    runs = result.runs.rename(columns={"grid": "kind"})
    measured = measure_runs(runs, result.curves)
    best = best_runs(measured)
    found = claims.evaluate(CLAIMS, {"best": best, "measured": measured}, ARTICLE)
    numbers = kind_numbers(best)
    runs = runs.merge(measured[["run_id", *CURVE_MEASURES]], on="run_id")
    caption = (
        f"Each kind of learning rate at its best base lr: mean ± std over {len(sweep.seeds)} "
        f"seeds ({sweep.epochs} epochs; epochs to {TARGET:.0%} test accuracy)"
    )
    step_sizes = report.rounded(step_size_table(measured).set_index("setting"))
    return claims.finish(
        sys.modules[__name__], sweep, runs, result.curves, result.meta, out, quiet, found=found,
        tables={
            "table": (paper_table(numbers, len(sweep.seeds)), caption),
            "step_sizes": (step_sizes, "Step decay: best lr and accuracy per step size"),
        },
        figures={"curves.png": (lambda path: report.curve_figure(
            best, result.curves, path, ["train_loss", "lr"], "kind", logy=("train_loss", "lr"),
            ncols=2), "train loss and lr per epoch, each kind at its best lr (seed mean)")},
        files={"kind_numbers.csv": numbers},
        analysis={"measured": measured, "best": best, "numbers": numbers, "claims": found},
        setting_table=claims.setting(study(sweep)),
    )  # fmt: skip
