"""``lrbench check``: reference numbers catch a broken optimizer."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from lrbench import check, engine, rules

EXPECTED = Path(__file__).resolve().parents[1] / "results" / "expected"


def _folder(tmp_path, rows):
    pd.DataFrame(rows).to_csv(tmp_path / "runs.csv", index=False)
    return tmp_path


def test_evaluate_tolerances_and_bounds(tmp_path):
    folder = _folder(
        tmp_path, [{"lr": 0.1, "acc": 0.80}, {"lr": 0.1, "acc": 0.84}, {"lr": 0.01, "acc": 0.5}]
    )
    spec = {
        "experiment": "x",
        "checks": [
            {"name": "mean in tol", "table": "runs.csv", "row": {"lr": 0.1}, "column": "acc", "expected": 0.81, "atol": 0.011},
            {"name": "mean out of tol", "table": "runs.csv", "row": {"lr": 0.1}, "column": "acc", "expected": 0.81, "atol": 0.009},
            {"name": "rtol", "table": "runs.csv", "row": {"lr": 0.01}, "column": "acc", "expected": 0.55, "rtol": 0.1},
            {"name": "max bound", "table": "runs.csv", "row": {"lr": 0.01}, "column": "acc", "max": 0.49},
            {"name": "min of rows", "table": "runs.csv", "row": {"lr": 0.1}, "column": "acc", "aggregate": "min", "min": 0.8},
            {"name": "no such row", "table": "runs.csv", "row": {"lr": 3.0}, "column": "acc", "min": 0},
            {"name": "no such file", "table": "nope.csv", "row": {}, "column": "acc", "min": 0},
        ],
    }  # fmt: skip
    ok = dict(zip(*check.evaluate(folder, spec)[["check", "ok"]].T.values, strict=True))
    assert ok == {"mean in tol": True, "mean out of tol": False, "rtol": True, "max bound": False,
                  "min of rows": True, "no such row": False, "no such file": False}  # fmt: skip


def test_every_reference_file_is_well_formed():
    import experiments

    files = check.expected_files(EXPECTED)
    assert "blobs_lr" in files
    for name, path in files.items():
        spec = json.loads(path.read_text())
        assert spec["experiment"] == name and name in experiments.names()
        for c in spec["checks"]:
            assert {"name", "table", "column", "source"} <= set(c), c
            assert any(c.get(k) is not None for k in ("expected", "min", "max")), c


@pytest.mark.slow
def test_blobs_reference_numbers_hold():
    table = check.run_checks(["blobs_lr"], EXPECTED)
    assert table["ok"].all(), table[~table["ok"]]


@pytest.mark.slow  # retrains blobs_lr in full
def test_a_broken_optimizer_fails_the_check(monkeypatch):
    """sgd that secretly takes steps 100x too small must fail blobs_lr's reference numbers."""
    spec = rules.spec("sgd")
    broken = spec._replace(hand=lambda learning_rate: spec.hand(learning_rate * 0.01))
    monkeypatch.setitem(rules._RULES, "sgd", broken)
    monkeypatch.setattr(engine, "_COMPILED", {})  # the healthy program must not be reused
    table = check.run_checks(["blobs_lr"], EXPECTED)
    failed = set(table.loc[~table["ok"], "check"])
    assert "lr 0.1 final test accuracy" in failed
    assert "lr 0.001 final test accuracy (slower)" in failed


def test_unknown_experiment():
    with pytest.raises(ValueError, match="experiment"):
        check.run_checks(["nope"], EXPECTED)


def test_claim_verdicts_read_the_ci_verdict_of_a_ci_rerun(tmp_path):
    """A claim whose CI variant (fewer seeds) reaches another verdict declares it once."""
    from types import SimpleNamespace

    from lrbench.claims import Claim

    same = Claim("same", "q", "x", lambda t: 1.0, ">", 0.0)
    noisy = Claim("noisy", "q", "x", lambda t: 1.0, ">", 0.0, expected="yes", expected_ci="no")
    pd.DataFrame({"claim": ["same", "noisy"], "held": ["yes", "no"]}).to_csv(
        tmp_path / "claims.csv", index=False
    )
    with_ci = SimpleNamespace(CLAIMS=(same, noisy), ci_config=lambda: None)
    ok = check.claim_verdicts("x", with_ci, tmp_path).set_index("check")["ok"]
    assert ok.to_dict() == {"claim same: held = yes": True, "claim noisy: held = no": True}
    full_only = SimpleNamespace(CLAIMS=(same, noisy))  # no CI variant: the rerun is the full one
    assert list(check.claim_verdicts("x", full_only, tmp_path)["ok"]) == [True, False]
    with pytest.raises(ValueError, match="expected_ci"):
        Claim("c", "q", "x", lambda t: 1.0, ">", 0.0, expected_ci="maybe")


def test_claims_of_a_generic_run_are_read_off_its_tables(tmp_path):
    """No claims.csv (a folder written before the runner wrote one): the claims measure the
    folder's CSVs."""
    from types import SimpleNamespace

    from lrbench.claims import Claim, Select

    folder = _folder(tmp_path, [{"lr": 0.1, "acc": 0.8}, {"lr": 0.01, "acc": 0.4}])
    module = SimpleNamespace(CLAIMS=(
        Claim("learns", "q", "x", Select("runs", "acc", {"lr": 0.1}), ">", 0.7),
        Claim("crawls", "q", "x", Select("runs", "acc", {"lr": 0.01}), ">", 0.5, expected="no"),
        Claim("wrong", "q", "x", Select("runs", "acc", {"lr": 0.01}), ">", 0.5),
    ))  # fmt: skip
    table = check.claim_verdicts("x", module, folder)
    assert list(table["ok"]) == [True, True, False]
    assert table["note"].iloc[2] == "held: no"
