"""deeplizard's drug-trial model at five learning rates (seed 002).

"Learning Rate in a Neural Network explained" (deeplizard, 2017) says a learning rate usually
lies between 0.01 and 0.0001: at the high end updates overshoot the minimum, at the low end
training takes much longer. Its Keras model is ``Dense(16, relu) -> Dense(32, relu,
kernel_regularizer=l2(0.01)) -> Dense(2, sigmoid)``, trained with Adam at lr 0.0001 on the
series' synthetic drug-trial data (``lrbench.data.drug_trial``: one feature, age, scaled to
[0, 1]; label = side effects). Here the same model (Keras' ``glorot_uniform`` kernels, zero
biases, sparse categorical cross-entropy on the sigmoid outputs, the L2 term in the loss),
Keras' Adam (``epsilon=1e-7``), batch 10 and 30 epochs as in the series, at lr 1e-1 ... 1e-5
with 10 seeds, all in one compiled program.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pandas as pd

from lrbench import claims, diagnose, report, results, runner
from lrbench.claims import Claim, over_seeds, per_seed
from lrbench.models import MLPConfig
from lrbench.sweep import Optimizer, Sweep

NAME = "drug_trial"
TITLE = "deeplizard's learning-rate range on its own model (seed 002)"
ARTICLE = 'deeplizard, "Learning Rate in a Neural Network explained" (2017)'
MODEL = MLPConfig(
    hidden=(16, 32), activation="relu", kernel_init="glorot_uniform", output="sigmoid",
    kernel_l2=(0.0, 0.01, 0.0),
)  # fmt: skip
KERAS_ADAM = Optimizer("adam", {"eps": 1e-7})  # Keras' Adam: beta_1 0.9, beta_2 0.999, eps 1e-7
ARTICLE_RANGE = (1e-4, 1e-2)  # "usually ranging between 0.01 and 0.0001"
HIGH, LOW = 1e-1, 1e-5  # the ends of the sweep: one decade beyond each end of the range
GOOD_ACC = 0.93  # "works": within about 2 points of the best possible 95.2%
TARGET = 0.9


def get_config() -> Sweep:
    return Sweep(
        experiment=NAME,
        description="deeplizard drug trial: Adam at lr 1e-1 ... 1e-5, 10 seeds, 30 epochs",
        dataset="drug_trial",
        model=MODEL,
        epochs=30,
        batch_size=10,
        lrs=(1e-1, 1e-2, 1e-3, 1e-4, 1e-5),
        optimizers=(KERAS_ADAM,),
        seeds=tuple(range(10)),
        target_acc=TARGET,
    )


def ci_config() -> Sweep:
    return dataclasses.replace(get_config(), seeds=(0, 1, 2))


# ---------------------------------------------------------------------------------------------
# Measured quantities


def in_range(runs: pd.DataFrame) -> pd.DataFrame:
    lo, hi = ARTICLE_RANGE
    return runs[(runs["lr"] >= lo * (1 - 1e-9)) & (runs["lr"] <= hi * (1 + 1e-9))]


def worst_in_range(t) -> claims.Measured:
    """The lowest mean final test accuracy of the learning rates in the article's range."""
    means = in_range(t["runs"]).groupby("lr")["final_test_acc"].mean()
    lr = means.idxmin()
    return over_seeds(per_seed(t["runs"], lr, "final_test_acc"), f"at lr {lr:g}")


def above_range(column: str, pick: str):
    """Per seed: ``column`` at the high end minus at the in-range lr whose mean is the
    ``pick`` (max or min) of the range."""

    def measure(t) -> claims.Measured:
        runs = t["runs"]
        lr = getattr(in_range(runs).groupby("lr")[column].mean(), f"idx{pick}")()
        diff = per_seed(runs, HIGH, column) - per_seed(runs, lr, column)
        return over_seeds(diff, f"lr {HIGH:g} minus lr {lr:g}")

    return measure


def low_end_reached(t) -> float:
    """Share of seeds at the low end that reach the target test accuracy."""
    return float(per_seed(t["runs"], LOW, "epochs_to_target").notna().mean())


