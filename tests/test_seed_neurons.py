"""The single-neuron seed articles: KDnuggets' clipped perceptron (seed 003) and the error
curve of All About Circuits (seed 000), checked against the articles' numbers, the articles'
own code run as printed, and closed forms computed here with NumPy."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from experiments import error_bowl as eb
from experiments import kdnuggets_perceptron as kp
from lrbench import claims

# ---------------------------------------------------------------------------------------------
# Seed 003: the article's program, copied from the article (only the learning rate and the
# bias input are parameters here; an iteration cap guards against a loop that never stops).


def article_program(lr=0.00001, bias_input_is_x=True, cap=10_000):
    inputs = np.array([60, 40, 100, 300, -50, 310])
    desired_output = np.array([60, 40, 150, 250, -50, 250])
    weights = np.array([0.05, 0.1])

    def activation_function(inpt):
        if inpt > 250:
            return 250
        else:
            return inpt

    error, idx, iteration, history = 1, 0, 0, [weights]
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        while (iteration < 2000 or error >= 0.01) and iteration < cap:
            predicted = activation_function(weights[0] * 1 + weights[1] * inputs[idx])
            error = np.abs(np.mean(desired_output[idx] - predicted))
            scale = inputs[idx] if bias_input_is_x else np.array([1, inputs[idx]])
            weights = weights + lr * (desired_output[idx] - predicted) * scale
            history.append(weights)
            idx = (idx + 1) % inputs.shape[0]
            iteration += 1
    return weights, iteration, np.array(history)


def predictions(weights, xs=(10, 240, 550, -160)):
    z = weights[0] + weights[1] * np.asarray(xs, np.float64)
    return np.where(z > 250, 250.0, z)


@pytest.fixture(scope="module")
def perceptron():
    """Both rules over the half-decade sweep (it holds the article's 1, 0.1, 0.001 and 1e-5)."""
    return kp.train(kp.LRS)


def _run(perceptron, lr, rule):
    trace = perceptron[rule]
    (i,) = np.flatnonzero(np.isclose(trace["lr"], lr))
    return {k: v[i] for k, v in trace.items()}


def test_first_three_weight_vectors_without_a_learning_rate(perceptron):
    # The article's text: [0.05, 0.1] -> [3237.05, 3237.1] -> [-5162.95, -5162.9], with
    # predictions 6.05 then 250 and errors 53.95 then 210 (printed to 2 decimals).
    run = _run(perceptron, 1.0, "article")
    weights = np.stack([run["b"], run["W"]], -1)
    np.testing.assert_allclose(kp.TASK.initial, [0.05, 0.1])
    np.testing.assert_allclose(weights[0], [3237.05, 3237.1], atol=0.005)
    np.testing.assert_allclose(weights[1], [-5162.95, -5162.9], atol=0.005)
    np.testing.assert_allclose(run["predicted"][:2], [6.05, 250.0], atol=0.005)
    np.testing.assert_allclose(run["error"][:2], [53.95, 210.0], atol=0.005)
    # ... and the article's program agrees on the first six weight vectors (then they explode).
    _, _, history = article_program(lr=1.0)
    np.testing.assert_allclose(weights[:6], history[1:7], rtol=1e-12)
    assert np.sign(weights[1, 1]) != np.sign(weights[0, 1])  # it flips sign


def test_lr_1e5_learned_weights_and_predictions(perceptron):
    # The article shows these as an image; its printed code gives (NumPy float64, printed to
    # 8 significant digits): weights [1.2376634, 1.2876634] after 2002 iterations, predictions
    # 14.114297, 250, 250, -204.78848 for the inputs 10, 240, 550, -160.
    run = _run(perceptron, 1e-5, "article")
    np.testing.assert_allclose(run["final"], [1.2376634, 1.2876634], atol=5e-8)
    assert int(run["iterations"]) == 2002
    np.testing.assert_allclose(
        predictions(run["final"]), [14.114297, 250, 250, -204.78848], atol=5e-6
    )
    ref, iterations, _ = article_program(lr=1e-5)
    assert iterations == 2002
    np.testing.assert_allclose(run["final"], ref, rtol=1e-12)
    reference, reference_iterations = kp.article_reference()  # the module's own copy
    np.testing.assert_allclose(reference, ref, rtol=1e-15)
    assert reference_iterations == 2002


def test_textbook_rule_matches_the_program_with_bias_input_one(perceptron):
    for lr in (1e-4, 1e-5, 1e-7):
        run = _run(perceptron, lr, "textbook")
        ref, iterations, _ = article_program(lr=lr, bias_input_is_x=False)
        np.testing.assert_allclose(run["final"], ref, rtol=1e-12)
        assert int(run["iterations"]) == iterations


def test_article_rule_keeps_w_minus_b_and_reaches_its_least_squares_point(perceptron):
    # Both weights move by the same amount, so W - b stays 0.05; for lr -> 0 the cyclic delta
    # rule approaches the least-squares W of the family y = (W - 0.05) + W·x on the four
    # samples the clip leaves linear (closed form here).
    for lr in (1e-4, 1e-5, 1e-6):
        run = _run(perceptron, lr, "article")
        np.testing.assert_allclose(run["W"] - run["b"], 0.05, atol=1e-9)
    x = np.array([60.0, 40.0, 100.0, -50.0])
    t = np.array([60.0, 40.0, 150.0, -50.0])
    w_star = (1 + x) @ (t + 0.05) / ((1 + x) @ (1 + x))
    assert abs(_run(perceptron, 1e-6, "article")["final"][1] - w_star) < 1e-3
    assert w_star * 300 - 0.05 > 250  # the clipped samples are predicted above 250 there
    tied = kp.least_squares()["least squares, W − b = 0.05 (closed form)"]
    np.testing.assert_allclose(tied, [w_star - 0.05, w_star], rtol=1e-12)


@pytest.mark.parametrize("rule", ["article", "textbook"])
def test_sweep_stops_diverging_between_1e3_and_3e4(perceptron, rule):
    for lr in kp.LRS:
        run = _run(perceptron, lr, rule)
        finite = np.all(np.isfinite(run["final"]))
        assert finite == (lr <= 3e-4), (lr, run["final"])


def test_learning_rate_is_traced_and_each_rule_compiles_once(compile_counter):
    """The learning rate is per-run data; the rule (the task's bias input) selects one of two
    programs, each compiled once."""
    kp.train([1e-3, 1e-5])
    with compile_counter.counting():
        kp.train([0.5, 2e-6])
    assert compile_counter.count == 0


@pytest.fixture(scope="module")
def perceptron_result():
    """The whole experiment (the sweep and the finer grid), nothing written."""
    return kp.run(kp.get_config(), out=None, quiet=True)


@pytest.mark.slow
def test_claims_reach_their_declared_verdicts_with_independent_numbers(perceptron_result):
    table = perceptron_result.meta["claims"]
    assert list(table.index) == [c.id for c in kp.CLAIMS]
    assert table["held"].to_dict() == {c.id: c.expected for c in kp.CLAIMS}
    value = table["value"]
    # closed forms: the first update is lr·53.95·60; the article's code moves the bias by the
    # weight's step (bias input x), where a bias input +1 would move it by 1/60 of it
    np.testing.assert_allclose(value["update_lr0.001"], 53.95 * 60 * 0.001, rtol=1e-12)
    np.testing.assert_allclose(value["update_lr0.1"], 323.7, rtol=1e-12)
    assert value["bias_input_one"] == pytest.approx(1.0, abs=1e-12)
    assert value["samples_clipped_identity"] == 5  # 100 -> 150 is off min(x, 250)
    # the article's program (NumPy) turns non-finite at the same iteration as the engine
    _, _, history = article_program(lr=1.0, cap=400)
    first_bad = int(np.argmax(~np.all(np.isfinite(history), axis=1)))  # history[0]: the start
    assert value["lr1_explodes"] == first_bad
    # within 5% at lr 1e-5: 240 -> 250 and 550 -> 250 only (predictions from the article's code)
    pred = predictions(article_program(lr=1e-5)[0])
    expected = np.array([10.0, 240.0, 250.0, -160.0])
    share = np.mean(np.abs(pred - expected) <= 0.05 * np.abs(expected))
    assert share == 0.5 and value["lr_1e5_works_fine"] == share


@pytest.mark.slow
def test_a_claim_fails_when_its_number_moves(perceptron_result):
    """The claims read the tables: moving the first weight by 0.01 (twice the article's
    rounding) fails its claim, and a run at lr 1e-3 that did not diverge fails another."""
    from lrbench import claims

    tables = {"runs": perceptron_result.runs.copy(), **perceptron_result.meta["tables"]}
    tables["first_iterations"] = tables["first_iterations"].copy()
    tables["first_iterations"].loc[1, "W"] += 0.01
    tables["runs"].loc[tables["runs"]["lr"] == 1e-3, "diverged_at"] = None
    held = claims.evaluate(kp.CLAIMS, tables)["held"]
    assert held["lr1_iteration1_W"] == "no" and held["lr1_iteration1_b"] == "yes"
    assert held["larger_lr_diverges"] == "no"


# ---------------------------------------------------------------------------------------------
# Seed 000: one linear neuron, delta rule, constant and annealed α


@pytest.fixture(scope="module")
def bowl():
    trained = eb.train(eb.get_config())
    runs, _ = eb.build_runs(trained)
    return trained, runs


def _runs_at(runs, schedule, alpha):
    return runs[(runs["alpha_schedule"] == schedule) & np.isclose(runs["lr"], alpha)]


@pytest.mark.slow  # the bowl fixture trains the full sweep (about 8 s)
def test_least_squares_is_the_numpy_closed_form(bowl):
    trained, _ = bowl
    for seed, d in trained.data.items():
        w_np = np.linalg.lstsq(d["x"][:, None], d["t"], rcond=None)[0][0]
        w, e_min = eb.least_squares(d["x"], d["t"])
        np.testing.assert_allclose(w, w_np, rtol=1e-12)
        np.testing.assert_allclose(e_min, 0.5 * np.mean((d["t"] - w_np * d["x"]) ** 2), rtol=1e-12)
        # it is the minimum: the error is higher on either side
        assert eb.error(w_np + 1e-3, d["x"], d["t"]) > e_min < eb.error(w_np - 1e-3, d["x"], d["t"])
        assert abs(w_np - 2.0) < 0.3, seed  # the line the data are drawn from: t = 2·x + ε


@pytest.mark.slow  # the bowl fixture trains the full sweep (about 8 s)
def test_program_is_the_delta_rule_loop(bowl):
    trained, _ = bowl
    for schedule, alpha in (("constant", eb.GOOD), ("annealed", eb.TOO_LARGE)):
        i = eb._index(trained.configs, schedule, alpha, 0)
        d = trained.data[0]
        weight, path = eb.W0, []
        for k, j in enumerate(d["order"].reshape(-1)):
            weight = weight + trained.lr[i, k] * (d["t"][j] - weight * d["x"][j]) * d["x"][j]
            path.append(weight)
        np.testing.assert_allclose(trained.w[i], path, rtol=1e-10, atol=1e-12)
    # the annealed rate is α₀/(1 + k/20) (lrbench.schedules evaluates it in float32)
    i = eb._index(trained.configs, "annealed", eb.TOO_LARGE, 0)
    k = np.arange(trained.lr.shape[1])
    np.testing.assert_allclose(trained.lr[i], eb.TOO_LARGE / (1 + k / 20), rtol=1e-6)


@pytest.mark.slow  # the bowl fixture trains the full sweep (about 8 s)
def test_bounce_share_and_settling_from_the_traces(bowl):
    """Two runs' per-run numbers re-derived here from their weight traces, by definition."""
    trained, runs = bowl
    x, t = trained.data[0]["x"], trained.data[0]["t"]
    w_star = x @ t / (x @ x)

    def error(w):
        return 0.5 * np.mean((t - np.asarray(w)[..., None] * x) ** 2, axis=-1)

    for alpha, settles in ((eb.GOOD, True), (eb.TOO_LARGE, False)):
        i = eb._index(trained.configs, "constant", alpha, 0)
        w = trained.w[i]
        before = np.concatenate([[eb.W0], w[:49]])
        crossings = np.mean((before - w_star) * (w[:50] - w_star) < 0)
        excess = error(w) - error(w_star)
        outside = np.flatnonzero(excess > 0.02 * (error(eb.W0) - error(w_star)))
        first = outside[-1] + 2 if outside.size else 1  # 1-based update after the last outside
        assert (first <= len(w) - 50 + 1) == settles  # inside for at least the last epoch
        assert runs.iloc[i]["bounce_share"] == pytest.approx(crossings)
        steps = runs.iloc[i]["steps_to_converge"]
        assert steps == first if settles else np.isnan(steps)


@pytest.mark.slow  # the bowl fixture trains the full sweep (about 8 s)
def test_training_reaches_the_closed_form_optimum(bowl):
    _, runs = bowl
    annealed = _runs_at(runs, "annealed", eb.GOOD)
    gap = (annealed["w_final"] - annealed["w_least_squares"]).abs()
    assert gap.max() < 0.01
    good = _runs_at(runs, "constant", eb.GOOD)
    assert (good["w_final"] - good["w_least_squares"]).abs().max() < 0.2


@pytest.mark.slow  # the bowl fixture trains the full sweep (about 8 s)
def test_too_large_alpha_bounces_and_larger_diverges(bowl):
    _, runs = bowl
    good = _runs_at(runs, "constant", eb.GOOD)
    large = _runs_at(runs, "constant", eb.TOO_LARGE)
    assert large["steps_to_converge"].isna().all()  # never settles
    assert large["final_excess"].mean() > 10 * good["final_excess"].mean()
    assert large["bounce_share"].mean() > 2 * good["bounce_share"].mean()
    assert (large["status"] == "oscillating").mean() >= 0.6
    huge = _runs_at(runs, "constant", 3.0)
    assert (huge["status"] == "diverged").all()


@pytest.mark.slow  # the bowl fixture trains the full sweep (about 8 s)
def test_good_alpha_converges_faster_than_small(bowl):
    _, runs = bowl
    small = _runs_at(runs, "constant", eb.SMALL)
    good = _runs_at(runs, "constant", eb.GOOD)
    assert good["steps_to_converge"].notna().all() and small["steps_to_converge"].notna().all()
    assert (good["steps_to_converge"].to_numpy() * 5 < small["steps_to_converge"].to_numpy()).all()


@pytest.mark.slow  # the bowl fixture trains the full sweep (about 8 s)
def test_annealing_converges_where_constant_large_alpha_does_not(bowl):
    _, runs = bowl
    constant = _runs_at(runs, "constant", eb.TOO_LARGE)
    annealed = _runs_at(runs, "annealed", eb.TOO_LARGE)
    assert constant["steps_to_converge"].isna().all()
    assert annealed["steps_to_converge"].notna().all()
    assert annealed["final_excess"].max() < constant["final_excess"].min()
    # from every α₀ ≥ the good α, annealing ends lower than staying at α₀
    for alpha in eb.ALPHAS:
        if alpha >= eb.GOOD:
            a = _runs_at(runs, "annealed", alpha)["final_excess"].mean()
            c = _runs_at(runs, "constant", alpha)["final_excess"].mean()
            assert a < c, alpha


def _tables(runs):
    return {"runs": runs, "alpha_sweep": eb.sweep_table(runs),
            "closed_form": eb.closed_form_table(runs, eb.GOOD)}  # fmt: skip


@pytest.mark.slow  # the bowl fixture trains the full sweep (about 8 s)
def test_declared_claims_reach_their_declared_verdicts(bowl):
    _, runs = bowl
    table = claims.evaluate(eb.CLAIMS, _tables(runs))
    assert (table["held"] == [c.expected for c in eb.CLAIMS]).all(), table["held"].to_dict()
    # a few values against numbers computed here from the runs
    const = runs[runs["alpha_schedule"] == "constant"].groupby("lr")
    steps = const["steps_to_converge"].mean()
    assert table.loc["small_is_slow", "value"] == pytest.approx(steps[eb.SMALL] / steps[eb.GOOD])
    annealed = _runs_at(runs, "annealed", eb.GOOD)
    gap = (annealed["w_final"] - annealed["w_least_squares"]).abs().max()
    assert table.loc["reaches_the_bottom", "value"] == pytest.approx(gap)


@pytest.mark.slow  # the bowl fixture trains the full sweep (about 8 s)
def test_claims_fail_when_the_schedules_are_swapped(bowl):
    """With the schedule labels swapped, annealing's claims must not hold: they can fail."""
    _, runs = bowl
    swap = {"constant": "annealed", "annealed": "constant"}
    table = claims.evaluate(
        eb.CLAIMS, _tables(runs.assign(alpha_schedule=runs["alpha_schedule"].map(swap)))
    )
    for claim in (
        "too_large_never_settles",
        "annealing_rescues_large",
        "annealing_ends_lower",
        "annealing_ends_lowest",
        "reaches_the_bottom",
    ):
        assert table.loc[claim, "held"] == "no", claim
    # and a missing α leaves its claims not measured
    table = claims.evaluate(eb.CLAIMS, _tables(runs[~np.isclose(runs["lr"], eb.TOO_LARGE)]))
    assert table.loc["too_large_stays_high", "held"] == "not measured"


def test_claims_on_a_made_up_table():
    """The claims read a hand-made runs table (two seeds, no training) as worked out here."""
    nan = float("nan")
    # (schedule, α): steps to converge (NaN: never settles), final excess, bounce share
    made_up = {
        ("constant", 0.01): (200.0, 1e-4, 0.0),
        ("constant", 0.1): (20.0, 1e-3, 0.1),
        ("constant", 1.0): (nan, 0.5, 0.4),
        ("constant", 4.0): (nan, float("inf"), 0.6),  # diverges in every seed
        ("annealed", 0.01): (nan, 1.0, 0.0),
        ("annealed", 0.1): (40.0, 1e-6, 0.0),
        ("annealed", 1.0): (10.0, 1e-5, 0.3),
    }
    runs = pd.DataFrame(
        {"alpha_schedule": s, "lr": a, "seed": seed, "steps_to_converge": steps,
         "final_excess": excess, "bounce_share": bounce, "final_test_acc": 1.0,
         "status": "diverged" if a == 4.0 else "converged", "critical_alpha": 2.0 + seed,
         "w_least_squares": 2.0, "min_train_loss": 0.1,
         "w_final": 2.001 if s == "annealed" else 2.05}
        for (s, a), (steps, excess, bounce) in made_up.items() for seed in (0, 1)
    )  # fmt: skip
    table = claims.evaluate(eb.CLAIMS, _tables(runs))
    assert table["value"].to_dict() == pytest.approx(
        {
            "too_large_never_settles": 0.0,
            "too_large_jumps_across": 0.4 / 0.1,
            "too_large_stays_high": 0.5 / 1e-3,
            "good_settles_every_seed": 1.0,
            "good_is_fastest": 20 / 200,  # α 1 never settles: 0.01 is the only other
            "small_is_slow": 200 / 20,
            "annealing_rescues_large": 1.0,
            "annealing_ends_lower": 1.0,  # α₀ 0.1 and 1
            "annealing_settles_fastest": 10 / 20,  # annealed from 1 against constant 0.1
            "annealing_ends_lowest": 1e-6 / 1e-4,  # annealed from 0.1 against constant 0.01
            "reaches_the_bottom": 0.001,
            # 2/λ 2 and 3 (mean 2.5) between α 1 (no seed diverges) and 4 (every seed does)
            "diverges_beyond_2_over_lambda": (2.5 - 1) / (4 - 1),
        }
    )
    assert table.loc["diverges_beyond_2_over_lambda", ["low", "high"]].tolist() == pytest.approx(
        [1 / 3, 2 / 3]
    )
    assert (table["held"] == "yes").all()
    # a seed whose 2/λ lies beyond the boundary breaks the threshold claim (whole interval)
    table = claims.evaluate(eb.CLAIMS, _tables(runs.assign(critical_alpha=runs["seed"] * 4.5)))
    assert table.loc["diverges_beyond_2_over_lambda", "held"] == "no"
    # constant α 1 settling in one seed breaks the bouncing claim
    large = (runs["lr"] == 1.0) & (runs["alpha_schedule"] == "constant")
    runs.loc[large, "steps_to_converge"] = [30.0, nan]
    table = claims.evaluate(eb.CLAIMS, _tables(runs))
    assert table.loc["too_large_never_settles", ["value", "held"]].tolist() == [0.5, "no"]


def test_settle_step_definition():
    initial = 1.0
    assert eb.settle_step(np.array([0.5, 0.01, 0.0]), initial, band=0.02, hold=1) == 2.0
    assert np.isnan(eb.settle_step(np.array([0.5, 0.01, 0.5]), initial, band=0.02, hold=1))
    # ending inside the band for fewer than ``hold`` updates is not settling
    assert np.isnan(eb.settle_step(np.array([0.5, 0.5, 0.01]), initial, band=0.02, hold=2))


def test_curves_table_is_one_row_per_run_and_kept_epoch():
    from lrbench import probes

    loss = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    table = probes.curves_table(["a", "b"], {"lr": [0.1, 0.2], "loss": loss}, epochs=[3, 1])
    assert list(table.columns) == ["run_id", "epoch", "lr", "loss"]
    assert table.values.tolist() == [["a", 1, 0.1, 1.0], ["a", 2, 0.1, 2.0], ["a", 3, 0.1, 3.0],
                                     ["b", 1, 0.2, 4.0]]  # fmt: skip
    assert len(probes.curves_table(["a", "b"], {"loss": loss})) == 6


def test_critical_alpha_is_two_over_the_hessian_of_the_error():
    """2/λ with λ the second derivative of E(w) = ½·mean((t − w·x)²), by jax.hessian at two
    weights (E is quadratic in w), and one gradient step at α just below / above 2/λ shrinks /
    grows the distance to w*."""
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(True):
        d = eb.make_data(eb.get_config(), 3)
        x, t = jnp.asarray(d["x"]), jnp.asarray(d["t"])
        loss = lambda w: 0.5 * jnp.mean((t - w * x) ** 2)  # noqa: E731
        for w in (-1.0, 5.0):
            assert 2 / float(jax.hessian(loss)(w)) == pytest.approx(
                eb.critical_alpha(d["x"]), 1e-12
            )
        w_star = float(eb.least_squares(d["x"], d["t"])[0])
        for factor, shrinks in ((0.99, True), (1.01, False)):
            alpha = factor * eb.critical_alpha(d["x"])
            w1 = 0.0 - alpha * float(jax.grad(loss)(0.0))
            assert (abs(w1 - w_star) < abs(w_star)) == shrinks
