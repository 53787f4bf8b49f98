"""Seed 003: Gad, "Is Learning Rate Useful in Artificial Neural Networks?" (KDnuggets, 2018).

One input ``x``, a bias ``b`` (input +1) and a weight ``W``; the output is
``y = min(b + W·x, 250)`` (the article's activation clips at 250). Six training samples
``x = (60, 40, 100, 300, −50, 310)`` with targets ``(60, 40, 150, 250, −50, 250)`` are visited
in turn from ``[b, W] = [0.05, 0.1]``; the loop runs at least 2000 iterations and then until one
sample's absolute error is below 0.01. The article's update line is

    weights = weights + lr·(desired − predicted)·x

applied to *both* weights, so the bias is moved by ``x`` times the error too: it is the delta
rule with bias input ``x`` instead of +1. Since both weights always move by the same amount,
``W − b = 0.05`` forever and the neuron has one degree of freedom. The textbook delta rule
(bias input +1) is run beside it. Both are the engine's ``perceptron`` task
(:class:`lrbench.tasks.Perceptron`, whose error passes the clip as if it were not there)
trained by ``rules.make("delta")``: they differ only in the task's bias input. The engine
records the weights after every iteration, and the article's stopping rule is read off them.

Without a learning rate (lr = 1) the article reports ``[0.05, 0.1] → [3237.05, 3237.1] →
[−5162.95, −5162.9]`` and weights that keep exploding and flipping sign; with lr = 0.00001 the
network learns and predicts four new samples ``(10, 240, 550, −160) → (10, 240, 250, −160)``.
Its table of learned weights and predictions is an image; the code it prints is run here as is
(NumPy, float64) as the reference. Everything runs in float64, as the article's NumPy does.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lrbench import claims, diagnose, probes, report, results, runner
from lrbench.claims import Claim, Select
from lrbench.sweep import Optimizer, Sweep
from lrbench.tasks import Perceptron

NAME = "kdnuggets_perceptron"
TITLE = "is the learning rate useful? (seed 003)"
ARTICLE = 'Ahmed Gad, "Is Learning Rate Useful in Artificial Neural Networks?" (KDnuggets, 2018)'
TASK = Perceptron(bias_input="x")  # the article's samples, start, clip and 5% test tolerance
TRAIN_X, TRAIN_T = np.array(TASK.x_train), np.array(TASK.t_train)
TEST_X, TEST_T = np.array(TASK.x_test), np.array(TASK.t_test)
MIN_ITERATIONS = 2000  # ``while(iteration < 2000 or error >= 0.01)``
STOP_ERROR = 0.01
MAX_ITERATIONS = 3000  # the training budget; a run that has not stopped by then is reported so
ARTICLE_LR = 1e-5
DIVERGED_ABOVE = 1e6  # |weight| beyond this (or non-finite) counts as diverged
RULES = {"article": "x", "textbook": "one"}  # rule -> the perceptron task's bias input
LRS = tuple(float(f"{10.0 ** (-k / 2):.0e}") for k in range(15))  # 1, 3e-1, ..., 1e-7
FINE_LRS = tuple(float(10.0 ** (-k / 8)) for k in range(57))  # 8 per decade, 1 ... 1e-7
REFERENCE = "article's code run as printed (NumPy)"


def get_config() -> Sweep:
    """The half-decade sweep; :func:`run` adds the textbook rule and a finer grid."""
    return Sweep(
        experiment=NAME,
        description="KDnuggets one-input clipped perceptron: article's rule vs textbook delta "
        "rule, lr 1 ... 1e-7",
        task=TASK,  # the article's rule; the textbook one runs beside it
        epochs=MAX_ITERATIONS // len(TRAIN_X),
        batch_size=1,
        lrs=LRS,
        optimizers=(Optimizer("delta"),),
        seeds=(0,),
        dtype="float64",
    )


def article_reference(lr: float = ARTICLE_LR) -> tuple[np.ndarray, int]:
    """The article's training loop as printed (NumPy float64): final ``[b, W]`` and the number
    of iterations."""
    weights, error, idx, iteration = np.array(TASK.initial), 1.0, 0, 0
    while iteration < MIN_ITERATIONS or error >= STOP_ERROR:
        predicted = min(weights[0] * 1 + weights[1] * TRAIN_X[idx], TASK.clip)
        error = np.abs(np.mean(TRAIN_T[idx] - predicted))
        weights = weights + lr * (TRAIN_T[idx] - predicted) * TRAIN_X[idx]
        idx, iteration = (idx + 1) % len(TRAIN_X), iteration + 1
    return weights, iteration


# ---------------------------------------------------------------------------------------------
# Training: the engine, with the weights recorded after every iteration


def train(lrs, sweep: Sweep | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Both rules at every learning rate of ``lrs`` through the engine (float64; one program
    per rule, the learning rate per-run data); per rule, the article's loop read off the
    recorded weights (:func:`article_loop`), runs in decreasing lr."""
    sweep = sweep or get_config()
    lrs = tuple(sorted(set(lrs), reverse=True))
    variants = [dataclasses.replace(sweep.task_spec, bias_input=b) for b in RULES.values()]
    got = probes.train_each([dataclasses.replace(sweep, task=v, lrs=lrs) for v in variants],
                            probes=("params",))  # fmt: skip
    w, n = got.probes.steps["params"]["w"], len(lrs)
    return {rule: {"lr": got.runs["lr"].to_numpy()[i * n : (i + 1) * n],
                   **article_loop(w[i * n : (i + 1) * n])} for i, rule in enumerate(RULES)}  # fmt: skip


