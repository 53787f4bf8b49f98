"""Claims as data: an article's sentence, the number that tests it, and whether it held.

An experiment declares its claims as a tuple of :class:`Claim`; :func:`evaluate` measures
each on the experiment's tidy tables and returns the claims table (one row per claim)::

    claim | article | quote | quantity | value | low | high | comparison | threshold | held

``held`` speaks one vocabulary: ``yes``, ``no``, or ``not measured`` (the run lacks what the
claim needs, e.g. a learning rate the sweep was told to skip). ``low``/``high`` bound the
value where the measure knows how (over seeds, or ± 2 standard errors). A claim also says
which verdict this suite found (``expected``, ``yes`` unless it did not hold; ``expected_ci``
where the CI-sized variant finds another), and ``lrbench check`` compares the rerun's verdict
with it: the verdicts live here, once. A claim with ``whole_interval`` holds only when its
whole interval satisfies the comparison (a difference beyond noise, :func:`difference`).

:func:`readme` writes an experiment's README from one template: title, the article and what
it says, the setting read from the config, the claims table, the other tables, the figures,
and versions/device/wall time from ``meta.json``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from lrbench import report
from lrbench.errors import ConfigError
from lrbench.stats import equals

YES, NO, NOT_MEASURED = "yes", "no", "not measured"
VERDICTS = (YES, NO, NOT_MEASURED)
COMPARISONS = (">", ">=", "<", "<=", "between", "within")
COLUMNS = [
    "article", "quote", "quantity", "value", "low", "high", "comparison", "threshold",
    "held", "detail",
]  # fmt: skip

Tables = Mapping[str, pd.DataFrame]


class Measured(NamedTuple):
    """A measured quantity: its value, an interval where known, and words for the reader."""

    value: float
    low: float = math.nan
    high: float = math.nan
    detail: str = ""


def over_seeds(values, detail: str = "") -> Measured:
    """The mean of per-seed values with the seeds' range as its interval."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
        return Measured(math.nan, detail=detail)
    return Measured(float(v.mean()), float(v.min()), float(v.max()), detail)


def per_seed(runs: pd.DataFrame, lr: float, column: str) -> pd.Series:
    """``column`` of the runs at learning rate ``lr``, indexed by seed: two such series
    subtract seed by seed (a paired comparison, common random numbers)."""
    return runs[np.isclose(runs["lr"], lr)].set_index("seed")[column]


def rows(table: pd.DataFrame, column: str, values) -> pd.DataFrame:
    """The rows of ``table`` whose ``column`` equals each of ``values`` in turn (numbers to
    rtol 1e-9), stacked in that order; ``KeyError`` (the claim is not measured) when a value
    has no row, e.g. a grid changed with ``--set``."""
    parts = [table[equals(table[column], value)] for value in values]
    for value, part in zip(values, parts, strict=True):
        if part.empty:
            raise KeyError(f"{column} {value}")
    return pd.concat(parts)


def listing(values: pd.Series, fmt: str = ".3g", sep: str = ": ") -> str:
    """``key: value; key: value`` of a series, for a claim's detail (numeric keys as ``:g``)."""
    key = lambda k: k if isinstance(k, str) else f"{float(k):g}"  # noqa: E731
    return "; ".join(f"{key(k)}{sep}{v:{fmt}}" for k, v in values.items())


def extreme(
    values: pd.Series, pick: str = "max", fmt: str = ".3g", sep: str = ": ", words: str = ""
) -> Measured:
    """The largest (``pick="max"``) or smallest (``"min"``) of ``values``, every value in the
    detail (``words`` then :func:`listing`): a claim about the worst of several groups."""
    return Measured(float(getattr(values, pick)()), detail=words + listing(values, fmt, sep))


def difference(a, b, detail: str = "") -> Measured:
    """``mean(a) - mean(b)`` of two independent samples with ``± 2`` standard errors (Welch)
    as its interval; no interval when a side has fewer than two finite values."""
    a, b = (np.asarray(x, np.float64) for x in (a, b))
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if not (len(a) and len(b)):
        return Measured(math.nan, detail=detail)
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return Measured(diff, detail=detail)
    se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    return Measured(diff, diff - 2 * se, diff + 2 * se, detail)


