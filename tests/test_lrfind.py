"""The learning-rate finders: suggestions read by hand, the divergence point of a quadratic,
the edges of the tried range (flagged, and the grid extended past them) and the blobs
suggestion against the sweep's best."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lrbench import cli, data, lrfind, runner, tasks


def test_smoothing_is_debiased():
    # a constant loss stays exactly constant once the EMA is debiased
    np.testing.assert_allclose(lrfind.smooth(np.full(50, 2.5)), 2.5, rtol=1e-12)
    # first two values by hand: a1 = 0.02*1 / 0.02; a2 = (0.98*0.02*1 + 0.02*3) / (1 - 0.98**2)
    s = lrfind.smooth(np.array([1.0, 3.0]))
    assert s[0] == pytest.approx(1.0)
    assert s[1] == pytest.approx((0.98 * 0.02 + 0.06) / (1 - 0.98**2))


def test_stop_index():
    assert lrfind.stop_index(np.array([3.0, 2.0, 1.0, 3.9, 4.1, 1.0])) == 4  # 4.1 > 4 x 1.0
    assert lrfind.stop_index(np.array([3.0, 2.0, np.nan, 1.0])) == 2
    assert lrfind.stop_index(np.array([3.0, 2.0, 1.0])) == 3


def test_suggestions_by_hand():
    lrs = np.array([1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0])
    losses = np.array([2.0, 1.9, 1.0, 0.8, 0.5, 3.0])
    s = lrfind.suggest(lrs, losses)
    # slopes per decade: -0.1, -0.9, -0.2, -0.3, +2.5 -> steepest at 1e-3
    assert s["steepest"] == pytest.approx(1e-3)
    assert s["minimum/10"] == pytest.approx(0.1)
    # longest descending run: 5 points (indices 0..4); fastai: start = 4 - 5 = -1,
    # sections = 5/3 -> index -1 + 1 + 0 = 0
    assert s["valley"] == pytest.approx(1e-4)
    longer = np.r_[np.linspace(3, 1, 10), [2, 3]]
    lrs10 = 10.0 ** np.arange(-6, 6, dtype=float)
    # descending run 0..9 (lds = 10), start = -1, sections = 10/3 -> index -1 + 3 + 1 = 3
    assert lrfind.suggest(lrs10, longer)["valley"] == pytest.approx(lrs10[3])


@dataclasses.dataclass(frozen=True)
class NoisyBowl(tasks.Quadratic):
    """``½·L·Σ_i (w_i − 1 − ε_{k,i})²`` at step k (4 coordinates): the quadratic bowl of
    curvature L written as least squares, one example per coordinate per step, in turn
    (``shuffle`` False), each step's targets moved by its own noise ε ~ N(0, 1)."""

    steps: int = 150
    shuffle: ClassVar[bool] = False

    def data(self):
        d, lam = len(self.eigenvalues), np.asarray(self.eigenvalues)
        noise = np.random.default_rng(0).normal(size=(self.steps, d))
        x = np.tile(np.diag(np.sqrt(d * lam)), (self.steps, 1))  # rows: step k, coordinate i
        t = (np.sqrt(d * lam) * (1 + noise)).reshape(-1)
        return data.Dataset("noisy_bowl", x, t, x, t, 0)


@pytest.mark.parametrize("curvature", [0.5, 10.0, 100.0, 1000.0])
def test_range_test_finds_the_stability_limit(curvature):
    """Gradient descent on a quadratic of curvature L is stable for lr < 2/L (closed form):
    the range test's divergence point lies within a factor of 2 of it (a minibatch of 4 is
    one step on the bowl, with noisy targets)."""
    steps = 150
    task = NoisyBowl(eigenvalues=(curvature,) * 4, w0=3.0, steps=steps)
    problem = lrfind.Problem(task=task, optimizer="sgd", batch_size=4)
    curve = lrfind.range_test(problem, 1e-5, 10.0, steps)
    assert curve.stop < steps  # it did stop
    limit = 2.0 / curvature
    assert limit / 2 <= curve.lrs[-1] <= 2 * limit


def test_range_test_records_the_minibatch_loss_at_the_ramped_rate():
    """The range test's raw losses are those of a plain NumPy loop of gradient descent on the
    same bowl at ``lr_i = start·(end/start)^(i/(k−1))`` (float32 program: rtol 1e-4)."""
    steps, lam = 40, 2.0
    task = NoisyBowl(eigenvalues=(lam,) * 4, w0=3.0, steps=steps)
    curve = lrfind.range_test(lrfind.Problem(task=task, batch_size=4), 1e-3, 1.0, steps)
    ds = task.data()
    w, losses = np.full(4, 3.0), []
    for i in range(steps):
        target = ds.y_train[4 * i : 4 * i + 4] / np.sqrt(4 * lam)  # the step's minimum
        losses.append(0.5 * lam * np.sum((w - target) ** 2))
        w = w - 1e-3 * 1000.0 ** (i / (steps - 1)) * lam * (w - target)
    np.testing.assert_allclose(curve.raw, losses, rtol=1e-4)


