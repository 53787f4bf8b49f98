"""Learning-rate schedules as per-run *data*: a kind index and a few numbers.

An open-loop schedule is ``lr(step) = lr · factor_kind(t; params)`` with ``t`` the epoch
(``floor(step / steps_per_epoch)``) or the step itself, per the schedule's ``unit``. Because
every kind is a cheap closed form, the engine evaluates *all* of them each step and picks
the run's own by index: a grid that mixes every kind, with any parameters, compiles once and
never branches per step.

Every kind takes a linear warmup in front (``warmup_steps`` τ_w, ``warmup_start_factor`` s,
both in the schedule's unit; τ_w = 0 turns it off)::

    factor(t) = s + (1 − s)·t/τ_w            for t < τ_w
              = factor_kind(t − τ_w)          after,

i.e. ``optax.join_schedules([linear_schedule(s·lr, lr, τ_w), schedule], [τ_w])``.

Closed-loop kinds (``reduce_on_plateau``, ``increase_on_plateau``) have an open-loop factor
of 1 (times the warmup) and a learning rate that :func:`plateau_update` changes at the end
of each epoch from a monitored metric, with Keras' ``ReduceLROnPlateau`` semantics. Their
state (:class:`PlateauState`) lives in the engine's epoch-scan carry.

Every parameter is a float (flags are 0/1, integer counts are whole floats), so it can be a
traced per-run array. Parameter names follow the field (optax, Keras, PyTorch). Sets of
boundaries have four fixed slots (``milestone_1..4``, ``boundary_1..4``/``scale_1..4``); a
slot at 0 is unused. ``docs/schedules.md`` lists every kind with its parameters.

Public API: :func:`make` (``kind, **params -> step -> lr``), :func:`kinds`, :func:`resolve`,
:func:`make_twin` (the optax schedule, where optax has one), :func:`plateau` (the closed
loop on its own), :func:`evaluate` and :func:`closed_loop_update` (what the engine calls).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from lrbench._lazy import lazy
from lrbench.errors import ConfigError

# Imported on first use: the kinds and their parameters are read by ``lrbench list`` and the
# command line's checks without JAX.
jax = lazy("jax")
jnp = lazy("jax.numpy")
optax = lazy("optax")

UNITS = ("epoch", "step")
SLOTS = 4  # boundaries a multistep / piecewise-constant schedule can hold
MONITORS = ("train_loss", "test_loss", "test_acc")  # codes 0, 1, 2 of the ``monitor`` parameter


class Kind(NamedTuple):
    """One schedule family: its multiplicative factor, parameters, checks and optax twin."""

    name: str
    factor: Callable[[Any, dict], Any]  # (t, params) -> multiplier of the base learning rate
    params: dict[str, float]  # parameters and defaults (the warmup's included)
    unit: str  # default unit of t
    checks: dict[str, Callable[[float], str | None]]  # value -> error text or None
    doc: str
    twin: Callable[[float, dict], Any] | None = None  # (lr, params) -> optax schedule of t
    closed_loop: bool = False  # learning rate changed by ``plateau_update`` each epoch
    # Closed-loop kinds: which way the rate moves, the parameter that bounds it, and the
    # optax transformation that twins the loop ((lr, params) -> GradientTransformation).
    increase: bool = False
    bound: str = ""
    loop_twin: Callable[[float, dict], Any] | None = None
    check_all: Callable[[dict], tuple[str, str] | None] | None = None  # cross-parameter check


# ---------------------------------------------------------------------------------------------
# Checks: value -> None when fine, else the end of the error message


def _positive(v):
    return None if v > 0 else "must be > 0"


def _nonnegative(v):
    return None if v >= 0 else "must be >= 0"


def _open_unit(v):
    return None if 0 < v < 1 else "must be in (0, 1)"


def _closed_unit(v):
    return None if 0 <= v <= 1 else "must be in [0, 1]"


def _decay_factor(v):
    return None if 0 < v <= 1 else "must be in (0, 1]"


def _above_one(v):
    return None if v > 1 else "must be > 1"


def _at_least_one(v):
    return None if v >= 1 else "must be >= 1"


def _flag(v):
    return None if v in (0, 1) else "must be 0 or 1 (false or true)"


def _count(v):
    return None if v >= 0 and float(v).is_integer() else "must be a whole number >= 0"


def _monitor(v):
    codes = ", ".join(f"{i} = {m}" for i, m in enumerate(MONITORS))
    return None if v in range(len(MONITORS)) else f"must be one of {codes}"


# ---------------------------------------------------------------------------------------------
# The kinds. ``t`` is a float32 array (time in the schedule's unit, warmup already removed);
# ``p`` maps parameter names to floats or arrays. Factors are written branch-free with
# ``jnp.where`` so that any run's parameters can be evaluated for every kind.

WARMUP = {"warmup_steps": 0.0, "warmup_start_factor": 0.0}
_WARMUP_CHECKS = {"warmup_steps": _nonnegative, "warmup_start_factor": _nonnegative}

_KINDS: dict[str, Kind] = {}


def _register(kind: Kind) -> None:
    kind = kind._replace(params={**kind.params, **WARMUP}, checks={**kind.checks, **_WARMUP_CHECKS})
    _KINDS[kind.name] = kind


def _int(name: str, value: float) -> int:
    """optax twins take whole step counts."""
    if not float(value).is_integer():
        raise ConfigError(name, f"{name}={value!r} must be a whole number for the optax twin")
    return int(value)


def _warmed(lr: float, p: dict, schedule):
    """Puts the linear warmup of ``p`` in front of an optax schedule (optax.join_schedules)."""
    w = _int("warmup_steps", p["warmup_steps"])
    if w == 0:
        return schedule
    warmup = optax.linear_schedule(p["warmup_start_factor"] * lr, lr, transition_steps=w)
    return optax.join_schedules([warmup, schedule], [w])


def _slots(prefix: str) -> list[str]:
    return [f"{prefix}_{i}" for i in range(1, SLOTS + 1)]


_register(
    Kind(
        "constant",
        factor=lambda t, p: jnp.ones_like(t),
        params={},
        unit="epoch",
        checks={},
        doc="lr(t) = lr",
        twin=lambda lr, p: _warmed(lr, p, optax.constant_schedule(lr)),
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
        twin=lambda lr, p: _warmed(
            lr,
            p,
            optax.exponential_decay(
                lr,
                transition_steps=_int("step_size", p["step_size"]),
                decay_rate=p["gamma"],
                staircase=True,
            ),
        ),
    )
)
_register(
    Kind(
        "exponential",
        factor=lambda t, p: (
            p["decay_rate"]
            ** jnp.where(
                p["staircase"] > 0,
                jnp.floor(t / p["transition_steps"]),
                t / p["transition_steps"],
            )
        ),
        params={"decay_rate": 0.96, "transition_steps": 1.0, "staircase": 0.0},
        unit="epoch",
        checks={
            "decay_rate": _decay_factor,
            "transition_steps": _positive,
            "staircase": _flag,
        },
        doc="lr(t) = lr · decay_rate^(t / transition_steps), floor() of the exponent when "
        "staircase   (optax exponential_decay, Keras ExponentialDecay, PyTorch ExponentialLR)",
        twin=lambda lr, p: _warmed(
            lr,
            p,
            optax.exponential_decay(
                lr,
                transition_steps=_int("transition_steps", p["transition_steps"]),
                decay_rate=p["decay_rate"],
                staircase=bool(p["staircase"]),
            ),
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
        factor=lambda t, p: (
            1.0 - (1.0 - p["end_factor"]) * jnp.minimum(t / p["transition_steps"], 1.0)
        ),
        params={"end_factor": 0.01, "transition_steps": 100.0},
        unit="epoch",
        checks={"end_factor": _nonnegative, "transition_steps": _positive},
        doc="lr(t) = lr · (1 − (1 − end_factor)·min(t/τ, 1)), τ = transition_steps; constant after τ "
        "(Goodfellow et al. 2016, §8.3.1)",
        twin=lambda lr, p: _warmed(
            lr,
            p,
            optax.linear_schedule(
                lr,
                lr * p["end_factor"],
                transition_steps=_int("transition_steps", p["transition_steps"]),
            ),
        ),
    )
)


def _multistep(t, p):
    crossed = sum(jnp.where((p[m] > 0) & (t >= p[m]), 1.0, 0.0) for m in _slots("milestone"))
    return p["gamma"] ** crossed


def _multistep_twin(lr, p):
    milestones = [_int(m, p[m]) for m in _slots("milestone") if p[m] > 0]
    scales: dict[int, float] = {}
    for m in milestones:  # a repeated milestone decays twice, as in PyTorch
        scales[m] = scales.get(m, 1.0) * p["gamma"]
    return _warmed(lr, p, optax.piecewise_constant_schedule(lr, scales))


_register(
    Kind(
        "multistep",
        factor=_multistep,
        params={
            "milestone_1": 100.0,
            "milestone_2": 150.0,
            "milestone_3": 0.0,
            "milestone_4": 0.0,
            "gamma": 0.1,
        },
        unit="epoch",
        checks={**dict.fromkeys(_slots("milestone"), _nonnegative), "gamma": _decay_factor},
        doc="lr(t) = lr · gamma^(number of milestones m_i ≤ t); a milestone of 0 is unused   "
        "(PyTorch MultiStepLR)",
        twin=_multistep_twin,
    )
)


def _piecewise(t, p):
    out = jnp.ones_like(t)
    for b, s in zip(_slots("boundary"), _slots("scale"), strict=True):
        out = out * jnp.where((p[b] > 0) & (t >= p[b]), p[s], 1.0)
    return out


def _piecewise_twin(lr, p):
    scales: dict[int, float] = {}
    for b, s in zip(_slots("boundary"), _slots("scale"), strict=True):
        if p[b] > 0:
            key = _int(b, p[b])
            scales[key] = scales.get(key, 1.0) * p[s]
    return _warmed(lr, p, optax.piecewise_constant_schedule(lr, scales))


_register(
    Kind(
        "piecewise_constant",
        factor=_piecewise,
        params={
            "boundary_1": 50.0,
            "boundary_2": 100.0,
            "boundary_3": 150.0,
            "boundary_4": 0.0,
            "scale_1": 0.5,
            "scale_2": 0.2,
            "scale_3": 0.1,
            "scale_4": 1.0,
        },
        unit="epoch",
        checks={
            **dict.fromkeys(_slots("boundary"), _nonnegative),
            **dict.fromkeys(_slots("scale"), _positive),
        },
        doc="lr(t) = lr · Π_{i: b_i ≤ t} scale_i over boundaries b_i > 0 (a boundary of 0 is "
        "unused)   (optax piecewise_constant_schedule)",
        twin=_piecewise_twin,
    )
)


def _inverse_time(t, p):
    k = t / p["decay_steps"]
    return 1.0 / (1.0 + p["decay_rate"] * jnp.where(p["staircase"] > 0, jnp.floor(k), k))


_register(
    Kind(
        "inverse_time",
        factor=_inverse_time,
        params={"decay_rate": 1.0, "decay_steps": 10.0, "staircase": 0.0},
        unit="epoch",
        checks={"decay_rate": _nonnegative, "decay_steps": _positive, "staircase": _flag},
        doc="lr(t) = lr / (1 + decay_rate · t / decay_steps), floor() of t/decay_steps when "
        "staircase   (TF/Keras InverseTimeDecay)",
    )
)


def _polynomial(t, p):
    frac = 1.0 - jnp.minimum(t / p["transition_steps"], 1.0)
    return (1.0 - p["end_factor"]) * frac ** p["power"] + p["end_factor"]


_register(
    Kind(
        "polynomial",
        factor=_polynomial,
        params={"end_factor": 0.0, "power": 2.0, "transition_steps": 200.0},
        unit="epoch",
        checks={"end_factor": _nonnegative, "power": _positive, "transition_steps": _positive},
        doc="lr(t) = lr · ((1 − end_factor)·(1 − min(t/τ, 1))^power + end_factor)   "
        "(optax polynomial_schedule, Keras PolynomialDecay, PyTorch PolynomialLR)",
        twin=lambda lr, p: _warmed(
            lr,
            p,
            optax.polynomial_schedule(
                lr,
                lr * p["end_factor"],
                power=p["power"],
                transition_steps=_int("transition_steps", p["transition_steps"]),
            ),
        ),
    )
)


def _cosine(t, p):
    done = jnp.minimum(t / p["decay_steps"], 1.0)
    return (1.0 - p["alpha"]) * 0.5 * (1.0 + jnp.cos(jnp.pi * done)) + p["alpha"]


def _cosine_twin(lr, p):
    decay = _int("decay_steps", p["decay_steps"])
    warmup = _int("warmup_steps", p["warmup_steps"])
    if warmup == 0:
        return optax.cosine_decay_schedule(lr, decay, alpha=p["alpha"])
    # optax counts the warmup inside decay_steps; here the cosine follows the warmup.
    return optax.warmup_cosine_decay_schedule(
        p["warmup_start_factor"] * lr, lr, warmup, warmup + decay, end_value=p["alpha"] * lr
    )


_register(
    Kind(
        "cosine",
        factor=_cosine,
        params={"decay_steps": 200.0, "alpha": 0.0},
        unit="epoch",
        checks={"decay_steps": _positive, "alpha": _closed_unit},
        doc="lr(t) = lr · (alpha + (1 − alpha)·½(1 + cos(π·min(t/decay_steps, 1))))   "
        "(optax cosine_decay_schedule / warmup_cosine_decay_schedule, Keras CosineDecay; "
        "Loshchilov & Hutter 2017)",
        twin=_cosine_twin,
    )
)


def _sgdr_cycle(t, p):
    """(restart index i, fraction of cycle i done) at time t; cycle i lasts T0·t_mul^i."""
    x = t / p["first_decay_steps"]  # time in units of the first cycle
    geometric = p["t_mul"] != 1.0
    m = jnp.where(geometric, p["t_mul"], 2.0)  # any base > 1 keeps the unused branch finite

    def start(i):  # where cycle i begins, in units of the first cycle
        return jnp.where(geometric, (m**i - 1.0) / (m - 1.0), i)

    guess = jnp.where(geometric, jnp.floor(jnp.log1p(x * (m - 1.0)) / jnp.log(m)), jnp.floor(x))
    # float rounding can put the guess one cycle off right at a restart: correct it.
    i = jnp.where(start(guess + 1.0) <= x, guess + 1.0, guess)
    i = jnp.where(start(i) > x, i - 1.0, i)
    length = jnp.where(geometric, m**i, 1.0)
    # measured in steps from the restart, which is exact for whole numbers (x − start is not)
    first = p["first_decay_steps"]
    return i, (t - first * start(i)) / (first * length)


def _sgdr(t, p):
    i, frac = _sgdr_cycle(t, p)
    cosine = 0.5 * p["m_mul"] ** i * (1.0 + jnp.cos(jnp.pi * frac))
    return (1.0 - p["alpha"]) * cosine + p["alpha"]


def _sgdr_twin(lr, p, horizon: int = 1000):
    """optax.sgdr_schedule with enough cycles to cover ``horizon`` steps."""
    first, t_mul, m_mul, alpha = (p[k] for k in ("first_decay_steps", "t_mul", "m_mul", "alpha"))
    cycles, covered, i = [], 0, 0
    while covered < horizon:
        length = _int("first_decay_steps · t_mul^i", first * t_mul**i)
        peak = lr * (alpha + (1.0 - alpha) * m_mul**i)  # Keras scales the part above alpha
        cycles.append(
            {
                "init_value": peak,
                "peak_value": peak,
                "warmup_steps": 0,
                "decay_steps": length,
                "end_value": alpha * lr,
            }
        )
        covered, i = covered + length, i + 1
    return _warmed(lr, p, optax.sgdr_schedule(cycles))


_register(
    Kind(
        "sgdr",
        factor=_sgdr,
        params={"first_decay_steps": 20.0, "t_mul": 2.0, "m_mul": 1.0, "alpha": 0.0},
        unit="epoch",
        checks={
            "first_decay_steps": _positive,
            "t_mul": _at_least_one,
            "m_mul": _positive,
            "alpha": _closed_unit,
        },
        doc="cosine with warm restarts: cycle i lasts first_decay_steps·t_mul^i; in it "
        "lr = lr · (alpha + (1 − alpha)·m_mul^i·½(1 + cos(π·done_i)))   (Keras "
        "CosineDecayRestarts, PyTorch CosineAnnealingWarmRestarts, optax sgdr_schedule; "
        "Loshchilov & Hutter 2017)",
        twin=_sgdr_twin,
    )
)


def _cosine_interpolate(start, end, pct):
    return end + (start - end) * 0.5 * (1.0 + jnp.cos(jnp.pi * pct))


def _linear_interpolate(start, end, pct):
    return start + (end - start) * pct


def _cosine_onecycle(t, p):
    total = p["total_steps"]
    up = p["pct_start"] * total
    initial = 1.0 / p["div_factor"]
    final = initial / p["final_div_factor"]
    rise = _cosine_interpolate(initial, 1.0, t / up)
    fall = _cosine_interpolate(1.0, final, (t - up) / (total - up))
    return jnp.where(t < up, rise, jnp.where(t < total, fall, final))


def _linear_onecycle(t, p):
    total = p["total_steps"]
    up, back = p["pct_start"] * total, p["pct_final"] * total
    initial = 1.0 / p["div_factor"]
    final = initial / p["final_div_factor"]
    rise = _linear_interpolate(initial, 1.0, t / up)
    fall = _linear_interpolate(1.0, initial, (t - up) / (back - up))
    anneal = _linear_interpolate(initial, final, (t - back) / (total - back))
    return jnp.where(t < up, rise, jnp.where(t < back, fall, jnp.where(t < total, anneal, final)))


_ONECYCLE = {"total_steps": 200.0, "pct_start": 0.3, "div_factor": 25.0, "final_div_factor": 1e4}
_ONECYCLE_CHECKS = {
    "total_steps": _positive,
    "pct_start": _open_unit,
    "div_factor": _positive,
    "final_div_factor": _positive,
}


def _onecycle_order(p):
    if not p["pct_start"] < p["pct_final"]:
        return "pct_final", f"pct_final={p['pct_final']!r} must be > pct_start={p['pct_start']!r}"
    return None


_register(
    Kind(
        "cosine_onecycle",
        factor=_cosine_onecycle,
        params=dict(_ONECYCLE),
        unit="epoch",
        checks=dict(_ONECYCLE_CHECKS),
        doc="one-cycle, two cosine phases: lr/div_factor → lr over pct_start·total_steps, "
        "then → lr/(div_factor·final_div_factor) at total_steps   (optax "
        "cosine_onecycle_schedule, PyTorch OneCycleLR; Smith & Topin 2019)",
        twin=lambda lr, p: _warmed(
            lr,
            p,
            optax.cosine_onecycle_schedule(
                _int("total_steps", p["total_steps"]),
                lr,
                pct_start=p["pct_start"],
                div_factor=p["div_factor"],
                final_div_factor=p["final_div_factor"],
            ),
        ),
    )
)
_register(
    Kind(
        "linear_onecycle",
        factor=_linear_onecycle,
        params={**_ONECYCLE, "pct_final": 0.85},
        unit="epoch",
        checks={**_ONECYCLE_CHECKS, "pct_final": _open_unit},
        check_all=_onecycle_order,
        doc="one-cycle, three linear phases: lr/div_factor → lr at pct_start, → lr/div_factor "
        "at pct_final, → lr/(div_factor·final_div_factor) at total_steps   (optax "
        "linear_onecycle_schedule; Smith 2018)",
        twin=lambda lr, p: _warmed(
            lr,
            p,
            optax.linear_onecycle_schedule(
                _int("total_steps", p["total_steps"]),
                lr,
                pct_start=p["pct_start"],
                pct_final=p["pct_final"],
                div_factor=p["div_factor"],
                final_div_factor=p["final_div_factor"],
            ),
        ),
    )
)


def _cyclic(scale):
    """Smith's cyclical rate between ``base_factor·lr`` and ``lr`` times ``scale(cycle, t)``."""

    def factor(t, p):
        cycle = jnp.floor(1.0 + t / (2.0 * p["step_size_up"]))  # 1-based
        x = jnp.abs(t / p["step_size_up"] - 2.0 * cycle + 1.0)
        height = jnp.maximum(0.0, 1.0 - x)
        return p["base_factor"] + (1.0 - p["base_factor"]) * height * scale(cycle, t, p)

    return factor


