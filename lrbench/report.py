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
    """``0.951 ± 0.004``: a table cell; "—" for a missing mean, the mean alone for one value
    (``n`` 1 or a missing std: no spread to show), and ``(n=k)`` when only ``n`` of the
    ``of`` runs it summarises count."""
    if not math.isfinite(mean):
        return "—"
    if n == 1 or not math.isfinite(std):  # one value: no spread to show
        text = f"{mean:.{digits}f}"
    else:
        text = f"{mean:.{digits}f} ± {std:.{digits}f}"
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


def _cell_shown(v):
    """A boolean as ``yes`` / ``no`` (the claims' vocabulary), a missing value as "—"."""
    if isinstance(v, bool | np.bool_):
        return "yes" if v else "no"
    return "—" if pd.api.types.is_scalar(v) and not isinstance(v, str) and pd.isna(v) else v


def shown(table: pd.DataFrame) -> pd.DataFrame:
    """Missing cells as "—" and booleans as ``yes`` / ``no``, in one vocabulary for every
    table (Markdown and LaTeX; the CSV keeps them as they are)."""
    cells = np.vectorize(_cell_shown, otypes=[object])(table.to_numpy(object))
    return pd.DataFrame(cells, index=table.index, columns=table.columns, dtype=object)


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


# Every figure: a PNG at this resolution and a vector PDF beside it (:func:`save_figure`).
DPI = 300
# Learning rates are coloured along this sequential colormap by log10(lr), small to large
# over the part ``LR_COLORS`` of it (viridis' last tenth is too pale on white).
LR_CMAP = "viridis"
LR_COLORS = (0.0, 0.9)
MAX_COLUMNS = 4  # panels a row at most
PANEL = (3.6, 2.7)  # inches per panel
SINGLE_PANEL = (5.4, 3.6)  # a figure of one panel
TWIN_COLUMNS = ("impl", "schedule_impl")  # hand/optax twins: one panel, told by linestyle
_STYLES = ("-", "--", ":", "-.")
_BANDS = {"minmax": "min–max", "std": "± std", None: ""}


def save_figure(fig, path: Path, title: str = "", dpi: int = DPI):
    """Writes ``fig`` as ``path`` (a PNG at ``dpi``) and its vector twin ``path`` with the
    suffix ``.pdf``, then closes it; ``title`` as its suptitle. Returns the figure."""
    path = Path(path)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    if path.suffix.lower() != ".pdf":
        # no creation date: the same figure gives the same bytes (a resumed run's folder
        # equals an uninterrupted one's)
        fig.savefig(path.with_suffix(".pdf"), bbox_inches="tight", metadata={"CreationDate": None})
    pyplot().close(fig)
    return fig


def _panels(
    n: int,
    ncols: int,
    size: tuple[float, float] = PANEL,
    sharex: bool = False,
    sharey: bool = False,
):
    """A figure (constrained layout) of ``n`` panels, ``ncols`` (at most :data:`MAX_COLUMNS`)
    a row; the unused ones hidden, x tick labels kept on a panel with none below it."""
    ncols = max(1, min(ncols, n, MAX_COLUMNS))
    nrows = math.ceil(n / ncols)
    if n == 1 and size == PANEL:
        size = SINGLE_PANEL
    fig, grid = pyplot().subplots(
        nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False,
        sharex=sharex, sharey=sharey, layout="constrained",
    )  # fmt: skip
    flat = list(grid.flat)
    for ax in flat[n:]:
        ax.axis("off")
    for i, ax in enumerate(flat[:n]):
        if i + ncols >= n:  # the lowest panel of its column
            ax.xaxis.set_tick_params(labelbottom=True)
    return fig, flat[:n]


def _panel_size(titles) -> tuple[float, float]:
    """:data:`PANEL`, wider (up to 5 in) for long panel titles (9 pt: about 0.08 in a
    character)."""
    longest = max((len(t) for t in titles), default=0)
    return (min(5.0, max(PANEL[0], 0.08 * longest)), PANEL[1])


