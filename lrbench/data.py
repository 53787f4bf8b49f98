"""Data sets by name: shipped by a package, generated, or read from the user's own file;
nothing is downloaded.

Each loader returns a :class:`Dataset` of NumPy arrays with a fixed train/test split, so a
run is reproducible from its name alone. Features are float32, labels int32 class indices
(float32 targets for a regression set, ``num_classes`` 0).

A name is a registered data set (``iris``), a registered generator with its parameters
(``mnist1d(num_samples=2000, shuffle_seq=true)``: ``name(key=value, ...)``, parameters not
given keep their defaults) or a file: ``path/to/data.npz``, ``.csv`` or ``.parquet``, with
the reading parameters in the same syntax (``data.csv(target=price, test_fraction=0.25)``).
:func:`canonical` writes a name in its one form (parameters sorted, defaults dropped): the
``dataset`` field of a sweep is static, so the name alone selects the data and the program.
A file's content is part of every run's identity (:func:`identity`): a changed file is a
different data set.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from lrbench._lazy import lazy
from lrbench.errors import ConfigError

# Imported on first use: the registry's names are read by ``lrbench list`` without JAX.
jax = lazy("jax")
jnp = lazy("jax.numpy")


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


_REGISTRY: dict[str, Callable[..., Dataset]] = {}
_PARAMS: dict[str, dict[str, Any]] = {}  # a generator's parameters and their defaults
FILE_SUFFIXES = (".npz", ".csv", ".parquet")


def register(name: str, params: dict[str, Any] | None = None):
    """Adds a loader to the registry under ``name`` (a decorator); ``params`` (name ->
    default: a bool, int, float or str) are the keyword arguments of a generator, given in
    the data set's name as ``name(key=value, ...)``."""

    def deco(fn: Callable[..., Dataset]) -> Callable[..., Dataset]:
        _REGISTRY[name] = functools.cache(fn)
        _PARAMS[name] = dict(params or {})
        return fn

    return deco


def names() -> list[str]:
    """Registered data sets; a generator's with its parameters, ``mnist1d(num_samples, ...)``."""
    return [f"{n}({', '.join(_PARAMS[n])})" if _PARAMS[n] else n for n in sorted(_REGISTRY)]


def load(name: str) -> Dataset:
    """Returns the data set ``name`` (see the module's docstring); cached: a registered set is
    loaded once per process, a file again whenever it changed on disk.

    Raises:
      ConfigError: ``dataset``, in one line: an unknown name, an unknown or bad parameter, or
        (naming the file) what is wrong with a file.
    """
    base, params = _parse(name)
    if is_file(base):
        return _load_file(canonical(name), _file_version(base))
    return _REGISTRY[base](**params)


def canonical(name: str) -> str:
    """``name`` in its one form: parameters checked, sorted and given only when they differ
    from their defaults (``mnist1d(num_samples=5000)`` is ``mnist1d``), no spaces. An unknown
    name is returned as it is (:func:`load` refuses it)."""
    if not isinstance(name, str):
        return name
    try:
        base, params = _parse(name)
    except ConfigError:
        if "(" in name or name.strip().lower().endswith(FILE_SUFFIXES):
            raise
        return name  # an unknown name: load() says so, listing the allowed ones
    defaults = _file_params(base) if is_file(base) else _PARAMS[base]
    given = {k: v for k, v in sorted(params.items()) if v != defaults[k]}
    if not given:
        return base
    return f"{base}({','.join(f'{k}={_format(v)}' for k, v in given.items())})"


def is_file(name: str) -> bool:
    """Whether ``name`` (without its parameters) is a data file: ``.npz``, ``.csv`` or
    ``.parquet``."""
    return isinstance(name, str) and name.lower().endswith(FILE_SUFFIXES)


def identity(name: str) -> dict[str, str]:
    """What a run's identity holds beyond the name: ``{"dataset_sha256": <the file's
    SHA-256>}`` for a file (so a changed file never passes for the old one: new run_ids, a
    new configuration hash), ``{}`` for a registered set (its name is its content)."""
    if not is_file(_base(name)):
        return {}  # a custom task's own name is left alone as well
    base, _ = _parse(name)
    return {"dataset_sha256": _file_sha256(base, _file_version(base))}


