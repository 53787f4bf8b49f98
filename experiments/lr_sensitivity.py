"""Learning-rate sensitivity in the DeepOBS protocol: the U-shaped curve of seed 004.

Seed 004 (Machine Learning Mastery, "Understanding the learning rate") says a sensitivity
analysis of the learning rate on a log grid "often show[s] a 'U' shape": too large a rate
makes the loss oscillate and the weights diverge, too small a rate learns very slowly or gets
stuck; momentum "does not make it easier to configure the learning rate"; and an adaptive
method "will generally outperform a model with a badly configured learning rate".

Grid: 36 learning rates log-spaced from 1e-5 to 1e2 (``np.logspace(-5, 2, 36)``, 0.2 decades
apart) × SGD, momentum (0.9), RMSProp, Adam (optax defaults otherwise) × 10 seeds on
scikit-learn's digits (1,348 train / 449 test, standardized), an MLP Dense(64, relu,
he_uniform) -> Dense(10), softmax cross-entropy, batch 128, 40 epochs, constant rate.
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
from lrbench.sweep import Optimizer, Sweep

NAME = "lr_sensitivity"
TITLE = "the U-shaped learning-rate sensitivity curve (seed 004, DeepOBS protocol)"
ARTICLE = 'Machine Learning Mastery, "Understanding the learning rate" (seed 004)'

LRS = tuple(float(v) for v in np.logspace(-5, 2, 36))
CI_LRS = tuple(float(v) for v in np.logspace(-5, 2, 12))
OPTIMIZERS = (
    Optimizer("sgd"),
    Optimizer("momentum", {"momentum": 0.9}),
    Optimizer("rmsprop"),
    Optimizer("adam"),
)
NUM_CLASSES = 10
CHANCE = 1.0 / NUM_CLASSES  # the score of a diverged run
WITHIN = 0.05  # the good region: mean score within 5% (relative) of the best
CURVE_EPOCHS = 5  # curves are kept at epoch 1, every 5th epoch and the last


def get_config() -> Sweep:
    return Sweep(
        experiment=NAME,
        description="DeepOBS-style lr sensitivity: 36 lrs 1e-5 ... 1e2 x SGD, momentum, "
        "RMSProp, Adam x 10 seeds, digits, 40 epochs",
        dataset="digits",
        model=MLPConfig(hidden=(64,), activation="relu", kernel_init="he_uniform"),
        epochs=40,
        batch_size=128,
        lrs=LRS,
        optimizers=OPTIMIZERS,
        seeds=tuple(range(10)),
        target_acc=0.9,
    )


def ci_config() -> Sweep:
    """12 learning rates over the same range, 3 seeds, 20 epochs."""
    return dataclasses.replace(
        get_config(),
        description="lr_sensitivity, CI size: 12 lrs, 3 seeds, 20 epochs",
        lrs=CI_LRS,
        seeds=(0, 1, 2),
        epochs=20,
    )


def add_scores(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with the DeepOBS ``score`` and ``min_train_loss`` (the lowest finite epoch loss)."""
    low = curves.groupby("run_id", sort=False)["train_loss"].min()
    return runs.assign(score=diagnose.deepobs_score(runs, CHANCE),
                       min_train_loss=runs["run_id"].map(low).to_numpy())  # fmt: skip


def best_lr_per_seed(runs: pd.DataFrame) -> pd.DataFrame:
    """Per optimizer and seed, the grid lr of the highest score (the lowest such lr on ties)."""
    order = runs.sort_values(
        ["optimizer", "seed", "score", "lr"], ascending=[True, True, False, True]
    )
    return order.groupby(["optimizer", "seed"], sort=False).head(1)[
        ["optimizer", "seed", "lr", "score"]
    ]


