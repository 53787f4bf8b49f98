"""Chunked sweeps survive a kill: SIGKILL mid-sweep (at a random moment, and at set points: after
the first chunk, half way, inside a chunk's write, inside the results folder's write, between
its two renames), then ``--resume`` gives the same files as an uninterrupted run, trains only
what was not yet on disk and leaves nothing behind; the memory budget option."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from lrbench import cli, runner
from lrbench.errors import ConfigError

N_RUNS = 8 * 2  # 8 learning rates x 2 seeds
SWEEP = [
    "--set",
    "epochs=150",
    "--set",
    "lr=1,0.3,0.1,0.03,0.01,0.003,0.001,0.0003",
    "--seeds",
    "2",
]
# One device and a budget below one run's estimate: one run per chunk, 16 chunks.
ENV = {
    **os.environ,
    "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
    "JAX_PLATFORMS": "cpu",
}


def _cmd(out, *extra):
    return [sys.executable, "-m", "lrbench", "run", "blobs_lr", *SWEEP, "--max-memory", "1KB",
            "--quiet", "--out", str(out), *extra]  # fmt: skip


def _tables(folder):
    return pd.read_csv(folder / "runs.csv"), pd.read_csv(folder / "curves.csv")


# meta.json's and README.md's words on time and the compilation cache differ from run to run
TIMING = {"compile_seconds", "train_seconds", "wall_seconds", "compile_cache_hits",
          "compile_cache_misses", "trained_runs", "resumed_runs", "chunks", "programs"}  # fmt: skip


def _same_files(whole, cut):
    """Every file of ``whole`` is in ``cut`` with the same bytes, but for the timing of
    ``meta.json`` and of README.md's last paragraph."""
    names = sorted(p.name for p in whole.iterdir())
    assert sorted(p.name for p in cut.iterdir()) == names
    for name in names:
        a, b = (whole / name).read_bytes(), (cut / name).read_bytes()
        if name == "meta.json":
            a, b = ({k: v for k, v in json.loads(x).items() if k not in TIMING} for x in (a, b))
        elif name == "README.md":
            a, b = ([ln for ln in x.splitlines() if b" s wall " not in ln] for x in (a, b))
        assert a == b, name


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The sweep run without interruption."""
    folder = tmp_path_factory.mktemp("whole") / "whole"
    subprocess.run(_cmd(folder), env=ENV, check=True, capture_output=True, timeout=600)
    return folder


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory, whole):
    root = tmp_path_factory.mktemp("resume")
    cut = root / "cut"
    proc = subprocess.Popen(
        _cmd(cut), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    partial = runner.partial_dir(cut)
    deadline = time.monotonic() + 300
    while (
        not list(partial.glob("chunk-*.npz"))
        and proc.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    done_at_kill = len(runner.ChunkStore(partial).load())
    resumed = subprocess.run(
        _cmd(cut, "--resume"), env=ENV, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr
    return whole, cut, done_at_kill


@pytest.mark.slow
def test_the_kill_left_no_results_folder_but_some_chunks(killed_and_resumed):
    _, _, done_at_kill = killed_and_resumed
    assert 1 <= done_at_kill < N_RUNS  # killed mid-sweep, after its first chunk reached the disk


@pytest.mark.slow
def test_resumed_tables_equal_an_uninterrupted_run(killed_and_resumed):
    whole, cut, _ = killed_and_resumed
    for a, b in zip(_tables(whole), _tables(cut), strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    _same_files(whole, cut)
    assert os.listdir(cut.parent) == ["cut"]  # the chunks cleaned up once the folder is written


@pytest.mark.slow
def test_resume_trained_only_what_was_not_on_disk(killed_and_resumed):
    _, cut, done_at_kill = killed_and_resumed
    meta = json.loads((cut / "meta.json").read_text())
    assert meta["resumed_runs"] == done_at_kill
    assert meta["trained_runs"] == N_RUNS - done_at_kill  # nothing finished was trained again
    assert meta["chunks"] == N_RUNS - done_at_kill  # one run per chunk


# A kill -9 at a set point: the process runs the command line with one function wrapped so
# that it SIGKILLs its own process there (no ``finally``, no ``atexit``: as ``kill -9``).
KILL_AT = r"""
import os, pathlib, signal, sys
from lrbench import cli, results, runner

