"""What a sweep will cost, counted from its axes before anything is expanded or compiled.

:func:`estimate` multiplies the axes' lengths (never building the runs table: a 10⁹-run grid
is counted in microseconds) into runs, programs, steps, curves rows, memory, disk and a rough
time; :func:`check` refuses, with one :class:`~lrbench.errors.ConfigError` on the field
``sweep``, a sweep that cannot fit the machine (memory, disk: hard) or that goes past a sane
bound (``MAX_*``: soft, ``yes=True`` / ``--yes`` runs it anyway).
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
from pathlib import Path

from lrbench.errors import ConfigError

# Soft bounds: past one of them a sweep is refused unless ``yes`` (``--yes``) is given.
MAX_RUNS = 10**7
"""Runs of one sweep: its runs table is about ``RUN_ROW_BYTES`` a row while it is built (10⁷
rows ≈ 20 GB and minutes of Python before the first compile)."""
MAX_STEPS_PER_RUN = 10**7
"""Optimizer steps of one run (epochs × steps per epoch): a run's minibatch orders and curves
grow with it; past 10⁷ a mistyped ``epochs`` is far likelier than an intended run."""
MAX_RUN_STEPS = 10**12
"""Run-steps of the whole sweep (Σ runs × steps per run): on the order of a day on a CPU."""
MAX_CURVES_ROWS = 10**9
"""Rows of ``curves`` (Σ runs × epochs): held in memory as one table, then written to CSV."""
MAX_PROGRAMS = 1000
"""Programs to compile (static signatures): each takes seconds to minutes of compile time."""

# Hard bounds: the engine's step counter is an int32.
INT32_STEPS = 2**31 - 1
"""A run's step count must fit the engine's int32 step counter."""

# Per-row sizes, measured on blobs_lr (float32): ``runs_table`` peaks at ~1.3 KB a row while
# built; a curves row is ~58 bytes of CSV, ~13 of parquet and 16-32 in the chunk files, and
# ~200 bytes in memory over its copies (history, float64 build, the DataFrame, the writers).
RUN_ROW_BYTES = 2048
CURVES_ROW_BYTES = 256
RUN_ROW_DISK_BYTES = 512
CURVES_ROW_DISK_BYTES = 96
# Rough throughput for the time estimate: flop/s of the engine (blobs_lr on 2 CPU cores:
# ~2·10¹⁰) and seconds to compile one program.
FLOPS = {"cpu": 2e10}
ACCELERATOR_FLOPS = 2e12
COMPILE_SECONDS = 5.0


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A sweep's size and cost, counted from its axes (see :func:`estimate`)."""

    runs: int
    programs: int
    steps_per_run: int  # the most over the sweep's parts
    run_steps: int  # Σ runs × steps per run
    curves_rows: int  # Σ runs × epochs
    chunk: int  # runs in one chunk
    run_bytes: int  # memory of one run in the engine (:func:`lrbench.runner.run_bytes`)
    devices: int
    seconds: float

    @property
    def chunk_bytes(self) -> int:
        """Memory of one chunk in the engine."""
        return self.chunk * self.run_bytes

    @property
    def least_chunk_bytes(self) -> int:
        """Memory of the smallest chunk there is: one run per device."""
        return self.devices * self.run_bytes

    @property
    def table_bytes(self) -> int:
        """Host memory of the runs and curves tables."""
        return self.runs * RUN_ROW_BYTES + self.curves_rows * CURVES_ROW_BYTES

    @property
    def disk_bytes(self) -> int:
        """Disk of the results folder and of the chunks kept until it is written."""
        return self.runs * RUN_ROW_DISK_BYTES + self.curves_rows * CURVES_ROW_DISK_BYTES

    def describe(self) -> str:
        """The estimate as one line for stderr."""
        return (
            f"plan: {self.runs:,} runs, {self.programs:,} program(s) to compile, "
            f"{self.steps_per_run:,} steps a run ({self.run_steps:.3g} run-steps); "
            f"memory ≈ {size(self.chunk_bytes)} a chunk of {self.chunk:,} run(s) + "
            f"{size(self.table_bytes)} of tables; disk ≈ {size(self.disk_bytes)} "
            f"({self.curves_rows:,} curves rows); time ≈ {duration(self.seconds)} (rough)"
        )