_CYCLIC = {"base_factor": 0.1, "step_size_up": 10.0}
_CYCLIC_CHECKS = {"base_factor": _closed_unit, "step_size_up": _positive}
_CYCLIC_DOC = (
    "lr(t) = lr · (base_factor + (1 − base_factor)·max(0, 1 − |t/step_size_up − 2c + 1|)·{}), "
    "c = floor(1 + t/(2·step_size_up))   (PyTorch CyclicLR mode='{}'; Smith 2017)"
)
_register(
    Kind(
        "cyclic_triangular",
        factor=_cyclic(lambda c, t, p: 1.0),
        params=dict(_CYCLIC),
        unit="epoch",
        checks=dict(_CYCLIC_CHECKS),
        doc=_CYCLIC_DOC.format("1", "triangular"),
    )
)
_register(
    Kind(
        "cyclic_triangular2",
        factor=_cyclic(lambda c, t, p: 0.5 ** (c - 1.0)),
        params=dict(_CYCLIC),
        unit="epoch",
        checks=dict(_CYCLIC_CHECKS),
        doc=_CYCLIC_DOC.format("2^(1 − c)", "triangular2"),
    )
)
_register(
    Kind(
        "cyclic_exp_range",
        factor=_cyclic(lambda c, t, p: p["gamma"] ** t),
        params={**_CYCLIC, "gamma": 0.98},
        unit="epoch",
        checks={**_CYCLIC_CHECKS, "gamma": _decay_factor},
        doc=_CYCLIC_DOC.format("gamma^t", "exp_range"),
    )
)

