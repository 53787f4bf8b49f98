"""Runs a ``Sweep`` or a ``Study`` end to end: expand -> train each static group -> tidy tables
-> files."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
import shutil
import time
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
import pandas as pd

from lrbench import compile_cache, data, engine, plan, report, results, spec
from lrbench import progress as shown
from lrbench.engine import History
from lrbench.errors import ConfigError
from lrbench.progress import Progress
from lrbench.study import Study, runs_table
from lrbench.sweep import Sweep


class Result(NamedTuple):
    runs: pd.DataFrame
    curves: pd.DataFrame
    meta: dict
    folder: Path | None


def train(
    sweep: Sweep | Study,
    progress: Progress | None = None,
    max_chunk: int = 4096,
    runs: pd.DataFrame | None = None,
    store: ChunkStore | None = None,
    estimate: plan.Estimate | None = None,
):
    """Trains every run of ``sweep`` (or of ``runs``, a part of its runs table); returns
    ``(runs, History, timing dict)``.

    Each static group goes through in chunks of one padded size (one compile per group). With a
    ``store``, a chunk whose runs it already holds is read back instead of trained, and each
    trained chunk is appended to it before the next one starts. A run_id listed twice (a
    study's run in two grids) is trained once; the history has one row per row of ``runs``.

    A sweep with a float64 part trains with ``jax_enable_x64`` on inside this call only: the
    caller's setting is what it was once ``train`` returns or raises. Programs come from and
    go to the persistent compilation cache (:mod:`lrbench.compile_cache`); the timing dict
    counts its hits and misses.

    With a ``progress`` that is not quiet, stderr gets the plan (runs, chunks, programs to
    compile and a rough time: ``estimate``'s, or one of :func:`lrbench.plan.estimate`), each
    program's compile apart from the training bar (whose rate counts training alone) and a
    closing line (:mod:`lrbench.progress`).
    """
    progress = progress or Progress(quiet=True)
    with spec.precision(sweep), compile_cache.counting() as cache:
        runs, history, timing = _train(sweep, progress, max_chunk, runs, store, estimate)
    timing.update(cache)
    return runs, history, timing


class _Group(NamedTuple):
    """A static group with chunks left to train."""

    index: int
    static: engine.Static
    rows: pd.DataFrame
    layout: engine.Layout
    left: int  # runs left to train
    chunks: int  # chunks left to train


def _train(sweep: Sweep | Study, progress: Progress, max_chunk: int, runs, store, estimate):
    runs = runs_table(sweep) if runs is None else runs
    done = store.load() if store is not None else {}
    parts: dict[str, History] = {}
    timing = {"compile_seconds": 0.0, "train_seconds": 0.0, "programs": 0}
    timing.update(trained_runs=0, resumed_runs=0, chunks=0)
    todo = []
    for group, (static, index) in enumerate(spec.static_groups(sweep, runs)):
        rows = runs.loc[index]
        ids = rows["run_id"].to_numpy()
        layout, chunks = engine.plan_group(static, rows["seed"].to_numpy(), max_chunk)
        resumed = [r for r in (np.unique(c) for c in chunks) if _finished(done, ids, r)]
        for positions in resumed:
            parts.update((i, done[i]) for i in ids[positions])
            timing["resumed_runs"] += len(positions)
        left = len(rows) - sum(len(r) for r in resumed)
        if left:
            todo.append(_Group(group, static, rows, layout, left, len(chunks) - len(resumed)))
    phases = _phases(sweep, progress, max_chunk, todo, timing["resumed_runs"], estimate)
    with phases:  # the live lines leave the screen if training raises
        model_steps = 0
        for item, name in zip(todo, shown.program_names([g.static for g in todo]), strict=True):
            static, rows, ids = item.static, item.rows, item.rows["run_id"].to_numpy()
            run_data = spec.run_data(static, rows)
            phases.compiling(name)
            # Compiled here, apart from the training: train_group finds it in the engine's cache.
            _, compile_s = engine.compiled(static, item.layout, tuple(sorted(run_data.hparams)))
            phases.compiled(name, compile_s)
            steps = engine.total_steps(static)

            def keep(k, positions, history, ids=ids, group=item.index, steps=steps):
                nonlocal model_steps
                if store is not None:
                    store.append(f"{group:03d}-{k:09d}", ids[positions], history)
                parts.update(
                    (i, History(*(x[j] for x in history))) for j, i in enumerate(ids[positions])
                )
                timing["trained_runs"] += len(positions)
                timing["chunks"] += 1
                model_steps += len(positions) * steps
                phases.trained(len(positions))

            _, t = engine.train_group(
                static,
                run_data,
                max_chunk,
                skip=functools.partial(_finished, done, ids),
                on_chunk=keep,
            )
            timing["compile_seconds"] += compile_s + t.compile_seconds  # the latter 0: cached
            timing["train_seconds"] += t.train_seconds
            timing["programs"] += 1
        phases.finish(timing["compile_seconds"], timing["train_seconds"], model_steps)
    ordered = [parts[i] for i in runs["run_id"]]
    stacked = History(*(np.stack(xs) for xs in zip(*ordered, strict=True)))
    return runs, stacked, timing


def _finished(done, ids: np.ndarray, positions) -> bool:
    """Whether every run of a chunk (``positions`` into ``ids``) is in the store's ``done``."""
    return all(i in done for i in ids[positions])


def _phases(sweep, progress: Progress, max_chunk: int, todo, resumed: int, estimate):
    """The :class:`lrbench.progress.Training` of ``todo`` (its plan line: runs, chunks,
    programs and the estimate's rough time for what is left)."""
    runs = sum(g.left for g in todo)
    seconds = extra = None
    if not progress.quiet and runs:
        estimate = estimate or plan.estimate(sweep, max_chunk, yes=True)
        compile_each = plan.COMPILE_SECONDS
        training = max(0.0, estimate.seconds - estimate.programs * compile_each)
        seconds = len(todo) * compile_each + training * runs / max(estimate.runs, 1)
        extra = (
            f"; memory ≈ {plan.size(estimate.chunk_bytes)} a chunk, "
            f"disk ≈ {plan.size(estimate.disk_bytes)}"
        )
    return progress.training(
        programs=len(todo), runs=runs, chunks=sum(g.chunks for g in todo),
        steps=[engine.total_steps(g.static) for g in todo], resumed=resumed, seconds=seconds,
        extra=extra or "",
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Chunks on disk: resume after a kill, and the parts of a sweep shared out over processes


def config_hash(sweep: Sweep | Study) -> str:
    config = sweep.to_dict()
    if config.get("validation_freq") == 1:  # at its default, hashed as before the field existed
        del config["validation_freq"]
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def partial_dir(out: str | Path) -> Path:
    """Where a sweep's finished chunks wait until its results folder is written."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


class ChunkStore:
    """``<out>.partial/``: ``sweep.json`` (the config, its hash, the chunk size) and one
    ``chunk-p<process>-<group>-<chunk>.npz`` per finished chunk of ``engine.plan`` (its
    run_ids and their histories), each written to a temporary file, fsynced and renamed into
    place."""

    def __init__(self, folder: Path, process: int = 0):
        self.folder = Path(folder)
        self.process = process

    def state(self) -> dict | None:
        path = self.folder / "sweep.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def open(self, sweep: Sweep, chunk: int, fresh: bool, shared: bool = False) -> int:
        """Starts (``fresh``: wiping any earlier chunks) or reopens the store for ``sweep``;
        returns the chunk size to use (the one the store was started with).

        The temporary files a killed write left (``.*.tmp``) are removed: all of them, or with
        ``shared`` (processes writing into one store) this process's own chunks' only."""
        if fresh:
            shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        mine = f".chunk-p{self.process:05d}-*.tmp" if shared else ".*.tmp"
        for tmp in self.folder.glob(mine):
            tmp.unlink(missing_ok=True)
        state = self.state()
        if state is None:
            state = {"config_hash": config_hash(sweep), "chunk": chunk, "config": sweep.to_dict()}
            text = (json.dumps(state, indent=2) + "\n").encode()
            results.write_file_atomically(self.folder / "sweep.json", lambda f: f.write(text))
        elif state["config_hash"] != config_hash(sweep):
            raise ConfigError(
                "resume",
                f"{str(self.folder)!r} holds chunks of a different configuration "
                f"(hash {state['config_hash']}, this sweep {config_hash(sweep)}); "
                "finish that configuration, remove the folder, or pick another output folder",
            )
        return int(state["chunk"])

    def held(self) -> int:
        """Finished runs in the store (0 when there is no store)."""
        count = 0
        for path in self.folder.glob("chunk-*.npz"):
            with np.load(path) as z:
                count += len(z["run_id"])
        return count

    def fresh(self, sweep: Sweep, resume: bool, overwrite: bool, progress: Progress) -> bool:
        """Whether a run of ``sweep`` into this store starts afresh: finished chunks are never
        wiped unasked. A store of the same configuration is resumed (said on stderr);
        ``overwrite`` discards it; one of another configuration that holds finished runs
        (or any, with ``resume``) is refused.

        Raises:
          ConfigError: ``resume`` (when given) or ``out``, naming ``--resume`` and
            ``--overwrite``.
        """
        state, held = self.state(), self.held()
        if overwrite:
            if held:
                progress.say(f"overwrite: discarding {held} finished run(s) in {self.folder}")
            return True
        same = state is not None and state["config_hash"] == config_hash(sweep)
        if same:
            if held:
                progress.say(
                    f"resuming: {self.folder} holds {held} finished run(s) of this "
                    "configuration; training the rest (--overwrite starts afresh)"
                )
            return False
        if state is None and not held:
            if resume:
                progress.say(f"nothing to resume in {self.folder}: starting afresh")
            return True
        if held or resume:
            what = "no sweep.json" if state is None else f"hash {state['config_hash']}"
            raise ConfigError(
                "resume" if resume else "out",
                f"{str(self.folder)!r} holds {held} finished run(s) of a different "
                f"configuration ({what}; this sweep {config_hash(sweep)}): rerun that "
                "configuration to finish them (--resume), discard them with --overwrite "
                "(overwrite=True), or give another --out",
            )
        return True

    def append(self, name: str, run_ids, history: History) -> None:
        arrays = {"run_id": np.asarray(run_ids, dtype=str), **history._asdict()}
        path = self.folder / f"chunk-p{self.process:05d}-{name}.npz"
        results.write_file_atomically(path, lambda f: np.savez(f, **arrays))

    def load(self) -> dict[str, History]:
        """Every finished run in the store, by run_id."""
        done = {}
        for path in sorted(self.folder.glob("chunk-*.npz")):
            with np.load(path) as z:
                cols = [z[f] for f in History._fields]
                for k, i in enumerate(z["run_id"]):
                    done[str(i)] = History(*(c[k] for c in cols))
        return done


def shard(runs: pd.DataFrame, process_index: int, process_count: int) -> pd.DataFrame:
    """Process ``process_index`` of ``process_count``'s share of the runs table: every
    ``process_count``-th row from row ``process_index``, so each process gets a like mix of
    optimizers, rates and seeds."""
    _check_share(process_index, process_count)
    return runs.iloc[process_index::process_count]


def _check_share(process_index: int, process_count: int) -> None:
    if process_count < 1:
        raise ConfigError("process_count", f"{process_count} must be >= 1")
    if not 0 <= process_index < process_count:
        raise ConfigError(
            "process_index",
            f"{process_index} must be in [0, {process_count - 1}] ({process_count} processes)",
        )


# ---------------------------------------------------------------------------------------------
# Memory budget -> chunk size

_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}  # fmt: skip


def parse_memory(text: str) -> int:
    """``2GB``, ``512MB``, ``1.5GiB`` or a plain byte count -> bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([a-zA-Z]*)\s*", str(text))
    unit = match and match.group(2).lower()
    if not match or unit not in _UNITS:
        raise ConfigError("max_memory", f"{text!r} is not a size; give e.g. 2GB, 512MB, 1.5GiB")
    value = int(float(match.group(1)) * _UNITS[unit])
    if value <= 0:
        raise ConfigError("max_memory", f"{text!r} must be more than 0 bytes")
    return value


def free_memory() -> int:
    """Half the memory this process could still take: the devices' free memory on an
    accelerator, ``MemAvailable`` of ``/proc/meminfo`` on the CPU (1 GiB if unknown)."""
    stats = [d.memory_stats() or {} for d in jax.local_devices()]
    if jax.default_backend() != "cpu" and all("bytes_limit" in s for s in stats):
        return sum(s["bytes_limit"] - s.get("bytes_in_use", 0) for s in stats) // 2
    with contextlib.suppress(OSError, ValueError, StopIteration):
        lines = Path("/proc/meminfo").read_text().splitlines()
        kib = next(int(line.split()[1]) for line in lines if line.startswith("MemAvailable:"))
        return kib * 1024 // 2
    return 2**30


def run_bytes(sweep: Sweep) -> int:
    """An estimate of one run's memory in the engine, by formula (bytes of the sweep's dtype):

    (2 + S)·P (parameters, gradients and the S parameter-sized arrays the optimizer state
    keeps, ``rules.spec(name).slots``, the most over the sweep's optimizers) + the activations
    of a minibatch and of a full-data evaluation (forward and backward, 2·B·A and 2·n·A with
    A the task's activations per example) + 4·epochs of curves + the steps of an optax lr table + the
    minibatch orders of its seed group (epochs·n_train; a run alone in its group in the worst
    case), all doubled for XLA's temporaries and the scan carry's copy. A sweep with static
    axes, or a study, takes its largest part.
    """
    parts = sweep.parts()
    if len(parts) > 1 or parts[0][1] is not sweep:
        return max(run_bytes(part) for _, part in parts)
    task = sweep.task_spec
    ds = task.data()
    params, units = task.num_params(), task.activation_units()
    n_eval = max(len(ds.x_train), len(ds.x_test))
    steps = sweep.epochs * sweep.steps_per_epoch if "optax" in sweep.schedule_impls else 0
    orders = sweep.epochs * len(ds.x_train)
    from lrbench import rules  # here so that only run_bytes depends on the registry

    slots = rules.max_slots(o.name for o in sweep.optimizers)
    words = (
        (2 + slots) * params
        + 2 * (sweep.batch_size + n_eval) * units
        + 4 * sweep.epochs
        + steps
        + orders
    )
    return 2 * words * np.dtype(sweep.dtype).itemsize


def max_chunk_for(sweep: Sweep, max_memory: int | None) -> int:
    """Runs per chunk that fit ``max_memory`` bytes (default: :func:`free_memory`, at most
    4096 runs); never fewer than one per device."""
    if max_memory is None:
        return max(jax.local_device_count(), min(4096, free_memory() // run_bytes(sweep)))
    return max(jax.local_device_count(), max_memory // run_bytes(sweep))


def run(
    sweep: Sweep | Study,
    out: str | Path | None = None,
    quiet: bool = False,
    max_chunk: int = 4096,
    resume: bool = False,
    process_index: int = 0,
    process_count: int = 1,
    merge: bool = False,
    overwrite: bool = False,
    yes: bool = False,
) -> Result:
    """Trains ``sweep`` and, when ``out`` is given, writes its results folder atomically.

    First the sweep is counted from its axes (:mod:`lrbench.plan`: runs, programs, memory,
    disk, a rough time) and refused if it cannot run or goes past a soft bound (``yes`` runs
    it anyway); nothing is expanded or compiled before. Unless ``quiet``, stderr then gets
    the plan, the compile and training phases and a closing line (see :func:`train`).

    With ``out``, finished chunks are kept in ``<out>.partial/`` until the folder is written,
    and never deleted unasked: a rerun of the same configuration reads them back instead of
    training them again (``resume`` insists: it refuses another configuration even when no
    chunk is finished), one of another configuration is refused unless ``overwrite`` (which
    discards them). What a killed write of ``out`` left next to it is removed. ``process_index=i,
    process_count=n`` trains only process ``i``'s share of the runs (:func:`shard`) into the
    shared ``<out>.partial/`` and writes no results folder; ``merge`` then trains nothing and
    writes the folder from all the shares (it refuses if a run is missing). A study's run in
    two grids is trained once and has a row per grid in ``runs``, one set of rows in
    ``curves``.

    Raises:
      ConfigError: naming the keyword argument (``out``, ``resume``, ``overwrite``,
        ``merge``, ``process_index``, ``process_count``) that cannot be honoured, or
        ``sweep`` when the plan is refused.
    """
    progress = Progress(quiet)
    start = time.perf_counter()
    _check_share(process_index, process_count)
    index, count = process_index, process_count
    if resume and overwrite:
        raise ConfigError("overwrite", "give --resume or --overwrite, not both")
    if overwrite and (count > 1 or merge):
        raise ConfigError(
            "overwrite",
            "cannot discard a store that several processes share; remove "
            f"{str(partial_dir(out)) if out is not None else '<out>.partial'!r} before they start",
        )
    if out is not None:
        out = results.check_out(out)
        if partial_dir(out).exists() and not partial_dir(out).is_dir():
            raise ConfigError("out", f"{str(partial_dir(out))!r} exists and is not a folder")
    estimate = plan.estimate(sweep.validate(), max_chunk, yes=yes)
    plan.check(estimate, plan.limits(out), yes=yes)  # refused: the estimate is in the error
    if out is not None and (count == 1 or merge):
        results.clean_stale(out)
    store = None
    runs = runs_table(sweep)
    if count > 1 or merge:
        if out is None:
            raise ConfigError("out", "a sweep shared out over processes needs an output folder")
        store = ChunkStore(partial_dir(out), index)
        if merge and store.state() is None:
            raise ConfigError("merge", f"nothing to merge: no {str(store.folder)!r}")
        max_chunk = store.open(sweep, max_chunk, fresh=False, shared=not merge)
        if merge:
            missing = set(runs["run_id"]) - set(store.load())
            if missing:
                raise ConfigError(
                    "merge",
                    f"{len(missing)} of {len(runs)} runs are not in {str(store.folder)!r} yet; "
                    "wait for every process to finish (or resume the missing shares)",
                )
        else:
            runs = shard(runs.drop_duplicates("run_id"), index, count)
    elif out is not None:
        store = ChunkStore(partial_dir(out))
        fresh = store.fresh(sweep, resume, overwrite, progress)
        max_chunk = store.open(sweep, max_chunk, fresh=fresh)
    elif resume:
        raise ConfigError("resume", "needs an output folder to resume from")
    runs, history, timing = train(sweep, progress, max_chunk, runs, store, estimate)
    runs, curves = results.build(runs, history, sweep.target_acc)
    if runs["run_id"].duplicated().any():  # a study's run in two grids: one curve
        curves = curves[~curves.duplicated(["run_id", "epoch"])].reset_index(drop=True)
    meta = {
        "experiment": sweep.experiment,
        "config": sweep.to_dict(),
        "n_runs": int(runs["run_id"].nunique()),
        "datasets": data.describe(sweep),
        **timing,
        "wall_seconds": round(time.perf_counter() - start, 3),
        **results.environment(),
    }
    folder = None
    if count > 1 and not merge:
        for name, table in (("runs", runs), ("curves", curves)):
            path = store.folder / f"{name}.part-{index:05d}.csv"
            results.write_file_atomically(path, lambda f, t=table: t.to_csv(f, index=False))
        progress.say(f"process {index} of {count}: {len(runs)} runs in {store.folder}")
        return Result(runs, curves, meta, None)
    if out is not None:
        progress.say(f"writing {out} ...")
        folder = results.write_atomically(out, lambda tmp: write(tmp, sweep, runs, curves, meta))
        shutil.rmtree(store.folder, ignore_errors=True)
    return Result(runs, curves, meta, folder)


def finish(
    runs, curves, meta: dict, out, write, progress: Progress | None = None, **extra
) -> Result:
    """An experiment's last step: writes its results folder with ``write(folder)``,
    atomically, when ``out`` is given; returns the :class:`Result`, ``extra`` (its tables,
    for the experiment's summary) added to the meta."""
    folder = None
    if out is not None:
        (progress or Progress(quiet=True)).say(f"writing {out} ...")
        folder = results.write_atomically(out, write)
    return Result(runs, curves, {**meta, **extra}, folder)


def headline(sweep: Sweep | Study) -> tuple[str, str]:
    """(run column, its words) of a sweep's summary table: the final test accuracy, or the
    final training loss when the sweep never evaluates the test set (``validation_freq=0``)."""
    if sweep.validation_freq == 0:
        return "final_train_loss", "final training loss"
    return "final_test_acc", "final test accuracy"


def write(
    folder: Path, sweep: Sweep | Study, runs: pd.DataFrame, curves: pd.DataFrame, meta: dict
) -> None:
    """Everything a results folder holds: tidy tables, meta, the paper table and a figure; for
    an experiment that trains through this runner and declares ``CLAIMS``, also its claims
    table and README (:func:`lrbench.claims.write_report`)."""
    results.write_tables(folder, runs, curves, meta)
    column, words = headline(sweep)
    runs = runs.drop_duplicates("run_id")  # a study's run in two grids counts once
    table = report.mean_std_table(runs, column)
    seeds = runs["seed"].nunique()
    spread = f"mean ± std over {seeds} seeds" if seeds > 1 else "one seed (n=1)"
    caption = f"{sweep.experiment}: {words}, {spread}"
    report.write_table(folder, "table", table, caption)
    metric = column.removeprefix("final_")
    report.curves_figure(runs, curves, folder / "curves.png", metric)
    module = _generic_experiment(sweep.experiment)
    if module is None or not getattr(module, "CLAIMS", ()):
        return
    from lrbench import claims

    article = getattr(module, "ARTICLE", "")
    found = claims.evaluate(module.CLAIMS, {"runs": runs, "curves": curves}, article)
    figure = (
        f"{metric.replace('_', ' ')} per epoch, one line per learning rate (seed mean; band: "
        "min–max over seeds)"
    )
    claims.write_report(
        folder, claims=found, tables={"table": (table, caption)}, name=sweep.experiment,
        title=getattr(module, "TITLE", sweep.description), article=article,
        says=(module.__doc__ or "").split("\n", 1)[-1], meta=meta,
        setting=claims.setting(sweep), figures={"curves.png": figure},
    )  # fmt: skip


def _generic_experiment(name: str):
    """The module of experiment ``name`` when it trains through this runner (it has no ``run``
    hook of its own, which writes its own report); None for a sweep built by hand."""
    try:
        import experiments  # the repository's modules; lrbench trains sweeps without them
    except ImportError:
        return None
    if name not in experiments.names():
        return None
    module = experiments.load(name)
    return None if hasattr(module, "run") else module
