"""Do learning-rate finders point at the learning rate a full sweep finds best?

For each seed problem: a full sweep (11 learning rates, half a decade apart, 3 seeds) gives
the best learning rate by mean final test accuracy and the width of the good region (within
5% of the best); Smith's range test and the vmapped grid test each suggest three learning
rates (valley, steepest, minimum/10). The table gives each suggestion, the sweep's best, their
ratio, and the sweep's accuracy at the grid point nearest the suggestion. A suggestion more
than one decade from the best, or whose accuracy is more than 5% below the best, misleads.
``min_at_edge`` says whether the finder's curve had its lowest loss at an edge of the
learning rates it tried (``lower``/``upper``: its suggestions are bounds; ``no``), after the
grid test's extension past an edge (:func:`lrbench.lrfind.grid_curve`).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from experiments import drug_trial
from lrbench import claims, diagnose, lrfind, report, results, runner
from lrbench.models import MLPConfig
from lrbench.sweep import Optimizer, Sweep

NAME = "lr_finder"
MISLEADS = ("- {problem}, {finder} `{suggestion}`: {suggested_lr:.2g} is {decades_off:+.1f} decades "
            "from the best {sweep_best_lr:.2g}; the sweep reaches {acc_at_suggestion:.3f} there vs "
            "{sweep_best_acc:.3f} at the best.")  # fmt: skip
WITHIN = "within 5% of the best"
NONE_MISLED = "No suggestion was more than a decade off or more than 5% below the best accuracy."
LRS = tuple(float(v) for v in np.round(10.0 ** np.arange(-5, 0.01, 0.5), 12))

PROBLEMS = {
    # name: (sweep, finder problem)
    "blobs / sgd": Sweep(
        experiment="lr_finder", dataset="blobs", model=MLPConfig((50,), "relu", "he_uniform"),
        epochs=100, batch_size=32, lrs=LRS, optimizers=(Optimizer("sgd"),), seeds=(0, 1, 2),
    ),
    "digits / sgd": Sweep(
        experiment="lr_finder", dataset="digits", model=MLPConfig((64,), "relu", "he_uniform"),
        epochs=30, batch_size=32, lrs=LRS, optimizers=(Optimizer("sgd"),), seeds=(0, 1, 2),
    ),
    "digits / momentum": Sweep(
        experiment="lr_finder", dataset="digits", model=MLPConfig((64,), "relu", "he_uniform"),
        epochs=30, batch_size=32, lrs=LRS, optimizers=(Optimizer("momentum", {"momentum": 0.9}),),
        seeds=(0, 1, 2),
    ),
    "drug trial / adam": dataclasses.replace(
        drug_trial.get_config(), experiment="lr_finder", lrs=LRS, seeds=(0, 1, 2), description=""
    ),
}  # fmt: skip


def get_config() -> Sweep:
    return dataclasses.replace(
        PROBLEMS["blobs / sgd"],
        description="LR finders (range test, grid test) vs the best lr of a full sweep",
    )


def _problem(sweep: Sweep) -> lrfind.Problem:
    opt = sweep.optimizers[0]
    hparams = {k: float(v) for k, v in opt.hparams.items()}
    return lrfind.Problem(
        sweep.dataset, sweep.model, opt.name, "hand", hparams, sweep.batch_size, 0
    )


def compare(quiet: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Returns (comparison table, good regions, all sweep runs)."""
    rows, regions, all_runs = [], [], []
    progress = runner.Progress(quiet)
    for name, sweep in PROBLEMS.items():
        progress.say(f"{name}: sweep, range test, grid test ...")
        runs = runner.run(sweep, quiet=True).runs.assign(problem=name)
        all_runs.append(runs)
        region = diagnose.good_region(runs, within=0.05).assign(problem=name)
        regions.append(region)
        best_lr, best = float(region["best_lr"].iloc[0]), float(region["best"].iloc[0])
        mean_acc = runs.groupby("lr")["final_test_acc"].mean()
        problem = _problem(sweep)
        curves = {
            "range test": lrfind.range_test(problem),
            "grid test": lrfind.grid_test(problem, num_lrs=25, epochs=3)[0],
        }
        for finder, curve in curves.items():
            for suggestion, lr in curve.suggestions.items():
                nearest = mean_acc.index[np.argmin(np.abs(np.log10(mean_acc.index / lr)))]
                acc = float(mean_acc[nearest])
                decades = float(np.log10(lr / best_lr))
                rows.append(
                    {
                        "problem": name,
                        "finder": finder,
                        "suggestion": suggestion,
                        "suggested_lr": lr,
                        "sweep_best_lr": best_lr,
                        "ratio": lr / best_lr,
                        "decades_off": decades,
                        "acc_at_suggestion": acc,
                        "sweep_best_acc": best,
                        "misleads": abs(decades) > 1 or acc < 0.95 * best,
                        "min_at_edge": curve.edge or "no",
                    }
                )
    return (
        pd.DataFrame(rows),
        pd.concat(regions, ignore_index=True),
        pd.concat(all_runs, ignore_index=True),
    )


def _display(table: pd.DataFrame) -> pd.DataFrame:
    specs = dict.fromkeys(("suggested_lr", "sweep_best_lr", "ratio"), ".2g")
    specs |= {"decades_off": "+.1f", "acc_at_suggestion": ".3f", "sweep_best_acc": ".3f"}
    out = report.formatted(table, specs)
    return out.assign(misleads=out["misleads"].map({True: "yes", False: "no"})).set_index("problem")


def summary(result: runner.Result) -> str:
    return report.to_markdown(_display(result.meta["comparison"]))


def run(sweep: Sweep, out: str | Path | None = None, quiet: bool = False) -> runner.Result:
    del sweep  # the problems are fixed above: the comparison is the experiment
    start = time.perf_counter()
    table, regions, runs = compare(quiet)
    meta = {
        "experiment": "lr_finder",
        "problems": {k: v.to_dict() for k, v in PROBLEMS.items()},
        "wall_seconds": round(time.perf_counter() - start, 1),
        **results.environment(),
    }

    def write(folder: Path) -> None:
        shown = _display(table)
        region_view = regions[
            ["problem", "best_lr", "best", "best_std", "lo_lr", "hi_lr", "width_decades"]
        ].set_index("problem").round(4)  # fmt: skip
        report.write_table(folder, "comparison", shown, "LR finders vs the best lr of a full sweep")
        report.write_table(folder, "good_region", region_view, f"Good region ({WITHIN})")
        runs.to_csv(folder / "runs.csv", index=False)
        (folder / "meta.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")
        misled = [MISLEADS.format(**r) for _, r in table[table["misleads"]].iterrows()]
        (folder / "README.md").write_text(claims.notes_text(
            sys.modules[__name__], comparison=report.to_markdown(shown),
            good_region=report.to_markdown(region_view), misled="\n".join(misled) or NONE_MISLED,
        ))  # fmt: skip

    return runner.finish(
        runs, pd.DataFrame(), meta, out, write, runner.Progress(quiet), comparison=table
    )