def digest(ds: Dataset) -> str:
    """SHA-256 of a data set's arrays (shapes, dtypes and bytes, in the order x_train,
    y_train, x_test, y_test): what was trained on, recorded in ``meta.json``."""
    h = hashlib.sha256()
    for a in (ds.x_train, ds.y_train, ds.x_test, ds.y_test):
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def describe(sweep) -> dict[str, dict[str, Any]]:
    """``meta.json``'s ``datasets``: for the data set of each task of ``sweep`` (a Sweep or a
    Study: anything with ``parts()``), its sizes, classes, :func:`digest` and, for a file,
    the file's SHA-256; keyed by the data set's name (``name#2``, ... for a task whose own
    data differ under the same name)."""
    found: dict[str, dict[str, Any]] = {}
    for _, part in sweep.parts():
        task = part.task_spec
        ds = task.data()
        entry = {
            "n_train": len(ds.x_train),
            "n_test": len(ds.x_test),
            "features": ds.num_features,
            "num_classes": ds.num_classes,
            "sha256": digest(ds),
        }
        entry.update({k.replace("dataset_", "file_"): v for k, v in identity(task.dataset).items()})
        key, n = task.dataset, 1
        while found.get(key, entry) != entry:
            n += 1
            key = f"{task.dataset}#{n}"
        found[key] = entry
    return found


def version(name: str):
    """What changes when the data behind ``name`` changes within a process (a file's size and
    modification time; ``None`` for a registered set): the engine keys its per-data-set
    caches on it."""
    base = _base(name)
    return _file_version(base) if is_file(base) else None


def _base(name) -> str:
    """``name`` without its parameters."""
    return name.partition("(")[0].strip() if isinstance(name, str) else name


# ---------------------------------------------------------------------------------------------
# Names with parameters: ``base(key=value, ...)``

_NAME = re.compile(r"^\s*(?P<base>[^()]+?)\s*(?:\((?P<args>[^()]*)\))?\s*$")


def _parse(name: str) -> tuple[str, dict[str, Any]]:
    """``(base, parameters)`` of a name, every parameter checked against its declaration."""
    if not isinstance(name, str):
        raise ConfigError("dataset", f"dataset={name!r} must be a string")
    m = _NAME.match(name)
    if not m:
        raise ConfigError(
            "dataset",
            f"{name!r} is not a data set name: give name or name(key=value, ...), "
            "e.g. mnist1d(num_samples=2000,shuffle_seq=true)",
        )
    base, args = m.group("base"), m.group("args")
    if is_file(base):
        declared = _file_params(base)
    elif base in _REGISTRY:
        declared = _PARAMS[base]
    else:
        allowed = ", ".join(names())
        raise ConfigError(
            "dataset",
            f"unknown data set {base!r}; allowed: {allowed}, or a file "
            f"({', '.join(FILE_SUFFIXES)})",
        )
    params = dict(declared)
    if args is None or not args.strip():
        return base, params
    for item in args.split(","):
        key, eq, text = (t.strip() for t in item.partition("="))
        if not eq or not key:
            raise ConfigError(
                "dataset", f"{name!r}: {item.strip()!r} is not key=value (parameters: "
                f"{', '.join(declared) or 'none'})"
            )  # fmt: skip
        if key not in declared:
            what = ", ".join(declared) if declared else "none"
            raise ConfigError(
                "dataset", f"{name!r}: unknown parameter {key!r} of {base!r}; allowed: {what}"
            )
        params[key] = _value(name, key, text, declared[key])
    _check_params(name, base, params)
    return base, params


def _value(name: str, key: str, text: str, default):
    """``text`` read as the type of ``default``."""
    kind = type(default)
    try:
        if kind is bool:
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        if kind is int:
            return int(text)
        if kind is float:
            value = float(text)
            if not np.isfinite(value):
                raise ValueError
            return value
    except ValueError:
        want = {bool: "true or false", int: "an integer", float: "a finite number"}[kind]
        raise ConfigError("dataset", f"{name!r}: {key}={text!r} must be {want}") from None
    if not text:
        raise ConfigError("dataset", f"{name!r}: {key}= is empty")
    return text


