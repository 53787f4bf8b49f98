"""Data sets as specified, Keras-style initialisers, vmapped initialisation over seeds."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrbench import data, models
from lrbench.errors import ConfigError
from lrbench.models import MLPConfig


def test_blobs_is_the_tutorial_split():
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n_samples=1000, centers=3, n_features=2, cluster_std=2, random_state=2)
    ds = data.load("blobs")
    np.testing.assert_allclose(ds.x_train, x[:500], rtol=1e-6)
    np.testing.assert_allclose(ds.x_test, x[500:], rtol=1e-6)
    np.testing.assert_array_equal(ds.y_train, y[:500])
    assert ds.num_classes == 3 and ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32


@pytest.mark.parametrize(
    ("name", "classes", "features"), [("digits", 10, 64), ("iris", 3, 4), ("moons", 2, 2)]
)
def test_shapes_and_standardization(name, classes, features):
    ds = data.load(name)
    assert ds.num_classes == classes and ds.num_features == features
    assert len(ds.x_train) >= len(ds.x_test) > 0
    assert set(np.unique(ds.y_train)) == set(range(classes))
    if name in ("digits", "iris"):  # standardized with the training statistics
        np.testing.assert_allclose(ds.x_train.mean(0), 0, atol=1e-5)
        std = ds.x_train.std(0)
        np.testing.assert_allclose(std[std > 0], 1, rtol=1e-4)


def test_split_is_fixed():
    a = data.load("digits")
    data._REGISTRY["digits"].cache_clear()
    b = data.load("digits")
    np.testing.assert_array_equal(a.y_test, b.y_test)


def test_unknown_dataset():
    with pytest.raises(ConfigError, match="dataset"):
        data.load("cifar")


def test_minibatch_orders_are_each_seeds_permutations():
    """Once per distinct seed, batched over epochs and spread over devices: the same orders
    as one ``jax.random.permutation`` per seed and epoch, laid out as the seeds are."""
    seeds = np.array([[3, 0], [3, 11]])
    orders = data.minibatch_orders(seeds, 4, 37)
    assert orders.shape == (2, 2, 4, 37) and orders.dtype == np.int32
    for (i, j), seed in np.ndenumerate(seeds):
        order_key = jax.random.split(jax.random.PRNGKey(int(seed)))[1]
        for epoch in range(4):
            one = jax.random.permutation(jax.random.fold_in(order_key, epoch), 37)
            np.testing.assert_array_equal(orders[i, j, epoch], one)
    assert len({orders[0, 0, e].tobytes() for e in range(4)}) == 4  # epochs differ
    assert data.minibatch_orders(5, 2, 37).shape == (2, 37)


def test_he_uniform_matches_keras():
    """Keras he_uniform: U(-limit, limit), limit = sqrt(6 / fan_in); biases zero."""
    net = models.build(MLPConfig(hidden=(400,), kernel_init="he_uniform"), 3)
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 300)))["params"]
    kernel = np.asarray(params["Dense_0"]["kernel"])
    limit = np.sqrt(6 / 300)
    assert kernel.shape == (300, 400)
    assert np.abs(kernel).max() <= limit
    assert np.abs(kernel).max() > 0.99 * limit  # it fills the interval
    np.testing.assert_allclose(kernel.var(), limit**2 / 3, rtol=0.02)  # variance of U(-a, a)
    np.testing.assert_array_equal(params["Dense_0"]["bias"], 0)


def test_glorot_uniform_matches_keras():
    net = models.build(MLPConfig(hidden=(200,), kernel_init="glorot_uniform"), 3)
    kernel = np.asarray(
        net.init(jax.random.PRNGKey(1), jnp.zeros((1, 100)))["params"]["Dense_0"]["kernel"]
    )
    limit = np.sqrt(6 / (100 + 200))
    assert np.abs(kernel).max() <= limit
    np.testing.assert_allclose(kernel.var(), limit**2 / 3, rtol=0.03)


@pytest.mark.slow
def test_init_many_equals_one_by_one():
    cfg = MLPConfig(hidden=(16, 8))
    net = models.build(cfg, 4)
    keys = jax.random.split(jax.random.PRNGKey(0), 5)
    many = models.init_many(net, keys, 3)
    for i, k in enumerate(keys):
        one = net.init(k, jnp.zeros((1, 3)))["params"]
        for a, b in zip(
            jax.tree_util.tree_leaves(many), jax.tree_util.tree_leaves(one), strict=True
        ):
            np.testing.assert_array_equal(a[i], b)
    assert models.num_params(one) == 3 * 16 + 16 + 16 * 8 + 8 + 8 * 4 + 4


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"activation": "swishy"}, "activation"),
        ({"kernel_init": "ones"}, "kernel_init"),
        ({"output_init": "zeros"}, "output_init"),
        ({"output_init": ["glorot_uniform"]}, "output_init"),
        ({"hidden": (0,)}, "hidden"),
    ],
)
def test_bad_model_config(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        MLPConfig(**kwargs)


class _FlaxMLP(models.nn.Module):
    """The same MLP written with ``nn.Dense`` for every layer: NarrowDense's and
    BiasTrickDense's twin."""

    hidden: tuple
    num_outputs: int

    @models.nn.compact
    def __call__(self, x):
        init = models.KERNEL_INITS["he_uniform"]
        for width in self.hidden:
            x = models.nn.relu(models.nn.Dense(width, kernel_init=init)(x))
        output_init = models.nn.initializers.glorot_uniform()  # MLPConfig's output_init default
        return models.nn.Dense(self.num_outputs, kernel_init=output_init)(x)


