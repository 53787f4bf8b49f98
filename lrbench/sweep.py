"""What to run: a frozen ``Sweep`` config and its expansion into one row per run.

A sweep is the product of its axes: optimizers (each with a grid over its hyperparameters)
× implementations × schedules (each with a grid over its parameters) × learning rates ×
seeds, and, when given, the static axes (tasks, hidden layer sizes, batch sizes, dtypes),
each value of which selects its own compiled program. :func:`expand` returns that product as
a DataFrame; each row's ``run_id`` is a hash of the run's own configuration only, so it does
not depend on the order of axes or values, and a run of a static axis has the run_id it has
in the single-valued sweep of its values.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from lrbench import data, rules, schedules, tasks
from lrbench.errors import ConfigError
from lrbench.models import MLPConfig
from lrbench.tasks import Task

DTYPES = ("float32", "float64")
# Seeds enter the engine as int32 (``jax.random.PRNGKey`` and the minibatch orders of
# ``data.minibatch_orders``): every seed in [0, SEED_MAX] is a random stream of its own, and
# one outside would alias another (2**32 trains as 0), so it is refused.
SEED_MAX = 2**31 - 1
# Static axes: the Sweep field of each -> (the single-valued field it takes the place of, the
# runs-table column that holds its value; None where the table already names it: ``task``).
STATIC_AXES = {
    "tasks": ("task", None),
    "hiddens": ("hidden", "hidden"),
    "batch_sizes": ("batch_size", "batch_size"),
    "dtypes": ("dtype", "dtype"),
}


def _as_tuple(v) -> tuple:
    return tuple(v) if isinstance(v, list | tuple) else (v,)


def _is_int(v) -> bool:
    """A whole number: ``int`` or a numpy integer, never a bool."""
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _is_number(v) -> bool:
    """A real number: an int or a float (numpy's included), never a bool or a string."""
    return _is_int(v) or isinstance(v, float | np.floating)


def _plain(v):
    """A numpy scalar as the Python number it holds (JSON and run_ids see plain numbers)."""
    return v.item() if isinstance(v, np.integer | np.floating) else v


def _axis(field: str, value, example: str) -> tuple:
    """An axis given as a tuple, list, range or 1-d array -> a tuple of plain values.

    A scalar is refused rather than guessed at (is ``seeds=3`` seed 3 or three seeds?)."""
    if isinstance(value, np.ndarray) and value.ndim == 1:
        value = value.tolist()
    if not isinstance(value, list | tuple | range):
        raise ConfigError(field, f"{value!r} is not an axis; give a tuple, e.g. {example}")
    return tuple(_plain(v) for v in value)


def _grid(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``{"a": (1, 2), "b": 3}`` -> ``[{"a": 1, "b": 3}, {"a": 2, "b": 3}]``."""
    keys = list(values)
    axes = [_as_tuple(values[k]) for k in keys]
    for k, axis in zip(keys, axes, strict=True):
        if not axis:
            raise ConfigError(k, "empty axis: give at least one value")
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*axes)]


def _check_grid(field: str, name: str, grid, text: tuple[str, ...] = ()) -> dict[str, Any]:
    """A grid is a mapping of parameter names to a number or an axis of numbers (a tuple,
    list, range or 1-d array; ``text`` names the parameters whose values are words, such as a
    schedule's ``unit``); returns it with numpy numbers as plain ones. Which names and values
    a rule or kind takes is checked, by name, when its points are resolved."""
    if not isinstance(grid, Mapping) or not all(isinstance(k, str) for k in grid):
        raise ConfigError(
            field, f"{name}: {grid!r} is not a grid; give a dict of names to values or tuples"
        )
    out = {}
    for key, value in grid.items():
        if isinstance(value, np.ndarray) and value.ndim == 1:
            value = value.tolist()
        values = tuple(value) if isinstance(value, list | tuple | range) else (value,)
        for v in values:
            if key in text and not isinstance(v, str):
                raise ConfigError(key, f"{v!r} is not a word")
            if key not in text and not _is_number(v):
                raise ConfigError(key, f"{v!r} is not a number")
        plain = tuple(_plain(v) for v in values)
        out[key] = plain if isinstance(value, list | tuple | range) else plain[0]
    return out


@dataclasses.dataclass(frozen=True)
class Optimizer:
    """An optimizer axis entry: a rule name and a grid over its hyperparameters.

    ``Optimizer("momentum", {"momentum": (0.5, 0.9, 0.99)})`` is three points of the grid.
    Hyperparameters left out take the rule's defaults (``lrbench.rules.spec(name).hparams``).
    """

    name: str
    hparams: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise ConfigError(
                "optimizer",
                f"{self.name!r} is not an optimizer name; allowed: {', '.join(rules.names())}",
            )
        rules.spec(self.name)
        object.__setattr__(self, "hparams", _check_grid("optimizer", self.name, self.hparams))

    def points(self) -> list[dict[str, float]]:
        return [rules.resolve(self.name, point) for point in _grid(self.hparams)]


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A schedule axis entry: a kind and a grid over its parameters (``unit`` included)."""

    kind: str = "constant"
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.kind, str):
            raise ConfigError(
                "schedule",
                f"{self.kind!r} is not a schedule kind; allowed: {', '.join(schedules.kinds())}",
            )
        schedules.kind(self.kind)
        grid = _check_grid("schedule", self.kind, self.params, text=("unit",))
        object.__setattr__(self, "params", grid)

    def points(self) -> list[dict[str, Any]]:
        return [schedules.resolve(self.kind, point) for point in _grid(self.params)]


@dataclasses.dataclass(frozen=True)
class Sweep:
    """Everything one experiment trains, as one frozen value.

    Static fields (the task — ``dataset`` and ``model`` of a built-in MLP task, or a
    :class:`lrbench.tasks.Task` of one's own — ``epochs``, ``batch_size``, ``dtype``, and
    each optimizer's name and ``impl``) choose the compiled program; the axes ``lrs``,
    ``schedules``, optimizer hyperparameters and ``seeds`` are per-run data inside it.

    ``task`` names a built-in task (``classifier``, the default, and ``regressor`` train
    ``model`` on ``dataset``; ``neuron`` and ``quadratic`` bring their data) or is a task
    object, which carries its own data set and model (``dataset`` and ``model`` then stay
    at their defaults).

    Static axes (``tasks``, ``hiddens`` — hidden layer sizes of ``model`` —, ``batch_sizes``,
    ``dtypes``; empty: the single-valued field) make the sweep the union of one single-valued
    sweep per combination of their values (:meth:`parts`): each is one program, compiled
    once, and the runs table gains a column per static axis (``hidden``, ``batch_size``,
    ``dtype``; the ``task`` column is always there).

    Every field is checked when the sweep is made (and again by :meth:`validate`); bad input
    raises :class:`lrbench.errors.ConfigError` naming the field as the command line does
    (``lr`` for ``lrs``, ``optimizer``, ``schedule``, ``impl``, ``schedule_impl`` for the
    entries of those axes), with the command line's message. Axes (``lrs``, ``optimizers``,
    ``schedules``, ``seeds``, ``impls``, ``schedule_impls`` and the static axes) are tuples,
    lists, ranges or 1-d arrays; a scalar is refused rather than guessed at (``seeds=3``:
    seed 3, or three seeds? give ``seeds=(3,)`` or ``seeds=range(3)``). An optimizer or
    schedule may be given by name (``"sgd"`` is ``Optimizer("sgd")``). Numbers are ints and
    floats (numpy's included, kept as plain Python numbers), never bools or strings. Seeds are
    integers in ``[0, SEED_MAX]`` (``2**31 - 1``): they enter the engine as int32, and every
    seed in that range is a random stream of its own; one outside it is refused (``2**32``
    would train as seed 0). ``validation_freq`` is at most ``epochs`` (else no epoch would be
    evaluated).
    """

    experiment: str = "sweep"
    dataset: str = "blobs"
    model: MLPConfig = MLPConfig()
    task: str | Task = "classifier"
    epochs: int = 200
    batch_size: int = 32
    lrs: tuple[float, ...] = (1e-1, 1e-2, 1e-3)
    optimizers: tuple[Optimizer, ...] = (Optimizer("sgd"),)
    schedules: tuple[Schedule, ...] = (Schedule("constant"),)
    seeds: tuple[int, ...] = (0, 1, 2)
    impls: tuple[str, ...] = ("hand",)
    schedule_impls: tuple[str, ...] = ("hand",)  # "optax": run the schedules' optax twins
    target_acc: float = 0.8  # test accuracy that defines ``epochs_to_target``
    dtype: str = "float32"
    description: str = ""
    # Test-set evaluation every this many epochs (Keras ``fit(validation_freq=...)``): epochs
    # 1·k, 2·k, ... record test_loss and test_acc, the others NaN; 0 never evaluates (training
    # only). It changes no run's training, so it is not part of the run_id.
    validation_freq: int = 1
    tasks: tuple[str | Task, ...] = ()
    hiddens: tuple[tuple[int, ...], ...] = ()
    batch_sizes: tuple[int, ...] = ()
    dtypes: tuple[str, ...] = ()

    def __post_init__(self):
        self._check_fields()

    def _check_fields(self) -> None:
        """Checks each field on its own (types, ranges, names) and puts axes in their one
        form (tuples of plain values; optimizers and schedules given by name as objects);
        what depends on other fields (the data set's size, the schedules' monitors) is left
        to :meth:`validate`."""

        def put(name, value):
            object.__setattr__(self, name, value)

        for name in ("experiment", "description", "dataset"):
            if not isinstance(getattr(self, name), str):
                raise ConfigError(name, f"{name}={getattr(self, name)!r} must be a string")
        put("dataset", data.canonical(self.dataset))  # name(key=value, ...) in its one form
        if not isinstance(self.model, MLPConfig):
            raise ConfigError("model", f"model={self.model!r} must be an lrbench.models.MLPConfig")
        if not all(_is_int(h) for h in self.model.hidden):  # MLPConfig lets a bool through
            raise ConfigError(
                "hidden", f"{self.model.hidden!r} must be positive integers, e.g. 50 or 64,64"
            )
        if not isinstance(self.task, str | Task):
            raise ConfigError(
                "task",
                f"task={self.task!r} must be a task name ({', '.join(tasks.BUILT_IN)}) "
                "or an lrbench.tasks.Task",
            )
        put("epochs", _int_field("epochs", self.epochs, 1))
        put("batch_size", _int_field("batch_size", self.batch_size, 1))
        put("validation_freq", _int_field("validation_freq", self.validation_freq, 0,
                                          " (0: no test evaluation)"))  # fmt: skip
        acc = self.target_acc
        if not _is_number(acc):
            raise ConfigError("target_acc", f"{acc!r} is not a number")
        if not 0 < acc <= 1:
            raise ConfigError("target_acc", f"target_acc={acc!r} must be in (0, 1]")
        put("target_acc", _plain(acc))
        if not isinstance(self.dtype, str) or self.dtype not in DTYPES:
            raise ConfigError("dtype", f"dtype={self.dtype!r} must be one of {', '.join(DTYPES)}")
        for name, field, example, each in _AXES:
            values = _axis(field, getattr(self, name), example)
            if not values and name not in STATIC_AXES:
                raise ConfigError(field, "empty axis: give at least one value")
            put(name, tuple(each(v) for v in values))

    @property
    def static_axes(self) -> dict[str, tuple]:
        """The static axes given (field -> values), in ``STATIC_AXES`` order."""
        return {name: _as_tuple(getattr(self, name)) for name in STATIC_AXES if getattr(self, name)}

    def parts(self) -> list[tuple[dict[str, Any], Sweep]]:
        """``(static-axis columns, single-valued sweep)`` for each combination of the static
        axes' values, in their order; ``[({}, self)]`` for a sweep without static axes."""
        axes = self.static_axes
        if not axes:
            return [({}, self)]
        for name in axes:
            field, _ = STATIC_AXES[name]
            single = self.model.hidden if field == "hidden" else getattr(self, field)
            if single != _DEFAULTS[field]:
                raise ConfigError(
                    name, f"give {field}={single!r} or {name}, not both (one is the other's axis)"
                )
        out = []
        for combo in itertools.product(*axes.values()):
            single = {name: () for name in axes}
            columns = {}
            for name, value in zip(axes, combo, strict=True):
                field, column = STATIC_AXES[name]
                if field == "hidden":
                    value = tuple(value)
                    single["model"] = dataclasses.replace(self.model, hidden=value)
                else:
                    single[field] = value
                if column:
                    columns[column] = hidden_label(value) if field == "hidden" else value
            out.append((columns, dataclasses.replace(self, **single)))
        return out

    @property
    def task_spec(self) -> Task:
        """The task this sweep trains (see the class docstring)."""
        if isinstance(self.task, Task):
            for name in ("dataset", "model"):
                if getattr(self, name) != _DEFAULTS[name]:
                    raise ConfigError(
                        name,
                        f"{name}={getattr(self, name)!r} is not used with task "
                        f"{type(self.task).__name__}: set it on the task itself",
                    )
            return self.task
        if not isinstance(self.task, str) or self.task not in tasks.BUILT_IN:
            raise ConfigError(
                "task", f"unknown task {self.task!r}; allowed: {', '.join(tasks.BUILT_IN)}"
            )
        kind = tasks.BUILT_IN[self.task]
        fields = {f.name for f in dataclasses.fields(kind)}
        given = {"dataset": self.dataset, "model": self.model}
        for name, value in given.items():
            if name not in fields and value != _DEFAULTS[name]:
                raise ConfigError(name, f"{name}={value!r} is not used by task {self.task!r}")
        own = {"model": self.model} if "model" in fields else {}
        if "model" in fields or self.dataset != _DEFAULTS["dataset"]:
            own["dataset"] = self.dataset  # a task with its own data keeps it unless told
        return kind(**own)

    def validate(self) -> Sweep:
        """Raises ``ConfigError`` naming the first bad field; returns ``self`` when all is well."""
        self._check_fields()
        if self.static_axes:
            for name, values in self.static_axes.items():
                if len({_as_tuple(v) for v in values}) != len(values):
                    raise ConfigError(name, f"{name}={values!r} repeats a value; give each once")
            for _, part in self.parts():
                part.validate()
            return self
        task = self.task_spec
        ds = task.data()
        if ds.num_classes == 0 and type(task) is tasks.Classifier:
            raise ConfigError(
                "dataset",
                f"{ds.name!r} is a regression set (float targets, no class labels): train it "
                "with task=regressor",
            )
        n_train = len(ds.x_train)
        if not self.batch_size <= n_train:
            raise ConfigError(
                "batch_size",
                f"batch_size={self.batch_size!r} must be an integer in [1, {n_train}] "
                f"(the training set of {ds.name!r} has {n_train} rows)",
            )
        self._validate_validation_freq()
        for o in self.optimizers:
            for point in o.points():
                for impl in self.impls:  # a twin must not silently ignore a setting
                    rules.check_impl(o.name, impl, point)
        for s in self.schedules:
            for point in s.points():
                if "optax" in self.schedule_impls:
                    schedules.check_twin(s.kind, point)
        return self

    def _validate_validation_freq(self) -> None:
        k = self.validation_freq
        if k > self.epochs:
            raise ConfigError(
                "validation_freq",
                f"validation_freq={k} must be at most epochs={self.epochs}: no epoch would be "
                "evaluated (0: no test evaluation)",
            )
        if k == 1:
            return
        for s in self.schedules:
            for point in s.points():
                monitor = point.get("monitor", 0)
                if s.kind in schedules.closed_loop_kinds() and monitor != 0:
                    raise ConfigError(
                        "validation_freq",
                        f"validation_freq={k} must be 1: schedule {s.kind!r} monitors "
                        f"{schedules.MONITORS[int(monitor)]}, which needs a test evaluation "
                        "every epoch (or set monitor=0, train_loss)",
                    )

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.task_spec.data().x_train) / self.batch_size)

    def file_hashes(self) -> dict[str, str]:
        """``{file data set: its SHA-256}`` for the data files this sweep trains on."""
        found = {}
        for _, part in self.parts():
            try:
                name = part.task_spec.dataset
            except ConfigError:  # a bad task: validate() says so
                continue
            digest = data.identity(name).get("dataset_sha256")
            if digest:
                found[name] = digest
        return found

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (for ``meta.json``); a task object as its configuration;
        ``dataset_sha256`` lists the content hash of each data file."""
        config = dataclasses.asdict(self)
        if config["model"]["output_init"] == config["model"]["kernel_init"]:
            del config["model"]["output_init"]  # the model from before the field: hashed as then
        if isinstance(self.task, Task):
            config["task"] = {"class": type(self.task).__qualname__, **self.task.config()}
        elif self.task == "classifier":  # at its default, described as before the field existed
            del config["task"]
        for name in STATIC_AXES:  # no static axis: described (and hashed) as before they existed
            if not config[name]:
                del config[name]
        files = self.file_hashes()
        if files:  # a file's content is part of the configuration (and of its hash)
            config["dataset_sha256"] = files
        if self.tasks:
            config["tasks"] = [
                {"class": type(t).__qualname__, **t.config()} if isinstance(t, Task) else t
                for t in self.tasks
            ]
        return json.loads(json.dumps(config, default=list))


def _int_field(field: str, value, least: int, note: str = "") -> int:
    if not _is_int(value):
        raise ConfigError(field, f"{value!r} is not an integer")
    if value < least:
        bound = "> 0" if least == 1 else f">= {least}"
        raise ConfigError(field, f"{field}={value!r} must be an integer {bound}{note}")
    return int(value)


def _lr(lr) -> float:
    if not _is_number(lr):
        raise ConfigError("lr", f"{lr!r} is not a number")
    rules.check_learning_rate(lr)
    return lr


def _seed(seed) -> int:
    if not _is_int(seed):
        raise ConfigError("seeds", f"{seed!r} is not an integer")
    if not 0 <= seed <= SEED_MAX:
        raise ConfigError(
            "seeds",
            f"seed {seed!r} must be in [0, {SEED_MAX}] (2**31 - 1: seeds are the engine's "
            "int32 random streams)",
        )
    return seed


def _named(field: str, kind, allowed, what: str):
    def each(v):
        if isinstance(v, str):
            v = kind(v)
        if not isinstance(v, kind):
            raise ConfigError(
                field,
                f"{v!r} is not {what}: give a name ({', '.join(allowed())}) "
                f"or {kind.__name__}(name, ...)",
            )
        return v

    return each


def _one_of(field: str, allowed: tuple[str, ...]):
    def each(v):
        if not isinstance(v, str) or v not in allowed:
            raise ConfigError(field, f"unknown {field} {v!r}; allowed: {', '.join(allowed)}")
        return v

    return each


def _hidden(v) -> tuple[int, ...]:
    if not isinstance(v, list | tuple) or not all(_is_int(h) and h > 0 for h in v):
        raise ConfigError(
            "hiddens",
            f"{v!r} is not a list of hidden layer sizes; give positive integers per model, "
            "e.g. hiddens=((64,), (64, 64))",
        )
    return tuple(int(h) for h in v)


def _positive(field: str):
    def each(v):
        return _int_field(field, v, 1)

    return each


def _of_type(field: str, types, what: str):
    def each(v):
        if not isinstance(v, types):
            raise ConfigError(field, f"{v!r} is not {what}")
        return v

    return each


# Sweep axis field -> (the field its errors name, an example, the check of one value).
_AXES = (
    ("lrs", "lr", "lrs=(0.1, 0.01)", _lr),
    ("optimizers", "optimizer", 'optimizers=("sgd", Optimizer("momentum"))',
     _named("optimizer", Optimizer, rules.names, "an optimizer")),
    ("schedules", "schedule", 'schedules=("constant",)', _named("schedule", Schedule, schedules.kinds, "a schedule")),
    ("seeds", "seeds", "seeds=(0, 1, 2) or seeds=range(3)", _seed),
    ("impls", "impl", 'impls=("hand",)', _one_of("impl", rules.IMPLS)),
    ("schedule_impls", "schedule_impl", 'schedule_impls=("hand",)',
     _one_of("schedule_impl", schedules.IMPLS)),
    ("tasks", "tasks", 'tasks=("classifier",)', _of_type("tasks", str | Task, "a task name or Task")),
    ("hiddens", "hiddens", "hiddens=((64,), (64, 64))", _hidden),
    ("batch_sizes", "batch_sizes", "batch_sizes=(16, 32)", _positive("batch_sizes")),
    ("dtypes", "dtypes", 'dtypes=("float32", "float64")', _of_type("dtypes", str, "a dtype name")),
)  # fmt: skip

_DEFAULTS = {
    "dataset": Sweep.dataset,
    "model": Sweep.model,
    "task": Sweep.task,
    "hidden": Sweep.model.hidden,
    "batch_size": Sweep.batch_size,
    "dtype": Sweep.dtype,
}


def hidden_label(hidden: tuple[int, ...]) -> str:
    """``(64, 64)`` -> ``64-64``: hidden layer sizes as the ``hidden`` column holds them."""
    return "-".join(str(h) for h in hidden)


def run_id(config: Mapping[str, Any]) -> str:
    """A stable 12-hex-digit id: the SHA-1 of the run's configuration as canonical JSON."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def schedule_label(kind: str, params: Mapping[str, Any]) -> str:
    """``step(gamma=0.5,step_size=10)``: a readable name of a schedule point.

    The kind's own parameters are always shown; those every kind shares (warmup) only when
    they are set away from their defaults.
    """
    shared = schedules.WARMUP
    inner = ",".join(
        f"{k}={params[k]:g}"
        for k in sorted(params)
        if k != "unit" and not (k in shared and params[k] == shared[k])
    )
    return f"{kind}({inner})" if inner else kind


