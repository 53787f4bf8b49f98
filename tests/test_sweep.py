"""Static axes of a sweep: each combination of their values is one program, compiled once,
whose runs equal (bit for bit, same run_ids) those of the single-valued sweep of its values."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from lrbench import data, engine, runner, spec, tasks
from lrbench.errors import ConfigError
from lrbench.models import MLPConfig
from lrbench.sweep import Schedule, Sweep, expand

# Widths and batch sizes no other test module uses, so no program is in the compile cache yet.
HIDDENS = ((5,), (7, 3))
BATCHES = (40, 50)
BASE = Sweep(
    experiment="axes",
    dataset="blobs",
    model=MLPConfig(hidden=(50,)),
    epochs=3,
    lrs=(0.1, 0.01),
    seeds=(0, 1),
)
AXES = dataclasses.replace(BASE, hiddens=HIDDENS, batch_sizes=BATCHES)


def _single(hidden, batch) -> Sweep:
    return dataclasses.replace(BASE, model=MLPConfig(hidden=hidden), batch_size=batch)


def test_the_runs_table_has_a_column_per_static_axis():
    runs = expand(AXES)
    assert len(runs) == 2 * 2 * 2 * 2
    assert list(runs.columns[-3:]) == ["hidden", "batch_size", "seed"]
    combos = runs[["hidden", "batch_size"]].drop_duplicates().values.tolist()
    assert combos == [["5", 40], ["5", 50], ["7-3", 40], ["7-3", 50]]
    assert runs["run_id"].is_unique
    assert set(runs["model"]) == {"mlp(5)-relu", "mlp(7-3)-relu"}


def test_run_ids_are_those_of_the_single_valued_sweeps():
    runs = expand(AXES)
    for hidden in HIDDENS:
        for batch in BATCHES:
            alone = expand(_single(hidden, batch))
            label = "-".join(map(str, hidden))
            mine = runs[(runs["hidden"] == label) & (runs["batch_size"] == batch)]
            assert list(mine["run_id"]) == list(alone["run_id"])
            cols = [c for c in alone.columns if c != "experiment"]
            np.testing.assert_array_equal(mine[cols].to_numpy(), alone[cols].to_numpy())


def test_a_sweep_without_static_axes_keeps_its_run_ids():
    """The run_id is the SHA-1 of the run's configuration as canonical JSON, computed here from
    the documented fields (blobs_dynamics' SGD run at lr 1, seed 0, recorded before static
    axes existed: ``4d3a36e12b75``)."""
    sweep = Sweep(
        dataset="blobs",
        # the output layer took kernel_init then (output_init equal to it keeps the run_id)
        model=MLPConfig(
            hidden=(50,), activation="relu", kernel_init="he_uniform", output_init="he_uniform"
        ),
        epochs=200,
        batch_size=32,
        lrs=(1.0,),
        seeds=(0,),
    )
    config = {
        "dataset": "blobs",
        "model": {"hidden": [50], "activation": "relu", "kernel_init": "he_uniform"},
        "epochs": 200,
        "batch_size": 32,
        "dtype": "float32",
        "optimizer": "sgd",
        "impl": "hand",
        "hparams": {},
        "lr": 1.0,
        "schedule": "constant",
        "schedule_params": {"unit": "epoch", "warmup_steps": 0.0, "warmup_start_factor": 0.0},
        "seed": 0,
    }
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    want = hashlib.sha1(text.encode()).hexdigest()[:12]
    assert want == "4d3a36e12b75"
    (got,) = expand(sweep)["run_id"]
    assert got == want
    assert list(expand(sweep).columns[-1:]) == ["seed"]
    assert "batch_sizes" not in sweep.to_dict() and "hiddens" not in sweep.to_dict()
    # one batch size given as an axis: the same run, now with a batch_size column
    (again,) = expand(dataclasses.replace(sweep, batch_sizes=(32,)))["run_id"]
    assert again == want


@pytest.mark.slow
def test_each_static_combination_compiles_once_and_equals_its_own_sweep(compile_counter):
    """2 widths × 2 batch sizes: exactly 4 programs, 4 compiles; every run's history is bit
    for bit that of the single-valued sweep it belongs to."""
    for hidden in HIDDENS:  # the helpers outside the program: moving data, minibatch orders
        for batch in BATCHES:
            task = tasks.Classifier("blobs", MLPConfig(hidden=hidden))
            engine.arrays_for(engine.Static(task, "sgd", "hand", BASE.epochs, batch))
    for seed in BASE.seeds:
        data.minibatch_orders(seed, BASE.epochs, 500)
    with compile_counter.counting():
        runs, history, timing = runner.train(AXES)
    assert compile_counter.count == 4
    assert timing["programs"] == 4 and timing["trained_runs"] == len(runs) == 16
    statics = [static for static, _ in spec.static_groups(AXES, runs)]
    assert {(s.task.model.hidden, s.batch_size) for s in statics} == {
        (h, b) for h in HIDDENS for b in BATCHES
    }
    for hidden in HIDDENS:
        for batch in BATCHES:
            alone_runs, alone, _ = runner.train(_single(hidden, batch))
            rows = runs.index[runs["run_id"].isin(alone_runs["run_id"])].to_numpy()
            assert list(runs.loc[rows, "run_id"]) == list(alone_runs["run_id"])
            for a, b in zip(alone, history, strict=True):
                np.testing.assert_array_equal(np.asarray(b)[rows], np.asarray(a))
    # the widths and batch sizes really differ: no two combinations train alike
    finals = [history.train_loss[runs.index[(runs["hidden"] == "5") & (runs["batch_size"] == b)]]
              for b in BATCHES]  # fmt: skip
    assert not np.array_equal(finals[0], finals[1])


@pytest.mark.slow
def test_dtypes_and_tasks_are_axes(x64):
    """A dtype axis trains float32 and float64 programs (the float64 runs agree with the
    float32 ones to float32 rounding); a task axis trains the classifier and the regressor."""
    small = dataclasses.replace(BASE, model=MLPConfig(hidden=(6,)), lrs=(0.05,), seeds=(0,))
    runs, history, timing = runner.train(dataclasses.replace(small, dtypes=("float32", "float64")))
    assert list(runs["dtype"]) == ["float32", "float64"] and timing["programs"] == 2
    np.testing.assert_allclose(history.train_loss[1], history.train_loss[0], rtol=1e-4)
    assert not np.array_equal(history.train_loss[1], history.train_loss[0])
    both = dataclasses.replace(small, tasks=("classifier", "regressor"))
    runs, history, _ = runner.train(both)
    assert list(runs["task"]) == ["classifier", "regressor"]
    assert list(runs["model"]) == ["mlp(6)-relu", "mlp(6)-relu-mse"]
    statics = [s for s, _ in spec.static_groups(both, runs)]
    assert [type(s.task) for s in statics] == [tasks.Classifier, tasks.Regressor]


def test_bad_static_axes_name_the_field():
    with pytest.raises(ConfigError) as err:
        expand(dataclasses.replace(BASE, batch_size=64, batch_sizes=(32, 64)))
    assert err.value.field == "batch_sizes"
    with pytest.raises(ConfigError) as err:
        expand(dataclasses.replace(BASE, hiddens=((5,), (5,))))
    assert err.value.field == "hiddens"
    with pytest.raises(ConfigError) as err:
        expand(dataclasses.replace(BASE, batch_sizes=(32, 501)))
    assert err.value.field == "batch_size"
    with pytest.raises(ConfigError) as err:
        expand(dataclasses.replace(BASE, dtypes=("float16",)))
    assert err.value.field == "dtype"


def test_static_axes_from_the_command_line():
    """``--set batch_sizes=40,50 hiddens=5,7-3 dtypes=float32``: the sweep of those axes."""
    from lrbench import cli

    sweep = cli.apply_overrides(BASE, ["batch_sizes=40,50", "hiddens=5,7-3", "dtypes=float32"])
    assert (sweep.batch_sizes, sweep.hiddens, sweep.dtypes) == (BATCHES, HIDDENS, ("float32",))
    runs = expand(sweep)
    assert list(runs["run_id"]) == list(
        expand(dataclasses.replace(AXES, dtypes=("float32",)))["run_id"]
    )
    with pytest.raises(ConfigError) as err:
        cli.apply_overrides(BASE, ["hiddens=5,7-x"])
    assert err.value.field == "hiddens"


def _write_and_load(folder, config, runs):
    """Writes ``runs`` with a curve of 1/3 per run (a float64 value float32 cannot hold) and
    reads the folder back."""
    from lrbench import results

    curves = pd.DataFrame(
        {"run_id": runs["run_id"], "epoch": 1, "lr": 0.1, "train_loss": 1 / 3,
         "test_loss": 2 / 3, "test_acc": 0.5}
    )  # fmt: skip
    folder.mkdir()
    results.write_tables(folder, runs, curves, {"config": config.to_dict()})
    return results.load(folder)


def test_float64_curves_of_a_dtypes_axis_stay_float64(tmp_path):
    """``dtypes=("float32", "float64")``: the curves keep float64 (the float64 runs' digits);
    a float32-only axis, or a study whose one grid is float64, as their dtypes say."""
    from lrbench.study import Study

    one = dataclasses.replace(BASE, lrs=(0.1,), seeds=(0,))
    both = dataclasses.replace(one, dtypes=("float32", "float64"))
    _, curves, _ = _write_and_load(tmp_path / "both", both, expand(both))
    assert (curves["train_loss"] == 1 / 3).all() and (curves["test_loss"] == 2 / 3).all()
    only32 = dataclasses.replace(one, dtypes=("float32",))
    _, curves, _ = _write_and_load(tmp_path / "32", only32, expand(only32))
    assert (curves["train_loss"] == 0.33333334).all()  # float32: its shortest digits
    study = Study("s", {"a": one, "b": dataclasses.replace(one, dtype="float64", lrs=(0.2,))})
    from lrbench.study import expand as expand_study

    _, curves, _ = _write_and_load(tmp_path / "study", study, expand_study(study))
    assert (curves["train_loss"] == 1 / 3).all()


def test_the_hidden_column_reads_back_as_text(tmp_path):
    """``hidden`` is text in the runs table and in what ``results.load`` reads back, for
    one layer (``"5"``) as for several (``"7-3"``)."""
    for name, hiddens in (("one", ((5,), (6,))), ("several", HIDDENS)):
        sweep = dataclasses.replace(BASE, lrs=(0.1,), seeds=(0,), hiddens=hiddens)
        runs = expand(sweep)
        back, _, _ = _write_and_load(tmp_path / name, sweep, runs)
        want = ["-".join(map(str, h)) for h in hiddens]
        assert list(runs["hidden"]) == want and list(back["hidden"]) == want
        assert pd.read_csv(tmp_path / name / "runs.csv")["run_id"].tolist() == list(runs["run_id"])


@pytest.mark.parametrize("bad", [[np.array([])], 3, [None], ["step", 2]], ids=repr)
def test_a_schedule_unit_must_be_a_word(bad):
    """``unit`` is text: an array, a number or None in its place is refused naming ``unit``
    (an array inside a list once reached a truth test and raised numpy's own error)."""
    with pytest.raises(ConfigError) as info:
        Schedule("constant", {"unit": bad})
    assert info.value.field == "unit"
