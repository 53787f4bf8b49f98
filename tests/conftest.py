"""Shared fixtures: a compilation counter built on JAX's own monitoring events; the session's
own compilation cache folder."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

import jax
import pytest

_COMPILE_CACHE = []  # the session's own compilation cache folder, removed at the end
# A folder given here is used instead and kept: ``.ci/run`` hands its tiers and ``lrbench
# check`` one folder, so a program compiled by one is read back by the next.
SHARED_CACHE_ENV = "LRBENCH_TEST_COMPILE_CACHE"


def pytest_configure(config):
    """Points lrbench's persistent compilation cache at a folder of this test session's own
    (in the environment, so subprocesses inherit it), never at the user's cache, unless
    ``LRBENCH_TEST_COMPILE_CACHE`` names one; a test that needs another folder (an empty one)
    passes its own ``LRBENCH_COMPILE_CACHE`` or ``--compile-cache``."""
    del config
    folder = os.environ.get(SHARED_CACHE_ENV)
    if not folder:
        folder = tempfile.mkdtemp(prefix="lrbench-test-jax-cache-")
        _COMPILE_CACHE.append(folder)
    os.environ["LRBENCH_COMPILE_CACHE"] = folder


def pytest_unconfigure(config):
    del config
    for folder in _COMPILE_CACHE:
        shutil.rmtree(folder, ignore_errors=True)


# The duration event JAX records for each program handed to the backend: one per jit cache
# miss, whether XLA then compiles it or reads it from the persistent compilation cache.
BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


class CompileCounter:
    """Counts the programs JAX hands to the backend (``BACKEND_COMPILE_EVENT``) while active."""

    def __init__(self):
        self.count = 0
        self._active = False

    def _listener(self, event, duration, **kwargs):
        del duration, kwargs
        if self._active and event == BACKEND_COMPILE_EVENT:
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
    """A :class:`CompileCounter` listening to ``jax.monitoring`` for the test's duration."""
    counter = CompileCounter()
    jax.monitoring.register_event_duration_secs_listener(counter._listener)
    try:
        yield counter
    finally:
        jax.monitoring.unregister_event_duration_listener(counter._listener)


@pytest.fixture
def x64():
    """Runs a test with ``jax_enable_x64`` on, in JAX's scoped form (the previous setting is
    back after the test)."""
    with jax.enable_x64(True):
        yield