class Arithmetic:
    """Measures that combine: ``a / b`` and ``a - b`` of two measures (or of a measure and a
    number) are a measure again (:class:`Combined`)."""

    def __truediv__(self, other) -> Combined:
        return Combined("/", self, other)

    def __sub__(self, other) -> Combined:
        return Combined("-", self, other)


@dataclasses.dataclass(frozen=True)
class Combined(Arithmetic):
    """``a op b`` (``op``: ``/`` or ``-``) of two measures or numbers, in float64 (a division
    by zero is ±inf, not an error); with ``detail`` the claims table shows both numbers."""

    op: str
    a: Any
    b: Any
    detail: bool = False

    def __call__(self, tables: Tables) -> Measured:
        x, y = (v if isinstance(v, int | float) else _measured(v(tables)).value
                for v in (self.a, self.b))  # fmt: skip
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.float64(x) / y if self.op == "/" else np.float64(x) - y
        return Measured(float(value), detail=f"{x:.3g} {self.op} {y:.3g}" if self.detail else "")


def ratio(a, b) -> Combined:
    """``a / b`` of two measures, both numbers in the detail: ``0.85 / 0.6``."""
    return Combined("/", a, b, detail=True)


@dataclasses.dataclass(frozen=True)
class Select(Arithmetic):
    """A column selection: ``aggregate`` of ``table[column]`` over the rows whose columns
    equal ``row`` (index levels count as columns); NaN when no row matches."""

    table: str
    column: str
    row: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    aggregate: str = "mean"

    def __call__(self, tables: Tables) -> float:
        if self.table not in tables:
            return math.nan
        frame = tables[self.table]
        frame = frame.reset_index() if frame.index.name or frame.index.names[0] else frame
        mask = pd.Series(True, index=frame.index)
        for column, value in self.row.items():
            if column not in frame:
                return math.nan
            mask &= equals(frame[column], value)
        values = pd.to_numeric(frame.loc[mask, self.column], errors="coerce")
        return float(getattr(values, self.aggregate)()) if len(values) else math.nan


@dataclasses.dataclass(frozen=True)
class Claim:
    """One sentence of an article and the comparison that tests it.

    ``held`` is ``yes`` when ``value comparison threshold`` is true:

    - ``>``, ``>=``, ``<``, ``<=``: against the number ``threshold``;
    - ``between``: ``threshold[0] <= value <= threshold[1]``;
    - ``within``: ``|value - threshold| <= tolerance``.

    With ``whole_interval`` the comparison must hold at both ends of the measured interval
    (``low``, ``high``), not only at the value: a difference "beyond noise". Such a claim
    without an interval (too few seeds) is not measured.

    Args:
      id: a short snake_case name, stable across runs (the row of the claims table).
      quote: what the article says, in its words where it has them.
      quantity: the measured number, in words.
      measure: ``tables -> float | Measured | None``; ``None`` or NaN means not measured.
      comparison: one of ``COMPARISONS``.
      threshold: a number, or ``(low, high)`` for ``between``.
      tolerance: the half-width for ``within``.
      article: the source; the experiment's ``ARTICLE`` when empty.
      expected: the verdict this suite found (``yes`` or ``no``), checked by ``lrbench check``.
      whole_interval: the comparison must hold for the whole interval, not only the value.
      expected_ci: the verdict of the experiment's CI-sized variant (``ci_config``), which
        ``lrbench check`` reruns, where it differs from ``expected``: fewer seeds widen an
        interval, shorter runs move a number. Empty: the same as ``expected``.
    """

    id: str
    quote: str
    quantity: str
    measure: Callable[[Tables], Any]
    comparison: str
    threshold: float | tuple[float, float]
    tolerance: float = 0.0
    article: str = ""
    expected: str = YES
    whole_interval: bool = False
    expected_ci: str = ""

    def __post_init__(self):
        if self.comparison not in COMPARISONS:
            raise ConfigError(
                "comparison",
                f"claim {self.id!r}: comparison={self.comparison!r}; allowed: "
                + ", ".join(COMPARISONS),
            )
        pair = isinstance(self.threshold, tuple)
        if pair != (self.comparison == "between") or (pair and len(self.threshold) != 2):
            raise ConfigError(
                "threshold",
                f"claim {self.id!r}: 'between' takes (low, high), every other comparison one "
                f"number; got {self.threshold!r}",
            )
        if self.expected not in (YES, NO):
            raise ConfigError("expected", f"claim {self.id!r}: expected must be 'yes' or 'no'")
        if self.expected_ci not in (YES, NO, ""):
            raise ConfigError(
                "expected_ci", f"claim {self.id!r}: expected_ci must be 'yes' or 'no'"
            )

    def holds(self, value: float) -> bool:
        """``value comparison threshold`` (False for NaN)."""
        t = self.threshold
        return bool(
            {
                ">": lambda: value > t,
                ">=": lambda: value >= t,
                "<": lambda: value < t,
                "<=": lambda: value <= t,
                "between": lambda: t[0] <= value <= t[1],
                "within": lambda: abs(value - t) <= self.tolerance,
            }[self.comparison]()
        )

    def verdict(self, m: Measured) -> str:
        """``yes``, ``no`` or ``not measured`` for the measured ``m``."""
        if not math.isfinite(m.value):
            return NOT_MEASURED
        if not self.whole_interval:
            return YES if self.holds(m.value) else NO
        if not (math.isfinite(m.low) and math.isfinite(m.high)):
            return NOT_MEASURED
        return YES if self.holds(m.low) and self.holds(m.high) else NO

    @property
    def threshold_text(self) -> str:
        if self.comparison == "between":
            text = f"{self.threshold[0]:.4g} … {self.threshold[1]:.4g}"
        elif self.comparison == "within":
            text = f"{self.threshold:.4g} ± {self.tolerance:.4g}"
        else:
            text = f"{self.threshold:.4g}"
        return text + (" (whole interval)" if self.whole_interval else "")


