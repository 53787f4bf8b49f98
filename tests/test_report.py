"""report: the figures and tables shared by the experiments, checked against pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lrbench import report


def _runs() -> pd.DataFrame:
    """Two optimizers x two schedules x three lrs x three seeds, with random scores."""
    rng = np.random.default_rng(0)
    rows = [
        {"run_id": f"{o}-{s}-{lr}-{seed}", "optimizer": o, "schedule": s, "lr": lr, "seed": seed,
         "acc": rng.uniform(), "loss": rng.uniform(0.1, 2)}
        for o in ("sgd", "adam") for s in ("constant", "step") for lr in (1.0, 0.1, 0.01)
        for seed in range(3)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def _curves(runs: pd.DataFrame, epochs: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        [
            {"run_id": r, "epoch": e, "train_loss": rng.uniform(0.1, 1), "lr": 0.5}
            for r in runs["run_id"]
            for e in range(epochs, 0, -1)
        ]  # fmt: skip
    )


def test_lr_figure_draws_the_seed_mean_per_line_and_panel(tmp_path):
    runs = _runs()
    fig = report.lr_figure(runs, tmp_path / "f.png", ["acc", "loss"], "optimizer", "schedule",
                           logy=("loss",))  # fmt: skip
    assert (tmp_path / "f.png").stat().st_size > 5_000
    axes = [ax for ax in fig.axes if ax.lines]
    assert [ax.get_title() for ax in axes] == ["constant", "constant", "step", "step"]
    assert [ax.get_yscale() for ax in axes] == ["linear", "log"] * 2
    want = runs.groupby(["schedule", "optimizer", "lr"])[["acc", "loss"]].mean()
    for ax, (metric, schedule) in zip(axes, [(m, s) for s in ("constant", "step")
                                             for m in ("acc", "loss")], strict=True):  # fmt: skip
        words = {"acc": "accuracy"}.get(metric, metric)  # the axis says the metric in words
        assert ax.get_xscale() == "log" and ax.get_ylabel() == words
        for drawn in ax.lines:
            expect = want.loc[(schedule, drawn.get_label()), metric]
            np.testing.assert_allclose(drawn.get_ydata(), expect.to_numpy())
            np.testing.assert_allclose(drawn.get_xdata(), expect.index.to_numpy())
        assert {d.get_label() for d in ax.lines} == {"sgd", "adam"}


def test_curve_figure_draws_the_mean_curve_of_each_group(tmp_path):
    runs = _runs()
    curves = _curves(runs)
    fig = report.curve_figure(runs, curves, tmp_path / "c.png", ["train_loss", "lr"],
                              line="schedule", logy=("train_loss",))  # fmt: skip
    loss, lr = (ax for ax in fig.axes if ax.lines)
    assert loss.get_yscale() == "log" and lr.get_yscale() == "linear"
    merged = curves.merge(runs[["run_id", "schedule"]], on="run_id")
    want = merged.groupby(["schedule", "epoch"])["train_loss"].mean()
    for drawn in loss.lines:
        np.testing.assert_allclose(drawn.get_xdata(), [1, 2, 3, 4])
        np.testing.assert_allclose(drawn.get_ydata(), want.loc[drawn.get_label()].to_numpy())
    assert [d.get_label() for d in loss.lines] == ["constant", "step"]


def test_curves_figure_has_a_panel_per_axis_combination_and_a_line_per_lr(tmp_path):
    runs = _runs()
    runs.insert(runs.columns.get_loc("seed"), "width", 8)  # an axis that does not vary
    fig = report.curve_figure(runs, _curves(runs), tmp_path / "c.png", "train_loss",
                              panel=report.axis_columns(runs))  # fmt: skip
    titles = [ax.get_title() for ax in fig.axes if ax.lines]
    assert titles == ["sgd", "adam"]  # the raw schedule column is not an axis
    assert [d.get_label() for d in fig.axes[0].lines] == ["lr=1", "lr=0.1", "lr=0.01"]
    report.curves_figure(runs, _curves(runs), tmp_path / "d.png", "train_loss", "log")
    assert (tmp_path / "d.png").stat().st_size > 5_000


@pytest.mark.parametrize("digits", [2, 3])
def test_mean_std_table_cells_are_the_pandas_mean_and_std(digits):
    runs = _runs().query("schedule == 'constant'")
    table = report.mean_std_table(runs, "acc", digits)
    stats = runs.groupby(["lr", "optimizer"])["acc"].agg(["mean", "std"])
    assert list(table.index) == ["1", "0.1", "0.01"]
    for (lr, o), row in stats.iterrows():
        want = f"{row['mean']:.{digits}f} ± {row['std']:.{digits}f}"
        assert table.loc[f"{lr:g}", o] == want


def test_mean_std_table_splits_by_the_static_axes():
    """A ``tasks`` axis (each task its own model) and a ``dtypes`` axis are columns of the
    table, not merged into one: cells are the pandas groupby of lr, task and dtype."""
    runs = _runs().query("schedule == 'constant' and optimizer == 'sgd'")
    runs = pd.concat(
        [runs.assign(task=t, model=m, dataset="blobs", dtype=d, acc=runs["acc"] + k)
         for k, (t, m, d) in enumerate([("classifier", "mlp(6)-relu", "float32"),
                                        ("regressor", "mlp(6)-relu-mse", "float32"),
                                        ("classifier", "mlp(6)-relu", "float64")])],
        ignore_index=True,
    )  # fmt: skip
    runs = runs[["run_id", "task", "dataset", "model", "optimizer", "schedule", "lr", "dtype",
                 "seed", "acc"]]  # fmt: skip
    assert report.axis_columns(runs) == ["task", "dtype"]  # model: told by the task
    table = report.mean_std_table(runs, "acc")
    stats = runs.groupby(["lr", "task", "dtype"])["acc"].agg(["mean", "std"])
    assert len(table.columns) == 3 and table.columns.name == "task / dtype"
    for (lr, t, d), row in stats.iterrows():
        assert table.loc[f"{lr:g}", f"{t} / {d}"] == f"{row['mean']:.3f} ± {row['std']:.3f}"


def test_mean_std_table_of_a_committed_sweep_is_its_table():
    """A sweep without static axes: the table of ``results/blobs_lr`` as it was written."""
    from pathlib import Path

    from lrbench import results

    folder = Path(__file__).resolve().parents[1] / "results" / "blobs_lr"
    runs, _, _ = results.load(folder)
    table = report.mean_std_table(runs, "final_test_acc")
    assert report.to_markdown(table) == (folder / "table.md").read_text()


def test_mean_std_by_lr_has_a_row_per_group_and_a_column_per_lr():
    runs = _runs()
    table = report.mean_std_by_lr(runs, ["optimizer", "schedule"], "loss", 2)
    assert list(table.columns) == ["lr=1", "lr=0.1", "lr=0.01"]
    assert list(table.index) == ["sgd / constant", "sgd / step", "adam / constant", "adam / step"]
    stats = runs.groupby(["optimizer", "schedule", "lr"])["loss"].agg(["mean", "std"])
    for (o, s, lr), row in stats.iterrows():
        assert table.loc[f"{o} / {s}", f"lr={lr:g}"] == f"{row['mean']:.2f} ± {row['std']:.2f}"


def test_group_stats_and_their_cells_are_the_pandas_ones():
    runs = _runs()
    runs.loc[0, "loss"] = np.nan  # one value missing: n = 17 of 18
    stats = report.group_stats(runs, "optimizer", ["acc", "loss"])
    assert list(stats.index) == ["sgd", "adam"]  # the table's order
    want = runs.groupby("optimizer")[["acc", "loss"]].agg(["mean", "std", "count"])
    for o in ("sgd", "adam"):
        for c in ("acc", "loss"):
            assert stats.loc[o, f"{c}_mean"] == pytest.approx(want.loc[o, (c, "mean")])
            assert stats.loc[o, f"{c}_std"] == pytest.approx(want.loc[o, (c, "std")])
            assert stats.loc[o, f"{c}_n"] == want.loc[o, (c, "count")]
    cells = report.mean_std_columns(stats, ["acc", "loss"], {"loss": 1}, of=18)
    assert list(cells.columns) == ["acc", "loss"]
    sgd = want.loc["sgd"]
    assert cells.loc["sgd", "acc"] == f"{sgd[('acc', 'mean')]:.3f} ± {sgd[('acc', 'std')]:.3f}"
    assert cells.loc["sgd", "loss"].endswith("(n=17)") and "(n=" not in cells.loc["adam", "loss"]


def _hand_markdown(table: pd.DataFrame) -> str:
    """The Markdown writer report.py had before tabulate (the reference for its output)."""
    table = report.shown(table)
    head = [table.index.name or "", *map(str, table.columns)]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] + ["---:"] * len(table.columns)) + "|"]  # fmt: skip
    for idx, row in table.iterrows():
        lines.append("| " + " | ".join([str(idx), *map(str, row.tolist())]) + " |")
    return "\n".join(lines) + "\n"


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")),
                max_size=8).filter(lambda t: t == t.strip())  # fmt: skip
_cell = st.one_of(_text, st.floats(allow_infinity=False), st.integers(-999, 999), st.none(),
                  st.booleans())  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    cells=st.lists(st.lists(_cell, min_size=3, max_size=3), max_size=5),
    index=st.one_of(st.none(), _text),
    lrs=st.booleans(),
)
def test_markdown_is_the_table_as_it_was_written_by_hand(cells, index, lrs):
    """Byte for byte what the committed READMEs hold: no padding, the index first, "—"."""
    table = pd.DataFrame(cells, columns=["lr=1", "a b", "0.5 ± 0.1"], dtype=object)
    table.index = [10.0**-i if lrs else f"row {i}" for i in range(len(table))]
    table.index.name = index
    assert report.to_markdown(table) == _hand_markdown(table)


def test_latex_is_a_booktabs_table_with_its_caption_and_escapes():
    table = pd.DataFrame({"final_test_acc": ["0.5 ± 0.1", None], "50%": ["a & b", "x_y"]},
                         index=pd.Index(["1", "0.1"], name="lr"))  # fmt: skip
    text = report.to_latex(table, "Accuracy (mean ± std), 95% of runs")
    assert text.splitlines() == [
        r"\begin{table}[t]", r"\centering",
        r"\caption{Accuracy (mean $\pm$ std), 95\% of runs}", r"\begin{tabular}{lrr}",
        r"\toprule", r"lr & final\_test\_acc & 50\% \\", r"\midrule",
        r"1 & 0.5 $\pm$ 0.1 & a \& b \\", r"0.1 & -- & x\_y \\", r"\bottomrule",
        r"\end{tabular}", r"\end{table}",
    ]  # fmt: skip


@pytest.mark.parametrize("stat", ["mean_ci", "iqm_ci"])
def test_interval_cells_are_the_bootstrap_of_the_seeds(stat):
    from scipy import stats as sps

    runs = _runs().query("schedule == 'constant'").assign(status="converged")
    runs.loc[runs.index[0], "status"] = "diverged"  # sgd, lr 1, seed 0: left out, counted
    table = report.mean_std_table(runs, "acc", 3, stat=stat)

    def fn(v, axis=-1):
        return np.mean(v, axis) if stat == "mean_ci" else sps.trim_mean(v, 0.25, axis)

    for (lr, o), part in runs[runs["status"] != "diverged"].groupby(["lr", "optimizer"]):
        v = part["acc"].to_numpy()
        res = sps.bootstrap((v,), fn, vectorized=True, method="percentile",
                            rng=np.random.default_rng(0))  # fmt: skip
        lo, hi = res.confidence_interval
        want = f"{fn(v):.3f} [{lo:.3f}, {hi:.3f}]"
        if (lr, o) == (1.0, "sgd"):
            want += " (n=2) (1 diverged)"
        assert table.loc[f"{lr:g}", o] == want
    by_lr = report.mean_std_by_lr(runs, ["optimizer"], "acc", 2, stat=stat)
    assert by_lr.loc["adam", "lr=0.1"] == report.stat_cell(
        runs.query("optimizer == 'adam' and lr == 0.1")["acc"], stat, 2
    )


def test_the_default_cells_stay_mean_and_std_and_a_bad_stat_is_refused():
    from lrbench.errors import ConfigError

    runs = _runs().query("schedule == 'constant'")
    assert report.mean_std_table(runs, "acc").equals(report.mean_std_table(runs, "acc", 3,
                                                                           "mean_std"))  # fmt: skip
    with pytest.raises(ConfigError, match="allowed: mean_std, mean_ci, iqm_ci"):
        report.mean_std_table(runs, "acc", stat="median")


def test_profile_figure_draws_each_configs_steps(tmp_path):
    from lrbench import stats

    times = pd.DataFrame({"problem": ["p", "p", "q", "q"], "config": ["A", "B", "A", "B"],
                          "time": [1.0, 2.0, 3.0, 1.0]})  # fmt: skip
    prof = stats.performance_profile(stats.performance_ratios(times))
    fig = report.profile_figure(prof, tmp_path / "p.png")
    (ax,) = fig.axes
    assert [d.get_label() for d in ax.lines] == ["A", "B"]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.5, 0.5, 1.0, 1.0])  # tau 1, 2, 3, 4
    assert (tmp_path / "p.png").stat().st_size > 5_000


# ---------------------------------------------------------------------------------------------
# Paper-ready figures (issue 18): 300 dpi with a PDF twin, learning rates along a sequential
# colormap, a band over seeds, a title that says what was trained, twins in one panel


def _trained(lrs=(1.0, 0.1, 0.01, 1e-4), seeds=3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The README's Python sweep in miniature: sgd and momentum (0.5, 0.9), hand and optax,
    constant and step schedules, on digits; curves that differ per run."""
    rows = []
    for o, m in (("sgd", np.nan), ("momentum", 0.5), ("momentum", 0.9)):
        for impl in ("hand", "optax"):
            for s in ("constant", "step(gamma=0.5,step_size=10)"):
                for lr in lrs:
                    for seed in range(seeds):
                        rows.append({"run_id": f"{o}{m}-{impl}-{s}-{lr}-{seed}",
                                     "experiment": "x", "task": "classifier",
                                     "dataset": "digits", "model": "mlp(64)-relu",
                                     "optimizer": o, "impl": impl, "lr": lr, "schedule": s[:4],
                                     "schedule_label": s, "momentum": m, "seed": seed,
                                     "final_test_acc": 0.5})  # fmt: skip
    runs = pd.DataFrame(rows)
    rng = np.random.default_rng(2)
    curves = pd.DataFrame(
        [{"run_id": r, "epoch": e, "train_loss": rng.uniform(0.1, 1), "test_acc": rng.uniform()}
         for r in runs["run_id"] for e in range(1, 6)]
    )  # fmt: skip
    return runs, curves