def _schedule_axis(sweep: Sweep):
    """``(Schedule, point, schedule_impl)`` for every schedule point and implementation."""
    for sched in sweep.schedules:
        for point in sched.points():
            for schedule_impl in sweep.schedule_impls:
                yield sched, point, schedule_impl


def expand(sweep: Sweep) -> pd.DataFrame:
    """One row per run, in a deterministic order (static axes, optimizer, impl, schedule,
    schedule_impl, lr, seed); a column per static axis, just before ``seed``."""
    sweep.validate()
    if sweep.static_axes:
        tables = [expand(part).assign(**columns) for columns, part in sweep.parts()]
        runs = pd.concat(tables, ignore_index=True)
        seed_last = [c for c in runs.columns if c != "seed"] + ["seed"]
        return _unique(runs[seed_last])
    task = sweep.task_spec
    identity = data.identity(task.dataset)
    rows = []
    for opt in sweep.optimizers:
        for hp in opt.points():
            for impl in sweep.impls:
                for sched, sp, schedule_impl in _schedule_axis(sweep):
                    for lr in sweep.lrs:
                        for seed in sweep.seeds:
                            config = {
                                "dataset": task.dataset,
                                **identity,  # a data file's content hash
                                **task.config(),
                                "epochs": sweep.epochs,
                                "batch_size": sweep.batch_size,
                                "dtype": sweep.dtype,
                                "optimizer": opt.name,
                                "impl": impl,
                                "hparams": hp,
                                "lr": float(lr),
                                "schedule": sched.kind,
                                "schedule_params": sp,
                                "seed": int(seed),
                            }
                            if schedule_impl != "hand":  # run_ids of hand schedules unchanged
                                config["schedule_impl"] = schedule_impl
                            rows.append(
                                {
                                    "run_id": run_id(config),
                                    "experiment": sweep.experiment,
                                    "task": task.name,
                                    "dataset": task.dataset,
                                    "model": task.label,
                                    "optimizer": opt.name,
                                    "impl": impl,
                                    "lr": float(lr),
                                    "schedule": sched.kind,
                                    "schedule_label": schedule_label(sched.kind, sp),
                                    "schedule_impl": schedule_impl,
                                    **sp,
                                    **hp,
                                    "seed": int(seed),
                                }
                            )
    runs = pd.DataFrame(rows)
    # Configuration columns in contract order: schedule parameters and optimizer
    # hyperparameters sit between ``unit`` and ``seed`` whichever row introduced them.
    first = ["run_id", "experiment", "task", "dataset", "model", "optimizer", "impl", "lr", "schedule",
             "schedule_label", "schedule_impl", "unit"]  # fmt: skip
    middle = [c for c in runs.columns if c not in first and c != "seed"]
    return _unique(runs[[*first, *middle, "seed"]])


def _unique(runs: pd.DataFrame) -> pd.DataFrame:
    if runs["run_id"].duplicated().any():
        dup = runs.loc[runs["run_id"].duplicated(), "run_id"].iloc[0]
        raise ConfigError("axes", f"the axes repeat a run (run_id {dup}); give each value once")
    return runs
