"""Schedules: every open-loop kind against a NumPy closed form, every twin against optax, the
plateau loop against traces written by hand, and a grid of all kinds compiled once."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrbench import cli, runner, schedules
from lrbench.models import MLPConfig
from lrbench.sweep import Optimizer, Schedule, Sweep

# ---------------------------------------------------------------------------------------------
# NumPy closed forms, written from the formulas of Keras / PyTorch / optax (float64). Each takes
# the time ``t`` in the schedule's unit, after the warmup, and returns the factor of the base lr.


def _slots(p, name):
    return [p[f"{name}_{i}"] for i in range(1, 5)]


def _np_sgdr(t, p):
    """Walks the cycles one by one (no logarithms): cycle i lasts T0·t_mul^i."""
    out = np.empty_like(t)
    for j, tj in enumerate(t):
        start, length, i = 0.0, p["first_decay_steps"], 0
        while tj >= start + length:
            start, length, i = start + length, length * p["t_mul"], i + 1
        done = (tj - start) / length
        out[j] = (1 - p["alpha"]) * p["m_mul"] ** i * 0.5 * (1 + math.cos(math.pi * done)) + p[
            "alpha"
        ]
    return out


def _np_cosine_onecycle(t, p):
    """PyTorch's OneCycleLR(anneal_strategy='cos') phases, ending at total_steps like optax."""

    def cos_anneal(start, end, pct):
        return end + (start - end) / 2.0 * (np.cos(np.pi * pct) + 1)

    up, total = p["pct_start"] * p["total_steps"], p["total_steps"]
    first = 1 / p["div_factor"]
    last = first / p["final_div_factor"]
    return np.select(
        [t < up, t < total],
        [cos_anneal(first, 1.0, t / up), cos_anneal(1.0, last, (t - up) / (total - up))],
        last,
    )


def _np_linear_onecycle(t, p):
    total = p["total_steps"]
    first = 1 / p["div_factor"]
    knots = [0.0, p["pct_start"] * total, p["pct_final"] * total, total]
    return np.interp(t, knots, [first, 1.0, first, first / p["final_div_factor"]])


def _np_cyclic(scale):
    """PyTorch CyclicLR.get_lr with step_size_down = step_size_up."""

    def factor(t, p):
        total = 2 * p["step_size_up"]
        cycle = np.floor(1 + t / total)
        x = 1.0 + t / total - cycle
        height = np.where(x <= 0.5, x / 0.5, (x - 1) / (0.5 - 1))
        return p["base_factor"] + (1 - p["base_factor"]) * height * scale(cycle, t, p)

    return factor


NUMPY = {
    "constant": lambda t, p: np.ones_like(t),
    "step": lambda t, p: p["gamma"] ** np.floor(t / p["step_size"]),
    "exponential": lambda t, p: (
        p["decay_rate"]
        ** (np.floor(t / p["transition_steps"]) if p["staircase"] else t / p["transition_steps"])
    ),
    "time_based": lambda t, p: 1 / (1 + p["decay"] * t),
    "linear": lambda t, p: np.interp(t, [0, p["transition_steps"]], [1, p["end_factor"]]),
    "multistep": lambda t, p: (
        p["gamma"]
        ** np.searchsorted(sorted(m for m in _slots(p, "milestone") if m > 0), t, side="right")
    ),
    "piecewise_constant": lambda t, p: np.prod(
        [
            np.where(t >= b, s, 1.0)
            for b, s in zip(_slots(p, "boundary"), _slots(p, "scale"), strict=True)
            if b > 0
        ]
        + [np.ones_like(t)],
        axis=0,
    ),
    "inverse_time": lambda t, p: (
        1
        / (
            1
            + p["decay_rate"]
            * (np.floor(t / p["decay_steps"]) if p["staircase"] else t / p["decay_steps"])
        )
    ),
    "polynomial": lambda t, p: (
        (1 - p["end_factor"]) * (1 - np.minimum(t / p["transition_steps"], 1)) ** p["power"]
        + p["end_factor"]
    ),
    "cosine": lambda t, p: np.where(
        t <= p["decay_steps"],
        p["alpha"] + (1 - p["alpha"]) * 0.5 * (1 + np.cos(np.pi * t / p["decay_steps"])),
        p["alpha"],
    ),
    "sgdr": _np_sgdr,
    "cosine_onecycle": _np_cosine_onecycle,
    "linear_onecycle": _np_linear_onecycle,
    "cyclic_triangular": _np_cyclic(lambda c, t, p: 1.0),
    "cyclic_triangular2": _np_cyclic(lambda c, t, p: 1 / 2.0 ** (c - 1)),
    "cyclic_exp_range": _np_cyclic(lambda c, t, p: p["gamma"] ** t),
    # closed-loop kinds: their open-loop part is the constant rate
    "reduce_on_plateau": lambda t, p: np.ones_like(t),
    "increase_on_plateau": lambda t, p: np.ones_like(t),
}