def _png_dpi(path) -> tuple[float, tuple[int, int]]:
    from PIL import Image

    with Image.open(path) as im:
        return im.info["dpi"][0], im.size


def test_every_figure_is_a_300_dpi_png_with_a_pdf_twin(tmp_path):
    runs, curves = _trained()
    one = runs.query("optimizer == 'sgd' and impl == 'hand' and schedule == 'cons'")
    from lrbench import stats

    times = pd.DataFrame({"problem": ["p", "p"], "config": ["A", "B"], "time": [1.0, 2.0]})
    drawn = {
        "curves": lambda p: report.curves_figure(one, curves, p),
        "curve": lambda p: report.curve_figure(runs, curves, p, ["train_loss", "test_acc"],
                                               line="optimizer"),
        "lr": lambda p: report.lr_figure(runs, p, "final_test_acc", "optimizer", "schedule"),
        "profile": lambda p: report.profile_figure(
            stats.performance_profile(stats.performance_ratios(times)), p),
    }  # fmt: skip
    for name, draw in drawn.items():
        fig = draw(tmp_path / f"{name}.png")
        dpi, (width, height) = _png_dpi(tmp_path / f"{name}.png")
        assert dpi == pytest.approx(300, abs=0.5), name
        w_in, h_in = fig.get_size_inches()
        assert width >= 0.8 * 300 * w_in and height >= 0.8 * 300 * h_in, name  # not shrunk
        assert (tmp_path / f"{name}.pdf").read_bytes()[:5] == b"%PDF-", name
    # an explicit figure written by an experiment goes the same way
    plt = report.pyplot()
    fig, ax = plt.subplots()
    ax.plot([1, 2], [3, 4])
    report.save_figure(fig, tmp_path / "own.png")
    assert _png_dpi(tmp_path / "own.png")[0] == pytest.approx(300, abs=0.5)
    assert (tmp_path / "own.pdf").read_bytes()[:5] == b"%PDF-"
    # no creation date: a resumed run's folder is byte for byte an uninterrupted one's
    assert b"/CreationDate" not in (tmp_path / "own.pdf").read_bytes()