_PLATEAU = {"monitor": 1.0, "patience": 10.0, "min_delta": 1e-4, "cooldown": 0.0}
_PLATEAU_CHECKS = {
    "monitor": _monitor,
    "patience": _count,
    "min_delta": _nonnegative,
    "cooldown": _count,
}
_register(
    Kind(
        "reduce_on_plateau",
        factor=lambda t, p: jnp.ones_like(t),
        params={**_PLATEAU, "factor": 0.1, "min_lr": 0.0},
        unit="epoch",
        checks={**_PLATEAU_CHECKS, "factor": _open_unit, "min_lr": _nonnegative},
        doc="lr ← max(lr·factor, min_lr) after `patience` epochs without the monitored metric "
        "improving by more than min_delta, then `cooldown` epochs of rest   (Keras "
        "ReduceLROnPlateau, mode min; monitor 0 = train_loss, 1 = test_loss (Keras val_loss), "
        "2 = test_acc (mode max))",
        closed_loop=True,
        bound="min_lr",
        loop_twin=lambda lr, p: _optax_reduce_on_plateau(lr, p),
    )
)
_register(
    Kind(
        "increase_on_plateau",
        factor=lambda t, p: jnp.ones_like(t),
        params={**_PLATEAU, "factor": 2.0, "max_lr": 1.0},
        unit="epoch",
        checks={**_PLATEAU_CHECKS, "factor": _above_one, "max_lr": _positive},
        doc="lr ← min(lr·factor, max_lr) after `patience` epochs without improvement; otherwise "
        "as reduce_on_plateau (Machine Learning Mastery: 'the learning rate can be increased "
        "again if performance does not improve')",
        closed_loop=True,
        increase=True,
        bound="max_lr",
    )
)


