"""schedule_tour: the speed and smoothness measures on hand-built curves, the tuning and the
claims on hand-built tables, and the article's measurable claims on the CI-sized run."""

import contextlib
import io
import math

import numpy as np
import pandas as pd
import pytest

from experiments import schedule_tour as st
from lrbench import check, claims, cli

pytestmark = pytest.mark.slow  # module-scoped fixtures train CI variants end to end

# ---------------------------------------------------------------------------------------------
# Measures on curves with known answers


# rising_share and roughness: tests/test_diagnose.py


def test_curve_measures_test_loss_rise_and_early_roughness():
    epochs = np.arange(1, 13)
    train = 0.5**epochs * np.where(epochs <= 3, [1, 3, 1] * 4, 1)[: len(epochs)]
    curves = pd.DataFrame(
        {
            "run_id": "r",
            "epoch": epochs,
            "train_loss": train,
            "test_loss": [1.0, 0.8, 0.6, 0.5, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.72],
        }
    )
    m = st.curve_measures(curves.sample(frac=1, random_state=0)).loc["r"]  # order-proof
    assert m["test_loss_rise"] == pytest.approx(0.72 - 0.4)
    # first quarter = 3 epochs: log L = [log .5·1, log .25·3, log .125·1]
    log = np.log([0.5, 0.75, 0.125])
    assert m["early_roughness"] == pytest.approx(abs(log[2] - 2 * log[1] + log[0]))
    assert m["loss_auc"] == pytest.approx(train.mean())
    assert m["up_share"] == pytest.approx(1 / 11)  # one rise, into epoch 2
    diverged = curves.assign(run_id="d", train_loss=np.r_[train[:-1], np.inf])
    d = st.curve_measures(diverged).loc["d"]
    assert np.isnan(d["loss_auc"]) and np.isnan(d["up_share"]) and np.isnan(d["roughness"])


# ---------------------------------------------------------------------------------------------
# Tuning, sensitivity, verdicts on hand-built tables


def _measured() -> pd.DataFrame:
    """Kind "constant" on lrs 0.01, 0.1, 1 and kind "step" on two step sizes; 3 seeds."""
    score = {
        ("constant", "", 0.01): [0.5, 0.6, 0.7],
        ("constant", "", 0.1): [0.9, 0.9, 0.9],
        ("constant", "", 1.0): [0.7, 0.8, 0.9],
        ("step", "step_size=5", 0.1): [0.95, 0.95, 0.95],
        ("step", "step_size=5", 1.0): [0.85, 0.85, 0.85],
        ("step", "step_size=10", 0.1): [0.9, 0.9, 0.9],
        ("step", "step_size=10", 1.0): [0.96, 0.96, 0.96],
        ("step", "step_size=20", 0.1): [0.8, 0.8, 0.8],
        ("step", "step_size=20", 1.0): [0.7, 0.7, 0.7],
    }
    rows = [
        {"kind": k, "setting": s, "lr": lr, "seed": seed, "score": v, "run_id": f"{k}{s}{lr}{seed}"}
        for (k, s, lr), values in score.items()
        for seed, v in enumerate(values)
    ]
    return pd.DataFrame(rows)


def test_best_runs_and_sensitivity():
    measured = _measured()
    runs = st.best_runs(measured)
    assert len(runs) == 6 and list(runs["kind"].unique()) == ["constant", "step"]
    best = runs.groupby("kind")[["setting", "lr"]].first()
    assert best.loc["constant", "lr"] == 0.1
    assert tuple(best.loc["step"]) == ("step_size=10", 1.0)
    sens = runs.set_index(["kind", "seed"])["lr_sensitivity"]
    # constant at 0.1: 0.9 − mean(0.01's, 1's) per seed = 0.9 − (0.6, 0.7, 0.8)
    np.testing.assert_allclose(sens.loc["constant"].to_numpy(), [0.3, 0.2, 0.1])
    # step_size=10 at 1.0 is at the grid's edge: one neighbour (0.1)
    np.testing.assert_allclose(sens.loc["step"].to_numpy(), [0.06] * 3)
    sizes = st.step_size_table(measured)
    assert list(sizes["setting"]) == ["step_size=10", "step_size=5", "step_size=20"]  # best first
    np.testing.assert_allclose(sizes["final_test_acc_mean"], [0.96, 0.95, 0.8])
    (claim,) = [c for c in st.CLAIMS if c.id == "step_size_matters"]
    row = claims.evaluate((claim,), {"measured": measured}).iloc[0]
    # 0.96 vs 0.8 on every seed: no spread, so the interval is the value and a clear yes
    assert (row["value"], row["low"], row["high"]) == pytest.approx((0.16, 0.16, 0.16))
    assert row["held"] == "yes" and row["detail"] == "best step_size=10, worst step_size=20"


