"""lrbench's schedules against PyTorch's and Keras' own, with the parameter mappings that
docs/schedules.md documents ("Mappings to PyTorch and Keras").

torch and keras are not installed here: each reference below is written in NumPy / Python
from the library's source (torch/optim/lr_scheduler.py: ``OneCycleLR.get_lr`` and its
``_schedule_phases``, ``CosineAnnealingLR.get_lr`` (the recursive form ``step()`` uses),
``ReduceLROnPlateau.step``; keras/src/callbacks/reduce_lr_on_plateau.py:
``ReduceLROnPlateau.on_epoch_end``), never from lrbench's code.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrbench import schedules

# ---------------------------------------------------------------------------------------------
# PyTorch OneCycleLR


def torch_onecycle(
    total_steps,
    max_lr,
    pct_start=0.3,
    anneal_strategy="cos",
    div_factor=25.0,
    final_div_factor=1e4,
    three_phase=False,
):
    """``OneCycleLR(...).get_lr()`` at ``last_epoch = 0 … total_steps − 1`` (the rates of the
    ``total_steps`` optimizer steps): phases end at ``pct_start·N − 1`` (and
    ``2·pct_start·N − 2`` with three phases) and ``N − 1``, ``pct`` measured from the previous
    phase's end."""
    initial = max_lr / div_factor
    lrs = {"initial_lr": initial, "max_lr": max_lr, "min_lr": initial / final_div_factor}
    n = total_steps
    if three_phase:
        phases = [
            (float(pct_start * n) - 1, "initial_lr", "max_lr"),
            (float(2 * pct_start * n) - 2, "max_lr", "initial_lr"),
            (n - 1, "initial_lr", "min_lr"),
        ]
    else:
        phases = [(float(pct_start * n) - 1, "initial_lr", "max_lr"), (n - 1, "max_lr", "min_lr")]

    def anneal(start, end, pct):
        if anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    out = []
    for step in range(n):
        start_step = 0.0
        for i, (end_step, a, b) in enumerate(phases):
            if step <= end_step or i == len(phases) - 1:
                out.append(anneal(lrs[a], lrs[b], (step - start_step) / (end_step - start_step)))
                break
            start_step = end_step
    return np.array(out)


def lrbench_rates(kind, lr, steps, **params):
    """lrbench's rate at steps 0 … steps − 1 (one step per epoch)."""
    schedule = schedules.make(kind, lr=lr, **params)
    return np.array([float(schedule(s)) for s in range(steps)], np.float64)


ONECYCLE_CASES = [(100, 0.3), (200, 0.25), (37, 0.3), (10, 0.5), (1000, 0.1)]


@pytest.mark.parametrize(("n", "pct"), ONECYCLE_CASES)
def test_cosine_onecycle_equals_torch_onecycle_with_the_mapping(n, pct):
    """torch ``OneCycleLR(total_steps=N, pct_start=p)`` is lrbench's ``cosine_onecycle`` with
    ``total_steps=N−1, pct_start=(p·N−1)/(N−1)`` at every one of its N steps (fractional
    ``p·N`` included: torch keeps the phase end a float)."""
    torch = torch_onecycle(n, 0.4, pct_start=pct, div_factor=20.0, final_div_factor=100.0)
    mine = lrbench_rates(
        "cosine_onecycle",
        0.4,
        n,
        total_steps=n - 1,
        pct_start=(pct * n - 1) / (n - 1),
        div_factor=20.0,
        final_div_factor=100.0,
    )
    np.testing.assert_allclose(mine, torch, rtol=3e-6, atol=2e-7 * 0.4)  # float32 rounding


def test_onecycle_unmapped_peaks_one_step_later_than_torch():
    """With the same numbers, torch's peak is at step ``p·N − 1`` and its floor at ``N − 1``;
    lrbench's (and optax's) at ``p·N`` and ``N``."""
    n, pct = 100, 0.3
    torch = torch_onecycle(n, 1.0, pct_start=pct)
    same_numbers = lrbench_rates("cosine_onecycle", 1.0, n + 1, total_steps=n, pct_start=pct)
    assert int(np.argmax(torch)) == 29 and int(np.argmax(same_numbers)) == 30
    assert torch[-1] == pytest.approx(1 / 25 / 1e4) and same_numbers[n - 1] > torch[-1]
    assert same_numbers[n] == pytest.approx(1 / 25 / 1e4, rel=1e-5)


