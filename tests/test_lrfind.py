"""The learning-rate finders: suggestions read by hand, the divergence point of a quadratic,
and the blobs suggestion against the sweep's best."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import numpy as np
import pytest

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


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--dataset", "mnist"], "dataset"),
        (["--optimizer", "adamz"], "optimizer"),
        (["--set", "momentum=0.5"], "momentum"),
        (["--set", "start_lr=abc"], "start_lr"),
        (["--model", "0"], "hidden"),
        (["--set", "num_steps=1"], "num_steps"),
    ],  # fmt: skip
)
def test_cli_lr_find_bad_input(argv, field, tmp_path, capsys):
    assert cli.main(["lr-find", *argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and field in err
    assert not (tmp_path / "x").exists()
