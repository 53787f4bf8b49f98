"""Reading a run from its curves: status, epochs to a target accuracy, the shape of its loss.

Status rules, applied in this order to a run's per-epoch training loss ``L[1..E]`` and its
loss before training ``L0``:

``diverged``
    one rule (:func:`divergence_epoch`): the loss ends non-finite or beyond ``DIVERGE_FACTOR · L0``
    (it ended worse than it started, by a wide margin), or the engine found it non-finite
    (its ``diverged_at > 0``). The run's ``diverged_at`` is the first epoch of that final
    excursion: from there to the end every epoch is non-finite or beyond the multiple. A
    spike beyond it that comes back is no divergence (the rules below judge it). The
    multiple is of the *initial* loss, as a training run is judged against where it
    started; fastai's learning-rate range test (``lr_find``, :data:`lrbench.lrfind.STOP_FACTOR`)
    stops at 4× the *best* smoothed loss instead, a test meant to stop at the first blow-up.
``oscillating``
    over the last half of training the loss rises from one epoch to the next in more than
    ``OSCILLATION_SHARE`` of epochs, and its median there stays above ``OSCILLATION_HOVER``
    times the best loss of the run *and* more than ``OSCILLATION_SCALE · L0`` above it: it
    bounces well above what it already reached instead of settling (minibatch noise around
    a minimum rises as often but hovers close to the best, and noise on a loss that has
    learned all but a hundredth of ``L0`` is no oscillation however large it is relative
    to that small loss).
``slow``
    it barely learned (final loss above ``STALL_SHARE · L0``), or it is still improving
    steadily at the end: the mean loss of the last tenth of training is below that of the
    tenth before by more than ``STILL_IMPROVING`` of all it has learned (``L0`` minus that
    mean), and by more than ``NOISE_Z`` standard errors of the epoch-to-epoch noise of
    those two tenths.
``converged``
    none of the above: the loss went down and has levelled off.

Both gaps are measured on the scale of the initial loss, not of the loss itself: a loss of
0.01 that jitters between 0.005 and 0.02, or that still halves every ten epochs, has learned
all but a thousandth of what there was to learn (iris at lr 1, digits at lr 1). Compared to
its own best, such noise or such a tail read as oscillating or slow (the rule before
measured them so); ``tests/test_diagnose.py`` holds hand-labelled runs on blobs, digits,
iris and the drug trial that pin the labels.
"""

from __future__ import annotations

import numpy as np

DIVERGE_FACTOR = 2.0  # diverged: the loss ends beyond this multiple of its initial value
OSCILLATION_SHARE = 0.3  # oscillating: more than this share of rising epochs (last half)
OSCILLATION_HOVER = 1.2  # ... its median there above this multiple of the best loss
OSCILLATION_SCALE = 0.01  # ... and above the best by this share of the initial loss
STALL_SHARE = 0.9  # slow: the final loss above this share of the initial loss
STILL_IMPROVING = 0.005  # slow: the last tenth's gain on the tenth before, share of L0 - L
NOISE_Z = 2.0  # ... and in standard errors of its epoch-to-epoch noise

STATUSES = ("converged", "slow", "oscillating", "diverged")


