"""Data sets by name: every one comes from a package that ships it, nothing is downloaded.

Each loader returns a :class:`Dataset` of NumPy arrays with a fixed train/test split, so a
run is reproducible from its name alone. Features are float32, labels int32 class indices.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lrbench.errors import ConfigError


class Dataset(NamedTuple):
    """A data set with a fixed split: class labels, or float targets when ``num_classes`` is 0."""

    name: str
    x_train: np.ndarray  # [n_train, d] float32
    y_train: np.ndarray  # [n_train] int32 labels (float32 targets of a regression set)
    x_test: np.ndarray  # [n_test, d] float32
    y_test: np.ndarray  # [n_test] int32 (float32)
    num_classes: int  # 0: a regression set

    @property
    def num_features(self) -> int:
        return self.x_train.shape[1]


_REGISTRY: dict[str, Callable[[], Dataset]] = {}


def register(name: str):
    """Adds a loader to the registry under ``name`` (a decorator)."""

    def deco(fn: Callable[[], Dataset]) -> Callable[[], Dataset]:
        _REGISTRY[name] = functools.cache(fn)
        return fn

    return deco


def names() -> list[str]:
    return sorted(_REGISTRY)


def load(name: str) -> Dataset:
    """Returns the data set registered as ``name`` (cached: loaded once per process)."""
    if name not in _REGISTRY:
        raise ConfigError("dataset", f"unknown data set {name!r}; allowed: {', '.join(names())}")
    return _REGISTRY[name]()


def seed_keys(seed) -> tuple[jax.Array, jax.Array]:
    """A run's two random streams from its seed: ``(init_key, order_key)``, for its initial
    weights and its minibatch orders. Runs of one seed share both (common random numbers)."""
    init_key, order_key = jax.random.split(jax.random.PRNGKey(seed))
    return init_key, order_key


def seed_orders(seed, epochs: int, n_train: int) -> jax.Array:
    """``[epochs, n_train]``: one seed's minibatch orders, epoch ``e`` being
    ``jax.random.permutation(fold_in(order_key, e), n_train)`` (traceable)."""
    order_key = seed_keys(seed)[1]
    epoch = jnp.arange(epochs, dtype=jnp.int32)
    return jax.vmap(lambda e: jax.random.permutation(jax.random.fold_in(order_key, e), n_train))(
        epoch
    )


@functools.cache
def _orders_of_seed(epochs: int, n_train: int):
    return jax.jit(lambda seed: seed_orders(seed, epochs, n_train))


def minibatch_orders(seeds, epochs: int, n_train: int) -> np.ndarray:
    """Every epoch's order of the ``n_train`` training examples for each seed:
    ``[*seeds.shape, epochs, n_train]`` int32, :func:`seed_orders` of each.

    Computed once per distinct seed (the runs of a sweep share a few seeds), the seeds spread
    over the local devices so their sorts run side by side.
    """
    seeds = np.asarray(seeds, np.int32)
    unique, inverse = np.unique(seeds, return_inverse=True)
    devices = jax.local_devices()
    fn = _orders_of_seed(epochs, n_train)
    parts = [fn(jax.device_put(s, devices[i % len(devices)])) for i, s in enumerate(unique)]
    orders = np.stack([np.asarray(part, np.int32) for part in parts])
    return orders[inverse.reshape(-1)].reshape(*seeds.shape, epochs, n_train)


def _pack(name, x_train, y_train, x_test, y_test, num_classes=None) -> Dataset:
    y_train = np.asarray(y_train, np.int32)
    y_test = np.asarray(y_test, np.int32)
    if num_classes is None:
        num_classes = int(max(y_train.max(), y_test.max())) + 1
    return Dataset(
        name,
        np.asarray(x_train, np.float32),
        y_train,
        np.asarray(x_test, np.float32),
        y_test,
        num_classes,
    )


def _standardize(x_train, x_test):
    """Scales features with the training set's mean and std (constant columns left at 0)."""
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (x_train - mean) / std, (x_test - mean) / std


def _shuffled_split(x, y, test_fraction: float, seed: int):
    """A fixed, stratification-free shuffled split (seeded)."""
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


