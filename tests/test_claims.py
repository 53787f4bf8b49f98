"""Claims as data (evaluation on hand-built tables, the README template) and the regression
tier of ``lrbench check`` (unchanged, perturbed beyond 1e-6, another platform)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from lrbench import check, claims
from lrbench.claims import Claim, Measured, Select
from lrbench.errors import ConfigError

TABLES = {
    "runs": pd.DataFrame(
        {"lr": [0.1, 0.1, 0.01, 0.01], "seed": [0, 1, 0, 1], "acc": [0.8, 0.9, 0.5, 0.7]}
    )
}


def _held(claim: Claim) -> str:
    return claims.evaluate((claim,), TABLES, article="a").loc[claim.id, "held"]


@pytest.mark.parametrize(
    ("comparison", "threshold", "tolerance", "want"),
    [
        (">", 0.86, 0, "no"),  # the mean at lr 0.1 is 0.85
        (">", 0.84, 0, "yes"),
        (">=", 0.85, 0, "yes"),
        ("<", 0.86, 0, "yes"),
        ("<=", 0.84, 0, "no"),
        ("between", (0.8, 0.9), 0, "yes"),
        ("between", (0.86, 0.9), 0, "no"),
        ("within", 0.8, 0.051, "yes"),
        ("within", 0.8, 0.049, "no"),
    ],
)
def test_each_comparison(comparison, threshold, tolerance, want):
    c = Claim("c", "q", "mean acc at lr 0.1", Select("runs", "acc", {"lr": 0.1}),
              comparison, threshold, tolerance)  # fmt: skip
    assert _held(c) == want


def test_not_measured_and_intervals():
    missing_row = Claim("r", "q", "x", Select("runs", "acc", {"lr": 3.0}), ">", 0.0)
    missing_table = Claim("t", "q", "x", lambda t: t["nope"]["acc"].mean(), ">", 0.0)
    none = Claim("n", "q", "x", lambda t: None, ">", 0.0)
    seeds = Claim("s", "q", "x", lambda t: claims.over_seeds(t["runs"]["acc"][:2]), ">", 0.8)
    table = claims.evaluate((missing_row, missing_table, none, seeds), TABLES)
    assert list(table["held"]) == ["not measured"] * 3 + ["yes"]
    assert (table.loc["s", "value"], table.loc["s", "low"], table.loc["s", "high"]) == (
        pytest.approx(0.85), 0.8, 0.9)  # fmt: skip
    assert math.isnan(table.loc["r", "low"])
    assert claims.count(table) == "1 of 1 held, 3 not measured"


def test_bad_declarations_name_the_field():
    with pytest.raises(ConfigError, match="comparison"):
        Claim("c", "q", "x", lambda t: 1.0, "~", 1.0)
    with pytest.raises(ConfigError, match="threshold"):
        Claim("c", "q", "x", lambda t: 1.0, "between", 1.0)
    with pytest.raises(ConfigError, match="expected"):
        Claim("c", "q", "x", lambda t: 1.0, ">", 1.0, expected="maybe")


def test_readme_template_renders_the_claims_table(tmp_path):
    c = Claim("lr_works", "lr 0.1 works", "mean acc", lambda t: Measured(0.85, 0.8, 0.9), ">", 0.8)
    table = claims.evaluate((c,), TABLES, article="Someone (2017)")
    meta = {"n_runs": 4, "versions": {"jax": "0.10.2"}, "backend": "cpu", "devices": ["cpu:0"],
            "wall_seconds": 1.5}  # fmt: skip
    claims.write_report(
        tmp_path, claims=table, tables={"runs": (TABLES["runs"], "Every run")}, name="x",
        title="t", article="Someone (2017)", says="It says so.", meta=meta,
        figures={"f.png": "a figure"},
    )  # fmt: skip
    text = (tmp_path / "README.md").read_text()
    assert "## The claims (1 of 1 held; `claims`)" in text
    assert "| lr_works | lr 0.1 works | mean acc | 0.85 | [0.8, 0.9] | > 0.8 | yes |" in text
    assert "jax 0.10.2" in text and "f.png" in text and "Every run" in text
    assert pd.read_csv(tmp_path / "claims.csv", index_col=0).loc["lr_works", "held"] == "yes"


def test_readme_template_without_claims(tmp_path):
    meta = {"versions": {"jax": "0.10.2"}, "backend": "cpu", "devices": ["cpu:0"]}
    claims.write_report(
        tmp_path, claims=None, tables={"runs": (TABLES["runs"], "Every run")}, name="x",
        title="t", article="none", says="What it shows.", meta=meta,
    )  # fmt: skip
    text = (tmp_path / "README.md").read_text()
    assert text.startswith("# x: t") and "What it shows." in text and "Every run" in text
    assert "claims" not in text and not (tmp_path / "claims.csv").exists()


def _folder(tmp_path, acc):
    pd.DataFrame({"lr": [0.1, 0.01], "acc": acc, "train_seconds": [1.0, 2.0]}).to_csv(
        tmp_path / "runs.csv", index=False
    )
    return tmp_path


def test_regression_tier(tmp_path):
    here = check.this_platform()
    recorded = {"platform": here, "tables": check.numbers(_folder(tmp_path, [0.8, 0.5]))}

    def ok(acc, platform=here, seconds=None):
        folder = _folder(tmp_path, acc)
        return check.compare("x", recorded, folder, platform)

    assert ok([0.8, 0.5 * (1 + 5e-7)])["ok"].all()  # rounding
    moved = ok([0.8, 0.5 * (1 + 2e-6)])
    assert not moved["ok"].any() and "row 1" in moved["note"].iloc[0]
    other = ok([0.9, 0.1], {**here, "jaxlib": "0.0.1"})
    assert other["ok"].all() and other["note"].iloc[0].startswith("skipped: recorded on jaxlib")
    assert "this is jaxlib=0.0.1" in other["note"].iloc[0]
    assert "train_seconds" not in recorded["tables"]["runs.csv"]["columns"]  # timings ignored


def test_setting_and_summary_name_schedules_and_grids():
    from lrbench.sweep import Optimizer, Schedule, Sweep

    sweep = Sweep(
        lrs=(0.1, 0.01), optimizers=(Optimizer("momentum", {"momentum": 0.9}),),
        schedules=(Schedule("step", {"step_size": (5.0, 10.0), "gamma": 0.5}),),
    )  # fmt: skip
    shown = claims.setting(sweep)["value"]
    assert shown["schedules"] == "step(step_size=5/10, gamma=0.5)"
    assert shown["optimizers"] == "momentum(momentum=0.9)" and shown["lrs"] == "0.1, 0.01"
    table = claims.setting(sweep, ("lrs", "epochs"), {"adaptive lrs": "adam: 0.001"})
    assert list(table.index) == ["lrs", "epochs", "adaptive lrs"] and table.index.name == "field"
    assert table.loc["adaptive lrs", "value"] == "adam: 0.001"
    c = Claim("c", "q", "x", lambda t: 0.5, "<", 1.0)
    meta = {"tables": {"runs": TABLES["runs"]}, "claims": claims.evaluate((c,), TABLES)}
    text = claims.summary("title", meta)
    assert "claims: 1 of 1 held" in text and "| 0.1 | 1 | 0.9 |" in text


def test_setting_shows_the_static_axes_given_and_only_the_fields_that_apply():
    """Static axes given show their values in place of the field they replace; those not
    given, and a task object's unused dataset and model, are left out; a plain sweep keeps
    every field it had; a study's grids read ``grid: value`` where they differ."""
    import dataclasses

    from lrbench import tasks
    from lrbench.study import Study
    from lrbench.sweep import Schedule, Sweep

    plain = Sweep(lrs=(0.1,))
    fields = [f.name for f in dataclasses.fields(Sweep)]
    kept = fields[fields.index("dataset") : fields.index("tasks")]
    assert list(claims.setting(plain).index) == [f for f in kept if f != "description"]
    axes = Sweep(tasks=("classifier", "regressor"), hiddens=((8,), (7, 3)),
                 dtypes=("float32", "float64"))  # fmt: skip
    shown = claims.setting(axes)["value"]
    assert not {"task", "dtype", "batch_sizes", "experiment"} & set(shown.index)
    assert shown["tasks"] == "classifier, regressor" and shown["hiddens"] == "8, 7-3"
    assert shown["dtypes"] == "float32, float64" and shown["batch_size"] == "32"
    assert shown["model"] == "mlp(8)-relu, mlp(7-3)-relu"
    own = claims.setting(Sweep(task=tasks.Quadratic()))["value"]
    assert not {"dataset", "model"} & set(own.index) and own["task"] == "quadratic"
    assert "dataset" not in claims.setting(Sweep(task="neuron")).index
    decay = Sweep(lrs=(0.01,), schedules=(Schedule("time_based", {"decay": (0.1, 0.2)}),))
    study = claims.setting(Study("s", {"lr": plain, "decay": decay}))["value"]
    assert study["lrs"] == "lr: 0.1; decay: 0.01" and study["epochs"] == "200"
    assert study["schedules"] == "lr: constant; decay: time_based(decay=0.1/0.2)"
    assert not any("Schedule(" in v or "Sweep(" in v for v in study)


