"""Where ``lrbench run`` writes without ``--out``: only an experiment's committed configuration
writes its committed ``results/NAME/``; ``--ci`` and any other configuration get a folder of
their own, which git ignores; ``--ci`` on an experiment without a CI variant is refused."""

from __future__ import annotations

import dataclasses
import subprocess
import types
from pathlib import Path

import pytest

import experiments
from lrbench import cli
from lrbench.models import MLPConfig
from lrbench.sweep import Optimizer, Sweep

REPO = Path(__file__).resolve().parents[1]
HEX8 = "0123456789abcdef"


def _tiny(epochs: int) -> Sweep:
    return Sweep(
        experiment="tiny",
        description="a tiny blobs sweep",
        dataset="blobs",
        model=MLPConfig(hidden=(4,)),
        epochs=epochs,
        batch_size=100,
        lrs=(0.1,),
        optimizers=(Optimizer("sgd"),),
        seeds=(0,),
    )


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    """An experiment ``tiny`` (2 epochs; its CI variant 1 epoch) in a fresh working folder that
    holds a committed ``results/tiny/`` of made-up bytes."""
    module = types.SimpleNamespace(get_config=lambda: _tiny(2), ci_config=lambda: _tiny(1))
    real = experiments.load
    monkeypatch.setattr(experiments, "load", lambda n: module if n == "tiny" else real(n))
    monkeypatch.chdir(tmp_path)
    committed = tmp_path / "results" / "tiny"
    committed.mkdir(parents=True)
    for name in ("runs.csv", "README.md", "curves.parquet"):
        (committed / name).write_bytes(f"committed {name}\n".encode())
    return committed


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}  # fmt: skip


@pytest.mark.slow  # runs two experiments' CI variants
def test_ci_and_set_runs_leave_the_committed_folder_alone(tiny, capsys):
    before = _snapshot(tiny)
    results = tiny.parent

    assert cli.main(["run", "tiny", "--ci"]) == 0
    err = capsys.readouterr().err
    assert _snapshot(tiny) == before
    assert (results / "tiny-ci" / "runs.csv").is_file()
    assert "writing results/tiny-ci/" in err and "committed results/tiny/" in err

    assert cli.main(["run", "tiny", "--set", "lr=0.05"]) == 0
    err = capsys.readouterr().err
    assert _snapshot(tiny) == before
    made = sorted(p.name for p in results.iterdir() if p.name not in ("tiny", "tiny-ci"))
    assert len(made) == 1 and made[0].startswith("tiny-"), made
    digest = made[0].removeprefix("tiny-")
    assert len(digest) == 8 and set(digest) <= set(HEX8)
    assert f"writing results/{made[0]}/" in err
    assert (results / made[0] / "runs.csv").is_file()

    # an explicit --out is honoured as given, even for the committed folder
    assert cli.main(["run", "tiny", "--ci", "--quiet", "--out", "elsewhere"]) == 0
    assert (Path("elsewhere") / "runs.csv").is_file()
    assert _snapshot(tiny) == before

    # regenerating the committed configuration writes the committed folder
    assert cli.main(["run", "tiny"]) == 0
    assert "differs from the committed" not in capsys.readouterr().err
    assert _snapshot(tiny) != before
    assert "runs.parquet" in _snapshot(tiny)


def test_default_folders_of_the_experiments():
    """Per experiment: its committed configuration -> results/NAME; its CI variant ->
    results/NAME-ci; another configuration -> results/NAME-<8 hex digits>, the same for the
    same configuration; every one but the committed ignored by git."""
    names = experiments.names()
    assert "blobs_lr" in names
    for name in names:
        module = experiments.load(name)
        committed = module.get_config()
        assert cli.default_out(name, module, committed) == (Path("results") / name, None)
        assert cli.default_out(name, module, committed, ci=True)[0] == Path("results") / name
        seeds = len(committed.seeds) + 1
        out, note = cli.default_out(
            name, module, dataclasses.replace(committed, seeds=(*range(seeds),))
        )
        again, _ = cli.default_out(
            name, module, dataclasses.replace(committed, seeds=(*range(seeds),))
        )
        assert out == again and out.name.startswith(f"{name}-") and note, (name, out)
        assert len(out.name) == len(name) + 9 and set(out.name[-8:]) <= set(HEX8)
        folders = [out]
        if hasattr(module, "ci_config"):
            ci, note = cli.default_out(name, module, module.ci_config(), ci=True)
            assert ci == Path("results") / f"{name}-ci" and str(ci) in note
            folders.append(ci)
        for folder in folders:
            for path in (folder / "runs.csv", folder.with_name(folder.name + ".partial") / "x"):
                ignored = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=REPO)
                assert ignored.returncode == 0, path
        kept = subprocess.run(["git", "check-ignore", "-q", f"results/{name}/runs.csv"], cwd=REPO)
        assert kept.returncode == 1, name