def article_loop(w: np.ndarray) -> dict[str, np.ndarray]:
    """The article's loop read off weights ``w[N, T, 2]`` after every iteration: ``b``, ``W``
    (frozen once it stops), ``predicted``, ``error`` (NaN after the stop), ``final``,
    ``iterations``, ``stopped``.

    The engine trains every run for the whole budget; ``while(iteration < 2000 or error >=
    0.01)`` is applied afterwards, and the weights it returns are those after the iteration
    where it stops (nothing after it feeds back)."""
    n, steps, _ = w.shape
    before = np.concatenate([np.broadcast_to(TASK.initial, (n, 1, 2)), w[:, :-1]], 1)
    idx = np.arange(steps) % len(TRAIN_X)
    predicted = _predict(before, TRAIN_X[idx, None])[..., 0]
    error = np.abs(TRAIN_T[idx] - predicted)
    # NaN >= 0.01 is False, so a run whose error turned NaN stops too, as in the article's code
    stop = (np.arange(1, steps + 1) >= MIN_ITERATIONS) & ~(error >= STOP_ERROR)
    iterations = diagnose.first_true(stop, steps)
    after = np.arange(steps)[None] >= iterations[:, None]
    final = w[np.arange(n), iterations - 1]
    w = np.where(after[..., None], final[:, None], w)
    return {
        "b": w[..., 0], "W": w[..., 1], "predicted": np.where(after, np.nan, predicted),
        "error": np.where(after, np.nan, error), "final": final, "iterations": iterations,
        "stopped": stop.any(1)}  # fmt: skip


def _predict(w, xs):
    """Outputs ``[..., len(xs)]`` of weights ``w[..., 2]`` on the inputs ``xs``: ``250 if z >
    250 else z`` (NaN stays NaN, as in the article's Python)."""
    with np.errstate(all="ignore"):
        z = w[..., :1] * 1 + w[..., 1:] * xs
        return np.where(z > TASK.clip, TASK.clip, z)


def _mae(w, xs, ts):
    """Mean absolute error of weights ``w[..., 2]`` on the samples ``(xs, ts)``."""
    with np.errstate(all="ignore"):
        return np.abs(ts - _predict(w, xs)).mean(-1)


# ---------------------------------------------------------------------------------------------
# Tables


