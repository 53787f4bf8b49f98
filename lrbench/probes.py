"""A sweep trained through the engine with step-resolution probes and final parameters.

``train(sweep, probes=("loss",), final_params=True)`` is :func:`lrbench.runner.train` for an
experiment that needs more than per-epoch histories: every static group of the sweep's runs
table (:func:`lrbench.spec.static_groups`) gets ``Static.probes`` / ``final_params`` and goes
through :func:`lrbench.engine.probe_group`, one program per group. No resume: a probed
sweep is small (its records grow with the number of steps).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np
import pandas as pd

from lrbench import compile_cache, engine, spec
from lrbench.engine import History, Probes
from lrbench.errors import ConfigError
from lrbench.sweep import Sweep, expand


class Probed(NamedTuple):
    """A probed sweep: its runs table and, in the table's row order, histories and probes."""

    runs: pd.DataFrame  # one row per run (:func:`lrbench.sweep.expand`)
    history: History  # [N, epochs] arrays
    probes: Probes  # steps: name -> [N, total steps, ...]; params: leaves [N, ...] or None
    timing: dict[str, Any]


def train(
    sweep: Sweep,
    probes: tuple[str, ...] = (),
    final_params: bool = False,
    max_chunk: int = 4096,
    *,
    probe_every: int = 1,
    probe_iters: int = 20,
    probe_batch: int = 0,
) -> Probed:
    """Trains every run of ``sweep``, recording ``probes`` after every step
    (``engine.STEP_PROBES``) and, with ``final_params``, the parameters after the last one.
    Precision and the compilation cache as in :func:`lrbench.runner.train`.

    The curvature probes (``engine.CURVATURE_PROBES``: ``sharpness``,
    ``preconditioned_sharpness``, ``grad_norm``, ``update_ratio``) are computed after steps
    ``probe_every``, ``2·probe_every``, ... (1-based) and are NaN after the others, with
    ``probe_iters`` Hessian-vector products per sharpness and on the loss of the first
    ``probe_batch`` training examples (0: all of them); ``update_ratio`` is a dict layer ->
    ``[N, total steps]``. :func:`probes_table` turns them into a tidy table."""
    runs = expand(sweep)
    parts: list[tuple[np.ndarray, History, Probes]] = []
    timing = {"compile_seconds": 0.0, "train_seconds": 0.0, "programs": 0}
    with spec.precision(sweep), compile_cache.counting() as cache:
        for static, index in spec.static_groups(sweep, runs):
            static = static._replace(
                probes=tuple(probes),
                final_params=final_params,
                probe_every=probe_every,
                probe_iters=probe_iters,
                probe_batch=probe_batch,
            )
            rows = runs.loc[index]
            data = spec.run_data(static, rows)
            history, recorded, t = engine.probe_group(static, data, max_chunk)
            parts.append((runs.index.get_indexer(index), history, recorded))
            timing["compile_seconds"] += t.compile_seconds
            timing["train_seconds"] += t.train_seconds
            timing["programs"] += 1
    timing.update(cache)
    return Probed(runs, *_in_table_order(parts, len(runs)), timing)


def train_each(
    sweeps, probes: tuple[str, ...] = (), final_params: bool = False, **probe_options
) -> Probed:
    """:func:`train` of each of ``sweeps`` (e.g. one per data seed, or per task variant), as one
    probed sweep: the runs tables stacked (index 0 … N−1), every output concatenated along its
    runs axis in that order, the timings and cache counts summed. ``probe_options``
    (``probe_every``, ``probe_iters``, ``probe_batch``) go to each :func:`train`."""
    parts = [train(s, probes, final_params, **probe_options) for s in sweeps]
    runs = pd.concat([p.runs for p in parts], ignore_index=True)
    history, recorded = jax.tree_util.tree_map(
        lambda *a: np.concatenate(a), *[(p.history, p.probes) for p in parts]
    )
    timing = {k: sum(p.timing[k] for p in parts) for k in parts[0].timing}
    return Probed(runs, history, recorded, timing)


def curves_table(run_ids, columns: dict[str, Any], epochs=None) -> pd.DataFrame:
    """The tidy ``curves`` table (``run_id``, ``epoch``, then ``columns`` in order) of
    per-epoch arrays ``[runs, epochs]`` read off a probed sweep: one row per run and epoch, run
    ``i``'s first ``epochs[i]`` epochs (all of them when None); a column given as one value per
    run (``[runs]``) is repeated over its epochs."""
    arrays = {k: np.asarray(v) for k, v in columns.items()}
    n, e = len(run_ids), max(a.shape[1] for a in arrays.values() if a.ndim == 2)
    kept = np.arange(e)[None] < (np.full(n, e) if epochs is None else np.asarray(epochs))[:, None]
    out = {
        "run_id": np.repeat(np.asarray(run_ids, object), e),
        "epoch": np.tile(np.arange(1, e + 1), n),
    }
    out.update({k: np.broadcast_to(a.reshape(n, -1), (n, e)).ravel() for k, a in arrays.items()})
    return pd.DataFrame({k: v[kept.ravel()] for k, v in out.items()})


def probes_table(run_ids, steps: dict[str, Any], probe_every: int = 1) -> pd.DataFrame:
    """The tidy ``probes`` table of step records (``Probed.probes.steps``): ``run_id``,
    ``step`` (1-based: the number of updates made), then one column per probe in ``steps``'
    order (alphabetical, as JAX keeps a dict), at the probed steps only (``probe_every``, ``2·probe_every``, ...; the curvature
    probes are NaN elsewhere). ``update_ratio`` (a dict layer -> ``[N, steps]``) becomes
    columns ``update_ratio/<layer>``; ``params`` (not a number per step) is left out."""
    columns: dict[str, np.ndarray] = {}
    for name, value in steps.items():
        if name == "params":
            continue
        if isinstance(value, dict):
            columns.update({f"{name}/{layer}": np.asarray(v) for layer, v in value.items()})
        else:
            columns[name] = np.asarray(value)
    if not columns:
        return pd.DataFrame({"run_id": [], "step": []})
    n, total = next(iter(columns.values())).shape[:2]
    if not isinstance(probe_every, int | np.integer) or probe_every < 1:
        raise ConfigError("probe_every", f"probe_every={probe_every!r} must be a whole number >= 1")
    kept = np.arange(probe_every - 1, total, probe_every)
    out = {
        "run_id": np.repeat(np.asarray(run_ids, object), len(kept)),
        "step": np.tile(kept + 1, n),
    }
    out.update({k: a[:, kept].ravel() for k, a in columns.items()})
    return pd.DataFrame(out)


def max_rel_diff(a, b) -> np.ndarray:
    """Per run of two parameter trees with leaves ``[runs, ...]`` (e.g. the final parameters of
    two probed sweeps): max over leaves of ‖a − b‖∞ / ‖b‖∞, in float64."""
    per_leaf = [
        np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)).reshape(len(x), -1), 1)
        / np.max(np.abs(np.asarray(y, np.float64)).reshape(len(y), -1), 1)
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)
    ]
    return np.max(per_leaf, 0)


def _in_table_order(parts, n: int) -> tuple[History, Probes]:
    """Every group's outputs (leaves ``[rows of the group, ...]``) placed at its rows."""
    _, history, recorded = parts[0]
    whole = jax.tree_util.tree_map(
        lambda a: np.empty((n, *a.shape[1:]), a.dtype), (history, recorded)
    )
    for positions, *part in parts:
        leaves = jax.tree_util.tree_leaves(tuple(part))
        for w, p in zip(jax.tree_util.tree_leaves(whole), leaves, strict=True):
            w[positions] = p
    return whole