def _colormap_position(color) -> tuple[float, float]:
    """(position along report.LR_CMAP, distance from it) of an RGBA colour."""
    import matplotlib

    cmap = matplotlib.colormaps[report.LR_CMAP]
    where = np.linspace(0, 1, 1024)
    table = cmap(where)[:, :3]
    d = np.linalg.norm(table - np.asarray(color)[:3], axis=1)
    return float(where[d.argmin()]), float(d.min())


def test_learning_rates_are_coloured_along_a_sequential_colormap_with_a_colorbar(tmp_path):
    lrs = (1.0, 0.3, 0.1, 0.01, 1e-3, 1e-5, 1e-7)  # 1 and 0.1 shared a purple before
    runs, curves = _trained(lrs)
    one = runs.query("optimizer == 'sgd' and impl == 'hand' and schedule == 'cons'")
    fig = report.curves_figure(one, curves, tmp_path / "c.png")
    (ax,) = [a for a in fig.axes if a.lines]
    got = {float(line.get_label().removeprefix("lr=")): line.get_color() for line in ax.lines}
    assert sorted(got) == sorted(lrs)
    colors = [tuple(np.round(report.pyplot().matplotlib.colors.to_rgba(got[lr]), 6))
              for lr in sorted(lrs)]  # fmt: skip
    assert len(set(colors)) == len(lrs)  # every rate its own colour
    where = [_colormap_position(c) for c in colors]
    assert max(d for _, d in where) < 0.01  # each colour lies on the colormap
    positions = [w for w, _ in where]
    assert positions == sorted(positions) and len(set(positions)) == len(lrs)  # monotone in lr
    # log10 spacing: 0.3 sits between 1 and 0.1 in proportion to its log
    steps = np.diff(positions) / np.diff(np.log10(sorted(lrs)))
    np.testing.assert_allclose(steps, steps[0], rtol=0.05)
    assert any(a.get_ylabel() == "learning rate" for a in fig.axes)  # the colorbar
    assert ax.get_legend() is None and not fig.legends  # no legend over the curves


