"""The catapult experiment: its per-run measures on hand-made loss curves, its boundaries on a
hand-made phase table, and (slow) the CI-sized run end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from experiments import catapult


def test_phase_of_a_falling_curve_is_lazy():
    loss = 4.0 * 0.9 ** np.arange(1, 50)
    assert catapult.phase(loss, 4.0) == "lazy"
    assert catapult.monotone(loss, 4.0)
    assert catapult.peak_ratio(loss, 4.0) == pytest.approx(3.6 / 4.0)


def test_phase_of_a_spike_then_fall_is_catapult():
    # rises to 10x the initial loss at step 3, then falls below it
    loss = np.array([8.0, 20.0, 40.0, 12.0, 3.0, 1.0, 0.5])
    assert catapult.phase(loss, 4.0) == "catapult"
    assert not catapult.monotone(loss, 4.0)
    assert catapult.peak_ratio(loss, 4.0) == pytest.approx(10.0)


@pytest.mark.parametrize("loss", [[8.0, 20.0, np.inf, np.nan], [5.0, 6.0, 7.0], [3.0, 2.0, np.nan]])
def test_phase_of_a_blown_up_or_risen_curve_is_diverged(loss):
    assert catapult.phase(loss, 4.0) == "diverged"
    assert not catapult.monotone(loss, 4.0) or not np.all(np.isfinite(loss))


def test_peak_ratio_is_inf_once_not_finite():
    assert catapult.peak_ratio([1.0, np.inf], 1.0) == np.inf


def test_boundaries_read_per_seed():
    c = [0.5, 1.0, 1.5, 2.0, 3.0]
    table = pd.DataFrame({
        "seed": [0] * 5 + [1] * 5,
        "c": c + c,
        "phase": ["lazy", "lazy", "catapult", "diverged", "diverged",
                  "lazy", "catapult", "catapult", "catapult", "diverged"],
    })  # fmt: skip
    b = catapult.boundaries(table)
    assert b.loc[0].to_dict() == {"largest_lazy": 1.0, "smallest_catapult": 1.5,
                                  "largest_converged": 1.5, "smallest_diverged": 2.0}  # fmt: skip
    assert b.loc[1].to_dict() == {"largest_lazy": 0.5, "smallest_catapult": 1.0,
                                  "largest_converged": 2.0, "smallest_diverged": 3.0}  # fmt: skip
    m = catapult.over_seeds(b["smallest_diverged"])
    assert (m.value, m.low, m.high) == (2.5, 2.0, 3.0)


def test_boundary_of_a_seed_without_the_phase_is_not_measured():
    table = pd.DataFrame({"seed": [0, 0], "c": [0.5, 1.0], "phase": ["lazy", "lazy"]})
    b = catapult.boundaries(table)
    assert np.isnan(b.loc[0, "smallest_diverged"])
    assert np.isnan(catapult.over_seeds(b["smallest_diverged"]).value)


def test_grid_spans_half_to_twenty_in_eta_lambda0():
    c = np.asarray(catapult.get_config().lrs)
    assert 2 * c.min() == pytest.approx(0.5) and 2 * c.max() == pytest.approx(20.0)
    assert np.all(np.diff(np.log(c)) == pytest.approx(np.log(40) / 11))


@pytest.mark.slow
def test_ci_run_phases(tmp_path):
    result = catapult.run(catapult.ci_config(), tmp_path / "out", quiet=True)
    runs = result.runs
    assert set(runs["phase"]) == {"lazy", "catapult", "diverged"}
    # every run below 2/λ₀ is lazy, every run above the largest c diverged
    assert (runs.loc[runs["c"] < 1, "phase"] == "lazy").all()
    assert (runs.loc[runs["c"] > 4, "phase"] == "diverged").all()
    found = pd.read_csv(tmp_path / "out" / "claims.csv").set_index("claim")
    expected = {c.id: c.expected_ci or c.expected for c in catapult.CLAIMS}
    assert found["held"].to_dict() == expected
