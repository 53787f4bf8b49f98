"""blobs_lr: its claims on a hand-built runs table and on the committed full run, and the
claims table and README the generic runner writes for it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from experiments import blobs_lr
from lrbench import check, claims, runner

RESULTS = Path(__file__).resolve().parents[1] / "results" / "blobs_lr"


def _runs(acc: dict[float, tuple], status_at_1: tuple) -> pd.DataFrame:
    rows = [
        {"lr": lr, "seed": s, "final_test_acc": a, "status": "slow"}
        for lr, values in acc.items()
        for s, a in enumerate(values)
    ]
    runs = pd.DataFrame(rows)
    runs.loc[runs["lr"] == 1.0, "status"] = list(status_at_1)
    return runs


def test_claims_on_a_hand_built_table():
    acc = {1.0: (0.6, 0.8), 1e-2: (0.8, 0.9), 1e-3: (0.7, 0.95), 1e-6: (0.4, 0.5),
           1e-7: (0.5, 0.6)}  # fmt: skip
    table = claims.evaluate(blobs_lr.CLAIMS, {"runs": _runs(acc, ("oscillating", "slow"))})
    value = table["value"].to_dict()
    assert value["lr_1_oscillates"] == 0.5  # one of two seeds: not a majority
    assert value["lr_1_ends_low"] == pytest.approx(0.7)
    assert value["tiny_lrs_learn_nothing"] == pytest.approx(0.55)  # lr 1e-7's mean
    # paired by seed: (0.7 - 0.8 + 0.95 - 0.9) / 2, seeds' range [-0.1, 0.05]
    assert value["slower_as_lr_falls"] == pytest.approx(-0.025)
    assert table.loc["slower_as_lr_falls", "low"] == pytest.approx(-0.1)
    assert list(table["held"]) == ["no", "no", "no", "yes"]


def test_the_committed_full_run_reaches_the_declared_verdicts():
    verdicts = check.claim_verdicts("blobs_lr", blobs_lr, RESULTS)
    assert len(verdicts) == len(blobs_lr.CLAIMS) and verdicts["ok"].all(), verdicts


@pytest.mark.slow
def test_the_generic_runner_writes_its_claims_and_readme(tmp_path):
    sweep = dataclasses.replace(blobs_lr.get_config(), epochs=3, lrs=(1.0, 1e-2), seeds=(0,))
    folder = runner.run(sweep, out=tmp_path / "blobs_lr", quiet=True).folder
    table = pd.read_csv(folder / "claims.csv", index_col=0)
    assert list(table.index) == [c.id for c in blobs_lr.CLAIMS]
    # lr 1e-3, 1e-6 and 1e-7 were not trained: those claims cannot be measured
    assert table.loc["tiny_lrs_learn_nothing", "held"] == "not measured"
    readme = (folder / "README.md").read_text()
    assert readme.startswith(f"# blobs_lr: {blobs_lr.TITLE}")
    assert "## The claims (" in readme and "(`table`)" in readme and "curves.png" in readme


def test_only_experiments_without_a_run_hook_get_the_generic_report():
    assert runner._generic_experiment("blobs_lr") is blobs_lr
    assert runner._generic_experiment("drug_trial") is None  # writes its own README
    assert runner._generic_experiment("sweep") is None  # a sweep built by hand