def _format(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def _check_params(name: str, base: str, params: dict[str, Any]) -> None:
    """Ranges of the parameters (one line naming the first that is out of range)."""

    def need(ok: bool, key: str, rule: str):
        if not ok:
            raise ConfigError("dataset", f"{name!r}: {key}={_format(params[key])} must be {rule}")

    for key, value in params.items():
        if key in ("seed", "teacher_seed"):
            need(0 <= value < 2**32, key, "an integer in [0, 2**32)")
        elif key.endswith("_scale") or key in ("noise", "scale_coeff"):
            need(value >= 0, key, ">= 0")
        elif key in ("train_split", "test_fraction"):
            need(0 < value < 1, key, "in (0, 1)")
        elif key == "labels":
            need(value in ("auto", "classes", "values"), key, "auto, classes or values")
        elif isinstance(value, int) and not isinstance(value, bool):
            need(value >= 1, key, "an integer >= 1")
    if base == "mnist1d":
        need(params["num_samples"] >= 20, "num_samples", ">= 20 (two examples per class)")
        need(params["max_translation"] >= 1, "max_translation", ">= 1")


# ---------------------------------------------------------------------------------------------
# MNIST-1D (Greydanus & Kobak), generated by its package and cached in the user's cache

MNIST1D_PARAMS = {
    "num_samples": 5000,  # split 4000 / 1000 by train_split
    "train_split": 0.8,
    "scale_coeff": 0.4,
    "max_translation": 48,
    "corr_noise_scale": 0.25,
    "iid_noise_scale": 2e-2,
    "shear_scale": 0.75,
    "shuffle_seq": False,
    "final_seq_length": 40,
    "seed": 42,
}


def data_cache() -> Path:
    """Where generated data sets are kept: ``data/`` beside the compilation cache's folder
    (``$XDG_CACHE_HOME/lrbench/data``, else ``~/.cache/lrbench/data``)."""
    from lrbench import compile_cache

    return compile_cache.cache_home() / "data"


def mnist1d_args(**params):
    """The ``mnist1d`` package's ``get_dataset_args()`` with ``params`` put in (no download
    URL is ever used: the set is generated)."""
    from mnist1d.data import get_dataset_args

    args = get_dataset_args()
    for key, value in params.items():
        setattr(args, key, value)
    return args


def mnist1d_cache_path(**params) -> Path:
    """The cache file of the MNIST-1D set of ``params``: keyed by a hash of every generator
    argument and the package's version."""
    from importlib import metadata

    args = {k: v for k, v in vars(mnist1d_args(**params)).items() if k != "url"}
    key = json.dumps({"args": args, "mnist1d": metadata.version("mnist1d")}, sort_keys=True)
    return data_cache() / f"mnist1d-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def _generate_mnist1d(**params) -> dict[str, np.ndarray]:
    """``make_dataset(get_dataset_args())`` with ``params``; the package seeds NumPy's and
    Python's global generators, whose states are put back afterwards."""
    from mnist1d.data import make_dataset

    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        d = make_dataset(mnist1d_args(**params))
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)
    return {"x_train": d["x"], "y_train": d["y"], "x_test": d["x_test"], "y_test": d["y_test"]}


@register("mnist1d", MNIST1D_PARAMS)
def mnist1d(**params) -> Dataset:
    """MNIST-1D (Greydanus & Kobak, "Scaling down deep learning with MNIST-1D"): 1-D signals of
    ``final_seq_length`` (40) points, 10 classes, 4,000 training and 1,000 test examples by
    default, as the package's ``make_dataset(get_dataset_args())`` builds them (features
    centred and scaled by the package itself). Generated once, then read back from the cache
    file of its arguments (:func:`mnist1d_cache_path`)."""
    params = {**MNIST1D_PARAMS, **params}
    path = mnist1d_cache_path(**params)
    arrays = None
    if path.is_file():
        try:
            with np.load(path) as z:
                arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test")}
        except (OSError, KeyError, ValueError):
            arrays = None  # a damaged cache file: generated again
    if arrays is None:
        arrays = _generate_mnist1d(**params)
        _write_cache(path, arrays)
    name = canonical("mnist1d(" + ",".join(f"{k}={_format(v)}" for k, v in params.items()) + ")")
    if not len(arrays["y_test"]) or not len(arrays["y_train"]):
        raise ConfigError("dataset", f"{name!r}: an empty split (give more num_samples)")
    return _pack(name, arrays["x_train"], arrays["y_train"], arrays["x_test"],
                 arrays["y_test"], 10)  # fmt: skip


