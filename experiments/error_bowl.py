"""Seed 000: Keim, "Understanding Learning Rate in Neural Networks" (All About Circuits, 2019).

The article trains a neuron with the delta rule ``w_new = w + α·δ·input`` (δ = expected −
calculated output) and pictures each update as a jump on the error curve: too large an α
"bounces around somewhat chaotically", a good α gives "moderately fast, consistent
convergence", too small an α learns "extremely slowly", and annealing α (decreasing it during
training) takes long strides first and "tiptoes" toward the minimum at the end.

Here one linear neuron ``y = w·x`` (one weight: the article's two-dimensional error curve)
learns ``t = 2·x + ε``, ``x ~ U(−√3, √3)``, ``ε ~ N(0, 0.5²)``, from 50 samples shown one at a
time in a fresh order each epoch, 40 epochs (2000 updates), from ``w₀ = −1``; each seed draws
its own line (``data.noisy_line``) and order, shared by every α (common random numbers). The
error ``E(w) = ½·mean((t − w·x)²)`` is least at ``w* = Σxt / Σx²`` (closed form). Constant α
runs beside α annealed from the same α₀ as ``α_k = α₀ / (1 + k/20)`` (``inverse_time`` per
update). The engine trains them (the ``neuron`` task: SGD on ``½·(t − w·x)²`` is the delta
rule), one program per seed, and records w, E(w) and α after every update (step probes).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from lrbench import claims, diagnose, probes, report, results, runner
from lrbench import data as lrbench_data
from lrbench.claims import Claim, Measured, Select
from lrbench.errors import ConfigError
from lrbench.sweep import Optimizer, Schedule, Sweep, schedule_label
from lrbench.tasks import Neuron

NAME = "error_bowl"
TITLE = "the learning rate on the error curve of one neuron (seed 000)"
ARTICLE = 'Robert Keim, "Understanding Learning Rate in Neural Networks", All About Circuits (2019)'
N_TRAIN, EPOCHS, W0 = 50, 40, -1.0
SETTLE = 0.02  # converged: excess error within 2% of its initial value, for good
TEST_TOLERANCE = 0.1
DIVERGED_ABOVE = 1e6  # |w| beyond this (or non-finite) counts as diverged
ALPHAS = (0.003, 0.01, 0.03, 0.1, 0.3, 0.6, 1.0, 1.5, 2.0, 3.0)
SMALL, GOOD, TOO_LARGE = 0.01, 0.1, 1.0  # the three α of the error-curve figure
CONSTANT = Schedule("constant")
ANNEAL = Schedule("inverse_time", {"decay_rate": 1.0, "decay_steps": 20.0, "unit": "step"})
SETTING = ("task", "epochs", "batch_size", "lrs", "optimizers", "schedules", "seeds", "dtype")
LABELS = {schedule_label(s.kind, s.points()[0]): label
          for label, s in (("constant", CONSTANT), ("annealed", ANNEAL))}  # fmt: skip


def get_config() -> Sweep:
    """The article's neuron: 10 constant α and the same values annealed, 5 seeds, 40 epochs."""
    return Sweep(
        experiment=NAME,
        description="AAC error curve: one linear neuron, delta rule, constant vs annealed α "
        "(0.003 ... 3, 5 seeds)",
        task=Neuron(w0=W0, tolerance=TEST_TOLERANCE),  # each seed draws its own line
        epochs=EPOCHS,
        batch_size=1,
        lrs=ALPHAS,
        optimizers=(Optimizer("delta"),),
        schedules=(CONSTANT, ANNEAL),
        seeds=(0, 1, 2, 3, 4),
        dtype="float64",
    )


# ---------------------------------------------------------------------------------------------
# Data and closed form


def make_data(sweep: Sweep, seed: int) -> dict:
    """One seed's neuron (the sweep's, on the line drawn with ``seed``: ``data.noisy_line``),
    training and test sets and sample order (``[epochs, N_TRAIN]``: the engine's minibatch
    orders of that seed, one sample per update)."""
    if not isinstance(sweep.task_spec, Neuron):
        raise ConfigError("task", f"{NAME} trains the neuron task, not {sweep.task_spec.name!r}")
    task = dataclasses.replace(sweep.task_spec, data_seed=seed)
    ds, order = task.data(), lrbench_data.minibatch_orders(np.array([seed]), sweep.epochs, N_TRAIN)
    return {"task": task, "x": ds.x_train[:, 0], "t": ds.y_train, "x_test": ds.x_test[:, 0],
            "t_test": ds.y_test, "order": order[0]}  # fmt: skip