def _measured(raw: Any) -> Measured:
    if raw is None:
        return Measured(math.nan)
    if isinstance(raw, Measured):
        return raw
    return Measured(float(raw))


def evaluate(claims: tuple[Claim, ...], tables: Tables, article: str = "") -> pd.DataFrame:
    """The claims table: each claim measured on ``tables`` and compared (index: claim id).

    A measure that returns ``None`` or NaN, or raises ``KeyError`` (a table, row or column the
    run does not have), leaves its claim ``not measured``.
    """
    rows = []
    for c in claims:
        try:
            m = _measured(c.measure(tables))
        except KeyError:
            m = Measured(math.nan)
        value = float(m.value)
        rows.append(
            {
                "claim": c.id,
                "article": c.article or article,
                "quote": c.quote,
                "quantity": c.quantity,
                "value": value,
                "low": float(m.low),
                "high": float(m.high),
                "comparison": c.comparison,
                "threshold": c.threshold_text,
                "held": c.verdict(m),
                "detail": m.detail,
            }
        )
    return pd.DataFrame(rows, columns=["claim", *COLUMNS]).set_index("claim")


def count(table: pd.DataFrame) -> str:
    """``3 of 4 held`` (and how many were not measured)."""
    held = int((table["held"] == YES).sum())
    skipped = int((table["held"] == NOT_MEASURED).sum())
    text = f"{held} of {len(table) - skipped} held"
    return text + (f", {skipped} not measured" if skipped else "")


def view(table: pd.DataFrame) -> pd.DataFrame:
    """The claims table as people read it: rounded value with its interval, one text column."""

    def interval(row) -> str:
        if math.isfinite(row["low"]) and math.isfinite(row["high"]):
            return f"[{row['low']:.4g}, {row['high']:.4g}]"
        return ""

    return pd.DataFrame(
        {
            "quote": table["quote"],
            "quantity": table["quantity"],
            "value": [report.sig(v) for v in table["value"]],
            "interval": [interval(r) for _, r in table.iterrows()],
            "test": [
                f"{c} {t}" for c, t in zip(table["comparison"], table["threshold"], strict=True)
            ],
            "held": table["held"],
            "detail": table["detail"],
        },
        index=table.index,
    )


def summary(title: str, meta: Mapping[str, Any]) -> str:
    """What ``lrbench run`` prints: the experiment's tables (``meta["tables"]``) and its claims
    (``meta["claims"]``, when it has any) with their count."""
    out = [f"\n{title}\n", *(report.to_markdown(t) for t in meta.get("tables", {}).values())]
    table = meta.get("claims")
    if table is None:
        return "\n".join(out)
    return "\n".join([*out, f"claims: {count(table)}\n", report.to_markdown(view(table))])