def _write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Writes ``arrays`` to ``path`` through a temporary file and a rename; a cache folder that
    cannot be written is skipped (the set is generated again next time)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError:
        pass


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


def _sklearn(loader: str, test_fraction: float):
    """``sklearn.datasets.<loader>()`` split with seed 0, its features standardized with the
    training split's statistics: ``x_train, y_train, x_test, y_test``."""
    import sklearn.datasets

    d = getattr(sklearn.datasets, loader)()
    xtr, ytr, xte, yte = _shuffled_split(d.data, d.target, test_fraction, seed=0)
    xtr, xte = _standardize(xtr, xte)
    return xtr, ytr, xte, yte


@register("digits")
def digits() -> Dataset:
    """scikit-learn's shipped 8x8 digits (1,797 images, 10 classes), 25% test, standardized."""
    xtr, ytr, xte, yte = _sklearn("load_digits", 0.25)
    return _pack("digits", xtr, ytr, xte, yte, 10)


@register("iris")
def iris() -> Dataset:
    """scikit-learn's shipped iris (150 flowers, 3 classes), 30% test, standardized."""
    xtr, ytr, xte, yte = _sklearn("load_iris", 0.3)
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


# ---------------------------------------------------------------------------------------------
# More sets shipped by scikit-learn, and the teacher-student regression set


@register("wine")
def wine() -> Dataset:
    """scikit-learn's shipped wine (178 wines, 13 features, 3 classes), 25% test, standardized
    with the training split's statistics."""
    xtr, ytr, xte, yte = _sklearn("load_wine", 0.25)
    return _pack("wine", xtr, ytr, xte, yte, 3)


@register("breast_cancer")
def breast_cancer() -> Dataset:
    """scikit-learn's shipped Wisconsin breast cancer (569 tumours, 30 features, 2 classes),
    25% test, standardized with the training split's statistics."""
    xtr, ytr, xte, yte = _sklearn("load_breast_cancer", 0.25)
    return _pack("breast_cancer", xtr, ytr, xte, yte, 2)


@register("diabetes")
def diabetes() -> Dataset:
    """scikit-learn's shipped diabetes (442 patients, 10 features, a disease-progression score):
    a regression set (``num_classes`` 0, for ``task=regressor``), 25% test; features and
    target standardized with the training split's statistics (the score's mean ≈ 152 and std
    ≈ 77 would otherwise set the loss's scale)."""
    xtr, ytr, xte, yte = _sklearn("load_diabetes", 0.25)
    ytr, yte = _standardize(ytr[:, None], yte[:, None])
    return _regression("diabetes", xtr, ytr[:, 0], xte, yte[:, 0])


TEACHER_PARAMS = {"n_train": 1000, "n_test": 1000, "features": 20, "hidden": 50,
                  "noise": 0.1, "seed": 0}  # fmt: skip


def teacher(params: dict, x: np.ndarray) -> np.ndarray:
    """The teacher of :func:`teacher_student`: ``a · tanh(W x + b) / √hidden``, its weights
    ``W ~ N(0, 1/features)``, ``b ~ N(0, 1)``, ``a ~ N(0, 1)`` drawn by
    ``default_rng(seed)`` before the inputs (float64)."""
    rng = np.random.default_rng(params["seed"])
    d, h = params["features"], params["hidden"]
    w = rng.normal(size=(d, h)) / np.sqrt(d)
    b = rng.normal(size=h)
    a = rng.normal(size=h)
    return np.tanh(x @ w + b) @ a / np.sqrt(h)


