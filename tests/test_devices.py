"""The grid over several devices and several processes: 4 fake CPU devices give one device's
results within 1e-6 in float64, even for runs at lr 1 that amplify every rounding difference
(6 runs a group: padding exercised). In float32 the layouts round differently: 4 devices
split each seed's 3 runs into seed groups of 2 (one padded) where one device keeps groups of
3, and a wide product of another width sums in another order (about 1e-6 of a loss after
five epochs). An oscillating run amplifies that (SGD at lr 0.03 from a 10.7 initial loss:
0.11 in four epochs; Adam at lr 1: 0.2 in five), so float32 is compared at rates that
settle, within 1e-5. A sweep shared out over processes
(``--process-index/--process-count``, what ``jax.distributed`` hands each host) and merged
gives the single-process tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from lrbench import cli, runner
from lrbench.errors import ConfigError
from lrbench.sweep import expand

SWEEP = [
    "--set",
    "epochs=5",
    "--set",
    "lr=1,0.1,0.01",
    "--set",
    "optimizer=sgd,adam",
    "--seeds",
    "2",
]
SETTLING = [
    "--set",
    "epochs=5",
    "--set",
    "lr=0.01,0.001,0.0001",
    "--set",
    "optimizer=sgd,adam",
    "--seeds",
    "2",
]
FLOATS = [
    "final_train_loss",
    "final_test_loss",
    "final_test_acc",
    "best_test_acc",
    "initial_train_loss",
]
CURVES = ["lr", "train_loss", "test_loss", "test_acc"]


def _run_with_devices(out, n_devices, sweep):
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n_devices}",
           "JAX_PLATFORMS": "cpu"}  # fmt: skip
    cmd = [sys.executable, "-m", "lrbench", "run", "blobs_lr", *sweep, "--quiet", "--out", str(out)]
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=600)
    return (
        pd.read_csv(out / "runs.csv"),
        pd.read_csv(out / "curves.csv"),
        json.loads((out / "meta.json").read_text()),
    )


def _assert_close(a_runs, a_curves, b_runs, b_curves, atol):
    assert list(a_runs["run_id"]) == list(b_runs["run_id"])
    exact = [c for c in a_runs.columns if c not in FLOATS]
    pd.testing.assert_frame_equal(a_runs[exact], b_runs[exact])
    np.testing.assert_allclose(a_runs[FLOATS], b_runs[FLOATS], rtol=0, atol=atol)
    pd.testing.assert_frame_equal(a_curves[["run_id", "epoch"]], b_curves[["run_id", "epoch"]])
    np.testing.assert_allclose(a_curves[CURVES], b_curves[CURVES], rtol=0, atol=atol)


@pytest.mark.slow
@pytest.mark.parametrize(
    "sweep, atol",
    [([*SWEEP, "--set", "dtype=float64"], 1e-6),
     (SETTLING, 1e-5)],
    ids=["float64", "float32-stable"],
)  # fmt: skip
def test_four_fake_devices_match_one(tmp_path, sweep, atol):
    one = _run_with_devices(tmp_path / "one", 1, sweep)
    four = _run_with_devices(tmp_path / "four", 4, sweep)
    assert len(one[2]["devices"]) == 1 and len(four[2]["devices"]) == 4
    assert len(one[0]) == 12 and (len(one[0]) // 2) % 4 != 0  # 6 runs per optimizer: padded to 8
    _assert_close(*one[:2], *four[:2], atol=atol)


def test_shards_cover_the_runs_table_once():
    import experiments

    runs = expand(
        cli.apply_overrides(experiments.load("blobs_lr").get_config(), ["lr=1,0.1,0.01"], 3)
    )
    for count in (1, 2, 4, 5, 9, 13):
        shares = [runner.shard(runs, i, count) for i in range(count)]
        ids = [i for s in shares for i in s["run_id"]]
        assert sorted(ids) == sorted(runs["run_id"])  # disjoint and complete
        sizes = [len(s) for s in shares]
        assert max(sizes) - min(sizes) <= 1  # balanced
    with pytest.raises(ConfigError, match="^process_index: "):
        runner.shard(runs, 3, 3)


@pytest.fixture(scope="module")
def shared_out(tmp_path_factory):
    root = tmp_path_factory.mktemp("hosts")
    base = ["run", "blobs_lr", *SETTLING, "--quiet"]  # shares run in other chunk sizes
    assert cli.main([*base, "--out", str(root / "single")]) == 0
    return root, base


@pytest.mark.slow
def test_processes_write_their_shares_and_merge(shared_out, capsys):
    root, base = shared_out
    out = root / "merged"
    for i in range(3):
        assert (
            cli.main([*base, "--out", str(out), "--process-index", str(i), "--process-count", "3"])
            == 0
        )
        assert (runner.partial_dir(out) / f"runs.part-{i:05d}.csv").is_file()
        assert not out.exists()
    parts = [pd.read_csv(runner.partial_dir(out) / f"runs.part-{i:05d}.csv") for i in range(3)]
    assert sum(len(p) for p in parts) == 12
    assert cli.main([*base, "--out", str(out), "--merge"]) == 0
    single = pd.read_csv(root / "single" / "runs.csv"), pd.read_csv(root / "single" / "curves.csv")
    merged = pd.read_csv(out / "runs.csv"), pd.read_csv(out / "curves.csv")
    # The shares ran in chunks of other sizes, which round differently in float32 (6e-6 of a
    # loss at most here); a row put in the wrong place would be off by far more.
    _assert_close(*single, *merged, atol=1e-4)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["trained_runs"] == 0 and meta["resumed_runs"] == 12
    assert not runner.partial_dir(out).exists()


@pytest.mark.slow
def test_merge_refuses_missing_shares(shared_out, capsys):
    root, base = shared_out
    out = root / "half"
    assert cli.main([*base, "--out", str(out), "--process-index", "0", "--process-count", "2"]) == 0
    capsys.readouterr()
    assert cli.main([*base, "--out", str(out), "--merge"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--merge" in err[0] and "6 of 12 runs" in err[0]
    assert not out.exists()


def test_merge_without_shares_leaves_nothing_behind(tmp_path, capsys):
    out = tmp_path / "o"
    assert cli.main(["run", "blobs_lr", "--quiet", "--out", str(out), "--merge"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--merge" in err[0] and "nothing to merge" in err[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "flags, field",
    [(["--process-index", "2", "--process-count", "2"], "--process-index"),
     (["--process-count", "0"], "--process-count"), (["--process-index", "x"], "--process-index")],
)  # fmt: skip
def test_bad_process_options(tmp_path, capsys, flags, field):
    out = tmp_path / "o"
    assert cli.main(["run", "blobs_lr", "--quiet", "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and field in err[0]
    assert not out.exists()