@pytest.mark.parametrize(("n", "pct"), [(100, 0.3), (120, 0.2), (41, 0.35)])
def test_linear_onecycle_equals_torch_three_phase_linear_with_the_mapping(n, pct):
    """torch ``OneCycleLR(total_steps=N, pct_start=p, anneal_strategy='linear',
    three_phase=True)`` is lrbench's ``linear_onecycle`` with ``total_steps=N−1,
    pct_start=(p·N−1)/(N−1), pct_final=(2·p·N−2)/(N−1)``."""
    torch = torch_onecycle(n, 0.1, pct_start=pct, anneal_strategy="linear", three_phase=True)
    mine = lrbench_rates(
        "linear_onecycle",
        0.1,
        n,
        total_steps=n - 1,
        pct_start=(pct * n - 1) / (n - 1),
        pct_final=(2 * pct * n - 2) / (n - 1),
    )
    np.testing.assert_allclose(mine, torch, rtol=3e-6, atol=2e-7 * 0.1)


# ---------------------------------------------------------------------------------------------
# PyTorch CosineAnnealingLR


def torch_cosine_annealing(base_lr, t_max, eta_min, epochs):
    """The rates ``CosineAnnealingLR`` sets over ``epochs`` calls of ``step()`` (its recursive
    form; entry 0 is the rate before the first call)."""
    lr, out = base_lr, [base_lr]
    for epoch in range(1, epochs):
        if (epoch - 1 - t_max) % (2 * t_max) == 0:
            lr = lr + (base_lr - eta_min) * (1 - math.cos(math.pi / t_max)) / 2
        else:
            lr = (1 + math.cos(math.pi * epoch / t_max)) / (
                1 + math.cos(math.pi * (epoch - 1) / t_max)
            ) * (lr - eta_min) + eta_min
        out.append(lr)
    return np.array(out)


@pytest.mark.parametrize(("t_max", "eta_min"), [(50, 0.0), (30, 0.002), (7, 0.01)])
def test_cosine_equals_torch_cosine_annealing_up_to_t_max_then_holds_the_floor(t_max, eta_min):
    """``cosine`` with ``decay_steps=T_max, alpha=eta_min/lr`` equals torch's
    ``CosineAnnealingLR(T_max, eta_min)`` at epochs 0 … T_max; past T_max torch climbs back
    up (period 2·T_max) and lrbench, like optax and Keras, stays at the floor."""
    base = 0.1
    epochs = 3 * t_max
    torch = torch_cosine_annealing(base, t_max, eta_min, epochs)
    mine = lrbench_rates("cosine", base, epochs, decay_steps=t_max, alpha=eta_min / base)
    upto = slice(0, t_max + 1)
    np.testing.assert_allclose(mine[upto], torch[upto], rtol=3e-6, atol=2e-7 * base)
    np.testing.assert_allclose(mine[t_max:], eta_min, rtol=3e-6, atol=2e-7 * base)
    assert torch[t_max + 1] > eta_min + 1e-6 * base  # rising again right after T_max
    np.testing.assert_allclose(torch[2 * t_max], base, rtol=1e-6)  # back at the top at 2·T_max


# ---------------------------------------------------------------------------------------------
# Keras and PyTorch ReduceLROnPlateau (mode min)


def keras_reduce_on_plateau(values, lr, *, factor, patience, min_delta, cooldown, min_lr):
    """``on_epoch_end`` once per value; the learning rate after each epoch."""
    best, wait, cooldown_counter, out = math.inf, 0, 0, []
    for current in values:
        if cooldown_counter > 0:
            cooldown_counter -= 1
            wait = 0
        if current < best - min_delta:  # np.less: False for NaN
            best = current
            wait = 0
        elif not cooldown_counter > 0:
            wait += 1
            if wait >= patience:
                if lr > min_lr:
                    lr = max(lr * factor, min_lr)
                    cooldown_counter = cooldown
                    wait = 0
        out.append(lr)
    return np.array(out)


def torch_reduce_on_plateau(
    values, lr, *, factor, patience, threshold, threshold_mode, cooldown, min_lr, eps
):
    """``step(metric)`` once per value; the learning rate after each epoch."""
    best, bad, cooldown_counter, out = math.inf, 0, 0, []
    for current in values:
        if threshold_mode == "rel":
            better = current < best * (1.0 - threshold)
        else:
            better = current < best - threshold
        if better:
            best = current
            bad = 0
        else:
            bad += 1
        if cooldown_counter > 0:
            cooldown_counter -= 1
            bad = 0
        if bad > patience:
            new = max(lr * factor, min_lr)
            if lr - new > eps:
                lr = new
            cooldown_counter = cooldown
            bad = 0
        out.append(lr)
    return np.array(out)


def keras_as_torch(patience, cooldown, min_delta):
    """The documented mapping: Keras (patience p, cooldown c, min_delta d) → torch."""
    return {
        "patience": patience - 1,
        "cooldown": max(cooldown - 1, 0),
        "threshold": min_delta,
        "threshold_mode": "abs",
        "eps": 0.0,
    }


