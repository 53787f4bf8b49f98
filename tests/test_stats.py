"""stats: each statistic against an independent computation (brute force, a closed form,
scipy called directly, a hand-made table)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from lrbench import diagnose, stats
from lrbench.errors import ConfigError

small = st.lists(st.integers(0, 4).map(float), min_size=1, max_size=5)


@settings(max_examples=60, deadline=None)
@given(values=small, k=st.integers(1, 4))
def test_expected_max_is_the_mean_best_of_every_draw_of_k(values, k):
    """Every ordered draw of k grid points with replacement is equally likely."""
    draws = [max(d) for d in itertools.product(values, repeat=k)]
    assert stats.expected_max(values, k) == pytest.approx(np.mean(draws), abs=1e-12)


def test_expected_max_goes_from_the_mean_to_the_best():
    v = [0.2, 0.9, 0.5, 0.7]
    assert stats.expected_max(v, 1) == pytest.approx(np.mean(v))
    assert stats.expected_max(v, 500) == pytest.approx(0.9)
    # two draws from {a < b}: max is b unless both draw a (probability 1/4)
    assert stats.expected_max([1.0, 3.0], 2) == pytest.approx(0.25 * 1 + 0.75 * 3)
    with pytest.raises(ConfigError, match="k"):
        stats.expected_max(v, 0)
    with pytest.raises(ConfigError, match="finite"):
        stats.expected_max([0.1, np.nan], 2)


@settings(max_examples=60, deadline=None)
@given(a=small, b=small)
def test_probability_of_improvement_counts_pairs(a, b):
    wins = [1.0 if x > y else 0.5 if x == y else 0.0 for x in a for y in b]
    got = stats.probability_of_improvement(a, b, resamples=200)
    assert got.value == pytest.approx(np.mean(wins))
    if len(a) > 1 and len(b) > 1:
        u = sps.mannwhitneyu(a, b).statistic / (len(a) * len(b))
        assert got.value == pytest.approx(u)
        assert got.low <= got.value + 1e-12 and got.value - 1e-12 <= got.high


def test_probability_of_improvement_over_tasks_is_the_mean_of_tasks():
    rng = np.random.default_rng(3)
    a = [rng.normal(size=5), rng.normal(size=6)]
    b = [rng.normal(size=4), rng.normal(size=6) + 1]
    pairs = zip(a, b, strict=True)
    want = np.mean([sps.mannwhitneyu(x, y).statistic / (len(x) * len(y)) for x, y in pairs])
    assert stats.probability_of_improvement(a, b).value == pytest.approx(want)


def test_a_failed_run_scored_minus_inf_loses_to_every_finite_run():
    a, b = [0.5, -np.inf, 0.7], [0.6, 0.6]
    finite = stats.probability_of_improvement([0.5, -1e9, 0.7], b)
    got = stats.probability_of_improvement(a, b)
    assert got.value == pytest.approx(1 / 3) and got == finite  # ranks: the same resamples
    with pytest.raises(ConfigError, match="NaN"):
        stats.probability_of_improvement([0.5, np.nan], b)


def test_paired_resampling_is_scipys_paired_bootstrap():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=8), rng.normal(size=8)
    got = stats.probability_of_improvement(a, b, paired=True, resamples=999)
    res = sps.bootstrap(
        (a, b), lambda x, y: np.mean(x[:, None] > y[None, :]), vectorized=False, paired=True,
        n_resamples=999, method="percentile", rng=np.random.default_rng(stats.SEED),
    )  # fmt: skip
    assert (got.low, got.high) == pytest.approx(tuple(res.confidence_interval))


def test_mean_and_iqm_intervals_are_scipys_bootstrap():
    x = np.random.default_rng(2).normal(size=12)
    for ours, fn in ((stats.mean_ci, np.mean), (stats.iqm_ci, lambda v: sps.trim_mean(v, 0.25))):
        got = ours(x, resamples=999)
        res = sps.bootstrap((x,), fn, vectorized=False, n_resamples=999, method="percentile",
                            rng=np.random.default_rng(stats.SEED))  # fmt: skip
        assert got.value == pytest.approx(fn(x))
        assert (got.low, got.high) == pytest.approx(tuple(res.confidence_interval))


def test_iqm_is_the_mean_of_the_middle_half():
    x = np.array([9.0, 1, 5, 100, 3, 4, 2, -50])  # sorted: -50 1 2 3 4 5 9 100
    assert stats.iqm(x) == pytest.approx(np.mean([2, 3, 4, 5]))


def test_the_mean_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(11)
    hits = [
        lo <= 1.0 <= hi
        for _, lo, hi in (stats.mean_ci(rng.normal(1.0, 2.0, 30), resamples=1000, seed=i)
                          for i in range(300))
    ]  # fmt: skip
    assert 0.88 <= np.mean(hits) <= 0.99


def test_a_stratified_interval_leaves_out_the_spread_between_strata():
    """Two tasks far apart: resampling within each keeps half the runs on each side, so the
    interval is the within-task noise only (an unstratified one mixes in the tasks' gap)."""
    rng = np.random.default_rng(4)
    t1, t2 = rng.normal(0, 0.1, 10), rng.normal(10, 0.1, 10)
    strat = stats.mean_ci([t1, t2])
    pooled = stats.mean_ci(np.concatenate([t1, t2]))
    assert strat.value == pytest.approx(pooled.value)
    assert strat.high - strat.low < 0.2 < pooled.high - pooled.low
    se = np.sqrt((t1.var(ddof=1) + t2.var(ddof=1)) / 10) / 2  # the stratified mean's error
    assert strat.high - strat.low == pytest.approx(2 * 1.96 * se, rel=0.3)


def test_too_few_values_give_no_interval():
    got = stats.mean_ci([0.3])
    assert got.value == 0.3 and np.isnan(got.low) and np.isnan(got.high)
    assert stats.mean_ci([0.3, 0.3, 0.3]) == (0.3, 0.3, 0.3)


def _times() -> pd.DataFrame:
    """Three problems, three configs; times by hand (NaN: never reached the target)."""
    return pd.DataFrame(
        [("p1", "A", 10), ("p1", "B", 20), ("p1", "C", 50),
         ("p2", "A", 30), ("p2", "B", 10), ("p2", "C", np.nan),
         ("p3", "A", np.nan), ("p3", "B", np.nan), ("p3", "C", np.nan)],
        columns=["problem", "config", "time"],
    )  # fmt: skip


def test_performance_profile_of_a_hand_made_table():
    ratios = stats.performance_ratios(_times())
    assert ratios["ratio"].tolist() == [1, 2, 5, 3, 1, np.inf, np.inf, np.inf, np.inf]
    prof = stats.performance_profile(ratios).set_index(["config", "tau"])["rho"]
    # A: ratios 1, 3, inf; B: 2, 1, inf; C: 5, inf, inf (p3: nobody solved it)
    assert prof.loc[("A", 1.0)] == pytest.approx(1 / 3)
    assert prof.loc[("A", 3.0)] == pytest.approx(2 / 3)
    assert prof.loc[("B", 1.0)] == pytest.approx(1 / 3) and prof.loc[("B", 2.0)] == 2 / 3
    assert prof.loc[("C", 4.0)] == 0.0
    area = stats.profile_area(ratios)
    # A: ρ = 1/3 on [1, 3), 2/3 on [3, 4] -> (2/3 + 2/3) / 3; B: 1/3 on [1, 2), 2/3 on [2, 4]
    assert area.to_dict() == pytest.approx({"A": 4 / 9, "B": 5 / 9, "C": 0.0})


def test_profile_area_is_the_integral_of_the_profile():
    rng = np.random.default_rng(7)
    times = pd.DataFrame(
        [(p, c, rng.choice([rng.uniform(1, 10), np.nan], p=[0.8, 0.2]))
         for p in range(12) for c in "ABCD"], columns=["problem", "config", "time"],
    )  # fmt: skip
    ratios = stats.performance_ratios(times)
    grid = np.linspace(1, 4, 300_001)
    for config, frame in ratios.groupby("config"):
        rho = (frame["ratio"].to_numpy()[None, :] <= grid[:, None]).mean(axis=1)
        integral = np.sum((rho[1:] + rho[:-1]) / 2 * np.diff(grid)) / 3
        assert stats.profile_area(ratios)[config] == pytest.approx(integral, abs=1e-4)


def test_performance_ratios_refuse_bad_times():
    with pytest.raises(ConfigError, match="positive"):
        stats.performance_ratios(_times().assign(time=0.0))
    with pytest.raises(ConfigError, match="one time"):
        stats.performance_ratios(pd.concat([_times(), _times()]))


def _runs() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [
        {"run_id": f"{o}{s}{lr}{seed}", "optimizer": o, "schedule": s, "lr": lr, "seed": seed,
         "final_test_acc": float(np.clip(0.9 - 0.2 * abs(np.log10(lr) + 2 + (o == "adam"))
                                         + rng.normal(0, 0.02), 0, 1)),
         "status": "converged"}
        for o in ("sgd", "adam") for s in ("constant", "cosine")
        for lr in (1.0, 0.1, 0.01, 0.001, 1e-4) for seed in range(4)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_tuning_sensitivity_is_good_region_plus_expected_best():
    runs = _runs()
    table = stats.tuning_sensitivity(runs, within=0.1, ks=(1, 3))
    region = diagnose.good_region(runs, 0.1, by=("optimizer", "schedule"))
    pd.testing.assert_frame_equal(table[region.columns], region)
    for _, row in table.iterrows():
        v = runs.query(f"optimizer == '{row['optimizer']}' and schedule == '{row['schedule']}'")
        v = v["final_test_acc"].to_numpy()
        assert row["evp_1"] == pytest.approx(v.mean())
        draws = np.sort(v)  # P(max of 3 <= v_(i)) = (i/n)^3
        cdf = (np.arange(1, len(v) + 1) / len(v)) ** 3
        assert row["evp_3"] == pytest.approx(np.sum(draws * np.diff(np.r_[0, cdf])))


def test_tuning_sensitivity_scores_failed_runs_as_told():
    runs = _runs()
    runs.loc[0, "final_test_acc"] = np.nan
    with pytest.raises(ConfigError, match="failed"):
        stats.tuning_sensitivity(runs)
    table = stats.tuning_sensitivity(runs, failed=0.0, ks=(1,))
    group = runs[(runs["optimizer"] == "sgd") & (runs["schedule"] == "constant")]
    assert table.loc[0, "evp_1"] == pytest.approx(group["final_test_acc"].fillna(0).mean())


def test_compare_pairs_by_seed_and_counts_a_failed_run_as_the_worst():
    runs = _runs().query("schedule == 'constant'")
    runs.loc[runs.index[0], "final_test_acc"] = np.nan  # sgd, lr 1, seed 0: diverged
    got = stats.compare(runs, "optimizer=sgd", {"optimizer": "adam"}, metric="test_acc")
    assert got["lr"].tolist() == [1.0, 0.1, 0.01, 0.001, 1e-4]
    assert set(got["pairing"]) == {"paired by seed (4 seeds)"}
    for _, row in got.iterrows():
        a = runs[(runs["optimizer"] == "sgd") & (runs["lr"] == row["lr"])]
        b = runs[(runs["optimizer"] == "adam") & (runs["lr"] == row["lr"])]
        a = a["final_test_acc"].fillna(-1).to_numpy()
        want = np.mean([1.0 if x > y else 0.5 if x == y else 0 for x in a for y in b[
            "final_test_acc"]])  # fmt: skip
        assert row["p_a_better"] == pytest.approx(want)
        assert row["low"] <= row["p_a_better"] <= row["high"]
    lower = stats.compare(runs, "optimizer=sgd", "optimizer=adam", higher_is_better=False)
    finite = got["lr"] != 1.0  # lr 1 has a failed run: the worst either way
    np.testing.assert_allclose(lower["p_a_better"][finite], 1 - got["p_a_better"][finite])


def test_compare_without_shared_seeds_is_unpaired():
    runs = _runs().query("schedule == 'constant'")
    runs = runs.assign(seed=np.where(runs["optimizer"] == "adam", runs["seed"] + 10, runs["seed"]))
    got = stats.compare(runs, "optimizer=sgd", "optimizer=adam")
    assert set(got["pairing"]) == {"unpaired (all pairs of runs)"}
    both = stats.compare(_runs(), "optimizer=sgd", "optimizer=adam")  # two runs per seed
    assert set(both["pairing"]) == {"unpaired (all pairs of runs)"} and both["n_a"].eq(8).all()


@pytest.mark.parametrize(
    ("a", "b", "kw", "field", "words"),
    [("optimiser=sgd", "optimizer=adam", {}, "a", "unknown column 'optimiser'"),
     ("optimizer=sgd", "optimizer=lion", {}, "b", "no run matches optimizer=lion"),
     ("optimizer", "optimizer=adam", {}, "a", "column=value"),
     ("optimizer=sgd", "optimizer=adam", {"metric": "accuracy"}, "metric", "unknown metric"),
     ("optimizer=sgd", "optimizer=adam", {"by": "rate"}, "by", "unknown column 'rate'")],
)  # fmt: skip
def test_compare_refuses_bad_selectors_naming_the_field(a, b, kw, field, words):
    with pytest.raises(ConfigError, match=words) as err:
        stats.compare(_runs(), a, b, **kw)
    assert err.value.field == field


def test_a_diverged_run_counts_as_the_worst_whatever_its_last_numbers():
    runs = _runs().query("schedule == 'constant' and lr == 0.01")
    runs.loc[runs.index[0], "status"] = "diverged"  # sgd, seed 0; its accuracy stays 0.9
    got = stats.compare(runs, "optimizer=sgd", "optimizer=adam")
    scored = runs.assign(final_test_acc=runs["final_test_acc"].mask(runs["status"] != "converged"))
    want = stats.compare(scored, "optimizer=sgd", "optimizer=adam")
    pd.testing.assert_frame_equal(got, want)


def _cli(tmp_path, *args):
    import contextlib
    import io

    from lrbench import cli

    _runs().to_csv(tmp_path / "runs.csv", index=False)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(["compare", str(tmp_path), *args])
    return rc, out.getvalue(), err.getvalue()


def test_cli_compare_prints_a_row_per_lr_and_the_pairing(tmp_path):
    rc, out, err = _cli(tmp_path, "--a", "optimizer=adam,schedule=cosine", "--b",
                        "optimizer=sgd,schedule=cosine", "--metric", "test_acc")  # fmt: skip
    assert rc == 0 and not err
    want = stats.compare(_runs(), "optimizer=adam,schedule=cosine", "optimizer=sgd,schedule=cosine")
    rows = [line for line in out.splitlines() if line.startswith("| 0.01 ")]
    row = want[want["lr"] == 0.01].iloc[0]
    cell = f"{row['p_a_better']:.3f} [{row['low']:.3f}, {row['high']:.3f}]"
    assert rows == [f"| 0.01 | 4 | 4 | {cell} | paired by seed (4 seeds) |"]
    assert "higher final_test_acc" in out and out.count("paired by seed") == 5


@pytest.mark.parametrize(
    ("args", "words"),
    [(["--a", "optimizer=lion", "--b", "optimizer=sgd"], "--a: no run matches optimizer=lion"),
     (["--a", "optimizer=adam", "--b", "opt=sgd"], "--b: unknown column 'opt'"),
     (["--a", "optimizer=adam", "--b", "optimizer=sgd", "--metric", "x"], "--metric: unknown"),
     (["--a", "optimizer=adam", "--b", "optimizer=sgd", "--by", "x"], "--by: unknown column"),
     (["--a", "adam", "--b", "optimizer=sgd"], "--a: 'adam' must look like column=value")],
)  # fmt: skip
def test_cli_compare_refuses_a_bad_flag_in_one_line(tmp_path, args, words):
    rc, out, err = _cli(tmp_path, *args)
    assert rc == 2 and not out
    assert err.startswith(f"lrbench: error: {words}") and err.count("\n") == 1


def test_cli_compare_refuses_a_missing_results_folder(tmp_path):
    from lrbench import cli

    assert cli.main(["compare", str(tmp_path / "none"), "--a", "lr=1", "--b", "lr=1"]) == 2