def build_runs(traces) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``runs`` (one row per rule × lr) and per-epoch ``curves`` (an epoch = six iterations)."""
    initial = float(_mae(np.array(TASK.initial), TRAIN_X, TRAIN_T))
    runs, curves = [], []
    for rule, t in traces.items():
        w, final = np.stack([t["b"], t["W"]], -1), t["final"]
        train_mae, ends = _mae(w, TRAIN_X, TRAIN_T), slice(len(TRAIN_X) - 1, None, len(TRAIN_X))
        bad = diagnose.out_of_bounds(w, DIVERGED_ABOVE).any(-1)
        curve, rows = diagnose.step_runs(train_mae, bad, len(TRAIN_X), initial, t["iterations"])
        within = np.abs(_predict(final, TEST_X) - TEST_T) <= TASK.tolerance * np.abs(TEST_T)
        ids = [f"{rule}-lr{lr:.3g}" for lr in t["lr"]]
        nonfinite_at = diagnose.first_true(~np.isfinite(w).all(-1), 0)
        test_mae = _mae(w[:, ends], TEST_X, TEST_T)
        runs.append(pd.DataFrame({
            "run_id": ids, "experiment": NAME, "optimizer": "delta", "rule": rule,
            "impl": "hand", "seed": 0, "lr": t["lr"], "b": final[:, 0], "W": final[:, 1],
            "iterations": t["iterations"], "stopped": t["stopped"],
            "first_update": t["W"][:, 0] - TASK.initial[1],
            "initial_train_loss": initial, "final_train_loss": train_mae[:, -1],
            "final_test_loss": test_mae[:, -1], "final_test_acc": within.mean(-1),
            "status": rows["status"], "diverged_at": rows["diverged_at"],
            "nonfinite_at": pd.Series(nonfinite_at, dtype="Int64").where(nonfinite_at > 0),
        }))  # fmt: skip
        curves.append(probes.curves_table(ids, {
            "lr": t["lr"], "b": w[:, ends, 0], "W": w[:, ends, 1], "train_loss": curve,
            "test_loss": test_mae}, -(-t["iterations"] // len(TRAIN_X))))  # fmt: skip
    return pd.concat(runs, ignore_index=True), pd.concat(curves, ignore_index=True)


def first_iterations(trace, count: int = 6) -> pd.DataFrame:
    """The first iterations without a learning rate (lr = 1, the article's rule)."""
    i = int(np.flatnonzero(trace["lr"] == 1.0)[0])
    k = np.arange(count)
    return pd.DataFrame(
        {"iteration": k + 1, "input": TRAIN_X[k % 6], "desired": TRAIN_T[k % 6],
         "predicted": trace["predicted"][i, k], "error": trace["error"][i, k],
         "b": trace["b"][i, k], "W": trace["W"][i, k]}
    ).set_index("iteration")  # fmt: skip


def least_squares() -> dict[str, tuple[float, float]]:
    """Closed-form least-squares weights on the samples the clip leaves linear (the two clipped
    samples are predicted above 250 at both optima, so their error is 0 there): the textbook
    neuron (b, W free) and the article's rule (W − b = 0.05 fixed)."""
    x, t = TRAIN_X[TRAIN_X <= TASK.clip], TRAIN_T[TRAIN_X <= TASK.clip]
    b, w = np.linalg.lstsq(np.stack([np.ones_like(x), x], 1), t, rcond=None)[0]
    gap = TASK.initial[1] - TASK.initial[0]
    tied = float((1 + x) @ (t + gap) / ((1 + x) @ (1 + x)))
    return {
        "least squares, textbook neuron (closed form)": (float(b), float(w)),
        "least squares, W − b = 0.05 (closed form)": (tied - gap, tied),
    }


def learned_weights(runs: pd.DataFrame) -> pd.DataFrame:
    """Weights learned at lr 1e-5 and their test predictions: both rules, the article's code
    run as printed, and the least-squares optima the rules can reach."""
    at = runs[np.isclose(runs["lr"], ARTICLE_LR)]
    rows = {f"this suite, {r.rule} rule": (r.b, r.W, r.iterations) for r in at.itertuples()}
    reference, iterations = article_reference()
    rows[REFERENCE] = (*reference, iterations)
    rows.update({k: (*v, None) for k, v in least_squares().items()})
    table = pd.DataFrame(rows, index=["b", "W", "iterations"]).T.rename_axis("source")
    w = table[["b", "W"]].to_numpy(np.float64)
    for x, y in zip(TEST_X, _predict(w, TEST_X).T, strict=True):
        table[f"y({x:g})"] = y
    table["test_mae"] = _mae(w, TEST_X, TEST_T)
    return table.astype({"b": float, "W": float, "iterations": "Int64"})


def lr_sweep(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per rule × lr of the sweep: status, where it diverged, weights, errors."""
    cols = ["lr", "status", "diverged_at", "iterations", "b", "W", "final_train_loss",
            "final_test_loss", "final_test_acc"]  # fmt: skip
    table = runs.set_index("rule")[cols].rename(columns={"final_train_loss": "train_mae",
                                                         "final_test_loss": "test_mae",
                                                         "final_test_acc": "test_acc"})  # fmt: skip
    return table.sort_values(["rule", "lr"], ascending=[True, False])


def divergence_threshold(runs: pd.DataFrame) -> pd.DataFrame:
    """Per rule, over every learning rate trained: the largest that does not diverge and the
    smallest that does."""
    return diagnose.stability_boundary(runs, runs["diverged_at"].notna(), ("rule",)).rename(
        columns={"smallest_unstable_lr": "smallest_diverging_lr"}
    )


# ---------------------------------------------------------------------------------------------
# Claims: the article's sentences and the numbers that test them

# The first two iterations without a learning rate (lr = 1), worked by hand in the article and
# printed to two decimals: (iteration, column of ``first_iterations``) -> (number, sentence).
WEIGHTS_1 = (
    "The new weights will be [0.05, 0.1] + (53.95)*60 = [0.05, 0.1] + 3237 = [3237.05, 3237.1]."
)
WEIGHTS_2 = (
    "the new weights will be [3237.05, 3237.1] + (-210)*40 = [3237.05, 3237.1] + -8400 = "
    "[-5162.95, -5162.9]."
)
BY_HAND = {
    (1, "predicted"): (6.05, "The predicted output will be 6.05."),
    (1, "error"): (53.95, "The error will be abs(60-6.05)=53.95."),
    (1, "b"): (3237.05, WEIGHTS_1),
    (1, "W"): (3237.1, WEIGHTS_1),
    (2, "predicted"): (250.0, "The expected output will be activation_function((3237.05 + "
                              "3237.1(40)) = 250."),
    (2, "error"): (210.0, "The prediction error will be abs(40 - 250) = 210."),
    (2, "b"): (-5162.95, WEIGHTS_2),
    (2, "W"): (-5162.9, WEIGHTS_2),
}  # fmt: skip
WORSE = "As the value gets larger as the changes are faster and as a result bad results."


def at(column: str, lr: float, rule: str = "article") -> Select:
    """``column`` of the run at ``lr`` (article's rule unless told)."""
    return Select("runs", column, {"rule": rule, "lr": lr})


def sign_changes(t) -> int:
    """Sign changes of W over the first six iterations at lr 1."""
    return int(np.sum(np.diff(np.sign(t["first_iterations"]["W"])) != 0))


def bias_step_ratio(t) -> float:
    """The bias's first step over the weight's at lr 1 (1/x = 1/60 for a bias input +1)."""
    first = t["first_iterations"].loc[1]
    return (first["b"] - TASK.initial[0]) / (first["W"] - TASK.initial[1])


def from_article_code(t) -> float:
    """Largest absolute difference of b and W at lr 1e-5: this suite vs the article's code."""
    w = t["learned_weights"][["b", "W"]]
    return float((w.loc["this suite, article rule"] - w.loc[REFERENCE]).abs().max())


def like_article_lr(t) -> int:
    """The sweep's learning rates whose learned W (article's rule) is within 5% of lr 1e-5's."""
    runs = t["runs"][t["runs"]["rule"] == "article"]
    ref = at("W", ARTICLE_LR)(t)
    return int(((runs["W"] - ref).abs() <= 0.05 * abs(ref)).sum())


CLAIMS = (
    *(Claim(f"lr1_iteration{k}_{col}", quote,
            f"{col} after iteration {k}, lr 1, minus the article's {number:g}",
            Select("first_iterations", col, {"iteration": k}) - number, "within", 0.0,
            tolerance=0.005)
      for (k, col), (number, quote) in BY_HAND.items()),
    Claim("lr1_flips_sign", "The magnitude of the weights is changing rapidly and sometimes "
          "with changing its signs.", "sign changes of W over the first six iterations, lr 1",
          sign_changes, ">=", 1),
    Claim("lr1_explodes", "As we go into more iterations, the results get worse.",
          "iteration where a weight turns non-finite, lr 1 (the loop runs at least 2000)",
          at("nonfinite_at", 1.0), "<", MIN_ITERATIONS),
    Claim("update_lr1", "rather than generating 3237.0 as the updated value in the first "
          "iteration", "first update of W, lr 1", at("first_update", 1.0), "within", 3237.0,
          tolerance=0.05),
    Claim("update_lr0.1", "it will be reduced to just 323.7", "first update of W, lr 0.1",
          at("first_update", 0.1), "within", 323.7, tolerance=0.05),
    Claim("update_lr0.001", "Using 0.001, the value will be just 3.327.",
          "first update of W, lr 0.001 (53.95 × 60 × 0.001: digits transposed in the text)",
          at("first_update", 0.001), "within", 3.327, tolerance=0.0005, expected="no"),
    Claim("bias_input_one", "There is also a bias applied to the output layer neuron with "
          "weight b and value +1.", "the bias's first step over the weight's, lr 1 "
          "(1/60 for a bias input +1)", bias_step_ratio, "within", 1 / 60, tolerance=1e-9,
          expected="no"),
    Claim("samples_clipped_identity", "If the input is 250 or smaller, its value will get "
          "returned as the output of the network. If the input is larger than 250, then it "
          "will be clipped to just 250.", "training samples whose target is min(x, 250), of 6",
          lambda t: int(np.sum(np.minimum(TRAIN_X, TASK.clip) == TRAIN_T)), ">=", 6,
          expected="no"),
    Claim("code_reproduced", "weights = weights + .00001*(desired_output[idx] - predicted)"
          "*inputs[idx]", "largest absolute difference of b and W from the article's code "
          "run as printed (NumPy), lr 1e-5", from_article_code, "<=", 1e-12),
    Claim("lr_1e5_much_better", "It seems that results are now much better after using the "
          "learning rate.", "share of the 4 test samples within 5%: lr 1e-5 minus lr 1",
          at("final_test_acc", ARTICLE_LR) - at("final_test_acc", 1.0), ">", 0.0),
    Claim("lr_1e5_works_fine", "For our problem, I deduced that a value of .00001 works fine.",
          "share of the 4 test samples predicted within 5%, lr 1e-5",
          at("final_test_acc", ARTICLE_LR), ">=", 0.75, expected="no"),
    Claim("larger_lr_diverges", WORSE, "share of the runs at lr >= 0.001 (both rules) that "
          "diverge", lambda t: float(t["runs"].query("lr >= 0.001")["diverged_at"].notna()
                                     .mean()), ">=", 1.0),
    Claim("larger_stable_lr_worse", WORSE, "final training MAE at lr 3e-4 (the sweep's largest "
          "stable lr) over that at 1e-5", at("final_train_loss", 3e-4)
          / at("final_train_loss", ARTICLE_LR), ">", 1.0),
    Claim("no_best_value", "There is no value we can say it is the best value for the "
          "learning rate.", "learning rates of the sweep whose learned W is within 5% of "
          "lr 1e-5's", like_article_lr, ">", 1),
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Figure, run, summary


def figure(traces, sweep: pd.DataFrame, path: Path) -> None:
    """(a) W per iteration at a few learning rates (article's rule); (b) training MAE when the
    loop stops against lr, both rules, diverged runs drawn at the top."""
    t, shown = traces["article"], (1, 1e-3, 3e-4, 1e-4, 1e-5, 1e-7)
    at = {lr: t["W"][i, : t["iterations"][i]]  # beyond the frame where it explodes
          for lr in shown for i in [int(np.flatnonzero(np.isclose(t["lr"], lr))[0])]}  # fmt: skip
    rules = sweep.reset_index().assign(rule=lambda f: f["rule"] + " rule",
                                       diverged=lambda f: f["status"].eq("diverged"))  # fmt: skip
    report.divergence_figure(
        path, at, rules, "train_mae", "rule", trace_label="W",
        value_label="training MAE at the stop", mark_lr=ARTICLE_LR,
        trace_title="(a) article's rule: W per iteration (lr 1 and 1e-3 leave the frame)",
        sweep_title="(b) where training stops diverging",
        title="KDnuggets' neuron y = min(b + W·x, 250) on six samples, delta rule (float64)",
    )  # fmt: skip


CAPTIONS = {
    "first_iterations": "Without a learning rate (lr = 1, article's rule): the first iterations",
    "learned_weights": "Weights learned at lr = 0.00001 and their outputs y(x) on the test inputs",
    "lr_sweep": "Learning-rate sweep, both rules: status, weights, errors, share within 5%",
    "divergence_threshold": "Where training stops diverging (sweep and 8 lrs per decade)",
}
SETTING = ("task", "epochs", "batch_size", "lrs", "optimizers", "seeds", "dtype")


def run(sweep: Sweep, out: str | Path | None = None, quiet: bool = False) -> runner.Result:
    """Trains both rules at ``sweep.lrs`` and a finer grid through the engine (one program per
    rule) and writes the results folder; ``runs`` and ``curves`` hold the sweep's runs, the
    finer grid only counts towards ``divergence_threshold``."""
    start = time.perf_counter()
    lrs = sorted(set(sweep.lrs) | set(FINE_LRS), reverse=True)
    runner.Progress(quiet).say(f"{NAME}: {2 * len(lrs)} runs (2 rules × {len(lrs)} lrs), a "
                               "program per rule")  # fmt: skip
    traces = train(lrs, sweep)
    every, curves = build_runs(traces)
    runs = every[every["lr"].isin(sweep.lrs)].reset_index(drop=True)
    curves = curves[curves["run_id"].isin(runs["run_id"])].reset_index(drop=True)
    tables = {
        "first_iterations": first_iterations(traces["article"]),
        "learned_weights": learned_weights(runs),
        "lr_sweep": lr_sweep(runs),
        "divergence_threshold": divergence_threshold(every),
    }
    verdicts = claims.evaluate(CLAIMS, {"runs": runs, **tables}, ARTICLE)
    digits = {"first_iterations": 12, "learned_weights": 8}
    tables = {k: report.rounded(v, digits.get(k, 5)) for k, v in tables.items()}
    meta = results.meta(
        sweep, start, n_runs=2 * len(lrs), programs=len(RULES), fine_lrs=FINE_LRS,
        loop={"min_iterations": MIN_ITERATIONS, "stop_error": STOP_ERROR,
              "max_iterations": MAX_ITERATIONS, "diverged_above": DIVERGED_ABOVE},
    )  # fmt: skip
    return claims.finish(
        sys.modules[__name__], sweep, runs, curves, meta, out, quiet, found=verdicts,
        tables={k: (v, CAPTIONS[k]) for k, v in tables.items()},
        figures={"perceptron.png": (lambda path: figure(traces, tables["lr_sweep"], path),
                                    " ".join(figure.__doc__.split()))},
        setting_table=claims.setting(sweep, SETTING),
    )  # fmt: skip