def test_whole_interval_claims_need_the_difference_beyond_noise():
    a, b = [1.0, 1.1, 0.9], [0.0, 0.1, -0.1]  # means 1 and 0; each sample's variance 0.01
    d = claims.difference(a, b, "a vs b")
    se = math.sqrt(0.01 / 3 + 0.01 / 3)
    assert (d.value, d.low, d.high) == (pytest.approx(1.0), pytest.approx(1 - 2 * se),
                                        pytest.approx(1 + 2 * se))  # fmt: skip
    beyond = Claim("b", "q", "x", lambda t: d, ">", 0.0, whole_interval=True)
    close = Claim("c", "q", "x", lambda t: claims.difference(a, [x + 0.01 for x in a]), "<", 0.0,
                  whole_interval=True)  # fmt: skip
    lone = Claim("l", "q", "x", lambda t: claims.difference(a[:1], b), ">", 0.0,
                 whole_interval=True)  # fmt: skip
    plain = Claim("p", "q", "x", lambda t: claims.difference(a, [x + 0.01 for x in a]), "<", 0.0)
    table = claims.evaluate((beyond, close, lone, plain), TABLES)
    # the value of "close" has the claimed sign, its interval does not: no; "plain" reads the
    # value only: yes; one seed on a side has no interval: not measured
    assert list(table["held"]) == ["yes", "no", "not measured", "yes"]
    assert table.loc["b", "threshold"] == "0 (whole interval)"
    assert table.loc["l", "value"] == pytest.approx(1.0) and math.isnan(table.loc["l", "low"])


