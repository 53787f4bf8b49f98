"""Which optimizer is easier to tune: basins, random-search curves and performance profiles.

No article's claim is tested here: the experiment turns "which optimizer is easier to tune"
into tables (docs/statistics.md has the formulas). Five small data sets (blobs, moons, iris,
digits, drug_trial; standardized) × SGD, momentum (0.9) and Adam × a constant and a cosine
schedule (to 0 over the run) × 11 learning rates log-spaced from 1e-4 to 10 (half a decade
apart) × 5 seeds, one MLP for all (Dense(32, relu, he_uniform) -> softmax), batch 32, 30
epochs. A run's *score* is its final test accuracy, chance (1 / classes) when it diverged
(DeepOBS).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from lrbench import claims, data, diagnose, report, results, runner, stats
from lrbench.errors import ConfigError
from lrbench.models import MLPConfig
from lrbench.study import Study
from lrbench.sweep import Optimizer, Schedule, Sweep

NAME = "tuning"
TITLE = "tuning sensitivity, bootstrap intervals and performance profiles"
ARTICLE = (
    "none (a study of this suite); the statistics follow Dodge et al. 2019 (expected "
    "validation performance), Agarwal et al. 2021 (bootstrap intervals, IQM, probability of "
    "improvement) and Dolan & Moré 2002 (performance profiles)"
)

# Data set -> the test accuracy whose first epoch is a run's time in the performance profile:
# just below the best seed-mean accuracy, set after a first full run as the highest such
# value that every configuration reaches (median over seeds, at its fastest lr) and that
# separates them (at blobs 0.8, iris 0.9 or drug_trial 0.945 every one took the same epochs).
TARGETS = {"blobs": 0.82, "moons": 0.96, "iris": 0.93, "digits": 0.96, "drug_trial": 0.95}
EPOCHS = 30
LRS = tuple(float(v) for v in np.logspace(-4, 1, 11))
OPTIMIZERS = (Optimizer("sgd"), Optimizer("momentum", {"momentum": 0.9}), Optimizer("adam"))
WITHIN = 0.05  # the basin: seed-mean score within 5% (relative) of the best
KS = (1, 5, 20)  # random-search budgets
CONFIG = ["optimizer", "schedule"]


def get_config() -> Sweep:
    """The grid on blobs; :func:`study` repeats it on every data set of ``TARGETS``."""
    return Sweep(
        experiment=NAME,
        description="tuning sensitivity: 5 data sets x SGD, momentum, Adam x constant, cosine "
        "x 11 lrs 1e-4 ... 10 x 5 seeds, 30 epochs",
        dataset="blobs",
        model=MLPConfig(hidden=(32,), activation="relu", kernel_init="he_uniform"),
        epochs=EPOCHS,
        batch_size=32,
        lrs=LRS,
        optimizers=OPTIMIZERS,
        schedules=_schedules(EPOCHS),
        seeds=tuple(range(5)),
    )


def ci_config() -> Sweep:
    """6 learning rates (a decade apart), 3 seeds, 10 epochs."""
    return dataclasses.replace(
        get_config(), description="tuning, CI size: 6 lrs, 3 seeds, 10 epochs", epochs=10,
        lrs=tuple(float(v) for v in np.logspace(-4, 1, 6)), seeds=(0, 1, 2),
        schedules=_schedules(10),
    )  # fmt: skip


def _schedules(epochs: int) -> tuple[Schedule, ...]:
    return (Schedule("constant"), Schedule("cosine", {"decay_steps": float(epochs)}))


def study(sweep: Sweep) -> Study:
    """One grid per data set, each ``sweep`` on that data set."""
    grids = {name: dataclasses.replace(sweep, dataset=name) for name in TARGETS}
    return Study(sweep.experiment, grids, sweep.description)


# ---------------------------------------------------------------------------------------------
# Measures


def scored(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with ``score`` (final test accuracy; chance when diverged) and ``epochs_to``
    (the first epoch at the data set's target test accuracy; NaN if never)."""
    chance = runs["dataset"].map(lambda d: 1.0 / data.load(d).num_classes)
    acc = results.per_epoch(curves, "test_acc")
    target = runs["dataset"].map(TARGETS).to_numpy()
    first = diagnose.epochs_to_target(acc.loc[runs["run_id"]].to_numpy(), target[:, None])
    return runs.assign(score=diagnose.deepobs_score(runs, chance), epochs_to=first)


