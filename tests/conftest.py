"""Shared fixtures: a compilation counter built on JAX's own monitoring events."""

from __future__ import annotations

import contextlib

import jax
import pytest
from jax._src import dispatch, monitoring


class CompileCounter:
    """Counts XLA backend compilations (JAX's ``BACKEND_COMPILE_EVENT``) while active."""

    def __init__(self):
        self.count = 0
        self._active = False

    def _listener(self, event, duration, **kwargs):
        del duration, kwargs
        if self._active and event == dispatch.BACKEND_COMPILE_EVENT:
            self.count += 1

    @contextlib.contextmanager
    def counting(self):
        """``with counter.counting(): ...`` counts only what happens inside."""
        self._active = True
        try:
            yield self
        finally:
            self._active = False


@pytest.fixture
def compile_counter():
    counter = CompileCounter()
    monitoring.register_event_duration_secs_listener(counter._listener)
    try:
        yield counter
    finally:
        monitoring.unregister_event_duration_listener(counter._listener)


@pytest.fixture
def x64():
    """Runs a test with ``jax_enable_x64`` on, in JAX's scoped form (the previous setting is
    back after the test)."""
    with jax.enable_x64(True):
        yield