def divergence_epoch(train_loss: np.ndarray, initial_loss: float) -> int:
    """The 1-based epoch from which the loss stays non-finite or beyond ``DIVERGE_FACTOR``
    times ``initial_loss`` to the end (the divergence rule); 0 when the last epoch is
    neither."""
    loss = np.asarray(train_loss, np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(loss) | (loss > DIVERGE_FACTOR * initial_loss)
    if not len(bad) or not bad[-1]:
        return 0
    good = np.flatnonzero(~bad)
    return int(good[-1]) + 2 if len(good) else 1


def status(train_loss: np.ndarray, initial_loss: float, diverged_at: int = 0) -> str:
    """The status of one run (rules in the module docstring); ``diverged_at`` is the epoch
    where the engine (or an experiment's own rule) found it non-finite, 0 if never."""
    loss = np.asarray(train_loss, np.float64)
    if diverged_at > 0 or divergence_epoch(loss, initial_loss) > 0:
        return "diverged"
    if not np.all(np.isfinite(loss)):  # a non-finite epoch the run came back from
        return "diverged"
    tail = loss[len(loss) // 2 :]
    if len(tail) >= 3:
        rising = np.mean(np.diff(tail) > 1e-3 * tail[:-1])
        median, best = np.median(tail), loss.min()
        if (
            rising > OSCILLATION_SHARE
            and median > OSCILLATION_HOVER * best
            and median - best > OSCILLATION_SCALE * initial_loss
        ):
            return "oscillating"
    if loss[-1] > STALL_SHARE * initial_loss:
        return "slow"
    window = max(1, len(loss) // 10)
    if len(loss) >= 2 * window:
        last, before = loss[-window:].mean(), loss[-2 * window : -window].mean()
        # the noise of one epoch: its epoch-to-epoch changes over both tenths (a steady
        # trend moves them all alike and adds nothing); the two means differ by chance by
        # about noise·sqrt(2 / window)
        changes = np.diff(loss[-2 * window :])
        noise = np.std(changes) / np.sqrt(2) if len(changes) > 1 else 0.0
        gain = before - last
        if gain > STILL_IMPROVING * (initial_loss - last) and gain > NOISE_Z * noise * np.sqrt(
            2 / window
        ):
            return "slow"
    return "converged"


def epochs_to_target(test_acc: np.ndarray, target: float) -> np.ndarray:
    """First 1-based epoch whose test accuracy reaches ``target``, per row; NaN if never.

    ``test_acc`` is [N, E] (or [E]); NaN epochs (after divergence, or not evaluated under
    ``validation_freq`` k, so the answer is then a multiple of k) never count.
    """
    acc = np.atleast_2d(np.asarray(test_acc, np.float64))
    first = first_true(np.nan_to_num(acc, nan=-np.inf) >= target).astype(np.float64)
    return first if np.ndim(test_acc) > 1 else first[0]


def first_true(mask, never=np.nan) -> np.ndarray:
    """Per row of ``mask`` (``[..., T]``), the 1-based index of its first True; ``never`` where
    it has none (NaN, or e.g. 0 or T for an integer answer)."""
    mask = np.asarray(mask, bool)
    return np.where(mask.any(-1), mask.argmax(-1) + 1, never)


def out_of_bounds(values, limit: float) -> np.ndarray:
    """Where ``values`` are non-finite or beyond ``limit`` in magnitude: a weight or an output
    that has blown up (an experiment that reads its own weights calls that diverged)."""
    values = np.asarray(values)
    return ~(np.isfinite(values) & (np.abs(values) <= limit))


def rising_share(loss) -> float:
    """Share of the epoch-to-epoch changes of ``loss`` that go up, over its finite values (a
    diverged run's tail left out); NaN with fewer than two. A measure of overshooting."""
    loss = np.asarray(loss, np.float64)
    finite = loss[np.isfinite(loss)]
    return float(np.mean(np.diff(finite) > 0)) if len(finite) > 1 else np.nan


def roughness(loss) -> float:
    """``mean |Δ² log L|``, the mean absolute second difference of the log loss: 0 for a
    straight line on a log scale (an exponential decay); NaN unless every value is finite and
    positive, or with fewer than three."""
    loss = np.asarray(loss, np.float64)
    if loss.size < 3 or not np.all(np.isfinite(loss) & (loss > 0)):
        return np.nan
    return float(np.mean(np.abs(np.diff(np.log(loss), n=2))))


def good_region(
    runs, within: float = 0.05, metric: str = "final_test_acc", by: tuple[str, ...] = ("optimizer",)
):
    """Per group of ``by``: the best learning rate (mean ``metric`` over seeds), its spread
    over seeds, and the width in decades of the contiguous run of grid learning rates around
    it whose mean is within ``within`` (relative) of the best.

    Returns a DataFrame: ``*by, best_lr, best, best_std, lo_lr, hi_lr, width_decades``.
    The width is measured between grid points, so it is a lower bound set by the spacing.
    """
    import pandas as pd

    rows = []
    for key, frame in runs.groupby(list(by), sort=False, dropna=False):
        stats = frame.groupby("lr")[metric].agg(["mean", "std"]).sort_index()
        means = stats["mean"].to_numpy()
        lrs = stats.index.to_numpy()
        finite = np.where(np.isfinite(means), means, -np.inf)
        best = int(np.argmax(finite))
        good = finite >= (1 - within) * finite[best]
        lo = hi = best
        while lo > 0 and good[lo - 1]:
            lo -= 1
        while hi < len(lrs) - 1 and good[hi + 1]:
            hi += 1
        key = key if isinstance(key, tuple) else (key,)
        rows.append(
            {
                **dict(zip(by, key, strict=True)),
                "best_lr": lrs[best],
                "best": means[best],
                "best_std": stats["std"].to_numpy()[best],
                "lo_lr": lrs[lo],
                "hi_lr": lrs[hi],
                "width_decades": float(np.log10(lrs[hi] / lrs[lo])),
            }
        )
    return pd.DataFrame(rows)


def step_runs(loss, bad, steps_per_epoch: int, initial_loss, steps=None):
    """Status and divergence of runs recorded after every update (one rule for every experiment
    that reads its own traces).

    ``loss`` ``[N, T]``: the training loss after each update; ``bad`` ``[N, T]``: where the run
    has blown up (e.g. :func:`out_of_bounds` of its weights); ``initial_loss``: ``L0``, one or
    one per run; ``steps`` ``[N]``: the updates each run counts (all ``T`` when None), whose
    epochs are ``ceil(steps / steps_per_epoch)``.

    Returns ``(per_epoch, table)``: the loss after each epoch's last update ``[N, T //
    steps_per_epoch]``, NaN from the first bad update on; and per run ``escaped_at`` (the first
    bad update, NA if none), ``diverged_at`` (its epoch, else :func:`divergence_epoch` of the
    counted epochs; NA if neither) and ``status`` (:func:`status` of the counted epochs).
    """
    import pandas as pd

    loss, bad = np.asarray(loss, np.float64), np.logical_or.accumulate(np.asarray(bad, bool), -1)
    n, t = loss.shape
    per_epoch = np.where(bad, np.nan, loss)[:, steps_per_epoch - 1 :: steps_per_epoch]
    escaped = first_true(bad, 0).astype(int)
    escaped_epoch = -(-escaped // steps_per_epoch)
    epochs = -(-np.broadcast_to(t if steps is None else steps, n) // steps_per_epoch)
    initial = np.broadcast_to(np.asarray(initial_loss, np.float64), n)
    diverged = [e or divergence_epoch(c[:k], l0) for c, k, l0, e in
                zip(per_epoch, epochs, initial, escaped_epoch, strict=True)]  # fmt: skip
    return per_epoch, pd.DataFrame({
        "escaped_at": pd.Series(escaped, dtype="Int64").where(escaped > 0),
        "diverged_at": pd.Series(diverged, dtype="Int64").where(np.array(diverged) > 0),
        "status": [status(c[:k], l0, e) for c, k, l0, e in
                   zip(per_epoch, epochs, initial, escaped_epoch, strict=True)],
    })  # fmt: skip


def stability_boundary(runs, unstable, by=(), lr: str = "lr"):
    """Per group of ``by`` (the whole table when empty): the largest learning rate none of whose
    runs is ``unstable`` (a boolean column or mask, e.g. diverged) and the smallest all of whose
    runs are: the measured boundary on the grid, ``largest_stable_lr`` and
    ``smallest_unstable_lr`` (NaN where the grid has none)."""
    import pandas as pd

    frame = pd.DataFrame({"lr": runs[lr], "bad": runs[unstable] if isinstance(unstable, str)
                          else np.asarray(unstable, bool)})  # fmt: skip
    keys = [runs[k].to_numpy() for k in by] or [np.zeros(len(runs), int)]
    per_lr = frame.groupby([*keys, frame["lr"]])["bad"].agg(["all", "any"]).reset_index(-1)
    groups = per_lr.groupby(level=list(range(len(keys))))
    table = pd.DataFrame({
        "largest_stable_lr": groups.apply(lambda g: g.loc[~g["any"], "lr"].max()),
        "smallest_unstable_lr": groups.apply(lambda g: g.loc[g["all"], "lr"].min()),
    })  # fmt: skip
    return table.rename_axis(list(by)) if by else table.reset_index(drop=True)


def deepobs_score(runs, chance):
    """A run's score in the DeepOBS protocol (Schneider et al., 2019): its final test accuracy,
    ``chance`` (a number, or one per run) when it diverged or has no accuracy, whatever
    accuracy it had before it blew up."""
    acc = runs["final_test_acc"]
    return acc.where(runs["status"] != "diverged", chance).fillna(chance)
