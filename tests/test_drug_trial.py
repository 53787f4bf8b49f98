"""Seed 002: the drug-trial data, Keras' sigmoid head and L2 penalty, and the article's claims."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from experiments import drug_trial
from lrbench import check, claims, data, engine, models, spec, tasks
from lrbench.errors import ConfigError
from lrbench.models import MLPConfig
from lrbench.sweep import Optimizer, Sweep, expand

AGE_LO, AGE_HI = 13, 100


def _ages(x: np.ndarray) -> np.ndarray:
    return x[:, 0].astype(np.float64) * (AGE_HI - AGE_LO) + AGE_LO


def test_drug_trial_data_is_the_series_generator():
    ds = data.load("drug_trial")
    assert (len(ds.x_train), len(ds.x_test), ds.num_features, ds.num_classes) == (2100, 420, 1, 2)
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0  # min-max scaled on train
    for x, y, n in ((ds.x_train, ds.y_train, 1050), (ds.x_test, ds.y_test, 210)):
        ages = _ages(x)
        np.testing.assert_allclose(ages, np.round(ages), atol=1e-4)  # whole years
        assert ages.min() >= AGE_LO - 1e-4 and ages.max() <= AGE_HI + 1e-4
        old = ages >= 64.5
        assert old.sum() == n and (~old).sum() == n  # equal age groups
        # 95.2% typical: 1000 of 1050 (train) and 200 of 210 (test) per group
        assert (y[old] == 1).sum() == round(n * 20 / 21) and (y[~old] == 0).sum() == round(
            n * 20 / 21
        )
    data._REGISTRY["drug_trial"].cache_clear()
    again = data.load("drug_trial")
    np.testing.assert_array_equal(again.x_train, ds.x_train)


def _numpy_keras_sparse_cce(probs, labels, eps=1e-7):
    p = np.clip(probs, eps, 1 - eps)
    p = p / p.sum(axis=1, keepdims=True)  # Keras: probabilities renormalised to sum to one
    return -np.log(p[np.arange(len(labels)), labels])


def test_sigmoid_head_is_keras_sparse_categorical_crossentropy():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 6, (64, 2))
    logits[:4] = [[30.0, -30.0], [-30.0, 30.0], [40.0, 40.0], [-40.0, -40.0]]  # clipped corners
    labels = rng.integers(0, 2, 64)
    cfg = MLPConfig((16,), output="sigmoid")
    got = np.asarray(models.per_example_loss(cfg, jnp.asarray(logits), jnp.asarray(labels)))
    want = _numpy_keras_sparse_cce(1 / (1 + np.exp(-logits)), labels)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)


def test_softmax_head_is_log_softmax():
    rng = np.random.default_rng(1)
    logits, labels = rng.normal(0, 3, (32, 5)), rng.integers(0, 5, 32)
    got = np.asarray(models.per_example_loss(MLPConfig(), jnp.asarray(logits), jnp.asarray(labels)))
    shifted = logits - logits.max(axis=1, keepdims=True)
    want = -(shifted[np.arange(32), labels] - np.log(np.exp(shifted).sum(axis=1)))
    np.testing.assert_allclose(got, want, rtol=1e-5)


def _init(cfg: MLPConfig, seed: int = 0):
    net = models.build(cfg, 2)
    return net, net.init(jax.random.PRNGKey(seed), jnp.zeros((1, 1)))["params"]


def test_l2_penalty_is_keras_c_times_sum_of_squared_kernel():
    cfg = drug_trial.MODEL
    _, params = _init(cfg)
    kernel = np.asarray(params["Dense_1"]["kernel"], np.float64)
    assert kernel.shape == (16, 32)
    np.testing.assert_allclose(
        float(models.penalty(cfg, params)), 0.01 * np.sum(kernel**2), rtol=1e-5
    )
    assert float(models.penalty(MLPConfig((16, 32)), params)) == 0.0


@pytest.mark.slow
def test_engine_minimises_the_keras_objective():
    """The engine's initial training loss is the NumPy forward pass + L2 on the same weights."""
    cfg = drug_trial.MODEL
    static = engine.Static(
        tasks.Classifier("drug_trial", cfg), "adam", "hand", epochs=1, batch_size=10
    )
    sweep = Sweep(
        dataset="drug_trial", model=cfg, epochs=1, batch_size=10, lrs=(1e-3,),
        optimizers=(drug_trial.KERAS_ADAM,), seeds=(3,),
    )  # fmt: skip
    runs = expand(sweep)
    history, _ = engine.train_group(static, spec.run_data(static, runs))
    init_key, _ = jax.random.split(jax.random.PRNGKey(3))  # the engine's key for seed 3
    params = models.build(cfg, 2).init(init_key, jnp.zeros((1, 1)))["params"]
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
    ds = data.load("drug_trial")
    h = np.maximum(ds.x_train @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"], 0)
    h = np.maximum(h @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"], 0)
    z = h @ p["Dense_2"]["kernel"] + p["Dense_2"]["bias"]
    want = _numpy_keras_sparse_cce(1 / (1 + np.exp(-z)), ds.y_train).mean()
    want += 0.01 * np.sum(p["Dense_1"]["kernel"] ** 2)
    np.testing.assert_allclose(history.initial_train_loss[0], want, rtol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"output": "tanh"}, "output"),
        ({"kernel_l2": (0.01,)}, "kernel_l2"),  # one per dense layer: 2 here
        ({"kernel_l2": (0.0, -0.1)}, "kernel_l2"),
    ],
)
def test_bad_head_or_penalty_names_the_field(kwargs, field):
    with pytest.raises(ConfigError) as err:
        MLPConfig((16,), **kwargs)
    assert err.value.field == field


