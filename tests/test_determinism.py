"""The same sweep twice through the command line, in two fresh processes, gives bitwise the
same ``runs.csv`` and ``curves.csv`` (the tables hold no timing columns; ``meta.json`` does)."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

pytestmark = pytest.mark.slow  # trains the same CLI sweep twice

SWEEP = [
    "--set",
    "epochs=4",
    "--set",
    "lr=1,0.1,0.001",
    "--set",
    "optimizer=sgd,momentum,adam",
    "--seeds",
    "2",
]
TIMING = {"compile_seconds", "train_seconds", "wall_seconds"}


def _start(out):
    cmd = [sys.executable, "-m", "lrbench", "run", "blobs_lr", *SWEEP, "--quiet", "--out", str(out)]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_same_sweep_twice_is_bitwise_identical(tmp_path):
    started = [_start(tmp_path / "a"), _start(tmp_path / "b")]  # side by side: two processes
    for proc in started:
        text, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, text.decode()[-2000:]
    runs = pd.read_csv(tmp_path / "a" / "runs.csv")
    assert not TIMING & set(runs.columns)
    assert len(runs) == 3 * 3 * 2
    for name in ("runs.csv", "curves.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