# ---------------------------------------------------------------------------------------------
# Looking kinds up and validating parameters


def kinds() -> list[str]:
    return list(_KINDS)


def kind(name: str) -> Kind:
    if name not in _KINDS:
        raise ConfigError("schedule", f"unknown schedule {name!r}; allowed: {', '.join(kinds())}")
    return _KINDS[name]


def index(name: str) -> int:
    return kinds().index(kind(name).name)


def closed_loop_kinds() -> list[str]:
    return [k.name for k in _KINDS.values() if k.closed_loop]


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
    if not isinstance(unit, str) or unit not in UNITS:
        raise ConfigError("unit", f"unit={unit!r} must be one of {', '.join(UNITS)}")
    unknown = sorted(set(params) - set(k.params))
    if unknown:
        allowed = ", ".join([*k.params, "unit"])
        raise ConfigError(unknown[0], f"not a parameter of schedule {name!r}; allowed: {allowed}")
    out = dict(k.params)
    for key, value in params.items():
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            raise ConfigError(
                key, f"{key}={value!r} must be a number (schedule {name!r})"
            ) from None
    for key, value in out.items():
        problem = None if math.isfinite(value) else "must be finite"
        problem = problem or (k.checks[key](value) if key in k.checks else None)
        if problem:
            raise ConfigError(key, f"{key}={value!r} {problem} (schedule {name!r})")
    if k.check_all and (problem := k.check_all(out)):
        raise ConfigError(*problem)
    return {**out, "unit": unit}