def _fit_titles(fig, axes, smallest: float = 5.0) -> None:
    """Shrinks each panel title that is wider than its panel until it fits (not below
    ``smallest`` points), so none is cut off or runs into a neighbour's."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if hasattr(fig.canvas, "get_renderer") else FigureCanvasAgg(fig)
    canvas.draw()
    render = canvas.get_renderer()
    for ax in axes:
        title, width = ax.title, ax.get_window_extent(render).width
        wide = title.get_window_extent(render).width
        if wide > width:
            title.set_fontsize(max(smallest, title.get_fontsize() * width / wide * 0.97))


def _comparable(axes) -> bool:
    """Whether panels can share a y axis without flattening one: each panel's data spans at
    least a quarter of their union (in decades on a log axis)."""
    spans = []
    for ax in axes:
        lo, hi = ax.dataLim.intervaly
        if ax.get_yscale() == "log":
            lo, hi = np.log10(max(lo, 1e-300)), np.log10(max(hi, 1e-300))
        spans.append((lo, hi))
    lo, hi = min(a for a, _ in spans), max(b for _, b in spans)
    return bool(np.isfinite([lo, hi]).all()) and all(b - a >= 0.25 * (hi - lo) for a, b in spans)


def _share_y(axes, metrics: list[str], ncols: int, sharey: bool | None) -> None:
    """The panels of each metric share one y axis (``sharey`` None: where
    :func:`_comparable`); a shared axis is labelled and ticked on the first column only
    when the figure has one metric."""
    ncols = max(1, min(ncols, len(axes), MAX_COLUMNS))
    for metric in dict.fromkeys(metrics):
        mine = [ax for ax, m in zip(axes, metrics, strict=True) if m == metric]
        if len(mine) < 2 or sharey is False or (sharey is None and not _comparable(mine)):
            continue
        for ax in mine[1:]:
            ax.sharey(mine[0])
        for ax in mine:
            ax.autoscale_view()
        if len(set(metrics)) == 1:
            for i, ax in enumerate(axes):
                if i % ncols:
                    ax.set_ylabel("")
                    ax.tick_params(labelleft=False)


def _inner_xlabels_off(axes, ncols: int) -> None:
    """Panels sharing one x axis: its label on the lowest panel of each column only."""
    ncols = max(1, min(ncols, len(axes), MAX_COLUMNS))
    for i, ax in enumerate(axes):
        if i + ncols < len(axes):
            ax.set_xlabel("")


def _save(fig, path: Path, title: str = ""):
    return save_figure(fig, path, title)


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


_WORDS = {"acc": "accuracy", "lr": "learning rate"}


def _label(metric: str) -> str:
    return " ".join(_WORDS.get(w, w) for w in metric.split("_"))


def _columns(value) -> list[str]:
    return [] if not value else [value] if isinstance(value, str) else list(value)


def lr_colors(lrs) -> dict[float, tuple]:
    """The colour of each learning rate: its log10 along :data:`LR_CMAP` (the part
    :data:`LR_COLORS`), the smallest rate at the start, the largest at the end."""
    import matplotlib

    cmap = matplotlib.colormaps[LR_CMAP]
    logs = np.log10(np.asarray(sorted({float(v) for v in lrs if v > 0}), float))
    lo, hi = LR_COLORS
    span = logs.max() - logs.min() if len(logs) else 0.0
    where = (logs - logs.min()) / span if span > 0 else np.full(len(logs), 0.5)
    return {float(10**v): cmap(lo + (hi - lo) * w) for v, w in zip(logs, where, strict=True)}


def _lr_color(colors: dict[float, tuple], lr: float):
    return colors[min(colors, key=lambda k: abs(math.log10(k) - math.log10(lr)))]


def _lr_colorbar(fig, axes, colors: dict[float, tuple]) -> None:
    """A discrete colorbar beside ``axes``: one block per learning rate, small at the bottom."""
    import matplotlib as mpl

    lrs = sorted(colors)
    logs = np.log10(lrs)
    mids = (logs[1:] + logs[:-1]) / 2
    step = (logs[-1] - logs[0]) / max(len(logs) - 1, 1)
    bounds = np.concatenate([[logs[0] - step / 2], mids, [logs[-1] + step / 2]])
    cmap = mpl.colors.ListedColormap([colors[v] for v in lrs])
    mappable = mpl.cm.ScalarMappable(mpl.colors.BoundaryNorm(bounds, len(lrs)), cmap)
    every = max(1, math.ceil(len(lrs) / 12))
    ticks = list(logs[::-1][::every][::-1])
    bar = fig.colorbar(mappable, ax=axes, ticks=ticks, shrink=min(1.0, 0.35 + 0.08 * len(lrs)),
                       aspect=25, pad=0.02)  # fmt: skip
    bar.ax.set_yticklabels([f"{10**t:.3g}" for t in ticks], fontsize=7)
    bar.ax.minorticks_off()
    bar.set_label("learning rate", fontsize=8)


def _legend_outside(fig, axes, title: str = "") -> None:
    """One legend for the figure, right of the panels: every labelled line of ``axes`` once."""
    handles = {}
    for ax in axes:
        for h, name in zip(*ax.get_legend_handles_labels(), strict=True):
            if name and not name.startswith("_"):
                handles.setdefault(name, h)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside right upper",
                   fontsize=7, title=title or None, title_fontsize=7, frameon=False)  # fmt: skip


def describe(runs: pd.DataFrame) -> str:
    """``blobs · mlp(50)-relu · sgd · schedule constant``: what the runs trained, from the columns
    that take one value (data set, model, optimizer, schedule)."""
    parts = []
    for c in ("dataset", "model", "optimizer", "schedule_label"):
        if c in runs and runs[c].nunique(dropna=False) == 1:
            value = str(runs[c].iloc[0])
            parts.append(f"schedule {value}" if c == "schedule_label" else value)
    return " · ".join(parts)


def _band_note(runs: pd.DataFrame, band: str | None, groups) -> str:
    """``mean over 5 seeds, band: min–max``, or "" when no group has two runs."""
    if band is None or not any(len(rows) > 1 for _, rows in groups):
        return ""
    seeds = runs["seed"].nunique() if "seed" in runs else max(len(r) for _, r in groups)
    return f"lines: mean over {seeds} seeds; band: {_BANDS[band]} over seeds"


def _title(runs: pd.DataFrame, title: str, note: str) -> str:
    return "\n".join(t for t in (title or describe(runs), note) if t)


def _band(ax, x, low, high, color) -> None:
    ax.fill_between(x, low, high, color=color, alpha=0.12, linewidth=0, zorder=1)


def _style_map(runs: pd.DataFrame, style: list[str]) -> dict[tuple, str]:
    """A linestyle per value of the columns ``style``, in the table's order."""
    if not style:
        return {}
    keys = dict.fromkeys(runs[style].itertuples(index=False, name=None))
    return {key: _STYLES[i % len(_STYLES)] for i, key in enumerate(keys)}


