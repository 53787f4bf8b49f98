"""A study: several grids as one runs table, a shared run trained once, one results folder,
resumable by chunk, and every run's numbers those of the grid's own sweep."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from lrbench import runner
from lrbench.errors import ConfigError
from lrbench.models import MLPConfig
from lrbench.study import Study, expand
from lrbench.sweep import Optimizer, Sweep

RATES = Sweep(
    experiment="rates",
    dataset="blobs",
    model=MLPConfig(hidden=(6,)),
    epochs=3,
    batch_size=50,
    lrs=(0.1, 0.01),
    seeds=(0, 1),
)
# SGD at lr 0.01 is in both grids
OPTIMIZERS = dataclasses.replace(
    RATES, lrs=(0.01,), optimizers=(Optimizer("sgd"), Optimizer("momentum", {"momentum": 0.9}))
)
STUDY = Study("two_grids", {"rates": RATES, "optimizers": OPTIMIZERS})


def test_the_runs_table_lists_a_shared_run_in_each_grid():
    runs = expand(STUDY)
    assert list(runs.columns[:3]) == ["run_id", "experiment", "grid"]
    assert runs.groupby("grid", sort=False).size().to_dict() == {"rates": 4, "optimizers": 4}
    assert set(runs["experiment"]) == {"two_grids"}
    shared = runs[runs["run_id"].duplicated(keep=False)]
    assert len(shared) == 4 and set(shared["lr"]) == {0.01} and set(shared["optimizer"]) == {"sgd"}
    assert runs["run_id"].nunique() == 6
    # each grid's rows are its sweep's runs, in its order
    for grid, sweep in (("rates", RATES), ("optimizers", OPTIMIZERS)):
        assert list(runs.loc[runs["grid"] == grid, "run_id"]) == list(
            runner.runs_table(sweep)["run_id"]
        )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("study") / "two_grids"
    result = runner.run(STUDY, out=out, quiet=True)
    alone = {name: runner.run(s, quiet=True) for name, s in STUDY.grids.items()}
    return result, alone


@pytest.mark.slow
def test_shared_runs_train_once(trained):
    result, _ = trained
    meta = json.loads((result.folder / "meta.json").read_text())
    assert meta["n_runs"] == 6 and meta["trained_runs"] == 6
    assert meta["programs"] == 2  # sgd (both grids) and momentum
    assert {"compile_seconds", "train_seconds", "wall_seconds"} <= set(meta)
    assert list(meta["config"]["grids"]) == ["rates", "optimizers"]
    assert len(result.runs) == 8
    curves = pd.read_csv(result.folder / "curves.csv")
    assert len(curves) == 6 * RATES.epochs
    assert not curves.duplicated(["run_id", "epoch"]).any()
    runs = pd.read_csv(result.folder / "runs.csv")
    assert len(runs) == 8 and "grid" in runs


@pytest.mark.slow
def test_numbers_equal_the_separate_sweeps(trained):
    """Bit for bit: the study lays out each program's runs as the sweep that has them all
    does (sgd: the rates grid; momentum: the optimizers grid)."""
    result, alone = trained
    metrics = ["initial_train_loss", "final_train_loss", "final_test_loss", "final_test_acc"]
    for grid in ("rates", "optimizers"):
        mine = result.runs[result.runs["grid"] == grid].set_index("run_id")
        theirs = alone[grid].runs.set_index("run_id")
        assert list(mine.index) == list(theirs.index)
        if grid == "optimizers":  # sgd at 0.01 is laid out with the rates grid's sgd runs
            theirs = theirs[theirs["optimizer"] == "momentum"]
            mine = mine.loc[theirs.index]
        np.testing.assert_array_equal(mine[metrics].to_numpy(), theirs[metrics].to_numpy())
        ids = list(theirs.index)
        a = result.curves.set_index("run_id").loc[ids]
        b = alone[grid].curves.set_index("run_id").loc[ids]
        np.testing.assert_array_equal(a["train_loss"].to_numpy(), b["train_loss"].to_numpy())
    # the shared run, listed in both grids, has one set of numbers
    shared = result.runs[result.runs["run_id"].duplicated(keep=False)]
    assert (shared.groupby("run_id")["final_train_loss"].nunique() == 1).all()
    # ...and sgd at lr 0.01 laid out alone with momentum agrees to float32 rounding
    sgd = alone["optimizers"].runs.set_index("run_id")
    sgd = sgd[sgd["optimizer"] == "sgd"]
    got = result.runs.drop_duplicates("run_id").set_index("run_id").loc[sgd.index]
    np.testing.assert_allclose(got["final_train_loss"], sgd["final_train_loss"], rtol=1e-5)


@pytest.mark.slow
def test_a_study_resumes_by_chunk(tmp_path, monkeypatch, trained):
    """Killed after two chunks, then resumed: only the other runs are trained, and the tables
    equal the uninterrupted run's."""
    out = tmp_path / "two_grids"
    append = runner.ChunkStore.append
    calls = []

    def dies_after_two(self, name, run_ids, history):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(list(run_ids))
        append(self, name, run_ids, history)

    monkeypatch.setattr(runner.ChunkStore, "append", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        runner.run(STUDY, out=out, quiet=True, max_chunk=2)
    monkeypatch.setattr(runner.ChunkStore, "append", append)
    assert not out.exists() and runner.partial_dir(out).is_dir()
    result = runner.run(STUDY, out=out, quiet=True, max_chunk=4096, resume=True)
    assert result.meta["resumed_runs"] == sum(len(c) for c in calls) == 4
    assert result.meta["trained_runs"] == 2
    whole, _ = trained
    cols = ["run_id", "grid", "final_train_loss", "final_test_acc"]
    pd.testing.assert_frame_equal(result.runs[cols], whole.runs[cols])
    pd.testing.assert_frame_equal(result.curves, whole.curves)


def test_bad_studies_name_the_field():
    with pytest.raises(ConfigError) as err:
        expand(Study("s", {"a": RATES, "b": dataclasses.replace(RATES, target_acc=0.5)}))
    assert err.value.field == "target_acc"
    with pytest.raises(ConfigError) as err:
        expand(Study("s", {"a": (RATES, OPTIMIZERS)}))
    assert err.value.field == "grids"
    with pytest.raises(ConfigError) as err:
        expand(Study("s", {}))
    assert err.value.field == "grids"