def low_end_loss_ratio(t) -> claims.Measured:
    """Per seed: final training loss at the low end over that at the range's best lr."""
    runs = t["runs"]
    best = in_range(runs).groupby("lr")["final_train_loss"].mean().idxmin()
    ratio = per_seed(runs, LOW, "final_train_loss") / per_seed(runs, best, "final_train_loss")
    return over_seeds(ratio, f"lr {LOW:g} over lr {best:g}")


RANGE = "This learning rate is a small number usually ranging between 0.01 and 0.0001"
CLAIMS = (
    Claim("range_works", RANGE,
          "lowest mean final test accuracy of the lrs 1e-4, 1e-3, 1e-2 (interval: seeds)",
          worst_in_range, ">=", GOOD_ACC),
    Claim("article_setting_learns",
          "we're specifying 0.0001 as the learning rate [Adam, on this model]",
          "final test accuracy at lr 1e-4", lambda t: over_seeds(per_seed(
              t["runs"], 1e-4, "final_test_acc")), ">=", GOOD_ACC),
    Claim("high_end_loss_rises",
          "When setting the learning rate to a number on the higher side of this range, we risk "
          "the possibility of overshooting",
          "share of rising-loss epochs at lr 0.1 minus at the range's most rising lr",
          above_range("loss_rises", "max"), ">", 0.0),
    Claim("high_end_ends_higher",
          "we take a step that's too large in the direction of the minimized loss function and "
          "shoot past this minimum and miss it",
          "final training loss at lr 0.1 minus at the range's lowest-loss lr",
          above_range("final_train_loss", "min"), ">", 0.0),
    Claim("low_end_below_target",
          "since our steps will be really small, it will take us a lot longer to reach the point "
          "of minimized loss",
          f"share of seeds at lr 1e-5 reaching {TARGET:.0%} test accuracy in 30 epochs",
          low_end_reached, "<", 0.5),
    Claim("low_end_loss_high",
          "it will take us a lot longer to reach the point of minimized loss",
          "final training loss at lr 1e-5 over that at the range's lowest-loss lr",
          low_end_loss_ratio, ">", 1.5),
)  # fmt: skip


# The learning-rate table: column -> (column of the runs, aggregate over seeds)
LR_TABLE = {
    "test_acc_mean": ("final_test_acc", "mean"), "test_acc_std": ("final_test_acc", "std0"),
    "train_loss_mean": ("final_train_loss", "mean"),
    "train_loss_std": ("final_train_loss", "std0"),
    "epochs_to_90_median": ("epochs_to_target", "median"),
    "reached_90": ("epochs_to_target", "reached"), "loss_rises_mean": ("loss_rises", "mean"),
    "status": ("status", "mode"),
}  # fmt: skip


def run(sweep: Sweep, out: str | Path | None = None, quiet: bool = False) -> runner.Result:
    result = runner.run(sweep, out=None, quiet=quiet)
    rises = result.curves.groupby("run_id")["train_loss"].apply(diagnose.rising_share)
    runs = result.runs.assign(loss_rises=result.runs["run_id"].map(rises))
    seeds = len(sweep.seeds)
    region = diagnose.good_region(runs, within=0.02).iloc[0]
    lr_table = results.summarize(runs, "lr", LR_TABLE).sort_index(ascending=False)
    return claims.finish(
        sys.modules[__name__], sweep, result.runs, result.curves, result.meta, out, quiet,
        found=claims.evaluate(CLAIMS, {"runs": runs}, ARTICLE),
        tables={
            "learning_rates": (report.rounded(lr_table), f"Drug trial, Adam: final test "
                               f"accuracy, training loss, epochs to {TARGET:.0%} and share of "
                               f"rising-loss epochs, over {seeds} seeds"),
            "table": (report.mean_std_table(result.runs),
                      f"{NAME}: final test accuracy, mean ± std over {seeds} seeds"),
        },
        figures={
            "loss_curves.png": (lambda path: report.curves_figure(
                result.runs, result.curves, path, "train_loss", "log"),
                "training loss (with L2) per epoch, one line per learning rate (seed mean)"),
            "curves.png": (lambda path: report.curves_figure(result.runs, result.curves, path),
                           "test accuracy per epoch, one line per learning rate"),
        },
        notes=claims.notes_text(sys.modules[__name__], **region),
    )  # fmt: skip