def size(n: float) -> str:
    """Bytes as ``1.5 GB``."""
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError  # unreachable


def duration(seconds: float) -> str:
    """Seconds as ``40 s``, ``12 min``, ``3.5 h`` or ``9.1 days``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.3g} days"


def _points(grid) -> int:
    """Points of an optimizer's or schedule's grid (``lrbench.sweep._grid``): the product of
    its values' lengths, a scalar counting one."""
    return math.prod(len(v) if isinstance(v, list | tuple) else 1 for v in grid.values())


def _single_runs(sweep) -> int:
    """Runs of a sweep without static axes: the product of its axes (``sweep.expand``'s loops)."""
    hparams = sum(_points(o.hparams) for o in sweep.optimizers)
    schedules = sum(_points(s.params) for s in sweep.schedules)
    return (
        hparams
        * len(sweep.impls)
        * schedules
        * len(sweep.schedule_impls)
        * len(sweep.lrs)
        * len(sweep.seeds)
    )


def _sweeps(config) -> list:
    """The sweeps of a study, or ``[sweep]``."""
    from lrbench.study import Study

    return [s for _, s in config.sweeps()] if isinstance(config, Study) else [config]


def count_parts(config) -> int:
    """Single-valued parts (combinations of static-axis values) of a sweep or study."""
    return sum(math.prod(len(v) for v in s.static_axes.values()) for s in _sweeps(config))


def count_runs(config) -> int:
    """Runs of a sweep (rows of its runs table) or of a study (a run in two grids counted in
    each), from the axes' lengths alone."""
    return sum(_single_runs(part) for s in _sweeps(config) for _, part in s.parts())


def estimate(config, max_chunk: int = 4096, yes: bool = False) -> Estimate:
    """Counts ``config`` (a validated sweep or study) from its axes: runs = Σ over its
    single-valued parts of the product of their axes; steps a run = epochs × steps per epoch;
    curves rows = Σ runs × epochs; programs = distinct (part's static fields, optimizer, impl,
    schedule_impl). ``max_chunk`` is the runs a chunk may hold (as given to the runner).

    Raises:
      ConfigError: ``sweep``, when the static axes have more than ``MAX_PROGRAMS``
        combinations (they are enumerated to count the rest) and not ``yes``.
    """
    import jax

    from lrbench import runner

    parts = count_parts(config)
    if parts > MAX_PROGRAMS and not yes:
        raise ConfigError(
            "sweep",
            f"its static axes make {parts:,} programs, more than the {MAX_PROGRAMS:,} "
            "allowed (lrbench.plan.MAX_PROGRAMS); give fewer static-axis values, or run it "
            "anyway with --yes (yes=True)",
        )
    runs = run_steps = curves_rows = flops = 0
    steps_per_run = 0
    programs = set()
    for s in _sweeps(config):
        for _, part in s.parts():
            n = _single_runs(part)
            task = part.task_spec
            ds = task.data()
            spe = part.steps_per_epoch
            steps = part.epochs * spe
            runs += n
            run_steps += n * steps
            curves_rows += n * part.epochs
            steps_per_run = max(steps_per_run, steps)
            n_eval = len(ds.x_train) + len(ds.x_test)
            flops += (
                n * task.num_params() * (6 * part.batch_size * steps + 2 * n_eval * part.epochs)
            )
            signature = (repr(task), part.epochs, part.batch_size, part.dtype, part.validation_freq)
            programs |= {
                (signature, o.name, impl, schedule_impl)
                for o in part.optimizers
                for impl in part.impls
                for schedule_impl in part.schedule_impls
            }
    rate = FLOPS.get(jax.default_backend(), ACCELERATOR_FLOPS)
    return Estimate(
        runs=runs,
        programs=len(programs),
        steps_per_run=steps_per_run,
        run_steps=run_steps,
        curves_rows=curves_rows,
        chunk=max(1, min(max_chunk, runs)),
        run_bytes=runner.run_bytes(config),
        devices=jax.local_device_count(),
        seconds=flops / rate + len(programs) * COMPILE_SECONDS,
    )