def _line_style(rows: pd.DataFrame, line: list[str], style: list[str], styles: dict, lr_cols,
                palette):  # fmt: skip
    """(colour, linestyle, label) of one group of runs: its learning rate's colour
    (:func:`lr_colors`) when lines are learning rates, else the next of matplotlib's cycle."""
    first = rows.iloc[0]
    color = _lr_color(lr_cols, first["lr"]) if "lr" in line and lr_cols else None
    if color is None:
        key = tuple(first[c] for c in line if c != "lr")
        color = palette.setdefault(key, f"C{len(palette) % 10}")
    linestyle = styles.get(tuple(first[c] for c in style), "-")
    label = column_label(first, line) if line else None
    return color, linestyle, label


def _style_legend(fig, runs: pd.DataFrame, style: list[str]) -> None:
    """Black lines naming each linestyle (a hand/optax twin)."""
    from matplotlib.lines import Line2D

    handles, names = [], []
    for key, linestyle in _style_map(runs, style).items():
        handles.append(Line2D([], [], color="0.2", linestyle=linestyle))
        names.append(" / ".join(map(str, key)))
    fig.legend(handles, names, loc="outside right lower", fontsize=8, frameon=False,
               title=" / ".join(style), title_fontsize=8, handlelength=2.5)  # fmt: skip


