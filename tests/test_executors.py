"""``--executor ray``: the chunks of a sweep trained as tasks of a Ray cluster (a local one,
started here) give the results folder of a local run, byte for byte; a worker killed by its
pid mid-sweep costs at most its unfinished chunk, which Ray retries. Everything trains on
one CPU device per process (``LRBENCH_CPU_DEVICES=1``) and one run per chunk, so every run is
trained by the same program whichever process trains it."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lrbench import cli, executors, runner

SETS = ["epochs=400", "lr=1,0.3,0.1,0.03,0.01,0.003,0.001,0.0003"]
SWEEP = ["--set", SETS[0], "--set", SETS[1], "--seeds", "2"]
N_RUNS = 16  # 8 rates x 2 seeds, one per chunk (--max-memory 1KB)
ENV = {"LRBENCH_CPU_DEVICES": "1", "JAX_PLATFORMS": "cpu"}
# Fields of meta.json that say how the folder was made (timings, what was trained here or
# read back from the partial folder), not what it holds.
HOW = {"compile_seconds", "train_seconds", "wall_seconds", "programs", "trained_runs",
       "resumed_runs", "chunks", "compile_cache_hits", "compile_cache_misses"}  # fmt: skip

TIMED = re.compile(r"\d+ runs; \d+ compiled program\(s\); .* s wall on ")

# meta.json's environment is the driver's, the process that writes the folder: here this
# test session, whose device count other tests may have set.
DRIVER = frozenset({"devices"})


def _sweep():
    import experiments

    base = experiments.load("blobs_lr").get_config()
    return cli.apply_overrides(base, SETS, 2)


def _cli(out, *extra, check=True):
    env = {**os.environ, **ENV}
    env.pop("XLA_FLAGS", None)
    cmd = [sys.executable, "-m", "lrbench", "run", "blobs_lr", *SWEEP, "--max-memory", "1KB",
           "--quiet", "--out", str(out), *extra]  # fmt: skip
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=check)


def assert_same_folder(a: Path, b: Path, ignore=frozenset()) -> None:
    """Every file of ``a`` and ``b`` byte for byte, but meta.json (equal but for ``HOW``) and
    README.md (equal but for the line of timings); ``ignore``: more fields of meta.json."""
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        if name == "meta.json":
            ma, mb = (json.loads((f / name).read_text()) for f in (a, b))
            assert {k: v for k, v in ma.items() if k not in HOW | ignore} == {
                k: v for k, v in mb.items() if k not in HOW | ignore
            }
        elif name == "README.md":  # its "Run" paragraph gives the timings of meta.json
            la, lb = ([x for x in (f / name).read_text().splitlines() if not TIMED.match(x)]
                      for f in (a, b))  # fmt: skip
            assert la == lb
        else:
            assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_without_ray_the_executor_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    out = tmp_path / "o"
    assert cli.main(["run", "blobs_lr", "--quiet", "--executor", "ray", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--executor" in err[0] and "pip install 'lrbench-jax[ray]'" in err[0]
    assert not out.exists() and not runner.partial_dir(out).exists()


@pytest.mark.parametrize(
    "extra, flag",
    [(["--executor", "ray", "--merge"], "--merge"),
     (["--executor", "ray", "--process-count", "2"], "--process-count"),
     (["--executor", "ray", "--distributed"], "--distributed"),
     (["--address", "localhost:6379"], "--address")],
)  # fmt: skip
def test_options_the_ray_executor_cannot_honour(tmp_path, capsys, extra, flag):
    if "ray" in extra:
        pytest.importorskip("ray")
    out = tmp_path / "o"
    assert cli.main(["run", "blobs_lr", "--quiet", "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"lrbench: error: {flag}: "), err
    assert not out.exists() and not runner.partial_dir(out).exists()


def test_an_address_where_no_cluster_answers_is_one_line(tmp_path, capsys):
    pytest.importorskip("ray")
    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "o"
    args = ["run", "blobs_lr", "--quiet", "--out", str(out), "--executor", "ray"]
    assert cli.main([*args, "--address", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lrbench: error: --address: no Ray cluster"), err
    assert not out.exists() and not runner.partial_dir(out).exists()


# ---------------------------------------------------------------------------------------------
# On a local Ray cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray cluster of two CPUs whose workers see ``ENV``; its address; and the results
    folder of a local run of the sweep."""
    ray = pytest.importorskip("ray")
    before = {k: os.environ.get(k) for k in ENV}
    os.environ.update(ENV)  # the workers are started with this process's environment
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20,
             log_to_driver=False)  # fmt: skip
    try:
        local = tmp_path_factory.mktemp("local") / "out"
        _cli(local)
        yield ray.get_runtime_context().gcs_address, local
    finally:
        ray.shutdown()
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.mark.slow
def test_the_command_line_on_a_ray_cluster_writes_the_local_folder(cluster, tmp_path):
    address, local = cluster
    out = tmp_path / "ray"
    done = _cli(out, "--executor", "ray", "--address", address, check=False)
    assert done.returncode == 0, done.stderr
    assert_same_folder(local, out)
    assert not runner.partial_dir(out).exists()