@pytest.mark.parametrize("num_inputs", [1, models.NARROW, models.NARROW + 1])
@pytest.mark.parametrize("num_outputs", [1, models.NARROW])
def test_narrow_layers_equal_nn_dense(num_inputs, num_outputs, x64):
    """A narrow output layer (one matrix-vector product per column) and a first layer with
    narrow inputs (its bias in its product) have nn.Dense's parameters, names and initial
    values, and give its outputs and gradients (float64)."""
    net = models.build(MLPConfig(hidden=(7, 6)), num_outputs)
    twin = _FlaxMLP((7, 6), num_outputs)
    x = jax.random.normal(jax.random.PRNGKey(1), (5, num_inputs), jnp.float64)
    params = net.init(jax.random.PRNGKey(0), x)["params"]
    twin_params = twin.init(jax.random.PRNGKey(0), x)["params"]
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(twin_params)
    for a, b in zip(
        jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(twin_params), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    params = jax.tree_util.tree_map(lambda p: p.astype(jnp.float64) + 0.1, params)  # nonzero bias

    def loss(module):
        return lambda p: jnp.sum(jnp.sin(module.apply({"params": p}, x)))

    np.testing.assert_allclose(
        net.apply({"params": params}, x), twin.apply({"params": params}, x), rtol=1e-13
    )
    grads, twin_grads = jax.grad(loss(net))(params), jax.grad(loss(twin))(params)
    for a, b in zip(
        jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(twin_grads), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_wide_layers_are_nn_dense():
    net = models.build(MLPConfig(hidden=(7,)), models.NARROW + 1)
    x = jnp.zeros((1, models.NARROW + 1))
    params = net.init(jax.random.PRNGKey(0), x)["params"]
    assert params["Dense_1"]["kernel"].shape == (7, models.NARROW + 1)
    table = str(net.tabulate(jax.random.PRNGKey(0), x))
    assert "NarrowDense" not in table and "BiasTrickDense" not in table
    narrow = models.build(MLPConfig(hidden=(7, 6)), 3)
    table = str(narrow.tabulate(jax.random.PRNGKey(0), jnp.zeros((1, 2))))
    assert table.count("BiasTrickDense") == 1 and "NarrowDense" in table  # the first layer only


def _uniform_bound(name: str, fan_in: int, fan_out: int) -> float:
    """Keras' documented limits: glorot_uniform sqrt(6/(fan_in+fan_out)), he_uniform
    sqrt(6/fan_in)."""
    return {"glorot_uniform": np.sqrt(6 / (fan_in + fan_out)), "he_uniform": np.sqrt(6 / fan_in)}[
        name
    ]


@pytest.mark.parametrize("num_outputs", [3, 20])  # NarrowDense and nn.Dense output layers
@pytest.mark.parametrize(
    ("kernel_init", "output_init"),
    [("he_uniform", "glorot_uniform"), ("glorot_uniform", "he_uniform")],
)
def test_output_layer_follows_output_init(kernel_init, output_init, num_outputs):
    """Over 200 seeds, each layer's initial kernel is uniform on ±its initialiser's bound
    (Kolmogorov–Smirnov against the bound computed here); the hidden layers (the first one a
    BiasTrickDense: 4 inputs) follow ``kernel_init``, the output layer ``output_init``, and
    the other initialiser's bound is rejected (widths chosen so the two bounds differ)."""
    from scipy import stats

    widths = [4, 10, 12, num_outputs]
    cfg = MLPConfig(hidden=(10, 12), kernel_init=kernel_init, output_init=output_init)
    params = models.init_many(
        models.build(cfg, num_outputs), jax.random.split(jax.random.PRNGKey(3), 200), 4
    )
    for layer in range(3):
        fan_in, fan_out = widths[layer], widths[layer + 1]
        kernel = np.asarray(params[f"Dense_{layer}"]["kernel"]).ravel()
        np.testing.assert_array_equal(params[f"Dense_{layer}"]["bias"], 0)
        want = output_init if layer == 2 else kernel_init
        other = kernel_init if layer == 2 else output_init
        bound = _uniform_bound(want, fan_in, fan_out)
        assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.99 * bound
        assert stats.kstest(kernel, stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-3
        wrong = _uniform_bound(other, fan_in, fan_out)
        assert stats.kstest(kernel, stats.uniform(-wrong, 2 * wrong).cdf).pvalue < 1e-6


def test_output_init_in_the_run_id_only_where_it_changes_the_model():
    """``output_init`` equal to ``kernel_init`` is the model from before the field (the
    output layer took ``kernel_init``): its configuration, hence its run_id, is the old one;
    Keras' default output layer under another hidden initialiser is a model of its own."""
    from lrbench.tasks.mlp import Classifier

    old = {"hidden": (50,), "activation": "relu", "kernel_init": "he_uniform"}
    same = Classifier(model=MLPConfig(hidden=(50,), output_init="he_uniform")).config()
    assert same == {"model": old}
    keras = Classifier(model=MLPConfig(hidden=(50,))).config()
    assert keras == {"model": {**old, "output_init": "glorot_uniform"}}
    glorot = MLPConfig(hidden=(16,), kernel_init="glorot_uniform")  # deeplizard's: unchanged
    assert "output_init" not in Classifier(model=glorot).config()["model"]
