"""Runs a ``Sweep`` end to end: expand -> train each static group -> tidy tables -> files."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from lrbench import engine, report, results
from lrbench.engine import History
from lrbench.sweep import Sweep, expand


class Result(NamedTuple):
    runs: pd.DataFrame
    curves: pd.DataFrame
    meta: dict
    folder: Path | None


class Progress:
    """Phase lines and a per-run progress bar on stderr; silent when ``quiet``."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)

    def bar(self, total: int, desc: str):
        from tqdm.auto import tqdm

        return tqdm(
            total=total, desc=desc, unit="run", disable=self.quiet, file=sys.stderr, leave=False
        )


def train(sweep: Sweep, progress: Progress | None = None, max_chunk: int = 4096):
    """Trains every run of ``sweep``; returns ``(runs, History, timing dict)``."""
    progress = progress or Progress(quiet=True)
    runs = expand(sweep)
    if sweep.dtype == "float64":
        import jax

        jax.config.update("jax_enable_x64", True)
    parts: dict[str, History] = {}
    timing = {"compile_seconds": 0.0, "train_seconds": 0.0, "programs": 0}
    for static, index in engine.static_groups(sweep, runs):
        rows = runs.loc[index]
        label = f"{static.optimizer}/{static.impl}"
        progress.say(f"compiling {label}: {len(rows)} runs, {sweep.epochs} epochs ...")
        with progress.bar(len(rows), f"training {label}") as bar:
            history, t = engine.train_group(
                static,
                engine.run_data(static, rows),
                max_chunk=max_chunk,
                on_chunk=lambda lo, hi, _: bar.update(hi - lo),
            )
        progress.say(
            f"  {label}: compiled in {t.compile_seconds:.1f} s, trained in {t.train_seconds:.1f} s"
        )
        timing["compile_seconds"] += t.compile_seconds
        timing["train_seconds"] += t.train_seconds
        timing["programs"] += 1
        for i, label_ in enumerate(index):
            parts[label_] = History(*(x[i] for x in history))
    ordered = [parts[i] for i in runs.index]
    stacked = History(*(np.stack(xs) for xs in zip(*ordered, strict=True)))
    return runs, stacked, timing


def run(
    sweep: Sweep,
    out: str | Path | None = None,
    quiet: bool = False,
    max_chunk: int = 4096,
) -> Result:
    """Trains ``sweep`` and, when ``out`` is given, writes its results folder atomically."""
    progress = Progress(quiet)
    start = time.perf_counter()
    runs, history, timing = train(sweep, progress, max_chunk)
    runs, curves = results.build(runs, history, sweep.target_acc)
    meta = {
        "experiment": sweep.experiment,
        "config": sweep.to_dict(),
        "n_runs": len(runs),
        **timing,
        "wall_seconds": round(time.perf_counter() - start, 3),
        **results.environment(),
    }
    folder = None
    if out is not None:
        progress.say(f"writing {out} ...")
        folder = results.write_atomically(out, lambda tmp: write(tmp, sweep, runs, curves, meta))
    return Result(runs, curves, meta, folder)


def write(folder: Path, sweep: Sweep, runs: pd.DataFrame, curves: pd.DataFrame, meta: dict) -> None:
    """Everything a results folder holds: tidy tables, meta, the paper table and a figure."""
    results.write_tables(folder, runs, curves, meta)
    table = report.mean_std_table(runs, "final_test_acc")
    caption = (
        f"{sweep.experiment}: final test accuracy, mean ± std over {runs['seed'].nunique()} seeds"
    )
    report.write_table(folder, "table", table, caption)
    report.curves_figure(runs, curves, folder / "curves.png")
