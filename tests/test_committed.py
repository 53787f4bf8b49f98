"""The committed results are what the landed code writes.

The default sweep (``lrbench run``: blobs_lr) is rerun and its table compared with the one in
``results/blobs_lr/``: every row the same to the printed digit, and the chaotic lr-1 row (a
learning rate past the edge of stability, where any rounding difference of another platform
grows) within ``CHAOTIC_TOLERANCE`` of its mean accuracy. Every committed folder's
``meta.json`` names the revision that wrote it, a commit of this history, with no uncommitted
changes to the code. ``results/bench`` holds speeds, not numbers a claim rests on: it names
its revision too, but is rewritten only on a quiet machine with the ``bench`` extra (PyTorch),
so it may be older than the last change to the code.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from lrbench import cli

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
CHAOTIC_LR = 1.0
CHAOTIC_TOLERANCE = 0.05  # mean final test accuracy at lr 1, absolute


def _table(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "table.csv", dtype=str).set_index("lr")


def test_the_default_sweep_writes_the_committed_table(tmp_path, capsys):
    assert cli.main(["run", "--out", str(tmp_path / "blobs_lr"), "--quiet"]) == 0
    capsys.readouterr()
    new, committed = _table(tmp_path / "blobs_lr"), _table(RESULTS / "blobs_lr")
    assert list(new.index) == list(committed.index)
    chaotic = [lr for lr in new.index if float(lr) == CHAOTIC_LR]
    pd.testing.assert_frame_equal(new.drop(chaotic), committed.drop(chaotic))
    runs_new = pd.read_csv(tmp_path / "blobs_lr" / "runs.csv")
    runs_old = pd.read_csv(RESULTS / "blobs_lr" / "runs.csv")
    mean = lambda r: r.loc[r["lr"] == CHAOTIC_LR, "final_test_acc"].mean()  # noqa: E731
    assert abs(mean(runs_new) - mean(runs_old)) <= CHAOTIC_TOLERANCE


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)


@pytest.mark.parametrize("meta", sorted(RESULTS.glob("*/meta.json")), ids=lambda p: p.parent.name)
def test_a_committed_folder_names_the_commit_that_wrote_it(meta):
    if _git("rev-parse", "HEAD").returncode != 0:
        pytest.skip("not a git checkout")
    found = json.loads(meta.read_text())
    revision = found.get("git_revision") or found.get("environment", {}).get("git_revision")
    assert revision, f"{meta} names no revision"
    assert _git("merge-base", "--is-ancestor", revision, "HEAD").returncode == 0, revision
    if meta.parent.name != "bench":
        assert found.get("git_dirty") is False, f"{meta}: written by uncommitted code"