def numpy_lr(kind, lr, steps, steps_per_epoch, params):
    """The learning rate at global ``steps``, warmup and unit included, in float64."""
    p = schedules.resolve(kind, params)
    steps = np.asarray(steps, np.float64)
    t = steps if p["unit"] == "step" else np.floor(steps / steps_per_epoch)
    w, s = p["warmup_steps"], p["warmup_start_factor"]
    after = NUMPY[kind](np.maximum(t - w, 0.0), p)
    ramp = s + (1 - s) * t / w if w > 0 else np.ones_like(t)
    return lr * np.where(t < w, ramp, after)


CASES = [
    ("constant", {}),
    ("step", {"step_size": 7, "gamma": 0.5}),
    ("step", {"step_size": 25, "gamma": 0.8, "unit": "step"}),
    ("exponential", {"decay_rate": 0.9, "transition_steps": 3}),
    ("exponential", {"decay_rate": 0.5, "transition_steps": 20, "staircase": 1}),
    ("time_based", {"decay": 0.01}),  # Keras: per iteration
    ("time_based", {"decay": 0.1, "unit": "epoch"}),
    ("linear", {"end_factor": 0.1, "transition_steps": 50}),
    ("multistep", {}),
    (
        "multistep",
        {"milestone_1": 40, "milestone_2": 10, "milestone_3": 0, "milestone_4": 40, "gamma": 0.5},
    ),
    ("piecewise_constant", {}),
    (
        "piecewise_constant",
        {
            "boundary_1": 20,
            "scale_1": 0.5,
            "boundary_2": 40,
            "scale_2": 0.1,
            "boundary_3": 0,
            "scale_3": 7,
        },
    ),
    ("inverse_time", {"decay_rate": 0.5, "decay_steps": 10}),
    ("inverse_time", {"decay_rate": 2.0, "decay_steps": 30, "staircase": 1, "unit": "step"}),
    ("polynomial", {"end_factor": 0.01, "power": 2, "transition_steps": 80}),
    ("polynomial", {"end_factor": 0.2, "power": 0.5, "transition_steps": 150}),
    ("cosine", {"decay_steps": 60, "alpha": 0.1}),
    ("cosine", {"decay_steps": 100, "warmup_steps": 10, "warmup_start_factor": 0.1}),
    ("sgdr", {"first_decay_steps": 10, "t_mul": 2, "m_mul": 0.5, "alpha": 0.05}),
    ("sgdr", {"first_decay_steps": 13, "t_mul": 1}),
    ("sgdr", {"first_decay_steps": 10, "t_mul": 1.5, "m_mul": 0.8}),
    ("cosine_onecycle", {"total_steps": 100}),
    ("cosine_onecycle", {"total_steps": 450, "pct_start": 0.25, "unit": "step"}),
    ("linear_onecycle", {"total_steps": 100}),
    ("linear_onecycle", {"total_steps": 120, "pct_start": 0.1, "pct_final": 0.5, "div_factor": 10}),
    ("cyclic_triangular", {"base_factor": 0.2, "step_size_up": 8}),
    ("cyclic_triangular2", {"base_factor": 0.1, "step_size_up": 12}),
    ("cyclic_exp_range", {"base_factor": 0.05, "step_size_up": 10, "gamma": 0.97}),
    ("cyclic_exp_range", {"step_size_up": 40, "gamma": 0.995, "unit": "step"}),
    ("exponential", {"decay_rate": 0.95, "warmup_steps": 5, "warmup_start_factor": 0.5}),
    ("constant", {"warmup_steps": 20}),
    ("reduce_on_plateau", {}),
    ("increase_on_plateau", {"warmup_steps": 4}),
]
STEPS = np.arange(0, 661)  # 220 epochs of 3 steps
LR = 0.3


