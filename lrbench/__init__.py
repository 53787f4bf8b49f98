"""lrbench: learning-rate grids trained in one jitted, vmapped JAX program.

The names below are imported on first use (PEP 562), so that ``import lrbench`` — and with it
``lrbench --help``, ``lrbench list`` and the command line's argument errors — does not import
JAX; ``from lrbench import Sweep, run`` works as ever.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from lrbench.errors import ConfigError

if TYPE_CHECKING:
    from lrbench.models import MLPConfig
    from lrbench.runner import Result, run
    from lrbench.sweep import Optimizer, Schedule, Sweep, expand

__version__ = "0.1.0"
__all__ = ["ConfigError", "MLPConfig", "Optimizer", "Result", "Schedule", "Sweep", "expand", "run"]

# name -> the module that defines it
_LAZY = {
    "MLPConfig": "lrbench.models",
    "Result": "lrbench.runner",
    "run": "lrbench.runner",
    "Optimizer": "lrbench.sweep",
    "Schedule": "lrbench.sweep",
    "Sweep": "lrbench.sweep",
    "expand": "lrbench.sweep",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # imported once: later reads skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
