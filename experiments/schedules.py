"""Every learning-rate schedule on the blobs problem, in one compiled program per optimizer.

The seed articles name constant, step, exponential and time-based decay (Coursera), linear
decay to τ then constant and decrease/increase on plateau (Machine Learning Mastery), and
annealing (All About Circuits); the rest are the usual Keras / PyTorch / optax family. Each
kind runs with parameters sized for a 200-epoch run, at eight learning rates and three
seeds, with plain SGD, on the Machine Learning Mastery blobs setup (Dense(50, relu,
he_uniform) -> Dense(3), batch 32): 432 runs, one compiled program. Add optimizers with
``--set optimizer=sgd,momentum``: one more program each. ``reduce_on_plateau`` uses that
tutorial's callback: ``ReduceLROnPlateau(monitor='val_loss', factor=0.1, patience=10,
min_delta=1e-7)``.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

from lrbench import claims, report, runner, schedules
from lrbench.models import MLPConfig
from lrbench.sweep import Optimizer, Schedule, Sweep

NAME = "schedules"
TITLE = "every learning-rate schedule kind on the blobs problem"
ARTICLE = (
    "the schedules the seed articles name (Coursera, Machine Learning Mastery, All About "
    "Circuits) and the rest of the Keras / PyTorch / optax family"
)
# Parameters for a 200-epoch run (unit: epochs, except time_based: iterations, as in Keras).
PARAMS: dict[str, dict[str, float]] = {
    "constant": {},
    "step": {"step_size": 50, "gamma": 0.5},
    "exponential": {"decay_rate": 0.98, "transition_steps": 1},
    "time_based": {"decay": 1e-3},
    "linear": {"end_factor": 0.01, "transition_steps": 100},
    "multistep": {"milestone_1": 100, "milestone_2": 150, "gamma": 0.1},
    "piecewise_constant": {"boundary_1": 50, "scale_1": 0.5, "boundary_2": 100, "scale_2": 0.2},
    "inverse_time": {"decay_rate": 1.0, "decay_steps": 10},
    "polynomial": {"end_factor": 0.0, "power": 2, "transition_steps": 200},
    "cosine": {"decay_steps": 190, "warmup_steps": 10, "warmup_start_factor": 0.1},
    "sgdr": {"first_decay_steps": 10, "t_mul": 2},
    "cosine_onecycle": {"total_steps": 200},
    "linear_onecycle": {"total_steps": 200},
    "cyclic_triangular": {"base_factor": 0.1, "step_size_up": 10},
    "cyclic_triangular2": {"base_factor": 0.1, "step_size_up": 10},
    "cyclic_exp_range": {"base_factor": 0.1, "step_size_up": 10, "gamma": 0.98},
    "reduce_on_plateau": {"monitor": 1, "factor": 0.1, "patience": 10, "min_delta": 1e-7},
    "increase_on_plateau": {"monitor": 1, "factor": 2.0, "patience": 10, "max_lr": 1.0},
}
FIGURE_LR = 0.1


def get_config() -> Sweep:
    assert set(PARAMS) == set(schedules.kinds()), "every schedule kind runs here"
    return Sweep(
        experiment=NAME,
        description="every schedule kind x 8 learning rates x 3 seeds, SGD, blobs, 200 epochs: "
        "one compiled program per optimizer",
        dataset="blobs",
        model=MLPConfig(hidden=(50,), activation="relu", kernel_init="he_uniform"),
        epochs=200,
        batch_size=32,
        lrs=(1.0, 0.3, 0.1, 0.03, 0.01, 3e-3, 1e-3, 3e-4),
        optimizers=(Optimizer("sgd"),),
        schedules=tuple(Schedule(kind, params) for kind, params in PARAMS.items()),
        seeds=(0, 1, 2),
    )


def ci_config() -> Sweep:
    return dataclasses.replace(get_config(), lrs=(0.3, 0.1, 0.01), seeds=(0,))


def run(sweep: Sweep, out: str | Path | None = None, quiet: bool = False) -> runner.Result:
    """The generic run, written with a kind × learning-rate table and two figures (the
    generic per-column table and curve panels would be 18 columns wide)."""
    result = runner.run(sweep, out=None, quiet=quiet)
    runs, seeds = result.runs, result.runs["seed"].nunique()
    curves = result.curves  # written at float32 precision (results.write_tables)
    by = ["optimizer", "schedule"] if runs["optimizer"].nunique() > 1 else ["schedule"]
    caption = (
        f"{NAME}: final test accuracy, mean ± std over {seeds} seeds, by schedule and learning rate"
    )
    lrs = runs["lr"].unique()
    lr = lrs[np.argmin(np.abs(np.log(lrs / FIGURE_LR)))]
    at = runs[(runs["lr"] == lr) & (runs["optimizer"] == runs["optimizer"].iloc[0])]
    closed = ", ".join(schedules.closed_loop_kinds())
    return claims.finish(
        sys.modules[__name__], sweep, runs, curves, result.meta, out, quiet,
        tables={"table": (report.mean_std_by_lr(runs, by, "final_test_acc"), caption)},
        figures={
            "schedules.png": (lambda path: report.curve_figure(
                at, curves, path, "lr", "seed", "schedule", ncols=6,
                title=f"learning rate applied per epoch at base lr {lr:g} "
                f"({at['optimizer'].iloc[0]}; the seeds differ only for {closed})"),
                f"the learning rate each kind applied per epoch, base lr {lr:g}"),
            "sensitivity.png": (lambda path: report.lr_figure(
                runs, path, "final_test_acc", "optimizer", "schedule", ncols=6,
                title=f"final test accuracy against the base learning rate (mean ± std over "
                f"{seeds} seeds)"),
                "final test accuracy against the base learning rate, per kind"),
        },
    )  # fmt: skip
