"""A sweep's cost is counted from its axes before anything is expanded or compiled, printed on
stderr, and a sweep that cannot run (memory, disk, int32 steps) or goes past a sane bound
(unless ``--yes``) is refused in one line with exit code 2."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrbench import cli, plan, runner, spec
from lrbench import sweep as sweep_module
from lrbench.errors import ConfigError
from lrbench.models import MLPConfig
from lrbench.study import Study, runs_table
from lrbench.sweep import Optimizer, Schedule, Sweep

# blobs_lr's program (as tests/test_files.py trains it): 2 runs of 2 epochs of 16 steps
TINY = Sweep(experiment="test", dataset="blobs", epochs=2, lrs=(0.1, 0.01), seeds=(0,))
BLOBS_TRAIN = 500  # examples in the blobs training set (lrbench.data: 1000 points, half train)


def _no_expansion(monkeypatch):
    def refuse(*_):
        raise AssertionError("the runs table was expanded")

    monkeypatch.setattr(sweep_module, "expand", refuse)
    monkeypatch.setattr(runner, "runs_table", refuse)


def test_a_billion_run_grid_is_counted_in_closed_form_and_refused_unexpanded(monkeypatch):
    """1000 rates x 1000 seeds x 1000 momenta, 5 epochs of ceil(500/32) = 16 steps."""
    big = Sweep(
        experiment="test", epochs=5, batch_size=32, lrs=tuple(1 / (k + 2) for k in range(1000)),
        seeds=tuple(range(1000)),
        optimizers=(Optimizer("momentum", {"momentum": tuple(k / 1000 for k in range(1000))}),),
    )  # fmt: skip
    _no_expansion(monkeypatch)
    est = plan.estimate(big.validate())
    assert est.runs == 10**9
    assert est.steps_per_run == 5 * 16
    assert est.run_steps == 10**9 * 5 * 16
    assert est.curves_rows == 10**9 * 5
    assert est.programs == 1
    with pytest.raises(ConfigError, match="1,000,000,000") as err:
        runner.run(big, quiet=True)
    assert err.value.field == "sweep"


def test_huge_epochs_are_refused_before_anything_is_compiled(tmp_path, capsys, monkeypatch):
    """``epochs=100000000``: a run's minibatch orders alone are 10⁸ x 500 int32 (200 GB)."""
    out = tmp_path / "o"
    _no_expansion(monkeypatch)
    argv = ["run", "blobs_lr", "--set", "epochs=100000000", "--seeds", "1", "--out", str(out)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # why, with the estimate
    assert err[0].startswith("lrbench: error: sweep: ") and "memory" in err[0]
    assert "(estimate: 8 runs, " in err[0]
    assert list(tmp_path.iterdir()) == []  # no out, no out.partial
    assert cli.main([*argv, "--quiet", "--yes"]) == 2  # memory is not a soft bound
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_yes_runs_a_sweep_past_a_soft_bound(monkeypatch, capsys):
    monkeypatch.setattr(plan, "MAX_RUNS", 1)
    with pytest.raises(ConfigError, match=r"2 runs is more than 1 \(lrbench.plan.MAX_RUNS\)"):
        runner.run(TINY, quiet=True)
    result = runner.run(TINY, quiet=False, yes=True, max_chunk=1)  # test_files.py's program
    assert len(result.runs) == 2
    err = capsys.readouterr().err
    assert "plan: 2 runs of 32 steps to train in 2 chunks, 1 program to compile; about " in err


def test_the_estimate_is_silent_when_quiet(capsys):
    runner.run(TINY, quiet=True)
    assert capsys.readouterr().err == ""


def _est(**fields):
    base = dict(runs=10, programs=1, steps_per_run=10, run_steps=100, curves_rows=20, chunk=10,
                run_bytes=1000, devices=2, seconds=1.0)  # fmt: skip
    return plan.Estimate(**{**base, **fields})


def test_check_bounds():
    roomy = plan.Limits(device_memory=10**12, host_memory=10**12, disk=10**12, shared=True)
    plan.check(_est(), roomy)
    # memory: one run per device (2 x 1000) + tables (10 runs x 2048 + 20 rows x 256)
    need = 2 * 1000 + 10 * plan.RUN_ROW_BYTES + 20 * plan.CURVES_ROW_BYTES
    plan.check(_est(), dataclasses.replace(roomy, host_memory=need))
    for lim in (
        dataclasses.replace(roomy, host_memory=need - 1),
        dataclasses.replace(roomy, disk=10 * 512 + 20 * 96 - 1),
        dataclasses.replace(roomy, shared=False, device_memory=1999),
    ):
        with pytest.raises(ConfigError, match="memory|disk"):
            plan.check(_est(), lim, yes=True)  # hard: yes does not help
    with pytest.raises(ConfigError, match="int32"):
        plan.check(_est(steps_per_run=2**31), roomy, yes=True)
    for field, bound in (("runs", plan.MAX_RUNS), ("steps_per_run", plan.MAX_STEPS_PER_RUN),
                         ("run_steps", plan.MAX_RUN_STEPS), ("curves_rows", plan.MAX_CURVES_ROWS),
                         ("programs", plan.MAX_PROGRAMS)):  # fmt: skip
        with pytest.raises(ConfigError, match="--yes") as err:
            plan.check(_est(run_bytes=0, **{field: bound + 1}), roomy)
        assert err.value.field == "sweep"
        plan.check(_est(run_bytes=0, **{field: bound + 1}), roomy, yes=True)


OPTIMIZERS = [
    Optimizer("sgd"),
    Optimizer("momentum", {"momentum": (0.5, 0.9)}),
    Optimizer("adam", {"b1": (0.8, 0.9, 0.95), "b2": 0.99}),
]
SCHEDULES = [
    Schedule("constant"),
    Schedule("step", {"gamma": (0.5, 0.1), "step_size": (2, 3)}),
    Schedule("exponential", {"gamma": 0.9}),
]


@settings(max_examples=25, deadline=None)
@given(
    lrs=st.integers(1, 3),
    seeds=st.integers(1, 3),
    optimizers=st.lists(st.sampled_from(range(3)), min_size=1, max_size=3, unique=True),
    schedules=st.lists(st.sampled_from(range(3)), min_size=1, max_size=3, unique=True),
    impls=st.sampled_from([("hand",), ("hand", "optax")]),
    batch_sizes=st.sampled_from([(), (32, 100)]),
    epochs=st.integers(1, 4),
)
def test_the_count_is_the_runs_table(lrs, seeds, optimizers, schedules, impls, batch_sizes,
                                     epochs):  # fmt: skip
    """Runs, curves rows, steps and programs from the axes equal those of the expanded table
    and of its static groups."""
    sweep = Sweep(
        experiment="test", model=MLPConfig(hidden=(8,)), epochs=epochs,
        lrs=tuple(10.0**-k for k in range(lrs)), seeds=tuple(range(seeds)),
        optimizers=tuple(OPTIMIZERS[k] for k in optimizers),
        schedules=tuple(SCHEDULES[k] for k in schedules), impls=impls, batch_sizes=batch_sizes,
    )  # fmt: skip
    try:
        sweep.validate()
    except ConfigError:
        return  # a combination the library refuses (a twin it does not have)
    runs = runs_table(sweep)
    est = plan.estimate(sweep)
    assert est.runs == len(runs)
    assert est.curves_rows == len(runs) * epochs
    sizes = batch_sizes or (32,)
    assert est.steps_per_run == epochs * -(-BLOBS_TRAIN // min(sizes))
    assert est.programs == len(list(spec.static_groups(sweep, runs)))


def test_a_study_counts_each_grid():
    study = Study("s", {"a": TINY, "b": dataclasses.replace(TINY, lrs=(0.1, 0.3, 0.5))})
    est = plan.estimate(study.validate())
    assert est.runs == len(runs_table(study)) == 5
    assert est.programs == 1


def test_static_axes_past_max_programs_are_refused_before_they_are_enumerated(monkeypatch):
    monkeypatch.setattr(plan, "MAX_PROGRAMS", 3)
    four = dataclasses.replace(TINY, batch_sizes=(8, 16), dtypes=("float32", "float64"))
    with pytest.raises(ConfigError, match=r"4 programs, more than the 3") as err:
        plan.estimate(four)
    assert err.value.field == "sweep"
    assert plan.estimate(four, yes=True).programs == 4