def least_squares(x: np.ndarray, t: np.ndarray):
    """``w* = Σxt / Σx²`` and ``E_min = E(w*)`` for ``E(w) = ½·mean((t − w·x)²)`` (per row of
    ``x``, ``t`` ``[..., samples]``)."""
    w = (x * t).sum(-1) / (x * x).sum(-1)
    return w, error(w, x, t)


def critical_alpha(x: np.ndarray):
    """``2/λ``, ``λ = E''(w) = mean(x²)``: the largest α at which gradient descent on ``E`` does
    not move away from w* (each step multiplies ``w − w*`` by ``1 − α·λ``)."""
    return 2 / (x * x).mean(-1)


def error(w, x, t):
    """``E(w) = ½·mean((t − w·x)²)``, for a scalar or an array of weights."""
    return 0.5 * ((t - np.expand_dims(w, -1) * x) ** 2).mean(-1)


# ---------------------------------------------------------------------------------------------
# Training: the engine, with the weight, the error E(w) and α recorded after every update


class Trained(NamedTuple):
    """Every run's configuration and, in its row order, its traces after every update."""

    configs: pd.DataFrame  # alpha_schedule, seed, lr; sorted by schedule, α, seed
    data: dict[int, dict[str, np.ndarray]]  # make_data, per seed
    w: np.ndarray  # [runs, updates]: the weight
    e: np.ndarray  # [runs, updates]: the training-set error E(w)
    lr: np.ndarray  # [runs, updates]: α
    timing: dict[str, float]


def train(sweep: Sweep) -> Trained:
    """Every (schedule, α, seed) run of ``sweep`` through the engine, one program per seed (its
    own line). Constant and annealed α at the figure's three α are added when the sweep lacks
    them: the claims and the figure read them."""
    if sweep.batch_size != 1:
        raise ConfigError("batch_size", f"batch_size={sweep.batch_size}: {NAME} shows the "
                          "samples one at a time, as the article does; allowed: 1")  # fmt: skip
    if sweep.validation_freq != 1:  # its test numbers come from the final weight, every time
        raise ConfigError("validation_freq", f"validation_freq={sweep.validation_freq}: {NAME} "
                          "measures its test set itself; allowed: 1")  # fmt: skip
    points = {schedule_label(s.kind, p): Schedule(s.kind, p)
              for s in (*sweep.schedules, CONSTANT, ANNEAL) for p in s.points()}  # fmt: skip
    alphas = tuple(sorted(set(sweep.lrs) | {SMALL, GOOD, TOO_LARGE}))
    data = {s: make_data(sweep, s) for s in sweep.seeds}
    got = probes.train_each([dataclasses.replace(sweep, task=data[s]["task"], lrs=alphas,
                             schedules=tuple(points.values()), seeds=(s,)) for s in data],
                            probes=("lr", "train_loss", "params"))  # fmt: skip
    labels = got.runs["schedule_label"].map(lambda s: LABELS.get(s, s))
    configs = got.runs[["seed", "lr"]].assign(alpha_schedule=labels)
    rank = labels.map({LABELS.get(s, s): i for i, s in enumerate(points)})
    order = np.lexsort((configs["seed"], configs["lr"], rank))  # the order of the tables
    configs, steps = configs.iloc[order].reset_index(drop=True), got.probes.steps
    w, e, lr = (a[order] for a in (steps["params"]["w"][..., 0], steps["train_loss"], steps["lr"]))
    return Trained(configs, data, w, e, lr, got.timing)


