"""Two tiers of checks: rerun an experiment's CI variant and compare it with what is expected.

**Scientific** (does the science still hold?): every claim the experiment declares
(``CLAIMS``, :mod:`lrbench.claims`) must reach the verdict it declares, and the numbers of
``results/expected/<experiment>.json`` (below) must lie within what seeds and platforms
explain.

**Regression** (did anything move?): ``results/expected/recorded/<experiment>.json`` holds
every number of the CI variant's tables with the platform that wrote them (jax/jaxlib/numpy
versions, backend, devices, CPU model and a digest of its feature flags). On the same
platform any change beyond rounding (rtol 1e-6) fails; on another platform the tier says so
and is skipped. ``lrbench check --record`` rewrites the recordings: a commit that changes
numbers regenerates them and says why in its message.

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

import hashlib
import json
import math
import platform as _platform
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lrbench.errors import ConfigError

EXPECTED_DIR = Path("results") / "expected"
RECORDED = "recorded"  # subfolder of the expected folder
RTOL = 1e-6  # the regression tier: changes beyond float rounding
FULL_CELLS = 20_000  # larger tables (the curves) are recorded as a digest
TIMING = re.compile(r"seconds|steps/s|per_s|wall|throughput")  # not results: never compared


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
                "tier": "scientific",
                "check": check["name"],
                "value": value,
                "expected": expected,
                "atol": check.get("atol"),
                "rtol": check.get("rtol"),
                "min": check.get("min"),
                "max": check.get("max"),
                "ok": bool(ok),
                "note": "",
            }
        )
    return pd.DataFrame(rows)


def configuration(module):
    """``(sweep, words)``: what :func:`rerun` trains for an experiment module, its
    ``ci_config()`` when defined (the sweep ``lrbench run NAME --ci`` trains, the same numbers),
    else its ``get_config()``; ``words`` names it with its config hash
    (:func:`lrbench.runner.config_hash`, whose first 8 digits also name the folder of a run of
    another configuration), e.g. ``"CI variant (--ci), config 1a2b3c4d"``."""
    from lrbench import runner

    ci = hasattr(module, "ci_config")
    sweep = (module.ci_config() if ci else module.get_config()).validate()
    what = "CI variant (--ci)" if ci else "full size (no CI variant)"
    return sweep, f"{what}, config {runner.config_hash(sweep)[:8]}"


def rerun(name: str, out: Path, quiet: bool = True):
    """Reruns experiment ``name`` (:func:`configuration`) into ``out``; returns the module."""
    import experiments
    from lrbench import runner

    module = experiments.load(name)
    sweep, _ = configuration(module)
    getattr(module, "run", runner.run)(sweep, out=out, quiet=quiet)
    return module


def _row(name, tier, check, ok, value=math.nan, expected=None, note="", **bounds) -> dict:
    return {
        "experiment": name, "tier": tier, "check": check, "value": value,
        "expected": expected, "atol": bounds.get("atol"), "rtol": bounds.get("rtol"),
        "min": bounds.get("min"), "max": bounds.get("max"), "ok": bool(ok), "note": note,
    }  # fmt: skip


def claim_verdicts(name: str, module, folder: Path) -> pd.DataFrame:
    """Each declared claim's verdict in the rerun (``claims.csv``) against the declared one
    (``expected_ci`` where given, when the rerun is the experiment's CI variant)."""
    from lrbench import claims
    from lrbench.claims import Claim

    # Only declarations of lrbench.claims: an experiment's older own ``CLAIMS`` table (tuples
    # that its module evaluates itself) is checked through results/expected/ instead.
    declared = tuple(c for c in getattr(module, "CLAIMS", ()) if isinstance(c, Claim))
    path = folder / "claims.csv"
    if path.is_file():
        found = pd.read_csv(path, index_col=0)["held"].to_dict()
    else:
        # A folder without a claims table (written before the generic runner wrote one): the
        # claims read the folder's tables (``runs``, ``curves``, ...) here.
        tables = {p.stem: pd.read_csv(p) for p in sorted(folder.glob("*.csv"))}
        found = claims.evaluate(declared, tables)["held"].to_dict() if declared else {}
    rows = []
    ci = hasattr(module, "ci_config")  # what rerun() trains
    for c in declared:
        got, want = found.get(c.id, "missing"), (c.expected_ci if ci else "") or c.expected
        rows.append(
            _row(name, "scientific", f"claim {c.id}: held = {want}", got == want,
                 note=f"held: {got}")
        )  # fmt: skip
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# The regression tier


def this_platform() -> dict[str, Any]:
    """What a float result depends on besides the code: library versions, backend, devices,
    CPU model and a digest of its feature flags."""
    import jax

    from lrbench import results

    cpu, flags = _platform.processor() or _platform.machine(), ""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        text = info.read_text()
        model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        found = re.search(r"^(?:flags|Features)\s*:\s*(.+)$", text, re.M)
        cpu = model.group(1).strip() if model else cpu
        flags = " ".join(sorted(found.group(1).split())) if found else ""
    v = results.environment()["versions"]
    return {
        "jax": v["jax"], "jaxlib": v["jaxlib"], "numpy": v["numpy"],
        "backend": jax.default_backend(), "devices": [d.device_kind for d in jax.devices()],
        "machine": _platform.machine(), "cpu": cpu,
        "cpu_flags": hashlib.sha256(flags.encode()).hexdigest()[:12],
        "xla_flags": __import__("os").environ.get("XLA_FLAGS", ""),
    }  # fmt: skip


def _digest(values: list) -> str:
    return hashlib.sha256(json.dumps(values).encode()).hexdigest()[:16]


def _sig6(v: float) -> float | None:
    return None if not math.isfinite(v) else float(f"{v:.6g}")


def numbers(folder: Path) -> dict[str, dict]:
    """Every CSV table of a results folder: numeric columns as values (or, for a large table,
    a digest of them rounded to 6 significant digits), other columns as a digest; timing
    columns left out."""
    out = {}
    for path in sorted(Path(folder).glob("*.csv")):
        table = pd.read_csv(path)
        cols = [c for c in table.columns if not TIMING.search(str(c))]
        full = table.shape[0] * len(cols) <= FULL_CELLS
        entry: dict[str, Any] = {"rows": len(table), "columns": {}}
        for c in cols:
            s = table[c]
            if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
                x = s.to_numpy(np.float64)
                vals = [None if not math.isfinite(v) else float(v) for v in x]
                entry["columns"][c] = vals if full else _digest([_sig6(v) for v in x])
            else:
                entry["columns"][c] = _digest(s.astype(str).tolist())
        out[path.name] = entry
    return out


def compare(name: str, recorded: dict, folder: Path, here: dict | None = None) -> pd.DataFrame:
    """The regression tier for one rerun: one row per table (failed when a value moved beyond
    ``RTOL``, a digest changed, or a table or column appeared or vanished); one skipped row
    when ``recorded`` comes from another platform."""
    here = this_platform() if here is None else here
    was = recorded["platform"]
    if was != here:
        diff = [k for k in sorted(set(was) | set(here)) if was.get(k) != here.get(k)]
        note = (
            "skipped: recorded on " + ", ".join(f"{k}={was.get(k)}" for k in diff)
            + "; this is " + ", ".join(f"{k}={here.get(k)}" for k in diff)
        )  # fmt: skip
        return pd.DataFrame([_row(name, "regression", "recorded numbers", True, note=note)])
    now = numbers(folder)
    rows = []
    for stem in sorted(set(recorded["tables"]) | set(now)):
        problems = _table_changes(recorded["tables"].get(stem), now.get(stem))
        rows.append(
            _row(name, "regression", f"{stem} unchanged (rtol {RTOL:g})", not problems,
                 note="; ".join(problems[:3]))
        )  # fmt: skip
    return pd.DataFrame(rows)


def _table_changes(old: dict | None, new: dict | None) -> list[str]:
    if old is None or new is None:
        return ["new table" if old is None else "table missing"]
    if old["rows"] != new["rows"]:
        return [f"{old['rows']} rows recorded, {new['rows']} now"]
    problems = []
    for c in sorted(set(old["columns"]) | set(new["columns"])):
        a, b = old["columns"].get(c), new["columns"].get(c)
        if a is None or b is None:
            problems.append(f"column {c!r} {'new' if a is None else 'missing'}")
        elif isinstance(a, str) or isinstance(b, str):
            if a != b:
                problems.append(f"column {c!r} changed (digest)")
        else:
            x = np.array([np.nan if v is None else v for v in a], np.float64)
            y = np.array([np.nan if v is None else v for v in b], np.float64)
            same = np.isclose(x, y, rtol=RTOL, atol=0, equal_nan=True)
            if not same.all():
                i = int(np.argmin(same))
                problems.append(f"column {c!r} row {i}: {x[i]:.9g} recorded, {y[i]:.9g} now")
    return problems


def record(name: str, folder: Path, expected_dir: Path = EXPECTED_DIR) -> Path:
    """Writes ``recorded/<name>.json``: the rerun's numbers and this platform."""
    path = Path(expected_dir) / RECORDED / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"experiment": name, "platform": this_platform(), "tables": numbers(folder)}
    path.write_text(json.dumps(payload, indent=1, allow_nan=False) + "\n")
    return path