def test_versus_claims_are_yes_only_beyond_noise():
    """Per seed: constant (1.0, 1.1, 0.9) and exponential at three offsets (means 0, 0.99,
    1.3); the difference of the means has ± 2 Welch standard errors, here 2·sqrt(2·0.01/3)."""
    kinds = {"constant": [1.0, 1.1, 0.9], "low": [0.0, 0.1, -0.1], "close": [0.99, 1.09, 0.89],
             "high": [1.3, 1.4, 1.2]}  # fmt: skip
    best = pd.DataFrame(
        [{"kind": k, "seed": i, "m": v} for k, vs in kinds.items() for i, v in enumerate(vs)]
    )
    made = [
        st.versus("below", "q", "m", ("low",), "<", ("constant",), "yes"),
        st.versus("close", "q", "m", ("close",), "<", ("constant",), "no"),
        st.versus("above", "q", "m", ("high",), "<", ("constant",), "no"),
        st.versus("group", "q", "m", ("low", "high"), "<", ("constant",), "yes"),
    ]
    table = claims.evaluate(tuple(made), {"best": best})
    two_se = 2 * math.sqrt(2 * 0.01 / 3)
    assert table.loc["below", "value"] == pytest.approx(-1.0)
    assert table.loc["below", "high"] == pytest.approx(-1.0 + two_se)
    assert list(table["held"]) == ["yes", "no", "no", "yes"]  # close: the old "within noise"
    assert table.loc["group", "value"] == pytest.approx(-0.35)  # (0 + 1.3) / 2 - 1
    assert table.loc["close", "detail"] == "close 0.99, constant 1"


def test_schedules_end_at_a_tenth():
    sched = {s.kind: s for s in st.sgd_schedules(40, 11)}
    (exp,) = sched["exponential"].points()
    (tb,) = sched["time_based"].points()
    assert exp["decay_rate"] ** 40 == pytest.approx(0.1)
    assert 1 / (1 + tb["decay"] * 40 * 11) == pytest.approx(0.1)
    assert [p["step_size"] for p in sched["step"].points()] == [5.0, 10.0, 20.0]


# ---------------------------------------------------------------------------------------------
# The CI-sized run


@pytest.fixture(scope="module")
def ci(tmp_path_factory):
    """The CI variant, trained once for the module, with what it said on stderr."""
    sweep = st.ci_config()
    with contextlib.redirect_stderr(io.StringIO()) as err:
        result = st.run(sweep, out=tmp_path_factory.mktemp("ci") / st.NAME, quiet=False)
    return sweep, result, result.meta["analysis"], err.getvalue()


@pytest.mark.slow
def test_ci_run_has_every_kind_and_grid(ci):
    sweep, result, tables, _ = ci
    runs = result.runs
    n_sgd = len(st.SGD_LRS) * (3 + 3) * len(sweep.seeds)  # 3 step sizes + 3 other kinds
    n_adaptive = sum(len(v) for v in st.ADAPTIVE_LRS.values()) * len(sweep.seeds)
    assert len(runs) == n_sgd + n_adaptive
    kinds = [
        "constant",
        "step",
        "exponential",
        "time_based",
        "adagrad",
        "adadelta",
        "rmsprop",
        "adam",
    ]
    assert list(tables["numbers"]["kind"]) == kinds
    assert set(tables["claims"]["held"]) <= {"yes", "no"}
    verdicts = check.claim_verdicts(st.NAME, st, result.folder)
    assert len(verdicts) == len(st.CLAIMS) and verdicts["ok"].all(), verdicts