def settle_step(
    excess: np.ndarray, initial: float, band: float = SETTLE, hold: int = N_TRAIN
) -> float:
    """First update (1-based) after which ``excess[k]`` (the excess after update k) stays ≤
    ``band``·``initial`` to the end; NaN unless it stays there for at least the last ``hold``
    updates (a run that happens to end inside the band has not settled)."""
    last_out = np.flatnonzero(~(excess <= band * initial))
    settled = float(last_out[-1] + 2) if last_out.size else 1.0
    return settled if settled <= len(excess) - hold + 1 else np.nan


def build_runs(trained: Trained) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tidy ``runs`` (one row per run) and ``curves`` (one row per run and epoch)."""
    c, w, e = trained.configs, trained.w, trained.e
    d = pd.DataFrame([trained.data[s] for s in c["seed"]])  # per run: its seed's data
    x, t, x_test, t_test = (np.stack(d[k]) for k in ("x", "t", "x_test", "t_test"))
    (w_ls, e_min), e0 = least_squares(x, t), error(np.full(len(c), W0), x, t)
    per_epoch, status = diagnose.step_runs(e, diagnose.out_of_bounds(w, DIVERGED_ABOVE), N_TRAIN,
                                           e0)  # fmt: skip
    with np.errstate(all="ignore"):
        excess = e - e_min[:, None]
        side = np.sign(np.insert(w[:, :N_TRAIN], 0, W0, axis=1) - w_ls[:, None])
        test_loss = error(w[:, -1], x_test, t_test)
        runs = pd.DataFrame({
            "run_id": [f"{s}-a{lr:g}-s{seed}" for s, lr, seed in
                       c[["alpha_schedule", "lr", "seed"]].itertuples(index=False)],
            "experiment": NAME, "optimizer": "delta", "alpha_schedule": c["alpha_schedule"],
            "seed": c["seed"].astype(int), "lr": c["lr"].astype(float), "w_final": w[:, -1],
            "w_least_squares": w_ls, "critical_alpha": critical_alpha(x),
            "initial_train_loss": e0, "min_train_loss": e_min, "final_train_loss": e[:, -1],
            "final_excess": np.where(status["escaped_at"].notna(), np.inf,
                                     excess[:, -N_TRAIN:].mean(1)),
            "final_test_loss": np.where(np.isfinite(test_loss), test_loss, np.nan),
            "final_test_acc": (np.abs((w[:, -1:] - w_ls[:, None]) * x_test) <= TEST_TOLERANCE)
            .mean(1),
            "steps_to_converge": [settle_step(np.nan_to_num(r, nan=np.inf), a - b)
                                  for r, a, b in zip(excess, e0, e_min, strict=True)],
            "bounce_share": (side[:, 1:] != side[:, :-1]).mean(1),
            "status": status["status"], "diverged_at": status["diverged_at"],
        })  # fmt: skip
    curves = probes.curves_table(runs["run_id"], {
        "w": w[:, N_TRAIN - 1 :: N_TRAIN], "train_loss": per_epoch,
        "excess": per_epoch - e_min[:, None]})  # fmt: skip
    return runs, curves


# ---------------------------------------------------------------------------------------------
# Tables


def sweep_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per schedule × α: status, final excess error and steps to converge over seeds
    (a std is NaN when a seed diverged)."""
    table = runs.groupby(["alpha_schedule", "lr"], sort=False).agg(
        status=("status", results.majority),
        final_excess_mean=("final_excess", "mean"),
        final_excess_std=("final_excess", "std"),
        steps_to_converge_mean=("steps_to_converge", "mean"),
        steps_to_converge_std=("steps_to_converge", "std"),
        converged_seeds=("steps_to_converge", "count"),
        bounce_share_mean=("bounce_share", "mean"),
        seeds=("seed", "size"),
        test_acc_mean=("final_test_acc", "mean"),
    )
    return table.reset_index("lr").rename(columns={"lr": "alpha"})


def annealing_table(table: pd.DataFrame) -> pd.DataFrame:
    """Constant α beside annealed from the same α₀: final excess error and steps to converge."""
    columns = ["final_excess_mean", "steps_to_converge_mean", "converged_seeds"]
    wide = table.reset_index().pivot(index="alpha", columns="alpha_schedule", values=columns)
    wide = wide.reindex(columns=pd.MultiIndex.from_product([columns, ["constant", "annealed"]]))
    wide.columns = [f"{schedule}_{column.removesuffix('_mean')}" for column, schedule in wide]
    wide = wide.astype({f"{s}_converged_seeds": int for s in ("constant", "annealed")})
    return wide[sorted(wide, key=lambda c: not c.startswith("constant"))].rename_axis("alpha0")