def recorded_files(expected_dir: Path = EXPECTED_DIR) -> dict[str, Path]:
    return {p.stem: p for p in sorted((Path(expected_dir) / RECORDED).glob("*.json"))}


# ---------------------------------------------------------------------------------------------


def checked_names(expected_dir: Path = EXPECTED_DIR) -> list[str]:
    """The experiments ``lrbench check`` reruns by default: those with reference numbers or
    recorded numbers."""
    return sorted(set(expected_files(expected_dir)) | set(recorded_files(expected_dir)))


def run_checks(
    names: list[str] | None = None,
    expected_dir: Path = EXPECTED_DIR,
    quiet: bool = True,
    record_numbers: bool = False,
) -> pd.DataFrame:
    """Reruns each experiment's CI variant once and runs both tiers on it (or, with
    ``record_numbers``, records its numbers for the regression tier first). One row per
    check, its ``config`` column naming the configuration rerun (:func:`configuration`);
    ``ok == False`` fails CI."""
    import experiments

    known = checked_names(expected_dir)
    if not known and not names:
        raise ConfigError("expected", f"no reference files in {expected_dir}/")
    names = names or known
    for name in names:
        if name not in experiments.names():
            raise ConfigError(
                "experiment", f"unknown experiment {name!r}; allowed: {', '.join(known)}"
            )
    files, recorded = expected_files(expected_dir), recorded_files(expected_dir)
    frames = []
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / name
            _, config = configuration(experiments.load(name))
            if not quiet:
                print(f"check {name}: rerunning its {config} ...", flush=True)
            module = rerun(name, out, quiet=True)
            first = len(frames)
            if record_numbers:
                path = record(name, out, expected_dir)
                recorded[name] = path
                if not quiet:
                    print(f"check {name}: recorded {path}", flush=True)
            if name in files:
                frames.append(evaluate(out, json.loads(files[name].read_text())))
            frames.append(claim_verdicts(name, module, out))
            if name in recorded:
                frames.append(compare(name, json.loads(recorded[name].read_text()), out))
            else:
                frames.append(
                    pd.DataFrame([_row(name, "regression", "recorded numbers", True,
                                       note="skipped: nothing recorded (lrbench check --record)")])
                )  # fmt: skip
            for frame in frames[first:]:
                if len(frame):
                    frame.insert(1, "config", config)
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True)