point, argv = sys.argv[1], sys.argv[2:]
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
kind, _, k = point.partition(":")
count = [0]
if kind == "after-chunk":  # once chunk k is on disk
    append = runner.ChunkStore.append
    def after(self, *a):
        append(self, *a)
        count[0] += 1
        if count[0] == int(k):
            die()
    runner.ChunkStore.append = after
elif kind == "in-chunk":  # half way through writing chunk k's file
    write_file = results.write_file_atomically
    def half(path, write):
        if pathlib.Path(path).name.startswith("chunk-"):
            count[0] += 1
            if count[0] == int(k):
                def write(f, write=write):
                    f.write(b"PK\x03\x04 half a chunk")
                    f.flush()
                    die()
        return write_file(path, write)
    results.write_file_atomically = half
elif kind == "in-folder":  # the results folder's files half written: curves.csv cut short
    def tables(folder, runs, curves, meta):
        runs.to_csv(folder / "runs.csv", index=False)
        text = curves.to_csv(index=False)
        (folder / "curves.csv").write_text(text[: len(text) // 2])
        die()
    results.write_tables = tables
elif kind == "between-renames":  # the old folder moved aside, the new one not yet in place
    rename = pathlib.Path.rename
    def aside(self, target):
        moved = rename(self, target)
        if str(target).endswith(".old"):
            die()
        return moved
    pathlib.Path.rename = aside
sys.exit(cli.main(argv))
"""


def _leftovers(root, out):
    """What is next to ``out`` but ``out`` itself: partial folders, hidden temporaries."""
    return sorted(p.name for p in root.iterdir() if p.name != out.name)


@pytest.mark.slow
@pytest.mark.parametrize(
    "point, again",
    [
        ("after-chunk:1", ["--resume"]),
        ("after-chunk:9", []),  # half way; a plain rerun resumes the same configuration too
        ("in-chunk:4", ["--resume"]),
        ("in-folder", ["--resume"]),
        ("between-renames", ["--resume"]),
    ],
)
def test_kill_at_a_point_then_resume(tmp_path, whole, point, again):
    """kill -9 at ``point``, then a rerun: the files of an uninterrupted run, byte for byte,
    and nothing else left next to them (no ``.partial``, no hidden ``.cut.*``)."""
    cut = tmp_path / "cut"
    if point == "between-renames":  # a rerun over a results folder already there
        shutil.copytree(whole, cut)
    killed = subprocess.run(
        [sys.executable, "-c", KILL_AT, point, *_cmd(cut)[3:]],
        env=ENV, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    left = _leftovers(tmp_path, cut)
    if point.startswith(("in-folder", "between")):
        assert any(name.startswith(".cut.") for name in left), left  # the kill hit the write
    if point.startswith("in-chunk"):
        partial = runner.partial_dir(cut)
        assert [p for p in partial.iterdir() if p.name.endswith(".tmp")]  # a half chunk file
    resumed = subprocess.run(_cmd(cut, *again), env=ENV, capture_output=True, text=True,
                             timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    _same_files(whole, cut)
    assert _leftovers(tmp_path, cut) == []
    meta = json.loads((cut / "meta.json").read_text())
    if point.startswith("after-chunk"):
        assert meta["resumed_runs"] == int(point.split(":")[1])  # one run a chunk
        assert meta["trained_runs"] == N_RUNS - meta["resumed_runs"]


@pytest.mark.slow
def test_killed_at_random_moments_again_and_again(tmp_path, whole):
    """Three plain reruns, each killed at a random moment (seeded) of its life, then one that
    finishes: the uninterrupted run's files and nothing else."""
    cut = tmp_path / "cut"
    rng = random.Random(16)
    for _ in range(3):
        proc = subprocess.Popen(_cmd(cut), env=ENV, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(rng.uniform(2.0, 8.0))  # imports take ~2 s, the whole run ~8 s
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    resumed = subprocess.run(_cmd(cut), env=ENV, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    _same_files(whole, cut)
    assert _leftovers(tmp_path, cut) == []


def test_resume_refuses_another_configuration(tmp_path, capsys):
    out = tmp_path / "o"
    args = ["run", "blobs_lr", "--set", "epochs=2", "--set", "lr=0.1", "--seeds", "1", "--quiet"]
    store = runner.ChunkStore(runner.partial_dir(out))
    store.open(cli.apply_overrides(__import__("experiments").load("blobs_lr").get_config(),
                                   ["epochs=3", "lr=0.1"], 1), 4, fresh=True)  # fmt: skip
    assert cli.main([*args, "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--resume" in err[0] and "different configuration" in err[0]
    assert not out.exists()


def test_resume_refuses_an_experiment_with_its_own_run_hook(tmp_path, capsys):
    assert cli.main(["run", "error_bowl", "--resume", "--quiet", "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--resume" in err[0] and "own run hook" in err[0]


@pytest.mark.parametrize(
    "text, size",
    [
        ("2GB", 2 * 10**9),
        ("512MB", 512 * 10**6),
        ("1.5GiB", 3 * 2**29),
        ("64 kib", 65536),
        ("1000", 1000),
    ],
)
def test_parse_memory(text, size):
    assert runner.parse_memory(text) == size


@pytest.mark.parametrize("text", ["", "GB", "2XB", "-1GB", "0", "0.0MB", "1e3", "nan"])
def test_parse_memory_refuses(text):
    with pytest.raises(ConfigError, match="^max_memory: ") as err:
        runner.parse_memory(text)
    assert err.value.field == "max_memory"


def test_bad_max_memory_is_one_line_exit_2(tmp_path, capsys):
    out = tmp_path / "o"
    assert cli.main(["run", "blobs_lr", "--max-memory", "lots", "--quiet", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--max-memory" in err[0]
    assert not out.exists()


def test_chunk_size_follows_the_budget():
    import experiments

    sweep = experiments.load("blobs_lr").get_config()
    per_run = runner.run_bytes(sweep)
    # blobs: 2 -> 50 -> 3 (P = 303), units 55, B = 32, 500 evaluation rows, 200 epochs, float32,
    # 200 minibatch orders of the 500 training examples; plain SGD keeps no state slot, so the
    # parameters and their gradients are 2·P
    assert per_run == 2 * 4 * (2 * 303 + 2 * (32 + 500) * 55 + 4 * 200 + 200 * 500)
    import jax

    n_dev = jax.device_count()
    assert runner.max_chunk_for(sweep, 100 * per_run + 1) == max(n_dev, 100)
    assert runner.max_chunk_for(sweep, 1) == n_dev
    assert n_dev <= runner.max_chunk_for(sweep, None) <= max(n_dev, 4096)


def test_config_hash_of_a_store_written_before_validation_freq():
    """A store written before ``validation_freq`` existed still resumes: at its default the
    field leaves the hash as it was (the value below is what that version wrote). That
    version's output layer took ``kernel_init``: ``output_init`` equal to it is that model, and
    the default (glorot_uniform) another one, which must not resume it."""
    import dataclasses

    from lrbench.models import MLPConfig
    from lrbench.sweep import Sweep

    old_model = MLPConfig(hidden=(8,), output_init="he_uniform")
    sweep = Sweep(experiment="test", dataset="blobs", model=old_model, epochs=4,
                  batch_size=64, lrs=(0.1, 0.01), seeds=(0, 1))  # fmt: skip
    assert runner.config_hash(dataclasses.replace(sweep, model=MLPConfig(hidden=(8,)))) != (
        "865f50f0fac5cc39"
    )
    assert runner.config_hash(sweep) == "865f50f0fac5cc39"
    assert runner.config_hash(dataclasses.replace(sweep, validation_freq=2)) != "865f50f0fac5cc39"