def _ids(cases):
    return [f"{k}-{i}" for i, (k, _) in enumerate(cases)]


def assert_float32_close(got, want, lr):
    """Equal to float32 rounding: 1e-5 relative, or 2e-7·lr absolute where a factor nears 0
    (1 + cos(πx) near x = 1 cancels; no float32 formula does better there)."""
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=1e-5, atol=2e-7 * lr)


def test_every_open_loop_kind_has_a_numpy_closed_form_and_a_case():
    assert set(NUMPY) == set(schedules.kinds())
    assert {k for k, _ in CASES} == set(schedules.kinds())
    assert set(schedules.closed_loop_kinds()) == {"reduce_on_plateau", "increase_on_plateau"}


@pytest.mark.parametrize("kind,params", CASES, ids=_ids(CASES))
def test_make_matches_numpy(kind, params):
    """``make`` at 661 steps (3 per epoch) against the NumPy closed form: float32 rounding."""
    got = np.asarray(schedules.make(kind, lr=LR, steps_per_epoch=3, **params)(jnp.asarray(STEPS)))
    want = numpy_lr(kind, LR, STEPS, 3, params)
    assert got.dtype == np.float32
    assert_float32_close(got, want, LR)


@pytest.mark.parametrize("kind,params", CASES, ids=_ids(CASES))
def test_engine_path_matches_make(kind, params):
    """``evaluate`` (every kind computed, the run's picked by index, params as arrays) equals
    ``make``: the per-run-data path and the one-schedule path are the same function."""
    p = schedules.resolve(kind, params)
    arrays = {
        k: jnp.asarray(v, jnp.float32)
        for k, v in {**schedules.default_params(), **p}.items()
        if k != "unit"
    }
    evaluate = jax.jit(
        jax.vmap(
            lambda s: schedules.evaluate(schedules.index(kind), arrays, p["unit"] == "step", s, 3)
        )
    )
    got = LR * np.asarray(evaluate(jnp.asarray(STEPS)), np.float64)
    want = np.asarray(schedules.make(kind, lr=LR, steps_per_epoch=3, **params)(jnp.asarray(STEPS)))
    assert_float32_close(got, want, LR)


# ---------------------------------------------------------------------------------------------
# optax twins

