"""Which learning rate to use: Smith's range test and its vmapped grid alternative.

*Range test* (Smith 2017, "Cyclical Learning Rates for Training Neural Networks", §3.3; as
fastai's ``lr_find``): one run whose learning rate grows exponentially from ``start_lr`` to
``end_lr`` over ``num_steps`` minibatches, ``lr_i = start · (end/start)^(i/(k−1))``. The loss is
smoothed with a debiased exponential moving average (β = 0.98) and the test stops when the
smoothed loss exceeds ``4×`` its best or turns non-finite.

*Grid test*: ``N`` short runs at fixed, log-spaced learning rates, trained together in one
program by the engine; the same suggestions are read off their final training losses. A grid
whose lowest loss is at its top, or whose loss at the top is not clearly above its lowest
(below ``RISE ×`` the minimum, and nothing diverged), is extended upward a decade at a time (one
more program per decade, at the grid's spacing) until it is, or by at most ``extend`` decades;
a grid whose lowest loss is at its bottom is extended downward the same way.

*Edges*: a minimum at an edge of the learning rates a test tried says that the best rate may
lie beyond them. :attr:`Curve.edge` says so (``"lower"``, ``"upper"`` or ``None``;
:func:`edge_of`) and :func:`edge_note` words it; a suggestion read from such a curve is a bound,
not an estimate.

Both run in the engine (the range test records the minibatch loss of every step, a step
probe); no finder owns a training loop.

Suggestions (fastai's names), from a curve of loss against learning rate:
  ``valley``      the learning rate two thirds of the way down the longest descending
                  stretch of the curve (fastai's default);
  ``steepest``    where the loss falls fastest per decade of learning rate;
  ``minimum/10``  a tenth of the learning rate at the lowest loss.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import numpy as np

from lrbench import engine, rules, schedules
from lrbench.errors import ConfigError
from lrbench.models import MLPConfig
from lrbench.tasks import Classifier, Task

SMOOTHING = 0.98
STOP_FACTOR = 4.0
SUGGESTIONS = ("valley", "steepest", "minimum/10")
RISE = 1.5  # the grid's loss at its top is "clearly above" its minimum from RISE x the minimum
EXTEND_DECADES = 3  # how far the grid test extends its range past each edge, at most
EDGES = ("lower", "upper")


class Curve(NamedTuple):
    """Loss against learning rate, cut where the test stopped, and its suggestions.

    ``edge`` is ``"upper"`` when the lowest loss the suggestions read is at the highest
    learning rate the test tried and the test never stopped (the loss may fall further above
    it), ``"lower"`` when it is at the lowest one they read, else ``None`` (:func:`edge_of`);
    ``span`` is the range of learning rates tried (the grid test's after its extension).
    """

    lrs: np.ndarray
    losses: np.ndarray  # what the suggestions read (smoothed for the range test)
    raw: np.ndarray  # unsmoothed losses over every step (grid point) that ran
    stop: int  # number of points kept
    suggestions: dict[str, float]
    edge: str | None = None
    span: tuple[float, float] = (math.nan, math.nan)


# ---------------------------------------------------------------------------------------------
# Reading a curve


def smooth(losses: np.ndarray, beta: float = SMOOTHING) -> np.ndarray:
    """Debiased exponential moving average: ``a_i = β a_{i−1} + (1−β) L_i``, ``a_i / (1−β^{i+1})``."""
    out, avg = np.empty(len(losses)), 0.0
    for i, loss in enumerate(np.asarray(losses, np.float64)):
        avg = beta * avg + (1 - beta) * loss
        out[i] = avg / (1 - beta ** (i + 1))
    return out


def stop_index(smoothed: np.ndarray, factor: float = STOP_FACTOR) -> int:
    """How many points to keep: up to (excluding) the first that is non-finite or above
    ``factor ×`` the best smoothed loss so far."""
    best = np.inf
    for i, value in enumerate(smoothed):
        if not np.isfinite(value) or (i > 0 and value > factor * best):
            return i
        best = min(best, value)
    return len(smoothed)


def valley(lrs: np.ndarray, losses: np.ndarray) -> float:
    """fastai's ``valley``: the longest strictly descending subsequence of the curve, and the
    point two thirds of the way along it."""
    n = len(losses)
    lds = [1] * n
    max_start = max_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    return float(lrs[max_start + int(sections) + int(sections / 2)])


def steepest(lrs: np.ndarray, losses: np.ndarray) -> float:
    """The learning rate where ``dL / d log(lr)`` is most negative."""
    slopes = np.diff(losses) / np.diff(np.log(lrs))
    return float(lrs[int(np.argmin(slopes))])


def minimum_over_10(lrs: np.ndarray, losses: np.ndarray) -> float:
    return float(lrs[int(np.argmin(losses))] / 10)


def edge_of(losses: np.ndarray, stopped: bool) -> str | None:
    """Where the lowest of ``losses`` (a curve in order of increasing learning rate) lies:
    ``"lower"`` at its first point, ``"upper"`` at its last when the test did not stop after
    it (``stopped`` False: nothing above that point diverged or passed the stop rule), else
    ``None``. The first of equal lowest losses counts (``np.argmin``)."""
    losses = np.asarray(losses, np.float64)
    if len(losses) == 0:
        return None
    i = int(np.argmin(losses))
    if i == 0:
        return "lower"
    if i == len(losses) - 1 and not stopped:
        return "upper"
    return None


def edge_note(
    curve: Curve, finder: str = "grid test", lower: str = "start_lr=", upper: str = "end_lr="
) -> str | None:
    """One line saying that ``curve``'s minimum is at an edge of the learning rates tried and
    how to widen them (``lower``/``upper`` name the setting, e.g. ``"--set end_lr="``), or
    ``None`` when it is not."""
    if curve.edge not in EDGES:
        return None
    lo, hi = curve.span
    what = "grid" if "grid" in finder else "ramp"
    widen = f"{lower}{lo / 10:.2g}" if curve.edge == "lower" else f"{upper}{hi * 10:.2g}"
    return (
        f"{finder}: minimum at the {curve.edge} edge of the {what} {lo:.2g}…{hi:.2g}, so its "
        f"suggestions are bounds, not estimates; extend it with {widen}"
    )


def suggest(lrs: np.ndarray, losses: np.ndarray) -> dict[str, float]:
    lrs, losses = np.asarray(lrs, np.float64), np.asarray(losses, np.float64)
    if len(lrs) < 2:
        return dict.fromkeys(SUGGESTIONS, float(lrs[0]) if len(lrs) else math.nan)
    return {
        "valley": valley(lrs, losses),
        "steepest": steepest(lrs, losses),
        "minimum/10": minimum_over_10(lrs, losses),
    }


# ---------------------------------------------------------------------------------------------
# The range test


def exponential_ramp(start_lr: float, end_lr: float, num_steps: int) -> np.ndarray:
    return start_lr * (end_lr / start_lr) ** (np.arange(num_steps) / max(num_steps - 1, 1))


def curve_from_steps(lrs: np.ndarray, raw: np.ndarray) -> Curve:
    """Smooths, cuts at the stop, and suggests from the kept points less the first tenth and
    the last five (fastai's ``lr_find`` skips them: the start is noise, the end the blow-up).
    The curve's ``edge`` is that of the points the suggestions read; ``"upper"`` only when the
    ramp ran to its end without stopping, ``"lower"`` too when it stopped before any."""
    lrs = np.asarray(lrs, np.float64)
    smoothed = smooth(raw)
    stop = stop_index(smoothed)
    lrs_kept, kept = lrs[:stop], smoothed[:stop]
    lo, hi = len(raw) // 10, max(stop - 5, len(raw) // 10 + 2)
    read = kept[lo:hi]
    return Curve(
        lrs_kept,
        kept,
        raw,
        stop,
        suggest(lrs_kept[lo:hi], read),
        edge_of(read, stopped=stop < len(raw)) if len(read) else "lower",  # blew up at once
        (float(lrs[0]), float(lrs[-1])),
    )


@dataclasses.dataclass(frozen=True)
class Problem:
    """What a finder trains: data set, model, optimizer and its hyperparameters (or a
    :class:`lrbench.tasks.Task` of one's own, which brings its data set and model)."""

    dataset: str = "blobs"
    model: MLPConfig = MLPConfig()
    optimizer: str = "sgd"
    impl: str = "hand"
    hparams: dict = dataclasses.field(default_factory=dict)
    batch_size: int = 32
    seed: int = 0
    task: Task | None = None

    @property
    def task_spec(self) -> Task:
        return self.task or Classifier(dataset=self.dataset, model=self.model)


def range_test(
    problem: Problem, start_lr: float = 1e-7, end_lr: float = 10.0, num_steps: int = 100
) -> Curve:
    """Smith's range test through the engine: one run of ``num_steps`` minibatches (the
    seed's orders, epoch after epoch, the last minibatch of an epoch partial) whose learning
    rate follows :func:`exponential_ramp`, recording the minibatch loss of every step.

    The ramp reaches the engine as a per-step table of multipliers of ``start_lr``
    (``RunData.lr_table``), so any ramp runs in the program compiled for the problem.
    """
    if not 0 < start_lr < end_lr:
        raise ConfigError("start_lr", f"need 0 < start_lr < end_lr, got {start_lr=}, {end_lr=}")
    if num_steps < 2:
        raise ConfigError("num_steps", f"{num_steps=} must be >= 2")
    task = problem.task_spec
    hparams = rules.resolve(problem.optimizer, problem.hparams)
    rules.check_impl(problem.optimizer, problem.impl, hparams)
    n = len(task.data().x_train)
    per_epoch = math.ceil(n / problem.batch_size)
    static = engine.Static(
        task=task,
        optimizer=problem.optimizer,
        impl=problem.impl,
        epochs=math.ceil(num_steps / per_epoch),
        batch_size=problem.batch_size,
        schedule_impl="optax",  # the lr of every step from ``lr_table``
        validation_freq=0,
        probes=("loss",),
    )
    lrs = exponential_ramp(start_lr, end_lr, num_steps)
    table = np.ones(engine.total_steps(static))
    table[:num_steps] = lrs / start_lr
    table[num_steps:] = table[num_steps - 1]  # steps past the ramp are trained and dropped
    one = lambda v, dtype=np.float32: np.asarray([v], dtype)  # noqa: E731  a run axis of 1
    runs = engine.RunData(
        seed=one(problem.seed, np.int32),
        lr=one(start_lr),
        hparams={k: one(v) for k, v in hparams.items()},
        schedule_kind=one(schedules.index("constant"), np.int32),
        schedule_params={k: one(v) for k, v in schedules.default_params().items()},
        unit_is_step=one(True, bool),
        lr_table=table[None].astype(np.float32),
    )
    _, recorded, _ = engine.probe_group(static, runs)
    raw = np.asarray(recorded.steps["loss"][0, :num_steps], np.float64)
    return curve_from_steps(lrs, raw)


def _cut(lrs: np.ndarray, losses: np.ndarray) -> tuple[int, str | None, bool]:
    """``(stop, edge, risen)`` of a grid's losses: where the curve stops, where its minimum
    lies, and whether the loss above the minimum is clearly up (stopped, or the top at least
    ``RISE ×`` the minimum)."""
    stop = stop_index(losses)
    kept = losses[:stop]
    stopped = stop < len(losses)
    risen = stopped or (len(kept) > 0 and kept[-1] >= RISE * np.min(kept))
    # nothing finite from the first rate on: whatever is best lies below the grid
    return stop, "lower" if stop == 0 else edge_of(kept, stopped), risen


def grid_curve(evaluate, lrs, extend: int = EXTEND_DECADES) -> Curve:
    """The grid test's curve from ``evaluate(lrs) -> losses`` (one loss per learning rate,
    ``inf`` for a diverged run), first at ``lrs`` (increasing, log-spaced), then, while the
    minimum is at the grid's top or the top is not clearly above it (no stop, and below
    ``RISE ×`` the minimum), at one more decade above the grid (at the grid's spacing), and
    while the minimum is at the grid's bottom, at one more decade below it; at most
    ``extend`` decades each way. Suggestions are read off the kept points (the curve cut by
    :func:`stop_index`); ``edge`` says where the minimum ended (:func:`edge_of`; ``"lower"``
    also when the loss at the lowest rate is already non-finite)."""
    lrs = np.asarray(lrs, np.float64)
    losses = np.asarray(evaluate(lrs), np.float64)
    if len(lrs) >= 2:
        step = math.log10(lrs[-1] / lrs[0]) / (len(lrs) - 1)  # decades between points
        per_decade = max(1, math.ceil(1 / step - 1e-9))
        factors = 10.0 ** (step * np.arange(1, per_decade + 1))
        up = down = 0
        while True:
            stop, edge, risen = _cut(lrs, losses)
            if (edge == "upper" or not risen) and stop == len(lrs) and up < extend:
                up += 1
                new = lrs[-1] * factors
                lrs, losses = np.r_[lrs, new], np.r_[losses, evaluate(new)]
            elif edge == "lower" and down < extend:
                down += 1
                new = lrs[0] / factors[::-1]
                lrs, losses = np.r_[new, lrs], np.r_[evaluate(new), losses]
            else:
                break
    stop, edge, _ = _cut(lrs, losses)
    kept_lrs, kept = lrs[:stop], losses[:stop]
    span = (float(lrs[0]), float(lrs[-1]))
    return Curve(kept_lrs, kept, losses, stop, suggest(kept_lrs, kept), edge, span)


def grid_test(
    problem: Problem,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_lrs: int = 25,
    epochs: int = 3,
    seeds: tuple[int, ...] = (0,),
    extend: int = EXTEND_DECADES,
) -> tuple[Curve, object]:
    """``num_lrs`` short runs at log-spaced learning rates in one program (the engine), and
    as many more programs as the extension takes (:func:`grid_curve`).

    Reads the suggestions off the mean final training loss per learning rate; a diverged run
    (or one ending above 4× the best) ends the curve, as in the range test.
    Returns the curve and the runs table (every learning rate trained, in order).
    """
    import pandas as pd

    from lrbench import runner
    from lrbench.sweep import Optimizer, Sweep

    if not 0 < start_lr < end_lr:
        raise ConfigError("start_lr", f"need 0 < start_lr < end_lr, got {start_lr=}, {end_lr=}")
    if num_lrs < 2:
        raise ConfigError("num_lrs", f"{num_lrs=} must be >= 2")
    if extend < 0:
        raise ConfigError("extend", f"{extend=} must be >= 0 (decades past each edge)")
    tables = []

    def evaluate(lrs: np.ndarray) -> np.ndarray:
        sweep = Sweep(
            experiment="lr_find",
            **(
                {"task": problem.task}
                if problem.task
                else {"dataset": problem.dataset, "model": problem.model}
            ),
            epochs=epochs,
            batch_size=problem.batch_size,
            lrs=tuple(float(v) for v in lrs),
            optimizers=(Optimizer(problem.optimizer, dict(problem.hparams)),),
            seeds=seeds,
            impls=(problem.impl,),
        )
        runs = runner.run(sweep, quiet=True).runs
        tables.append(runs)
        loss = np.where(runs["status"] == "diverged", np.inf, runs["final_train_loss"])
        per_lr = runs.assign(loss=loss).groupby("lr")["loss"].mean()  # by increasing lr
        assert len(per_lr) == len(lrs)
        return per_lr.to_numpy(np.float64)

    curve = grid_curve(evaluate, np.geomspace(start_lr, end_lr, num_lrs), extend)
    runs = pd.concat(tables, ignore_index=True).sort_values("lr", kind="stable")
    return curve, runs.reset_index(drop=True)


def figure(range_curve: Curve, grid_curve: Curve, path, title: str = "") -> None:
    """Both curves, loss against learning rate (log x), with the suggestions marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lrbench import report

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    markers = {"valley": "o", "steepest": "^", "minimum/10": "s"}
    for ax, curve, name in ((axes[0], range_curve, "range test (one run, lr ramped)"),
                            (axes[1], grid_curve, "grid test (one run per lr, one program)")):  # fmt: skip
        ax.plot(curve.lrs, curve.losses, color="C0")
        for key, lr in curve.suggestions.items():
            loss = np.interp(np.log(lr), np.log(curve.lrs), curve.losses)
            ax.plot([lr], [loss], markers[key], color="C3", label=f"{key}: {lr:.2g}")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss" + (" (smoothed)" if curve is range_curve else ", final"))
        edge = f"; minimum at its {curve.edge} edge" if curve.edge else ""
        ax.set_title(name + edge, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    report.save_figure(fig, path, title)
