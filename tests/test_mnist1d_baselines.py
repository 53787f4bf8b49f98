"""MNIST-1D baselines: the grid, the bootstrap interval, the best-lr measures on a made-up runs
table. The CI variant against results/expected/ is `lrbench check mnist1d_baselines` (.ci/run)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from experiments import mnist1d_baselines as m
from lrbench import claims


def test_grid_is_half_a_log2_step_apart_and_holds_the_papers_lr():
    steps = -np.diff(np.log2(sorted(m.LRS, reverse=True)))
    assert steps.max() <= 0.5 + 1e-12 and len(m.LRS) == 16
    assert m.PAPER_LR in m.LRS and max(m.LRS) == 0.125
    config = m.get_config()
    assert (config.epochs * 4000 // config.batch_size, len(config.seeds)) == (6000, 5)


def test_bootstrap_interval_matches_the_normal_interval_for_many_values():
    v = np.random.default_rng(0).normal(0.5, 0.1, 400)
    lo, hi = m.bootstrap_mean(v)
    half = 1.959964 * v.std(ddof=1) / np.sqrt(len(v))
    assert lo == pytest.approx(v.mean() - half, abs=0.15 * half)
    assert hi == pytest.approx(v.mean() + half, abs=0.15 * half)
    few = [0.30, 0.31, 0.33, 0.32, 0.34]
    lo, hi = m.bootstrap_mean(few)
    assert min(few) <= lo <= np.mean(few) <= hi <= max(few)
    assert m.bootstrap_mean([0.5, 0.5, 0.5]) == (0.5, 0.5)


def _runs():
    """Two models × three lrs × three seeds; the best lrs are 0.01 (logistic) and 0.03."""
    rows = []
    acc = {
        "logistic": {0.1: 0.25, 0.03: 0.30, 0.01: 0.33},
        "mlp": {0.1: 0.5, 0.03: 0.69, 0.01: 0.6},
    }
    for grid, by_lr in acc.items():
        for lr, a in by_lr.items():
            for seed, noise in enumerate((-0.01, 0.0, 0.01)):
                rows.append({"grid": grid, "lr": lr, "seed": seed, "final_test_acc": a + noise})
    return pd.DataFrame(rows)


def test_claims_read_the_best_lr():
    found = claims.evaluate(m.CLAIMS, {"runs": _runs()}, m.ARTICLE)
    assert found.loc["logistic_32", "value"] == pytest.approx(0.33)
    assert found.loc["mlp_68", "value"] == pytest.approx(0.69)
    assert found.loc["nonlinearity_separates", "value"] == pytest.approx(0.36)
    assert list(found["held"]) == ["yes", "yes", "yes"]
    table = m.baselines_table(_runs())
    assert table.loc["mlp", "best_lr"] == 0.03 and table.loc["logistic", "best_lr"] == 0.01
    assert table.loc["mlp", "test_acc_at_lr_0.01"] == pytest.approx(0.6)
