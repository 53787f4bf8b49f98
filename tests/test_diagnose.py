"""Run status rules on synthetic loss curves built here, and epochs to a target."""

from __future__ import annotations

import numpy as np
import pytest

from lrbench import diagnose

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
