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
scores 0). Per run (E epochs, ``L[t]`` the train loss after epoch t):

- ``epochs_to_target``: first epoch with test accuracy ≥ 0.95 (NaN if never).
- ``loss_auc``: area under the train-loss curve per epoch, ``mean_t L[t]`` (lower = faster).
- ``up_share``: share of the E − 1 epoch-to-epoch changes where the train loss goes up.
- ``roughness``: mean absolute second difference of the log train loss,
  ``mean_t |log L[t+1] − 2·log L[t] + log L[t−1]|`` over t = 2 … E−1 (0 for a straight line
  on a log scale, such as an exponential decay of the loss); ``early_roughness``: the same
  over the first quarter of the epochs only.
- ``test_loss_rise``: final test loss minus the lowest test loss of the run (overfitting).
- ``lr_sensitivity``: final test accuracy at the best lr minus the mean of that at the grid's
  neighbouring lrs (one grid step, ×3 or ×3.3, below and above; one neighbour at an edge),
  the other settings held; per seed, so it has a mean ± std. Larger = harder to tune.

A claim compares two sides on the per-seed values of one measure: the difference of their
means with ± 2 standard errors (``lrbench.claims.difference``) as its interval. It held
("yes") when the whole interval has the claimed sign, i.e. the difference is beyond noise;
otherwise "no", and the interval tells an opposite sign from noise. Group claims
("adaptive", "dynamic") average the members' per-seed values.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lrbench import claims, diagnose, report, results, runner, study
from lrbench.claims import NO, YES, Claim
from lrbench.models import MLPConfig
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
ADAPTIVE_GRIDS = "; ".join(f"{n}: " + ", ".join(map("{:g}".format, lrs))
                           for n, lrs in ADAPTIVE_LRS.items())  # fmt: skip
SCHEDULE_KINDS = ("constant", "step", "exponential", "time_based")
KINDS = (*SCHEDULE_KINDS, *ADAPTIVE_LRS)
DYNAMIC = ("step", "exponential", "time_based")
MEASURES = (
    "final_test_acc",
    "epochs_to_target",
    "loss_auc",
    "up_share",
    "roughness",
    "early_roughness",
    "test_loss_rise",
    "lr_sensitivity",
)


def get_config() -> Sweep:
    """The SGD part; :func:`sweeps` adds the adaptive optimizers on the same problem."""
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


def sweeps(sweep: Sweep) -> list[Sweep]:
    """The SGD sweep (four schedule kinds) and one constant-rate sweep per adaptive rule."""
    sgd = dataclasses.replace(sweep, schedules=sgd_schedules(sweep.epochs, sweep.steps_per_epoch))
    adaptive = [
        dataclasses.replace(sweep, lrs=lrs, optimizers=(Optimizer(name),), schedules=(Schedule(),))
        for name, lrs in ADAPTIVE_LRS.items()
    ]
    return [sgd, *adaptive]


