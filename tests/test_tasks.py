"""Tasks: each built-in task against an independent computation, a task of one's own
(docs/tasks.md), and the sweep's task field."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from lrbench import data, runner, tasks
from lrbench.errors import ConfigError
from lrbench.models import MLPConfig
from lrbench.sweep import Sweep, expand

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "tasks.md"


def _train(sweep):
    runs, history, _ = runner.train(sweep)
    return runs, history


def test_quadratic_follows_the_closed_form_of_gradient_descent():
    """Full batch on ½·Σλ_i(w_i − 1)² from w = 0: L_t = ½·Σ λ_i (1 − ηλ_i)^(2t), and the
    step 2.2/λ_max (above 2/λ_max) diverges while 1.9/λ_max converges."""
    lam = (4.0, 1.0, 0.25)
    task = tasks.Quadratic(eigenvalues=lam)
    lrs = (0.1, 1.9 / 4, 2.2 / 4)
    sweep = Sweep(task=task, epochs=30, batch_size=3, lrs=lrs, seeds=(0,), dtype="float64")
    runs, h = _train(sweep)
    lam_ = np.asarray(lam)
    for i, lr in enumerate(runs["lr"]):
        t = np.arange(1, 31)[:, None]
        want = 0.5 * np.sum(lam_ * (1 - lr * lam_) ** (2 * t), -1)  # the loss after t steps
        # train_loss is the mean minibatch loss of the epoch: the loss *before* its one step
        before = 0.5 * np.sum(lam_ * (1 - lr * lam_) ** (2 * (t - 1)), -1)
        np.testing.assert_allclose(h.train_loss[i], before, rtol=1e-10)
        np.testing.assert_allclose(h.test_loss[i], want, rtol=1e-10)
    assert h.test_loss[2, -1] > h.test_loss[2, 0] > h.test_loss[1, 0]  # 2.2/λ_max grows


@pytest.mark.slow
def test_neuron_is_the_delta_rule_sample_by_sample():
    """batch_size 1: the engine's neuron equals a NumPy delta-rule loop over the same
    sample orders (data.minibatch_orders), w ← w + α·(t − w·x)·x from w0 = −1."""
    task = tasks.Neuron()
    ds = task.data()
    sweep = Sweep(task=task, epochs=3, batch_size=1, lrs=(0.05, 0.3), seeds=(4,), dtype="float64")
    runs, h = _train(sweep)
    orders = data.minibatch_orders(np.array([4]), 3, len(ds.x_train))[0]
    x, t = ds.x_train[:, 0].astype(np.float64), ds.y_train.astype(np.float64)
    xt, tt = ds.x_test[:, 0].astype(np.float64), ds.y_test.astype(np.float64)
    for i, lr in enumerate(runs["lr"]):
        w = -1.0
        for epoch in range(3):
            for k in orders[epoch]:
                w = w + lr * (t[k] - w * x[k]) * x[k]
            np.testing.assert_allclose(h.test_loss[i, epoch], 0.5 * np.mean((tt - w * xt) ** 2),
                                       rtol=1e-9)  # fmt: skip
            np.testing.assert_allclose(h.test_acc[i, epoch], np.mean(np.abs(w * xt - tt) <= 0.1))


@pytest.mark.slow
def test_regressor_is_half_the_squared_error_to_one_hot_labels():
    """The initial training loss of the MSE MLP equals ½·Σ(z − onehot)² recomputed here
    from the same initial weights (flax init of the seed's key), averaged over examples."""
    model = MLPConfig(hidden=(16,))
    sweep = Sweep(task="regressor", dataset="iris", model=model, epochs=2, batch_size=35,
                  lrs=(0.01,), seeds=(1,), dtype="float64")  # fmt: skip
    runs, h = _train(sweep)
    ds = data.load("iris")
    clf = tasks.Classifier("iris", model)
    with jax.enable_x64(True):
        params = clf.init(data.seed_keys(1)[0], ds.x_train[:1])
        z = np.asarray(clf.apply(params, jnp.asarray(ds.x_train, jnp.float64)), np.float64)
    onehot = np.eye(3)[ds.y_train]
    np.testing.assert_allclose(h.initial_train_loss[0], 0.5 * np.mean(np.sum((z - onehot) ** 2, 1)),
                               rtol=1e-6)  # fmt: skip
    assert runs.loc[0, "task"] == "regressor" and runs.loc[0, "model"].endswith("-mse")
    assert np.isfinite(h.test_acc).all()  # accuracy of the argmax on a classification set


@pytest.mark.slow
def test_a_regressor_on_float_targets_records_no_accuracy():
    task = tasks.Regressor(dataset="line", model=MLPConfig(hidden=(4,)))
    runs, h = _train(Sweep(task=task, epochs=2, batch_size=10, lrs=(0.01,), seeds=(0,)))
    assert np.isnan(h.test_acc).all() and np.isfinite(h.test_loss).all()


def test_classifier_run_ids_are_those_results_were_published_with():
    """The default task keeps the run_ids of the committed results (results/blobs_lr,
    written before tasks existed)."""
    import experiments

    published = pd.read_csv(ROOT / "results" / "blobs_lr" / "runs.csv")
    # the published model as its meta.json describes it (a model recorded before output_init
    # existed had its output layer drawn from kernel_init)
    model = json.loads((ROOT / "results" / "blobs_lr" / "meta.json").read_text())["config"]["model"]
    model.setdefault("output_init", model["kernel_init"])
    model = {**model, "hidden": tuple(model["hidden"]), "kernel_l2": tuple(model["kernel_l2"])}
    config = dataclasses.replace(
        experiments.load("blobs_lr").get_config(), model=MLPConfig(**model)
    )
    runs = expand(config)
    assert list(runs["run_id"]) == list(published["run_id"])
    assert (runs["task"] == "classifier").all()


def _docs_example() -> str:
    """The worked example: the page's first Python block (later ones are snippets)."""
    return re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)[0]


