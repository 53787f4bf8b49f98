"""lrbench: learning-rate grids trained in one jitted, vmapped JAX program."""

from lrbench.errors import ConfigError
from lrbench.models import MLPConfig
from lrbench.runner import Result, run
from lrbench.sweep import Optimizer, Schedule, Sweep, expand

__version__ = "0.1.0"
__all__ = ["ConfigError", "MLPConfig", "Optimizer", "Result", "Schedule", "Sweep", "expand", "run"]