def sensitivity(runs: pd.DataFrame) -> pd.DataFrame:
    return stats.tuning_sensitivity(
        runs, "score", by=("dataset", *CONFIG), within=WITHIN, ks=KS
    ).drop(columns=["best_std"])


def at_best_lr(runs: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Each configuration's runs at its best learning rate on each data set."""
    best = table[["dataset", *CONFIG, "best_lr"]]
    merged = runs.merge(best, on=["dataset", *CONFIG])
    return merged[np.isclose(merged["lr"], merged["best_lr"])]


def intervals(best: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: the mean score at its best lr per data set, and over all data sets
    the mean and IQM, each with its 95% bootstrap interval (stratified by data set)."""
    rows = {}
    for key, frame in best.groupby(CONFIG, sort=False):
        per = {d: f["score"].to_numpy() for d, f in frame.groupby("dataset", sort=False)}
        row = {d: report.interval(*stats.mean_ci(v)) for d, v in per.items()}
        row["all: mean"] = report.interval(*stats.mean_ci(per))
        row["all: IQM"] = report.interval(*stats.iqm_ci(per))
        rows[" / ".join(key)] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(" / ".join(CONFIG))


PAIRS = (
    ("optimizer=adam,schedule=constant", "optimizer=sgd,schedule=constant"),
    ("optimizer=momentum,schedule=constant", "optimizer=sgd,schedule=constant"),
    ("optimizer=adam,schedule=constant", "optimizer=momentum,schedule=constant"),
    ("optimizer=sgd,schedule=cosine", "optimizer=sgd,schedule=constant"),
    ("optimizer=momentum,schedule=cosine", "optimizer=momentum,schedule=constant"),
    ("optimizer=adam,schedule=cosine", "optimizer=adam,schedule=constant"),
)


def improvement(best: pd.DataFrame) -> pd.DataFrame:
    """P(A > B) at each side's best lr, the mean over data sets, with its stratified interval."""
    rows, sets = {}, list(dict.fromkeys(best["dataset"]))
    for a, b in PAIRS:
        try:
            sa, sb = stats.select(best, a, "a"), stats.select(best, b, "b")
        except ConfigError:  # a sweep without one of the pair (--set optimizer=...)
            continue
        per_a = [sa.loc[sa["dataset"] == d, "score"].to_numpy() for d in sets]
        per_b = [sb.loc[sb["dataset"] == d, "score"].to_numpy() for d in sets]
        got = stats.probability_of_improvement(per_a, per_b)
        name = f"{_short(a)} > {_short(b)}"
        rows[name] = {"P(A > B)": round(got.value, 3), "95% interval": f"[{got.low:.3f}, "
                      f"{got.high:.3f}]"}  # fmt: skip
    out = pd.DataFrame.from_dict(rows, orient="index")
    return out.rename_axis("A > B (score at each one's best lr)")


def _short(selector: str) -> str:
    return " / ".join(v for _, v in stats.parse_selector(selector, "a").items())


def profile_times(runs: pd.DataFrame) -> pd.DataFrame:
    """Per data set and configuration: the median over seeds of the epochs to the target
    (never: inf) at the configuration's fastest learning rate, and that rate."""
    t = runs.assign(t=runs["epochs_to"].fillna(np.inf))
    med = t.groupby(["dataset", *CONFIG, "lr"], sort=False)["t"].median().reset_index()
    fastest = med.sort_values(["t", "lr"], ascending=[True, False], kind="stable")
    fastest = fastest.groupby(["dataset", *CONFIG], sort=False).head(1).sort_index()
    fastest = fastest.assign(config=fastest[CONFIG].agg(" / ".join, axis=1), target=fastest[
        "dataset"].map(TARGETS))  # fmt: skip
    return fastest.rename(columns={"dataset": "problem", "t": "time"})[
        ["problem", "target", "config", "lr", "time"]
    ].reset_index(drop=True)


def profile(times: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """The ratios, the tidy profile (with each config's area) and the areas."""
    ratios = stats.performance_ratios(times)
    area = stats.profile_area(ratios)
    prof = stats.performance_profile(ratios)
    return ratios, prof.assign(area=prof["config"].map(area)), area


def area_table(times: pd.DataFrame, ratios: pd.DataFrame, area: pd.Series) -> pd.DataFrame:
    """Per configuration: the epochs to the target on each data set (its fastest lr) and the
    area under its profile."""
    shown = times.assign(cell=[f"{t:g} (lr {lr:.2g})" if np.isfinite(t) else "never"
                               for t, lr in zip(times["time"], times["lr"], strict=True)])  # fmt: skip
    out = shown.pivot(index="config", columns="problem", values="cell")
    sets = list(dict.fromkeys(times["problem"]))
    out = out.loc[list(dict.fromkeys(times["config"])), sets]
    out.columns = [f"{d} (≥ {TARGETS[d]:g})" for d in sets]
    out["area (τ ≤ 4)"] = area.round(3).reindex(out.index)
    out.index.name = "optimizer / schedule"
    return out


def overview(table: pd.DataFrame, area: pd.Series) -> pd.DataFrame:
    """Per configuration, the mean over data sets of the basin width and of the expected best
    score of k random trials, and the area under its performance profile."""
    numbers = ["width_decades", *(f"evp_{k}" for k in KS)]
    out = table.groupby(CONFIG, sort=False)[numbers].mean()
    out.index = [" / ".join(k) for k in out.index]
    out = out.rename(columns={"width_decades": "basin width (decades)"})
    out["profile area"] = area.reindex(out.index)
    out.index.name = "optimizer / schedule (mean over data sets)"
    return report.rounded(out, 3)


def sensitivity_view(table: pd.DataFrame) -> pd.DataFrame:
    view = table.assign(basin=[f"{lo:.2g} … {hi:.2g}" for lo, hi in zip(
        table["lo_lr"], table["hi_lr"], strict=True)])  # fmt: skip
    view = view[["dataset", *CONFIG, "best_lr", "best", "basin", "width_decades",
                 *(f"evp_{k}" for k in KS)]]  # fmt: skip
    return report.rounded(view.set_index("dataset"), 3)


def setting(sweep: Sweep) -> pd.DataFrame:
    """The config table, with the five data sets and their targets in place of the one
    ``dataset`` and ``target_acc`` of the base sweep."""
    targets = {"target test accuracy": ", ".join(f"{d} {t:g}" for d, t in TARGETS.items())}
    table = claims.setting(sweep, more=targets).drop(index="target_acc")
    table.loc["dataset", "value"] = ", ".join(TARGETS)
    return table


def run(sweep: Sweep, out: str | Path | None = None, quiet: bool = False) -> runner.Result:
    result = runner.run(study(sweep), quiet=quiet)
    runs = scored(result.runs, result.curves)
    table = sensitivity(runs)
    best = at_best_lr(runs, table)
    times = profile_times(runs)
    ratios, prof, area = profile(times)
    n = f"{len(sweep.seeds)} seeds, {sweep.epochs} epochs"
    meta = {**result.meta, "targets": TARGETS, "within": WITHIN, "ks": list(KS)}
    title = f"performance profiles: epochs to the target test accuracy ({n})"
    return claims.finish(
        sys.modules[__name__], sweep, runs, result.curves, meta, out, quiet, found=None,
        tables={
            "overview": (overview(table, area), f"Which configuration is easier to tune ({n})"),
            "sensitivity": (sensitivity_view(table), f"Tuning sensitivity: basin within "
                            f"{WITHIN:.0%} of the best score and expected best of k random "
                            f"trials ({n})"),
            "intervals": (intervals(best), f"Score at the best lr, mean [95% bootstrap "
                          f"interval] over seeds; all: stratified by data set ({n})"),
            "improvement": (improvement(best), "Probability of improvement, mean over data "
                            "sets [95% stratified bootstrap interval]"),
            "profile": (area_table(times, ratios, area), "Epochs to the target (median over "
                        "seeds, at the fastest lr) and the area under the performance profile"),
        },
        setting_table=setting(sweep),
        figures={"profile.png": (lambda path: report.profile_figure(prof, path, title=title),
                                 "performance profiles (epochs to the target test accuracy)")},
        files={"profile_curve.csv": prof, "sensitivity_numbers.csv": table,
               "profile_times.csv": ratios},
    )  # fmt: skip
