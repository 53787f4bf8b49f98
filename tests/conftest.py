"""Shared fixtures: a compilation counter built on JAX's own monitoring events; the session's
own compilation cache folder."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

import jax
import pytest
from jax._src import dispatch, monitoring

_COMPILE_CACHE = []  # the session's own compilation cache folder, removed at the end


def pytest_configure(config):
    """Points lrbench's persistent compilation cache at a folder of this test session's own
    (in the environment, so subprocesses inherit it), never at the user's cache; a test that
    needs another folder passes its own ``LRBENCH_COMPILE_CACHE`` or ``--compile-cache``."""
    del config
    folder = tempfile.mkdtemp(prefix="lrbench-test-jax-cache-")
    _COMPILE_CACHE.append(folder)
    os.environ["LRBENCH_COMPILE_CACHE"] = folder


def pytest_unconfigure(config):
    del config
    for folder in _COMPILE_CACHE:
        shutil.rmtree(folder, ignore_errors=True)


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