def train(sweep: Sweep, quiet: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Every sweep of :func:`sweeps`; ``kind``: the schedule of SGD, else the optimizer."""
    say = runner.Progress(quiet).say
    runs, curves, timing = study.run_each(
        sweeps(sweep), lambda s: say(f"{s.optimizers[0].name}: training ...")
    )
    kind = np.where(runs["optimizer"] == "sgd", runs["schedule"], runs["optimizer"])
    runs.insert(2, "kind", kind)
    return runs, curves, timing


# ---------------------------------------------------------------------------------------------
# Measures on the curves


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


# ---------------------------------------------------------------------------------------------
# Tuning, sensitivity, tables


def _setting(runs: pd.DataFrame) -> pd.Series:
    """The non-lr setting a kind tunes (the step size of ``step``; "" otherwise)."""
    step = runs.get("step_size", pd.Series(np.nan, index=runs.index))
    return step.map(lambda v: f"step_size={v:g}" if np.isfinite(v) else "")


def measure_runs(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """``runs`` plus the curve measures, ``score`` (test accuracy, 0 when diverged) and
    ``setting``."""
    out = runs.join(curve_measures(curves), on="run_id")
    score = out["final_test_acc"].where(out["diverged_at"].isna(), 0.0).fillna(0.0)
    return out.assign(score=score, setting=_setting(out))


def best_settings(measured: pd.DataFrame) -> pd.DataFrame:
    """Per kind: the (setting, lr) of highest mean score over seeds."""
    best = results.best_mean(measured, ["kind", "setting", "lr"], "kind", "score").set_index("kind")
    return best.loc[[k for k in KINDS if k in best.index]]


def sensitivity(measured: pd.DataFrame, kind: str, setting: str, lr: float) -> pd.Series:
    """Per seed: score at ``lr`` minus the mean score at its grid neighbours."""
    rows = measured[(measured["kind"] == kind) & (measured["setting"] == setting)]
    grid = sorted(rows["lr"].unique())
    i = int(np.argmin(np.abs(np.asarray(grid) - lr)))
    neighbours = [grid[j] for j in (i - 1, i + 1) if 0 <= j < len(grid)]
    by_seed = rows.pivot_table(index="seed", columns="lr", values="score")
    return by_seed[grid[i]] - by_seed[neighbours].mean(axis=1)


def best_runs(measured: pd.DataFrame) -> pd.DataFrame:
    """The runs of each kind at its best setting, with their ``lr_sensitivity``."""
    parts = []
    for kind, b in best_settings(measured).iterrows():
        rows = measured[
            (measured["kind"] == kind)
            & (measured["setting"] == b["setting"])
            & np.isclose(measured["lr"], b["lr"])
        ]
        sens = sensitivity(measured, kind, b["setting"], b["lr"])
        parts.append(rows.assign(lr_sensitivity=rows["seed"].map(sens).to_numpy()))
    return pd.concat(parts, ignore_index=True)


def kind_numbers(best: pd.DataFrame) -> pd.DataFrame:
    """One row per kind: best lr and setting, and mean/std/n over seeds of every measure."""
    first = best.groupby("kind", sort=False)[["lr", "setting"]].first()
    numbers = first.rename(columns={"lr": "best_lr"}).join(
        report.group_stats(best, "kind", MEASURES)
    )
    return numbers.loc[[k for k in KINDS if k in numbers.index]].reset_index()


def paper_table(numbers: pd.DataFrame, n_seeds: int) -> pd.DataFrame:
    digits = {"final_test_acc": 3, "epochs_to_target": 1, "loss_auc": 3, "up_share": 2}
    numbers = numbers.set_index("kind")
    best_lr = [f"{v:g}" for v in numbers["best_lr"]]
    setting = numbers["setting"].replace("", "—")
    head = pd.DataFrame({"best lr": best_lr, "setting": setting}, index=numbers.index)
    return head.join(report.mean_std_columns(numbers, MEASURES, digits, n_seeds))


def step_size_table(measured: pd.DataFrame) -> pd.DataFrame:
    """``step`` only: per step size (best first), its best lr and mean score."""
    best = results.best_mean(measured[measured["kind"] == "step"], ["setting", "lr"], "setting",
                             "score")  # fmt: skip
    return best.rename(columns={"score": "final_test_acc_mean"}).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Claims (the CI variant's 3 seeds and 20 epochs leave two of the full run's "yes" in noise)


def _values(best: pd.DataFrame, kinds, measure: str) -> np.ndarray:
    """Per seed, the mean of ``measure`` over ``kinds`` (a group claim averages its members)."""
    rows = best[best["kind"].isin(kinds)]
    return rows.groupby("seed")[measure].mean().to_numpy(np.float64)


def versus(
    id: str, quote: str, measure: str, a, relation: str, b, expected: str, expected_ci: str = ""
) -> Claim:
    """Claim: mean ``measure`` of kinds ``a`` minus that of kinds ``b`` has the sign of
    ``relation`` beyond noise (each kind at its best setting)."""
    sides = "+".join(a), "+".join(b)

    def difference(t) -> claims.Measured:
        va, vb = _values(t["best"], a, measure), _values(t["best"], b, measure)
        detail = f"{sides[0]} {np.nanmean(va):.4g}, {sides[1]} {np.nanmean(vb):.4g}"
        return claims.difference(va, vb, detail)

    quantity = f"{measure}: {sides[0]} minus {sides[1]}"
    return Claim(id, quote, quantity, difference, relation, 0.0, whole_interval=True,
                 expected=expected, expected_ci=expected_ci)  # fmt: skip


def step_size_difference(t) -> claims.Measured:
    """Best minus worst step size (each at its own best lr): final test accuracy."""
    measured, sizes = t["measured"], step_size_table(t["measured"])
    scores = []
    for _, row in sizes.iloc[[0, -1]].iterrows():
        rows = measured[(measured["kind"] == "step") & (measured["setting"] == row["setting"])]
        scores.append(rows[np.isclose(rows["lr"], row["lr"])]["score"].to_numpy())
    detail = f"best {sizes['setting'].iloc[0]}, worst {sizes['setting'].iloc[-1]}"
    return claims.difference(*scores, detail)


ADAPTIVE = tuple(ADAPTIVE_LRS)
CONSTANT = ("constant",)
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
UNTESTED = pd.DataFrame(
    [
        ("Useful when you want to tune your parameters at different rates; quick adaptation "
         "to new events", "no per-parameter or non-stationary task here"),
        ("no consensus on the “best” adaptive algorithm",
         "an opinion about the literature; the table ranks the four on this problem only"),
        ("May be difficult to choose the right frequency of decay", "one decay frequency only"),
        ("[exponential decay] May be computationally intensive",
         "the schedule is a closed form inside one compiled program: its cost cannot be told "
         "apart"),
        ("[time-based decay] Simpler than adaptive learning rates",
         "a matter of definition, not a number"),
    ],
    columns=["quote", "why not measured"],
).set_index("quote")  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Run, summary


def analyse(runs: pd.DataFrame, curves: pd.DataFrame, n_seeds: int) -> dict[str, pd.DataFrame]:
    measured = measure_runs(runs, curves)
    best = best_runs(measured)
    numbers = kind_numbers(best)
    return {
        "measured": measured,
        "best": best,
        "numbers": numbers,
        "table": paper_table(numbers, n_seeds),
        "claims": claims.evaluate(CLAIMS, {"best": best, "measured": measured}, ARTICLE),
        "step_sizes": step_size_table(measured),
    }


def run(sweep: Sweep, out: str | Path | None = None, quiet: bool = False) -> runner.Result:
    """Trains every kind and, when ``out`` is given, writes its folder atomically."""
    start = time.perf_counter()
    runs, curves, timing = train(sweep, quiet)
    analysis = analyse(runs, curves, len(sweep.seeds))
    per_run = ["run_id", *[m for m in MEASURES if m not in runs.columns and m != "lr_sensitivity"]]
    runs = runs.merge(analysis["measured"][per_run], on="run_id")
    meta = results.meta(
        sweep, start, sweeps=[s.to_dict() for s in sweeps(sweep)], n_runs=len(runs), **timing
    )
    caption = (
        f"Each kind of learning rate at its best base lr: mean ± std over {len(sweep.seeds)} "
        f"seeds ({sweep.epochs} epochs; epochs to {TARGET:.0%} test accuracy)"
    )
    step_sizes = report.rounded(analysis["step_sizes"].set_index("setting"))
    return claims.finish(
        sys.modules[__name__], sweep, runs, curves, meta, out, quiet, found=analysis["claims"],
        tables={
            "table": (analysis["table"], caption),
            "step_sizes": (step_sizes, "Step decay: best lr and accuracy per step size"),
            "untested": (UNTESTED, "What the article says that this setting cannot test"),
        },
        figures={"curves.png": (lambda path: report.curve_figure(
            analysis["best"], curves, path, ["train_loss", "lr"], "kind",
            logy=("train_loss", "lr"), ncols=2),
            "train loss and lr per epoch, each kind at its best lr (seed mean)")},
        files={"kind_numbers.csv": analysis["numbers"]}, analysis=analysis,
        setting_table=claims.setting(sweeps(sweep)[0], more={"adaptive lrs": ADAPTIVE_GRIDS}),
    )  # fmt: skip