def closed_form_table(runs: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Per seed: the least-squares weight, E_min and 2/λ (closed form) and the trained weights
    at ``alpha``."""
    w = runs[np.isclose(runs["lr"], alpha)].pivot(index="seed", columns="alpha_schedule",
                                                   values="w_final")  # fmt: skip
    out = runs.groupby("seed")[["w_least_squares", "min_train_loss", "critical_alpha"]].first()
    out = out.rename(columns={"min_train_loss": "E_min"})
    out[["w_constant", "w_annealed"]] = w[["constant", "annealed"]]
    gaps = (w[["constant", "annealed"]].sub(out["w_least_squares"], axis=0)).abs()
    return out.join(gaps.add_prefix("abs_gap_")).rename_axis(columns=None)


# ---------------------------------------------------------------------------------------------
# The article's claims: one measured number each (tables: runs, alpha_sweep, closed_form)


def cell(column: str, schedule: str, alpha: float) -> Select:
    """``column`` of the ``alpha_sweep`` row of ``schedule`` at ``alpha``."""
    return Select("alpha_sweep", column, {"alpha_schedule": schedule, "alpha": alpha})


def settled(schedule: str, alpha: float):
    """The share of seeds whose excess error settles."""
    return claims.ratio(cell("converged_seeds", schedule, alpha), cell("seeds", schedule, alpha))


def _wide(t, column: str, every_seed_settles: bool = True) -> pd.DataFrame:
    """``column`` of ``alpha_sweep`` over α (rows) and schedule (where every seed settles)."""
    table = t["alpha_sweep"].reset_index()
    table = table.query("converged_seeds == seeds") if every_seed_settles else table
    return table.pivot(index="alpha", columns="alpha_schedule", values=column)


def good_over_fastest_other(t) -> Measured:
    """Mean steps to converge at the good α over the fewest of any other constant α whose
    every seed settles."""
    steps = _wide(t, "steps_to_converge_mean")["constant"].dropna()
    good, other = steps[GOOD], steps.drop(GOOD)
    return Measured(good / other.min(), detail=f"α {GOOD:g}: {good:.1f}; fastest other: α "
                    f"{other.idxmin():g}, {other.min():.1f}")  # fmt: skip


def annealed_over_constant(column: str):
    """The lowest ``column`` of annealed α over that of constant α (α whose every seed settles)."""

    def measure(t) -> Measured:
        table = _wide(t, column)
        (a, x), (c, y) = ((table[k].idxmin(), table[k].min()) for k in ("annealed", "constant"))
        return Measured(x / y, detail=f"annealed from α₀ {a:g}: {x:.3g}; constant α {c:g}: "
                        f"{y:.3g}")  # fmt: skip

    return measure


def annealed_lower_share(t) -> Measured:
    """Share of α₀ ≥ the good α where annealed α ends with a lower mean final excess than
    constant α₀."""
    excess = _wide(t, "final_excess_mean", every_seed_settles=False).loc[GOOD:].dropna()
    lower = excess["annealed"] < excess["constant"]
    return Measured(float(lower.mean()), detail=f"{lower.sum()} of {len(lower)} α₀ ≥ {GOOD:g}")


def constant_ratio(column: str, a: float, b: float):
    """``column`` at constant α ``a`` over that at constant α ``b``."""
    return claims.ratio(cell(column, "constant", a), cell(column, "constant", b))


def boundary_at_critical(t) -> Measured:
    """Where ``2/λ`` (closed form) lies in the measured boundary between the largest constant α
    at which no seed diverges (``lo``) and the smallest at which every seed does (``hi``):
    ``(2/λ − lo) / (hi − lo)``, of the seeds' mean ``2/λ`` (interval: over seeds)."""
    runs = t["runs"][t["runs"]["alpha_schedule"] == "constant"]
    lo, hi = diagnose.stability_boundary(runs, runs["status"] == "diverged").iloc[0]
    crit = t["closed_form"]["critical_alpha"]
    where = (np.array([crit.mean(), crit.min(), crit.max()]) - lo) / (hi - lo)
    return Measured(
        *where,
        detail=f"2/λ {crit.mean():.3g} (seeds {crit.min():.3g} … "
        f"{crit.max():.3g}); no seed diverges up to α {lo:g}, every seed from {hi:g}",
    )


BOUNCE = ("the weights are not gradually converging toward minimum error. Instead, they're "
          "bouncing around somewhat chaotically")  # fmt: skip
GOOD_QUOTE = "The goal is to use learning rate to promote moderately fast, consistent convergence."
STRIDES = ("A higher learning rate helps the network to take long strides toward minimum error. As "
           "the network approaches the bottom of the error curve, though, these long strides can "
           "impede convergence")  # fmt: skip
CLAIMS = (
    Claim("too_large_never_settles", BOUNCE, f"share of seeds whose excess error settles, "
          f"constant α {TOO_LARGE:g}", settled("constant", TOO_LARGE), "<=", 0.0),
    Claim("too_large_jumps_across", BOUNCE, f"share of first-epoch updates that jump across "
          f"w*, α {TOO_LARGE:g} over α {GOOD:g}",
          constant_ratio("bounce_share_mean", TOO_LARGE, GOOD), ">", 2.0),
    Claim("too_large_stays_high", "the network may not train effectively", f"final excess "
          f"error, α {TOO_LARGE:g} over α {GOOD:g}",
          constant_ratio("final_excess_mean", TOO_LARGE, GOOD), ">", 10.0),
    Claim("good_settles_every_seed", GOOD_QUOTE, f"share of seeds whose excess error settles, "
          f"constant α {GOOD:g}", settled("constant", GOOD), ">=", 1.0),
    Claim("good_is_fastest", GOOD_QUOTE, f"mean steps to converge at α {GOOD:g} over the "
          "fewest of any other constant α (every seed settling)", good_over_fastest_other, "<",
          1.0),
    Claim("small_is_slow", "not so small that the network learns extremely slowly", "mean "
          f"steps to converge, α {SMALL:g} over α {GOOD:g}",
          constant_ratio("steps_to_converge_mean", SMALL, GOOD), ">=", 5.0),
    Claim("annealing_rescues_large", STRIDES, "share of seeds whose excess error settles, "
          f"annealed from α₀ {TOO_LARGE:g}", settled("annealed", TOO_LARGE), ">=", 1.0),
    Claim("annealing_ends_lower", "One way to take advantage of this is to decrease the "
          "learning rate during training.", f"share of α₀ ≥ {GOOD:g} where annealed α ends "
          "with a lower mean final excess than constant α₀", annealed_lower_share, ">=", 1.0),
    Claim("annealing_settles_fastest", STRIDES, "fewest mean steps to converge, annealed α over "
          "constant α (every seed settling)", annealed_over_constant("steps_to_converge_mean"),
          "<", 1.0),
    Claim("annealing_ends_lowest", "eventually the network is tiptoeing toward the center of "
          "the circle", "lowest mean final excess, annealed α over constant α (every seed "
          "settling)", annealed_over_constant("final_excess_mean"), "<", 1.0),
    Claim("reaches_the_bottom", "These jumps tend toward the bottom of the bowl, where error is "
          "minimized", f"largest distance of the trained w from w* over seeds, annealed from "
          f"α₀ {GOOD:g}", Select("closed_form", "abs_gap_annealed", aggregate="max"), "<", 0.01),
    Claim("diverges_beyond_2_over_lambda", "the weights are not gradually converging toward "
          "minimum error", "where the critical α = 2/λ (λ = E''(w) = mean(x²), closed form) "
          "lies in the measured boundary: (2/λ − largest α where no seed diverges) / (smallest "
          "α where every seed diverges − that α), constant α", boundary_at_critical, "between",
          (0.0, 1.0), whole_interval=True),
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The error-curve figure


def _index(configs: pd.DataFrame, schedule: str, alpha: float, seed: int) -> int:
    """The row of one run in ``configs`` (and in the traces)."""
    mask = (configs["alpha_schedule"] == schedule) & np.isclose(configs["lr"], alpha)
    return int(np.flatnonzero(mask & (configs["seed"] == seed))[0])


def error_curve_figure(trained: Trained, path: Path, updates: int = 40) -> None:
    """The error curve E(w) of one seed with the first ``updates`` jumps of the weight, for a
    small, a good and a too-large α, and for α annealed from the too-large one."""
    seed = int(trained.configs["seed"].min())
    x, t = trained.data[seed]["x"], trained.data[seed]["t"]
    panels = [(title, trained.w[_index(trained.configs, schedule, alpha, seed), :updates])
              for schedule, alpha, title in (
                  ("constant", SMALL, f"too small: α = {SMALL:g}"),
                  ("constant", GOOD, f"good: α = {GOOD:g}"),
                  ("constant", TOO_LARGE, f"too large: α = {TOO_LARGE:g}"),
                  ("annealed", TOO_LARGE, f"annealed: α = {TOO_LARGE:g}/(1 + k/20)"))]  # fmt: skip
    report.iterates_figure(
        path, lambda w: error(w, x, t), panels, W0, least_squares(x, t)[0], xlabel="weight w",
        ylabel="error E(w) = ½·mean((t − w·x)²)", optimum_label="w* (closed form)",
        title=f"Error curve of one linear neuron (seed {seed}) and the first {updates} "
        "delta-rule jumps of its weight (dark: early, light: late)",
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Run, README, summary


def notes(sweep_tab: pd.DataFrame) -> str:
    """What the tables show beyond the claims: why large α bounces, and when annealing stalls."""
    ann = sweep_tab.loc[["annealed"]]
    stalls = ann.loc[ann["status"].str.startswith("slow"), "alpha"]
    text = ", ".join(f"{a:g}" for a in stalls) or "none here"
    return claims.notes_text(sys.modules[__name__], stalls=text)


def run(sweep: Sweep, out: str | Path | None = None, quiet: bool = False) -> runner.Result:
    """Trains every run through the engine (one program per seed) and writes the results
    folder."""
    start = time.perf_counter()
    trained = train(sweep)  # refuses a sweep it cannot honour before it says anything
    runner.Progress(quiet).say(f"{NAME}: trained {len(trained.configs)} runs, one program per seed")
    runs, curves = build_runs(trained)
    sweep_tab = sweep_table(runs)
    measured = {"runs": runs, "alpha_sweep": sweep_tab,
                "closed_form": closed_form_table(runs, GOOD)}  # fmt: skip
    meta = results.meta(sweep, start, n_runs=len(runs), **trained.timing)
    return claims.finish(
        sys.modules[__name__], sweep, runs, curves, meta, out, quiet,
        found=claims.evaluate(CLAIMS, measured, ARTICLE),
        tables={
            "alpha_sweep": (report.rounded(sweep_tab), "Delta rule on one linear neuron: status, "
                            "final excess error (mean over the last epoch), steps to converge and "
                            f"jumps across the minimum, over {len(sweep.seeds)} seeds"),
            "annealing": (report.rounded(annealing_table(sweep_tab)), "Constant α against α "
                          "annealed from the same α₀ (means over seeds)"),
            "closed_form": (report.rounded(measured["closed_form"], 6), "Least-squares weight "
                            f"(closed form) and trained weights at α {GOOD:g}, per seed"),
        },
        figures={
            "error_curve.png": (lambda path: error_curve_figure(trained, path), "the first 40 "
                                f"jumps on the error curve for α {SMALL:g}, {GOOD:g} and "
                                f"{TOO_LARGE:g}, and annealed from {TOO_LARGE:g}: the article's "
                                "pictures"),
            "excess_curves.png": (lambda path: report.curves_figure(runs, curves, path, "excess",
                                  "log"), "excess error E(w) − E(w*) at the end of each epoch, "
                                  "one line per α (seed mean), constant and annealed"),
        },
        setting_table=claims.setting(sweep, SETTING), notes=notes(sweep_tab),
    )  # fmt: skip
