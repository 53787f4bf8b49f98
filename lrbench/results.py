"""Tidy results: stacked histories -> ``runs`` and ``curves`` DataFrames; save, load, aggregate.

``runs``: one row per run (its configuration, final metrics, status).
``curves``: one row per run × epoch (``run_id, epoch, lr, train_loss, test_loss, test_acc``).
Files go under one folder, written to a temporary sibling first and renamed into place, so a
failure never leaves a half-written result.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pandas as pd

from lrbench import compile_cache, diagnose
from lrbench.engine import History

RUN_METRICS = [
    "initial_train_loss",
    "final_train_loss",
    "final_test_loss",
    "final_test_acc",
    "best_test_acc",
    "epochs_to_target",
    "status",
    "diverged_at",
]
CURVE_COLUMNS = ["run_id", "epoch", "lr", "train_loss", "test_loss", "test_acc"]


def _last_finite(x: np.ndarray) -> np.ndarray:
    """The last finite value of each row (the state a diverged run was frozen in), else NaN."""
    finite = np.isfinite(x)
    last = x.shape[1] - 1 - np.argmax(finite[:, ::-1], axis=1)
    out = x[np.arange(len(x)), last]
    return np.where(finite.any(axis=1), out, np.nan)


def build(
    runs: pd.DataFrame, history: History, target_acc: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Adds the final metrics to ``runs`` and stacks the per-epoch ``curves``.

    Final metrics are those of the last finite epoch (for a diverged run, where it was frozen).
    A run's ``status`` and ``diverged_at`` follow one rule (:func:`diagnose.divergence_epoch`):
    every ``diverged`` run has ``diverged_at``, the first epoch of its final excursion beyond
    ``diagnose.DIVERGE_FACTOR`` times its initial loss or to non-finite values (a run the
    engine found non-finite from that epoch, at the latest); the others have none.
    """
    h = History(*(np.asarray(x, np.float64) for x in history))
    runs = runs.copy()
    runs["initial_train_loss"] = h.initial_train_loss
    runs["final_train_loss"] = _last_finite(h.train_loss)
    runs["final_test_loss"] = _last_finite(h.test_loss)
    runs["final_test_acc"] = _last_finite(h.test_acc)
    runs["best_test_acc"] = np.nanmax(
        np.where(np.isfinite(h.test_acc), h.test_acc, -np.inf), axis=1
    )
    runs.loc[~np.isfinite(runs["best_test_acc"]), "best_test_acc"] = np.nan
    runs["epochs_to_target"] = diagnose.epochs_to_target(h.test_acc, target_acc)
    nonfinite_at = h.diverged_at.astype(np.int64)
    runs["status"] = [
        diagnose.status(loss, init, d)
        for loss, init, d in zip(h.train_loss, h.initial_train_loss, nonfinite_at, strict=True)
    ]
    rule = [
        diagnose.divergence_epoch(loss, init)
        for loss, init in zip(h.train_loss, h.initial_train_loss, strict=True)
    ]
    # the engine marks a run from the epoch its weights turned non-finite (its loss is NaN
    # from there): the rule's excursion starts there or earlier
    diverged_at = np.where(
        nonfinite_at > 0, np.where(rule, np.minimum(rule, nonfinite_at), nonfinite_at), rule
    )
    runs["diverged_at"] = pd.array(diverged_at, dtype="Int64")
    runs["diverged_at"] = runs["diverged_at"].mask(runs["diverged_at"] == 0)

    n, epochs = h.train_loss.shape
    curves = pd.DataFrame(
        {
            "run_id": np.repeat(runs["run_id"].to_numpy(), epochs),
            "epoch": np.tile(np.arange(1, epochs + 1), n),
            "lr": h.lr.reshape(-1),
            "train_loss": h.train_loss.reshape(-1),
            "test_loss": h.test_loss.reshape(-1),
            "test_acc": h.test_acc.reshape(-1),
        }
    )
    return runs, curves


# ---------------------------------------------------------------------------------------------
# Provenance


DISTRIBUTIONS = {"lrbench": "lrbench-jax"}  # import package -> distribution, where they differ


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["git", *args],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        if out.returncode == 0:
            return out.stdout.strip()
    return None


def git_revision() -> str | None:
    """The commit of the code that runs (None outside a git checkout)."""
    return _git("rev-parse", "HEAD")


def git_dirty() -> bool | None:
    """Whether the code that runs (``lrbench/``, ``experiments/``) differs from that commit:
    a results folder written by uncommitted code says so (None outside a git checkout)."""
    root = _git("rev-parse", "--show-toplevel")
    if root is None:
        return None
    changed = _git("-C", root, "status", "--porcelain", "--", "lrbench", "experiments")
    return None if changed is None else bool(changed)