@register("teacher_student", TEACHER_PARAMS)
def teacher_student(**params) -> Dataset:
    """A random MLP teacher and noisy targets, the classic setting of learning-rate theory: a
    regression set (``num_classes`` 0). With ``rng = default_rng(seed)``: the teacher's
    weights first (:func:`teacher`), then ``x ~ N(0, I)`` (``n_train`` then ``n_test`` rows of
    ``features``), then the noise ``noise · N(0, 1)`` of the training targets, then of the
    test targets: ``y = teacher(x) + noise · ε`` in both splits (the best test loss is the
    noise's)."""
    params = {**TEACHER_PARAMS, **params}
    rng = np.random.default_rng(params["seed"])
    d, h = params["features"], params["hidden"]
    rng.normal(size=(d, h)), rng.normal(size=h), rng.normal(size=h)  # the teacher's draws
    x_train = rng.normal(size=(params["n_train"], d))
    x_test = rng.normal(size=(params["n_test"], d))
    y_train = teacher(params, x_train) + params["noise"] * rng.normal(size=params["n_train"])
    y_test = teacher(params, x_test) + params["noise"] * rng.normal(size=params["n_test"])
    name = canonical(
        "teacher_student(" + ",".join(f"{k}={_format(v)}" for k, v in params.items()) + ")"
    )
    return _regression(name, x_train, y_train, x_test, y_test)


def _regression(name, x_train, y_train, x_test, y_test) -> Dataset:
    f32 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    return Dataset(name, f32(x_train), f32(y_train), f32(x_test), f32(y_test), 0)


# ---------------------------------------------------------------------------------------------
# Bring your own: .npz, .csv, .parquet


def _file_params(base: str) -> dict[str, Any]:
    """A file's reading parameters and their defaults (``target`` for a table only)."""
    params = {"test_fraction": 0.2, "seed": 0, "labels": "auto", "standardize": False}
    if not base.lower().endswith(".npz"):
        params["target"] = "target"
    return params


def _file_version(base: str):
    """``(size, mtime_ns, inode)`` of the file, or refuses a missing one."""
    path = Path(base).expanduser()
    try:
        st = path.stat()
    except OSError:
        raise ConfigError("dataset", f"{base!r}: no such file") from None
    if not path.is_file():
        raise ConfigError("dataset", f"{base!r}: not a file")
    return (st.st_size, st.st_mtime_ns, st.st_ino)


