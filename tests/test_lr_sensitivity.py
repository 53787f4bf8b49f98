"""lr_sensitivity: the U-shaped curve on the CI-sized run, and its tables re-derived in NumPy.

The experiment trains once (module fixture, the CI variant: 12 learning rates, 3 seeds, 20
epochs); the best-lr table and the good-region widths are recomputed here from the raw
``runs`` table with their own code, and the DeepOBS score from ``status`` alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments import lr_sensitivity as ls
from lrbench import check, claims, cli

pytestmark = pytest.mark.slow  # module-scoped fixtures train CI variants end to end

EXPECTED = Path(__file__).resolve().parents[1] / "results" / "expected" / "lr_sensitivity.json"
OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")


@pytest.fixture(scope="module")
def ci(tmp_path_factory):
    out = tmp_path_factory.mktemp("lr_sensitivity") / "lr_sensitivity"
    return ls.run(ls.ci_config(), out=out, quiet=True)


def _hand_built() -> dict[str, pd.DataFrame]:
    """Four optimizers on lrs 1e-5, 1e-3, 1e-1, 10, two identical seeds; known answers."""
    score = {"sgd": [0.1, 0.5, 0.95, 0.1], "momentum": [0.12, 0.9, 0.6, 0.1],
             "rmsprop": [0.2, 0.97, 0.5, 0.6], "adam": [0.15, 0.96, 0.3, 0.1]}  # fmt: skip
    ratio = {"sgd": 1.0, "momentum": 0.95, "rmsprop": 0.8, "adam": 0.6}  # at lr 1e-5
    rows = []
    for o, values in score.items():
        for lr, v in zip((1e-5, 1e-3, 1e-1, 10.0), values, strict=True):
            for seed in (0, 1):
                status = "diverged" if lr == 10.0 else "converged"
                if o == "rmsprop" and lr == 10.0:
                    status = "oscillating" if seed == 0 else "converged"
                final = 2.3 * ratio[o] if lr == 1e-5 else 0.1
                rows.append({"optimizer": o, "lr": lr, "seed": seed, "score": v, "status": status,
                             "initial_train_loss": 2.3, "final_train_loss": final})  # fmt: skip
    table = pd.DataFrame(
        {"optimizer": ["sgd", "momentum"], "best_lr": [0.1, 1e-3], "good_lo_lr": [0.1, 1e-3],
         "good_hi_lr": [0.1, 10**-2.5], "good_width_decades": [0.0, 0.5]}
    )  # fmt: skip
    return {"runs": pd.DataFrame(rows), "sensitivity": table}


def test_claims_measure_what_they_say_on_a_hand_built_table():
    table = claims.evaluate(ls.CLAIMS, _hand_built())
    value = table["value"].to_dict()
    assert value["u_shape"] == pytest.approx(0.97 - 0.6)  # rmsprop's right end is the highest
    assert value["too_large_oscillates"] == pytest.approx(1 / 6)  # rmsprop: 1 of 6 runs
    assert value["too_small_stalls"] == pytest.approx(0.6)  # adam
    assert value["too_small_does_not_learn"] == pytest.approx(0.2)  # rmsprop
    assert value["momentum_no_easier"] == pytest.approx(0.5)
    assert "momentum's best lr 2.0 decades lower" in table.loc["momentum_no_easier", "detail"]
    # adam 0.96 at lr 1e-3 minus SGD's best outside its good region [0.1, 0.1]: 0.5 at 1e-3
    assert value["adaptive_beats_bad_lr"] == pytest.approx(0.46)
    assert list(table["held"]) == ["yes", "no", "yes", "yes", "no", "yes"]


def _score(runs: pd.DataFrame) -> pd.DataFrame:
    """[lr, seed] DeepOBS scores per optimizer: test accuracy, 0.1 when diverged."""
    acc = np.where(runs["status"].to_numpy() == "diverged", 0.1, runs["final_test_acc"].to_numpy())
    return runs.assign(s=acc).pivot_table(index="lr", columns="seed", values="s")


def _by_optimizer(ci) -> dict[str, pd.DataFrame]:
    return {o: _score(ci.runs[ci.runs["optimizer"] == o]) for o in OPTIMIZERS}


def test_grids_are_the_briefs():
    full, small = ls.get_config(), ls.ci_config()
    np.testing.assert_allclose(full.lrs, 10.0 ** (-5 + 0.2 * np.arange(36)), rtol=1e-12)
    assert (
        len(small.lrs) == 12 and min(small.lrs) == min(full.lrs) and max(small.lrs) == max(full.lrs)
    )
    assert [o.name for o in full.optimizers] == list(OPTIMIZERS)
    assert dict(full.optimizers[1].hparams) == {"momentum": 0.9}
    assert full.seeds == tuple(range(10)) and full.dataset == "digits"


@pytest.mark.slow
def test_diverged_runs_score_chance(ci):
    runs = ci.runs
    diverged = runs["status"] == "diverged"
    assert diverged.any() and (runs.loc[diverged, "score"] == 0.1).all()
    np.testing.assert_array_equal(
        runs.loc[~diverged, "score"], runs.loc[~diverged, "final_test_acc"]
    )
    # a run frozen before a non-finite step keeps the accuracy it had: the score drops it
    finite_acc = diverged & runs["final_test_acc"].gt(0.5)
    assert finite_acc.any()


@pytest.mark.slow
def test_u_shape(ci):
    for name, scores in _by_optimizer(ci).items():
        mean = scores.mean(axis=1)
        assert mean.max() > 0.9, name
        assert mean.max() - mean.iloc[0] > 0.5, (name, mean.iloc[0])  # smallest lr
        assert mean.max() - mean.iloc[-1] > 0.5, (name, mean.iloc[-1])  # largest lr
        best = int(np.argmax(mean.to_numpy()))
        assert 0 < best < len(mean) - 1, name


@pytest.mark.slow
def test_smallest_lr_stalls_near_initial_accuracy(ci):
    runs, curves = ci.runs, ci.curves
    lo = runs[runs["lr"] == runs["lr"].min()]
    # after one epoch of SGD at 1e-5 the weights have moved by ~1e-5·11 steps: its test
    # accuracy is the initial one of that seed (same initial weights for every optimizer)
    sgd_lo = lo[lo["optimizer"] == "sgd"]
    first = curves[(curves["epoch"] == 1) & curves["run_id"].isin(sgd_lo["run_id"])]
    initial = dict(
        zip(
            sgd_lo["seed"], first.set_index("run_id").loc[sgd_lo["run_id"], "test_acc"], strict=True
        )
    )
    for _, r in lo.iterrows():
        assert abs(r["final_test_acc"] - initial[r["seed"]]) < 0.06, (r["optimizer"], r["seed"])
        assert r["final_train_loss"] > 0.9 * r["initial_train_loss"], r["optimizer"]
        assert r["status"] == "slow"


@pytest.mark.slow
def test_largest_lrs_diverge_for_sgd(ci):
    runs = ci.runs
    sgd = runs[runs["optimizer"] == "sgd"]
    top = sgd[sgd["lr"] >= np.sort(sgd["lr"].unique())[-3]]
    assert (top["status"] == "diverged").all()
    assert (top["final_test_acc"].fillna(0) < 0.2).all()
    largest = sgd[sgd["lr"] == sgd["lr"].max()]
    assert largest["diverged_at"].notna().all()  # non-finite within the run


@pytest.mark.slow
def test_best_lr_table_matches_numpy(ci):
    table = ci.meta["sensitivity"].set_index("optimizer")
    for name, scores in _by_optimizer(ci).items():
        lrs = scores.index.to_numpy()
        s = scores.to_numpy()  # [lr, seed]
        mean = s.mean(axis=1)
        best = int(np.argmax(mean))
        row = table.loc[name]
        assert row["best_lr"] == pytest.approx(lrs[best], rel=1e-12), name
        assert row["score_mean"] == pytest.approx(mean[best], abs=1e-12)
        assert row["score_std"] == pytest.approx(np.std(s[best], ddof=1), abs=1e-12)
        per_seed = lrs[np.argmax(s, axis=0)]  # first (lowest) lr on ties
        assert row["seed_best_lr_min"] == pytest.approx(per_seed.min())
        assert row["seed_best_lr_max"] == pytest.approx(per_seed.max())
        assert row["seed_best_lr_median"] == pytest.approx(10 ** np.median(np.log10(per_seed)))
        assert row["seed_spread_decades"] == pytest.approx(
            np.log10(per_seed.max() / per_seed.min())
        )
        at_best = ci.runs[(ci.runs["optimizer"] == name) & (ci.runs["lr"] == lrs[best])]
        assert row["final_train_loss"] == pytest.approx(np.median(at_best["final_train_loss"]))


def _good_width(lrs: np.ndarray, mean: np.ndarray, within: float) -> tuple[float, float, float]:
    """The maximal run of consecutive grid points holding the best, all within ``within``."""
    best = int(np.argmax(mean))
    good = mean >= (1 - within) * mean[best]
    segments = np.split(np.arange(len(lrs)), np.flatnonzero(np.diff(good.astype(int))) + 1)
    seg = next(s for s in segments if best in s)
    return lrs[seg[0]], lrs[seg[-1]], float(np.log10(lrs[seg[-1]] / lrs[seg[0]]))


@pytest.mark.slow
def test_good_region_width_matches_direct_computation(ci):
    table = ci.meta["sensitivity"].set_index("optimizer")
    step = np.log10(ls.CI_LRS[1] / ls.CI_LRS[0])
    for name, scores in _by_optimizer(ci).items():
        lo, hi, width = _good_width(scores.index.to_numpy(), scores.mean(axis=1).to_numpy(), 0.05)
        row = table.loc[name]
        assert (row["good_lo_lr"], row["good_hi_lr"]) == pytest.approx((lo, hi)), name
        assert row["good_width_decades"] == pytest.approx(width, abs=1e-9)
        assert width / step == pytest.approx(round(width / step), abs=1e-6)  # whole grid steps
        assert width >= step  # more than one good learning rate on this problem


@pytest.mark.slow
def test_outputs_written(ci):
    folder = ci.folder
    for stem in ("sensitivity", "claims", "divergence"):
        for ext in ("md", "tex", "csv"):
            assert (folder / f"{stem}.{ext}").is_file()
    assert "\\toprule" in (folder / "sensitivity.tex").read_text()
    assert (folder / "sensitivity.png").stat().st_size > 10_000
    curves = pd.read_csv(folder / "curves.csv")
    assert sorted(curves["epoch"].unique()) == [1, 5, 10, 15, 20]
    runs = pd.read_csv(folder / "runs.csv")
    assert {"score", "min_train_loss", "final_train_loss", "status", "diverged_at"} <= set(runs)
    low, final = runs["min_train_loss"], runs["final_train_loss"]
    finite = ci.curves.groupby("run_id")["train_loss"].apply(lambda loss: loss.notna().any())
    np.testing.assert_array_equal(low.isna(), ~runs["run_id"].map(finite))  # no finite epoch
    assert (low[final.notna()] <= final[final.notna()]).all()
    assert "| sgd |" in cli.summary(ls.NAME, ls, ls.ci_config(), ci)


@pytest.mark.slow
def test_expected_numbers_hold_on_this_run(ci):
    spec = json.loads(EXPECTED.read_text())
    table = check.evaluate(ci.folder, spec)
    assert len(table) >= 6
    assert table["ok"].all(), table[~table["ok"]].to_string()


@pytest.mark.slow
def test_claims_reach_their_declared_verdicts_on_the_ci_run(ci):
    verdicts = check.claim_verdicts(ls.NAME, ls, ci.folder)
    assert len(verdicts) == len(ls.CLAIMS) and verdicts["ok"].all(), verdicts
    assert "## The claims (" in (ci.folder / "README.md").read_text()
