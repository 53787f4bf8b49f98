"""The engine runs a schedule by hand or through its optax twin (``schedule_impls``)."""

from __future__ import annotations

import numpy as np
import optax
import pandas as pd
import pytest

from lrbench import runner
from lrbench.errors import ConfigError
from lrbench.sweep import Optimizer, Schedule, Sweep, expand

SPE = 5  # blobs: 500 training rows, batch 100
PLATEAU = {"patience": 2, "factor": 0.5, "min_delta": 1e-3, "min_lr": 1e-4}
SCHEDULES = (
    Schedule("cosine", {"decay_steps": 40, "alpha": 0.1, "unit": "step"}),
    Schedule("step", {"step_size": 3, "gamma": 0.5}),
    Schedule("linear_onecycle", {"total_steps": 60, "unit": "step"}),
    Schedule("exponential", {"decay_rate": 0.9, "transition_steps": 2, "warmup_steps": 3}),
    Schedule("sgdr", {"first_decay_steps": 4, "t_mul": 2}),
    Schedule("reduce_on_plateau", PLATEAU),
)


def _sweep(**kw) -> Sweep:
    base = dict(
        dataset="blobs", epochs=30, batch_size=100, lrs=(0.3, 0.03), seeds=(0, 1),
        optimizers=(Optimizer("momentum", {"momentum": 0.9}),), schedules=SCHEDULES,
        schedule_impls=("hand", "optax"),
    )  # fmt: skip
    return Sweep(**{**base, **kw})


@pytest.fixture(scope="module")
def trained():
    runs, history, timing = runner.train(_sweep())
    curves = pd.DataFrame(
        {
            "row": np.repeat(np.arange(len(runs)), history.lr.shape[1]),
            "epoch": np.tile(np.arange(history.lr.shape[1]), len(runs)),
            "lr": history.lr.ravel(),
        }
    )
    return runs, history, timing, curves


@pytest.mark.slow
def test_one_program_per_schedule_impl_plus_the_plateau_twin(trained):
    _, _, timing, _ = trained
    # hand, optax (open loop), optax reduce_on_plateau (factor and min_delta are static in optax)
    assert timing["programs"] == 3


@pytest.mark.slow
def test_twin_runs_match_hand_runs(trained):
    runs, history, _, _ = trained
    key = ["schedule_label", "lr", "seed"]
    hand = runs[runs["schedule_impl"] == "hand"].reset_index().set_index(key)["index"]
    twin = runs[runs["schedule_impl"] == "optax"].reset_index().set_index(key)["index"]
    stable = 0
    for k in hand.index:
        if k[0].startswith("reduce_on_plateau"):
            continue  # Keras and optax plateau semantics differ (docs/schedules.md)
        h, t = hand[k], twin[k]
        np.testing.assert_allclose(history.lr[t], history.lr[h], rtol=1e-6, err_msg=str(k))
        loss = history.train_loss[h]
        if np.nanmax(loss) > 2 * loss[0]:
            # a loss that blew up (41 from 3.4 at lr 0.3) amplifies the rates' last float32
            # digits into percent-level differences afterwards: the rates are the test there
            continue
        stable += 1
        np.testing.assert_allclose(history.train_loss[t], loss, rtol=1e-4, err_msg=str(k))
    assert stable >= len(hand) // 2, stable


def _optax_schedule(kind: str, lr: float):
    """The optax schedules, built here from optax's own API (not from lrbench)."""
    if kind == "cosine":
        return optax.cosine_decay_schedule(lr, decay_steps=40, alpha=0.1)
    if kind == "linear_onecycle":
        return optax.linear_onecycle_schedule(60, lr)
    raise KeyError(kind)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["cosine", "linear_onecycle"])
def test_twin_lr_is_optax_at_each_epochs_first_step(trained, kind):
    runs, history, _, _ = trained
    for i in runs.index[(runs["schedule"] == kind) & (runs["schedule_impl"] == "optax")]:
        sched = _optax_schedule(kind, runs.loc[i, "lr"])
        want = np.array([float(sched(e * SPE)) for e in range(history.lr.shape[1])])
        np.testing.assert_allclose(history.lr[i], want, rtol=2e-6)


@pytest.mark.slow
def test_optax_plateau_in_the_engine_replays_on_its_own_metric(trained):
    """Feed optax.contrib.reduce_on_plateau the run's recorded test losses, epoch by epoch:
    its scale after epoch e times the base lr is the engine's lr in epoch e + 1."""
    runs, history, _, _ = trained
    rows = runs.index[
        (runs["schedule"] == "reduce_on_plateau") & (runs["schedule_impl"] == "optax")
    ]
    reduced = 0
    for i in rows:
        lr = runs.loc[i, "lr"]
        tx = optax.contrib.reduce_on_plateau(
            factor=0.5,
            patience=2,
            rtol=0.0,
            atol=1e-3,
            cooldown=0,
            min_scale=PLATEAU["min_lr"] / lr,
        )
        state = tx.init(np.zeros(1, np.float32))
        want = [lr]
        for loss in history.test_loss[i][:-1]:
            _, state = tx.update(np.zeros(1, np.float32), state, value=loss)
            want.append(lr * float(state.scale))
        np.testing.assert_allclose(history.lr[i], want, rtol=1e-6)
        reduced += want[-1] < lr
    assert reduced >= 1  # the replay exercises at least one reduction


@pytest.mark.parametrize(
    ("schedule", "field"),
    [
        (Schedule("cyclic_triangular"), "schedule_impl"),  # optax has no cyclical schedule
        (Schedule("increase_on_plateau"), "schedule_impl"),
        (Schedule("reduce_on_plateau", {"min_delta": 0.0}), "min_delta"),  # optax needs atol > 0
        (Schedule("reduce_on_plateau", {"warmup_steps": 5}), "warmup_steps"),
    ],
)
def test_a_point_the_twin_cannot_run_names_the_field(schedule, field):
    with pytest.raises(ConfigError) as err:
        expand(_sweep(schedules=(schedule,)))
    assert err.value.field == field


def test_unknown_schedule_impl():
    with pytest.raises(ConfigError) as err:
        expand(_sweep(schedule_impls=("keras",)))
    assert err.value.field == "schedule_impl"


def test_run_ids_of_hand_schedules_unchanged():
    sweep = _sweep(schedules=SCHEDULES[:2])
    both = expand(sweep)
    hand_only = expand(Sweep(**{**sweep.__dict__, "schedule_impls": ("hand",)}))
    assert set(hand_only["run_id"]) < set(both["run_id"])
    assert (both["schedule_impl"] == "optax").sum() == len(hand_only)
