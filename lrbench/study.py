"""Several grids as one object: a ``Study`` of named sweeps and its one runs table.

An article often varies one thing at a time around a baseline: a learning-rate grid, then a
momentum grid at one rate, then a decay grid, ... Each grid is a :class:`lrbench.sweep.Sweep`
(or several, when its points are not one product, e.g. optimizers each at its own rate); the
study is their union. :func:`expand` lists every grid's runs with a ``grid`` column, so a run
that belongs to two grids (same configuration, same ``run_id``) has one row per grid: the key
of the runs table is ``(grid, run_id)``. The runner trains each distinct run once, groups
every grid's runs of one static signature into one program, and writes one ``curves`` row per
run and epoch.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import pandas as pd

from lrbench import sweep as sweep_module
from lrbench.errors import ConfigError
from lrbench.sweep import Sweep

# Fields every sweep of a study must share: they change how a run's numbers are recorded
# (test evaluations, epochs to the target) but not its run_id, so a run shared by two grids
# must not be asked for twice with different values.
SHARED = ("validation_freq", "target_acc")


@dataclasses.dataclass(frozen=True)
class Study:
    """Named grids trained as one: ``grids`` maps a grid's name to a sweep or a tuple of them.

    ``Study("blobs", {"lr": lr_sweep, "momentum": momentum_sweep})`` is one runs table (a
    ``grid`` column after ``experiment``; the sweeps' own ``experiment`` names are replaced by
    the study's), one set of programs and one results folder.
    """

    experiment: str
    grids: Mapping[str, Sweep | tuple[Sweep, ...]]
    description: str = ""

    def sweeps(self) -> list[tuple[str, Sweep]]:
        """``(grid, sweep)`` for every sweep, in the grids' order."""
        out = []
        for grid, sweeps in self.grids.items():
            for s in sweeps if isinstance(sweeps, tuple | list) else (sweeps,):
                out.append((grid, s))
        return out

    def parts(self) -> list[tuple[dict[str, Any], Sweep]]:
        """Every sweep's single-valued parts (:meth:`lrbench.sweep.Sweep.parts`), in order."""
        return [part for _, s in self.sweeps() for part in s.parts()]

    def validate(self) -> Study:
        """Raises ``ConfigError`` naming the first bad grid or field; returns ``self``."""
        if not self.grids:
            raise ConfigError("grids", "a study needs at least one grid")
        for grid, s in self.sweeps():
            if not isinstance(s, Sweep):
                raise ConfigError("grids", f"grid {grid!r} holds {s!r}, not a Sweep")
            s.validate()
        for name in SHARED:
            values = {getattr(s, name) for _, s in self.sweeps()}
            if len(values) > 1:
                raise ConfigError(
                    name, f"the study's sweeps set {name} to {sorted(values)}; give them one"
                )
        return self

    @property
    def validation_freq(self) -> int:
        return self.sweeps()[0][1].validation_freq

    @property
    def target_acc(self) -> float:
        return self.sweeps()[0][1].target_acc

    @property
    def seeds(self) -> tuple[int, ...]:
        """Every seed of the study, in first-seen order."""
        return tuple(dict.fromkeys(seed for _, s in self.sweeps() for seed in s.seeds))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (for ``meta.json``): each grid's sweeps."""
        grids: dict[str, list] = {}
        for grid, s in self.sweeps():
            grids.setdefault(grid, []).append(s.to_dict())
        config = {"experiment": self.experiment, "description": self.description, "grids": grids}
        return json.loads(json.dumps(config))


def expand(study: Study) -> pd.DataFrame:
    """One row per grid and run, grids in order (each as :func:`lrbench.sweep.expand` lists
    it); a run in two grids has a row in each, with the same ``run_id``."""
    study.validate()
    tables = []
    for grid, s in study.sweeps():
        table = sweep_module.expand(s).assign(experiment=study.experiment)
        tables.append(table.assign(grid=grid))
    runs = pd.concat(tables, ignore_index=True)
    clash = runs.duplicated(["grid", "run_id"])
    if clash.any():
        grid, run = runs.loc[clash, ["grid", "run_id"]].iloc[0]
        raise ConfigError(
            "grids", f"grid {grid!r} lists run {run} twice (in two of its sweeps); give it once"
        )
    first = ["run_id", "experiment", "grid"]
    rest = [c for c in runs.columns if c not in (*first, "seed")]
    return runs[[*first, *rest, "seed"]]


def runs_table(config: Sweep | Study) -> pd.DataFrame:
    """The runs table of a sweep or of a study."""
    return expand(config) if isinstance(config, Study) else sweep_module.expand(config)