def _bowl_in_log_lr(minimum: float):
    """A synthetic grid test whose loss is ``1 + log10(lr / minimum)²``: a parabola in log lr
    with its lowest point at ``minimum`` (closed form), and a record of what was evaluated."""
    asked = []

    def evaluate(lrs):
        asked.append(np.asarray(lrs))
        return 1.0 + np.log10(np.asarray(lrs) / minimum) ** 2

    return evaluate, asked


@settings(max_examples=200, deadline=None)
@given(
    lo=st.floats(-8, 0),
    decades=st.floats(0.5, 6),
    n=st.integers(2, 30),
    where=st.floats(-4, 10),
)
def test_grid_edge_flag_exactly_when_the_minimum_is_at_an_edge(lo, decades, n, where):
    """Without extension, the parabola's lowest grid point is the grid point nearest its
    minimum m in log lr (closed form), so the minimum is at the lower edge exactly when
    log10 m < lo + step/2 and at the upper edge exactly when log10 m > hi − step/2."""
    hi = lo + decades
    step = decades / (n - 1)
    log_m = lo + where * decades / 6  # from 4 grids' widths below the grid to 1 above it
    assume(abs(log_m - (lo + step / 2)) > 1e-6 and abs(log_m - (hi - step / 2)) > 1e-6)
    evaluate, _ = _bowl_in_log_lr(10.0**log_m)
    curve = lrfind.grid_curve(evaluate, np.logspace(lo, hi, n), extend=0)
    want = "lower" if log_m < lo + step / 2 else "upper" if log_m > hi - step / 2 else None
    assert curve.edge == want
    assert curve.span == pytest.approx((10.0**lo, 10.0**hi))
    if want == "upper":
        assert "upper edge" in lrfind.edge_note(curve)
    elif want is None:
        assert lrfind.edge_note(curve) is None


@pytest.mark.parametrize("minimum", [0.3, 2.0, 9.0])
def test_grid_extended_upward_until_the_loss_rises(minimum):
    """A grid 1e-5 … 1e-1 (half a decade apart) below the parabola's minimum m: extended by
    decades at the same spacing until the top is RISE × the minimum (closed form: the top
    lies at least sqrt(RISE − 1) decades above the lowest grid point); the lowest point is
    then the grid point nearest m, inside the grid, and no edge is flagged."""
    evaluate, asked = _bowl_in_log_lr(minimum)
    curve = lrfind.grid_curve(evaluate, np.logspace(-5, -1, 9), extend=3)
    best = curve.lrs[np.argmin(curve.losses)]
    assert abs(np.log10(best / minimum)) <= 0.25 + 1e-9  # half the spacing
    assert curve.edge is None
    top = curve.span[1]
    assert np.log10(top / best) >= np.sqrt(lrfind.RISE - 1) - 1e-9
    assert np.log10(top / best) < np.sqrt(lrfind.RISE - 1) + 1.0  # not a decade further
    assert curve.suggestions["minimum/10"] == pytest.approx(best / 10)
    assert all(len(a) == 2 for a in asked[1:])  # a decade per pass, at the grid's spacing
    np.testing.assert_allclose(np.diff(np.log10(np.concatenate(asked))), 0.5)  # one grid


def test_grid_extension_stops_at_its_limit_and_says_so():
    """A minimum beyond the extension (m = 1e4, grid 1e-5 … 1e-1, 3 decades more): the
    grid ends at 1e2 with its minimum at its top, flagged, and the note says how to widen."""
    evaluate, _ = _bowl_in_log_lr(1e4)
    curve = lrfind.grid_curve(evaluate, np.logspace(-5, -1, 9), extend=3)
    assert curve.edge == "upper"
    assert curve.span[1] == pytest.approx(1e2)
    note = lrfind.edge_note(curve, "grid test", upper="--set end_lr=")
    assert note == (
        "grid test: minimum at the upper edge of the grid 1e-05…1e+02, so its suggestions "
        "are bounds, not estimates; extend it with --set end_lr=1e+03"
    )


def test_grid_extended_downward_when_the_minimum_is_at_the_bottom():
    evaluate, _ = _bowl_in_log_lr(3e-4)
    curve = lrfind.grid_curve(evaluate, np.logspace(-2, 1, 7), extend=3)
    best = curve.lrs[np.argmin(curve.losses)]
    assert curve.edge is None and abs(np.log10(best / 3e-4)) <= 0.25 + 1e-9
    assert curve.span[0] < 3e-4
    # every rate of the grid diverges (inf above 1e-3): extended downward all the same
    diverging = lambda lrs: np.where(np.asarray(lrs) > 1e-3, np.inf, evaluate(lrs))  # noqa: E731
    curve = lrfind.grid_curve(diverging, np.logspace(-2, 1, 7), extend=3)
    best = curve.lrs[np.argmin(curve.losses)]
    assert curve.edge is None and abs(np.log10(best / 3e-4)) <= 0.25 + 1e-9
    flat = lrfind.grid_curve(diverging, np.logspace(-2, 1, 7), extend=0)
    assert flat.edge == "lower" and flat.stop == 0
    assert "lower edge of the grid 0.01…10" in lrfind.edge_note(flat)