def test_ci_refused_for_an_experiment_without_a_ci_variant(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    without = [n for n in experiments.names() if not hasattr(experiments.load(n), "ci_config")]
    assert "blobs_lr" in without  # the default experiment has none
    for name in without:
        assert cli.main(["run", name, "--ci", "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("lrbench: error: --ci: "), err
        assert name in err
    assert cli.main(["run", "--ci"]) == 2  # the default experiment
    assert "--ci" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_committed_results_folders_are_not_ignored():
    tracked = subprocess.run(
        ["git", "ls-files", "-ci", "--exclude-standard", "results"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert tracked.stdout == ""


# ---------------------------------------------------------------------------------------------
# Parquet: a base dependency, so a results folder always has its parquet files


def test_pyarrow_is_a_base_dependency():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert any(d.replace(" ", "").startswith("pyarrow>=") for d in project["dependencies"])
    extras = project["optional-dependencies"]
    assert extras.get("parquet", []) == []  # the old extra is kept as an empty alias
    assert not any("pyarrow" in d for deps in extras.values() for d in deps)


def _tables():
    import pandas as pd

    runs = pd.DataFrame({"run_id": ["a"], "lr": [0.1], "final_test_acc": [0.5]})
    curves = pd.DataFrame(
        {"run_id": ["a"], "epoch": [1], "lr": [0.1], "train_loss": [1.0], "test_loss": [1.0],
         "test_acc": [0.5]}
    )  # fmt: skip
    return runs, curves


def test_a_results_folder_always_has_its_parquet_files(tmp_path, monkeypatch):
    import sys

    import pandas as pd

    from lrbench import results

    runs, curves = _tables()
    results.write_tables(tmp_path, runs, curves, {"config": {}})
    for name in ("runs", "curves"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / f"{name}.parquet"),
            pd.read_csv(tmp_path / f"{name}.csv"),
            check_dtype=False,  # curves are float32, read back from CSV as float64
        )
    # Without pyarrow (a broken install) the write fails; it never drops the format unsaid.
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    (tmp_path / "o").mkdir()
    with pytest.raises(ImportError):
        results.write_tables(tmp_path / "o", runs, curves, {"config": {}})


# ---------------------------------------------------------------------------------------------
# `lrbench check` reruns what `lrbench run NAME --ci` trains, and its table says which


def test_check_reruns_the_configuration_of_run_ci():
    from lrbench import check, runner

    for name in experiments.names():
        module = experiments.load(name)
        sweep, words = check.configuration(module)
        if hasattr(module, "ci_config"):
            ran = cli.apply_overrides(module.ci_config(), [])  # what `run NAME --ci` trains
            assert "--ci" in words
        else:
            ran = cli.apply_overrides(module.get_config(), [])
        assert runner.config_hash(sweep) == runner.config_hash(ran), name
        assert f"config {runner.config_hash(ran)[:8]}" in words, (name, words)


def test_the_check_table_names_the_configuration(monkeypatch, capsys):
    from lrbench import check, runner

    reruns = []
    monkeypatch.setattr(check, "rerun", lambda name, out, quiet: reruns.append(name)
                        or experiments.load(name))  # fmt: skip
    expected = REPO / "results" / "expected"
    table = check.run_checks(["drug_trial"], expected)
    assert reruns == ["drug_trial"]
    hash8 = runner.config_hash(experiments.load("drug_trial").ci_config())[:8]
    assert set(table["config"]) == {f"CI variant (--ci), config {hash8}"}
    assert cli.main(["check", "drug_trial", "--expected", str(expected)]) == 1  # nothing rerun
    out = capsys.readouterr().out
    assert f"drug_trial: reran its CI variant (--ci), config {hash8}: " in out


def test_bad_input_is_still_one_line_when_the_folder_is_another(tmp_path, monkeypatch, capsys):
    """The note on the folder comes once every option is accepted."""
    monkeypatch.chdir(tmp_path)
    for extra in (["--process-index", "3", "--process-count", "2"], ["--address", "h:1"]):
        assert cli.main(["run", "--set", "epochs=2", *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("lrbench: error: "), err
    assert list(tmp_path.iterdir()) == []