def _varying(runs: pd.DataFrame, columns) -> list[str]:
    return [c for c in _columns(columns) if c in runs and runs[c].nunique(dropna=False) > 1]


def lr_figure(
    runs: pd.DataFrame,
    path: Path,
    metrics: str | list[str],
    line: str | None = None,
    panel: str | list[str] | None = None,
    logy: tuple[str, ...] = (),
    ncols: int = 3,
    title: str = "",
    *,
    band: str | None = "std",
    style: str | list[str] | None = None,
    sharey: bool | None = None,
):
    """Each of ``metrics`` against the learning rate (log axis), mean over seeds with a band
    (``band``: ``"std"``, mean ± std, the default; ``"minmax"``; None): one line per value of
    the runs' column ``line`` (a legend right of the panels), one panel per metric and value
    of ``panel`` (panels of one metric share their y axis: ``sharey``, None where their ranges
    are comparable), linestyles per value of ``style``;
    the metrics in ``logy`` on a log axis. ``title`` (default: what was trained, from the
    runs) and a line saying what the band is. Written as a 300-dpi PNG and a PDF
    (:func:`save_figure`). Returns the (closed) figure."""
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    style = _varying(runs, style)
    panels = [(m, key, rows) for key, rows in _groups(runs, panel) for m in metrics]
    size = _panel_size(key for _, key, _ in panels)
    fig, axes = _panels(len(panels), ncols, size, sharex=True)
    palette: dict = {}
    styles = _style_map(runs, style)
    groups = []
    for ax, (metric, key, rows) in zip(axes, panels, strict=True):
        for _, frame in _groups(rows, [*_columns(line), *style] or None):
            groups += [(g, f) for g, f in frame.groupby("lr")]
            color, linestyle, _ = _line_style(frame, _columns(line), style, styles, {}, palette)
            stats = frame.groupby("lr")[metric].agg(["mean", "std", "min", "max"])
            stats = stats.dropna(subset=["mean"])
            label = column_label(frame.iloc[0], _columns(line)) if line else None
            ax.plot(stats.index, stats["mean"], marker=".", label=label or None, color=color,
                    linestyle=linestyle)  # fmt: skip
            if band == "std":
                std = stats["std"].fillna(0.0)  # one seed: no band
                _band(ax, stats.index, stats["mean"] - std, stats["mean"] + std, color)
            elif band == "minmax":
                _band(ax, stats.index, stats["min"], stats["max"], color)
        ax.set(xscale="log", yscale="log" if metric in logy else "linear", xlabel="learning rate",
               ylabel=_label(metric))  # fmt: skip
        ax.set_title(key or _label(metric), fontsize=9)
        ax.grid(alpha=0.3)
    _share_y(axes, [m for m, _, _ in panels], ncols, sharey)
    _inner_xlabels_off(axes, ncols)
    if line:
        _legend_outside(fig, axes, line if isinstance(line, str) else " / ".join(line))
    if style:
        _style_legend(fig, runs, style)
    _fit_titles(fig, axes)
    return save_figure(fig, path, _title(runs, title, _band_note(runs, band, groups)))


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
    *,
    band: str | None = "minmax",
    style: str | list[str] | None = None,
    sharey: bool | None = None,
):
    """Each of ``metrics`` per epoch, the mean over the runs of a group (the seeds) with a
    band (``band``: ``"minmax"``, the default, the seeds' min–max; ``"std"``, mean ± std;
    None): one line per value of the runs' column(s) ``line``, one panel per metric and value
    of ``panel`` (one x axis; panels of one metric share their y axis: ``sharey``, None where
    their ranges are comparable), a linestyle per value of
    ``style`` (hand/optax twins). Lines of learning rates are coloured along a sequential
    colormap by log10(lr) (:func:`lr_colors`) with a colorbar; other lines get a legend
    right of the panels. The metrics in ``logy`` on a log axis; ``title`` (default: what was
    trained, from the runs) and a line saying what the band is. Only the curves of ``runs``
    are drawn. Written as a 300-dpi PNG and a PDF (:func:`save_figure`). Returns the
    (closed) figure."""
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    line, style = _columns(line), _varying(runs, style)
    by_run = curves.sort_values("epoch").groupby("run_id", sort=False)
    panels = [(m, key, rows) for key, rows in _groups(runs, panel) for m in metrics]
    size = _panel_size(key for _, key, _ in panels)
    fig, axes = _panels(len(panels), ncols, size, sharex=True)
    lr_cols = lr_colors(runs["lr"]) if line == ["lr"] else {}  # lr with more: a palette
    palette: dict = {}
    styles = _style_map(runs, style)
    groups = []
    for ax, (metric, key, rows) in zip(axes, panels, strict=True):
        for _, frame in _groups(rows, [*line, *style] or None):
            groups.append(("", frame))
            color, linestyle, label = _line_style(frame, line, style, styles, lr_cols, palette)
            mine = pd.concat([by_run.get_group(i) for i in frame["run_id"]])
            per_epoch = mine.groupby("epoch")[metric]
            mean = per_epoch.mean().dropna()  # no evaluation: NaN
            ax.plot(mean.index, mean.values, label=label or None, color=color,
                    linestyle=linestyle, linewidth=1.3, zorder=2)  # fmt: skip
            if band and len(frame) > 1:
                if band == "minmax":
                    low, high = per_epoch.min(), per_epoch.max()
                else:
                    std = per_epoch.std().fillna(0.0)
                    low, high = per_epoch.mean() - std, per_epoch.mean() + std
                keep = low.notna() & high.notna()
                _band(ax, low.index[keep], low[keep], high[keep], color)
        ax.set(yscale="log" if metric in logy else "linear", xlabel="epoch",
               ylabel=_label(metric))  # fmt: skip
        ax.set_title(key or _label(metric), fontsize=9)
        ax.grid(alpha=0.3)
    _share_y(axes, [m for m, _, _ in panels], ncols, sharey)
    _inner_xlabels_off(axes, ncols)
    if len(lr_cols) > 1:
        _lr_colorbar(fig, axes, lr_cols)
    elif line:
        _legend_outside(fig, axes, " / ".join(line))
    if style:
        _style_legend(fig, runs, style)
    _fit_titles(fig, axes)
    return save_figure(fig, path, _title(runs, title, _band_note(runs, band, groups)))