def write(
    folder: Path, table: pd.DataFrame, caption: str = "The claims and whether they held"
) -> None:
    """``claims.csv`` (every column, numbers unrounded), ``claims.md`` and ``claims.tex``."""
    table.to_csv(folder / "claims.csv")
    shown = view(table)
    (folder / "claims.md").write_text(report.to_markdown(shown))
    (folder / "claims.tex").write_text(report.to_latex(shown, caption))


# ---------------------------------------------------------------------------------------------
# The README template


def setting(sweep, fields=None, more: Mapping[str, str] = ()) -> pd.DataFrame:
    """The config as a two-column table (field, value): what was trained, read from ``sweep``;
    only ``fields`` (in that order) when given, then the rows of ``more`` (``{field: text}``:
    what the experiment adds to the sweep, e.g. the grids a study derives from it).

    A static axis shows its values (``hiddens``: ``5, 7-3``; ``model``: the model of each)
    in place of the single-valued field it replaces; axes not given are left out, and so are
    ``dataset`` and ``model`` at their defaults where no task of the sweep trains them (a
    task object, or a built-in task with its own data). For a study (several grids), a field
    the grids do not share reads ``grid: value; grid, grid: value`` (grids that share a value
    named together).
    """
    table = _setting(sweep)
    table = table if fields is None else table.loc[list(fields)]
    extra = pd.DataFrame({"value": list(dict(more).values())}, index=list(dict(more)))
    return pd.concat([table, extra]).rename_axis("field") if len(extra) else table


def _setting(sweep) -> pd.DataFrame:
    from lrbench.study import Study

    if isinstance(sweep, Study):
        return _study_setting(sweep)
    from lrbench import sweep as sweep_module

    axes = sweep.static_axes
    replaced = {sweep_module.STATIC_AXES[name][0] for name in axes} - {"hidden"}
    rows = []
    for f in dataclasses.fields(sweep):
        if f.name in ("experiment", "description", *replaced) or f.name in _unset_axes(sweep):
            continue
        if f.name in ("dataset", "model") and _unused(sweep, f.name):
            continue
        value = getattr(sweep, f.name)
        if f.name == "hiddens":
            text = ", ".join(sweep_module.hidden_label(h) for h in value)
        elif f.name == "model" and "hiddens" in axes:
            text = ", ".join(_short(dataclasses.replace(value, hidden=h)) for h in sweep.hiddens)
        elif isinstance(value, tuple):
            text = ", ".join(_short(v) for v in value)
        else:
            text = _short(value)
        rows.append({"field": f.name, "value": text})
    return pd.DataFrame(rows).set_index("field")


def _unset_axes(sweep) -> set[str]:
    from lrbench import sweep as sweep_module

    return set(sweep_module.STATIC_AXES) - set(sweep.static_axes)


def _unused(sweep, name: str) -> bool:
    """Whether field ``name`` (``dataset`` or ``model``) is at its default and no task of the
    sweep trains it (only the built-in tasks with a ``model`` field train both)."""
    from lrbench import tasks

    if getattr(sweep, name) != getattr(type(sweep), name):
        return False
    for task in sweep.tasks or (sweep.task,):
        kind = tasks.BUILT_IN.get(task) if isinstance(task, str) else None
        if isinstance(task, str) and (kind is None or "model" in _field_names(kind)):
            return False
    return True


def _field_names(kind) -> set[str]:
    return {f.name for f in dataclasses.fields(kind)}


def _study_setting(study) -> pd.DataFrame:
    """:func:`setting` of each of a study's sweeps, merged field by field."""
    per_sweep = [(grid, _setting(s)["value"]) for grid, s in study.sweeps()]
    fields = list(dict.fromkeys(f for _, shown in per_sweep for f in shown.index))
    rows = []
    for field in fields:
        given = [(grid, shown[field]) for grid, shown in per_sweep if field in shown]
        grids: dict[str, dict] = {}  # text -> the grids that show it, in order
        for grid, t in given:
            grids.setdefault(t, {})[grid] = None
        if len(given) == len(per_sweep) and len(grids) == 1:
            text = given[0][1]
        else:
            text = "; ".join(f"{', '.join(g)}: {t}" for t, g in grids.items())
        rows.append({"field": field, "value": text})
    return pd.DataFrame(rows).set_index("field")