def test_mean_std_cells():
    from lrbench import report

    assert report.mean_std(0.95123, 0.0042) == "0.951 ± 0.004"
    assert report.mean_std(0.9, math.nan) == "0.900"  # one seed: no spread shown
    assert report.mean_std(math.nan, 0.1) == "—"
    assert report.mean_std(2.5, 0.5, 1, n=2, of=3) == "2.5 ± 0.5 (n=2)"
    assert report.mean_std(2.5, 0.5, 1, n=3, of=3) == "2.5 ± 0.5"


def test_finish_writes_the_folder_from_the_module_declarations(tmp_path):
    from types import SimpleNamespace

    module = SimpleNamespace(NAME="x", TITLE="a title", ARTICLE="Someone (2017)",
                             __doc__="One line.\n\nWhat it says.")  # fmt: skip
    runs = pd.DataFrame({"run_id": ["a", "b"], "lr": [0.1, 0.01], "acc": [0.9, 0.4]})
    curves = pd.DataFrame({"run_id": ["a", "b"], "epoch": [1, 1], "lr": [0.1, 0.01],
                           "train_loss": [0.3, 0.9], "test_loss": [0.3, 0.9],
                           "test_acc": [0.9, 0.4]})  # fmt: skip
    c = Claim("c", "q", "x", Select("runs", "acc", {"lr": 0.1}), ">", 0.5)
    found = claims.evaluate((c,), {"runs": runs})
    drawn = []
    kwargs = dict(
        found=found, tables={"t": (runs.set_index("run_id"), "Every run")},
        figures={"f.png": (drawn.append, "a figure")}, files={"raw.csv": runs},
        setting_table=pd.DataFrame({"value": ["1"]}, index=pd.Index(["epochs"], name="field")),
        kept=1,
    )  # fmt: skip
    result = claims.finish(module, None, runs, curves, {"n_runs": 2}, tmp_path / "x", **kwargs)
    folder = result.folder
    assert [p.name for p in drawn] == ["f.png"]  # drawn into the folder before its rename
    assert result.meta["kept"] == 1 and result.meta["claims"] is found
    assert list(result.meta["tables"]) == ["t"]
    text = (folder / "README.md").read_text()
    assert text.startswith("# x: a title") and "What it says." in text and "One line" not in text
    assert "## The claims (1 of 1 held; `claims`)" in text and "| epochs | 1 |" in text
    for name in ("runs.csv", "curves.csv", "meta.json", "raw.csv", "t.tex", "claims.csv"):
        assert (folder / name).is_file(), name
    assert claims.finish(module, None, runs, curves, {}, None, **kwargs).folder is None