def default_params() -> dict[str, float]:
    """A safe value for every parameter name (used where a run's kind does not take it)."""
    out: dict[str, float] = {}
    for k in _KINDS.values():
        for key, value in k.params.items():
            out.setdefault(key, value)
    return out


# ---------------------------------------------------------------------------------------------
# Open loop: step -> learning rate


def _time(step, unit_is_step, steps_per_epoch):
    step = jnp.asarray(step, jnp.float32)
    return jnp.where(unit_is_step, step, jnp.floor(step / steps_per_epoch))


def _warmup(t, params, after: Callable[[Any], Any]):
    """``after(t − τ_w)`` behind a linear ramp from ``warmup_start_factor`` to 1 over τ_w."""
    w, s = params["warmup_steps"], params["warmup_start_factor"]
    ramp = s + (1.0 - s) * t / jnp.where(w > 0, w, 1.0)
    return jnp.where(t < w, ramp, after(jnp.maximum(t - w, 0.0)))


def make(kind_name: str, lr: float = 1.0, steps_per_epoch: int = 1, **params) -> Callable:
    """Returns ``step -> learning rate`` for one schedule; parameters are validated now.

    ``steps_per_epoch`` converts the global step into epochs for ``unit="epoch"``. For a
    closed-loop kind this is its open-loop part (the learning rate before any plateau
    change); :func:`plateau` is the loop itself.

    Raises:
      ConfigError (a ``ValueError``) naming the first bad parameter.
    """
    p = resolve(kind_name, params)
    if not (math.isfinite(lr) and lr > 0):
        raise ConfigError("lr", f"lr={lr!r} must be a finite number > 0")
    if steps_per_epoch < 1:
        raise ConfigError("steps_per_epoch", f"{steps_per_epoch=} must be >= 1")
    factor, unit_is_step = _KINDS[kind_name].factor, p["unit"] == "step"

    def schedule(step):
        t = _time(step, unit_is_step, steps_per_epoch)
        return lr * _warmup(t, p, lambda u: factor(u, p))

    return schedule


