"""The benchmark harness: its tables and files, identical work across methods, the FLOP count.

No speed is asserted: numbers are printed into the output folder.
"""

from __future__ import annotations

import numpy as np
import pytest

from lrbench import bench, bench_torch, engine, spec
from lrbench.sweep import Optimizer, Schedule, Sweep, expand

BLOBS = "blobs 2-50-3 b32"
needs_torch = pytest.mark.skipif(
    not bench_torch.available(), reason="torch (the bench extra) absent"
)


def test_flops_per_step_hand_count():
    # blobs 2-50-3: 2·50 + 50 weights and biases, then 50·3 + 3; batch 32
    assert bench.flops_per_step(BLOBS) == 6 * (2 * 50 + 50 + 50 * 3 + 3) * 32
    # digits 64-256-256-10, batch 128
    p = (64 * 256 + 256) + (256 * 256 + 256) + (256 * 10 + 10)
    assert p == 85_002
    assert bench.flops_per_step("digits 64-256-256-10 b128") == 6 * p * 128


def test_sweep_for_has_n_runs():
    for n in (1, 8, 64):
        assert len(expand(bench.sweep_for(BLOBS, n, 1))) == n


def _grid(seeds=(0,)):
    """SGD with momentum, three schedules, two rates; closed forms below."""
    sweep = Sweep(
        experiment="bench_test",
        dataset="blobs",
        model=bench.WORKLOADS[BLOBS][1],
        epochs=2,
        batch_size=32,
        lrs=(0.05, 0.01),
        optimizers=(Optimizer("momentum", {"momentum": (0.5, 0.9)}),),
        schedules=(
            Schedule("constant"),
            Schedule("step", {"step_size": 1, "gamma": 0.5}),
            Schedule("time_based", {"decay": 0.1}),
        ),
        seeds=seeds,
    )
    runs = expand(sweep)
    ((static, index),) = list(spec.static_groups(sweep, runs))
    return static, spec.run_data(static, runs.loc[index]), runs.loc[index]