TWIN_CASES = [
    ("constant", {}),
    ("step", {"step_size": 7, "gamma": 0.5}),
    ("exponential", {"decay_rate": 0.9, "transition_steps": 3}),
    ("exponential", {"decay_rate": 0.5, "transition_steps": 20, "staircase": 1}),
    ("linear", {"end_factor": 0.1, "transition_steps": 50}),
    ("multistep", {"milestone_1": 40, "milestone_2": 10, "milestone_4": 40, "gamma": 0.5}),
    (
        "piecewise_constant",
        {"boundary_1": 20, "scale_1": 0.5, "boundary_2": 40, "scale_2": 0.1, "boundary_3": 0},
    ),
    ("polynomial", {"end_factor": 0.01, "power": 2, "transition_steps": 80}),
    ("cosine", {"decay_steps": 60, "alpha": 0.1}),
    ("cosine", {"decay_steps": 100, "alpha": 0.05, "warmup_steps": 10, "warmup_start_factor": 0.1}),
    ("sgdr", {"first_decay_steps": 10, "t_mul": 2, "m_mul": 0.5, "alpha": 0.05}),
    ("sgdr", {"first_decay_steps": 13, "t_mul": 1}),
    ("cosine_onecycle", {"total_steps": 100}),
    ("linear_onecycle", {"total_steps": 100}),
    ("linear_onecycle", {"total_steps": 120, "pct_start": 0.1, "pct_final": 0.5, "div_factor": 10}),
    ("exponential", {"decay_rate": 0.95, "warmup_steps": 5, "warmup_start_factor": 0.5}),
    ("step", {"step_size": 10, "gamma": 0.5, "warmup_steps": 8}),
]
TWINNED = {
    "constant", "step", "exponential", "linear", "multistep", "piecewise_constant", "polynomial",
    "cosine", "sgdr", "cosine_onecycle", "linear_onecycle", "reduce_on_plateau",
}  # fmt: skip


def test_twins_exist_where_optax_has_the_schedule():
    assert {k for k in schedules.kinds() if schedules.make_twin(k) is not None} == TWINNED
    assert {k for k, _ in TWIN_CASES} == TWINNED - {"reduce_on_plateau"}


@pytest.mark.parametrize("kind,params", TWIN_CASES, ids=_ids(TWIN_CASES))
def test_hand_schedule_equals_its_optax_twin(kind, params):
    t = jnp.arange(0, 301)
    twin = np.asarray(jax.vmap(schedules.make_twin(kind, LR, **params))(t))
    hand = np.asarray(schedules.make(kind, lr=LR, steps_per_epoch=1, **params)(t))
    assert_float32_close(hand, twin, LR)


def test_twin_needs_whole_steps():
    with pytest.raises(ValueError, match="decay_steps"):
        schedules.make_twin("cosine", LR, decay_steps=10.5)


# ---------------------------------------------------------------------------------------------
# Validation when the schedule is built

BAD = [
    ("exponential", {"transition_steps": 0}, "transition_steps"),
    ("inverse_time", {"decay_steps": 0}, "decay_steps"),
    ("cosine", {"decay_steps": -5}, "decay_steps"),
    ("step", {"step_size": 0}, "step_size"),
    ("step", {"gamma": float("nan")}, "gamma"),
    ("multistep", {"gamma": 1.5}, "gamma"),
    ("multistep", {"milestone_1": -3}, "milestone_1"),
    ("piecewise_constant", {"scale_2": 0}, "scale_2"),
    ("reduce_on_plateau", {"factor": 1.0}, "factor"),
    ("reduce_on_plateau", {"factor": 0.0}, "factor"),
    ("reduce_on_plateau", {"factor": 2.0}, "factor"),
    ("increase_on_plateau", {"factor": 0.5}, "factor"),
    ("reduce_on_plateau", {"patience": -1}, "patience"),
    ("reduce_on_plateau", {"patience": 2.5}, "patience"),
    ("reduce_on_plateau", {"cooldown": -1}, "cooldown"),
    ("reduce_on_plateau", {"min_delta": -1e-3}, "min_delta"),
    ("reduce_on_plateau", {"monitor": 3}, "monitor"),
    ("reduce_on_plateau", {"min_lr": -1}, "min_lr"),
    ("increase_on_plateau", {"max_lr": 0}, "max_lr"),
    ("sgdr", {"t_mul": 0.5}, "t_mul"),
    ("sgdr", {"first_decay_steps": 0}, "first_decay_steps"),
    ("cosine_onecycle", {"pct_start": 1.0}, "pct_start"),
    ("linear_onecycle", {"pct_start": 0.9, "pct_final": 0.5}, "pct_final"),
    ("cyclic_triangular", {"step_size_up": 0}, "step_size_up"),
    ("cyclic_exp_range", {"gamma": 0}, "gamma"),
    ("polynomial", {"power": 0}, "power"),
    ("cosine", {"warmup_steps": -1}, "warmup_steps"),
    ("constant", {"decay": 0.1}, "decay"),  # not a parameter of this kind
    ("step", {"unit": "hour"}, "unit"),
    ("step", {"gamma": "fast"}, "gamma"),
]