def evaluate(kind_index, params: dict[str, Any], unit_is_step, step, steps_per_epoch: int):
    """Branch-free multiplier for traced per-run data (used inside the engine).

    Every kind's closed form is computed from ``params`` (every name in
    :func:`all_param_names`, as arrays) and the run's own is picked by ``kind_index``.
    """
    t = _time(step, unit_is_step, steps_per_epoch)

    def every_kind(u):
        return jnp.stack([k.factor(u, params) for k in _KINDS.values()])[kind_index]

    return _warmup(t, params, every_kind)


def make_twin(kind_name: str, lr: float = 1.0, **params):
    """The optax counterpart of ``kind``, or ``None`` where optax has none.

    For an open-loop kind: an optax schedule of ``t`` (in the schedule's unit; the warmup is
    joined in front with ``optax.join_schedules``). For ``reduce_on_plateau``:
    ``optax.contrib.reduce_on_plateau`` configured as close to Keras as it goes (``rtol=0``,
    ``atol=min_delta``, ``min_scale=min_lr/lr``); its semantics differ, see
    ``docs/schedules.md``. Step counts must be whole numbers here.
    """
    k = kind(kind_name)
    p = resolve(kind_name, params)
    if k.loop_twin is not None:
        return k.loop_twin(lr, p)
    if k.twin is None:
        return None
    return k.twin(lr, p)


