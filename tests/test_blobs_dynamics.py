"""Seed 004's blobs tutorial: its five grids, Keras' semantics, and each claim on a CI-sized run.

The experiment trains once (module fixture, the CI variant: 3 seeds, 200 epochs); every claim
is re-derived here from the raw ``runs`` and ``curves`` tables, and Keras' time-based decay and
ReduceLROnPlateau are replayed in NumPy from their definitions.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments import blobs_dynamics as bd
from lrbench import check, claims
from lrbench.errors import ConfigError

pytestmark = pytest.mark.slow  # module-scoped fixtures train CI variants end to end

EPOCHS = 200
STEPS_PER_EPOCH = math.ceil(500 / 32)  # 500 training rows, batch 32
EXPECTED = Path(__file__).resolve().parents[1] / "results" / "expected" / "blobs_dynamics.json"


@pytest.fixture(scope="module")
def ci(tmp_path_factory):
    out = tmp_path_factory.mktemp("blobs_dynamics") / "blobs_dynamics"
    return bd.run(bd.ci_config(), out=out, quiet=True)


def _grid(result, grid: str) -> pd.DataFrame:
    return result.runs[result.runs["grid"] == grid]


def _per_epoch(result, ids, column: str) -> np.ndarray:
    """[runs, epochs] array of ``column`` for the runs ``ids``, in their order."""
    table = result.curves.pivot(index="run_id", columns="epoch", values=column)
    return table.loc[list(ids)].to_numpy(np.float64)


def _rows(result, grid: str, column: str, value) -> pd.DataFrame:
    runs = _grid(result, grid)
    if isinstance(value, str):
        return runs[runs[column] == value]
    return runs[np.isclose(runs[column].astype(float), value, rtol=1e-9)]


def _median_epochs(rows: pd.DataFrame) -> float:
    """Median epochs to 80% over seeds; inf when most seeds never get there."""
    e = rows["epochs_to_target"].to_numpy(np.float64)
    reached = e[np.isfinite(e)]
    return float(np.median(reached)) if 2 * len(reached) > len(e) else math.inf


# ---------------------------------------------------------------------------------------------
# The grids are the tutorial's


def test_grids_are_the_tutorials():
    sweep = bd.get_config()
    study = bd.study(sweep)
    grids: dict[str, list] = {}
    for grid, s in study.sweeps():
        grids.setdefault(grid, []).append(s)
    assert list(grids) == ["lr", "momentum", "decay", "patience", "optimizer"]
    for sweeps in grids.values():
        for s in sweeps:
            assert (s.dataset, s.epochs, s.batch_size, s.seeds) == (
                "blobs",
                200,
                32,
                tuple(range(10)),
            )
            assert (s.model.hidden, s.model.activation, s.model.kernel_init) == (
                (50,),
                "relu",
                "he_uniform",
            )
    np.testing.assert_allclose(grids["lr"][0].lrs, 10.0 ** -np.arange(8))
    (momentum,) = grids["momentum"]
    assert momentum.lrs == (0.01,) and momentum.optimizers[0].name == "momentum_keras"
    assert tuple(momentum.optimizers[0].hparams["momentum"]) == (0.0, 0.5, 0.9, 0.99)
    (decay,) = grids["decay"]
    assert decay.lrs == (0.01,) and decay.optimizers[0].name == "sgd"
    assert decay.schedules[0].kind == "time_based"
    np.testing.assert_allclose(decay.schedules[0].params["decay"], [1e-1, 1e-2, 1e-3, 1e-4])
    (plateau,) = grids["patience"]
    params = plateau.schedules[0].params
    assert plateau.lrs == (0.01,) and plateau.schedules[0].kind == "reduce_on_plateau"
    assert tuple(params["patience"]) == (2, 5, 10, 15)
    # ReduceLROnPlateau(monitor='val_loss', factor=0.1, min_delta=1e-7); Keras: min_lr 0
    assert (params["monitor"], params["factor"], params["min_delta"], params["min_lr"]) == (
        1,
        0.1,
        1e-7,
        0.0,
    )
    # Keras 3 defaults, from its optimizer signatures
    keras = {
        "sgd": (0.01, {}),
        "rmsprop": (0.001, {"rho": 0.9, "eps": 0.0, "eps_root": 1e-7}),
        "adagrad": (0.001, {"initial_accumulator_value": 0.1, "eps": 0.0, "eps_root": 1e-7}),
        "adam": (0.001, {"b1": 0.9, "b2": 0.999, "eps": 1e-7}),
    }
    got = {
        s.optimizers[0].name: (s.lrs[0], dict(s.optimizers[0].hparams)) for s in grids["optimizer"]
    }
    assert got == keras


def test_a_bad_sweep_is_refused_before_training(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("untouched")
    with pytest.raises(ConfigError) as err:
        bd.run(dataclasses.replace(bd.ci_config(), epochs=0), out=out, quiet=True)
    assert err.value.field == "epochs"
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


# ---------------------------------------------------------------------------------------------
# Tidy tables and files


def test_runs_and_curves_are_tidy(ci):
    runs, curves = ci.runs, ci.curves
    seeds = 3
    sizes = {"lr": 8, "momentum": 4, "decay": 4, "patience": 4, "optimizer": 4}
    assert runs.groupby("grid", sort=False).size().to_dict() == {
        g: n * seeds for g, n in sizes.items()
    }
    assert not runs.duplicated(["grid", "run_id"]).any()
    assert not curves.duplicated(["run_id", "epoch"]).any()
    assert set(curves["run_id"]) == set(runs["run_id"])
    assert (curves.groupby("run_id")["epoch"].max() == EPOCHS).all()
    # SGD at lr 0.01 is in the lr grid and the optimizer grid: trained once, listed twice
    shared = runs[runs["run_id"].duplicated(keep=False)]
    assert sorted(shared["grid"].unique()) == ["lr", "optimizer"]
    assert set(shared["optimizer"]) == {"sgd"} and np.allclose(shared["lr"], 0.01)
    assert len(shared) == 2 * seeds
    assert ci.meta["n_runs"] == runs["run_id"].nunique() == sum(sizes.values()) * seeds - seeds
    assert list(runs.columns[:3]) == ["run_id", "experiment", "grid"]
    # one study: every distinct run trained once, one program per optimizer (the lr, decay,
    # patience and SGD-optimizer grids share SGD's)
    assert ci.meta["trained_runs"] == ci.meta["n_runs"]
    assert ci.meta["programs"] == 5
    assert list(ci.meta["config"]["grids"]) == list(bd.GRIDS)


def test_results_folder(ci):
    folder = ci.folder
    names = {p.name for p in folder.iterdir()}
    for stem in ["claims", *(f"grid_{g}" for g in bd.GRIDS)]:
        assert {f"{stem}.md", f"{stem}.tex", f"{stem}.csv"} <= names
    assert {
        "runs.csv",
        "curves.csv",
        "meta.json",
        "settings.csv",
        "curves.png",
        "README.md",
    } <= names
    assert r"\toprule" in (folder / "grid_momentum.tex").read_text()
    assert (folder / "curves.png").read_bytes()[:4] == b"\x89PNG"
    readme = (folder / "README.md").read_text()
    for claim in ci.meta["claims"].index:
        assert claim in readme
    table = pd.read_csv(folder / "grid_lr.csv", index_col=0)
    assert list(table.index) == [1, 0.1, 0.01, 0.001, 0.0001, 1e-5, 1e-6, 1e-7]
    assert "float32" in str(pd.read_parquet(folder / "curves.parquet").dtypes["test_acc"])


def test_reference_numbers_hold_on_the_ci_run(ci):
    spec = json.loads(EXPECTED.read_text())
    report = check.evaluate(ci.folder, spec)
    assert report["ok"].all(), report.loc[~report["ok"]].to_string()


# ---------------------------------------------------------------------------------------------
# Keras' semantics, replayed in NumPy


def test_momentum_zero_is_plain_sgd(ci):
    """Keras' SGD with momentum 0 is SGD: same seeds, same curves (to float32 rounding: the
    velocity form rounds ``-lr*g`` once more, 1.3e-5 relative at most over the CI run)."""
    sgd = _rows(ci, "lr", "lr", 0.01).sort_values("seed")
    still = _rows(ci, "momentum", "momentum", 0.0).sort_values("seed")
    np.testing.assert_allclose(
        _per_epoch(ci, still["run_id"], "train_loss"),
        _per_epoch(ci, sgd["run_id"], "train_loss"),
        rtol=1e-4,
    )


def test_decay_is_keras_time_based(ci):
    """lr at the first step of epoch e = 0.01 / (1 + decay · iterations), iterations = 16(e − 1)."""
    iterations = STEPS_PER_EPOCH * np.arange(EPOCHS)
    for d in (1e-1, 1e-2, 1e-3, 1e-4):
        rows = _rows(ci, "decay", "decay", d)
        want = 0.01 / (1.0 + d * iterations)
        got = _per_epoch(ci, rows["run_id"], "lr")
        np.testing.assert_allclose(got, np.broadcast_to(want, got.shape), rtol=1e-6)


def _keras_reduce_on_plateau(val_loss, lr, patience, factor=0.1, min_delta=1e-7, min_lr=0.0):
    """Keras' ReduceLROnPlateau.on_epoch_end (mode min, no cooldown) in float32, as the
    optimizer variable holds it; returns the lr in force during each epoch."""
    f32 = np.float32
    best, wait, lrs = f32(np.inf), 0, []
    lr = f32(lr)
    for value in val_loss.astype(np.float32):
        lrs.append(lr)
        if value < best - f32(min_delta):
            best, wait = value, 0
        else:
            wait += 1
            if wait >= patience and lr > f32(min_lr):
                lr, wait = f32(max(lr * f32(factor), f32(min_lr))), 0
    return np.array(lrs, np.float64)


def test_plateau_is_keras_reduce_on_plateau(ci):
    for p in (2, 5, 10, 15):
        rows = _rows(ci, "patience", "patience", p)
        losses = _per_epoch(ci, rows["run_id"], "test_loss")
        got = _per_epoch(ci, rows["run_id"], "lr")
        for loss, lr in zip(losses, got, strict=True):
            want = _keras_reduce_on_plateau(loss, 0.01, p)
            np.testing.assert_allclose(lr, want, rtol=1e-5, atol=1e-37)


# ---------------------------------------------------------------------------------------------
# The tutorial's claims, each from the raw tables


def _jitter(result, rows) -> np.ndarray:
    acc = _per_epoch(result, rows["run_id"], "test_acc")[:, EPOCHS // 2 :]
    return np.abs(np.diff(acc, axis=1)).mean(axis=1)


def test_lr_1_oscillates(ci):
    big, good = _rows(ci, "lr", "lr", 1.0), _rows(ci, "lr", "lr", 0.1)
    assert (big["status"] == "oscillating").sum() * 2 > len(big)
    assert _jitter(ci, big).mean() >= 3 * _jitter(ci, good).mean()


@pytest.mark.parametrize("lr", [1e-6, 1e-7])
def test_tiny_lrs_learn_nothing(ci, lr):
    acc = _per_epoch(ci, _rows(ci, "lr", "lr", lr)["run_id"], "test_acc")
    assert np.all(acc[:, -1] - acc[:, 0] < 0.05)  # no seed gains 5 points of accuracy


def test_mid_lrs_learn_more_slowly_as_lr_falls(ci):
    speeds = []
    for lr in (1e-1, 1e-2, 1e-3):
        rows = _rows(ci, "lr", "lr", lr)
        assert (rows["final_train_loss"] <= 0.5 * rows["initial_train_loss"]).all()
        speeds.append(_median_epochs(rows))
    assert speeds[0] < speeds[1] < speeds[2]


@pytest.mark.parametrize("momentum", [0.9, 0.99])
def test_high_momentum_reaches_80_percent_within_50_epochs(ci, momentum):
    rows = _rows(ci, "momentum", "momentum", momentum)
    assert (rows["epochs_to_target"] <= 50).all()


def test_without_momentum_80_percent_takes_50_not_200_epochs(ci):
    """'instead of 200' does not hold: plain SGD gets there in well under 150 epochs, though
    several times slower than momentum 0.9."""
    still = _rows(ci, "momentum", "momentum", 0.0)
    fast = _rows(ci, "momentum", "momentum", 0.9)
    assert (still["epochs_to_target"] < 150).all()
    assert _median_epochs(still) >= 3 * _median_epochs(fast)


@pytest.mark.parametrize("decay", [1e-1, 1e-2])
def test_big_decays_decay_too_fast(ci, decay):
    rows = _rows(ci, "decay", "decay", decay)
    slow = _rows(ci, "decay", "decay", 1e-4)
    assert rows["epochs_to_target"].isna().sum() * 2 > len(rows)
    assert rows["final_test_acc"].mean() <= slow["final_test_acc"].mean() - 0.03


@pytest.mark.parametrize("patience", [2, 5])
def test_short_patience_stalls(ci, patience):
    rows = _rows(ci, "patience", "patience", patience)
    long = _rows(ci, "patience", "patience", 15)
    acc = _per_epoch(ci, rows["run_id"], "test_acc")
    assert acc[:, -1].mean() < 0.8
    assert (acc[:, -1] - acc[:, EPOCHS // 2 - 1]).mean() < 0.02
    assert acc[:, -1].mean() <= long["final_test_acc"].mean() - 0.03


def test_short_patience_cuts_the_lr_early_but_only_patience_2_hits_bottom_early(ci):
    """'hit the minimum lr early' holds for patience 2; patience 5 cuts the rate early (before
    plain SGD reaches 80%) but reaches 1e-6 only late."""

    def epochs(patience):
        rows = _rows(ci, "patience", "patience", patience)
        lr = _per_epoch(ci, rows["run_id"], "lr")
        first = lambda mask: np.where(mask.any(1), mask.argmax(1) + 1, np.inf)  # noqa: E731
        return first(lr < 0.01 * (1 - 1e-6)), first(lr <= 1e-6)

    cut_2, bottom_2 = epochs(2)
    cut_5, bottom_5 = epochs(5)
    plain = _median_epochs(_rows(ci, "lr", "lr", 0.01))
    assert np.sum(bottom_2 <= 50) * 2 > len(bottom_2)
    assert np.all(cut_5 < plain)
    assert np.median(bottom_5) > 50


def test_rmsprop_and_adam_learn_within_50_epochs(ci):
    for name in ("rmsprop", "adam"):
        rows = _rows(ci, "optimizer", "optimizer", name)
        assert (rows["epochs_to_target"] <= 50).all(), name


def test_claims_table_says_the_same(ci):
    """The declared claims reach the verdicts the tests above derive from the raw tables, and
    ``lrbench check`` reads them as declared."""
    held = ci.meta["claims"]["held"].to_dict()
    not_held = {"no_momentum_needs_200", "short_patience_min_lr_early"}
    assert held == {claim: "no" if claim in not_held else "yes" for claim in held}
    assert len(held) == len(bd.CLAIMS) == 14
    verdicts = check.claim_verdicts(bd.NAME, bd, ci.folder)
    assert len(verdicts) == 14 and verdicts["ok"].all()


def test_claim_numbers_are_the_raw_tables(ci):
    """A few claims' values recomputed here from ``runs`` and ``curves``."""
    table = ci.meta["claims"]
    tiny = pd.concat([_rows(ci, "lr", "lr", lr) for lr in (1e-6, 1e-7)])
    acc = _per_epoch(ci, tiny["run_id"], "test_acc")
    assert table.loc["tiny_lrs_learn_nothing", "value"] == pytest.approx(
        (acc[:, -1] - acc[:, 0]).max(), abs=1e-12
    )
    fast = pd.concat([_rows(ci, "momentum", "momentum", m) for m in (0.9, 0.99)])
    assert table.loc["momentum_within_50", "value"] == fast["epochs_to_target"].max()
    plain = _rows(ci, "momentum", "momentum", 0.0)["epochs_to_target"].fillna(EPOCHS + 1)
    assert table.loc["no_momentum_needs_200", "value"] == np.median(plain)
    big, good = _rows(ci, "lr", "lr", 1.0), _rows(ci, "lr", "lr", 0.1)
    ratio = _jitter(ci, big).mean() / _jitter(ci, good).mean()
    assert table.loc["lr_1_jitters", "value"] == pytest.approx(ratio, rel=1e-9)


def test_claims_need_the_tutorials_lr_grid(ci):
    """With the lr grid changed (``--set lr=...``) its claims are not measured, not
    half-tested; the other grids' claims still are."""
    measured = bd.run_measures(ci.runs, ci.curves)
    without_lr_1 = measured[~((measured["grid"] == "lr") & (measured["lr"] == 1.0))]
    tables = {"runs": without_lr_1, "settings": bd.settings_table(without_lr_1)}
    table = claims.evaluate(bd.CLAIMS, tables)
    lost = {"lr_1_oscillates", "lr_1_jitters"}
    assert set(table.index[table["held"] == "not measured"]) == lost
    assert (table.loc[~table.index.isin(lost), "held"] != "not measured").all()