def test_each_curve_has_a_band_over_its_seeds(tmp_path):
    from matplotlib.collections import PolyCollection

    runs, curves = _trained()
    one = runs.query("optimizer == 'momentum' and momentum == 0.9 and impl == 'hand' and "
                     "schedule == 'cons'")  # fmt: skip
    fig = report.curves_figure(one, curves, tmp_path / "c.png", "train_loss", "log")
    (ax,) = [a for a in fig.axes if a.lines]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == len(ax.lines) == 4
    merged = curves.merge(one[["run_id", "lr"]], on="run_id")
    for line, band in zip(ax.lines, bands, strict=True):
        lr = float(line.get_label().removeprefix("lr="))
        mine = merged[merged["lr"] == lr].groupby("epoch")["train_loss"]
        np.testing.assert_allclose(line.get_ydata(), mine.mean().to_numpy(), rtol=1e-12)
        y = band.get_paths()[0].vertices[:, 1]
        assert y.min() == pytest.approx(mine.min().min()) and y.max() == pytest.approx(
            mine.max().max()
        )  # min–max over the seeds
    title = fig._suptitle.get_text()
    assert "min–max" in title and "3 seeds" in title


def test_the_readme_sweep_gets_one_panel_per_rule_twins_by_linestyle_and_whole_titles(tmp_path):
    runs, curves = _trained()
    fig = report.curves_figure(runs, curves, tmp_path / "c.png", "test_acc")
    axes = [a for a in fig.axes if a.lines]
    # sgd, momentum 0.5, momentum 0.9 x constant, step: 6 panels, not 12 (hand/optax twins)
    columns = ["optimizer", "schedule_label", "momentum"]
    assert report.axis_columns(runs) == ["optimizer", "impl", *columns[1:]]
    labels = [report.column_label(r, columns) for _, r in runs.drop_duplicates(columns).iterrows()]
    assert [a.get_title() for a in axes] == labels  # the group label, whole
    for ax in axes:
        assert {line.get_linestyle() for line in ax.lines} == {"-", "--"}  # hand, optax
        assert len(ax.lines) == 2 * 4
    grid = {(round(a.get_position().x0, 3), round(a.get_position().y0, 3)) for a in axes}
    assert len({x for x, _ in grid}) <= 4  # at most four columns
    assert all(a.get_shared_y_axes().joined(axes[0], a) for a in axes)  # shared axes
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # the figure is closed: draw it again, as it was saved
    canvas.draw()  # no title wider than its panel or running into a neighbour's
    render = canvas.get_renderer()
    boxes = [a.title.get_window_extent(render) for a in axes]
    for i, a in enumerate(axes):
        cell = a.get_window_extent(render)
        assert boxes[i].width <= cell.width * 1.15
        for j in range(i + 1, len(axes)):
            assert not boxes[i].overlaps(boxes[j])
    title = fig._suptitle.get_text()
    assert "digits" in title and "mlp(64)-relu" in title  # what was trained