def _optax_reduce_on_plateau(lr: float, p: dict[str, Any]):
    """``optax.contrib.reduce_on_plateau`` as close to Keras as it goes (see make_twin)."""
    if p["min_delta"] <= 0:
        raise ConfigError(
            "min_delta",
            "min_delta=0.0: optax.contrib.reduce_on_plateau needs rtol or atol > 0",
        )
    if p["warmup_steps"] > 0:
        raise ConfigError("warmup_steps", "the optax plateau twin has no warmup")
    return optax.contrib.reduce_on_plateau(
        factor=p["factor"],
        patience=_int("patience", p["patience"]),
        rtol=0.0,
        atol=p["min_delta"],
        cooldown=_int("cooldown", p["cooldown"]),
        accumulation_size=1,
        min_scale=p["min_lr"] / lr,
    )


def has_loop_twin(kind_name: str) -> bool:
    """Whether the kind's optax twin is a closed loop inside the engine (a transformation
    that needs its settings as Python numbers: one program per setting)."""
    return kind(kind_name).loop_twin is not None


IMPLS = ("hand", "optax")  # who computes a run's schedule in the engine (``schedule_impl``)


def check_twin(kind_name: str, params: dict[str, Any]) -> None:
    """Raises ``ConfigError("schedule_impl", ...)`` when the engine cannot run this schedule
    point with its optax twin (no twin, or a setting the twin cannot express)."""
    with_twin = [k for k in kinds() if _KINDS[k].loop_twin or _KINDS[k].twin is not None]
    if kind_name not in with_twin:
        raise ConfigError(
            "schedule_impl",
            f"schedule {kind_name!r} has no optax twin; with schedule_impl=optax use one of "
            f"{', '.join(with_twin)}",
        )
    try:
        make_twin(kind_name, 1.0, **params)
    except ConfigError as err:
        raise ConfigError(err.field, f"{err} (the optax twin of {kind_name!r})") from None


def twin_factors(kind_name: str, params: dict[str, Any], steps_per_epoch: int, total_steps: int):
    """The optax twin's multiplier at steps ``0 … total_steps − 1`` as a NumPy table.

    The engine multiplies it by the run's base learning rate (``schedule_impl="optax"``);
    optax builders need Python numbers, so the table is built on the host, once per run.
    For ``reduce_on_plateau`` the open-loop part is 1 and the loop itself is
    ``optax.contrib.reduce_on_plateau`` inside the engine (see :func:`optax_plateau`).
    """
    check_twin(kind_name, params)
    p = resolve(kind_name, params)
    if has_loop_twin(kind_name):
        return np.ones(total_steps)
    steps = np.arange(total_steps)
    t = steps if p["unit"] == "step" else steps // steps_per_epoch
    return np.asarray(jax.vmap(make_twin(kind_name, 1.0, **params))(jnp.asarray(t)), np.float64)


def optax_plateau(factor: float, min_delta: float, params: dict[str, Any], lr):
    """``optax.contrib.reduce_on_plateau`` for one run inside the engine, stepped once per epoch
    with the monitored metric (``accumulation_size=1``, as optax advises for a validation value).

    ``factor`` and ``min_delta`` must be Python numbers (optax checks them when the transform
    is built), so they are part of the compiled program; ``patience``, ``cooldown`` and
    ``min_lr / lr`` stay per-run data.
    """
    return optax.contrib.reduce_on_plateau(
        factor=factor,
        patience=params["patience"],
        rtol=0.0,
        atol=min_delta,
        cooldown=params["cooldown"],
        accumulation_size=1,
        min_scale=params["min_lr"] / lr,
    )


# ---------------------------------------------------------------------------------------------
# Closed loop: reduce / increase on plateau


class PlateauState(NamedTuple):
    """Keras' ``ReduceLROnPlateau`` attributes, as arrays (one per run in the engine)."""

    lr: Any  # the current base learning rate (Keras keeps it in the optimizer)
    best: Any  # best monitored value so far, sign-flipped for an accuracy (mode max)
    wait: Any  # int32: epochs without improvement
    cooldown_counter: Any  # int32: epochs of rest left after a change


def plateau_init(lr, dtype=None) -> PlateauState:
    """State before the first epoch (Keras ``_reset``): best = +inf, counters at 0."""
    lr = jnp.asarray(lr, dtype)
    return PlateauState(
        lr=lr,
        best=jnp.full_like(lr, jnp.inf),
        wait=jnp.zeros(lr.shape, jnp.int32),
        cooldown_counter=jnp.zeros(lr.shape, jnp.int32),
    )