@pytest.mark.parametrize(
    "kind,params,field", BAD, ids=[f"{k}-{f}-{i}" for i, (k, _, f) in enumerate(BAD)]
)
def test_bad_parameters_raise_value_error_naming_the_field(kind, params, field):
    with pytest.raises(ValueError, match=field) as info:
        schedules.make(kind, lr=0.1, **params)
    assert info.value.field == field


def test_unknown_kind():
    with pytest.raises(ValueError, match="schedule"):
        schedules.make("zigzag")


# ---------------------------------------------------------------------------------------------
# Closed loop: Keras ReduceLROnPlateau semantics against traces written by hand


def _trace(kind, values, lr, **params):
    loop = schedules.plateau(kind, lr, **params)
    state, out = loop.init(), []
    for v in values:
        state = loop.update(state, v)
        out.append(state)
    return (
        np.array([getattr(s, f) for s in out], np.float64)
        for f in ("lr", "wait", "cooldown_counter")
    )


# A scripted monitored metric: improves, plateaus at 0.80 for five epochs, drops to 0.60 and
# plateaus for seven, then improves again (the epoch-by-epoch traces below are written for it).
SCRIPTED_LOSSES = [1.0, 0.95, 0.85, *[0.80] * 5, *[0.60] * 7, 0.45]


def test_reduce_on_plateau_hand_trace():
    """patience 2, min_delta 0.1, cooldown 2, min_lr 0.2, factor 0.5 (Keras, mode min).

    epoch value  why                                                  lr after wait cooldown
      1   1.00   first value improves on +inf: best 1.00                1.0     0    0
      2   0.95   better by 0.05 < min_delta: no improvement              1.0     1    0
      3   0.85   0.85 < 1.00 − 0.1: best 0.85                            1.0     0    0
      4   0.80   not < 0.75                                              1.0     1    0
      5   0.80   wait reaches patience: lr·0.5, cooldown 2               0.5     0    2
      6   0.80   cooling (2 → 1), not counted                            0.5     0    1
      7   0.80   cooling ends (1 → 0) and this epoch counts (Keras)      0.5     1    0
      8   0.80   wait 2: lr·0.5                                          0.25    0    2
      9   0.60   improves during cooldown: best 0.60                     0.25    0    1
     10   0.60   cooling ends, counts                                    0.25    1    0
     11   0.60   wait 2: max(0.125, min_lr) = 0.2                         0.2     0    2
     12   0.60   cooling                                                 0.2     0    1
     13   0.60   cooling ends, counts                                    0.2     1    0
     14   0.60   wait 2 but lr is at min_lr: nothing, wait not reset     0.2     2    0
     15   0.60   wait 3                                                  0.2     3    0
     16   0.45   improves                                                0.2     0    0
    """
    values = SCRIPTED_LOSSES
    lr, wait, cooldown = _trace(
        "reduce_on_plateau",
        values,
        1.0,
        factor=0.5,
        patience=2,
        min_delta=0.1,
        cooldown=2,
        min_lr=0.2,
    )
    np.testing.assert_allclose(
        lr, [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2], rtol=1e-7
    )
    np.testing.assert_array_equal(wait, [0, 1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 2, 3, 0])
    np.testing.assert_array_equal(cooldown, [0, 0, 0, 0, 2, 1, 0, 2, 1, 0, 2, 1, 0, 0, 0, 0])