def test_two_selections_combine_as_one_measure():
    """``a / b`` and ``a - b`` of two selections (or a selection and a number) are measures;
    :func:`claims.ratio` also gives both numbers as the detail; a missing side is NaN."""
    high, low = Select("runs", "acc", {"lr": 0.1}), Select("runs", "acc", {"lr": 0.01})
    assert (high / low)(TABLES).value == pytest.approx(0.85 / 0.6)
    assert (high - low)(TABLES).value == pytest.approx(0.25)
    assert (high - 0.8)(TABLES).value == pytest.approx(0.05)
    assert (high - low - 0.25)(TABLES).value == pytest.approx(0.0, abs=1e-12)
    m = claims.ratio(high, low)(TABLES)
    assert (m.value, m.detail) == (pytest.approx(0.85 / 0.6), "0.85 / 0.6")
    assert claims.ratio(high, Select("runs", "acc", {"lr": 0.5}))(TABLES).detail == "0.85 / nan"
    assert math.isinf(claims.ratio(high, Select("runs", "acc", {"lr": 0.01}, "min") - 0.5)(
        TABLES).value)  # fmt: skip
    c = Claim("c", "q", "x", high / low, ">", 1.0)
    assert _held(c) == "yes"


def test_notes_come_from_the_experiments_markdown(tmp_path):
    """``claims.notes_text`` reads ``notes/<NAME>.md`` beside the module, its ``{fields}`` filled
    when values are given (left as written otherwise); no file: empty notes."""
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "x.md").write_text("Within {within:.0%}; {CURVE} stays.\n")
    module = type("M", (), {"__file__": str(tmp_path / "x.py"), "NAME": "x"})
    assert claims.notes_text(module) == "Within {within:.0%}; {CURVE} stays.\n"
    assert claims.notes_text(module, within=0.05, CURVE=5) == "Within 5%; 5 stays.\n"
    assert claims.notes_text(type("N", (), {"__file__": str(tmp_path / "y.py"), "NAME": "y"})) == ""


def test_rows_stacks_each_value_and_a_missing_one_is_not_measured():
    table = pd.DataFrame({"setting": [0.1, 1e-7, "adam", 0.1, 1e-6], "v": [1, 2, 3, 4, 5]})
    got = claims.rows(table, "setting", [1e-7, 0.1])
    assert list(got["v"]) == [2, 1, 4]
    assert list(claims.rows(table, "setting", ["adam"])["v"]) == [3]
    with pytest.raises(KeyError):
        claims.rows(table, "setting", [0.1, 0.01])
    claim = Claim("c", "q", "v at 0.01", lambda t: claims.rows(t["t"], "setting", [0.01]), ">", 0)
    assert claims.evaluate((claim,), {"t": table}).loc["c", "held"] == claims.NOT_MEASURED


