"""Statistics a reviewer accepts: bootstrap intervals, IQM, probability of improvement,
performance profiles and tuning sensitivity (formulas and references: docs/statistics.md).

The resampling is ``scipy.stats.bootstrap`` (percentile intervals, as rliable's, from a fixed
random stream, so a table is the same on every rerun); a *stratified* bootstrap resamples
each stratum (a task, a data set) within itself: each stratum is one of scipy's samples.

- :func:`mean_ci`, :func:`iqm_ci`: a mean or interquartile mean with its interval.
- :func:`probability_of_improvement`: P(A > B) (Agarwal et al. 2021) with its interval;
  :func:`compare`: the same per learning rate of a runs table, runs paired by seed.
- :func:`performance_ratios`, :func:`performance_profile`, :func:`profile_area`: Dolan & Moré
  profiles and the area under them up to τ = 4 (the AlgoPerf score).
- :func:`expected_max`: the expected best of a random search with k trials (Dodge et al.
  2019); :func:`tuning_sensitivity`: that and the learning-rate basin width
  (:func:`lrbench.diagnose.good_region`) per optimizer × schedule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from lrbench.errors import ConfigError

CONFIDENCE = 0.95
RESAMPLES = 9999  # scipy's default
SEED = 0  # the bootstrap's random stream: the same interval on every rerun
TAU_MAX = 4.0  # the performance profile's area is taken up to this ratio (AlgoPerf)


class Interval(NamedTuple):
    """A statistic and its confidence interval (NaN bounds: too few values to resample)."""

    value: float
    low: float = math.nan
    high: float = math.nan


def _strata(values) -> list[np.ndarray]:
    """One float64 array per stratum: a flat array-like is one stratum, a list of array-likes
    (or a dict's values) several."""
    if isinstance(values, Mapping):
        values = list(values.values())
    if isinstance(values, pd.Series | np.ndarray) or not len(values):
        return [np.asarray(values, np.float64).ravel()]
    if np.ndim(values[0]) == 0:
        return [np.asarray(values, np.float64)]
    return [np.asarray(v, np.float64).ravel() for v in values]


def bootstrap(
    samples: Sequence[np.ndarray],
    statistic: Callable[..., np.ndarray],
    *,
    paired: bool = False,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Interval:
    """``statistic(*samples)`` with its percentile bootstrap interval (``scipy.stats.bootstrap``,
    each sample resampled within itself, or all with the same indices when ``paired``).

    ``statistic(*samples, axis)`` must be vectorized over ``axis`` (-1). Fewer than two
    values in a sample: no interval (NaN bounds)."""
    from scipy import stats as sps

    samples = [np.asarray(s, np.float64) for s in samples]
    value = float(statistic(*samples, axis=-1))
    if any(len(s) < 2 for s in samples):
        return Interval(value)
    if all(np.all(s == s[0]) for s in samples):  # nothing to resample: a point
        return Interval(value, value, value)
    res = sps.bootstrap(
        tuple(samples), statistic, vectorized=True, paired=paired, axis=-1,
        confidence_level=confidence, n_resamples=resamples, method="percentile",
        rng=np.random.default_rng(seed),
    )  # fmt: skip
    ci = res.confidence_interval
    return Interval(value, float(ci.low), float(ci.high))


def _mean(*xs, axis=-1):
    return np.mean(np.concatenate(xs, axis=axis), axis=axis)


def _iqm(*xs, axis=-1):
    from scipy import stats as sps

    return sps.trim_mean(np.concatenate(xs, axis=axis), 0.25, axis=axis)


def _check_finite(strata: list[np.ndarray], field: str) -> list[np.ndarray]:
    if not strata or any(not len(s) for s in strata):
        raise ConfigError(field, "no values (an empty sample or stratum)")
    if any(not np.all(np.isfinite(s)) for s in strata):
        raise ConfigError(field, "non-finite values; give failed runs a score first")
    return strata


def mean_ci(values, **options) -> Interval:
    """The mean of all values with its 95% bootstrap interval; ``values`` is one array, or a
    list (or dict) of arrays, one per stratum, each resampled within itself (stratified)."""
    return bootstrap(_check_finite(_strata(values), "values"), _mean, **options)


def iqm(values) -> float:
    """The interquartile mean: ``scipy.stats.trim_mean(values, 0.25)`` of the pooled values."""
    from scipy import stats as sps

    return float(sps.trim_mean(np.concatenate(_strata(values)), 0.25))


def iqm_ci(values, **options) -> Interval:
    """The interquartile mean (the mean of the middle half, 25% cut from each end) with its
    95% (stratified) bootstrap interval."""
    return bootstrap(_check_finite(_strata(values), "values"), _iqm, **options)


def _improvement(*xs, axis=-1):
    """P(A > B) per stratum, averaged over strata: ``xs`` = a_1, b_1, a_2, b_2, ..."""
    per = []
    for a, b in zip(xs[::2], xs[1::2], strict=True):
        a, b = np.moveaxis(a, axis, -1), np.moveaxis(b, axis, -1)
        x, y = a[..., :, None], b[..., None, :]
        per.append(((x > y) + 0.5 * (x == y)).mean(axis=(-2, -1)))
    return np.mean(per, axis=0)


def probability_of_improvement(a, b, *, paired: bool = False, **options) -> Interval:
    """P(A > B) = mean over all pairs (a_i, b_j) of 1[a_i > b_j] + ½·1[a_i = b_j] (the
    Mann–Whitney U over n·m; Agarwal et al. 2021), averaged over strata when ``a`` and ``b``
    are lists of arrays (one per task), with its 95% bootstrap interval: each side of each
    stratum resampled within itself, or (``paired``, one stratum of equal lengths: runs
    paired by seed) the pairs resampled together. Values may be ±inf (a failed run scored
    worst); NaN is refused."""
    sa, sb = _strata(a), _strata(b)
    if len(sa) != len(sb):
        raise ConfigError("b", f"{len(sa)} strata of a but {len(sb)} of b")
    for field, side in (("a", sa), ("b", sb)):
        if any(not len(s) for s in side):
            raise ConfigError(field, "no values (an empty sample or stratum)")
        if any(np.isnan(s).any() for s in side):
            raise ConfigError(field, "NaN values; score failed runs (e.g. -inf) first")
    if paired and (len(sa) != 1 or len(sa[0]) != len(sb[0])):
        raise ConfigError("paired", "pairs need one stratum with as many values of a as of b")
    samples = [s for pair in zip(sa, sb, strict=True) for s in pair]
    if any(not np.all(np.isfinite(s)) for s in samples):
        # the percentile bootstrap needs no arithmetic on the values: ranks do
        ranks = pd.Series(np.concatenate(samples)).rank(method="min").to_numpy()
        samples = np.split(ranks, np.cumsum([len(s) for s in samples])[:-1])
    return bootstrap(samples, _improvement, paired=paired, **options)


# ---------------------------------------------------------------------------------------------
# Selections of a runs table and the comparison per learning rate


def parse_selector(text: str, field: str) -> dict[str, str]:
    """``"optimizer=adam,schedule=constant"`` -> ``{"optimizer": "adam", ...}``."""
    pairs = {}
    for item in str(text).split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(
                field, f"{text!r} must look like column=value[,column=value], e.g. optimizer=adam"
            )
        pairs[key.strip()] = value.strip()
    return pairs


def select(runs: pd.DataFrame, selector: str | Mapping[str, Any], field: str = "a") -> pd.DataFrame:
    """The runs whose columns equal the selector's values (numbers compared as numbers);
    an unknown column or no matching run is a ``ConfigError`` naming ``field``."""
    pairs = parse_selector(selector, field) if isinstance(selector, str) else dict(selector)
    mask = pd.Series(True, index=runs.index)
    for column, value in pairs.items():
        if column not in runs:
            raise ConfigError(
                field, f"unknown column {column!r}; columns: {', '.join(map(str, runs.columns))}"
            )
        mask &= equals(runs[column], value)
    if not mask.any():
        shown = "; ".join(
            f"{c} has {', '.join(map(str, pd.unique(runs[c].astype(str))[:12]))}" for c in pairs
        )
        wanted = ",".join(f"{k}={v}" for k, v in pairs.items())
        raise ConfigError(field, f"no run matches {wanted} ({shown})")
    return runs[mask]


def equals(series: pd.Series, value: Any) -> pd.Series:
    """Where ``series`` equals ``value``: numbers (or text that reads as one, as a selector
    typed at the command line) compared as numbers to rtol 1e-9, anything else as text."""
    numeric = pd.to_numeric(series, errors="coerce")
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    if number is not None and numeric.notna().any() and not isinstance(value, bool):
        return pd.Series(np.isclose(numeric, number, rtol=1e-9, atol=0), index=series.index)
    return series.astype(str) == str(value)


def metric_column(runs: pd.DataFrame, metric: str, field: str = "metric") -> str:
    """``metric`` if it is a numeric column of ``runs``, else ``final_<metric>`` (``test_acc``
    -> ``final_test_acc``); a ``ConfigError`` naming ``field`` otherwise."""
    numeric = [c for c in runs.columns if pd.api.types.is_numeric_dtype(runs[c])]
    for name in (metric, f"final_{metric}"):
        if name in numeric:
            return name
    raise ConfigError(field, f"unknown metric {metric!r}; numeric columns: {', '.join(numeric)}")


def compare(
    runs: pd.DataFrame,
    a: str | Mapping[str, Any],
    b: str | Mapping[str, Any],
    metric: str = "final_test_acc",
    by: str = "lr",
    higher_is_better: bool = True,
    **options,
) -> pd.DataFrame:
    """P(A > B) of ``metric`` per value of ``by`` (a learning rate) with its 95% interval.

    A and B are selectors (``"optimizer=adam"``). At each value of ``by``, when each side
    has one run per seed and they share seeds, the runs are paired by seed (only the shared
    seeds count, and the bootstrap resamples the pairs together: common random numbers);
    otherwise every run of A meets every run of B (unpaired). A run whose ``status`` is
    diverged, or without a finite value, counts as the worst. "A > B" means A better: higher, or lower with
    ``higher_is_better=False``.

    Returns one row per value of ``by`` (high to low): ``by, n_a, n_b, pairing, p_a_better,
    low, high``.
    """
    metric = metric_column(runs, metric)
    if by not in runs:
        raise ConfigError("by", f"unknown column {by!r}; columns: {', '.join(runs.columns)}")
    side_a, side_b = select(runs, a, "a"), select(runs, b, "b")
    worst = -np.inf if higher_is_better else np.inf
    rows = []
    for key in sorted(set(side_a[by].dropna()) | set(side_b[by].dropna()), reverse=True):
        xa, xb = (s[equals(s[by], key)] for s in (side_a, side_b))
        row = {by: key, "n_a": len(xa), "n_b": len(xb), "pairing": "", "p_a_better": math.nan,
               "low": math.nan, "high": math.nan}  # fmt: skip
        if len(xa) and len(xb):
            va, vb, row["pairing"], paired = _sides(xa, xb, metric, worst)
            row["n_a"], row["n_b"] = len(va), len(vb)
            sign = 1.0 if higher_is_better else -1.0
            got = probability_of_improvement(sign * va, sign * vb, paired=paired, **options)
            row.update(p_a_better=got.value, low=got.low, high=got.high)
        rows.append(row)
    return pd.DataFrame(rows)


def _sides(xa: pd.DataFrame, xb: pd.DataFrame, metric: str, worst: float):
    """Both sides' values (a failed run: ``worst``), paired by seed where each side has one
    run per seed and they share seeds."""

    def values(frame):
        v = pd.to_numeric(frame[metric], errors="coerce")
        if "status" in frame:  # a diverged run's last finite numbers are no result
            v = v.where(frame["status"].to_numpy() != "diverged")
        return v.fillna(worst).to_numpy(np.float64)

    if "seed" in xa and xa["seed"].is_unique and xb["seed"].is_unique:
        shared = sorted(set(xa["seed"]) & set(xb["seed"]))
        if len(shared) >= 2:
            pa = xa.set_index("seed").loc[shared]
            pb = xb.set_index("seed").loc[shared]
            dropped = len(xa) + len(xb) - 2 * len(shared)
            note = f"paired by seed ({len(shared)} seeds"
            note += f"; {dropped} unpaired runs left out)" if dropped else ")"
            return values(pa), values(pb), note, True
    return values(xa), values(xb), "unpaired (all pairs of runs)", False


# ---------------------------------------------------------------------------------------------
# Performance profiles (Dolan & Moré 2002)


def performance_ratios(
    times: pd.DataFrame, problem: str = "problem", config: str = "config", time: str = "time"
) -> pd.DataFrame:
    """Per problem and config, ``ratio`` = its time over the best config's time on that
    problem; a config that never reached the target (time NaN or inf) has ratio inf, and so
    has every config on a problem none solved. Times must be positive."""
    for column in (problem, config, time):
        if column not in times:
            raise ConfigError(column, f"no column {column!r} in the times table")
    t = pd.to_numeric(times[time], errors="coerce").astype(np.float64)
    if (t <= 0).any():
        raise ConfigError(time, "times must be positive")
    if times.duplicated([problem, config]).any():
        raise ConfigError(config, "one time per problem and config")
    t = t.fillna(np.inf)
    best = t.groupby(times[problem], sort=False).transform("min")
    with np.errstate(invalid="ignore"):
        ratio = np.where(np.isfinite(best), t / best, np.inf)
    return times[[problem, config]].assign(time=t.to_numpy(), ratio=ratio)


def performance_profile(
    ratios: pd.DataFrame, config: str = "config", tau_max: float = TAU_MAX
) -> pd.DataFrame:
    """ρ_s(τ) = the share of problems on which config s is within τ × the best time, at every
    τ where some ρ steps (1, each finite ratio up to ``tau_max``, and ``tau_max``): a tidy
    table ``config, tau, rho`` (ρ is right-continuous: it holds from τ to the next τ)."""
    taus = np.unique(np.concatenate([[1.0, tau_max], ratios["ratio"][ratios["ratio"] <= tau_max]]))
    rows = []
    for name, frame in ratios.groupby(config, sort=False):
        r = frame["ratio"].to_numpy()
        rows += [{config: name, "tau": t, "rho": float(np.mean(r <= t))} for t in taus]
    return pd.DataFrame(rows)


def profile_area(
    ratios: pd.DataFrame, config: str = "config", tau_max: float = TAU_MAX
) -> pd.Series:
    """Per config, the area under ρ_s from τ = 1 to ``tau_max`` over ``tau_max - 1`` (1: the
    best on every problem; 0: never within ``tau_max`` × the best): exactly, each problem
    adds ``(tau_max - ratio) / (tau_max - 1)`` where its ratio is at most ``tau_max``."""
    r = ratios["ratio"].to_numpy(np.float64)
    gain = np.where(r <= tau_max, (tau_max - r) / (tau_max - 1.0), 0.0)
    return pd.Series(gain, index=ratios.index).groupby(ratios[config], sort=False).mean()


# ---------------------------------------------------------------------------------------------
# Tuning sensitivity


def expected_max(values, k: int) -> float:
    """The expected best of ``k`` draws with replacement from ``values`` (a random search of
    ``k`` trials over a grid; Dodge et al. 2019): with v_(1) ≤ … ≤ v_(n),
    ``E[max] = Σ_i v_(i) · ((i/n)^k − ((i−1)/n)^k)``."""
    v = np.sort(np.asarray(values, np.float64).ravel())
    if not len(v) or not np.all(np.isfinite(v)):
        raise ConfigError("values", "need finite values (score failed runs first)")
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ConfigError("k", f"k={k!r} must be a whole number >= 1")
    i = np.arange(1, len(v) + 1, dtype=np.float64)
    n = float(len(v))
    return float(np.dot(v, (i / n) ** k - ((i - 1) / n) ** k))


def tuning_sensitivity(
    runs: pd.DataFrame,
    metric: str = "final_test_acc",
    by: Sequence[str] = ("optimizer", "schedule"),
    within: float = 0.05,
    ks: Sequence[int] = (1, 5, 20),
    failed: float | None = None,
) -> pd.DataFrame:
    """Per group of ``by`` (an optimizer × schedule): the learning-rate basin
    (:func:`lrbench.diagnose.good_region`: best lr, best seed-mean ``metric``, the grid lrs
    within ``within`` (relative) of it and the width in decades) and ``evp_<k>``, the expected
    best ``metric`` of a random search of k trials: each trial one run drawn uniformly (an lr
    of the grid, then a seed), :func:`expected_max` over the group's runs. A run whose
    ``metric`` is not finite scores ``failed`` (None: refused)."""
    from lrbench import diagnose

    by = list(by)
    values = pd.to_numeric(runs[metric], errors="coerce")
    if failed is not None:
        values = values.where(np.isfinite(values), failed)
    elif not np.all(np.isfinite(values)):
        raise ConfigError("failed", f"{metric} has non-finite values; give failed= a score")
    runs = runs.assign(**{metric: values})
    region = diagnose.good_region(runs, within=within, metric=metric, by=tuple(by))
    evp = runs.groupby(by, sort=False, dropna=False)[metric].agg(
        **{f"evp_{k}": (lambda v, k=k: expected_max(v, k)) for k in ks}
    )
    return region.merge(evp.reset_index(), on=by, how="left")