def test_keras_cooldown_one_rests_no_epoch():
    """In Keras the epoch on which the cooldown counter reaches 0 already counts towards
    patience, so ``cooldown=1`` gives the same learning rates as ``cooldown=0``."""
    values = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    zero = next(_trace("reduce_on_plateau", values, 1.0, factor=0.5, patience=2, cooldown=0))
    one = next(_trace("reduce_on_plateau", values, 1.0, factor=0.5, patience=2, cooldown=1))
    np.testing.assert_array_equal(zero, one)
    np.testing.assert_allclose(zero, [1, 1, 0.5, 0.5, 0.25, 0.25, 0.125])


def test_increase_on_plateau_hand_trace():
    """patience 1, min_delta 0, factor 2, max_lr 0.3, from lr 0.1."""
    values = [1.0, 1.0, 0.9, 0.9, 0.95, 0.95]
    # 1.0 best | no gain: 0.2 | 0.9 best | no gain: min(0.4, 0.3) | at max_lr: stays | stays
    lr, wait, _ = _trace(
        "increase_on_plateau", values, 0.1, factor=2.0, patience=1, min_delta=0.0, max_lr=0.3
    )
    np.testing.assert_allclose(lr, [0.1, 0.2, 0.2, 0.3, 0.3, 0.3], rtol=1e-7)
    np.testing.assert_array_equal(wait, [0, 0, 0, 0, 1, 2])


def test_monitoring_an_accuracy_maximises():
    """monitor=2 (test accuracy): Keras mode 'max', improvement means value > best + min_delta."""
    values = [0.50, 0.505, 0.60, 0.59]
    lr, _, _ = _trace(
        "reduce_on_plateau", values, 1.0, monitor=2, factor=0.5, patience=1, min_delta=0.01
    )
    np.testing.assert_allclose(lr, [1.0, 0.5, 0.5, 0.25])


def test_nan_never_improves():
    lr, wait, _ = _trace(
        "reduce_on_plateau", [1.0, float("nan"), float("nan")], 1.0, factor=0.5, patience=2
    )
    np.testing.assert_allclose(lr, [1.0, 1.0, 0.5])


# optax.contrib.reduce_on_plateau (configured as make_twin does: rtol 0, atol min_delta)


def _optax_trace(tx, values, lr):
    state = tx.init({"w": jnp.zeros(())})
    out = []
    for v in values:
        _, state = tx.update({"w": jnp.ones(())}, state, value=jnp.asarray(v))
        out.append(lr * float(state.scale))
    return np.array(out)


def test_optax_plateau_agrees_without_cooldown():
    values = SCRIPTED_LOSSES
    params = dict(factor=0.5, patience=2, min_delta=0.1, cooldown=0, min_lr=0.2)
    keras, _, _ = _trace("reduce_on_plateau", values, 1.0, **params)
    twin = _optax_trace(schedules.make_twin("reduce_on_plateau", 1.0, **params), values, 1.0)
    np.testing.assert_array_equal(keras, twin)


@pytest.mark.slow
def test_optax_plateau_rests_one_epoch_longer_in_cooldown():
    """optax skips every cooldown epoch, Keras counts the last: with the hand trace above
    (cooldown 2) optax's second reduction comes at epoch 11, not 8, and min_lr at epoch 15."""
    values = SCRIPTED_LOSSES
    params = dict(factor=0.5, patience=2, min_delta=0.1, cooldown=2, min_lr=0.2)
    twin = _optax_trace(schedules.make_twin("reduce_on_plateau", 1.0, **params), values, 1.0)
    np.testing.assert_allclose(
        twin, [1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.2, 0.2]
    )
    keras, _, _ = _trace("reduce_on_plateau", values, 1.0, **params)
    assert keras[7] == 0.25 and twin[7] == 0.5