@functools.lru_cache(maxsize=64)
def _file_sha256(base: str, version) -> str:
    del version  # the cache key: hashed again whenever the file changed
    h = hashlib.sha256()
    with open(Path(base).expanduser(), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@functools.lru_cache(maxsize=16)
def _load_file(name: str, version) -> Dataset:
    """A file's data set (``version``: the cache key, see :func:`version`)."""
    del version
    base, params = _parse(name)
    where = repr(base)
    try:
        if base.lower().endswith(".npz"):
            arrays = _read_npz(base, where)
        else:
            arrays = _read_table(base, where, params["target"])
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001  whatever a reader raises: one line naming the file
        raise ConfigError(
            "dataset", f"{where}: cannot be read ({type(err).__name__}: {_first_line(err)})"
        ) from None
    return _file_dataset(name, where, arrays, params)


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else "no detail"


def _read_npz(base: str, where: str) -> dict[str, np.ndarray]:
    try:
        z = np.load(Path(base).expanduser(), allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ConfigError("dataset", f"{where}: not a .npz archive ({_first_line(err)})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ConfigError("dataset", f"{where}: not a .npz archive (a single .npy array)")
    with z:
        keys = set(z.files)
        for group in (("x_train", "y_train", "x_test", "y_test"), ("x", "y")):
            if keys.issuperset(group):
                try:
                    return {k: z[k] for k in group}
                except ValueError as err:  # object arrays need pickle, which is refused
                    raise ConfigError(
                        "dataset", f"{where}: an array is not numeric ({_first_line(err)})"
                    ) from None
    have = ", ".join(sorted(keys)) or "none"
    raise ConfigError(
        "dataset",
        f"{where}: missing arrays: give x_train, y_train, x_test, y_test, or x, y "
        f"(split by test_fraction and seed); the file has: {have}",
    )


def _read_table(base: str, where: str, target: str) -> dict[str, np.ndarray]:
    import pandas as pd

    path = Path(base).expanduser()
    if base.lower().endswith(".csv"):
        try:
            frame = pd.read_csv(path)
        except pd.errors.EmptyDataError:
            raise ConfigError("dataset", f"{where}: empty file (no header, no rows)") from None
    else:
        frame = pd.read_parquet(path)  # pyarrow is a base dependency
    frame.columns = [str(c) for c in frame.columns]
    if target not in frame.columns:
        raise ConfigError(
            "dataset",
            f"{where}: no column {target!r} (columns: {', '.join(frame.columns) or 'none'}); "
            "name the target column with target=NAME",
        )
    for column in frame.columns:
        values = frame[column]
        if not (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)):
            bad = values[pd.to_numeric(values, errors="coerce").isna() & values.notna()]
            example = f" (e.g. {bad.iloc[0]!r} in row {bad.index[0] + 1})" if len(bad) else ""
            raise ConfigError("dataset", f"{where}: column {column!r} is not numeric{example}")
    features = [c for c in frame.columns if c != target]
    if not features:
        raise ConfigError("dataset", f"{where}: no feature column beside {target!r}")
    return {"x": frame[features].to_numpy(np.float64), "y": frame[target].to_numpy(np.float64)}


def _file_dataset(name: str, where: str, arrays: dict, params: dict) -> Dataset:
    """Checks a file's arrays and makes its data set (split, labels, standardization)."""
    for key, a in arrays.items():
        if a.dtype.kind not in "biuf":
            raise ConfigError("dataset", f"{where}: array {key!r} is not numeric (dtype {a.dtype})")
    arrays = {k: np.asarray(a, np.float64) for k, a in arrays.items()}
    for key, a in arrays.items():
        if key.startswith("x"):
            if a.ndim == 1:
                arrays[key] = a = a[:, None]
            if a.ndim != 2:
                raise ConfigError(
                    "dataset", f"{where}: {key} must be [rows, features] (it is {a.shape})"
                )
        else:
            if a.ndim == 2 and a.shape[1] == 1:
                arrays[key] = a = a[:, 0]
            if a.ndim != 1:
                raise ConfigError(
                    "dataset", f"{where}: {key} must be one value a row (it is {a.shape})"
                )
    pairs = (("x", "y"),) if "x" in arrays else (("x_train", "y_train"), ("x_test", "y_test"))
    for xk, yk in pairs:
        if len(arrays[xk]) != len(arrays[yk]):
            raise ConfigError(
                "dataset",
                f"{where}: mismatched lengths: {xk} has {len(arrays[xk])} rows, "
                f"{yk} {len(arrays[yk])}",
            )
    if "x_test" in arrays and arrays["x_train"].shape[1] != arrays["x_test"].shape[1]:
        raise ConfigError(
            "dataset",
            f"{where}: mismatched features: x_train has {arrays['x_train'].shape[1]} columns, "
            f"x_test {arrays['x_test'].shape[1]}",
        )
    for key, a in arrays.items():
        bad = np.argwhere(~np.isfinite(a))
        if len(bad):
            at = f"row {bad[0][0] + 1}" + (f", column {bad[0][1] + 1}" if a.ndim == 2 else "")
            what = "features" if key.startswith("x") else "targets"
            raise ConfigError("dataset", f"{where}: NaN or inf in the {what} {key} ({at})")
    if "x" in arrays:
        n = len(arrays["x"])
        xtr, ytr, xte, yte = _shuffled_split(
            arrays["x"], arrays["y"], params["test_fraction"], params["seed"]
        )
        if not len(xtr) or not len(xte):
            split = "training" if not len(xtr) else "test"
            raise ConfigError(
                "dataset",
                f"{where}: empty {split} split ({n} rows, test_fraction "
                f"{_format(params['test_fraction'])})",
            )
    else:
        xtr, ytr, xte, yte = (arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
        for key, a in (("x_train", xtr), ("x_test", xte)):
            if not len(a):
                raise ConfigError("dataset", f"{where}: empty split: {key} has no rows")
    if params["standardize"]:
        xtr, xte = _standardize(xtr, xte)
    y = np.concatenate([ytr, yte])
    integral = bool(np.all(y == np.round(y)))
    labels = params["labels"]
    if labels == "values" or (labels == "auto" and not integral):
        return _regression(name, xtr, ytr, xte, yte)
    if not integral:
        example = y[y != np.round(y)][0]
        raise ConfigError(
            "dataset",
            f"{where}: labels are not integers (e.g. {example:g}); a classifier needs class "
            "indices 0, 1, ... (labels=values reads them as regression targets)",
        )
    if y.min() < 0:
        raise ConfigError(
            "dataset", f"{where}: labels must be class indices >= 0 (found {y.min():g})"
        )
    return _pack(name, xtr, ytr, xte, yte, int(y.max()) + 1)
