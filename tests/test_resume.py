"""Chunked sweeps survive a kill: SIGKILL mid-sweep, then ``--resume`` gives the same tables
as an uninterrupted run and trains only what was not yet on disk; the memory budget option."""

from __future__ import annotations

import json
import os
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


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    whole, cut = root / "whole", root / "cut"
    subprocess.run(_cmd(whole), env=ENV, check=True, capture_output=True, timeout=600)
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
    assert (whole / "runs.csv").read_bytes() == (cut / "runs.csv").read_bytes()
    assert (whole / "curves.csv").read_bytes() == (cut / "curves.csv").read_bytes()
    assert not runner.partial_dir(cut).exists()  # cleaned up once the folder is written


@pytest.mark.slow
def test_resume_trained_only_what_was_not_on_disk(killed_and_resumed):
    _, cut, done_at_kill = killed_and_resumed
    meta = json.loads((cut / "meta.json").read_text())
    assert meta["resumed_runs"] == done_at_kill
    assert meta["trained_runs"] == N_RUNS - done_at_kill  # nothing finished was trained again
    assert meta["chunks"] == N_RUNS - done_at_kill  # one run per chunk


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
    field leaves the hash as it was (the value below is what that version wrote)."""
    import dataclasses

    from lrbench.models import MLPConfig
    from lrbench.sweep import Sweep

    sweep = Sweep(experiment="test", dataset="blobs", model=MLPConfig(hidden=(8,)), epochs=4,
                  batch_size=64, lrs=(0.1, 0.01), seeds=(0, 1))  # fmt: skip
    assert runner.config_hash(sweep) == "865f50f0fac5cc39"
    assert runner.config_hash(dataclasses.replace(sweep, validation_freq=2)) != "865f50f0fac5cc39"
