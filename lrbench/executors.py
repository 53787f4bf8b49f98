"""Where a sweep's chunks train: on this host (:func:`lrbench.runner.run`) or as independent
tasks of a Ray cluster (:func:`run_ray`).

A Ray run plans the sweep's chunks exactly as a local run does (the same static groups, the
same :func:`lrbench.engine.plan_group` layouts and chunk size), deals the chunks not yet on
disk out to tasks, and each task trains its chunks into the shared ``<out>.partial/`` with
:func:`lrbench.runner.train`, one file per chunk as it finishes. A task whose worker dies is
retried by Ray (``max_retries``): the retry finds the chunks its first attempt wrote and
trains only the rest, so a death loses at most the chunk that was training. When every task
is done the driver writes the results folder from the partial folder (``runner.run(...,
merge=True)``), as ``lrbench run --merge`` does. The partial folder stays the source of
truth: ``--resume`` picks up what any executor left there.

The results are those of a local run, byte for byte, when the workers have as many JAX
devices as the local run had (a chunk's layout depends on the device count): a task asks
Ray for one CPU (and one GPU when the cluster has any) and splits its CPU into
``LRBENCH_CPU_DEVICES`` devices, default one. ``meta.json`` describes the driver's
environment (it writes the folder), and its timings and counts are those of the merge; the
tasks' own counts come back in the returned ``Result.meta["tasks"]``.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import numpy as np

from lrbench import engine, plan, results, runner, spec
from lrbench.engine import History
from lrbench.errors import ConfigError
from lrbench.study import Study, runs_table
from lrbench.sweep import Sweep

INSTALL = "pip install 'lrbench-jax[ray]'"
TASKS_PER_CPU = 4  # more tasks than workers: a slow or dead worker holds back little


def import_ray():
    """The ``ray`` module; a ConfigError naming ``executor`` and how to install it if absent."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "executor", f"ray is not installed; install it with {INSTALL}, or use --executor local"
        ) from None
    return ray


def plan_chunks(sweep: Sweep | Study, max_chunk: int) -> list[np.ndarray]:
    """The run_ids of every chunk a local run of ``sweep`` trains, in its order (static group
    by static group, chunk by chunk; :func:`lrbench.runner.train`), on this process's
    devices."""
    runs = runs_table(sweep)
    chunks = []
    for static, index in spec.static_groups(sweep, runs):
        rows = runs.loc[index]
        ids = rows["run_id"].to_numpy()
        _, positions = engine.plan_group(static, rows["seed"].to_numpy(), max_chunk)
        chunks.extend(ids[np.unique(p)] for p in positions)
    return chunks


class _TaskStore(runner.ChunkStore):
    """The partial folder as one task sees it: the runs of the other tasks' chunks count as
    finished (NaN stand-ins), so :func:`lrbench.runner.train` skips their chunks and trains
    only this task's chunks not yet on disk; each goes to ``chunk-r<task>-<group>-<chunk>``."""

    def __init__(self, folder: Path, task: int, sweep: Sweep | Study, owned: set[str]):
        super().__init__(folder, task)
        self.sweep = sweep
        self.owned = owned

    def load(self) -> dict[str, History]:
        done = super().load()
        runs = runs_table(self.sweep)
        for static, index in spec.static_groups(self.sweep, runs):
            blank = History(*(x[0] for x in engine._missing(static, 1)))
            for run_id in runs.loc[index, "run_id"]:
                if run_id not in self.owned and run_id not in done:
                    done[run_id] = blank
        return done

    def append(self, name: str, run_ids, history: History) -> None:
        from lrbench import results

        arrays = {"run_id": np.asarray(run_ids, dtype=str), **history._asdict()}
        path = self.folder / f"chunk-r{self.process:05d}-{name}.npz"
        results.write_file_atomically(path, lambda f: np.savez(f, **arrays))


def train_task(
    sweep: Sweep | Study,
    folder: str,
    max_chunk: int,
    task: int,
    owned: list[str],
    compile_cache_setting: str | None = None,
) -> dict:
    """One Ray task (in a worker process with its own JAX): trains the chunks holding the runs
    ``owned`` that are not in ``folder`` yet, appending each to it; returns its counts."""
    from lrbench import compile_cache

    if not os.environ.get("LRBENCH_CPU_DEVICES"):
        engine.use_cpu_cores(1)  # one device per task's CPU, unless asked otherwise
    else:
        engine.use_cpu_cores()
    compile_cache.configure(compile_cache_setting)
    owned = set(owned)
    on_disk = owned & set(runner.ChunkStore(Path(folder)).load())  # an earlier attempt's
    store = _TaskStore(Path(folder), task, sweep, owned)
    _, _, timing = runner.train(sweep, None, max_chunk, runs_table(sweep), store)
    return {
        "task": task,
        "pid": os.getpid(),
        "owned_runs": len(owned),
        "trained_runs": timing["trained_runs"],
        "resumed_runs": len(on_disk),  # its own runs found on disk: not trained again
        "chunks": timing["chunks"],
        "compile_seconds": timing["compile_seconds"],
        "train_seconds": timing["train_seconds"],
    }


