"""Edge of stability: the thresholds, the per-run measures on made-up step records whose
answers are known by hand, and the claims on a made-up runs table. The CI variant's verdicts
and recorded numbers are checked by `lrbench check edge_of_stability` (.ci/run runs it)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from experiments import edge_of_stability as e
from lrbench import claims
from lrbench.errors import ConfigError


def test_thresholds_are_the_papers():
    assert e.threshold_factor("gd") == 2.0
    assert e.threshold_factor("momentum") == pytest.approx(3.8)  # (2 + 2·0.9)
    assert e.threshold_factor("adam") == pytest.approx(38.0)  # (2 + 2·0.9) / 0.1


def test_grids_share_thresholds_and_start_above_the_initial_sharpness():
    config = e.get_config()
    grids = dict(e.study(config).sweeps())
    assert list(grids) == ["gd", "momentum", "adam"]
    gd, mom = (np.array(grids[g].lrs) for g in ("gd", "momentum"))
    np.testing.assert_allclose(2.0 / gd, e.GD_THRESHOLDS)
    np.testing.assert_allclose(3.8 / mom, e.GD_THRESHOLDS)
    assert min(e.GD_THRESHOLDS) > 25.0  # λ₀ ≈ 25 (the docstring's measurement)
    assert config.batch_size == e.N_TRAIN and len(config.seeds) == 3
    assert grids["momentum"].epochs == grids["adam"].epochs == 2000 < config.epochs


def _records(total=100, every=10, threshold=20.0):
    """Sharpness probed every ``every`` steps rising linearly from 10 (by 9.5 over the first
    half), then alternating 21 / 19 (±5% of 2/η = 20); a loss that falls by 1% a step, with a
    rise every fourth second-half step."""
    steps = np.arange(1, total + 1)
    sharp = np.full(total, np.nan)
    probed = steps % every == 0
    rise = 10 + 9.5 * steps / (total / 2)
    late = np.where((steps // every) % 2 == 0, 21.0, 19.0)
    sharp[probed] = np.where(steps > total / 2, late, rise)[probed]
    loss = np.empty(total)
    value = 1.0
    for k in range(total):
        value *= 1.02 if (k >= total // 2 and k % 4 == 0) else 0.99
        loss[k] = value
    return sharp, loss


def test_run_measures_on_known_records():
    sharp, loss = _records()
    m = e.run_measures(sharp, loss, 20.0)
    assert m["initial_sharpness"] == pytest.approx(11.9)  # step 10: 10 + 9.5·10/50
    assert m["max_sharpness"] == 21.0
    assert m["gap_closed"] == pytest.approx((21 - 11.9) / (20 - 11.9))
    # step 40: 17.6 (88% of 20), step 50: 19.5 (97.5%): within 10% from step 50 on
    assert m["edge_step"] == 50 and m["deviation_after_edge"] == pytest.approx(0.05)
    assert (m["ratio_min"], m["ratio_max"]) == (0.95, 1.05)
    assert m["max_deviation"] == pytest.approx(0.05)
    # second-half probes: steps 60, 70, ..., 100 → 21, 19, 21, 19, 21
    assert m["ratio_mean"] == pytest.approx((3 * 21 + 2 * 19) / 5 / 20)
    # the loss after step 50 (index 49) to the end: 50 differences, rises at k = 52, 56, ...
    rises = sum(1 for k in range(50, 100) if k % 4 == 0)
    assert m["loss_rise_share"] == pytest.approx(rises / 50)
    assert m["loss_ratio"] == pytest.approx(loss[-1] / loss[49])
    assert m["final_train_loss"] == loss[-1]


def test_a_monotone_loss_and_a_flat_sharpness_fail_their_claims():
    total = 100
    sharp = np.where(np.arange(1, total + 1) % 10 == 0, 5.0, np.nan)
    m = e.run_measures(sharp, 0.99 ** np.arange(1, total + 1), 20.0)
    assert m["loss_rise_share"] == 0.0 and m["gap_closed"] == 0.0
    assert m["max_deviation"] == pytest.approx(0.75)
    assert np.isnan(m["edge_step"]) and np.isnan(m["deviation_after_edge"])


def _runs(deviation=0.05, rise=0.2, gap=1.1):
    rows = []
    for grid in ("gd", "momentum", "adam"):
        for j, lr in enumerate((0.1, 0.05)):
            for seed in range(3):
                noise = 0.01 * (seed - 1)
                rows.append({"grid": grid, "lr": lr, "seed": seed,
                             "gap_closed": gap + j * 0.1 + noise,
                             "max_deviation": deviation + j * 0.02 + noise,
                             "loss_ratio": 0.5 + noise,
                             "loss_rise_share": rise + noise})  # fmt: skip
    return pd.DataFrame(rows)


def test_claims_read_the_worst_step_size():
    found = claims.evaluate(e.CLAIMS, {"runs": _runs()}, e.ARTICLE)
    assert found.loc["progressive_sharpening", "value"] == pytest.approx(1.1)  # lr 0.1: min
    assert found.loc["gd_at_edge", "value"] == pytest.approx(0.07)  # lr 0.05: max
    assert found.loc["adam_at_edge", "value"] == pytest.approx(0.07)
    assert found.loc["loss_falls_long_term", "value"] == pytest.approx(0.5)
    low, high = found.loc["gd_at_edge", ["low", "high"]]
    assert 0.06 <= low <= 0.07 <= high <= 0.08  # the seeds' bootstrap interval
    assert (found["held"] == "yes").all()
    assert "20: 0.05; 40: 0.07" in found.loc["gd_at_edge", "detail"]  # by 2/η


def test_claims_say_no_with_the_number():
    found = claims.evaluate(e.CLAIMS, {"runs": _runs(deviation=0.2, rise=0.01, gap=0.5)})
    assert found.loc["gd_at_edge", "held"] == "no"
    assert found.loc["gd_at_edge", "value"] == pytest.approx(0.22)
    assert found.loc["progressive_sharpening", "held"] == "no"
    assert found.loc["loss_not_monotone", "held"] == "yes"  # 0.00, 0.01, 0.02: mean 0.01
    runs = _runs()
    runs.loc[0, "max_deviation"] = np.nan  # a diverged run: not measured, never "yes"
    found = claims.evaluate(e.CLAIMS, {"runs": runs})
    assert found.loc["gd_at_edge", "held"] == "not measured"
    assert found.loc["momentum_at_edge", "held"] == "yes"


def test_claims_of_a_missing_grid_are_not_measured():
    runs = _runs()
    found = claims.evaluate(e.CLAIMS, {"runs": runs[runs["grid"] != "adam"]})
    assert found.loc["adam_at_edge", "held"] == "not measured"


def test_a_minibatch_sweep_is_refused():
    import dataclasses

    with pytest.raises(ConfigError, match="batch_size"):
        e.train(dataclasses.replace(e.ci_config(), batch_size=100))


def test_notes_name_when_each_step_size_arrived():
    edge = pd.DataFrame({"grid": ["gd", "gd"], "lr": [0.1, 0.05], "threshold": [20.0, 40.0],
                         "edge_step": [300.0, np.nan], "deviation_after_edge": [0.04, np.nan],
                         "max_sharpness": [21.0, 30.0], "max_deviation": [0.12, 0.3],
                         }).set_index(["grid", "lr"])  # fmt: skip
    text = e.notes(edge, e.ci_config())
    assert "threshold 20: step 300, then within ±4.0%" in text
    assert "threshold 40: not reached (at most 30)" in text
    assert "(1000 steps, second half from step 501)" in text
    assert "or never: gradient descent at threshold 40 (30.0%) —" in text
    assert "second half: gradient descent at threshold 20 (12.00%) —" in text