@pytest.mark.slow
def test_the_docs_1d_cnn_trains_through_the_engine(capsys):
    """docs/tasks.md's own-task example, run as written (3 epochs): one program, every run
    learns (test accuracy above chance), the run_ids name the task."""
    namespace = {"EPOCHS": 3}
    exec(compile(_docs_example(), str(DOCS), "exec"), namespace)  # noqa: S102
    result = namespace["result"]
    assert result.meta["programs"] == 1 and len(result.runs) == 6
    assert (result.runs["final_test_acc"] > 0.3).all()  # 10 classes: chance is 0.1
    assert (result.runs["task"] == "DigitsCNN").all()
    other = dataclasses.replace(namespace["sweep"].task, channels=4)
    assert set(expand(dataclasses.replace(namespace["sweep"], task=other))["run_id"]).isdisjoint(
        result.runs["run_id"]
    )
    assert "final_test_acc" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"task": "nope"}, "task"),
        ({"task": 3}, "task"),
        ({"task": tasks.Neuron(), "dataset": "iris"}, "dataset"),
        ({"task": tasks.Neuron(), "model": MLPConfig((3,))}, "model"),
        ({"task": "quadratic", "model": MLPConfig((3,))}, "model"),
    ],
)
def test_bad_task_settings_name_their_field(kwargs, field):
    with pytest.raises(ConfigError) as err:
        Sweep(epochs=1, **kwargs).validate()
    assert err.value.field == field


def test_quadratic_refuses_bad_eigenvalues():
    with pytest.raises(ConfigError, match="eigenvalues"):
        tasks.Quadratic(eigenvalues=(1.0, -2.0))


def test_neuron_data_seed_draws_the_line_with_that_seed():
    """``data_seed`` s: ``t = 2x + ε`` drawn with NumPy's ``default_rng(s)`` in float64 (written
    out here); seed 0 is the shipped ``line`` set; the default neuron's run_ids stay as they
    were (no ``data_seed`` in its configuration)."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-np.sqrt(3), np.sqrt(3), 50)
    t = 2 * x + 0.5 * rng.normal(size=50)
    x_test = rng.uniform(-np.sqrt(3), np.sqrt(3), 200)
    ds = tasks.Neuron(data_seed=3).data()
    assert ds.x_train.dtype == np.float64 and ds.num_classes == 0
    np.testing.assert_array_equal(ds.x_train[:, 0], x)
    np.testing.assert_array_equal(ds.y_train, t)
    np.testing.assert_array_equal(ds.y_test, 2 * x_test)
    shipped = data.load("line")
    np.testing.assert_array_equal(
        tasks.Neuron(data_seed=0).data().x_train.astype(np.float32), shipped.x_train
    )
    assert "data_seed" not in tasks.Neuron().config()
    assert tasks.Neuron(data_seed=3).config()["data_seed"] == 3
    with pytest.raises(ConfigError, match="data_seed"):
        tasks.Neuron(dataset="blobs", data_seed=1)


@pytest.mark.parametrize(("bias_input", "s"), [("one", lambda x: 1.0), ("x", lambda x: x)])
def test_perceptron_error_passes_the_clip_as_if_it_were_not_there(bias_input, s, x64):
    """The gradient of ``½·(t − y)²`` is the perceptron's signal ``−(t − y)·[s, x]``, also
    where ``y = min(b + W·x, 250)`` is clipped (written out here); the output is clipped."""
    task = tasks.Perceptron(bias_input=bias_input)
    params = {"w": jnp.asarray([0.05, 2.0], jnp.float64)}
    for x, t in ((60.0, 60.0), (300.0, 250.0), (-50.0, -50.0)):
        xs = jnp.asarray([x], jnp.float64)
        y = min(0.05 * 1 + 2.0 * x, 250.0)
        assert float(task.apply(params, xs)) == y
        grad = jax.grad(lambda p, xs=xs, t=t: task.loss(task.apply(p, xs), t))(params)["w"]
        np.testing.assert_array_equal(grad, [-(t - y) * s(x), -(t - y) * x])
    assert not task.shuffle and tasks.Neuron.shuffle