def curves_figure(
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    path: Path,
    metric: str = "test_acc",
    yscale: str = "linear",
    *,
    title: str = "",
    band: str | None = "minmax",
):
    """One panel per combination of the varying axes, hand/optax twins (``impl``,
    ``schedule_impl``) in one panel by linestyle; one line per learning rate (seed mean,
    with the seeds' min–max band), coloured by log10(lr) with a colorbar; ``yscale="log"``
    for a loss. Returns the (closed) figure."""
    runs = runs.sort_values("lr", ascending=False, kind="stable")
    logy = (metric,) if yscale == "log" else ()
    axes = axis_columns(runs)
    panel = [c for c in axes if c not in TWIN_COLUMNS] or None
    twins = [c for c in axes if c in TWIN_COLUMNS]
    n = len(_groups(runs, panel))
    return curve_figure(runs, curves, path, metric, "lr", panel, logy, min(n, 3 if n <= 6 else
                        MAX_COLUMNS), title, band=band, style=twins)  # fmt: skip


def _value_label(value) -> str:
    """``0.001``, ``2``, ``adam``: one setting as a legend entry."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | float | np.number):
        return str(value)
    return f"{float(value):g}"


def _ordered_colors(values) -> dict:
    """A colour per value along :data:`LR_CMAP`: numbers by rank (smallest dark), anything
    else in the order given."""
    import matplotlib

    values = list(dict.fromkeys(values))
    if all(isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in values):
        values = sorted(values)
    cmap, (lo, hi) = matplotlib.colormaps[LR_CMAP], LR_COLORS
    where = np.linspace(lo, hi, len(values)) if len(values) > 1 else [(lo + hi) / 2]
    return {v: cmap(w) for v, w in zip(values, where, strict=True)}


def settings_figure(
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    path: Path,
    metric: str,
    panel: str,
    line: str,
    *,
    titles: dict | None = None,
    legend_titles: dict | None = None,
    reference: float | None = None,
    ylim: tuple[float, float] | None = None,
    band: str | None = "minmax",
    traces: object = None,
    traces_metric: str = "lr",
    traces_reference: float | None = None,
    traces_ylim: tuple[float, float] | None = None,
    traces_title: str = "",
    title: str = "",
    ncols: int = 3,
):
    """One-factor grids around a baseline, one panel each: per value of the runs' column
    ``panel`` (the grid), the seed mean of ``metric`` per epoch for each value of ``line``
    (the setting the grid varies; numbers coloured by rank along :data:`LR_CMAP`, small
    dark), with the seeds' ``band`` (``"minmax"``, ``"std"`` or None), a legend per panel
    (``legend_titles[grid]``, default the grid), ``titles[grid]`` (default the grid), a
    dotted line at ``reference`` and the y range ``ylim``. With ``traces`` (a value of
    ``panel``), one more panel: ``traces_metric`` of each of that grid's runs (thin) and its
    median per setting (bold) on a log axis, a dotted line at ``traces_reference``. Panels
    of ``metric`` share both axes. Written as a 300-dpi PNG and a PDF (:func:`save_figure`).
    Returns the (closed) figure."""
    titles, legend_titles = dict(titles or {}), dict(legend_titles or {})
    values = results.per_epoch(curves, metric)
    grids = list(dict.fromkeys(runs[panel]))
    n = len(grids) + (traces is not None)
    fig, axes = _panels(n, ncols, (4.0, 3.0), sharex=True)
    for ax, grid in zip(axes, grids, strict=False):
        rows = runs[runs[panel] == grid]
        colors = _ordered_colors(rows[line])
        for setting in dict.fromkeys(rows[line]):
            mine = values.loc[rows.loc[rows[line] == setting, "run_id"]]
            mean = mine.mean()
            ax.plot(mean.index, mean.to_numpy(), color=colors[setting], lw=1.2, zorder=2,
                    label=_value_label(setting))  # fmt: skip
            if band and len(mine) > 1:
                low, high = (mine.min(), mine.max()) if band == "minmax" else (
                    mean - mine.std(), mean + mine.std())  # fmt: skip
                _band(ax, mean.index, low.to_numpy(), high.to_numpy(), colors[setting])
        if reference is not None:
            ax.axhline(reference, color="gray", ls=":", lw=1)
        ax.set(xlabel="epoch", ylabel=_label(metric), ylim=ylim)
        ax.set_title(titles.get(grid, str(grid)), fontsize=9)
        ax.legend(title=legend_titles.get(grid, str(grid)), fontsize=6.5, title_fontsize=7,
                  loc="best", ncol=1 + (rows[line].nunique() > 5))  # fmt: skip
        ax.grid(alpha=0.3)
    for ax in axes[1 : len(grids)]:
        ax.sharey(axes[0])  # tick labels kept: the traces panel has its own y axis
    if traces is not None:
        ax = axes[-1]
        rows = runs[runs[panel] == traces]
        colors = _ordered_colors(rows[line])
        per_run = results.per_epoch(curves, traces_metric)
        for setting in dict.fromkeys(rows[line]):
            mine = per_run.loc[rows.loc[rows[line] == setting, "run_id"]]
            for _, trace in mine.iterrows():
                ax.plot(trace.index, trace.to_numpy(), color=colors[setting], lw=0.5, alpha=0.4)
            median = mine.median()
            ax.plot(median.index, median.to_numpy(), color=colors[setting], lw=2,
                    label=_value_label(setting))  # fmt: skip
        if traces_reference is not None:
            ax.axhline(traces_reference, color="gray", ls=":", lw=1)
        ax.set(xlabel="epoch", ylabel=_label(traces_metric), yscale="log", ylim=traces_ylim)
        ax.tick_params(labelleft=True)
        ax.set_title(traces_title or f"{traces}: {_label(traces_metric)}", fontsize=9)
        ax.legend(title=f"{legend_titles.get(traces, traces)} (median; thin: each run)",
                  fontsize=6.5, title_fontsize=7, loc="lower left")  # fmt: skip
        ax.grid(alpha=0.3)
    _inner_xlabels_off(axes, ncols)
    seeds = runs["seed"].nunique() if "seed" in runs else 0
    note = f"lines: mean over {seeds} seeds; band: {_BANDS[band]} over seeds" if band else ""
    return save_figure(fig, path, "\n".join(t for t in (title or describe(runs), note) if t))


def divergence_figure(
    path: Path,
    traces,
    sweep: pd.DataFrame,
    value: str,
    line: str,
    *,
    diverged: str = "diverged",
    trace_label: str = "w",
    value_label: str = "",
    limit: float = 1e4,
    ceiling: float = 1e3,
    mark_lr: float | None = None,
    trace_title: str = "",
    sweep_title: str = "",
    title: str = "",
):
    """Where training diverges, in two panels. (a) A quantity per iteration at a few learning
    rates (``traces``: ``{lr: values}``), one line per rate coloured by rank along
    :data:`LR_CMAP` (small rates dark), on a symlog axis cut at ±``limit`` (a trace leaves
    the frame where it explodes), iterations on a log axis. (b) ``value`` of ``sweep`` (one
    row per run: ``lr``, ``line``, ``value`` and the boolean column ``diverged``) against the
    learning rate, one line and marker per value of ``line``; diverged runs drawn as open
    red markers at ``ceiling``; a dashed line at ``mark_lr``. Written as a 300-dpi PNG and a
    PDF (:func:`save_figure`). Returns the (closed) figure."""
    fig, (a, b) = _panels(2, 2, (5.0, 3.6))
    colors = _ordered_colors(float(lr) for lr in traces)  # a few rates: evenly spaced by rank
    for lr, w in sorted(traces.items(), reverse=True):
        w = np.asarray(w, float)
        a.plot(np.arange(1, len(w) + 1), np.where(abs(w) <= limit, w, np.nan),
               color=colors[float(lr)], label=f"lr={lr:g}")  # fmt: skip
    a.set(xscale="log", yscale="symlog", ylim=(-limit, limit), xlabel="iteration",
          ylabel=trace_label)  # fmt: skip
    a.set_title(trace_title or f"{trace_label} per iteration", fontsize=9)
    a.legend(fontsize=7, loc="best")
    markers = ("o", "s", "^", "D", "v")
    for i, (name, frame) in enumerate(sweep.groupby(line, sort=False)):
        frame = frame.sort_values("lr")
        div = frame[diverged].to_numpy(bool)
        marker = markers[i % len(markers)]
        b.plot(frame["lr"][~div], frame[value][~div], marker + "-", label=str(name),
               color=f"C{i}")  # fmt: skip
        b.plot(frame["lr"][div], np.full(div.sum(), ceiling), marker, mfc="none", color="C3")
    if sweep[diverged].any():
        b.plot([], [], "o", mfc="none", color="C3", label=f"diverged (drawn at {ceiling:g})")
    if mark_lr is not None:
        b.axvline(mark_lr, color="k", lw=0.6, ls="--")
    b.set(xscale="log", yscale="log", xlabel="learning rate", ylabel=value_label or _label(value))
    b.set_title(sweep_title or f"{_label(value)} against the learning rate", fontsize=9)
    b.legend(fontsize=7, loc="best")
    for ax in (a, b):
        ax.grid(alpha=0.3)
    _fit_titles(fig, [a, b])
    return save_figure(fig, path, title)


def iterates_figure(
    path: Path,
    objective,
    panels,
    start: float,
    optimum: float | None = None,
    *,
    xlabel: str = "w",
    ylabel: str = "objective",
    optimum_label: str = "optimum",
    title: str = "",
    margin: float = 0.6,
    ncols: int = MAX_COLUMNS,
):
    """Gradient descent on a one-dimensional objective: per panel, the curve
    ``objective(w)`` (grey) and the iterates ``w_0 = start, w_1, …`` drawn on it, joined in
    order and coloured from dark (early) to light (late), the start (square) and ``optimum``
    (star, labelled ``optimum_label``), and the last iterate in words. ``panels``: ``(title, iterates)`` pairs (the
    iterates after ``start``). The w axis covers ``start`` and its mirror image about
    ``optimum`` (or the iterates' range), widened by ``margin``; iterates beyond it are drawn
    at its edge. Panels share both axes. Written as a 300-dpi PNG and a PDF
    (:func:`save_figure`). Returns the (closed) figure."""
    panels = [(name, np.asarray(w, float)) for name, w in panels]
    centre = optimum if optimum is not None else start
    lo, hi = sorted((start, 2 * centre - start))
    if optimum is None:
        every = np.concatenate([w[np.isfinite(w)] for _, w in panels] or [np.array([start])])
        lo, hi = min(lo, every.min()), max(hi, every.max())
    lo, hi = lo - margin, hi + margin
    grid = np.linspace(lo, hi, 400)
    fig, axes = _panels(len(panels), ncols, (3.6, 3.0), sharex=True, sharey=True)
    for ax, (name, w) in zip(axes, panels, strict=True):
        path_w = np.clip(np.concatenate([[start], w]), lo, hi)
        ax.plot(grid, objective(grid), color="0.6", lw=1.5, zorder=1)
        ax.plot(path_w, objective(path_w), color="C3", lw=0.7, alpha=0.6, zorder=2)
        ax.scatter(path_w, objective(path_w), c=np.arange(len(path_w)), s=16, zorder=3)
        ax.scatter([start], [objective(np.asarray(start))], marker="s", s=36, color="k",
                   zorder=4, label="start")  # fmt: skip
        text = f"after {len(w)} updates:\nw = {w[-1]:.3f}" if len(w) else "no update"
        if optimum is not None:
            ax.scatter([optimum], [objective(np.asarray(optimum))], marker="*", s=90,
                       color="C1", zorder=4, label=optimum_label)  # fmt: skip
            text += f" (optimum {optimum:.3f})" if len(w) else ""
        ax.text(0.03, 0.97, text, transform=ax.transAxes, va="top", fontsize=7)
        ax.set(xlabel=xlabel, ylabel=ylabel)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    _inner_xlabels_off(axes, ncols)
    for i, ax in enumerate(axes):
        if i % max(1, min(ncols, len(axes), MAX_COLUMNS)):
            ax.set_ylabel("")
    _legend_outside(fig, axes[:1])
    return save_figure(fig, path, title)


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


def formatted(table: pd.DataFrame, specs: dict[str, str]) -> pd.DataFrame:
    """A copy of ``table`` with each column of ``specs`` (``{column: format spec}``, e.g.
    ``".2g"``, ``"+.1f"``) as text, ``format(value, spec)``; other columns unchanged."""
    return table.assign(**{c: table[c].map(lambda v, s=s: format(v, s)) for c, s in specs.items()})