def test_run_ids_of_plain_mlps_are_unchanged_and_new_fields_count():
    import dataclasses
    import json

    from experiments import blobs_lr

    committed = pd.read_csv("results/blobs_lr/runs.csv")["run_id"]
    # the committed model as its meta.json describes it; a model recorded before
    # output_init existed had its output layer drawn from kernel_init
    model = json.load(open("results/blobs_lr/meta.json"))["config"]["model"]
    model.setdefault("output_init", model["kernel_init"])
    model = {**model, "hidden": tuple(model["hidden"]), "kernel_l2": tuple(model["kernel_l2"])}
    sweep = dataclasses.replace(blobs_lr.get_config(), model=MLPConfig(**model))
    assert set(expand(sweep)["run_id"]) == set(committed)
    plain = Sweep(dataset="drug_trial", model=MLPConfig((16, 32)), optimizers=(Optimizer("adam"),))
    sigmoid = Sweep(dataset="drug_trial", model=drug_trial.MODEL, optimizers=(Optimizer("adam"),))
    assert set(expand(plain)["run_id"]).isdisjoint(expand(sigmoid)["run_id"])
    assert drug_trial.MODEL.name == "mlp(16-32)-relu-sigmoid-l2"


def _runs(**columns) -> pd.DataFrame:
    """Two seeds at each of the sweep's learning rates; ``columns``: per lr, the two seeds."""
    lrs = drug_trial.get_config().lrs
    rows = [
        {"lr": lr, "seed": seed, **{c: v[i][seed] for c, v in columns.items()}}
        for i, lr in enumerate(lrs)
        for seed in (0, 1)
    ]
    return pd.DataFrame(rows)


def test_claims_measure_what_they_say_on_a_hand_built_table():
    # lrs 1e-1, 1e-2, 1e-3, 1e-4, 1e-5; two seeds each
    runs = _runs(
        final_test_acc=[(0.90, 0.92), (0.95, 0.93), (0.94, 0.96), (0.93, 0.91), (0.7, 0.8)],
        final_train_loss=[(0.30, 0.20), (0.21, 0.25), (0.24, 0.20), (0.4, 0.4), (0.9, 0.8)],
        loss_rises=[(0.5, 0.3), (0.2, 0.2), (0.1, 0.0), (0.0, 0.0), (0.0, 0.0)],
        epochs_to_target=[(1, 1), (1, 2), (2, 2), (10, np.nan), (np.nan, 29)],
    )
    table = claims.evaluate(drug_trial.CLAIMS, {"runs": runs})
    value = table["value"].to_dict()
    assert value["range_works"] == pytest.approx(0.92)  # lr 1e-4, the lowest mean in range
    assert (table.loc["range_works", "low"], table.loc["range_works", "high"]) == (0.91, 0.93)
    assert value["article_setting_learns"] == pytest.approx(0.92)
    # the range's most rising lr is 1e-2 (0.2): (0.5 - 0.2 + 0.3 - 0.2) / 2
    assert value["high_end_loss_rises"] == pytest.approx(0.2)
    # the range's lowest-loss lr is 1e-3 (mean 0.22): (0.30 - 0.24 + 0.20 - 0.20) / 2
    assert value["high_end_ends_higher"] == pytest.approx(0.03)
    assert value["low_end_below_target"] == 0.5
    assert value["low_end_loss_high"] == pytest.approx((0.9 / 0.24 + 0.8 / 0.20) / 2)
    assert list(table["held"]) == ["no", "no", "yes", "yes", "no", "yes"]


def test_a_run_without_the_low_end_leaves_its_claims_not_measured():
    runs = _runs(
        final_test_acc=[(0.9, 0.9)] * 5, final_train_loss=[(0.3, 0.3)] * 5,
        loss_rises=[(0.1, 0.1)] * 5, epochs_to_target=[(1, 1)] * 5,
    )  # fmt: skip
    runs = runs[runs["lr"] > 1e-5]
    table = claims.evaluate(drug_trial.CLAIMS, {"runs": runs})
    assert table.loc["low_end_loss_high", "held"] == "not measured"
    assert table.loc["low_end_below_target", "held"] == "not measured"


@pytest.fixture(scope="module")
def ci_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("ci") / "drug_trial"
    return drug_trial.run(drug_trial.ci_config(), out=out, quiet=True)


@pytest.mark.slow
def test_the_article_claims_reach_their_declared_verdicts_on_the_ci_run(ci_result):
    table = ci_result.meta["claims"]
    assert list(table.index) == [c.id for c in drug_trial.CLAIMS]
    assert (table["held"] == "yes").all(), table
    verdicts = check.claim_verdicts("drug_trial", drug_trial, ci_result.folder)
    assert len(verdicts) == len(drug_trial.CLAIMS) and verdicts["ok"].all()
    readme = (ci_result.folder / "README.md").read_text()
    assert "## The claims (6 of 6 held; `claims`)" in readme


@pytest.mark.slow
def test_lr_table_agrees_with_the_runs_table(ci_result):
    table = ci_result.meta["tables"]["learning_rates"]
    runs = ci_result.runs
    means = runs.groupby("lr")["final_test_acc"].mean()
    for lr, mean in means.items():
        assert table.loc[lr, "test_acc_mean"] == pytest.approx(mean, rel=1e-3)
    bayes = 400 / 420
    assert runs["final_test_acc"].max() <= bayes + 1e-6  # float32 accuracy
    assert table.loc[1e-3, "test_acc_mean"] > bayes - 0.02