def test_listing_names_each_key():
    values = pd.Series([0.5, 0.25], index=[1e-3, 0.1])
    assert claims.listing(values) == "0.001: 0.5; 0.1: 0.25"
    assert claims.listing(pd.Series([0.5], index=["adam"]), ".0%", sep=" ") == "adam 50%"


def test_extreme_is_the_largest_or_smallest_with_every_value_in_the_detail():
    values = pd.Series([0.5, 0.25], index=["sgd", "adam"])
    want = Measured(0.25, detail="sgd 0.50; adam 0.25")
    assert claims.extreme(values, "min", ".2f", sep=" ") == want
    got = claims.extreme(values, words="loss ")
    assert got.value == 0.5 and got.detail == "loss sgd: 0.5; adam: 0.25"
    assert math.isnan(got.low) and math.isnan(got.high)


def test_extreme_of_a_selection_over_settings():
    """``claims.Extreme``: a ``Select`` taken at each value of one more column, the largest or
    smallest with every value in the detail; a value without rows leaves it not measured."""
    table = pd.DataFrame({"grid": ["a", "a", "a", "a", "b"], "v": [1.0, 3.0, 5.0, 7.0, 100.0],
                          "setting": [0.1, 0.1, 1.0, "adam", 0.1]})  # fmt: skip
    t = {"s": table}
    mean_a = Select("s", "v", {"grid": "a"})
    assert claims.Extreme(mean_a, "setting", (0.1, 1.0))(t) == Measured(5.0, detail="0.1: 2; 1: 5")
    slowest = Select("s", "v", {"grid": "a"}, "max")
    got = claims.Extreme(slowest, "setting", (0.1, "adam"), "min", ".1f", "max ")(t)
    assert got == Measured(3.0, detail="max 0.1: 3.0; adam: 7.0")
    gap = Select("s", "v", {"grid": "b"}) - claims.Extreme(mean_a, "setting", (0.1, 1.0))
    assert gap(t).value == 95.0
    missing = claims.Extreme(mean_a, "setting", (0.1, 0.01))
    found = claims.evaluate(
        (Claim("c", "q", "x", missing, ">", 0), Claim("d", "q", "x", gap, ">", 0)), t
    )
    assert list(found["held"]) == [claims.NOT_MEASURED, "yes"]


def test_a_studys_setting_names_the_grids_that_share_a_value_once():
    """Grids that share a value read ``a, b: value``; a grid of several sweeps lists each of
    its values."""
    from lrbench.study import Study
    from lrbench.sweep import Optimizer, Schedule, Sweep

    grids = {
        kind: Sweep(lrs=(0.1, 1.0), schedules=(Schedule(kind),))
        for kind in ("constant", "exponential")
    }
    grids["adam"] = Sweep(lrs=(0.001,), optimizers=(Optimizer("adam"),))
    grids["rates"] = (Sweep(lrs=(0.5,)), Sweep(lrs=(0.2,), optimizers=(Optimizer("adam"),)))
    shown = claims.setting(Study("s", grids))["value"]
    assert shown["lrs"] == "constant, exponential: 0.1, 1; adam: 0.001; rates: 0.5; rates: 0.2"
    assert shown["optimizers"] == "constant, exponential, rates: sgd; adam, rates: adam"
    assert shown["schedules"] == "constant, adam, rates: constant; exponential: exponential"


def test_by_group_takes_the_extreme_of_each_groups_aggregate_in_order_of_appearance():
    frame = pd.DataFrame({"opt": ["sgd", "sgd", "adam", "adam", "adam"],
                          "a": [1.0, 3.0, 5.0, 6.0, 10.0], "b": [1.0, 1.0, 2.0, 2.0, 2.0]})  # fmt: skip
    # medians by hand: sgd 2, adam 6; ratios a / b: sgd 1 and 3, adam 2.5, 3 and 5
    assert claims.by_group(frame, "opt", "a", "median", "min", ".1f", " ") == Measured(
        2.0, detail="sgd 2.0; adam 6.0"
    )
    got = claims.by_group(frame, "opt", lambda f: f["a"] / f["b"], "mean", "max")
    assert got.value == pytest.approx(3.5) and got.detail == "sgd: 2; adam: 3.5"
