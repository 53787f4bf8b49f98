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


def _run(out):
    cmd = [sys.executable, "-m", "lrbench", "run", "blobs_lr", *SWEEP, "--quiet", "--out", str(out)]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=600)


def test_same_sweep_twice_is_bitwise_identical(tmp_path):
    _run(tmp_path / "a")
    _run(tmp_path / "b")
    runs = pd.read_csv(tmp_path / "a" / "runs.csv")
    assert not TIMING & set(runs.columns)
    assert len(runs) == 3 * 3 * 2
    for name in ("runs.csv", "curves.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