def plateau_update(
    state: PlateauState,
    value,
    *,
    factor,
    patience,
    min_delta,
    cooldown,
    bound,
    increase=False,
) -> PlateauState:
    """One ``ReduceLROnPlateau.on_epoch_end`` of Keras (mode min), branch-free.

    With ``improved = value < best − min_delta``::

        if cooldown_counter > 0: cooldown_counter −= 1; wait = 0
        if improved:              best = value; wait = 0
        elif cooldown_counter == 0:
            wait += 1
            if wait >= patience and lr > bound:          # lr < bound when increasing
                lr = max(lr·factor, bound)                # min(...) when increasing
                cooldown_counter = cooldown; wait = 0

    ``bound`` is Keras' ``min_lr`` (or the ``max_lr`` cap when ``increase``). A NaN value
    never improves. Reference: keras/src/callbacks/reduce_lr_on_plateau.py.
    """
    value = jnp.asarray(value, state.best.dtype)
    bound = jnp.asarray(bound, state.lr.dtype)
    cooling = state.cooldown_counter > 0
    counter = jnp.where(cooling, state.cooldown_counter - 1, state.cooldown_counter)
    wait = jnp.where(cooling, 0, state.wait)
    improved = value < state.best - min_delta
    best = jnp.where(improved, value, state.best)
    still_cooling = counter > 0
    wait = jnp.where(improved, 0, jnp.where(still_cooling, wait, wait + 1))
    room = jnp.where(increase, state.lr < bound, state.lr > bound)
    change = (~improved) & (~still_cooling) & (wait >= patience) & room
    moved = (state.lr * jnp.asarray(factor, state.lr.dtype)).astype(state.lr.dtype)
    moved = jnp.where(increase, jnp.minimum(moved, bound), jnp.maximum(moved, bound))
    return PlateauState(
        lr=jnp.where(change, moved, state.lr),
        best=best,
        wait=jnp.where(change, 0, wait).astype(jnp.int32),
        cooldown_counter=jnp.where(change, jnp.asarray(cooldown).astype(jnp.int32), counter),
    )


def monitored(params, train_loss, test_loss, test_acc):
    """The monitored quantity, signed so that smaller is better (Keras mode 'auto')."""
    values = jnp.stack([train_loss, test_loss, -test_acc])
    return values[jnp.clip(jnp.asarray(params["monitor"]).astype(jnp.int32), 0, len(MONITORS) - 1)]


def _plateau_args(params, bound, increase):
    return {
        "factor": params["factor"],
        "patience": params["patience"],
        "min_delta": params["min_delta"],
        "cooldown": params["cooldown"],
        "bound": bound,
        "increase": increase,
    }


def closed_loop_update(
    kind_index, params: dict[str, Any], state: PlateauState, train_loss, test_loss, test_acc
) -> PlateauState:
    """End-of-epoch update of one run's plateau state (used inside the engine).

    Open-loop kinds keep ``state`` unchanged (their ``state.lr`` stays the base rate).
    """
    loops = [_KINDS[k] for k in closed_loop_kinds()]
    this = {k.name: kind_index == index(k.name) for k in loops}
    closed = functools.reduce(jnp.logical_or, this.values())
    increase = functools.reduce(jnp.logical_or, [this[k.name] for k in loops if k.increase])
    value = monitored(params, train_loss, test_loss, test_acc)
    bound = sum(jnp.where(this[k.name], params[k.bound], 0) for k in loops)
    new = plateau_update(state, value, **_plateau_args(params, bound, increase))
    return jax.tree_util.tree_map(lambda a, b: jnp.where(closed, a, b), new, state)


class Plateau(NamedTuple):
    """A closed-loop schedule on its own: ``state = init(); state = update(state, metric)``."""

    init: Callable[[], PlateauState]
    update: Callable[[PlateauState, Any], PlateauState]


def plateau(kind_name: str, lr: float = 1.0, **params) -> Plateau:
    """The closed loop of ``reduce_on_plateau`` / ``increase_on_plateau``, validated now.

    ``update(state, value)`` takes the monitored metric itself (an accuracy when
    ``monitor=2``) and returns the next state; ``state.lr`` is the learning rate to use in
    the next epoch.
    """
    if kind_name not in closed_loop_kinds():
        raise ConfigError(
            "schedule",
            f"{kind_name!r} is not closed-loop; allowed: {', '.join(closed_loop_kinds())}",
        )
    p = resolve(kind_name, params)
    if not (math.isfinite(lr) and lr > 0):
        raise ConfigError("lr", f"lr={lr!r} must be a finite number > 0")
    k = kind(kind_name)
    sign = -1.0 if p["monitor"] == MONITORS.index("test_acc") else 1.0
    args = _plateau_args(p, p[k.bound], k.increase)

    def init():
        return plateau_init(lr, jnp.float32)

    def update(state, value):
        return plateau_update(state, sign * jnp.asarray(value, jnp.float32), **args)

    return Plateau(init, update)
