"""Experiment modules: each ``experiments/<name>.py`` defines ``get_config() -> Sweep``.

Optional hooks a module may define:
  ``ci_config() -> Sweep``  a smaller variant that CI can afford;
  ``run(sweep, out, quiet) -> lrbench.runner.Result``  when the experiment needs more than
  the generic runner (extra tables or figures).
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from lrbench.errors import ConfigError

DEFAULT = "blobs_lr"


def names() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def load(name: str) -> ModuleType:
    if name not in names():
        raise ConfigError(
            "experiment", f"unknown experiment {name!r}; allowed: {', '.join(names())}"
        )
    return importlib.import_module(f"{__name__}.{name}")