def sensitivity(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per optimizer: best lr and score, per-seed best-lr spread, good-region width."""
    r = diagnose.good_region(runs, within=WITHIN, metric="score").set_index("optimizer")
    at_best = runs[np.isclose(runs["lr"], runs["optimizer"].map(r["best_lr"]))]
    at_best = at_best.groupby("optimizer")[["final_train_loss", "min_train_loss"]].median()
    seed = best_lr_per_seed(runs).groupby("optimizer")["lr"]
    low, high = seed.min(), seed.max()
    columns = {
        "best_lr": r["best_lr"], "score_mean": r["best"], "score_std": r["best_std"],
        **at_best, "seed_best_lr_min": low,
        "seed_best_lr_median": 10 ** seed.agg(lambda v: np.median(np.log10(v))),
        "seed_best_lr_max": high, "seed_spread_decades": np.log10(high / low),
        "good_lo_lr": r["lo_lr"], "good_hi_lr": r["hi_lr"],
        "good_width_decades": r["width_decades"],
    }  # fmt: skip
    return pd.DataFrame({k: v.reindex(r.index) for k, v in columns.items()}).reset_index()


def paper_table(table: pd.DataFrame) -> pd.DataFrame:
    """The sensitivity table formatted for a paper (one row per optimizer)."""
    lrs = ("best_lr", "seed_best_lr_min", "seed_best_lr_median", "seed_best_lr_max", "good_lo_lr",
           "good_hi_lr")  # fmt: skip
    f = report.formatted(table.set_index("optimizer"), {
        **dict.fromkeys(lrs, ".2g"), "score_mean": ".3f", "score_std": ".3f",
        "final_train_loss": ".3g", "min_train_loss": ".3g", "seed_spread_decades": ".1f",
        "good_width_decades": ".1f"})  # fmt: skip
    return pd.DataFrame(
        {
            "best lr": f["best_lr"],
            "test acc (mean ± std)": f["score_mean"] + " ± " + f["score_std"],
            "train loss final / min": f["final_train_loss"] + " / " + f["min_train_loss"],
            "per-seed best lr min / median / max": f["seed_best_lr_min"] + " / "
            + f["seed_best_lr_median"] + " / " + f["seed_best_lr_max"],
            "spread (decades)": f["seed_spread_decades"],
            f"good region (within {WITHIN:.0%})": f["good_lo_lr"] + " … " + f["good_hi_lr"],
            "width (decades)": f["good_width_decades"],
        }
    )  # fmt: skip


def _means(t) -> pd.Series:
    """Mean score over seeds, indexed by (optimizer, lr)."""
    return t["runs"].groupby(["optimizer", "lr"])["score"].mean()


def u_margin(t) -> claims.Measured:
    """Per optimizer: best mean score minus the higher of the grid's two ends; the smallest."""
    by = _means(t).groupby(level=0, sort=False)
    margin = by.agg(lambda m: m.max() - max(m.iloc[0], m.iloc[-1]))
    return claims.extreme(margin, "min", ".2f", " ")


def _lrs(t, where: str) -> pd.DataFrame:
    """The runs at the smallest lr of the grid (``"smallest"``) or at its three largest."""
    runs = t["runs"]
    lrs = np.sort(runs["lr"].unique())
    return runs[runs["lr"] == lrs[0]] if where == "smallest" else runs[runs["lr"] >= lrs[-3]]


def momentum_widening(t) -> claims.Measured:
    """Momentum's good-region width minus SGD's, in decades."""
    s = t["sensitivity"].set_index("optimizer")
    sgd, mom = s.loc["sgd"], s.loc["momentum"]
    shift = np.log10(sgd["best_lr"] / mom["best_lr"])
    detail = (
        f"sgd {sgd['good_width_decades']:.1f}, momentum {mom['good_width_decades']:.1f} "
        f"decades; momentum's best lr {shift:.1f} decades lower"
    )
    return claims.Measured(mom["good_width_decades"] - sgd["good_width_decades"], detail=detail)


def adaptive_margin(t) -> claims.Measured:
    """The lower of RMSProp's and Adam's mean score at the grid lr nearest 1e-3 minus SGD's
    best mean score outside its good region."""
    mean, s = _means(t), t["sensitivity"].set_index("optimizer").loc["sgd"]
    lrs = mean["sgd"].index.to_numpy()
    default = lrs[np.argmin(np.abs(np.log10(lrs / 1e-3)))]
    sgd = mean["sgd"]
    bad = sgd[(sgd.index < s["good_lo_lr"]) | (sgd.index > s["good_hi_lr"])].max()
    adaptive = {o: mean[o][default] for o in ("rmsprop", "adam")}
    detail = ", ".join(f"{o} {v:.3f}" for o, v in adaptive.items())
    return claims.Measured(min(adaptive.values()) - bad, detail=f"{detail} vs SGD {bad:.3f}")


# The CI grid is three times coarser (0.64 decades a step): its 3 largest rates reach further
# out (5.3 … 100, all unstable), and a good region one grid step wider is 0.64 decades wider.
CLAIMS = (
    Claim("u_shape", "the results of such a sensitivity analysis often show a “U” shape",
          "smallest over optimizers: best mean score minus the higher of the grid's two ends",
          u_margin, ">", 0.3, expected=NO, expected_ci=YES),  # rmsprop: no right arm
    Claim("too_large_oscillates",
          "a learning rate that is too large will result in weight updates that will be too "
          "large and the performance of the model [...] will oscillate over training epochs",
          "lowest over optimizers: share of runs at the 3 largest lrs that oscillate or diverge",
          lambda t: claims.by_group(_lrs(t, "top"), "optimizer", lambda r: r["status"].isin(
              ["diverged", "oscillating"]), "mean", "min", ".0%", " "), ">", 0.5),
    Claim("too_small_stalls",
          "A learning rate that is too small may never converge or may get stuck on a "
          "suboptimal solution", "lowest over optimizers: median final / initial train loss at "
          "the smallest lr", lambda t: claims.by_group(_lrs(t, "smallest"), "optimizer",
              lambda r: r["final_train_loss"] / r["initial_train_loss"], "median", "min", ".2f",
              " "), ">", 0.5),
    Claim("too_small_does_not_learn",
          "When the learning rate is too small, training is not only slower, but may become "
          "permanently stuck with a high training error", "highest over optimizers: mean score "
          "at the smallest lr", lambda t: claims.by_group(_lrs(t, "smallest"), "optimizer", "score",
                                                          "mean", "max", ".2f", " "), "<", 0.5),
    Claim("momentum_no_easier", "Momentum does not make it easier to configure the learning rate",
          "momentum's good-region width minus SGD's (decades)", momentum_widening, "<=", 0.4,
          expected_ci=NO),
    Claim("adaptive_beats_bad_lr",
          "An adaptive learning rate method will generally outperform a model with a badly "
          "configured learning rate", "lower of RMSProp's and Adam's mean score at lr ≈ 1e-3 "
          "minus SGD's best outside its good region", adaptive_margin, ">", 0.0),
)  # fmt: skip


def divergence(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """Per optimizer: diverged runs that turned non-finite (their last epoch's train loss is
    NaN) and those whose loss stayed finite but ended above twice its initial value, with the
    mean test accuracy the latter still had (the DeepOBS score replaces it by chance)."""
    last = curves[curves["epoch"] == curves["epoch"].max()].set_index("run_id")["train_loss"]
    diverged = runs["status"] == "diverged"
    nonfinite = diverged & runs["run_id"].map(last).isna()
    blown = diverged & ~nonfinite
    t = runs.assign(d=diverged, n=nonfinite, b=blown, acc=runs["final_test_acc"].where(blown),
                    dlr=runs["lr"].where(diverged))  # fmt: skip
    out = results.summarize(t, "optimizer", {
        "runs": ("lr", "size"), "diverged": ("d", "sum"), "non-finite": ("n", "sum"),
        "finite, loss > 2·initial": ("b", "sum"), "their test acc (mean)": ("acc", "mean"),
        "lowest diverged lr": ("dlr", "min")})  # fmt: skip
    lowest = out["lowest diverged lr"].map(lambda v: f"{v:.2g}", na_action="ignore")
    return out.round(3).assign(**{"lowest diverged lr": lowest})


def large_rates(runs: pd.DataFrame, threshold: float = 1.0) -> pd.DataFrame:
    """Per optimizer, the runs at lr >= ``threshold``: how they end (status shares, the share
    whose final train loss is exactly 0 in the sweep's dtype), raw test accuracy and score."""
    big = runs[runs["lr"] >= threshold]
    big = big.assign(d=big["status"] == "diverged", o=big["status"] == "oscillating",
                     z=big["final_train_loss"] == 0)  # fmt: skip
    share = lambda v: f"{v.mean():.0%}"  # noqa: E731
    out = results.summarize(big, "optimizer", {
        "runs": ("lr", "size"), "diverged": ("d", share), "oscillating": ("o", share),
        "final train loss = 0": ("z", share), "test acc (raw mean)": ("final_test_acc", "mean"),
        "score (mean)": ("score", "mean")})  # fmt: skip
    return out.round(3).rename_axis(f"optimizer (lr ≥ {threshold:g})")


def thin_curves(curves: pd.DataFrame, epochs: int) -> pd.DataFrame:
    """The curves at epoch 1, every ``CURVE_EPOCHS``-th epoch and the last."""
    keep = (
        (curves["epoch"] == 1) | (curves["epoch"] % CURVE_EPOCHS == 0) | (curves["epoch"] == epochs)
    )
    return curves[keep].reset_index(drop=True)


def figure(runs: pd.DataFrame, path: Path) -> None:
    """Score and final train loss (diverged runs left out) against the lr, per optimizer."""
    kept = runs["final_train_loss"].where(runs["status"] != "diverged").clip(lower=1e-9)
    title = "mean ± std over seeds; diverged: score = chance, loss left out; a loss of 0 at 1e-9"
    report.lr_figure(runs.assign(final_train_loss=kept), path, ["score", "final_train_loss"],
                     "optimizer", logy=("final_train_loss",), ncols=2, title=title)  # fmt: skip


def run(sweep: Sweep, out: str | Path | None = None, quiet: bool = False) -> runner.Result:
    result = runner.run(sweep, out=None, quiet=quiet)
    runs = add_scores(result.runs, result.curves)
    table = sensitivity(runs)
    meta = {**result.meta, "chance": CHANCE, "within": WITHIN, "curve_epochs": CURVE_EPOCHS}
    caption = f"lr sensitivity on digits, {len(sweep.seeds)} seeds, {sweep.epochs} epochs"
    return claims.finish(
        sys.modules[__name__], sweep, runs, thin_curves(result.curves, sweep.epochs), meta, out,
        quiet, found=claims.evaluate(CLAIMS, {"runs": runs, "sensitivity": table}, ARTICLE),
        tables={
            "sensitivity": (paper_table(table), caption),
            "divergence": (divergence(runs, result.curves), "Diverged runs"),
            "large_rates": (large_rates(runs), "How the runs at lr ≥ 1 end"),
        },
        figures={"sensitivity.png": (lambda path: figure(runs, path), "score and final train "
                                     "loss against the learning rate, mean ± std over seeds")},
        files={"sensitivity_numbers.csv": table}, sensitivity=table,
        notes=claims.notes_text(sys.modules[__name__], WITHIN=WITHIN, CURVE_EPOCHS=CURVE_EPOCHS),
    )  # fmt: skip