@pytest.mark.slow
def test_problem_learning_rates_and_orders():
    static, rundata, rows = _grid(seeds=(0, 1))
    prob = bench.problem(static, rundata)
    spe = 16  # ceil(500 / 32)
    t = np.arange(2 * spe)
    for i, row in enumerate(rows.to_dict("records")):
        expected = {
            "constant": np.full(t.shape, row["lr"]),
            "step": row["lr"] * 0.5 ** (t // spe),  # PyTorch StepLR per epoch
            "time_based": row["lr"] / (1 + 0.1 * t),  # Keras decay per iteration
        }[row["schedule"]]
        np.testing.assert_allclose(prob.lr[i], expected, rtol=1e-6)
        assert prob.momentum[i] == np.float32(row["momentum"])
        assert prob.which[i] == row["seed"]
    assert prob.orders.shape == (2, 2, 500)
    for order in prob.orders.reshape(-1, 500):  # every epoch is a permutation
        assert sorted(order) == list(range(500))
    assert not np.array_equal(prob.orders[0, 0], prob.orders[0, 1])
    assert not np.array_equal(prob.layers[0][0][0], prob.layers[0][0][1])


@needs_torch
@pytest.mark.parametrize("seeds", [(0,), (0, 1)], ids=["shared minibatch", "two seeds"])
def test_torch_baselines_reach_lrbench_loss(seeds):
    static, rundata, _ = _grid(seeds)
    history, _ = engine.train_group(static, rundata)
    reference = history.train_loss[:, -1]
    assert np.isfinite(reference).all() and np.ptp(reference) > 1e-2  # the runs differ
    prob = bench.problem(static, rundata)
    _, eager = bench_torch.eager_loop(prob, len(reference), threads=1)
    _, vmapped = bench_torch.vmapped(prob, threads=1)
    np.testing.assert_allclose(eager, reference, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(vmapped, reference, rtol=1e-4, atol=1e-5)
    # b2, the per-step jitted loop, does the same work
    _, per_step = bench.per_step_loop(static, prob, 3)
    np.testing.assert_allclose(per_step, reference[:3], rtol=1e-4, atol=1e-5)


def test_max_diff():
    assert bench._max_diff([1.0, 2.0], [1.5, 2.0]) == 0.5
    assert bench._max_diff([1.0, np.nan], [1.0, np.nan]) == 0.0
    assert bench._max_diff([1.0, np.nan], [1.0, 2.0]) == np.inf


@pytest.mark.slow
def test_bench_tables_and_files(tmp_path, monkeypatch):
    table = bench.run(sizes=(8,), epochs=1, repeats=1, b1_runs=2, b2_runs=1, c_runs=1,
                      quiet=True, workloads=(BLOBS,))  # fmt: skip
    methods = {"lrbench", "b1", "b2", "roof"} | (
        {"c", "c 1-thread", "c′"} if bench_torch.available() else set()
    )
    assert set(table["method"]) == methods
    grid = table[table["method"] != "roof"]
    assert (grid["model_steps_per_s"] > 0).all() and np.isfinite(grid["gflops"]).all()
    assert (grid["max_loss_diff"] < 1e-4).all()
    row = grid[(grid["method"] == "lrbench") & (grid["N"] == 8)].iloc[0]
    np.testing.assert_allclose(
        row["gflops"] * 1e9, row["model_steps_per_s"] * 6 * 303 * 32, rtol=1e-12
    )
    assert grid["xla_mib"].isna().tolist() == [m.startswith("c") for m in grid["method"]]
    memory = bench.memory_table([(BLOBS, "lrbench", 8)], epochs=1, quiet=True)
    assert memory["rss_peak_mib"].iloc[0] > 0
    out = bench.write(table, tmp_path / "bench", {"test": True}, memory)
    for name in ("README.md", "bench.csv", "memory.csv", "throughput.png", "meta.json"):
        assert (out / name).is_file()
    readme = (out / "README.md").read_text()
    assert "## blobs 2-50-3 b32" in readme and "Peak RSS" in readme

    # without torch, c and c′ are left out and the README says so (the table above already
    # is that case when the bench extra is absent)
    if bench_torch.available():
        monkeypatch.setattr(bench_torch, "available", lambda: False)
        monkeypatch.setattr(bench_torch, "version", lambda: None)
        table = bench.run(sizes=(8,), epochs=1, repeats=1, b1_runs=1, b2_runs=1, quiet=True,
                          workloads=(BLOBS,))  # fmt: skip
    assert set(table["method"]) == {"lrbench", "b1", "b2", "roof"}
    out = bench.write(table, tmp_path / "no_torch", {"test": True})
    assert "c and c′ skipped" in (out / "README.md").read_text()


@pytest.mark.slow
def test_levers_table(monkeypatch):
    real, envs = bench._child, []

    def child(spec, env=None):  # one real fresh process (two devices); the others stubbed
        envs.append(env)
        if "device_count=2" in env["XLA_FLAGS"]:
            return real(spec, env)
        return {"seconds": 1.0, "compile_s": 1.0, "devices": 1}

    monkeypatch.setattr(bench, "_child", child)
    table = bench.lever_times(BLOBS, n=8, epochs=1, repeats=1, chunks=(8,), quiet=True)
    one = "--xla_force_host_platform_device_count=1"
    assert {"XLA_FLAGS": one} in envs and {"XLA_FLAGS": one, "JAX_ENABLE_X64": "1"} in envs
    assert set(table["lever"]) == {
        "engine", "devices", "dtype", "seed groups", "chunk", "schedule", "donation", "validation"
    }  # fmt: skip
    assert (table["model_steps_per_s"] > 0).all()
    (engine_row,) = table.loc[table["lever"] == "engine", "setting"]
    slots = engine.plan_group(bench.group(BLOBS, 8, 1)[0], np.zeros(8, int))
    assert engine_row == f"{slots[0].groups} groups of {slots[0].slots} runs"
    alone = engine.plan(np.zeros(8, int), slot_cap=1)[0]  # every run in a group of its own
    assert f"{alone.groups} groups of 1 runs" in set(table["setting"])
    devices = table[table["lever"] == "devices"]["setting"]
    assert any(s.startswith("2 CPU devices") for s in devices)


@pytest.mark.parametrize("repeats", [1, 3, 4])
def test_repeats_run_in_rotated_rounds(repeats):
    """One call of every method a round, the order rotated each round; an untimed round first
    when there are fewer than 3 repeats."""
    calls = []

    def method(name):
        def call():
            calls.append(name)
            return float(len(calls)), np.array([len(calls)])

        return call

    names = ["a", "b", "c"]
    answers = bench._rounds([method(n) for n in names], repeats)
    warm = names if repeats < 3 else []
    want = warm + [names[(r + i) % 3] for r in range(repeats) for i in range(3)]
    assert calls == want
    assert [len(a) for a in answers] == [repeats] * 3
    for name, got in zip(names, answers, strict=True):  # each answer is that method's own call
        assert all(calls[int(seconds) - 1] == name for seconds, _ in got)


def test_cli_times_table_is_the_median_of_its_rounds():
    """One row per command: the median of its calls, which ran in rounds, and its exit code
    (the command line itself is timed by ``lrbench bench``, not here)."""
    import sys

    commands = {
        "ok": [sys.executable, "-c", "pass"],
        "error": [sys.executable, "-c", "raise SystemExit(2)"],
    }
    table = bench.cli_times(commands, repeats=3)
    assert table["command"].tolist() == ["ok", "error"]
    assert table["exit_code"].tolist() == [0, 2]
    assert (table["calls"] == 3).all()
    assert ((table["median_s"] > 0) & (table["median_s"] <= table["max_s"])).all()
    lines = "\n".join(bench._cli_lines(table))
    assert "Command line responsiveness" in lines and "| ok |" in lines
    assert set(bench.CLI_COMMANDS) == {
        "lrbench --help", "lrbench list", "lrbench run nosuch (an argument error)"
    }  # fmt: skip


def test_small_grids_are_in_both_modes():
    """N = 1 and N = 8 (where a per-run loop competes) are measured in the quick bench and
    the full one, lrbench and b1 in the same rounds."""
    for quick in (True, False):
        assert {1, 8} <= set(bench.config_for(quick)["sizes"])


def test_steady_loops_a_short_call_and_leaves_a_long_one():
    """A call shorter than ``seconds`` is warmed (two untimed calls) and timed as the mean of
    a loop lasting about ``seconds``; a long call is timed alone."""
    made = []

    def short():
        made.append(1)
        return 0.002, np.array([len(made)])

    loop = bench._steady(short, seconds=0.05)
    assert len(made) == 2  # the warm-up calls
    seconds, result = loop()
    assert len(made) == 2 + 25 and seconds == pytest.approx(0.002)
    assert result[0] == len(made)  # the last call's answer

    def long():
        return 1.0, None

    assert bench._steady(long, seconds=0.05) is long