# ---------------------------------------------------------------------------------------------
# Table cells (issue 18): one seed shows no spread, booleans read yes / no, missing is "—"


def test_one_seed_shows_the_mean_without_a_spread():
    runs = _runs().query("schedule == 'constant' and seed == 0")
    table = report.mean_std_table(runs, "acc")
    for _, row in runs.iterrows():
        assert table.loc[f"{row['lr']:g}", row["optimizer"]] == f"{row['acc']:.3f}"
    by_lr = report.mean_std_by_lr(runs, ["optimizer"], "acc", 2)
    one = runs.query("optimizer == 'adam' and lr == 0.1")["acc"].iloc[0]
    assert by_lr.loc["adam", "lr=0.1"] == f"{one:.2f}"
    assert report.stat_cell([0.25]) == "0.250"
    assert report.mean_std(0.9, float("nan")) == "0.900"  # no "± 0.000" for one value
    assert report.mean_std(0.9, 0.0, n=1, of=3) == "0.900 (n=1)"
    assert report.mean_std(0.9, 0.0, n=3, of=3) == "0.900 ± 0.000"  # seeds that agree


def test_booleans_read_yes_or_no_and_missing_cells_a_dash_in_every_table():
    table = pd.DataFrame(
        {"held": [True, False, np.bool_(True)], "n": [1, 0, 2], "x": [0.5, np.nan, None]},
        index=pd.Index(["a", "b", "c"], name="claim"),
    )  # fmt: skip
    assert report.to_markdown(table).splitlines()[2:] == [
        "| a | yes | 1 | 0.5 |", "| b | no | 0 | — |", "| c | yes | 2 | — |",
    ]  # fmt: skip
    text = report.to_latex(table)
    assert r"a & yes & 1 & 0.5 \\" in text and r"b & no & 0 & -- \\" in text
    assert "True" not in text and "False" not in text


