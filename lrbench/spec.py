"""The runs specification: a sweep's runs table -> per static signature, typed arrays.

The one place where tables become what the engine trains. :func:`static_groups` splits a
runs table by what selects a program (:class:`lrbench.engine.Static`) and :func:`run_data`
turns a group's rows into a :class:`lrbench.engine.RunData` of NumPy arrays (one leading
``[N]`` axis: learning rate, optimizer hyperparameters, schedule kind index and parameters,
seed); the engine itself never sees a DataFrame.
"""

from __future__ import annotations

import contextlib

import jax
import numpy as np
import pandas as pd

from lrbench import rules, schedules
from lrbench.engine import RunData, Static, steps_per_epoch, total_steps, train_size


def precision(sweep):
    """The context a sweep trains in: ``jax.enable_x64(True)`` when any of its parts is
    float64, else nothing. Scoped, never ``jax.config.update``: a global flip would silently
    turn every later float32 computation of the caller's process into a float64 one."""
    if any(part.dtype == "float64" for _, part in sweep.parts()):
        return jax.enable_x64(True)
    return contextlib.nullcontext()


def static_groups(sweep, runs_table: pd.DataFrame):
    """Yields ``(Static, row labels)`` for every static signature present in the runs table.

    ``sweep`` is a :class:`lrbench.sweep.Sweep` or a :class:`lrbench.study.Study`: each of
    its single-valued parts (one per combination of static-axis values) gives one program per
    (optimizer, impl, schedule_impl); runs of optax's reduce_on_plateau twin get one more per
    distinct (factor, min_delta), which optax needs as Python numbers. Parts with the same
    signature (a study's grids of one optimizer) share one group, so it compiles once; a
    run_id listed twice is trained once (its first row).
    """
    from lrbench.sweep import expand  # here: spec sits below sweep in the data flow

    parts = sweep.parts()
    groups: dict[Static, list] = {}
    taken = pd.Series(False, index=runs_table.index)
    for _, part in parts:
        mine = ~taken & ~runs_table["run_id"].duplicated()
        if len(parts) > 1:
            mine &= runs_table["run_id"].isin(set(expand(part)["run_id"]))
        taken |= mine
        for static, index in _part_groups(part, runs_table[mine]):
            groups.setdefault(static, []).extend(index)
    for static, index in groups.items():
        yield static, pd.Index(index)


def _part_groups(sweep, runs_table: pd.DataFrame):
    """:func:`static_groups` of a sweep without static axes."""
    if runs_table.empty:
        return
    keys = runs_table.assign(
        schedule_impl=runs_table.get("schedule_impl", "hand"),
        plateau_twin=_plateau_twin(runs_table),
    )
    by = ["optimizer", "impl", "schedule_impl", "plateau_twin"]
    for (optimizer, impl, schedule_impl, plateau_twin), rows in keys.groupby(
        by, sort=False, dropna=False
    ):
        static = Static(
            task=sweep.task_spec,
            optimizer=optimizer,
            impl=impl,
            epochs=sweep.epochs,
            batch_size=sweep.batch_size,
            dtype=sweep.dtype,
            schedule_impl=schedule_impl,
            plateau_twin=plateau_twin if isinstance(plateau_twin, tuple) else None,
            validation_freq=sweep.validation_freq,
        )
        yield static, rows.index


def _plateau_twin(rows: pd.DataFrame) -> pd.Series:
    """Per row: the static (factor, min_delta) of an optax plateau twin, else None."""
    twin = (rows.get("schedule_impl", "hand") == "optax") & rows["schedule"].map(
        schedules.has_loop_twin
    )
    return pd.Series(
        [
            (float(r["factor"]), float(r["min_delta"])) if t else None
            for t, r in zip(twin, rows.to_dict("records"), strict=True)
        ],
        index=rows.index,
        dtype=object,
    )


def run_data(static: Static, rows: pd.DataFrame) -> RunData:
    """Builds the per-run arrays of one static group from its rows of the runs table."""
    dtype = np.dtype(static.dtype)
    defaults = schedules.default_params()

    def column(name, default=None):
        values = rows[name] if name in rows else pd.Series(default, index=rows.index)
        if default is not None:
            values = values.fillna(default)
        return values.to_numpy(dtype)

    hparam_names = list(rules.spec(static.optimizer).hparams)
    lr_table = None
    if static.schedule_impl == "optax":
        spe, total = steps_per_epoch(train_size(static), static.batch_size), total_steps(static)
        lr_table = np.stack(
            [
                schedules.twin_factors(kind, params, spe, total)
                for kind, params in schedule_points(rows)
            ]
        ).astype(dtype)
    return RunData(
        seed=rows["seed"].to_numpy(np.int32),
        lr=rows["lr"].to_numpy(dtype),
        hparams={k: column(k) for k in hparam_names},
        schedule_kind=np.array([schedules.index(k) for k in rows["schedule"]], np.int32),
        schedule_params={k: column(k, defaults[k]) for k in schedules.all_param_names()},
        unit_is_step=(rows["unit"] == "step").to_numpy(bool),
        lr_table=lr_table,
    )


def schedule_points(rows: pd.DataFrame) -> list[tuple[str, dict]]:
    """Each row's schedule kind and its own parameters (``unit`` and warmup included)."""
    points = []
    for row in rows.to_dict("records"):
        names = [*schedules.kind(row["schedule"]).params, "unit"]
        points.append((row["schedule"], {k: row[k] for k in names}))
    return points