def meta(config, start: float, **fields) -> dict[str, Any]:
    """The ``meta.json`` of an experiment that assembles its own tables: its name and config,
    ``fields`` (run and program counts, timings, settings), the wall time since ``start`` (a
    ``time.perf_counter()`` reading) and :func:`environment`."""
    wall = round(time.perf_counter() - start, 3)
    return {"experiment": config.experiment, "config": config.to_dict(), **fields,
            "wall_seconds": wall, **environment()}  # fmt: skip


def environment() -> dict[str, Any]:
    """Versions, backend, devices and flags of this process."""
    return {
        "versions": {  # lrbench's distribution is named lrbench-jax on the package index
            name: _version(DISTRIBUTIONS.get(name, name))
            for name in ("lrbench", "jax", "jaxlib", "optax", "flax", "numpy", "pandas")
        },
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
        "git_revision": git_revision(),
        "git_dirty": git_dirty(),
        "compile_cache": compile_cache.describe(),
    }


# ---------------------------------------------------------------------------------------------
# Files


def umask() -> int:
    """This process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def check_out(out: str | os.PathLike) -> Path:
    """Returns ``out`` as a Path once it is known that a results folder can be written there:
    ``out`` is a folder or nothing yet, and its nearest existing ancestor is a folder in which
    this process can create one (a probe folder, removed at once; nothing else is created).

    Raises:
      ConfigError: ``out``, naming the folder and what is wrong with it.
    """
    from lrbench.errors import ConfigError

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError("out", f"{str(out)!r} exists and is not a folder")
    ancestor = out.absolute().parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(
            "out", f"cannot write {str(out)!r}: {str(ancestor)!r} is a file, not a folder"
        )
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".lrbench-probe-", dir=ancestor))
    except OSError as err:
        raise ConfigError(
            "out",
            f"cannot write {str(out)!r}: no folder can be made in {str(ancestor)!r} "
            f"({err.strerror or err}); give a writable folder",
        ) from None
    return out


def _stale(out: Path) -> list[Path]:
    """The temporary folders a killed :func:`write_atomically` of ``out`` left behind:
    ``.<name>.XXXXXXXX`` (``tempfile.mkdtemp``'s 8 characters)."""
    pattern = re.compile(re.escape(f".{out.name}.") + "[a-z0-9_]{8}")
    if not out.parent.is_dir():
        return []
    return [p for p in out.parent.iterdir() if pattern.fullmatch(p.name) and p.is_dir()]


def clean_stale(out: str | os.PathLike) -> None:
    """Removes what a killed :func:`write_atomically` of ``out`` left: its temporary folders
    (a part of the new results) and, when ``out`` itself is there, ``.<name>.old``; when it
    is not (killed between the two renames), ``.<name>.old`` is the previous results folder
    and goes back to ``out``."""
    out = Path(out)
    for tmp in _stale(out):
        shutil.rmtree(tmp, ignore_errors=True)
    old = out.with_name(f".{out.name}.old")
    if old.is_dir():
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.rename(out)


def write_atomically(out_dir: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Calls ``write(tmp_dir)`` then renames ``tmp_dir`` to ``out_dir`` (replacing it).

    If ``write`` raises, ``out_dir`` is left exactly as it was; what an earlier, killed call
    left is removed first (:func:`clean_stale`). The folder gets the mode a plain ``mkdir``
    would (``0o777`` less the umask), not ``mkdtemp``'s ``0o700``: a results folder on a
    shared file system is read by the other hosts' users.
    """
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        tmp.chmod(0o777 & ~umask())
        write(tmp)
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def write_file_atomically(path: str | os.PathLike, write: Callable[[Any], None]) -> Path:
    """Calls ``write(binary_file)`` on a temporary sibling of ``path``, flushes and fsyncs it,
    then renames it onto ``path`` (and fsyncs the folder): after a crash, ``path`` holds
    either its old content or the whole new one, never a part (a killed call leaves a
    ``.<name>.*.tmp`` sibling, which :class:`lrbench.runner.ChunkStore` removes). The file
    gets the mode a plain ``open`` would (``0o666`` less the umask), not ``mkstemp``'s
    ``0o600``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~umask())
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # not every file system can fsync a folder
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return path


def curve_dtypes(runs: pd.DataFrame, meta: dict) -> set[str]:
    """The dtypes the runs were computed in: the runs' ``dtype`` column (a ``dtypes`` axis)
    and each sweep's ``dtype`` or ``dtypes`` in ``meta["config"]`` (a study's, per grid)."""
    found = set(runs["dtype"].dropna()) if "dtype" in runs else set()
    config = meta.get("config", {})
    sweeps = [s for grid in config.get("grids", {}).values() for s in grid] or [config]
    for s in sweeps:
        found |= set(s.get("dtypes") or [s.get("dtype", "float32")])
    return found


def write_tables(folder: Path, runs: pd.DataFrame, curves: pd.DataFrame, meta: dict) -> None:
    """``runs.csv``, ``curves.csv``, ``runs.parquet``, ``curves.parquet`` and ``meta.json``
    (pyarrow is a base dependency: a results folder never goes without its parquet files)."""
    # The engine computes curves in the sweep's dtype; float32 ones are written as float32
    # (shortest round-trip digits), not padded out to float64 digits. A curves table that
    # holds any float64 run keeps float64 (one column has one type).
    if curve_dtypes(runs, meta) <= {"float32"}:
        curves = curves.astype(
            {c: "float32" for c in ("lr", "train_loss", "test_loss", "test_acc")}
        )
    runs.to_csv(folder / "runs.csv", index=False)
    curves.to_csv(folder / "curves.csv", index=False)
    runs.to_parquet(folder / "runs.parquet", index=False)
    curves.to_parquet(folder / "curves.parquet", index=False)
    (folder / "meta.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")


# Runs-table columns that hold text even where every value looks like a number: a
# ``hiddens`` axis writes ``50`` for one layer and ``64-64`` for two.
TEXT_COLUMNS = ("hidden",)


def load_runs(path: str | os.PathLike) -> pd.DataFrame:
    """A runs table from its ``.csv`` (the columns of ``TEXT_COLUMNS`` as text)."""
    return pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS})


