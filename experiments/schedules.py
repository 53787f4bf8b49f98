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

Writes, besides the tidy tables (curves at float32 precision, which is what the engine
computes): ``schedules.png`` (the learning rate each kind applied, epoch by epoch, at base
rate 0.1), ``sensitivity.png`` (final test accuracy against the base rate, per kind) and
``table.md`` (the same numbers, mean ± std over seeds).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd

from lrbench import report, results, runner, schedules
from lrbench.models import MLPConfig
from lrbench.sweep import Optimizer, Schedule, Sweep

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
LOG_AXIS = {"exponential", "multistep", "piecewise_constant", "reduce_on_plateau"}


def get_config() -> Sweep:
    assert set(PARAMS) == set(schedules.kinds()), "every schedule kind runs here"
    return Sweep(
        experiment="schedules",
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
    """The generic run; its folder holds the tidy tables, a kind × learning-rate table and
    the two figures (the generic per-column table and curve panels would be 18 columns wide)."""
    result = runner.run(sweep, out=None, quiet=quiet)
    if out is None:
        return result

    def write(folder: Path) -> None:
        floats = ("lr", "train_loss", "test_loss", "test_acc")
        curves = result.curves.astype(dict.fromkeys(floats, np.float32))
        results.write_tables(folder, result.runs, curves, result.meta)
        caption = (
            f"{sweep.experiment}: final test accuracy, mean ± std over "
            f"{result.runs['seed'].nunique()} seeds, by schedule and learning rate"
        )
        report.write_table(folder, "table", accuracy_table(result.runs), caption)
        figure(result.runs, result.curves, folder / "schedules.png", sweep)
        sensitivity_figure(result.runs, folder / "sensitivity.png")

    folder = results.write_atomically(out, write)
    return result._replace(folder=folder)


def accuracy_table(runs: pd.DataFrame, metric: str = "final_test_acc") -> pd.DataFrame:
    """Rows: schedule kind (per optimizer when there are several); columns: learning rate
    (high to low); cells: mean ± std over seeds."""
    by = ["optimizer", "schedule"] if runs["optimizer"].nunique() > 1 else ["schedule"]
    agg = results.aggregate(runs, [*by, "lr"], metric)
    agg["row"] = agg[by].astype(str).agg(" / ".join, axis=1)
    agg["cell"] = [report.mean_std(m, s) for m, s in zip(agg["mean"], agg["std"], strict=True)]
    table = agg.pivot(index="row", columns="lr", values="cell")
    table = table.loc[list(dict.fromkeys(agg["row"])), sorted(table.columns, reverse=True)]
    table.columns = [f"lr={lr:g}" for lr in table.columns]
    table.index.name = " / ".join(by)
    return table


def summary(result: runner.Result) -> str:
    return "\n" + report.to_markdown(accuracy_table(result.runs))


def _params_text(sweep: Sweep | None, kind: str) -> str:
    if sweep is None:
        return ""
    given = next((dict(s.params) for s in sweep.schedules if s.kind == kind), {})
    return ", ".join(
        f"{k}={v:g}" if isinstance(v, float | int) else f"{k}={v}" for k, v in given.items()
    )


def figure(
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    path: Path,
    sweep: Sweep | None = None,
    lr: float = FIGURE_LR,
) -> None:
    """One panel per kind: the learning rate the engine applied in each epoch (base ``lr``,
    first optimizer; one line per seed, which differ only for the closed-loop kinds).
    Multiplicative decays get a log axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lrs = runs["lr"].unique()
    lr = lrs[np.argmin(np.abs(np.log(lrs) - math.log(lr)))]
    chosen = runs[(runs["lr"] == lr) & (runs["optimizer"] == runs["optimizer"].iloc[0])]
    kinds = list(dict.fromkeys(chosen["schedule"]))
    ncols = 6
    nrows = math.ceil(len(kinds) / ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(2.9 * ncols, 2.3 * nrows), sharex=True)
    for ax, kind in zip(grid.flat, kinds, strict=False):
        ids = chosen.loc[chosen["schedule"] == kind, "run_id"]
        frame = curves[curves["run_id"].isin(ids)]
        color = "tab:red" if kind in schedules.closed_loop_kinds() else "tab:blue"
        for _, one in frame.groupby("run_id", sort=False):
            ax.plot(one["epoch"], one["lr"], color=color, lw=1.3, alpha=0.8)
        if kind in LOG_AXIS:
            ax.set_yscale("log")
        else:
            ax.set_ylim(0, 1.08 * frame["lr"].max())
        ax.set_title(kind.replace("_", " "), fontsize=10, fontweight="bold")
        text = _params_text(sweep, kind)
        if text:
            ax.text(
                0.98,
                0.96,
                text.replace(", ", "\n"),
                transform=ax.transAxes,
                ha="right",
                va="top",
                fontsize=6.5,
                color="0.3",
                bbox={"fc": "white", "ec": "none", "alpha": 0.7, "pad": 1},
            )
        ax.grid(alpha=0.3, which="both", lw=0.5)
        ax.tick_params(labelsize=7)
    _label_grid(grid, len(kinds), "epoch", "learning rate")
    optimizer = chosen["optimizer"].iloc[0]
    fig.suptitle(
        f"Learning rate applied by each schedule over {int(curves['epoch'].max())} epochs "
        f"(base lr {lr:g}, {optimizer}; red: closed loop on test loss, one line per seed)",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _label_grid(grid, used: int, xlabel: str, ylabel: str) -> None:
    """Axis labels on the outer panels of a grid of subplots; panels past ``used`` hidden."""
    for ax in grid[-1]:
        ax.set_xlabel(xlabel, fontsize=8)
    for ax in grid[:, 0]:
        ax.set_ylabel(ylabel, fontsize=8)
    for ax in list(grid.flat)[used:]:
        ax.axis("off")


def sensitivity_figure(runs: pd.DataFrame, path: Path, metric: str = "final_test_acc") -> None:
    """One panel per kind: ``metric`` against the base learning rate (log axis), mean ± std
    over seeds, one line per optimizer; the constant schedule dashed on every panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    agg = results.aggregate(runs, ["optimizer", "schedule", "lr"], metric).sort_values("lr")
    kinds = list(dict.fromkeys(runs["schedule"]))
    optimizers = list(dict.fromkeys(runs["optimizer"]))
    colors = dict(zip(optimizers, plt.cm.tab10.colors, strict=False))
    ncols = 6
    nrows = math.ceil(len(kinds) / ncols)
    fig, grid = plt.subplots(
        nrows, ncols, figsize=(2.9 * ncols, 2.3 * nrows), sharex=True, sharey=True, squeeze=False
    )
    for ax, kind in zip(grid.flat, kinds, strict=False):
        for optimizer in optimizers:
            mine = agg[(agg["optimizer"] == optimizer) & (agg["schedule"] == kind)]
            ax.errorbar(mine["lr"], mine["mean"], yerr=mine["std"].fillna(0.0), color=colors[optimizer],
                        lw=1.5, marker="o", ms=3, capsize=2, label=optimizer)  # fmt: skip
            if kind != "constant":
                base = agg[(agg["optimizer"] == optimizer) & (agg["schedule"] == "constant")]
                ax.plot(base["lr"], base["mean"], color=colors[optimizer], lw=1, ls="--", alpha=0.6)
        ax.set_xscale("log")
        ax.set_title(kind.replace("_", " "), fontsize=10, fontweight="bold")
        ax.grid(alpha=0.3, lw=0.5)
        ax.tick_params(labelsize=7)
    _label_grid(grid, len(kinds), "base learning rate", metric.replace("_", " "))
    if len(optimizers) > 1:
        grid.flat[0].legend(fontsize=7, loc="lower center")
    fig.suptitle(
        f"{metric.replace('_', ' ')} against the base learning rate ({', '.join(optimizers)}; "
        f"mean ± std over {runs['seed'].nunique()} seeds; dashed: the constant schedule)",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
