"""The benchmark harness runs and reports (no speed is asserted: numbers are printed)."""

from __future__ import annotations

import numpy as np

from lrbench import bench


def test_bench_table_and_files(tmp_path):
    table = bench.run(sizes=(1, 8), epochs=1, repeats=1, b1_runs=2, b2_runs=1, quiet=True,
                      workloads=("blobs 2-50-3 b32",))
    methods = set(table["method"])
    assert methods == {"lrbench", "b1", "b2", "roof"}
    grid = table[table["method"] != "roof"]
    assert (grid["model_steps_per_s"] > 0).all() and np.isfinite(grid["gflops"]).all()
    # achieved FLOP/s is model-steps/s times 6·P·B
    row = grid[(grid["method"] == "lrbench") & (grid["N"] == 8)].iloc[0]
    assert row["params"] == 2 * 50 + 50 + 50 * 3 + 3
    np.testing.assert_allclose(row["gflops"] * 1e9, row["model_steps_per_s"] * 6 * row["params"] * 32, rtol=1e-12)
    out = bench.write(table, tmp_path / "bench", {"test": True})
    for name in ("README.md", "bench.csv", "throughput.png", "meta.json"):
        assert (out / name).is_file()


def test_sweep_for_has_n_runs():
    from lrbench.sweep import expand

    for n in (1, 8, 64):
        assert len(expand(bench.sweep_for("blobs 2-50-3 b32", n, 1))) == n
