"""Learning-rate schedules as per-run *data*: a kind index and a few numbers.

A schedule is ``lr(step) = lr · factor_kind(t; params)`` with ``t`` the epoch
(``floor(step / steps_per_epoch)``) or the step itself, per the schedule's ``unit``. Because
every kind is a cheap closed form, the engine evaluates *all* of them each step and picks
the run's own by index: a grid that mixes every kind, with any parameters, compiles once and
never branches per step.

Public API: :func:`make` (``kind, **params -> step -> lr``), :func:`kinds`, :func:`resolve`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax.numpy as jnp
import optax

from lrbench.errors import ConfigError

UNITS = ("epoch", "step")


class Kind(NamedTuple):
    """One schedule family: its multiplicative factor, parameters, checks and optax twin."""

    name: str
    factor: Callable[[Any, dict], Any]  # (t, params) -> multiplier of the base learning rate
    params: dict[str, float]  # parameters and defaults
    unit: str  # default unit of t
    checks: dict[str, Callable[[float], str | None]]  # value -> error text or None
    doc: str
    twin: Callable[..., optax.Schedule] | None = None  # (lr, **params) -> optax schedule of t


def _positive(v):
    return None if v > 0 else "must be > 0"


def _nonnegative(v):
    return None if v >= 0 else "must be >= 0"


def _open_unit(v):
    return None if 0 < v < 1 else "must be in (0, 1)"


def _decay_factor(v):
    return None if 0 < v <= 1 else "must be in (0, 1]"


def _flag(v):
    return None if v in (0, 1) else "must be 0 or 1 (false or true)"


_KINDS: dict[str, Kind] = {}


def _register(kind: Kind) -> None:
    _KINDS[kind.name] = kind


_register(
    Kind(
        "constant",
        factor=lambda t, p: jnp.ones_like(t),
        params={},
        unit="epoch",
        checks={},
        doc="lr(t) = lr",
        twin=lambda lr: optax.constant_schedule(lr),
    )
)
_register(
    Kind(
        "step",
        factor=lambda t, p: p["gamma"] ** jnp.floor(t / p["step_size"]),
        params={"step_size": 10.0, "gamma": 0.5},
        unit="epoch",
        checks={"step_size": _positive, "gamma": _decay_factor},
        doc="lr(t) = lr · gamma^floor(t / step_size)   (PyTorch StepLR)",
        twin=lambda lr, step_size, gamma: optax.exponential_decay(
            lr, transition_steps=int(step_size), decay_rate=gamma, staircase=True
        ),
    )
)
_register(
    Kind(
        "exponential",
        factor=lambda t, p: p["decay_rate"]
        ** jnp.where(
            p["staircase"] > 0,
            jnp.floor(t / p["transition_steps"]),
            t / p["transition_steps"],
        ),
        params={"decay_rate": 0.96, "transition_steps": 1.0, "staircase": 0.0},
        unit="epoch",
        checks={
            "decay_rate": _decay_factor,
            "transition_steps": _positive,
            "staircase": _flag,
        },
        doc="lr(t) = lr · decay_rate^(t / transition_steps)   (optax exponential_decay)",
        twin=lambda lr, decay_rate, transition_steps, staircase: optax.exponential_decay(
            lr,
            transition_steps=int(transition_steps),
            decay_rate=decay_rate,
            staircase=bool(staircase),
        ),
    )
)
_register(
    Kind(
        "time_based",
        factor=lambda t, p: 1.0 / (1.0 + p["decay"] * t),
        params={"decay": 1e-3},
        unit="step",
        checks={"decay": _nonnegative},
        doc="lr(t) = lr / (1 + decay · t), t = iterations   (Keras legacy SGD `decay`)",
    )
)
_register(
    Kind(
        "linear",
        factor=lambda t, p: 1.0
        - (1.0 - p["end_factor"]) * jnp.minimum(t / p["transition_steps"], 1.0),
        params={"end_factor": 0.01, "transition_steps": 100.0},
        unit="epoch",
        checks={"end_factor": _nonnegative, "transition_steps": _positive},
        doc="lr(t) = lr · (1 − (1 − end_factor)·min(t/τ, 1)), τ = transition_steps; constant after τ "
        "(Goodfellow et al. 2016, §8.3.1)",
        twin=lambda lr, end_factor, transition_steps: optax.linear_schedule(
            lr, lr * end_factor, transition_steps=int(transition_steps)
        ),
    )
)


def kinds() -> list[str]:
    return list(_KINDS)


def kind(name: str) -> Kind:
    if name not in _KINDS:
        raise ConfigError("schedule", f"unknown schedule {name!r}; allowed: {', '.join(kinds())}")
    return _KINDS[name]


def index(name: str) -> int:
    return kinds().index(kind(name).name)


def all_param_names() -> list[str]:
    """Every parameter any kind takes, in a fixed order (the engine's per-run columns)."""
    seen: dict[str, None] = {}
    for k in _KINDS.values():
        seen.update(dict.fromkeys(k.params))
    return list(seen)


def resolve(name: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fills in defaults (and ``unit``) and validates; raises ``ConfigError`` naming the field."""
    k = kind(name)
    params = dict(params or {})
    unit = params.pop("unit", k.unit)
    if unit not in UNITS:
        raise ConfigError("unit", f"unit={unit!r} must be one of {', '.join(UNITS)}")
    unknown = sorted(set(params) - set(k.params))
    if unknown:
        allowed = ", ".join([*k.params, "unit"])
        raise ConfigError(unknown[0], f"not a parameter of schedule {name!r}; allowed: {allowed}")
    out = {**k.params, **{key: float(v) for key, v in params.items()}}
    for key, value in out.items():
        problem = None if math.isfinite(value) else "must be finite"
        problem = problem or (k.checks[key](value) if key in k.checks else None)
        if problem:
            raise ConfigError(key, f"{key}={value!r} {problem} (schedule {name!r})")
    return {**out, "unit": unit}


def _time(step, unit_is_step, steps_per_epoch):
    step = jnp.asarray(step, jnp.float32)
    return jnp.where(unit_is_step, step, jnp.floor(step / steps_per_epoch))


def make(kind_name: str, lr: float = 1.0, steps_per_epoch: int = 1, **params) -> Callable:
    """Returns ``step -> learning rate`` for one schedule; parameters are validated now.

    ``steps_per_epoch`` converts the global step into epochs for ``unit="epoch"``.
    """
    p = resolve(kind_name, params)
    if not (math.isfinite(lr) and lr > 0):
        raise ConfigError("lr", f"lr={lr!r} must be a finite number > 0")
    if steps_per_epoch < 1:
        raise ConfigError("steps_per_epoch", f"{steps_per_epoch=} must be >= 1")
    factor, unit_is_step = _KINDS[kind_name].factor, p["unit"] == "step"

    def schedule(step):
        return lr * factor(_time(step, unit_is_step, steps_per_epoch), p)

    return schedule


def make_twin(kind_name: str, lr: float = 1.0, **params) -> optax.Schedule | None:
    """The optax schedule of ``t`` (in the schedule's unit) that matches ``kind``, if optax has one."""
    k = kind(kind_name)
    if k.twin is None:
        return None
    p = resolve(kind_name, params)
    p.pop("unit")
    return k.twin(lr, **p)


def evaluate(kind_index, params: dict[str, Any], unit_is_step, step, steps_per_epoch: int):
    """Branch-free multiplier for traced per-run data (used inside the engine).

    Every kind's closed form is computed from ``params`` (every name in
    :func:`all_param_names`, as arrays) and the run's own is picked by ``kind_index``.
    """
    t = _time(step, unit_is_step, steps_per_epoch)
    values = jnp.stack([k.factor(t, params) for k in _KINDS.values()])
    return values[kind_index]


def default_params() -> dict[str, float]:
    """A safe value for every parameter name (used where a run's kind does not take it)."""
    out: dict[str, float] = {}
    for k in _KINDS.values():
        for key, value in k.params.items():
            out.setdefault(key, value)
    return out
