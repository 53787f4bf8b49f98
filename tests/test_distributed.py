"""``--distributed`` through JAX's documented environment (``JAX_COORDINATOR_ADDRESS``,
``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``): two local processes each train their share into
the shared partial folder, and ``--merge`` writes the same tables, byte for byte, as one
process alone (one CPU device and one run per chunk everywhere, so every run is trained by
the same program whichever process trains it)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from lrbench import cli, runner

SWEEP = ["--set", "epochs=3", "--set", "lr=0.3,0.1,0.03", "--seeds", "2"]
ENV = {
    **os.environ,
    "LRBENCH_CPU_DEVICES": "1",
    "JAX_PLATFORMS": "cpu",
}
for _name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "XLA_FLAGS"):
    ENV.pop(_name, None)


def _cmd(out, *extra):
    return [sys.executable, "-m", "lrbench", "run", "blobs_lr", *SWEEP, "--max-memory", "1KB",
            "--quiet", "--out", str(out), *extra]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # four fresh processes, two of them joined by a coordinator
def test_two_processes_from_the_jax_environment_match_one(tmp_path):
    single, shared = tmp_path / "single", tmp_path / "shared"
    subprocess.run(_cmd(single), env=ENV, check=True, capture_output=True, timeout=600)
    coordinator = {"JAX_COORDINATOR_ADDRESS": f"localhost:{_free_port()}", "JAX_NUM_PROCESSES": "2"}
    procs = [
        subprocess.Popen(
            _cmd(shared, "--distributed"),
            env={**ENV, **coordinator, "JAX_PROCESS_ID": str(i)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_, stderr) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, stderr
    said = "".join(stdout for stdout, _ in outputs)
    assert "process 0 of 2" in said and "process 1 of 2" in said
    parts = sorted(p.name for p in runner.partial_dir(shared).glob("runs.part-*.csv"))
    assert parts == ["runs.part-00000.csv", "runs.part-00001.csv"]
    merged = subprocess.run(_cmd(shared, "--merge"), env=ENV, capture_output=True, text=True)
    assert merged.returncode == 0, merged.stderr
    for name in ("runs.csv", "curves.csv"):
        assert (single / name).read_bytes() == (shared / name).read_bytes(), name


@pytest.mark.parametrize("name", ["JAX_NUM_PROCESSES", "JAX_PROCESS_ID"])
def test_a_malformed_number_in_the_environment_is_one_line(tmp_path, capsys, monkeypatch, name):
    monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "localhost:1")
    monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
    monkeypatch.setenv("JAX_PROCESS_ID", "0")
    monkeypatch.setenv(name, "two")
    out = tmp_path / "o"
    assert cli.main(["run", "blobs_lr", "--quiet", "--out", str(out), "--distributed"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"lrbench: error: {name}: 'two' "), err
    assert not out.exists() and not runner.partial_dir(out).exists()