@dataclasses.dataclass(frozen=True)
class Limits:
    """What the machine has: free memory of the devices (where chunks train) and of the host
    (where the tables live; the same memory on a CPU) and free disk at the output folder
    (None: nothing is written)."""

    device_memory: int
    host_memory: int
    disk: int | None
    shared: bool  # the devices' memory is the host's (CPU)


def host_memory() -> int:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes (unknown: 2⁶², so that nothing is
    refused for memory)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 2**62  # unknown: no memory refusal


def free_disk(out: str | os.PathLike | None) -> int | None:
    """Free bytes on the file system of ``out`` (its nearest existing folder)."""
    if out is None:
        return None
    folder = Path(out).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def limits(out: str | os.PathLike | None = None) -> Limits:
    """This machine's :class:`Limits` (the devices' free memory as the runner's
    :func:`lrbench.runner.free_memory` sees it, before it halves it)."""
    import jax

    from lrbench import runner

    shared = jax.default_backend() == "cpu"
    host = host_memory()
    device = host if shared else 2 * runner.free_memory()
    return Limits(device_memory=device, host_memory=host, disk=free_disk(out), shared=shared)


def check(est: Estimate, lim: Limits, yes: bool = False) -> None:
    """Refuses a sweep that cannot run: the smallest chunk (one run per device) and the
    tables must fit the free memory and the files the free disk (hard); the ``MAX_*``
    bounds are soft and ``yes`` lets a sweep past them run.

    Raises:
      ConfigError: ``sweep``, one line with the figure, the bound and what to change.
    """
    what = f"(estimate: {est.describe().removeprefix('plan: ')})"
    if est.steps_per_run > INT32_STEPS:
        raise ConfigError(
            "sweep",
            f"{est.steps_per_run:,} steps a run overflow the engine's int32 step counter "
            f"(at most {INT32_STEPS:,}); lower epochs",
        )
    if lim.shared:
        need = est.least_chunk_bytes + est.table_bytes
        if need > lim.host_memory:
            raise ConfigError(
                "sweep",
                f"needs about {size(need)} of memory ({size(est.least_chunk_bytes)} to train "
                f"one run per device, {size(est.table_bytes)} for its tables), "
                f"{size(lim.host_memory)} is available; lower epochs or the number of runs "
                f"{what}",
            )
    else:
        if est.least_chunk_bytes > lim.device_memory:
            raise ConfigError(
                "sweep",
                f"one run per device needs about {size(est.least_chunk_bytes)} of device "
                f"memory, {size(lim.device_memory)} is free; lower epochs {what}",
            )
        if est.table_bytes > lim.host_memory:
            raise ConfigError(
                "sweep",
                f"its tables need about {size(est.table_bytes)} of memory, "
                f"{size(lim.host_memory)} is available; lower the number of runs or epochs "
                f"{what}",
            )
    if lim.disk is not None and est.disk_bytes > lim.disk:
        raise ConfigError(
            "sweep",
            f"its files need about {size(est.disk_bytes)} of disk, {size(lim.disk)} is free "
            f"at the output folder; free some or write elsewhere {what}",
        )
    if yes:
        return
    for value, bound, name, words in (
        (est.runs, MAX_RUNS, "MAX_RUNS", "runs"),
        (est.steps_per_run, MAX_STEPS_PER_RUN, "MAX_STEPS_PER_RUN", "steps a run"),
        (est.run_steps, MAX_RUN_STEPS, "MAX_RUN_STEPS", "run-steps"),
        (est.curves_rows, MAX_CURVES_ROWS, "MAX_CURVES_ROWS", "curves rows"),
        (est.programs, MAX_PROGRAMS, "MAX_PROGRAMS", "programs"),
    ):
        if value > bound:
            raise ConfigError(
                "sweep",
                f"{value:,} {words} is more than {bound:,} (lrbench.plan.{name}); "
                f"run it anyway with --yes (yes=True) {what}",
            )