@register("blobs")
def blobs() -> Dataset:
    """Three Gaussian blobs in 2-D, exactly as the Machine Learning Mastery tutorial.

    ``make_blobs(n_samples=1000, centers=3, n_features=2, cluster_std=2, random_state=2)``,
    the first 500 rows for training and the last 500 for testing; features are not scaled.
    """
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n_samples=1000, centers=3, n_features=2, cluster_std=2, random_state=2)
    return _pack("blobs", x[:500], y[:500], x[500:], y[500:], 3)


@register("moons")
def moons() -> Dataset:
    """Two interleaving half-moons: ``make_moons(1000, noise=0.2, random_state=0)``, 500/500."""
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=1000, noise=0.2, random_state=0)
    return _pack("moons", x[:500], y[:500], x[500:], y[500:], 2)


@register("digits")
def digits() -> Dataset:
    """scikit-learn's shipped 8x8 digits (1,797 images, 10 classes), 25% test, standardized."""
    from sklearn.datasets import load_digits

    d = load_digits()
    xtr, ytr, xte, yte = _shuffled_split(d.data, d.target, 0.25, seed=0)
    xtr, xte = _standardize(xtr, xte)
    return _pack("digits", xtr, ytr, xte, yte, 10)


@register("iris")
def iris() -> Dataset:
    """scikit-learn's shipped iris (150 flowers, 3 classes), 30% test, standardized."""
    from sklearn.datasets import load_iris

    d = load_iris()
    xtr, ytr, xte, yte = _shuffled_split(d.data, d.target, 0.3, seed=0)
    xtr, xte = _standardize(xtr, xte)
    return _pack("iris", xtr, ytr, xte, yte, 3)


def _drug_trial_ages(rng: np.random.Generator, n_typical: int, n_atypical: int):
    """deeplizard's generator: per group, ``n_typical`` people whose side effects follow their
    age group and ``n_atypical`` who do not; ages drawn like Python's ``randint`` (inclusive)."""
    young = lambda n: rng.integers(13, 65, n)  # noqa: E731  13 ... 64
    old = lambda n: rng.integers(65, 101, n)  # noqa: E731  65 ... 100
    ages = np.concatenate([young(n_atypical), old(n_atypical), young(n_typical), old(n_typical)])
    effects = np.concatenate(
        [np.ones(n_atypical), np.zeros(n_atypical), np.zeros(n_typical), np.ones(n_typical)]
    )
    order = rng.permutation(len(ages))
    return ages[order].astype(np.float64), effects[order]


@register("drug_trial")
def drug_trial() -> Dataset:
    """deeplizard's synthetic drug trial: one feature (age), label 1 = had side effects.

    Ages 13–100. In each set about 95% of people aged 65+ have side effects and about 95% of
    those under 65 do not: train = 1,000 typical + 50 atypical per age group (2,100 people),
    test = 200 + 10 per group (420). Ages are min-max scaled to [0, 1] with the training
    set's range (the series rescales with ``MinMaxScaler``). Seeded: the same arrays always.
    The best any classifier can do is about 95.2% (the atypical share).
    """
    rng = np.random.default_rng(2017)
    x_train, y_train = _drug_trial_ages(rng, 1000, 50)
    x_test, y_test = _drug_trial_ages(rng, 200, 10)
    lo, hi = x_train.min(), x_train.max()
    scale = lambda a: ((a - lo) / (hi - lo))[:, None]  # noqa: E731
    return _pack("drug_trial", scale(x_train), y_train, scale(x_test), y_test, 2)


def noisy_line(seed: int) -> Dataset:
    """A noisy line for one linear neuron (seed 000), drawn with ``seed``: ``t = 2·x + ε``,
    ``x ~ U(−√3, √3)`` (unit variance), ``ε ~ N(0, 0.5²)``; 50 training and 200 test
    examples, the test targets noise-free; float64 (a run casts it to its dtype). A
    regression set (``num_classes`` 0, float targets)."""
    rng = np.random.default_rng(seed)
    half = np.sqrt(3.0)
    x = rng.uniform(-half, half, 50)
    t = 2.0 * x + 0.5 * rng.normal(size=50)
    x_test = rng.uniform(-half, half, 200)
    return Dataset("line", x[:, None], t, x_test[:, None], 2.0 * x_test, 0)


@register("line")
def line() -> Dataset:
    """:func:`noisy_line` of seed 0 in float32: the same arrays always."""
    d = noisy_line(0)
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    return Dataset("line", f32(d.x_train), f32(d.y_train), f32(d.x_test), f32(d.y_test), 0)
