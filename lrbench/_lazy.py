"""A module imported on first use, so that importing a registry does not import JAX.

``rules``, ``schedules`` and ``data`` declare their registries (names, hyperparameters and
their defaults) at import time, which ``lrbench list``, ``--help`` and argument errors read;
JAX and optax are needed only once something is built or trained. ``jax = lazy("jax")`` at
the top of such a module reads like the import it replaces: ``jax.numpy.ones(3)`` imports JAX
then, and every later attribute is the real module's.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType


class LazyModule:
    """Stands for module ``name``; the first attribute read imports it."""

    __slots__ = ("_name", "_module")

    def __init__(self, name: str):
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str):
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not imported yet"
        return f"<lazy module {self._name!r} ({state})>"


def lazy(name: str) -> LazyModule:
    """``name``, imported when one of its attributes is first read."""
    return LazyModule(name)


def imported(name: str) -> ModuleType | None:
    """Module ``name`` when something has imported it already, else None (never imports)."""
    return sys.modules.get(name)