def test_optax_plateau_with_zero_patience_reduces_on_improvement():
    """patience 0: Keras reduces after every epoch without improvement; optax's counter equals
    0 only on an improving epoch, so it reduces exactly then."""
    values = [1.0, 1.0, 0.5, 0.5]
    params = dict(factor=0.5, patience=0, min_delta=0.1)
    keras, _, _ = _trace("reduce_on_plateau", values, 1.0, **params)
    twin = _optax_trace(schedules.make_twin("reduce_on_plateau", 1.0, **params), values, 1.0)
    np.testing.assert_allclose(keras, [1.0, 0.5, 0.5, 0.25])
    np.testing.assert_allclose(twin, [0.5, 0.5, 0.25, 0.25])


def test_optax_default_tolerance_is_relative():
    """optax's default rtol=1e-4 asks a loss of 1000 to fall by 0.1; Keras' min_delta=1e-4 is
    absolute, so a fall of 0.01 per epoch is progress for Keras and a plateau for optax."""
    import optax

    values = [1000.0, 999.99, 999.98, 999.97]
    keras, _, _ = _trace("reduce_on_plateau", values, 1.0, factor=0.5, patience=2, min_delta=1e-4)
    default = _optax_trace(optax.contrib.reduce_on_plateau(factor=0.5, patience=2), values, 1.0)
    np.testing.assert_allclose(keras, [1, 1, 1, 1])
    np.testing.assert_allclose(default, [1, 1, 0.5, 0.5])


def test_optax_plateau_twin_needs_a_tolerance():
    with pytest.raises(ValueError, match="min_delta"):
        schedules.make_twin("reduce_on_plateau", 1.0, min_delta=0.0)


# ---------------------------------------------------------------------------------------------
# The engine: a grid of every kind compiles one program per optimizer, and applies the rates


def keras_reference(values, lr, p, increase):
    """Keras ReduceLROnPlateau.on_epoch_end in plain Python: the rate used in each epoch."""
    best, wait, cooldown_counter, used = math.inf, 0, 0, []
    bound = p["max_lr"] if increase else p["min_lr"]
    for v in values:
        used.append(lr)
        if cooldown_counter > 0:
            cooldown_counter -= 1
            wait = 0
        if v < best - p["min_delta"]:
            best, wait = v, 0
        elif cooldown_counter == 0:
            wait += 1
            if wait >= p["patience"] and (lr < bound if increase else lr > bound):
                lr = min(lr * p["factor"], bound) if increase else max(lr * p["factor"], bound)
                cooldown_counter, wait = p["cooldown"], 0
    return np.array(used)


GRID = Sweep(
    experiment="test_schedules",
    dataset="blobs",
    model=MLPConfig(hidden=(8,)),
    epochs=6,
    batch_size=100,  # 5 steps per epoch
    optimizers=(Optimizer("sgd"), Optimizer("momentum", {"momentum": 0.9})),
    lrs=tuple(float(x) for x in np.geomspace(1e-3, 1.0, 8)),
    seeds=(0, 1, 2),
    schedules=tuple(Schedule(k) for k in schedules.kinds()),
)
OTHER = {  # every kind again with other parameters, units and warmups
    "constant": {"warmup_steps": 2, "warmup_start_factor": 0.25},
    "step": {"step_size": 2, "gamma": 0.3},
    "exponential": {"decay_rate": 0.7, "transition_steps": 2, "staircase": 1},
    "time_based": {"decay": 0.05},
    "linear": {"end_factor": 0.2, "transition_steps": 4},
    "multistep": {"milestone_1": 1, "milestone_2": 3, "gamma": 0.2},
    "piecewise_constant": {"boundary_1": 2, "scale_1": 3.0, "boundary_2": 4, "scale_2": 0.1},
    "inverse_time": {"decay_rate": 3.0, "decay_steps": 7, "unit": "step"},
    "polynomial": {"end_factor": 0.1, "power": 3, "transition_steps": 5},
    "cosine": {"decay_steps": 4, "alpha": 0.2, "warmup_steps": 1},
    "sgdr": {"first_decay_steps": 2, "t_mul": 1.5, "m_mul": 0.5},
    "cosine_onecycle": {"total_steps": 25, "unit": "step"},
    "linear_onecycle": {"total_steps": 5, "pct_start": 0.2, "pct_final": 0.6},
    "cyclic_triangular": {"step_size_up": 7, "unit": "step"},
    "cyclic_triangular2": {"step_size_up": 1, "base_factor": 0.3},
    "cyclic_exp_range": {"step_size_up": 2, "gamma": 0.8},
    "reduce_on_plateau": {
        "monitor": 0,
        "patience": 1,
        "min_delta": 0.05,
        "factor": 0.5,
        "min_lr": 0.004,
    },
    "increase_on_plateau": {
        "monitor": 2,
        "patience": 1,
        "min_delta": 0.003,
        "factor": 3.0,
        "max_lr": 0.5,
    },
}


