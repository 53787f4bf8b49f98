"""The catapult phase: lazy, catapult and divergent full-batch GD on a wide two-layer net.

Lewkowycz et al. (2020) train wide networks with the squared error by full-batch gradient
descent and find three phases set by the step size η against the sharpness λ₀ (the top
Hessian eigenvalue) at initialisation: below 2/λ₀ the loss falls monotonically and the
curvature barely moves (lazy); between 2/λ₀ and a maximal step η_max the loss first grows,
then falls, and the run ends at a sharpness below 2/η (catapult; η_max = 4/λ₀ in their
solvable two-layer linear model, larger for ReLU nets); above η_max the runs diverge.

Here: a two-layer ReLU MLP (40 → 512 → 10, LeCun-normal kernels) with the squared error
``½·Σ_k (z_k − onehot_k)²`` on the 496 training signals of ``mnist1d(num_samples=625)``,
full-batch GD for 200 steps. λ₀ is measured per seed by the engine's sharpness probe (20
Hessian-vector products, after one step at η = 10⁻⁴, on the whole training set); each seed
then trains at η = c·2/λ₀ for 12 values of c log-spaced from 0.25 to 10 (η·λ₀ from 0.5 to
20), sharpness probed every 5 steps. A run is *diverged* when its final loss is not finite
or above its initial loss, *lazy* when it converges and its loss never rises above the
initial loss, *catapult* when it converges after rising above it. The boundaries (as c, a
multiple of 2/λ₀) are read per seed and reported as min–max intervals over seeds.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lrbench import claims, probes, report, results, runner
from lrbench.claims import Claim, Measured
from lrbench.models import MLPConfig
from lrbench.sweep import Sweep

NAME = "catapult"
TITLE = "The catapult phase: lazy, catapult and divergent step sizes against 2/λ₀"
ARTICLE = (
    'Lewkowycz, Bahri, Dyer, Sohl-Dickstein & Gur-Ari, "The large learning rate phase of deep '
    'learning: the catapult mechanism" (arXiv:2003.02218)'
)
CS = tuple(float(c) for c in np.geomspace(0.25, 10.0, 12))  # η = c·2/λ₀
INIT_LR = 1e-4  # the λ₀ pass: one step this small moves no probe
PROBE_EVERY = 5
PROBE_ITERS = 20
LAZY_DRIFT = 0.1  # "curvature barely moves": |λ_end/λ₀ − 1| below this


def get_config() -> Sweep:
    return Sweep(
        experiment=NAME,
        description="two-layer ReLU MLP(512), MSE, full-batch GD, 200 steps, "
        "η = c·2/λ₀ for 12 c in 0.25 … 10, 3 seeds",
        dataset="mnist1d(num_samples=625)",
        task="regressor",
        model=MLPConfig(hidden=(512,), activation="relu", kernel_init="lecun_normal"),
        epochs=200,
        batch_size=496,
        lrs=CS,  # multiples of 2/λ₀, turned into step sizes per seed by ``train``
        seeds=(0, 1, 2),
        validation_freq=0,
    )


def ci_config() -> Sweep:
    """Width 256, 100 steps, 6 values of c, 2 seeds."""
    return dataclasses.replace(
        get_config(),
        model=MLPConfig(hidden=(256,), activation="relu", kernel_init="lecun_normal"),
        epochs=100,
        lrs=tuple(float(c) for c in np.geomspace(0.25, 10.0, 6)),
        seeds=(0, 1),
    )


# ---------------------------------------------------------------------------------------------
# Measures (pure functions of one run's record)


def phase(loss, initial: float) -> str:
    """``diverged`` when the final loss is not finite or above ``initial``; else ``catapult``
    when the loss ever rose above ``initial``, ``lazy`` when it never did."""
    loss = np.asarray(loss, np.float64)
    if not np.isfinite(loss[-1]) or loss[-1] > initial:
        return "diverged"
    return "catapult" if np.nanmax(loss) > initial else "lazy"


def monotone(loss, initial: float, slack: float = 1e-6) -> bool:
    """The loss, ``initial`` first, never rises by more than ``slack·initial`` in a step."""
    steps = np.diff(np.concatenate([[initial], np.asarray(loss, np.float64)]))
    return bool(np.all(np.isfinite(steps)) and np.all(steps <= slack * initial))


def peak_ratio(loss, initial: float) -> float:
    """Largest loss over the initial loss (inf once not finite)."""
    loss = np.asarray(loss, np.float64)
    return float(np.inf if not np.all(np.isfinite(loss)) else loss.max() / initial)


def boundaries(table: pd.DataFrame) -> pd.DataFrame:
    """Per seed: the largest lazy c, the smallest catapult c, the largest converged c and the
    smallest diverged c (NaN where a seed has none)."""
    rows = []
    for seed, t in table.groupby("seed"):
        c, p = t["c"].to_numpy(), t["phase"].to_numpy()

        def pick(f, mask, c=c):
            return float(f(c[mask])) if mask.any() else np.nan

        rows.append({"seed": seed,
                     "largest_lazy": pick(np.max, p == "lazy"),
                     "smallest_catapult": pick(np.min, p == "catapult"),
                     "largest_converged": pick(np.max, p != "diverged"),
                     "smallest_diverged": pick(np.min, p == "diverged")})  # fmt: skip
    return pd.DataFrame(rows).set_index("seed")


def over_seeds(values, detail: str = "") -> Measured:
    """The mean and the min–max interval over seeds (NaN when a seed has no value)."""
    v = np.asarray(values, np.float64)
    if not len(v) or not np.all(np.isfinite(v)):
        return Measured(np.nan, np.nan, np.nan, detail)
    return Measured(float(v.mean()), float(v.min()), float(v.max()), detail)


def _bound(column):
    return lambda t: over_seeds(t["bounds"][column], "min–max over seeds")


def below_monotone(t) -> Measured:
    below = t["runs"][t["runs"]["c"] < 1]
    return over_seeds([below["monotone"].mean()], f"{len(below)} runs with c < 1")


def lazy_drift(t) -> Measured:
    lazy = t["runs"][t["runs"]["phase"] == "lazy"]
    return over_seeds([np.abs(lazy["sharpness_ratio"] - 1).max()], f"{len(lazy)} lazy runs")


def catapult_end(t) -> Measured:
    cat = t["runs"][t["runs"]["phase"] == "catapult"]
    v = cat["end_sharpness_x_eta_over_2"]
    return over_seeds([v.max()] if len(v) else [], f"{len(cat)} catapult runs, max")


def catapult_spike(t) -> Measured:
    cat = t["runs"][t["runs"]["phase"] == "catapult"]
    if not len(cat):
        return over_seeds([])
    r = cat["peak_ratio"]
    return over_seeds([r.max()], f"max; min {r.min():.3g} over {len(cat)} catapult runs")


CLAIMS = (
    Claim("lazy_below_2_over_lambda0", "η < 2/λ₀: the loss falls monotonically (lazy)",
          "fraction of runs with c < 1 whose loss never rises", below_monotone, ">=", 1.0),
    Claim("catapult_above_2_over_lambda0", "above 2/λ₀ (not below) the loss spikes, then falls",
          "smallest catapult c (η = c·2/λ₀), per seed (min–max)", _bound("smallest_catapult"),
          ">", 1.0, whole_interval=True),
    Claim("lazy_curvature_fixed", "in the lazy phase the curvature barely moves",
          "max over lazy runs of abs(λ_end/λ₀ − 1)", lazy_drift, "<", LAZY_DRIFT),
    Claim("catapult_flatter", "the catapult run ends at a sharpness below 2/η",
          "max over catapult runs of λ_end·η/2", catapult_end, "<", 1.0),
    Claim("catapult_spikes", "the loss first spikes",
          "max over catapult runs of peak loss / initial loss", catapult_spike, ">", 2.0,
          expected_ci="no"),  # the CI grid's only catapult c (1.09) rises 0.3% at most
    Claim("eta_max_at_least_4_over_lambda0",
          "η_max = 4/λ₀ for the two-layer linear model, larger for ReLU nets",
          "smallest diverged c, per seed (min–max)", _bound("smallest_diverged"),
          ">", 2.0, whole_interval=True),
    Claim("diverge_above_eta_max", "above η_max the runs diverge",
          "smallest diverged c, per seed (min–max)", _bound("smallest_diverged"),
          "<", CS[-1], whole_interval=True),
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Training


def train(sweep: Sweep):
    """λ₀ per seed, then every seed's grid η = c·2/λ₀; returns runs, curves, probes table and
    timing."""
    first = probes.train(dataclasses.replace(sweep, epochs=1, lrs=(INIT_LR,)),
                         probes=("sharpness", "train_loss"), probe_every=1,
                         probe_iters=PROBE_ITERS)  # fmt: skip
    lam0 = dict(zip(first.runs["seed"], first.probes.steps["sharpness"][:, 0], strict=True))
    loss0 = dict(zip(first.runs["seed"], first.probes.steps["train_loss"][:, 0], strict=True))
    grids = [dataclasses.replace(sweep, seeds=(s,), lrs=tuple(c * 2 / float(lam0[s])
                                                             for c in sweep.lrs))
             for s in sweep.seeds]  # fmt: skip
    got = probes.train_each(grids, probes=("sharpness", "train_loss"),
                            probe_every=PROBE_EVERY, probe_iters=PROBE_ITERS)  # fmt: skip
    loss, sharp = got.probes.steps["train_loss"], got.probes.steps["sharpness"]
    runs = got.runs.copy()
    rows = []
    for i, r in runs.iterrows():
        init, lam = float(loss0[r.seed]), float(lam0[r.seed])
        s = sharp[i][np.isfinite(sharp[i])]
        end = float(s[-1]) if len(s) and np.isfinite(loss[i][-1]) else np.nan
        c = min(sweep.lrs, key=lambda g, x=r.lr * lam / 2: abs(g - x))  # the grid's own value
        rows.append({"c": c, "lambda0": lam, "initial_loss": init,
                     "final_loss": float(loss[i][-1]), "peak_ratio": peak_ratio(loss[i], init),
                     "end_sharpness": end, "sharpness_ratio": end / lam,
                     "end_sharpness_x_eta_over_2": end * r.lr / 2,
                     "monotone": monotone(loss[i], init), "phase": phase(loss[i], init)})  # fmt: skip
    runs = pd.concat([runs, pd.DataFrame(rows, index=runs.index)], axis=1)
    ids = runs["run_id"].to_numpy()
    nan = np.full(len(runs), np.nan)  # full batch: epoch k is step k; no test set evaluated
    curves = probes.curves_table(
        ids, {"lr": runs["lr"].to_numpy(), "train_loss": loss, "test_loss": nan, "test_acc": nan}
    )
    probed = probes.probes_table(ids, {"sharpness": sharp}, PROBE_EVERY)
    return runs, curves, probed, got.timing, first.timing


def _interval(values) -> str:
    v = np.asarray(values, np.float64)
    return f"{np.nanmin(v):.3g} … {np.nanmax(v):.3g}" if np.isfinite(v).any() else "none"


def figure(runs: pd.DataFrame, curves: pd.DataFrame, path: Path) -> None:
    plt = report.pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    seed0 = runs[runs["seed"] == runs["seed"].min()]
    cmap = plt.get_cmap("viridis")
    for k, (_, r) in enumerate(seed0.iterrows()):
        c = curves[curves["run_id"] == r["run_id"]]
        a.plot(c["epoch"], c["train_loss"] / r["initial_loss"], color=cmap(k / len(seed0)),
               label=f"c={r['c']:.2g} ({r['phase']})")  # fmt: skip
    a.set(yscale="log", ylim=(1e-2, 1e3), xlabel="step", ylabel="train loss / initial loss",
          title=f"loss per c = η·λ₀/2 (seed {int(seed0['seed'].iloc[0])})")  # fmt: skip
    a.legend(fontsize=6, ncol=2)
    colors = {"lazy": "tab:blue", "catapult": "tab:orange", "diverged": "tab:red"}
    for ph, t in runs.groupby("phase"):
        y = np.full(len(t), 3.0) if ph == "diverged" else t["end_sharpness_x_eta_over_2"]
        b.scatter(t["c"], np.minimum(y, 3.0), color=colors[ph], label=ph, s=18)
    b.plot(runs["c"].sort_values(), runs["c"].sort_values(), "k:", lw=0.8, label="λ = λ₀")
    b.axhline(1.0, color="gray", lw=0.8, ls="--", label="λ = 2/η")
    b.axvline(1.0, color="gray", lw=0.8)
    b.set(xscale="log", xlabel="c = η·λ₀/2", ylabel="final sharpness · η/2 (diverged: 3)",
          ylim=(0, 3.2), title="phase diagram")  # fmt: skip
    b.legend(fontsize=7)
    report.save_figure(fig, path)


def run(sweep: Sweep, out: str | Path | None = None, quiet: bool = False) -> runner.Result:
    start = time.perf_counter()
    runs, curves, probed, timing, first = train(sweep)
    bounds = boundaries(runs)
    meta = results.meta(sweep, start, n_runs=len(runs), lambda0_pass=first, **timing)
    t = {"runs": runs, "bounds": bounds}
    phases = runs.pivot_table(index="c", columns="seed", values="phase", aggfunc="first")
    phases.index = [f"{c:.3g}" for c in phases.index]
    return claims.finish(
        sys.modules[__name__], sweep, runs, curves, meta, out, quiet,
        found=claims.evaluate(CLAIMS, t, ARTICLE),
        tables={
            "boundaries": (report.rounded(bounds), "per seed, as c = η·λ₀/2 (η in units "
                           "of 2/λ₀): the largest lazy, smallest catapult, largest converged "
                           "and smallest diverged c of the grid"),
            "phases": (phases, "the phase of each run: c (rows) by seed (columns)"),
        },
        files={"probes.csv": probed},
        figures={"phase.png": (lambda path: figure(runs, curves, path),
                               "left: training loss over its initial value per c (one seed); "
                               "right: final sharpness·η/2 against c, coloured by phase")},
        notes=claims.notes_text(
            sys.modules[__name__],
            lambda0=", ".join(f"{v:.4g}" for v in runs.groupby("seed")["lambda0"].first()),
            **{k: _interval(bounds[col]) for k, col in (
                ("lazy", "largest_lazy"), ("catapult", "smallest_catapult"),
                ("converged", "largest_converged"), ("diverged", "smallest_diverged"))},
            drift=f"{lazy_drift(t).value:.3g}", flat=f"{catapult_end(t).value:.3g}",
            spike=f"{catapult_spike(t).value:.3g}",
        ),
    )  # fmt: skip