def test_the_figures_moved_from_the_experiments_draw_their_data(tmp_path):
    """iterates_figure (error_bowl), settings_figure (blobs_dynamics) and divergence_figure
    (kdnuggets_perceptron): 300 dpi with a PDF twin, and the numbers they were given."""
    from matplotlib.collections import PolyCollection

    fig = report.iterates_figure(tmp_path / "i.png", lambda w: (w - 2.0) ** 2,
                                 [("a", [0.0, 1.0, 1.5]), ("b", [3.0, 1.0])], -1.0, 2.0)  # fmt: skip
    a, b = (ax for ax in fig.axes if ax.lines)
    assert [a.get_title(), b.get_title()] == ["a", "b"]
    np.testing.assert_allclose(a.lines[1].get_xdata(), [-1.0, 0.0, 1.0, 1.5])  # start, iterates
    np.testing.assert_allclose(a.lines[1].get_ydata(), [9.0, 4.0, 1.0, 0.25])
    runs, curves = _trained()
    runs = runs.query("impl == 'hand' and schedule == 'cons'").assign(
        grid=lambda f: np.where(f["optimizer"] == "sgd", "lr", "momentum"),
        setting=lambda f: np.where(f["optimizer"] == "sgd", f["lr"], f["momentum"]),
    )
    fig = report.settings_figure(runs, curves, tmp_path / "s.png", "test_acc", "grid", "setting",
                                 traces="momentum", traces_metric="train_loss")  # fmt: skip
    grid_lr = fig.axes[0]
    assert [t.get_text() for t in grid_lr.get_legend().get_texts()] == ["1", "0.1", "0.01",
                                                                       "0.0001"]  # fmt: skip
    want = curves[curves["run_id"].isin(runs.query("grid == 'lr' and lr == 0.1")["run_id"])]
    np.testing.assert_allclose(grid_lr.lines[1].get_ydata(),
                               want.groupby("epoch")["test_acc"].mean().to_numpy())  # fmt: skip
    assert sum(isinstance(c, PolyCollection) for c in grid_lr.collections) == 4
    assert fig.axes[2].get_yscale() == "log"  # the traces panel
    sweep = pd.DataFrame({"rule": ["x"] * 3, "lr": [1.0, 0.1, 0.01], "mae": [5.0, 2.0, 1.0],
                          "diverged": [True, False, False]})  # fmt: skip
    fig = report.divergence_figure(tmp_path / "d.png", {0.1: [1, 2, 3], 0.01: [1, 1, 1]},
                                   sweep, "mae", "rule")  # fmt: skip
    a, b = fig.axes[:2]
    assert [line.get_label() for line in a.lines] == ["lr=0.1", "lr=0.01"]
    np.testing.assert_allclose(b.lines[0].get_ydata(), [1.0, 2.0])  # the stable runs
    np.testing.assert_allclose(b.lines[1].get_ydata(), [1e3])  # the diverged one, at the top
    for name in ("i", "s", "d"):
        assert _png_dpi(tmp_path / f"{name}.png")[0] == pytest.approx(300, abs=0.5)
        assert (tmp_path / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"


def test_formatted_applies_each_columns_spec_and_leaves_the_rest():
    table = pd.DataFrame({"lr": [0.012345, 3.0], "off": [0.25, -1.04], "name": ["a", "b"]})
    got = report.formatted(table, {"lr": ".2g", "off": "+.1f"})
    assert got["lr"].tolist() == ["0.012", "3"]
    assert got["off"].tolist() == ["+0.2", "-1.0"]  # format(), not rounding half up
    assert got["name"].tolist() == ["a", "b"] and table["lr"].iloc[0] == 0.012345  # a copy