def _descendants(root: int) -> set[int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {root}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def _running_tasks() -> dict[int, int]:
    """task index -> pid of the worker processes of this cluster running a task now."""
    tasks = {}
    for pid in _descendants(os.getpid()):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            continue
        if title.startswith("ray::lrbench_task_"):
            tasks[int(title.rsplit("_", 1)[1])] = pid
    return tasks


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds workers through /proc")
def test_a_worker_killed_mid_sweep_loses_at_most_its_chunk(cluster, tmp_path):
    _, local = cluster
    out = tmp_path / "ray"
    partial = runner.partial_dir(out)
    killed = {}

    def kill_one():
        """SIGKILLs the worker of a task that has written some of its 8 chunks, not all."""
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            for task, pid in _running_tasks().items():
                written = len(list(partial.glob(f"chunk-r{task:05d}-*.npz")))
                if 1 <= written < N_RUNS // 2:
                    os.kill(pid, signal.SIGKILL)
                    while Path(f"/proc/{pid}").exists() and _is_alive(pid):
                        time.sleep(0.01)
                    on_disk = len(list(partial.glob(f"chunk-r{task:05d}-*.npz")))
                    killed.update(task=task, pid=pid, on_disk=on_disk)
                    return
            time.sleep(0.005)

    watcher = threading.Thread(target=kill_one, daemon=True)
    watcher.start()
    result = executors.run_ray(_sweep(), out, quiet=True, max_chunk=1, tasks=2)
    watcher.join(timeout=10)
    assert killed, "no worker was caught mid-sweep"
    reports = {r["task"]: r for r in result.meta["tasks"]}
    retried = reports[killed["task"]]
    assert retried["pid"] != killed["pid"]  # a new worker finished the task
    # The retry read back every chunk its first attempt wrote and trained only the rest.
    assert retried["resumed_runs"] == killed["on_disk"] >= 1
    assert retried["trained_runs"] == N_RUNS // 2 - killed["on_disk"]
    assert sum(r["trained_runs"] + r["resumed_runs"] for r in reports.values()) == N_RUNS
    assert_same_folder(local, out, ignore=DRIVER)


def _is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_ray_resumes_what_a_killed_local_run_left(cluster, tmp_path):
    _, local = cluster
    out = tmp_path / "cut"
    env = {**os.environ, **ENV}
    env.pop("XLA_FLAGS", None)
    cmd = [sys.executable, "-m", "lrbench", "run", "blobs_lr", *SWEEP, "--max-memory", "1KB",
           "--quiet", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = runner.partial_dir(out)
    deadline = time.monotonic() + 300
    while not list(partial.glob("chunk-*.npz")) and proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    done_at_kill = len(runner.ChunkStore(partial).load())
    assert 1 <= done_at_kill < N_RUNS
    result = executors.run_ray(_sweep(), out, quiet=True, max_chunk=1, resume=True)
    trained = sum(r["trained_runs"] for r in result.meta["tasks"])
    assert trained == N_RUNS - done_at_kill  # the local run's chunks were not trained again
    assert_same_folder(local, out, ignore=DRIVER)