def test_grid_test_extends_past_the_quadratics_minimum():
    """Through the engine: full-batch gradient descent on ½·λ·(w − 1)² (λ = 2, from w = 0)
    ends its 3rd epoch with a training loss ½·λ·(1 − ηλ)^4 (the loss before the last step),
    lowest at η = 1/λ = 0.5 (closed form). A grid 1e-4 … 1e-2 has its minimum at its top:
    without extension that is flagged; with it, the grid reaches past 0.5 and its lowest
    point is the grid point nearest 0.5 (a third of a decade apart)."""
    task = tasks.Quadratic(eigenvalues=(2.0,))
    problem = lrfind.Problem(task=task, optimizer="sgd", batch_size=1)
    flat, _ = lrfind.grid_test(problem, 1e-4, 1e-2, num_lrs=7, epochs=3, extend=0)
    assert flat.edge == "upper" and flat.lrs[-1] == pytest.approx(1e-2)
    curve, runs = lrfind.grid_test(problem, 1e-4, 1e-2, num_lrs=7, epochs=3)
    best = curve.lrs[np.argmin(curve.losses)]
    assert curve.edge is None
    assert abs(np.log10(best / 0.5)) <= 1 / 6 + 1e-9
    assert curve.span[1] > 0.5 and len(runs) == len(curve.raw)


def test_range_test_edges():
    """The range test's curve: a loss that falls all along the ramp (never stopping) has its
    minimum at the upper edge; one that rises from the start at the lower edge; a bowl in log lr
    (lowest at 1e-3) that blows up above 0.1 (the test stops) at neither."""
    lrs = lrfind.exponential_ramp(1e-6, 1.0, 100)
    x = np.log10(lrs)
    falling = lrfind.curve_from_steps(lrs, 3.0 - 0.3 * (x + 6))
    assert falling.stop == 100 and falling.edge == "upper"
    assert "upper edge of the ramp 1e-06…1" in lrfind.edge_note(falling, "range test")
    rising = lrfind.curve_from_steps(lrs, 1.0 + 0.3 * (x + 6))
    assert rising.edge == "lower"
    bowl = lrfind.curve_from_steps(lrs, 1.0 + (x + 3) ** 2 + np.where(x > -1, 1e3, 0.0))
    assert bowl.stop < 100 and bowl.edge is None and lrfind.edge_note(bowl) is None


@pytest.mark.slow
def test_blobs_suggestion_within_a_decade_of_the_sweep_best():
    import experiments

    sweep = experiments.load("blobs_lr").get_config()
    runs = runner.run(sweep).runs
    best = runs.groupby("lr")["final_test_acc"].mean().idxmax()
    curve = lrfind.range_test(lrfind.Problem(dataset="blobs", optimizer="sgd"))
    assert abs(np.log10(curve.suggestions["valley"] / best)) <= 1.0


@pytest.mark.slow
def test_cli_lr_find(tmp_path, capsys):
    out = tmp_path / "lf"
    code = cli.main(["lr-find", "--dataset", "iris", "--model", "16", "--optimizer", "momentum",
                     "--set", "momentum=0.9", "--set", "num_lrs=8", "--set", "epochs=2", "--out", str(out), "--quiet"])  # fmt: skip
    assert code == 0
    line = capsys.readouterr().out.strip()
    assert "\n" not in line and line.startswith("lr-find iris mlp(16)-relu momentum: use lr ≈")
    for name in ("range_test.csv", "grid_test.csv", "suggestions.csv", "lr_find.png", "meta.json"):
        assert (out / name).is_file()


@pytest.mark.slow
def test_cli_lr_find_says_when_the_minimum_is_at_an_edge(tmp_path, capsys):
    # Two epochs of momentum on iris: the loss still falls from 1e-5 to 1e-3, so a grid that
    # stops at 1e-3 and may not extend has its minimum at its upper edge.
    out = tmp_path / "lf"
    code = cli.main(["lr-find", "--dataset", "iris", "--model", "16", "--optimizer", "momentum",
                     "--set", "start_lr=1e-5", "--set", "end_lr=1e-3", "--set", "num_lrs=5",
                     "--set", "epochs=2", "--set", "extend=0", "--out", str(out), "--quiet"])  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    assert "grid test: minimum at the upper edge" in err and "--set end_lr=" in err
    table = pd.read_csv(out / "suggestions.csv")
    assert set(table.loc[table["finder"] == "grid", "min_at_edge"]) == {"upper"}


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--dataset", "mnist"], "dataset"),
        (["--optimizer", "adamz"], "optimizer"),
        (["--set", "momentum=0.5"], "momentum"),
        (["--set", "start_lr=abc"], "start_lr"),
        (["--model", "0"], "hidden"),
        (["--set", "num_steps=1"], "num_steps"),
        (["--set", "extend=-1"], "extend"),
    ],  # fmt: skip
)
def test_cli_lr_find_bad_input(argv, field, tmp_path, capsys):
    assert cli.main(["lr-find", *argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and field in err
    assert not (tmp_path / "x").exists()
