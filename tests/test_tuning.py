"""experiments/tuning: its measures on a hand-made runs and curves table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from experiments import tuning


def _tables():
    """blobs and iris x sgd and adam x lr 0.1 and 0.01 x seeds 0..2; test accuracy climbs
    by 0.1 an epoch from a start set per run, so its first epoch at the target is known."""
    runs, curves = [], []
    for d in ("blobs", "iris"):
        for o in ("sgd", "adam"):
            for lr in (0.1, 0.01):
                for seed in range(3):
                    run_id = f"{d}-{o}-{lr}-{seed}"
                    start = 0.3 + 0.1 * (o == "adam") + 0.1 * (lr == 0.1) + 0.05 * seed
                    acc = np.minimum(start + 0.1 * np.arange(1, 9), 0.99)
                    diverged = d == "iris" and o == "sgd" and lr == 0.1 and seed == 0
                    runs.append({"run_id": run_id, "dataset": d, "optimizer": o,
                                 "schedule": "constant", "lr": lr, "seed": seed,
                                 "final_test_acc": acc[-1],
                                 "status": "diverged" if diverged else "converged"})  # fmt: skip
                    curves += [{"run_id": run_id, "epoch": e + 1, "test_acc": a}
                               for e, a in enumerate(acc)]  # fmt: skip
    return pd.DataFrame(runs), pd.DataFrame(curves)


@pytest.fixture(autouse=True)
def _targets(monkeypatch):
    """The targets the hand-made curves are made for."""
    monkeypatch.setattr(tuning, "TARGETS", {"blobs": 0.8, "iris": 0.9})


def test_scores_epochs_to_target_and_profile_times():
    runs, curves = _tables()
    scored = tuning.scored(runs, curves)
    diverged = scored[scored["status"] == "diverged"]
    assert diverged["score"].tolist() == [pytest.approx(1 / 3)]  # iris: 3 classes
    # blobs target 0.8: adam at lr 0.1 starts at 0.5 (seed 0): 0.6, 0.7, 0.8 -> epoch 3
    one = scored.query("dataset == 'blobs' and optimizer == 'adam' and lr == 0.1 and seed == 0")
    assert one["epochs_to"].item() == 3
    times = tuning.profile_times(scored).set_index(["problem", "config"])
    # the median seed (seed 1, start +0.05) at the fastest lr (0.1): blobs adam 0.55 -> 0.85
    assert times.loc[("blobs", "adam / constant"), "time"] == 3
    assert times.loc[("blobs", "sgd / constant"), ["time", "lr"]].tolist() == [4, 0.1]
    ratios, profile, area = tuning.profile(times.reset_index())
    assert area["adam / constant"] == pytest.approx(1.0)  # fastest on both
    assert set(profile["config"]) == {"sgd / constant", "adam / constant"}


def test_sensitivity_and_intervals_tables():
    runs, curves = _tables()
    scored = tuning.scored(runs, curves)
    table = tuning.sensitivity(scored)
    assert len(table) == 4 and {"evp_1", "evp_5", "evp_20", "width_decades"} <= set(table)
    best = tuning.at_best_lr(scored, table)
    assert len(best) == 4 * 3  # each configuration's three seeds at its best lr
    shown = tuning.intervals(best)
    assert list(shown.columns) == ["blobs", "iris", "all: mean", "all: IQM"]
    assert list(tuning.improvement(best).columns) == ["P(A > B)", "95% interval"]
    times = tuning.profile_times(scored)
    ratios, _, area = tuning.profile(times)
    assert list(tuning.area_table(times, ratios, area).columns) == [
        "blobs (≥ 0.8)", "iris (≥ 0.9)", "area (τ ≤ 4)"]  # fmt: skip


@pytest.mark.slow
def test_the_ci_variant_writes_its_tables_and_profile(tmp_path):
    """Two data sets of the CI variant, end to end: every table, the figure, the README."""
    result = tuning.run(tuning.ci_config(), out=tmp_path / "tuning", quiet=True)
    folder = result.folder
    for stem in ("overview", "sensitivity", "intervals", "improvement", "profile"):
        assert (folder / f"{stem}.md").is_file() and (folder / f"{stem}.tex").is_file()
    assert (folder / "profile.png").stat().st_size > 10_000
    sens = pd.read_csv(folder / "sensitivity_numbers.csv")
    assert len(sens) == 2 * 3 * 2 and (sens["evp_20"] >= sens["evp_1"] - 1e-12).all()
    assert set(result.runs["dataset"]) == {"blobs", "iris"}
    text = (folder / "README.md").read_text()
    assert "| target test accuracy | blobs 0.8, iris 0.9 |" in text