@pytest.mark.slow
def test_ci_lr_curves_follow_the_schedules(ci):
    """The lr column (the rate at the start of each epoch) against each kind's closed form."""
    sweep, result, _, _ = ci
    e, n = sweep.epochs, sweep.steps_per_epoch
    t = np.arange(e, dtype=np.float64)  # epochs done at the start of epoch t + 1
    lr = result.curves.sort_values("epoch").groupby("run_id")["lr"].apply(np.asarray)
    for _, run in result.runs.iterrows():
        if run["kind"] == "step":
            factor = 0.5 ** np.floor(t / run["step_size"])
        elif run["kind"] == "exponential":
            factor = 0.1 ** (t / e)
        elif run["kind"] == "time_based":
            factor = 1 / (1 + 9 / (e * n) * t * n)
        else:
            factor = np.ones(e)
        np.testing.assert_allclose(lr[run["run_id"]], run["lr"] * factor, rtol=1e-5)


@pytest.mark.slow
def test_ci_every_kind_learns_digits(ci):
    numbers = ci[2]["numbers"].set_index("kind")
    assert (numbers["final_test_acc_mean"] > 0.95).all()
    assert (numbers["epochs_to_target_n"] == len(ci[0].seeds)).all()


@pytest.mark.slow
def test_ci_decay_does_not_speed_up_sgd(ci):
    """Claims "constant: slower convergence than dynamic rates" and "exponential: improved
    convergence": at the same base lr and seeds, a decaying rate covers less ground early, so
    its train-loss area is not below the constant rate's."""
    measured = ci[2]["measured"]
    auc = measured.groupby(["kind", "setting", "lr"])["loss_auc"].mean()
    lr = ci[2]["numbers"].set_index("kind").loc["constant", "best_lr"]
    for kind in ("exponential", "time_based"):
        assert auc.loc[(kind, "", lr)] >= auc.loc[("constant", "", lr)]


@pytest.mark.slow
def test_ci_time_based_decay_ends_at_a_higher_train_loss(ci):
    """Claim "time-based: more precise convergence late": it ends above the constant rate."""
    best = ci[2]["best"]
    final = best.groupby("kind")["final_train_loss"].mean()
    assert final["time_based"] > final["constant"]


@pytest.mark.slow
def test_ci_adaptive_accuracy_is_close_to_constant_sgd(ci):
    """Claim "adaptive: high accuracy": within 2 points of tuned constant SGD, either way."""
    acc = ci[2]["numbers"].set_index("kind")["final_test_acc_mean"]
    for name in st.ADAPTIVE_LRS:
        assert abs(acc[name] - acc["constant"]) < 0.02


@pytest.mark.slow
def test_ci_summary_and_files(ci):
    sweep, result, tables, _ = ci
    text = cli.summary(st.NAME, st, sweep, result)
    assert "claims:" in text and "time_based" in text
    readme = (result.folder / "README.md").read_text()
    assert "## The claims (" in readme and "this setting cannot test" in readme
    assert (result.folder / "curves.png").stat().st_size > 10_000
    numbers = pd.read_csv(result.folder / "kind_numbers.csv")
    acc = tables["best"].groupby("kind")["final_test_acc"].agg(["mean", "std"])
    for _, row in numbers.iterrows():  # the table's numbers are the best runs' over seeds
        assert row["final_test_acc_mean"] == pytest.approx(acc.loc[row["kind"], "mean"])
        assert row["final_test_acc_std"] == pytest.approx(acc.loc[row["kind"], "std"])


def test_run_reports_through_the_runners_progress(ci):
    """One plan line and one closing line for every kind together (the runner's progress),
    not a quiet training per optimizer with lines of its own."""
    err = ci[3]
    assert err.count("plan: ") == 1 and err.count("\ndone: ") == 1, err
    assert "training ..." not in err