# losses from a few levels, so that plateaus, exact ties and small gains are frequent
LOSSES = st.lists(
    st.one_of(st.sampled_from([1.0, 0.9, 0.85, 0.8, 0.5, 1.2]), st.just(math.nan)),
    min_size=1,
    max_size=60,
)
PLATEAU = {
    "values": LOSSES,
    "patience": st.integers(1, 6),
    "cooldown": st.integers(0, 5),
    "min_delta": st.sampled_from([0.0, 0.01, 0.05, 0.1]),
    "factor": st.sampled_from([0.1, 0.5, 0.8]),
    "min_lr": st.sampled_from([0.0, 1e-3, 0.05]),
}


@settings(max_examples=400, deadline=None)
@given(**PLATEAU)
def test_keras_plateau_is_torch_plateau_under_the_mapping(
    values, patience, cooldown, min_delta, factor, min_lr
):
    """Keras ``ReduceLROnPlateau(patience=p, cooldown=c, min_delta=d)`` sets the same rates as
    torch's ``ReduceLROnPlateau(patience=p−1, cooldown=max(c−1, 0), threshold=d,
    threshold_mode='abs', eps=0)`` (p ≥ 1; same factor and min_lr) on any loss sequence."""
    keras = keras_reduce_on_plateau(
        values,
        1.0,
        factor=factor,
        patience=patience,
        min_delta=min_delta,
        cooldown=cooldown,
        min_lr=min_lr,
    )
    torch = torch_reduce_on_plateau(
        values,
        1.0,
        factor=factor,
        min_lr=min_lr,
        **keras_as_torch(patience, cooldown, min_delta),
    )
    np.testing.assert_array_equal(keras, torch)


def test_the_mapping_is_needed():
    """Torch with Keras' own numbers reduces one epoch later (patience counts epochs *beyond*
    it), and rests one epoch longer after each reduction (its cooldown epochs all rest)."""
    values = [1.0] * 12
    keras = keras_reduce_on_plateau(
        values, 1.0, factor=0.5, patience=2, min_delta=0.0, cooldown=2, min_lr=0.0
    )
    same_numbers = torch_reduce_on_plateau(
        values,
        1.0,
        factor=0.5,
        patience=2,
        threshold=0.0,
        threshold_mode="abs",
        cooldown=2,
        min_lr=0.0,
        eps=0.0,
    )
    # Keras reduces at epochs 3, 6, 9, 12; torch with the same numbers at 4 and 9: two
    # more bad epochs before the first (patience 2 exceeded), two resting ones after it
    assert np.flatnonzero(np.diff(np.r_[1.0, keras])).tolist() == [2, 5, 8, 11]
    assert np.flatnonzero(np.diff(np.r_[1.0, same_numbers])).tolist() == [3, 8]


_update = jax.jit(schedules.plateau_update, static_argnames=("increase",))


def lrbench_plateau(values, lr, *, factor, patience, min_delta, cooldown, min_lr):
    """lrbench's loop (``reduce_on_plateau``'s state update, float32), one value per epoch."""
    state = schedules.plateau_init(lr, jnp.float32)
    args = {
        "factor": jnp.float32(factor),
        "patience": jnp.float32(patience),
        "min_delta": jnp.float32(min_delta),
        "cooldown": jnp.float32(cooldown),
        "bound": jnp.float32(min_lr),
    }
    out = []
    for v in values:
        state = _update(state, jnp.float32(v), **args)
        out.append(float(state.lr))
    return np.array(out)


@settings(max_examples=60, deadline=None)
@given(**PLATEAU)
def test_lrbench_plateau_follows_keras(values, patience, cooldown, min_delta, factor, min_lr):
    """lrbench's ``reduce_on_plateau`` follows Keras' ``ReduceLROnPlateau`` (what it claims):
    the same rates, to float32 rounding, on any loss sequence. The levels and ``min_delta``
    are chosen so that no comparison sits within float32 rounding of its threshold."""
    kwargs = {
        "factor": factor,
        "patience": patience,
        "min_delta": min_delta,
        "cooldown": cooldown,
        "min_lr": min_lr,
    }
    keras = keras_reduce_on_plateau(values, 1.0, **kwargs)
    mine = lrbench_plateau(values, 1.0, **kwargs)
    np.testing.assert_allclose(mine, keras, rtol=1e-6)


def test_lrbench_plateau_through_its_public_loop():
    """The same through ``schedules.plateau`` (validated parameters, the monitored sign)."""
    values = [1.0, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.5]
    kwargs = {"factor": 0.5, "patience": 2, "min_delta": 0.05, "cooldown": 2, "min_lr": 0.1}
    loop = schedules.plateau("reduce_on_plateau", 0.8, **kwargs)
    state, mine = loop.init(), []
    for v in values:
        state = loop.update(state, v)
        mine.append(float(state.lr))
    keras = keras_reduce_on_plateau(values, 0.8, **kwargs)
    np.testing.assert_allclose(mine, keras, rtol=1e-6)
    assert len(set(keras)) >= 3  # it reduced twice
