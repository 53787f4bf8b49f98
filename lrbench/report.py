"""Paper-style tables (Markdown, LaTeX booktabs, CSV) and figures (PNG) from a ``runs`` table.

Markdown goes through ``DataFrame.to_markdown`` (tabulate) and LaTeX through
``Styler.to_latex``; a cell that aggregates seeds shows ``mean ± std`` or, with
``stat="mean_ci"`` / ``"iqm_ci"``, the mean / IQM with its 95% bootstrap interval
(:mod:`lrbench.stats`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from lrbench import results


def sig(v, digits: int = 4):
    """A finite float to ``digits`` significant digits (still a float); anything else as is."""
    return float(f"{v:.{digits}g}") if isinstance(v, float) and np.isfinite(v) else v


def rounded(table: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """Every finite float cell to ``digits`` significant digits (for tables people read; they
    stay numeric, so ``lrbench check`` reads them back)."""
    return table.map(lambda v: sig(v, digits))


def mean_std(mean: float, std: float, digits: int = 3, n: int | None = None, of: int = 0) -> str:
    """``0.951 ± 0.004``: a table cell; "—" for a missing mean, a missing std read as 0
    (one seed), and ``(n=k)`` when only ``n`` of the ``of`` runs it summarises count."""
    if not math.isfinite(mean):
        return "—"
    text = f"{mean:.{digits}f} ± {0.0 if not math.isfinite(std) else std:.{digits}f}"
    return text if n is None or n == of else f"{text} (n={n})"


# What a cell that aggregates seeds shows: ``mean ± std`` (the default), or the mean or the
# IQM with its 95% bootstrap interval (lrbench.stats), ``0.951 [0.945, 0.957]``.
CELL_STATS = ("mean_std", "mean_ci", "iqm_ci")


def _check_stat(stat: str) -> None:
    if stat not in CELL_STATS:
        from lrbench.errors import ConfigError

        raise ConfigError("stat", f"stat={stat!r}; allowed: {', '.join(CELL_STATS)}")


def interval(value: float, low: float, high: float, digits: int = 3) -> str:
    """``0.951 [0.945, 0.957]``: a value with its interval; the value alone without one
    (fewer than two values), "—" for a missing value."""
    if not math.isfinite(value):
        return "—"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def stat_cell(values, stat: str = "mean_std", digits: int = 3, of: int | None = None) -> str:
    """One table cell of the finite ``values`` (the seeds of a group): ``mean ± std``, or the
    mean (``mean_ci``) or interquartile mean (``iqm_ci``) with its 95% bootstrap interval;
    ``(n=k)`` when only k of ``of`` values count."""
    _check_stat(stat)
    v = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").dropna()
    v = v[np.isfinite(v.astype(float))].astype(float)
    if not len(v):
        return "—"
    if stat == "mean_std":
        return mean_std(v.mean(), v.std(), digits, len(v), of if of is not None else len(v))
    from lrbench import stats

    got = (stats.mean_ci if stat == "mean_ci" else stats.iqm_ci)(v.to_numpy())
    text = interval(got.value, got.low, got.high, digits)
    return text if of is None or len(v) == of else f"{text} (n={len(v)})"


def _interval_cells(runs: pd.DataFrame, by: list[str], metric: str, stat: str, digits: int,
                    of: int) -> pd.Series:  # fmt: skip
    """:func:`stat_cell` per group of ``by`` (diverged runs left out, as ``results.aggregate``),
    in the order of ``results.aggregate``."""
    diverged = runs["status"].eq("diverged") if "status" in runs else pd.Series(False, runs.index)
    kept = runs[by].assign(_value=runs[metric].where(~diverged))
    grouped = kept.groupby(by, sort=False, dropna=False)["_value"]
    return grouped.apply(lambda v: stat_cell(v, stat, digits, of)).reset_index(drop=True)


def group_stats(frame: pd.DataFrame, by: str, columns) -> pd.DataFrame:
    """One row per value of column ``by`` (in the table's order): ``<column>_mean``,
    ``<column>_std`` (over rows, ddof 1) and ``<column>_n`` (its finite values) of each of
    ``columns``; a column that is not numeric counts as missing."""
    rows = {}
    for key, part in frame.groupby(by, sort=False):
        row = rows.setdefault(key, {})
        for c in columns:
            # Series.mean/std per group, not groupby's own: the same floats, bit for bit, as
            # the tables written before this function existed
            v = pd.to_numeric(part[c], errors="coerce")
            row.update({f"{c}_mean": v.mean(), f"{c}_std": v.std(), f"{c}_n": int(v.count())})
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(by)


def mean_std_columns(stats: pd.DataFrame, columns, digits: dict[str, int], of: int) -> pd.DataFrame:
    """The ``mean ± std`` cells of a :func:`group_stats` table, one column per name of
    ``columns`` (underscores as spaces); ``digits`` per column (3 when not given), ``(n=k)``
    where fewer than ``of`` values count."""
    return pd.DataFrame(
        {
            c.replace("_", " "): [
                mean_std(r[f"{c}_mean"], r[f"{c}_std"], digits.get(c, 3), int(r[f"{c}_n"]), of)
                for _, r in stats.iterrows()
            ]
            for c in columns
        },
        index=stats.index,
    )


def shown(table: pd.DataFrame) -> pd.DataFrame:
    """Missing cells as "—" (Markdown and LaTeX; the CSV keeps them empty)."""
    return table.astype(object).where(table.notna(), "—")


# Configuration columns before ``optimizer`` that a table splits by when they vary (a
# ``tasks`` axis, a study's grids of several data sets or models).
TASK_COLUMNS = ("task", "dataset", "model")


def axis_columns(runs: pd.DataFrame) -> list[str]:
    """The configuration columns (``task``, ``dataset``, ``model``, and those between
    ``optimizer`` and ``seed``, static axes included) that take several values, except ``lr``,
    the rows of every table, and the raw schedule columns its label summarises; ``dataset``
    and ``model`` only where the other such columns do not already tell them (a ``tasks``
    or ``hiddens`` axis names its model)."""
    cols = list(runs.columns)
    candidates = [c for c in TASK_COLUMNS if c in cols]
    candidates += cols[cols.index("optimizer") : cols.index("seed")]
    skip = {"lr", "schedule", "unit"} | set(_schedule_param_columns(runs))
    axes = [c for c in candidates if c not in skip and runs[c].nunique(dropna=False) > 1]
    for derived in ("model", "dataset"):
        others = [c for c in axes if c != derived]
        if derived in axes and others:
            per_group = runs.groupby(others, sort=False, dropna=False)[derived]
            if (per_group.nunique(dropna=False) == 1).all():
                axes.remove(derived)
    return axes


def _schedule_param_columns(runs: pd.DataFrame) -> list[str]:
    from lrbench import schedules

    return [c for c in schedules.all_param_names() if c in runs]


def column_label(row, axes: list[str]) -> str:
    """``momentum / hand / momentum=0.9``: the axis values of one table column (NaN skipped;
    numeric hyperparameters are shown with their name)."""
    parts = []
    for axis in axes:
        value = row[axis]
        if isinstance(value, str):
            parts.append(value)
        elif value is not None and not pd.isna(value):
            parts.append(f"{axis}={value:g}")
    return " / ".join(parts)


def _fmt_lr(lr: float) -> str:
    return f"{lr:g}"


def mean_std_table(
    runs: pd.DataFrame, metric: str = "final_test_acc", digits: int = 3, stat: str = "mean_std"
) -> pd.DataFrame:
    """Rows: learning rates (high to low); columns: every other axis that varies; cells
    ``mean ± std`` over seeds, or with ``stat`` ``mean_ci`` / ``iqm_ci`` the mean / IQM with
    its 95% bootstrap interval (:func:`stat_cell`) (``n=k`` noted when a cell lost runs to NaN
    or divergence; diverged runs are left out and counted: ``(2 diverged)``, or ``diverged
    (5)`` when all were)."""
    _check_stat(stat)
    axes = axis_columns(runs)
    agg = results.aggregate(runs, ["lr", *axes], metric)
    n_seeds = runs["seed"].nunique()
    if stat != "mean_std":
        agg["text"] = _interval_cells(runs, ["lr", *axes], metric, stat, digits, n_seeds)

    def cell(row) -> str:
        n, diverged = int(row["n"]), int(row["diverged"])
        if stat == "mean_std":
            text = mean_std(row["mean"] if n else math.nan, row["std"], digits, n, n_seeds)
        else:
            text = row["text"]
        if diverged:  # left out of the mean (results.aggregate)
            return f"{text} ({diverged} diverged)" if n else f"diverged ({diverged})"
        return text

    agg["cell"] = agg.apply(cell, axis=1)
    if axes:
        agg["column"] = [column_label(row, axes) for _, row in agg.iterrows()]
        table = agg.pivot(index="lr", columns="column", values="cell")
        table = table[list(dict.fromkeys(agg["column"]))]  # keep the sweep's order
        table.columns.name = " / ".join(axes)
    else:
        table = agg.set_index("lr")[["cell"]].rename(columns={"cell": metric})
    table = table.sort_index(ascending=False)
    table.index = [_fmt_lr(lr) for lr in table.index]
    table.index.name = "lr"
    return table


def mean_std_by_lr(
    runs: pd.DataFrame,
    rows: list[str],
    metric: str = "final_test_acc",
    digits: int = 3,
    stat: str = "mean_std",
) -> pd.DataFrame:
    """Rows: the values of the columns ``rows`` (joined with " / ", in the table's order);
    columns: learning rate (high to low); cells: ``mean ± std`` of ``metric`` over seeds, or
    with ``stat`` the mean or IQM with its 95% bootstrap interval (:func:`stat_cell`)."""
    _check_stat(stat)
    agg = results.aggregate(runs, [*rows, "lr"], metric)
    agg["row"] = agg[rows].astype(str).agg(" / ".join, axis=1)
    if stat == "mean_std":
        pairs = zip(agg["mean"], agg["std"], strict=True)
        agg["cell"] = [mean_std(m, s, digits) for m, s in pairs]
    else:
        agg["cell"] = _interval_cells(runs, [*rows, "lr"], metric, stat, digits, None)
    table = agg.pivot(index="row", columns="lr", values="cell")
    table = table.loc[list(dict.fromkeys(agg["row"])), sorted(table.columns, reverse=True)]
    table.columns = [f"lr={lr:g}" for lr in table.columns]
    table.index.name = " / ".join(rows)
    return table


def _header_rule(widths, aligns) -> str:
    """``|---|---:|---:|``: the first column (the row labels) left, the rest right."""
    del aligns
    return "|" + "|".join(["---"] + ["---:"] * (len(widths) - 1)) + "|"


def _markdown_format():
    """GitHub's pipe table without padding: one ``| a | b |`` line per row (cells as written,
    so a table reads the same in a diff whatever its widest cell)."""
    from tabulate import DataRow, TableFormat

    row = DataRow("| ", " | ", " |")
    return TableFormat(
        lineabove=None, linebelowheader=_header_rule, linebetweenrows=None, linebelow=None,
        headerrow=row, datarow=row, padding=0, with_header_hide=None,
    )  # fmt: skip


def to_markdown(table: pd.DataFrame) -> str:
    """A GitHub Markdown table (``DataFrame.to_markdown``, i.e. tabulate); the index is the
    first column, headed by its name; missing cells as "—"."""
    table = shown(table)
    table.index = table.index.map(str)
    table.index.name = table.index.name or ""
    table.columns = table.columns.map(str)
    text = table.reset_index().to_markdown(
        index=False, tablefmt=_markdown_format(), disable_numparse=True, stralign=None
    )
    return text + "\n"


_LATEX_SYMBOLS = {"±": r"$\pm$", "—": "--"}


def _latex_symbols(text: str) -> str:
    for a, b in _LATEX_SYMBOLS.items():
        text = text.replace(a, b)
    return text


def _latex_text(text: str) -> str:
    """A caption as LaTeX text: its special characters escaped, then ± and — as LaTeX."""
    one = pd.DataFrame({"text": [text]}).style.format(escape="latex", formatter=_latex_symbols)
    return one.hide(axis="index").hide(axis="columns").to_string().rstrip("\n")


def to_latex(table: pd.DataFrame, caption: str = "") -> str:
    """A booktabs ``tabular`` in a ``table`` float (``Styler.to_latex`` with ``hrules``; needs
    ``\\usepackage{booktabs}``); cells and headers escaped, ± as ``$\\pm$``, missing
    cells as "--"."""
    table = shown(table)
    table.index = table.index.map(str)
    table.index.name = table.index.name or ""
    flat = table.reset_index()
    flat.columns = flat.columns.map(str)
    styler = (
        flat.astype(str).style.hide(axis="index")
        .format(escape="latex", formatter=_latex_symbols)
        .format_index(escape="latex", formatter=_latex_symbols, axis=1)
    )  # fmt: skip
    return styler.to_latex(
        column_format="l" + "r" * len(table.columns), position="t",
        position_float="centering", hrules=True, caption=_latex_text(caption) if caption else None,
    )  # fmt: skip


def write_table(folder: Path, stem: str, table: pd.DataFrame, caption: str = "") -> None:
    """``<stem>.md``, ``<stem>.tex`` and ``<stem>.csv``."""
    (folder / f"{stem}.md").write_text(to_markdown(table))
    (folder / f"{stem}.tex").write_text(to_latex(table, caption))
    table.to_csv(folder / f"{stem}.csv")


def pyplot():
    """matplotlib.pyplot, drawing to files only (the Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a server or in CI
    import matplotlib.pyplot as plt

    return plt


def _panels(n: int, ncols: int, size: tuple[float, float] = (4.2, 3.2)):
    """A figure of ``n`` panels, ``ncols`` a row at most; the unused ones hidden."""
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, grid = pyplot().subplots(
        nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False
    )
    for ax in list(grid.flat)[n:]:
        ax.axis("off")
    return fig, list(grid.flat)[:n]


def _save(fig, path: Path, title: str = ""):
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    pyplot().close(fig)
    return fig


def _groups(frame: pd.DataFrame, columns: str | list[str] | None):
    """``(label, rows)`` per value of ``columns`` in the table's order; one group when None."""
    if not columns:
        return [("", frame)]
    columns = [columns] if isinstance(columns, str) else list(columns)
    out = []
    for key, rows in frame.groupby(columns, sort=False, dropna=False):
        values = dict(zip(columns, key if isinstance(key, tuple) else (key,), strict=True))
        out.append((column_label(values, columns) or str(key), rows))
    return out


def _label(metric: str) -> str:
    return metric.replace("_", " ")


def lr_figure(
    runs: pd.DataFrame,
    path: Path,
    metrics: str | list[str],
    line: str | None = None,
    panel: str | list[str] | None = None,
    logy: tuple[str, ...] = (),
    ncols: int = 3,
    title: str = "",
):
    """Each of ``metrics`` against the learning rate (log axis), mean over seeds with a ± std
    band: one line per value of the runs' column ``line``, one panel per metric and value of
    ``panel``; the metrics in ``logy`` on a log axis. Returns the (closed) figure."""
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    panels = [(m, key, rows) for key, rows in _groups(runs, panel) for m in metrics]
    fig, axes = _panels(len(panels), ncols)
    for ax, (metric, key, rows) in zip(axes, panels, strict=True):
        for name, frame in _groups(rows, line):
            stats = frame.groupby("lr")[metric].agg(["mean", "std"]).dropna(subset=["mean"])
            (drawn,) = ax.plot(stats.index, stats["mean"], marker=".", label=name or None)
            std = stats["std"].fillna(0.0)  # one seed: no band
            low, high = stats["mean"] - std, stats["mean"] + std
            ax.fill_between(stats.index, low, high, color=drawn.get_color(), alpha=0.2)
        ax.set(xscale="log", yscale="log" if metric in logy else "linear", xlabel="learning rate",
               ylabel=_label(metric), title=key or _label(metric))  # fmt: skip
        ax.grid(alpha=0.3)
    if line:
        axes[0].legend(fontsize=7)
    return _save(fig, path, title)


def curve_figure(
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    path: Path,
    metrics: str | list[str],
    line: str | list[str] | None = "lr",
    panel: str | list[str] | None = None,
    logy: tuple[str, ...] = (),
    ncols: int = 3,
    title: str = "",
):
    """Each of ``metrics`` per epoch, the mean over the runs of a group (the seeds): one line
    per value of the runs' column(s) ``line``, one panel per metric and value of ``panel``;
    the metrics in ``logy`` on a log axis. Only the curves of ``runs`` are drawn. Returns the
    (closed) figure."""
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    by_run = curves.sort_values("epoch").groupby("run_id", sort=False)
    panels = [(m, key, rows) for key, rows in _groups(runs, panel) for m in metrics]
    fig, axes = _panels(len(panels), ncols)
    for ax, (metric, key, rows) in zip(axes, panels, strict=True):
        for name, frame in _groups(rows, line):
            mine = pd.concat([by_run.get_group(i) for i in frame["run_id"]])
            mean = mine.groupby("epoch")[metric].mean().dropna()  # no evaluation: NaN
            ax.plot(mean.index, mean.values, label=name or None)
        ax.set(yscale="log" if metric in logy else "linear", xlabel="epoch",
               ylabel=_label(metric), title=key or _label(metric))  # fmt: skip
        ax.grid(alpha=0.3)
    if line:
        axes[0].legend(fontsize=7)
    return _save(fig, path, title)


def curves_figure(
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    path: Path,
    metric: str = "test_acc",
    yscale: str = "linear",
) -> None:
    """One panel per combination of the varying axes; one line per learning rate (seed mean);
    ``yscale="log"`` for a loss."""
    runs = runs.sort_values("lr", ascending=False, kind="stable")
    logy = (metric,) if yscale == "log" else ()
    curve_figure(runs, curves, path, metric, "lr", axis_columns(runs) or None, logy)


def profile_figure(profile: pd.DataFrame, path: Path, config: str = "config", title: str = ""):
    """Performance profiles (:func:`lrbench.stats.performance_profile`): ρ_s(τ) as a step
    function of τ from 1 to the table's largest τ, one line per config (its area in the
    legend when the table has an ``area`` column). Returns the (closed) figure."""
    fig, (ax,) = _panels(1, 1, (7.5, 4.0))
    styles = ("-", "--", "-.", ":")
    for i, (name, frame) in enumerate(profile.groupby(config, sort=False)):
        label = str(name)
        if "area" in frame:
            label += f" (area {frame['area'].iloc[0]:.2f})"
        ax.step(frame["tau"], frame["rho"], where="post", label=label,
                linestyle=styles[i % len(styles)], linewidth=1.6)  # fmt: skip
    ax.set(xlabel="τ (time / best time)", ylabel="ρ(τ): share of problems",
           xlim=(1, profile["tau"].max()), ylim=(-0.02, 1.02))  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path, title)
