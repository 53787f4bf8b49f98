"""Accuracy checks: rerun an experiment and compare its numbers with ``results/expected/``.

``results/expected/<experiment>.json``::

    {"experiment": "blobs_lr",
     "checks": [{"name": "lr 0.1 learns",
                 "table": "runs.csv",                # a CSV file of the results folder
                 "row": {"lr": 0.1},                 # rows whose columns equal these values
                 "column": "final_test_acc",
                 "aggregate": "mean",                # over the matching rows (default: mean)
                 "expected": 0.82, "atol": 0.03,     # |x - expected| <= atol + rtol·|expected|
                 "rtol": 0.0,
                 "min": null, "max": null,           # or/and bounds
                 "source": "article|closed form|this suite's run"}]}

:func:`run_checks` reruns the experiment (its CI-sized variant when it defines one) into a
temporary folder and returns one row per check; any row with ``ok == False`` fails CI.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lrbench.errors import ConfigError

EXPECTED_DIR = Path("results") / "expected"


def expected_files(folder: Path = EXPECTED_DIR) -> dict[str, Path]:
    return {p.stem: p for p in sorted(Path(folder).glob("*.json"))}


def _matches(series: pd.Series, value: Any) -> pd.Series:
    if isinstance(value, int | float) and not isinstance(value, bool):
        numeric = pd.to_numeric(series, errors="coerce")
        return pd.Series(np.isclose(numeric, value, rtol=1e-9, atol=0), index=series.index)
    return series.astype(str) == str(value)


def measure(folder: Path, check: dict) -> float:
    """The number a check addresses in a results folder (NaN when nothing matches)."""
    path = folder / check["table"]
    if not path.is_file():
        return math.nan
    table = pd.read_csv(path)
    mask = pd.Series(True, index=table.index)
    for column, value in check.get("row", {}).items():
        if column not in table:
            return math.nan
        mask &= _matches(table[column], value)
    values = pd.to_numeric(table.loc[mask, check["column"]], errors="coerce")
    if values.empty:
        return math.nan
    how = check.get("aggregate", "mean")
    return float(getattr(values, how)())


def evaluate(folder: Path, spec: dict) -> pd.DataFrame:
    """Compares every check of ``spec`` with the numbers in ``folder``."""
    rows = []
    for check in spec["checks"]:
        value = measure(folder, check)
        ok = math.isfinite(value)
        expected = check.get("expected")
        if ok and expected is not None:
            tol = check.get("atol", 0.0) + check.get("rtol", 0.0) * abs(expected)
            ok = abs(value - expected) <= tol
        if ok and check.get("min") is not None:
            ok = value >= check["min"]
        if ok and check.get("max") is not None:
            ok = value <= check["max"]
        rows.append(
            {
                "experiment": spec["experiment"],
                "check": check["name"],
                "value": value,
                "expected": expected,
                "atol": check.get("atol"),
                "rtol": check.get("rtol"),
                "min": check.get("min"),
                "max": check.get("max"),
                "ok": bool(ok),
            }
        )
    return pd.DataFrame(rows)


def rerun(name: str, out: Path, quiet: bool = True) -> None:
    """Reruns experiment ``name`` (its ``ci_config`` when defined) into ``out``."""
    import experiments
    from lrbench import runner

    module = experiments.load(name)
    sweep = module.ci_config() if hasattr(module, "ci_config") else module.get_config()
    getattr(module, "run", runner.run)(sweep.validate(), out=out, quiet=quiet)


def run_checks(
    names: list[str] | None = None, expected_dir: Path = EXPECTED_DIR, quiet: bool = True
) -> pd.DataFrame:
    files = expected_files(expected_dir)
    if not files:
        raise ConfigError("expected", f"no reference files in {expected_dir}/")
    names = names or list(files)
    for name in names:
        if name not in files:
            raise ConfigError(
                "experiment", f"no reference numbers for {name!r}; have: {', '.join(files)}"
            )
    frames = []
    for name in names:
        spec = json.loads(files[name].read_text())
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / name
            if not quiet:
                print(f"check {name}: rerunning ...", flush=True)
            rerun(name, out, quiet=True)
            frames.append(evaluate(out, spec))
    return pd.concat(frames, ignore_index=True)
