"""The command line end to end: files and columns of the contract, bad input -> one line, exit 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from lrbench import cli

SHRUNK = ["--set", "epochs=3", "--set", "lr=0.1,0.01", "--seeds", "2", "--quiet"]

RUN_COLUMNS = [
    "run_id", "experiment", "dataset", "model", "optimizer", "impl", "lr", "schedule", "seed",
    "final_train_loss", "final_test_loss", "final_test_acc", "best_test_acc",
    "epochs_to_target", "status", "diverged_at",
]  # fmt: skip
CURVE_COLUMNS = ["run_id", "epoch", "lr", "train_loss", "test_loss", "test_acc"]


@pytest.fixture(scope="module")
def shrunk_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "blobs"
    code = cli.main(
        [
            "run",
            *SHRUNK,
            "--set",
            "optimizer=sgd,momentum",
            "--set",
            "momentum=0.5,0.9",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    return out


def test_run_writes_the_contract(shrunk_run):
    out = shrunk_run
    for name in (
        "runs.csv",
        "curves.csv",
        "runs.parquet",
        "curves.parquet",
        "meta.json",
        "table.md",
        "table.tex",
        "table.csv",
        "curves.png",
    ):
        assert (out / name).is_file(), name
    runs = pd.read_csv(out / "runs.csv")
    curves = pd.read_csv(out / "curves.csv")
    assert set(RUN_COLUMNS) <= set(runs.columns)
    assert "momentum" in runs.columns  # an optimizer hyperparameter column
    assert list(curves.columns) == CURVE_COLUMNS
    # sgd (1 point) + momentum (2 points), 2 learning rates, 2 seeds; 3 epochs each
    assert len(runs) == (1 + 2) * 2 * 2
    assert len(curves) == len(runs) * 3
    assert runs["run_id"].is_unique
    assert set(runs["status"]) <= {"converged", "slow", "oscillating", "diverged"}
    meta = json.loads((out / "meta.json").read_text())
    for key in ("versions", "backend", "devices", "XLA_FLAGS", "git_revision", "config",
                "compile_seconds", "train_seconds", "wall_seconds", "compile_cache",
                "compile_cache_hits", "compile_cache_misses"):  # fmt: skip
        assert key in meta, key
    assert meta["compile_cache"] == os.environ["LRBENCH_COMPILE_CACHE"]  # the session's own
    assert {"lrbench", "jax", "jaxlib", "optax", "flax"} <= set(meta["versions"])
    assert meta["config"]["epochs"] == 3


def test_parquet_matches_csv(shrunk_run):
    a = pd.read_parquet(shrunk_run / "runs.parquet")
    b = pd.read_csv(shrunk_run / "runs.csv")
    pd.testing.assert_series_equal(a["final_test_acc"], b["final_test_acc"])


def test_table_is_mean_and_std_over_seeds(shrunk_run):
    runs = pd.read_csv(shrunk_run / "runs.csv")
    table = (shrunk_run / "table.md").read_text()
    row = runs[(runs["optimizer"] == "sgd") & (runs["lr"] == 0.1)]["final_test_acc"]
    assert f"{row.mean():.3f} ± {row.std():.3f}" in table
    header = table.splitlines()[0]
    assert header.startswith("| lr |")
    # one column per optimizer point: sgd, momentum 0.5, momentum 0.9
    assert header.count("|") == 5 and "momentum=0.5" in header and "momentum=0.9" in header
    cols = list(runs.columns)
    assert cols.index("unit") < cols.index("momentum") < cols.index("seed")


def test_list(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for word in (
        "blobs_lr",
        "blobs",
        "digits",
        "iris",
        "moons",
        "sgd",
        "momentum",
        "nesterov",
        "time_based",
    ):
        assert word in out


BAD_INPUTS = [
    (["run", "no_such_experiment"], "experiment"),
    (["run", "--set", "dataset=mnist"], "dataset"),
    (["run", "--set", "task=nope"], "task"),
    (["run", "--set", "optimizer=adamm"], "optimizer"),
    (["run", "--set", "schedule=zigzag"], "schedule"),
    (["run", "--set", "lr=0"], "lr"),
    (["run", "--set", "lr=-0.1"], "lr"),
    (["run", "--set", "lr=inf"], "lr"),
    (["run", "--set", "lr=nan"], "lr"),
    (["run", "--set", "lr=abc"], "lr"),
    (["run", "--set", "lr="], "lr"),
    (["run", "--set", "lr=0.1,,0.2"], "lr"),
    (["run", "--set", "epochs=0"], "epochs"),
    (["run", "--set", "epochs=-3"], "epochs"),
    (["run", "--set", "batch_size=501"], "batch_size"),
    (["run", "--set", "batch_size=0"], "batch_size"),
    (["run", "--set", "epochs"], "--set"),
    (["run", "--set", "=3"], "--set"),
    (["run", "--set", "wibble=3"], "wibble"),
    (["run", "--set", "momentum=1.5", "--set", "optimizer=momentum"], "momentum"),
    (["run", "--seeds", "0"], "--seeds"),
    (["run", "--set", "seeds="], "seeds"),
    (["run", "--set", "validation_freq=-1"], "validation_freq"),
    (["run", "--set", "validation_freq=0.5"], "validation_freq"),
    (
        ["run", "--set", "validation_freq=2", "--set", "schedule=reduce_on_plateau"],
        "validation_freq",
    ),
    (["run", "error_bowl", "--set", "validation_freq=2"], "validation_freq"),
    (["bench", "--sizes", "0,8"], "--sizes"),
    (["bench", "--sizes", "8,,64"], "--sizes"),
    (["bench", "--sizes", "1e3"], "--sizes"),
    (["frobnicate"], "command: invalid choice"),
]


@pytest.mark.parametrize(("argv", "field"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_one_line_exit_2(argv, field, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("untouched")
    code = cli.main([*argv, "--out", str(out)] if argv[0] == "run" else argv)
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("lrbench: error: ")
    assert field in lines[0]
    assert "Traceback" not in captured.err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["keep.txt", "out"]
    assert (out / "keep.txt").read_text() == "untouched"


def test_console_script_no_traceback(tmp_path):
    exe = shutil.which("lrbench")
    cmd = [exe] if exe else [sys.executable, "-m", "lrbench"]
    proc = subprocess.run(
        [*cmd, "run", "--set", "lr=-1"], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "lr" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "results").exists()


def test_setting_without_optax_twin_is_refused(tmp_path, capsys):
    argv = [
        "run",
        "--set",
        "optimizer=adagrad",
        "--set",
        "impl=optax",
        "--set",
        "eps=1e-10",
        "--out",
        str(tmp_path / "o"),
    ]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "eps" in err
    assert not (tmp_path / "o").exists()