@pytest.mark.slow
def test_all_kinds_compile_once_per_optimizer(compile_counter):
    """A grid of every kind × 8 rates × 3 seeds × 2 optimizers is 2 programs; a second grid
    with other kinds' parameters, rates and seeds compiles nothing and applies its own rates
    (a value baked into the program would fail the rate check below)."""
    assert set(OTHER) == set(schedules.kinds())
    _, _, timing = runner.train(GRID)  # warm: compiles the programs and every incidental op
    assert timing["programs"] == 2
    other = dataclasses.replace(
        GRID,
        lrs=tuple(float(x) for x in np.geomspace(2e-3, 0.7, 8)),
        seeds=(3, 4, 5),
        schedules=tuple(Schedule(k, v) for k, v in OTHER.items()),
    )
    with compile_counter.counting():
        runs, h, timing = runner.train(other)
    assert compile_counter.count == 0
    assert timing["programs"] == 2 and timing["compile_seconds"] == 0.0
    assert len(runs) == 2 * len(OTHER) * 8 * 3

    steps_per_epoch = other.steps_per_epoch
    epoch_steps = np.arange(other.epochs) * steps_per_epoch
    metrics = {0: h.train_loss, 1: h.test_loss, 2: -h.test_acc}  # smaller is better (mode min)
    changed = {}
    for i, row in runs.iterrows():
        kind, params = row["schedule"], OTHER[row["schedule"]]
        if kind in schedules.closed_loop_kinds():
            p = schedules.resolve(kind, params)
            increase = kind == "increase_on_plateau"
            used = keras_reference(metrics[int(p["monitor"])][i], row["lr"], p, increase)
            live = h.diverged_at[i] or other.epochs
            np.testing.assert_allclose(
                h.lr[i, :live], used[:live], rtol=1e-6, err_msg=f"{kind} run {i}"
            )
            changed[kind] = changed.get(kind, 0) + int(np.any(used != row["lr"]))
        else:
            want = numpy_lr(kind, row["lr"], epoch_steps, steps_per_epoch, params)
            np.testing.assert_allclose(h.lr[i], want, rtol=2e-6, err_msg=f"{kind} run {i}")
    # the closed loop really acted in this grid
    assert changed["reduce_on_plateau"] > 0 and changed["increase_on_plateau"] > 0


@pytest.mark.slow
def test_the_experiment_writes_its_table_figures_and_a_readme_without_claims(tmp_path):
    from experiments import schedules as experiment

    sweep = dataclasses.replace(experiment.get_config(), epochs=3, lrs=(0.3, 0.1), seeds=(0,))
    result = experiment.run(sweep, out=tmp_path / "schedules", quiet=True)
    table = result.meta["tables"]["table"]
    assert list(table.index) == list(experiment.PARAMS)
    assert list(table.columns) == ["lr=0.3", "lr=0.1"]
    readme = (result.folder / "README.md").read_text()
    assert readme.startswith(f"# schedules: {experiment.TITLE}") and "## The claims" not in readme
    for name in ("table.md", "schedules.png", "sensitivity.png", "curves.csv"):
        assert (result.folder / name).is_file(), name
    text = cli.summary(experiment.NAME, experiment, sweep, result)
    assert "| constant |" in text and "claims:" not in text
