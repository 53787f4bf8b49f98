"""The Python API refuses what the command line refuses, with the same field and message:
types (bools and strings are not numbers), seeds outside the int32 range, scalars given for an
axis; and a refusal leaves nothing on disk."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lrbench import cli, runner
from lrbench.errors import ConfigError
from lrbench.models import MLPConfig
from lrbench.sweep import SEED_MAX, Optimizer, Schedule, Sweep, expand

BASE = Sweep(experiment="v", model=MLPConfig(hidden=(4,)), epochs=2, batch_size=64, lrs=(0.1,),
             seeds=(0,))  # fmt: skip


def _refused(field: str, **changes) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        expand(dataclasses.replace(BASE, **changes))
    assert info.value.field == field, info.value
    return info.value


@pytest.mark.parametrize(
    ("field", "changes"),
    [
        ("seeds", {"seeds": (2**32,)}),  # would alias seed 0 as int32 / uint32
        ("seeds", {"seeds": (2**31,)}),
        ("seeds", {"seeds": (2**70,)}),
        ("seeds", {"seeds": (-1,)}),
        ("seeds", {"seeds": (True,)}),
        ("seeds", {"seeds": (1.0,)}),
        ("seeds", {"seeds": ("1",)}),
        ("seeds", {"seeds": 3}),  # a scalar is not an axis (3 seeds or seed 3?)
        ("lr", {"lrs": ("0.1",)}),
        ("lr", {"lrs": (True,)}),
        ("lr", {"lrs": (None,)}),
        ("lr", {"lrs": 0.1}),
        ("lr", {"lrs": (float("nan"),)}),
        ("lr", {"lrs": ()}),
        ("epochs", {"epochs": True}),
        ("epochs", {"epochs": 2.0}),
        ("epochs", {"epochs": "2"}),
        ("batch_size", {"batch_size": True}),
        ("batch_size", {"batch_size": 1e9}),
        ("target_acc", {"target_acc": "0.5"}),
        ("target_acc", {"target_acc": True}),
        ("target_acc", {"target_acc": None}),
        ("optimizer", {"optimizers": (3,)}),
        ("optimizer", {"optimizers": "sgd"}),
        ("optimizer", {"optimizers": ("adamm",)}),
        ("schedule", {"schedules": (None,)}),
        ("schedule", {"schedules": ("zigzag",)}),
        ("impl", {"impls": "hand"}),
        ("impl", {"impls": (None,)}),
        ("schedule_impl", {"schedule_impls": ([],)}),
        ("dtype", {"dtype": ["float32"]}),
        ("validation_freq", {"validation_freq": True}),
        ("validation_freq", {"validation_freq": 3}),  # > epochs: no epoch would be evaluated
        ("hiddens", {"hiddens": (5, 7)}),
        ("hiddens", {"hiddens": ((5,), (0,))}),
        ("batch_sizes", {"batch_sizes": (True,)}),
        ("dtypes", {"dtypes": (32,)}),
        ("tasks", {"tasks": (None,)}),
        ("experiment", {"experiment": None}),
        ("description", {"description": 3}),
        ("dataset", {"dataset": None}),
        ("model", {"model": (4,)}),
        ("task", {"task": None}),
        ("hidden", {"model": MLPConfig(hidden=(True,))}),
    ],
    ids=lambda v: repr(v) if isinstance(v, dict) else v,
)
def test_bad_values_name_their_field(field, changes):
    _refused(field, **changes)


def test_optimizer_and_schedule_entries_check_their_own_fields():
    for make, field in (
        (lambda: Optimizer("sgd", None), "optimizer"),
        (lambda: Optimizer(None), "optimizer"),
        (lambda: Optimizer("adamm"), "optimizer"),
        (lambda: Schedule("step", [1]), "schedule"),
        (lambda: Schedule(3), "schedule"),
    ):
        with pytest.raises(ConfigError) as info:
            make()
        assert info.value.field == field


def test_seed_range_edges_are_distinct_streams():
    """The largest seed is accepted; seeds are int32 random streams, so every accepted seed is
    its own stream (``jax.random.PRNGKey`` of 0 and of 2**31 - 1 differ)."""
    import jax

    assert SEED_MAX == 2**31 - 1
    runs = expand(dataclasses.replace(BASE, seeds=(0, SEED_MAX)))
    assert list(runs["seed"]) == [0, SEED_MAX]
    a, b = (np.asarray(jax.random.PRNGKey(s)) for s in (0, SEED_MAX))
    assert not np.array_equal(a, b)


def test_names_numpy_and_sequences_are_accepted():
    """An optimizer or schedule named by a string is that rule at its defaults; numpy integers
    and floats are numbers; a list, range or 1-d array is an axis."""
    sweep = dataclasses.replace(
        BASE,
        optimizers=("sgd", Optimizer("momentum")),
        schedules=["constant"],
        lrs=np.array([0.1, 0.01]),
        seeds=range(2),
        epochs=np.int64(2),
    )
    assert sweep.optimizers == (Optimizer("sgd"), Optimizer("momentum"))
    assert sweep.schedules == (Schedule("constant"),)
    assert sweep.lrs == (0.1, 0.01) and sweep.seeds == (0, 1) and sweep.epochs == 2
    assert all(type(v) is float for v in sweep.lrs) and type(sweep.epochs) is int
    same = dataclasses.replace(
        BASE, optimizers=(Optimizer("sgd"), Optimizer("momentum")), lrs=(0.1, 0.01), seeds=(0, 1)
    )
    assert list(expand(sweep)["run_id"]) == list(expand(same)["run_id"])


def test_api_and_cli_say_the_same():
    """The same bad value through ``Sweep`` and through ``--set``: the same field and message."""
    for field, changes, sets in (
        ("seeds", {"seeds": (2**32,)}, ["seeds=4294967296"]),
        ("lr", {"lrs": (-1.0,)}, ["lr=-1"]),
        ("epochs", {"epochs": 0}, ["epochs=0"]),
        ("validation_freq", {"validation_freq": 3}, ["validation_freq=3"]),
        ("optimizer", {"optimizers": ("adamm",)}, ["optimizer=adamm"]),
        ("impl", {"impls": ("torch",)}, ["impl=torch"]),
    ):
        api = _refused(field, **changes)
        with pytest.raises(ConfigError) as info:
            cli.apply_overrides(BASE, sets)
        assert (info.value.field, info.value.message) == (api.field, api.message)


def test_a_refused_seed_leaves_nothing_on_disk(tmp_path):
    """``seeds=2**70`` through ``runner.run(out=...)``: refused before ``<out>.partial/``."""
    sweep = dataclasses.replace(BASE)
    object.__setattr__(sweep, "seeds", (2**70,))  # past the constructor's own check
    with pytest.raises(ConfigError) as info:
        runner.run(sweep, out=tmp_path / "o", quiet=True)
    assert info.value.field == "seeds"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("argv", "start"),
    [
        (["--seeds", "abc"], "lrbench: error: --seeds: 'abc' is not an integer"),
        (["--seeds", "4294967296"], "lrbench: error: --seeds: "),
        (["--seeds", "2", "--set", "seeds=0,1"], "lrbench: error: --seeds: "),
        (["--set", "lr=0.1", "--set", "lr=0.2"], "lrbench: error: lr: "),
        (["--set", "lr=0.1", "--set", "lrs=0.2"], "lrbench: error: lr: "),
        (["--set", "epochs=2", "--set", "validation_freq=3"], "lrbench: error: validation_freq: "),
        (["--process-index", "x"], "lrbench: error: --process-index: 'x' is not an integer"),
    ],
)
def test_cli_refusals(argv, start, tmp_path, capsys):
    out = tmp_path / "o"
    assert cli.main(["run", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(start), err
    assert not out.exists()


def test_lr_find_refuses_a_seed_outside_int32(tmp_path, capsys):
    out = tmp_path / "lf"
    assert cli.main(["lr-find", "--set", "seed=4294967296", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lrbench: error: seed: seed 4294967296 must be in [0, 2147483647]"), err
    assert not out.exists()


def test_output_init_is_set_from_the_command_line():
    """``--set output_init=`` reaches the model, and a bad name is refused as the API does."""
    sweep = cli.apply_overrides(BASE, ["output_init=he_normal"])
    assert sweep.model.output_init == "he_normal" and sweep.model.kernel_init == "he_uniform"
    with pytest.raises(ConfigError) as api:
        MLPConfig(hidden=(4,), output_init="zeros")
    with pytest.raises(ConfigError) as line:
        cli.apply_overrides(BASE, ["output_init=zeros"])
    assert (line.value.field, line.value.message) == (api.value.field, api.value.message)


def test_meta_records_lrbench_version_under_its_distribution_name():
    """The distribution is ``lrbench-jax``: meta.json's ``versions.lrbench`` still finds it."""
    from importlib import metadata

    from lrbench import results

    assert results.environment()["versions"]["lrbench"] == metadata.version("lrbench-jax")
