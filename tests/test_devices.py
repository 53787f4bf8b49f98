"""The grid over several devices and several processes.

A run's numbers do not depend on how its sweep is laid out: on 1 or 2 (fake CPU) devices
and in chunks of any size, the optimizers' runs tables and curves are bitwise the same in
float32. ``engine.plan`` puts each run at the same position in a seed group of the same
width whatever the device count or chunk size (checked on the plan itself, and end to end:
before, 2 devices split a 1-seed group in two, and Adam's losses moved by up to 1e-4).
A sweep shared out over processes (``--process-index/--process-count``, what
``jax.distributed`` hands each host) and merged gives the single-process tables (its shares
hold other runs per seed, so other seed groups: float32 within rounding)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from lrbench import cli, engine, runner
from lrbench.errors import ConfigError
from lrbench.sweep import expand

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


def _sweep(optimizers, seeds):
    """Rates from chaotic (lr 1: Adam there amplifies any rounding difference) to stable."""
    return ["--set", "epochs=3", "--set", "lr=1,0.1,0.01", "--set", f"optimizer={optimizers}",
            "--seeds", str(seeds)]  # fmt: skip


def _max_memory(sweep, chunk):
    """The ``--max-memory`` that makes ``runner.max_chunk_for`` give chunks of ``chunk`` runs."""
    import experiments

    sets, seeds = sweep[1:-2:2], int(sweep[-1])  # the --set items and --seeds N
    config = cli.apply_overrides(experiments.load("blobs_lr").get_config(), sets, seeds)
    return str(chunk * runner.run_bytes(config))


def _run_in_processes(tmp_path, sweep, layouts):
    """``lrbench run blobs_lr`` once per ``(devices, extra flags)`` of ``layouts``, side by
    side in subprocesses (a device count is fixed when JAX starts); their runs, curves and
    meta in that order."""
    started = []
    for k, (n_devices, extra) in enumerate(layouts):
        out = tmp_path / f"layout{k}"
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n_devices}",
               "JAX_PLATFORMS": "cpu"}  # fmt: skip
        cmd = [sys.executable, "-m", "lrbench", "run", "blobs_lr", *sweep, *extra, "--quiet",
               "--out", str(out)]  # fmt: skip
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        started.append((out, proc))
    found = []
    for out, proc in started:
        text, _ = proc.communicate(timeout=900)
        assert proc.returncode == 0, text.decode()[-2000:]
        found.append(
            (
                pd.read_csv(out / "runs.csv"),
                pd.read_csv(out / "curves.csv"),
                json.loads((out / "meta.json").read_text()),
            )
        )
    return found


def _assert_close(a_runs, a_curves, b_runs, b_curves, atol):
    assert list(a_runs["run_id"]) == list(b_runs["run_id"])
    exact = [c for c in a_runs.columns if c not in FLOATS]
    pd.testing.assert_frame_equal(a_runs[exact], b_runs[exact])
    np.testing.assert_allclose(a_runs[FLOATS], b_runs[FLOATS], rtol=0, atol=atol)
    pd.testing.assert_frame_equal(a_curves[["run_id", "epoch"]], b_curves[["run_id", "epoch"]])
    np.testing.assert_allclose(a_curves[CURVES], b_curves[CURVES], rtol=0, atol=atol)


def _assert_identical(a, b):
    """Runs and curves tables equal bit for bit (the CSVs hold each float32 value's shortest
    round-trip digits, so equal text is equal floats)."""
    pd.testing.assert_frame_equal(a[0], b[0], check_exact=True)
    pd.testing.assert_frame_equal(a[1], b[1], check_exact=True)


@pytest.mark.slow
def test_two_devices_give_one_devices_runs(tmp_path):
    """One seed, three rates: one device trains the seed's three runs as one group; two
    devices must not split it (each run would sit in a product of another width)."""
    one, two = _run_in_processes(tmp_path, _sweep("sgd,adam", 1), [(1, []), (2, [])])
    assert len(one[2]["devices"]) == 1 and len(two[2]["devices"]) == 2
    _assert_identical(one, two)


@pytest.mark.slow
def test_a_float64_sweep_on_two_devices_is_the_one_device_sweep(tmp_path):
    """float64 is a scoped context (``jax.enable_x64``): the programs compiled for each device,
    side by side in threads, are compiled in it too (before, they were float32 programs
    called with float64 arrays: an internal error)."""
    sweep = [*_sweep("adam", 1)[:-2], "--set", "dtype=float64", "--seeds", "1"]
    one, two = _run_in_processes(tmp_path, sweep, [(1, []), (2, [])])
    _assert_identical(one, two)


# The rules whose arithmetic differs most from sgd and adam (checked above): roots of
# other accumulators, a max, a sign, a look-ahead. Each optimizer is three programs to
# compile (one device; each of two), ~3 s each on CI's 2 cores: the others (decoupled decay,
# Keras' epsilon placement, centred or plain accumulators are variations of these) are left
# out to keep the slow tier short.
CHUNKED = ("adadelta", "amsgrad", "lion", "nadam")


@pytest.mark.slow
def test_optimizers_are_the_same_on_one_device_and_on_two_in_chunks(tmp_path):
    """Four optimizers of ``lrbench.rules``, two seeds: one device, whole groups; two
    devices in chunks of 3 runs (a padded last group; the plan's placement on 3, 4 and 7
    devices is checked without training above)."""
    from lrbench import rules

    assert set(CHUNKED) <= set(rules.names())
    sweep = _sweep(",".join(CHUNKED), 2)
    layouts = [(1, []), (2, ["--max-memory", _max_memory(sweep, 3)])]
    one, *others = _run_in_processes(tmp_path, sweep, layouts)
    assert set(one[0]["optimizer"]) == set(CHUNKED)
    for other in others:
        _assert_identical(one, other)


def _seed_groups(seeds, max_chunk):
    """Each row's seed group, as ``{row: (width, position, the group's rows)}``."""
    layout, chunks = engine.plan(seeds, max_chunk, slot_cap=16)
    found = {}
    for chunk in chunks:
        assert chunk.shape == (layout.groups, layout.slots)
        for group in chunk:
            for position, row in enumerate(group):
                found.setdefault(int(row), (layout.slots, position, tuple(group)))
    return found


@pytest.mark.parametrize("n_devices", [2, 3, 4, 7])
def test_plan_puts_each_run_in_the_same_group_whatever_the_devices(monkeypatch, n_devices):
    """The plan of a layout: each run keeps its seed group (width, position, neighbours) on
    any device count and in chunks of any size that holds a group."""
    import jax

    rng = np.random.default_rng(n_devices)
    cases = [np.zeros(3, int), np.zeros(40, int), np.repeat(np.arange(5), 8)]
    cases += [rng.integers(0, 4, size=rng.integers(1, 60)) for _ in range(20)]
    for seeds in cases:
        base = _seed_groups(seeds, 4096)  # on this process's device count
        with monkeypatch.context() as m:
            m.setattr(jax, "local_device_count", lambda: n_devices)
            for max_chunk in (16, 17, 50, 4096):
                assert _seed_groups(seeds, max_chunk) == base, (seeds, max_chunk)
                layout, _ = engine.plan(seeds, max_chunk, slot_cap=16)
                assert layout.groups % n_devices == 0


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
