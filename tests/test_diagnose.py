"""Run status rules on synthetic loss curves built here and on hand-labelled runs of four data
sets, and epochs to a target."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lrbench import diagnose, results

E = 100
t = np.arange(E)
rng = np.random.default_rng(0)

CURVES = {
    # fast exponential decay to a floor, small noise: levelled off
    "converged": (0.1 + 2.0 * np.exp(-t / 5) + 0.002 * rng.standard_normal(E), 2.2, 0),
    # a straight, steady decline that has not finished
    "slow": (2.0 - 0.012 * t, 2.1, 0),
    # barely moved from the initial loss
    "slow_stalled": (2.1 - 1e-4 * t, 2.1, 0),
    # reaches 0.5 early, then bounces between 0.6 and 1.2
    "oscillating": (
        np.r_[np.linspace(2, 0.5, 20), 0.9 + 0.3 * np.sign(np.sin(t[20:] * 2.1))],
        2.1,
        0,
    ),
    # non-finite: frozen by the engine
    "diverged_nan": (np.r_[np.linspace(2, 5, 10), np.full(E - 10, np.nan)], 2.0, 11),
    # finite but ends far above where it started
    "diverged_high": (np.linspace(2, 9, E), 2.0, 0),
}


@pytest.mark.parametrize("case", list(CURVES))
def test_status(case):
    loss, init, diverged_at = CURVES[case]
    assert diagnose.status(loss, init, diverged_at) == case.split("_")[0]


def test_borderlines():
    # noise around a floor rises half the time but hovers near the best: not oscillating
    noisy = 0.3 + 0.02 * np.abs(rng.standard_normal(E))
    noisy[:10] = np.linspace(2, 0.35, 10)
    assert diagnose.status(noisy, 2.2) == "converged"
    # exactly at the divergence factor is not yet diverged; just above is
    flat = np.full(E, 4.0)
    assert diagnose.status(flat, 2.0) != "diverged"
    assert diagnose.status(flat * 1.001, 2.0) == "diverged"


CASES = Path(__file__).parent / "data" / "status_curves"

# Runs whose per-epoch training loss was plotted (linear and log scale) and labelled by eye
# before the rule was written; the curves and each run's origin are in data/status_curves.*
# (seed 0 unless named). The label reads the curve on the scale of its initial loss L0.
HAND_LABELS = {
    # blobs, SGD, 200 epochs, batch 32 (results/blobs_lr)
    "blobs_sgd_1": ("oscillating", "bounces 0.75-1.24 around 0.93 to the end, best 0.71; lr 0.1 reaches 0.39"),
    "blobs_sgd_0.1": ("converged", "flat at 0.39 over the last 100 epochs, jitter of ±0.005"),
    "blobs_sgd_1e-4": ("converged", "levelled at 0.79: -0.003 over the last 10 epochs after a drop of 2.7"),
    "blobs_sgd_1e-6": ("slow", "a straight line down, 3.53 to 3.08: 13% of L0 learned"),
    # digits, MLP 64, batch 128, 40 epochs (results/schedule_tour; lr 1 and 3 trained here)
    "digits_sgd_0.01": ("slow", "still falls 0.505 -> 0.406 over the last 10 epochs"),
    "digits_sgd_1": ("converged", "0.0025 at the end: the last 10 epochs gain 0.04% of L0"),
    "digits_sgd_3": ("converged", "a spike to 2e4 by epoch 9, back to 0.025 by epoch 20, flat since"),
    "digits_rmsprop_0.01": ("converged", "1.7e-5 at the end, flat on the scale of L0 = 2.7"),
    "digits_momentum_1": ("diverged", "rises without end to 9e14"),
    "digits_momentum_3": ("diverged", "non-finite from epoch 7"),
    "digits_rmsprop_3": ("oscillating", "jumps between 0 and 800 (L0 2.7) all through the second half"),
    # drug trial, deeplizard's model, Keras Adam, batch 10, 30 epochs (results/drug_trial)
    "drug_trial_adam_0.1": ("converged", "flat at 0.235 from epoch 10, jitter ±0.015"),
    "drug_trial_adam_0.01": ("converged", "flat at 0.23 from epoch 15, jitter ±0.01"),
    "drug_trial_adam_1e-4": ("slow", "still falls 0.361 -> 0.327 over the last 10 epochs"),
    "drug_trial_adam_1e-5": ("slow", "a straight line down, 0.90 to 0.77"),
    # iris, the blobs_lr sweep (MLP 50, SGD, 200 epochs, batch 32) on iris
    "iris_sgd_1_he_output_seed2": ("converged", "the issue's run (acc 0.933): 0.005-0.02 at the end, L0 1.5"),
    "iris_sgd_1": ("converged", "bounces under 0.1 mid-run, 0.005-0.02 over the last 10 epochs"),
    "iris_sgd_0.3": ("converged", "0.02-0.034 over the last 10 epochs, L0 1.31"),
    "iris_sgd_0.1": ("converged", "flat at 0.041 over the last 10 epochs"),
    "iris_sgd_3": ("converged", "noisy to epoch 150, then flat at 0.0012"),
    "iris_sgd_10": ("oscillating", "a blow-up to 5e19 it came back from, then 0.56-1.43 to the end"),
    "iris_sgd_1e-4": ("slow", "a steady decline, 1.31 to 0.81, still falling"),
    "iris_adam_1": ("converged", "wild to epoch 60 (up to 12), flat at 0.019 over the last 10"),
    "iris_adam_0.01": ("converged", "0.006-0.010 over the last 10 epochs"),
}  # fmt: skip


def _cases():
    curves = np.load(CASES.with_suffix(".npz"))
    meta = json.loads(CASES.with_suffix(".json").read_text())
    return {k: (curves[k], meta[k]["initial_loss"], meta[k]["diverged_at"]) for k in HAND_LABELS}


@pytest.mark.parametrize("case", list(HAND_LABELS))
def test_hand_labelled_runs(case):
    """Four data sets, losses from 1e-5 to 1e4: the status reads each as labelled by eye
    (the rule before, relative to each run's own best and last losses, called 12 of these
    24 wrong: every converged iris run oscillating or slow, the small-loss digits
    and the noisy drug-trial runs slow)."""
    loss, initial, diverged_at = _cases()[case]
    assert diagnose.status(loss, initial, diverged_at) == HAND_LABELS[case][0]


def test_labels_cover_four_data_sets_and_every_status():
    sets = {k.split("_")[0] for k in HAND_LABELS}
    assert sets == {"blobs", "digits", "drug", "iris"}
    assert {label for label, _ in HAND_LABELS.values()} == set(diagnose.STATUSES)


def test_small_loss_noise_is_no_oscillation():
    """A run that learned all but 1% of its initial loss and jitters by a factor of 3 around
    that small loss (iris at lr 1) converged; the same jitter 10% of L0 above its best
    oscillates."""
    jitter = np.where(np.arange(E) % 2, 3.0, 1.0)
    small = np.r_[np.linspace(1.3, 0.01, 20), 0.005 * jitter[20:]]
    assert diagnose.status(small, 1.3) == "converged"
    large = np.r_[np.linspace(1.3, 0.1, 20), 0.1 * jitter[20:]]
    assert diagnose.status(large, 1.3) == "oscillating"


def test_a_tail_that_still_halves_on_a_tiny_loss_converged():
    """Halving every 10 epochs at 1e-4 of L0 (digits at lr 1) is no longer learning that
    matters; the same relative pace at 30% of L0 is."""
    t_ = np.arange(E)
    assert diagnose.status(2.0 * np.exp(-t_ / 10), 2.0) == "converged"
    assert diagnose.status(2.0 * (0.3 + 0.5 * np.exp(-t_ / 200)), 2.0) == "slow"


def test_epochs_to_target():
    acc = np.array([[0.1, 0.5, 0.8, 0.9], [0.1, 0.2, 0.3, 0.4], [np.nan, np.nan, np.nan, np.nan]])
    np.testing.assert_array_equal(diagnose.epochs_to_target(acc, 0.8), [3, np.nan, np.nan])
    assert diagnose.epochs_to_target(acc[0], 0.5) == 2


def test_good_region_width():
    import pandas as pd

    lrs = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    acc = {1e-5: 0.3, 1e-4: 0.85, 1e-3: 0.9, 1e-2: 0.88, 1e-1: 0.5, 1.0: 0.87}
    runs = pd.DataFrame(
        [
            {"optimizer": "sgd", "lr": lr, "seed": s, "final_test_acc": acc[lr] + d}
            for lr in lrs
            for s, d in ((0, 0.01), (1, -0.01))
        ]
    )
    region = diagnose.good_region(runs, within=0.1).iloc[0]
    assert region["best_lr"] == 1e-3 and region["best"] == pytest.approx(0.9)
    # 0.85 and 0.88 are within 10% of 0.9; 1.0 is too, but not contiguous (0.5 in between)
    assert region["lo_lr"] == 1e-4 and region["hi_lr"] == 1e-2
    assert region["width_decades"] == pytest.approx(2.0)
    assert region["best_std"] == pytest.approx(np.std([0.91, 0.89], ddof=1))


# One divergence rule: the loss ends non-finite or beyond DIVERGE_FACTOR × its initial value;
# ``diverged_at`` is the first epoch of that final excursion.


def test_diverged_at_is_the_start_of_the_final_excursion():
    assert diagnose.DIVERGE_FACTOR == 2.0
    # beyond 2 from epoch 5 on (epoch 3 went beyond too, but came back)
    loss = np.array([1.0, 0.8, 2.5, 1.5, 2.1, 3.0, 10.0])
    assert diagnose.divergence_epoch(loss, 1.0) == 5
    assert diagnose.status(loss, 1.0) == "diverged"
    # a spike that comes back is no divergence
    assert diagnose.divergence_epoch(np.array([1.0, 3.0, 0.5, 0.4]), 1.0) == 0
    # non-finite: from its first non-finite epoch (the engine's NaN to the end), or earlier
    # where the loss was already beyond the multiple
    assert diagnose.divergence_epoch(np.array([1.0, 0.5, np.nan, np.nan]), 1.0) == 3
    assert diagnose.divergence_epoch(np.array([1.0, 2.5, np.inf, np.nan]), 1.0) == 2
    # the engine's non-finite epoch counts even where the curve hides it
    assert diagnose.status(np.array([1.0, 0.5, 0.4]), 1.0, diverged_at=3) == "diverged"
    for case, (curve, init, engine_at) in CURVES.items():
        at = diagnose.divergence_epoch(curve, init)
        assert (at > 0 or engine_at > 0) == case.startswith("diverged"), case


def test_build_sets_diverged_at_of_a_finite_blow_up():
    """Gradient descent on ½·λ(w − 1)² from w = 0 at η = 2.2/λ: w_t − 1 = (1 − ηλ)^t·(w_0 − 1),
    so epoch e (one full-batch step, recording the loss before it) has loss 1.2^(2(e−1))·L0,
    finite but beyond 2·L0 from the first e with 1.44^(e−1) > 2 on (closed form: e = 3);
    η = 0.5/λ converges. The diverged run has ``diverged_at`` 3 and no mean."""
    from lrbench import results, runner, tasks
    from lrbench.sweep import Sweep

    task = tasks.Quadratic(eigenvalues=(1.0,))
    sweep = Sweep(task=task, epochs=8, batch_size=1, lrs=(0.5, 2.2), seeds=(0,), dtype="float64")
    runs, history, _ = runner.train(sweep)
    assert (history.diverged_at == 0).all() and np.isfinite(history.train_loss).all()
    runs, _ = results.build(runs, history, target_acc=0.5)
    first = int(np.floor(np.log(2) / np.log(1.44))) + 2
    assert first == 3
    by_lr = runs.set_index("lr")
    assert by_lr.loc[2.2, "status"] == "diverged" and by_lr.loc[2.2, "diverged_at"] == first
    assert by_lr.loc[0.5, "status"] != "diverged" and pd.isna(by_lr.loc[0.5, "diverged_at"])


def test_aggregate_leaves_diverged_runs_out_of_the_means():
    runs = pd.DataFrame(
        {
            "optimizer": ["adam"] * 9,
            "lr": [1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 10.0, 10.0, 10.0],
            "seed": [0, 1, 2] * 3,
            "final_test_acc": [0.4, 0.8, 0.9, 0.7, 0.8, 0.9, 0.41, 0.3, np.nan],
            "status": ["diverged", "converged", "slow", *["converged"] * 3, *["diverged"] * 3],
        }
    )
    agg = results_aggregate(runs, ["lr"]).set_index("lr")
    assert agg.loc[1.0, "mean"] == pytest.approx(0.85) and agg.loc[1.0, "n"] == 2
    assert agg.loc[1.0, "std"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert agg.loc[1.0, "diverged"] == 1 and agg.loc[0.1, "diverged"] == 0
    assert agg.loc[0.1, "mean"] == pytest.approx(0.8) and agg.loc[0.1, "n"] == 3
    assert np.isnan(agg.loc[10.0, "mean"]) and agg.loc[10.0, "n"] == 0
    assert agg.loc[10.0, "diverged"] == 3
    # without a status column nothing is left out
    plain = results_aggregate(runs.drop(columns="status"), ["lr"]).set_index("lr")
    assert plain.loc[1.0, "mean"] == pytest.approx(0.7) and plain.loc[1.0, "n"] == 3

    from lrbench import report

    table = report.mean_std_table(runs)
    assert table.loc["1", "final_test_acc"].startswith("0.850 ± 0.071")
    assert "1 diverged" in table.loc["1", "final_test_acc"]
    assert table.loc["10", "final_test_acc"] == "diverged (3)"
    assert table.loc["0.1", "final_test_acc"] == "0.800 ± 0.100"


def results_aggregate(runs, by):
    from lrbench import results

    return results.aggregate(runs, by)


def test_first_true_is_the_first_hit_per_row():
    mask = np.array([[False, True, True], [False, False, False], [True, False, True]])
    np.testing.assert_array_equal(diagnose.first_true(mask), [2, np.nan, 1])
    np.testing.assert_array_equal(diagnose.first_true(mask, never=0), [2, 0, 1])
    assert diagnose.first_true([False, False, True], never=0) == 3


def test_out_of_bounds_flags_non_finite_and_large_values():
    values = np.array([0.0, -1e6, 1e6 + 1, np.nan, -np.inf, 3.0])
    expected = [False, False, True, True, True, False]
    np.testing.assert_array_equal(diagnose.out_of_bounds(values, 1e6), expected)


def test_summarize_aggregates_each_group_in_first_seen_order():
    table = pd.DataFrame(
        {
            "lr": [0.1, 0.1, 0.1, 0.01, 0.01],
            "acc": [0.5, 0.7, 0.9, 0.2, np.nan],
            "status": ["slow", "slow", "converged", "slow", "slow"],
        }
    )
    spec = {
        "acc_mean": ("acc", "mean"),
        "acc_std0": ("acc", "std0"),
        "reached": ("acc", "reached"),
        "status": ("status", "majority"),
        "mode": ("status", "mode"),
        "first": ("acc", "first"),
        "n": ("acc", "size"),
        "slow": ("status", lambda v: int((v == "slow").sum())),
    }
    out = results.summarize(table, "lr", spec)
    assert list(out.index) == [0.1, 0.01]
    assert out.loc[0.1, "acc_mean"] == pytest.approx(0.7)
    assert out.loc[0.1, "acc_std0"] == pytest.approx(np.sqrt(((0.2**2) * 2) / 3))
    assert out.loc[0.01, "acc_std0"] == pytest.approx(0.0)
    assert list(out["reached"]) == ["3/3", "1/2"]
    assert list(out["status"]) == ["slow (2/3)", "slow"]
    assert list(out["mode"]) == ["slow", "slow"]
    assert list(out["n"]) == [3, 2] and list(out["slow"]) == [2, 2]
    assert out.loc[0.1, "first"] == 0.5


def test_per_epoch_is_a_run_by_epoch_table():
    curves = pd.DataFrame(
        {"run_id": ["b", "b", "a", "a"], "epoch": [1, 2, 1, 2], "lr": [1.0, 0.5, 2.0, 1.5]}
    )
    table = results.per_epoch(curves, "lr")
    assert list(table.columns) == [1, 2]
    np.testing.assert_array_equal(table.loc[["a", "b"]].to_numpy(), [[2.0, 1.5], [1.0, 0.5]])


# ---------------------------------------------------------------------------------------------
# Shape of a loss curve: rising share and roughness (schedule_tour, drug_trial)


def test_geometric_loss_is_perfectly_smooth():
    loss = 2.0 * 0.8 ** np.arange(30)
    assert diagnose.roughness(loss) == pytest.approx(0.0, abs=1e-12)  # a straight line in log
    assert diagnose.rising_share(loss) == 0.0


def test_zigzag_loss():
    loss = np.array([1.0, 2.0, 1.0, 2.0, 1.0, 2.0])
    assert diagnose.rising_share(loss) == pytest.approx(3 / 5)  # 3 rises out of 5 changes
    assert diagnose.roughness(loss) == pytest.approx(2 * np.log(2))  # |±log2 ∓ log2| = 2·log2


def test_curve_shape_matches_a_loop_rederivation():
    loss = np.exp(np.random.default_rng(0).normal(size=25).cumsum() * 0.1)
    ups = sum(loss[t] > loss[t - 1] for t in range(1, len(loss)))
    second = [abs(np.log(loss[t + 1]) - 2 * np.log(loss[t]) + np.log(loss[t - 1]))
              for t in range(1, len(loss) - 1)]  # fmt: skip
    assert diagnose.rising_share(loss) == pytest.approx(ups / (len(loss) - 1))
    assert diagnose.roughness(loss) == pytest.approx(sum(second) / len(second))


def test_rising_share_reads_the_finite_epochs_and_roughness_needs_every_one():
    assert diagnose.rising_share([3.0, 2.0, 2.5, 1.0, 1.2]) == pytest.approx(0.5)
    assert diagnose.rising_share([1.0, 0.5, np.nan, np.nan]) == 0.0  # a diverged tail left out
    assert np.isnan(diagnose.rising_share([1.0]))
    assert np.isnan(diagnose.roughness([1.0, 0.5, np.inf, np.nan]))
    assert np.isnan(diagnose.roughness([1.0, 0.0, 1.0]))  # no log of 0
    assert np.isnan(diagnose.roughness([1.0, 0.5]))


def test_step_runs_one_divergence_rule_for_step_traces():
    """Per-epoch losses, escape and divergence epochs and statuses of three hand-made runs
    (3 updates per epoch, L0 = 1): one that learns, one whose weights escape at update 5, one
    whose loss ends beyond 2·L0 without escaping; the third counts only its first 2 epochs."""
    from lrbench.diagnose import step_runs

    loss = np.array([[0.9, 0.8, 0.7, 0.5, 0.4, 0.3, 0.2, 0.2, 0.2],
                     [0.9, 1.0, 1.5, 3.0, 9.0, 20., 50., 90., 99.],
                     [1.0, 1.5, 2.5, 3.0, 4.0, 5.0, 0.1, 0.1, 0.1]])  # fmt: skip
    bad = np.zeros_like(loss, bool)
    bad[1, 4] = True  # escaped at update 5: epoch 2; later updates count as bad too
    per_epoch, table = step_runs(loss, bad, 3, 1.0, steps=[9, 9, 6])
    np.testing.assert_array_equal(per_epoch[0], [0.7, 0.3, 0.2])
    np.testing.assert_array_equal(per_epoch[1], [1.5, np.nan, np.nan])
    assert table["escaped_at"].tolist() == [pd.NA, 5, pd.NA]
    assert table["diverged_at"].tolist() == [pd.NA, 2, 1]  # run 3: beyond 2·L0 from epoch 1
    assert table["status"].tolist() == ["slow", "diverged", "diverged"]  # 1: still improving


def test_stability_boundary_per_group():
    """The largest lr none of whose runs is unstable and the smallest all of whose runs are."""
    from lrbench.diagnose import stability_boundary

    runs = pd.DataFrame({"rule": list("aaaaabb"), "lr": [1, 1, 0.1, 0.1, 0.01, 1, 0.1],
                         "bad": [True, True, True, False, False, True, True]})  # fmt: skip
    table = stability_boundary(runs, "bad", ("rule",))
    assert table.loc["a"].tolist() == [0.01, 1.0]  # 0.1: one of two seeds unstable
    assert np.isnan(table.loc["b", "largest_stable_lr"]) and table.loc["b"].iloc[1] == 0.1
    whole = stability_boundary(runs, runs["bad"].to_numpy())
    assert whole.iloc[0].tolist() == [0.01, 1.0]


def test_deepobs_score_is_chance_for_diverged_and_missing_runs():
    runs = pd.DataFrame(
        {
            "final_test_acc": [0.9, 0.8, np.nan, 0.7],
            "status": ["converged", "diverged", "oscillating", "levelled_off"],
        }
    )
    got = diagnose.deepobs_score(runs, pd.Series([0.1, 0.1, 0.5, 0.5]))
    assert got.tolist() == [0.9, 0.1, 0.5, 0.7]  # diverged: chance; NaN: chance; else the acc
    assert diagnose.deepobs_score(runs, 0.25).tolist() == [0.9, 0.25, 0.25, 0.7]