def load(folder: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Reads back ``runs``, ``curves`` and ``meta`` from a results folder.

    The columns of ``TEXT_COLUMNS`` come back as text (``hidden``: ``"50"``, never the
    number 50), whatever values a sweep had, as :func:`lrbench.sweep.expand` made them.
    """
    folder = Path(folder)
    runs = load_runs(folder / "runs.csv")
    curves = pd.read_csv(folder / "curves.csv")
    meta = json.loads((folder / "meta.json").read_text())
    return runs, curves, meta


def aggregate(runs: pd.DataFrame, by: list[str], metric: str = "final_test_acc") -> pd.DataFrame:
    """Mean, std (ddof=1) and count ``n`` of ``metric`` over seeds for each group of ``by``,
    and ``diverged``, how many of the group's runs have ``status`` diverged: those are left
    out of the mean, std and count (a diverged run's last finite numbers are no result). A
    table without a ``status`` column leaves nothing out (``diverged`` 0)."""
    diverged = runs["status"].eq("diverged") if "status" in runs else pd.Series(False, runs.index)
    kept = runs[metric].where(~diverged)
    frame = runs[by].assign(_value=kept, _diverged=diverged.astype(int))
    grouped = frame.groupby(by, sort=False, dropna=False)
    out = grouped["_value"].agg(mean="mean", std="std", n="count")
    out["diverged"] = grouped["_diverged"].sum()
    return out.reset_index()


# ---------------------------------------------------------------------------------------------
# Reading the tables


def per_epoch(curves: pd.DataFrame, column: str) -> pd.DataFrame:
    """``column`` of ``curves`` as a [run_id × epoch] table."""
    return curves.pivot(index="run_id", columns="epoch", values=column)


def best_mean(table: pd.DataFrame, keys: list[str], within: str, metric: str) -> pd.DataFrame:
    """Per group of ``within`` (one of ``keys``), the ``keys`` of highest mean ``metric`` over
    the rest (the seeds), best first; a tie goes to the keys first in sorted order."""
    mean = table.groupby(keys)[metric].mean().reset_index()
    return mean.sort_values(metric, ascending=False, kind="stable").groupby(within).head(1)


def majority(values: pd.Series) -> str:
    """The most common value, with its count when the group disagrees: ``slow (3/5)``."""
    counts = values.value_counts()
    top, k = counts.index[0], counts.iloc[0]
    return top if k == len(values) else f"{top} ({k}/{len(values)})"


# Aggregations of :func:`summarize` beyond pandas' own (``mean``, ``median``, ``count``, ...),
# each a function of a column grouped
AGGREGATES = {
    "std0": lambda g: g.std(ddof=0),  # the population std (ddof 0)
    "first": lambda g: g.agg(lambda v: v.iloc[0]),  # the first row's value, NaN or not
    "mode": lambda g: g.agg(lambda v: v.mode().iloc[0]),  # the most common value
    "majority": lambda g: g.agg(majority),
    "reached": lambda g: g.agg(lambda v: f"{v.notna().sum()}/{len(v)}"),  # k/n not NaN
}


def summarize(table: pd.DataFrame, by, spec: dict[str, tuple[str, Any]]) -> pd.DataFrame:
    """One row per group of ``by`` (groups in first-seen order, ``by`` as the index); ``spec``
    maps each column of the result to ``(column of table, how)``, ``how`` a pandas aggregation
    (``"mean"``, ``"median"``, ``"count"``, ``"size"``, ...), a name in :data:`AGGREGATES` or a
    function of one group's values."""
    grouped = table.groupby(by, sort=False)

    def column(source: str, how) -> pd.Series:
        g = grouped[source]
        return AGGREGATES[how](g) if isinstance(how, str) and how in AGGREGATES else g.agg(how)

    return pd.DataFrame({name: column(*how) for name, how in spec.items()})