def _short(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    name = getattr(v, "name", None)
    if isinstance(name, str) and hasattr(v, "hparams"):  # an Optimizer
        hp = ", ".join(f"{k}={_short(x)}" for k, x in v.hparams.items())
        return f"{name}({hp})" if hp else name
    if isinstance(getattr(v, "kind", None), str) and hasattr(v, "params"):  # a Schedule
        hp = ", ".join(f"{k}={_short(x)}" for k, x in v.params.items())
        return f"{v.kind}({hp})" if hp else v.kind
    if isinstance(v, tuple):  # a grid of one parameter
        return "/".join(_short(x) for x in v)
    if isinstance(name, str):
        return name
    return str(v)


def readme(
    *,
    name: str,
    title: str,
    article: str,
    says: str,
    claims: pd.DataFrame | None,
    meta: Mapping[str, Any],
    setting: pd.DataFrame | None = None,
    tables: Mapping[str, tuple[pd.DataFrame, str]] = (),
    figures: Mapping[str, str] = (),
    notes: str = "",
) -> str:
    """An experiment's README, one template for all.

    Args:
      name: the experiment (its results folder).
      title: what it reproduces, in a few words.
      article: the source (authors, title, year).
      says: what the article says and how the experiment tests it (Markdown).
      claims: the table from :func:`evaluate`; ``None`` for an experiment that tests no
        article's claims (the README then has no claims section).
      meta: the run's ``meta.json`` (versions, backend, devices, wall time).
      setting: the config table (:func:`setting`), when the experiment is a sweep.
      tables: ``{stem: (table, caption)}``, each written beside the README.
      figures: ``{file: caption}``.
      notes: further Markdown, after the tables (what did not hold, and why).

    Returns:
      The README's Markdown.
    """
    out = [f"# {name}: {title}", "", f"**Article:** {article}", "", says.strip(), ""]
    if setting is not None:
        out += ["## Setting", "", report.to_markdown(setting)]
    if claims is not None:
        out += [f"## The claims ({count(claims)}; `claims`)", "", report.to_markdown(view(claims))]
    for stem, (table, caption) in dict(tables).items():
        out += [f"## {caption} (`{stem}`)", "", report.to_markdown(table)]
    if notes:
        out += [notes.strip(), ""]
    if figures:
        out += ["## Figures", ""]
        out += [
            f"![{caption}]({file})  \n`{file}`: {caption}"
            for file, caption in dict(figures).items()
        ]
        out.append("")
    out += ["## Run", "", _run_line(meta), ""]
    return "\n".join(out)


def _run_line(meta: Mapping[str, Any]) -> str:
    v = meta.get("versions", {})
    versions = ", ".join(f"{k} {v[k]}" for k in ("jax", "jaxlib", "optax", "numpy") if v.get(k))
    parts = []
    if "n_runs" in meta:
        parts.append(f"{meta['n_runs']} runs")
    if "programs" in meta:
        parts.append(f"{meta['programs']} compiled program(s)")
    for key, words in (("compile_seconds", "compiling"), ("train_seconds", "training"),
                       ("wall_seconds", "wall")):  # fmt: skip
        if isinstance(meta.get(key), int | float):
            parts.append(f"{meta[key]:.1f} s {words}")
    where = f"on {meta.get('backend', '?')} ({', '.join(meta.get('devices', []))})"
    return (
        "; ".join(parts)
        + f" {where}; {versions}; python {meta.get('python', '?')}, "
        + f"git {str(meta.get('git_revision') or '?')[:10]}"
        + (" with uncommitted changes" if meta.get("git_dirty") else "")
        + ". "
        + "`runs.csv` / `curves.csv`: every run and epoch; `meta.json`: the config and versions."
    )


def write_report(
    folder: Path,
    *,
    claims: pd.DataFrame | None,
    tables: Mapping[str, tuple[pd.DataFrame, str]] = (),
    **template,
) -> None:
    """Writes the claims table (unless ``claims`` is None), every other table (.md/.tex/.csv)
    and the README."""
    if claims is not None:
        write(folder, claims)
    for stem, (table, caption) in dict(tables).items():
        report.write_table(folder, stem, table, caption)
    text = readme(claims=claims, tables=tables, **template)
    (folder / "README.md").write_text(text)


def notes_text(module, **values) -> str:
    """An experiment's README notes: ``notes/<NAME>.md`` beside its module (Markdown prose that
    follows the tables), its ``{field}`` placeholders filled from ``values`` when any are given;
    empty when the file does not exist."""
    where = getattr(module, "__file__", None)  # None: a namespace standing in for a module
    path = Path(where or ".").parent / "notes" / f"{module.NAME}.md"
    text = path.read_text() if where and path.is_file() else ""
    return text.format(**values) if values else text


def finish(
    module,
    sweep,
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    meta: dict,
    out: str | Path | None,
    quiet: bool = False,
    *,
    found: pd.DataFrame | None = None,
    tables: Mapping[str, tuple[pd.DataFrame, str]] = (),
    figures: Mapping[str, tuple[Callable[[Path], Any], str]] = (),
    files: Mapping[str, pd.DataFrame] = (),
    setting_table: pd.DataFrame | None = None,
    notes: str | None = None,
    **extra,
):
    """An experiment's last step: its results folder, written atomically when ``out`` is
    given, and its ``runner.Result``.

    The folder holds the tidy tables and meta, ``files`` (``{name: table}``, as CSV), each
    figure of ``figures`` (``{file: (draw, caption)}``, drawn by ``draw(path)``), the tables,
    the claims table ``found`` (None: the experiment tests no claims) and the README, whose
    name, title, article and text are the module's ``NAME``, ``TITLE``, ``ARTICLE`` and
    docstring (after its first line); ``setting_table`` defaults to the sweep's config and
    ``notes`` to the module's notes file (:func:`notes_text`, unformatted). The
    Result's meta gains ``claims``, ``tables`` (for :func:`summary`) and ``extra``.
    """
    from lrbench import results, runner

    tables, figures = dict(tables), dict(figures)
    text = notes_text(module) if notes is None else notes

    def write(folder: Path) -> None:
        results.write_tables(folder, runs, curves, meta)
        for name, table in dict(files).items():
            table.to_csv(folder / name, index=False)
        for file, (draw, _) in figures.items():
            draw(folder / file)
        write_report(
            folder, claims=found, tables=tables, name=module.NAME, title=module.TITLE,
            article=module.ARTICLE, says=module.__doc__.split("\n", 1)[1], meta=meta,
            setting=setting(sweep) if setting_table is None else setting_table, notes=text,
            figures={file: caption for file, (_, caption) in figures.items()},
        )  # fmt: skip

    shown = {"claims": found, "tables": {stem: t for stem, (t, _) in tables.items()}}
    progress = runner.Progress(quiet)
    return runner.finish(runs, curves, meta, out, write, progress, **shown, **extra)


@dataclasses.dataclass(frozen=True)
class Extreme(Arithmetic):
    """The largest (``pick="max"``) or smallest (``"min"``) of ``select`` taken at each of
    ``values`` of column ``over`` (added to its row), every value in the detail (``words``
    then :func:`listing`), as :func:`extreme`: a claim about the worst of several settings,
    written as data. Not measured (``KeyError``) when a value has no rows (or only NaN there);
    ``a - Extreme(...)`` combines like any measure."""

    select: Select
    over: str
    values: tuple
    pick: str = "max"
    fmt: str = ".3g"
    words: str = ""

    def series(self, tables: Tables) -> pd.Series:
        """``select`` at each value of ``values``, indexed by it."""
        row = self.select.row
        got = [dataclasses.replace(self.select, row={**row, self.over: v})(tables)
               for v in self.values]  # fmt: skip
        for value, number in zip(self.values, got, strict=True):
            if math.isnan(number):
                raise KeyError(f"{self.over} {value}")
        return pd.Series(got, index=list(self.values), dtype=np.float64)

    def __call__(self, tables: Tables) -> Measured:
        return extreme(self.series(tables), self.pick, self.fmt, words=self.words)


def by_group(frame: pd.DataFrame, by: str, values, agg: str = "mean", pick: str = "max",
             fmt: str = ".3g", sep: str = ": ") -> Measured:  # fmt: skip
    """:func:`extreme` (``pick``) over the groups of ``frame[by]``, in order of appearance, of
    ``agg`` of ``values`` (a column of ``frame``, or ``frame -> Series``): a claim about the
    worst group, e.g. the lowest over optimizers of a median; each group's number in the
    detail."""
    v = frame[values] if isinstance(values, str) else values(frame)
    return extreme(v.groupby(frame[by], sort=False).agg(agg), pick, fmt, sep)