def run_ray(
    sweep: Sweep | Study,
    out: str | Path,
    *,
    address: str | None = None,
    quiet: bool = False,
    max_chunk: int | None = None,
    max_memory: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    yes: bool = False,
    tasks: int | None = None,
    max_retries: int = 3,
    compile_cache_setting: str | None = None,
) -> runner.Result:
    """Trains ``sweep`` as tasks of a Ray cluster and writes its results folder ``out``.

    Joins the cluster at ``address`` (``ray.init(address=...)``; None: the one this process
    already joined, else a new local one). Chunks hold ``max_chunk`` runs (default:
    :func:`lrbench.runner.max_chunk_for` ``max_memory`` on this process's devices); a
    resumed sweep keeps the chunk size it was started with. The chunks not yet in ``<out>.partial/`` (all of
    them unless ``resume``) are dealt round robin to ``tasks`` tasks (default: four per CPU
    of the cluster, at most one per chunk); Ray retries a task whose worker died up to
    ``max_retries`` times. ``out.partial`` must be on a file system every worker sees.

    Raises:
      ConfigError: ``executor`` when Ray is not installed, ``address`` when the cluster
        cannot be joined, or what a task raised (e.g. a configuration the partial folder
        does not hold).
      RuntimeError: a task that still failed after its retries (the chunks finished so far
        stay in the partial folder: resume them with ``resume=True``).
    """
    ray = import_ray()
    if out is None:
        raise ConfigError("out", "the ray executor needs an output folder")
    if tasks is not None and tasks < 1:
        raise ConfigError("tasks", f"{tasks} must be >= 1")
    if resume and overwrite:
        raise ConfigError("overwrite", "give --resume or --overwrite, not both")
    progress = runner.Progress(quiet)
    out = results.check_out(out)
    started = _connect(ray, address, quiet)  # before anything is written
    try:
        if max_chunk is None:  # JAX starts here, once Ray has started its processes
            max_chunk = runner.max_chunk_for(sweep, max_memory)
        estimate = plan.estimate(sweep.validate(), max_chunk, yes=yes)
        progress.say(estimate.describe())
        plan.check(estimate, plan.limits(out), yes=yes)
        results.clean_stale(out)
        store = runner.ChunkStore(runner.partial_dir(out))
        fresh = store.fresh(sweep, resume, overwrite, progress)
        max_chunk = store.open(sweep, max_chunk, fresh=fresh)
        done = store.load()
        pending = [c for c in plan_chunks(sweep, max_chunk) if not all(i in done for i in c)]
        reports = []
        if pending:
            reports = _run_tasks(ray, sweep, store.folder, max_chunk, pending, tasks,
                                 max_retries, compile_cache_setting, progress)  # fmt: skip
    finally:
        if started:
            ray.shutdown()
    result = runner.run(sweep, out=out, quiet=True, max_chunk=max_chunk, merge=True, yes=yes)
    return result._replace(meta={**result.meta, "executor": "ray", "tasks": reports})


def _connect(ray, address: str | None, quiet: bool) -> bool:
    """Joins the cluster; True when this call started the connection (to shut it down)."""
    if ray.is_initialized():
        return False
    import logging

    host, _, port = (address or "").rpartition(":")
    if host and port.isdigit() and "/" not in host:  # HOST:PORT of a head node: reachable?
        try:
            socket.create_connection((host, int(port)), timeout=10).close()
        except OSError as err:
            raise ConfigError(
                "address",
                f"no Ray cluster answers at {address} ({err}); start one with "
                "`ray start --head --port=6379` on the head node",
            ) from None
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=not quiet,
            logging_level=logging.WARNING if quiet else logging.INFO,
        )
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = address or "a new local cluster"
        raise ConfigError("address", f"cannot join the Ray cluster at {where}: {err}") from None
    return True


def _run_tasks(ray, sweep, folder, max_chunk, pending, tasks, max_retries, setting, progress):
    cluster = ray.cluster_resources()
    cpus = max(1, int(cluster.get("CPU", 1)))
    count = min(len(pending), tasks or TASKS_PER_CPU * cpus)
    owned = [[str(i) for c in pending[k::count] for i in c] for k in range(count)]
    remote = ray.remote(train_task)
    resources = {"num_cpus": 1, "num_gpus": 1 if cluster.get("GPU", 0) >= 1 else 0}
    progress.say(
        f"ray: {len(pending)} chunk(s) in {count} task(s) over {cpus} CPU(s) "
        f"({int(cluster.get('GPU', 0))} GPU(s)), into {folder}"
    )
    refs = [
        remote.options(**resources, max_retries=max_retries, name=f"lrbench_task_{k}").remote(
            sweep, str(folder), max_chunk, k, ids, setting
        )
        for k, ids in enumerate(owned)
    ]
    start, left, reports = time.perf_counter(), list(refs), []
    try:
        while left:
            ready, left = ray.wait(left, num_returns=1)
            try:
                result = ray.get(ready[0])
            except ray.exceptions.RayTaskError as err:
                if isinstance(getattr(err, "cause", None), ConfigError):
                    raise err.cause from None
                raise RuntimeError(_failed(folder, err)) from None
            except ray.exceptions.RayError as err:
                raise RuntimeError(_failed(folder, err)) from None
            reports.append(result)
            progress.say(
                f"ray: task {result['task']} done ({len(reports)}/{count}, "
                f"{time.perf_counter() - start:.1f} s): {result['trained_runs']} runs trained, "
                f"{result['resumed_runs']} found on disk"
            )
    except BaseException:
        for ref in left:
            ray.cancel(ref, force=True)
        raise
    return sorted(reports, key=lambda r: r["task"])


def _failed(folder, err) -> str:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return (
        f"a Ray task failed after its retries ({type(err).__name__}: {first}); the chunks "
        f"finished so far are in {folder}: rerun with --resume"
    )
