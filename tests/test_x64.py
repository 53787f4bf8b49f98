"""A float64 sweep turns ``jax_enable_x64`` on for its own work only: the caller's setting is
back once ``runner.train`` returns or raises, and the sweep still computes in float64."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from lrbench import runner
from lrbench.models import MLPConfig
from lrbench.sweep import Sweep

SWEEP64 = Sweep(experiment="test", dataset="blobs", model=MLPConfig(hidden=(4,)), epochs=2,
                batch_size=100, lrs=(0.1, 0.01), seeds=(0,), dtype="float64")  # fmt: skip


@pytest.fixture(scope="module")
def trained():
    before = jax.config.jax_enable_x64
    _, history, _ = runner.train(SWEEP64)
    return before, jax.config.jax_enable_x64, history


def test_the_flag_is_unchanged_after_a_float64_sweep(trained):
    before, after, _ = trained
    assert before is False  # the suite's default: a flip would show
    assert after is before


def test_a_float64_sweep_computes_in_float64(trained):
    *_, history = trained
    loss = history.train_loss
    assert loss.dtype == np.float64 and np.isfinite(loss).all()
    # float32 arithmetic stored as float64 round-trips through float32 exactly; float64
    # arithmetic keeps bits that float32 cannot hold
    assert (loss != loss.astype(np.float32).astype(np.float64)).any()


class _FailingStore:
    """A chunk store whose disk fails as the sweep starts; records the flag it saw."""

    def __init__(self):
        self.seen = []

    def load(self):
        self.seen.append(jax.config.jax_enable_x64)
        raise OSError("the disk went away")


def test_the_flag_is_unchanged_after_a_float64_sweep_that_raises():
    store = _FailingStore()
    with pytest.raises(OSError, match="went away"):
        runner.train(SWEEP64, store=store)
    assert store.seen == [True]  # it raised inside the float64 scope ...
    assert jax.config.jax_enable_x64 is False  # ... which ended with it


def test_a_caller_that_chose_x64_keeps_it():
    with jax.enable_x64(True):
        runner.train(SWEEP64)
        assert jax.config.jax_enable_x64 is True
    assert jax.config.jax_enable_x64 is False
