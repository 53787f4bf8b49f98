"""Every update rule: against NumPy re-derivations of its equations, against its optax twin,
on the optima of test problems (as optax's ``alias_test.py``), the two momentum conventions,
validation, and hyperparameters as traced data (one compile per optimizer kind)."""

from __future__ import annotations

import collections
import dataclasses
import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from lrbench import data, models, rules, runner, schedules
from lrbench.errors import ConfigError
from lrbench.models import MLPConfig
from lrbench.sweep import Optimizer, Sweep

ALL = rules.names()

# ---------------------------------------------------------------------------------------------
# The table of rules under test: one row per rule. Each row holds the rule's equations written
# out again in NumPy (float64: ``step(θ, g, α, t, hp, s)`` -> the next θ, ``s`` the rule's state
# arrays, zeros until the rule writes them), the learning rate of the optima tests (optax's
# alias_test.py values where it has the rule) and the settings under test: optax defaults,
# the other libraries' conventions, and non-default values large enough that a misplaced ε,
# β or learning rate changes the result.


class Row(NamedTuple):
    step: Callable
    convergence_lr: float
    cases: tuple[dict, ...] = ({},)
    init: Callable = lambda hp, th: {}  # noqa: E731  state arrays that do not start at 0


def _sgd(th, g, a, t, hp, s):
    return th - a * g


def _momentum(th, g, a, t, hp, s):
    s["v"] = hp["momentum"] * s["v"] + g
    return th - a * s["v"]


def _momentum_keras(th, g, a, t, hp, s):
    s["v"] = hp["momentum"] * s["v"] - a * g
    return th + s["v"]


def _nesterov(th, g, a, t, hp, s):
    s["v"] = hp["momentum"] * s["v"] + g
    return th - a * (g + hp["momentum"] * s["v"])


def _nesterov_keras(th, g, a, t, hp, s):
    s["v"] = hp["momentum"] * s["v"] - a * g
    return th + hp["momentum"] * s["v"] - a * g


def _adagrad(th, g, a, t, hp, s):
    s["s"] = s["s"] + g * g
    return th - a * g / (np.sqrt(s["s"] + hp["eps_root"]) + hp["eps"])


def _adadelta(th, g, a, t, hp, s):
    rho, eps = hp["rho"], hp["eps"]
    s["s"] = rho * s["s"] + (1 - rho) * g * g  # E[g²]
    d = np.sqrt(s["u"] + eps) / np.sqrt(s["s"] + eps) * g
    s["u"] = rho * s["u"] + (1 - rho) * d * d  # E[Δx²]
    return th - a * d


def _rmsprop(th, g, a, t, hp, s, centered=False):
    rho = hp["rho"]
    s["s"] = rho * s["s"] + (1 - rho) * g * g
    var = s["s"]
    if centered:
        s["m"] = rho * s["m"] + (1 - rho) * g
        var = s["s"] - s["m"] * s["m"]
    s["v"] = hp["momentum"] * s["v"] + a * g / (np.sqrt(var + hp["eps_root"]) + hp["eps"])
    return th - s["v"]


def _adam(th, g, a, t, hp, s, variant="adam"):
    b1, b2 = hp["b1"], hp["b2"]
    s["m"] = b1 * s["m"] + (1 - b1) * g
    s["v"] = b2 * s["v"] + (1 - b2) * g * g
    m_hat = s["m"] / (1 - b1**t)
    if variant == "nadam":
        m_hat = b1 * s["m"] / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1**t)
    v_hat = s["v"] / (1 - b2**t)
    if variant == "amsgrad":
        s["vmax"] = np.maximum(s["vmax"], v_hat)
        v_hat = s["vmax"]
    step = m_hat / (np.sqrt(v_hat + hp["eps_root"]) + hp["eps"])
    return th - a * (step + hp.get("weight_decay", 0.0) * th)


def _adamax(th, g, a, t, hp, s):
    b1, b2 = hp["b1"], hp["b2"]
    s["m"] = b1 * s["m"] + (1 - b1) * g
    s["u"] = np.maximum(b2 * s["u"], np.abs(g) + hp["eps"])
    return th - a * s["m"] / ((1 - b1**t) * s["u"])


def _lion(th, g, a, t, hp, s):  # Chen et al. 2023, Algorithm 2
    b1, b2 = hp["b1"], hp["b2"]
    d = np.sign(b1 * s["m"] + (1 - b1) * g)
    s["m"] = b2 * s["m"] + (1 - b2) * g
    return th - a * (d + hp["weight_decay"] * th)


_ADAGRAD_INIT = lambda hp, th: {"s": np.full_like(th, hp["initial_accumulator_value"])}  # noqa: E731
_RMSPROP_INIT = lambda hp, th: {"s": np.full_like(th, hp["initial_scale"])}  # noqa: E731
_ADAM_LIKE = {"b1": 0.8, "b2": 0.95, "eps": 1e-3, "eps_root": 1e-4}

RULES = {
    "delta": Row(_sgd, 1e-3),
    "sgd": Row(_sgd, 1e-3),
    "momentum": Row(_momentum, 1e-3, ({"momentum": 0.8},)),
    "momentum_keras": Row(_momentum_keras, 1e-3, ({"momentum": 0.8},)),
    "nesterov": Row(_nesterov, 1e-3, ({"momentum": 0.7},)),
    "nesterov_keras": Row(_nesterov_keras, 1e-3, ({"momentum": 0.7},)),
    "adagrad": Row(_adagrad, 1.0, (
        {},
        {"initial_accumulator_value": 0.0, "eps": 1e-10, "eps_root": 0.0},  # PyTorch
        {"initial_accumulator_value": 0.5, "eps": 1e-2, "eps_root": 1e-3},
    ), _ADAGRAD_INIT),
    "adadelta": Row(_adadelta, 0.1, ({}, {"rho": 0.95, "eps": 1e-3})),
    "rmsprop": Row(_rmsprop, 5e-3, (
        {},
        {"rho": 0.99, "eps": 1e-8, "eps_root": 0.0},  # PyTorch
        {"rho": 0.8, "eps": 1e-2, "eps_root": 1e-3, "initial_scale": 1.0, "momentum": 0.9},
    ), _RMSPROP_INIT),
    "rmsprop_centered": Row(functools.partial(_rmsprop, centered=True), 5e-3, (
        {}, {"rho": 0.8, "eps": 1e-2, "eps_root": 1e-3, "momentum": 0.5},
    ), _RMSPROP_INIT),
    "adam": Row(_adam, 0.1, ({}, _ADAM_LIKE)),
    "adamw": Row(_adam, 0.1, ({"b1": 0.8, "b2": 0.95, "eps": 1e-3, "weight_decay": 0.1},)),
    "amsgrad": Row(functools.partial(_adam, variant="amsgrad"), 0.1, ({"b1": 0.8, "b2": 0.9, "eps": 1e-3, "eps_root": 1e-4},)),
    "nadam": Row(functools.partial(_adam, variant="nadam"), 1e-2, (_ADAM_LIKE,)),
    "adamax": Row(_adamax, 0.1, ({"b1": 0.8, "b2": 0.95, "eps": 1e-3},)),
    "lion": Row(_lion, 3e-3, ({"b1": 0.8, "b2": 0.95, "weight_decay": 0.1},)),
}  # fmt: skip

CASES = [(name, hp) for name, row in RULES.items() for hp in row.cases]
CASE_IDS = [f"{n}-{'-'.join(f'{k}={v:g}' for k, v in hp.items()) or 'default'}" for n, hp in CASES]

ISSUE_RULES = {
    "delta", "sgd", "momentum", "momentum_keras", "nesterov", "adagrad", "adadelta", "rmsprop",
    "rmsprop_centered", "adam", "adamw", "amsgrad", "nadam", "adamax",
}  # fmt: skip


def test_every_rule_is_tested():
    assert set(RULES) == set(ALL)
    assert ISSUE_RULES <= set(ALL)


# ---------------------------------------------------------------------------------------------
# Against NumPy re-derivations, on a fixed quadratic, 50 steps, with a decaying learning rate

# f(θ) = ½ Σ aᵢ (θᵢ − cᵢ)²; one curvature is 0, so one coordinate always sees a zero gradient.
_A = np.array([0.5, 1.0, 2.0, 4.0, 8.0, 0.25, 0.0])
_C = np.array([1.0, -2.0, 0.5, 3.0, -1.0, 2.0, 0.7])
_THETA0 = np.array([0.3, 0.1, -0.4, 1.0, 0.2, -1.5, 0.9])


def _lr(name, t):
    base = {"adadelta": 1.0, "adagrad": 0.3}.get(name, 0.05)
    return base / (1.0 + 0.05 * t)


def _numpy_rule(name, hp, steps):
    """The rule's equations (its row's ``step``), in NumPy float64 from ``_THETA0``."""
    hp = {**rules.spec(name).hparams, **hp}
    row = RULES[name]
    th = _THETA0.copy()
    state = collections.defaultdict(lambda: np.zeros_like(th), row.init(hp, th))
    for t in range(1, steps + 1):
        th = row.step(th, _A * (th - _C), _lr(name, t - 1), t, hp, state)
    return th


def _lrbench_rule(name, hp, steps, impl="hand"):
    # A two-leaf pytree, so the rule's tree handling is exercised too (keys in ravel order).
    params = {
        "a_kernel": jnp.asarray(_THETA0[:4].reshape(2, 2)),
        "b_bias": jnp.asarray(_THETA0[4:]),
    }
    flat0, unravel = ravel_pytree(params)
    a, c = jnp.asarray(_A), jnp.asarray(_C)

    def grad(p):
        flat, _ = ravel_pytree(p)
        return unravel(a * (flat - c))

    state = rules.make(name, impl, learning_rate=_lr(name, 0), **hp).init(params)
    for t in range(steps):
        # Rebuilt every step with that step's rate, as the engine does.
        tx = rules.make(name, impl, learning_rate=_lr(name, t), **hp)
        updates, state = tx.update(grad(params), state, params)
        params = optax.apply_updates(params, updates)
    assert np.allclose(np.asarray(flat0), _THETA0)
    return np.asarray(ravel_pytree(params)[0])


@pytest.mark.parametrize(("name", "hp"), CASES, ids=CASE_IDS)
def test_matches_numpy_equations(name, hp, x64):
    expected = _numpy_rule(name, hp, steps=50)
    got = _lrbench_rule(name, hp, steps=50)
    assert not np.allclose(expected, _THETA0)  # it moved
    np.testing.assert_allclose(got, expected, rtol=1e-11, atol=1e-13)


def _twin_can_express(name, hp) -> bool:
    try:
        rules.check_impl(name, "optax", hp)
    except ConfigError as err:
        assert err.field in rules.spec(name).twin_requires
        return False
    return True


TWIN_CASES = [(n, hp) for n, hp in CASES if _twin_can_express(n, hp)]


@pytest.mark.parametrize(
    ("name", "hp"),
    TWIN_CASES,
    ids=[i for c, i in zip(CASES, CASE_IDS, strict=True) if c in TWIN_CASES],
)
def test_twin_on_quadratic(name, hp, x64):
    """Where the optax twin can express the setting, it follows the same equations (the
    others, ε outside the root of AdaGrad/RMSProp, are refused: see the test below)."""
    np.testing.assert_allclose(
        _lrbench_rule(name, hp, 50, "optax"), _numpy_rule(name, hp, 50), rtol=1e-11, atol=1e-13
    )


# ---------------------------------------------------------------------------------------------
# The delta rule, as seeds 000 and 003 use it


def test_delta_rule_reproduces_seed_003():
    """KDnuggets' perceptron without a learning rate (α = 1): the weights explode and flip.

    The article adds ``(desired − predicted)·input`` to *both* the bias and the weight
    ([0.05, 0.1] + 53.95·60 = [3237.05, 3237.1]), so both components see the input as x.
    """
    w = jnp.array([0.05, 0.1], jnp.float32)
    tx = rules.make("delta", learning_rate=1.0)
    state = tx.init(w)
    seen = []
    for inpt, desired in ((60.0, 60.0), (40.0, 40.0)):
        predicted = jnp.minimum(w[0] + w[1] * inpt, 250.0)  # activation clipped at 250
        signal = rules.delta_signal(jnp.array([inpt, inpt]), desired, predicted)
        updates, state = tx.update(signal, state, w)
        w = optax.apply_updates(w, updates)
        seen.append(np.asarray(w))
    np.testing.assert_allclose(seen[0], [3237.05, 3237.1], rtol=1e-6)
    np.testing.assert_allclose(seen[1], [-5162.95, -5162.9], rtol=1e-6)


def test_delta_rule_is_lms_on_a_linear_neuron(x64):
    """Widrow-Hoff, one example at a time: ``w ← w + α·(t − w·x)·x``."""
    rng = np.random.default_rng(3)
    xs, w_true = rng.normal(size=(50, 3)), np.array([0.5, -1.0, 2.0])
    ts = xs @ w_true
    alpha = 0.1
    w_np = np.zeros(3)
    for x, t in zip(xs, ts, strict=True):
        w_np = w_np + alpha * (t - w_np @ x) * x
    w = jnp.zeros(3)
    tx = rules.make("delta", learning_rate=alpha)
    state = tx.init(w)
    for x, t in zip(xs, ts, strict=True):
        updates, state = tx.update(rules.delta_signal(x, t, w @ x), state, w)
        w = optax.apply_updates(w, updates)
    np.testing.assert_allclose(np.asarray(w), w_np, rtol=1e-12)
    assert np.linalg.norm(w_np - w_true) < np.linalg.norm(w_true)  # and it learns


def test_delta_signal_is_the_softmax_cross_entropy_gradient(x64):
    rng = np.random.default_rng(4)
    x, kernel, label = jnp.asarray(rng.normal(size=4)), jnp.asarray(rng.normal(size=(4, 3))), 2

    def loss(k):
        return optax.softmax_cross_entropy_with_integer_labels(x @ k, label)

    target = jax.nn.one_hot(label, 3)
    np.testing.assert_allclose(
        rules.delta_signal(x, target, jax.nn.softmax(x @ kernel)),
        jax.grad(loss)(kernel),
        rtol=1e-12,
    )


# ---------------------------------------------------------------------------------------------
# Hand rule against its optax twin: 1,000 full-batch steps of a small MLP


def _mlp_problem(dtype):
    ds = data.load("iris")
    net = models.build(MLPConfig(hidden=(8,), activation="tanh", kernel_init="glorot_uniform"), 3)
    x, y = jnp.asarray(ds.x_train, dtype), jnp.asarray(ds.y_train)
    params = net.init(jax.random.PRNGKey(0), x[:1])["params"]
    params = jax.tree_util.tree_map(lambda p: p.astype(dtype), params)

    def loss_fn(p):
        logits = net.apply({"params": p}, x)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))

    return params, loss_fn


DTYPES = (jnp.float32, jnp.float64)


def _train_mlp(name, hp=None, runs=(("hand", 1.0), ("optax", 1.0)), steps=1000):
    """Trains ``name`` on the MLP for each (impl, initial-weight scale) of ``runs`` in float32
    and in float64, all in one program (one compile per rule); the learning rate decays and
    the hyperparameters are traced. Returns ``{(impl, scale, dtype name): (params, loss)}``."""
    spec = rules.spec(name)
    problems = {dt: _mlp_problem(dt) for dt in DTYPES}
    hp = {k: jnp.asarray(v) for k, v in {**spec.hparams, **(hp or {})}.items()}

    @jax.jit
    def run(lr0, hp):
        out = {}
        for dt, (params, loss_fn) in problems.items():
            hp_dt, lr0_dt = {k: v.astype(dt) for k, v in hp.items()}, lr0.astype(dt)
            for impl, scale in runs:

                def step(carry, t, impl=impl, hp_dt=hp_dt, lr0_dt=lr0_dt, loss_fn=loss_fn):
                    p, s = carry
                    tx = rules.make(name, impl, learning_rate=lr0_dt / (1 + t / 250), **hp_dt)
                    u, s = tx.update(jax.grad(loss_fn)(p), s, p)
                    return (optax.apply_updates(p, u), s), None

                p0 = jax.tree_util.tree_map(lambda p, scale=scale: p * scale, params)
                state = rules.make(name, impl, learning_rate=lr0_dt, **hp_dt).init(p0)
                (p, _), _ = jax.lax.scan(step, (p0, state), jnp.arange(steps, dtype=dt))
                out[impl, scale, jnp.dtype(dt).name] = (p, loss_fn(p))
        return out

    return run(jnp.asarray(spec.default_learning_rate), hp)


def _max_rel_diff(a, b) -> float:
    """max over leaves of ‖a − b‖∞ / ‖b‖∞ (the twin audit's measure)."""
    return max(
        float(jnp.max(jnp.abs(x - y)) / jnp.max(jnp.abs(y)))
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)
    )


# Rules whose default run is chaotic on this problem, and a setting where it is not: centered
# RMSProp divides by √(ν − μ² + ε_root), and where a weight's gradient settles ν − μ² cancels
# to rounding noise that ε_root = 1e-8 hardly bounds; a larger ε_root conditions it.
CHAOTIC_AT_DEFAULTS = {"rmsprop_centered": {"eps_root": 1e-4}}


# Two rules run in the fast tier (one stateless, one with moments); the rest are slow.
FAST_TWINS = ("sgd", "adam")


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=() if n in FAST_TWINS else pytest.mark.slow) for n in ALL]
)
def test_twin_mlp(name, x64):
    """1,000 full-batch steps: float64 within 1e-10; float32 rounds differently (op order,
    rsqrt vs 1/√, fusion) and 1,000 steps amplify that, but far below what training moves."""
    out = _train_mlp(name, CHAOTIC_AT_DEFAULTS.get(name))
    start, loss_fn = _mlp_problem(jnp.float64)
    (hand, hand_loss), (twin, twin_loss) = out["hand", 1.0, "float64"], out["optax", 1.0, "float64"]
    assert jax.tree_util.tree_leaves(hand)[0].dtype == jnp.float64
    assert float(hand_loss) < float(loss_fn(start))  # it trained
    assert _max_rel_diff(start, twin) > 1e-3  # and moved far more than the tolerance
    assert _max_rel_diff(hand, twin) <= 1e-10
    assert abs(float(hand_loss) - float(twin_loss)) <= 1e-10 * float(twin_loss)
    (hand32, _), (twin32, _) = out["hand", 1.0, "float32"], out["optax", 1.0, "float32"]
    assert jax.tree_util.tree_leaves(hand32)[0].dtype == jnp.float32  # no silent upcast
    assert _max_rel_diff(hand32, twin32) <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CHAOTIC_AT_DEFAULTS))
def test_twin_mlp_chaotic_defaults(name, x64):
    """At the defaults the pair cannot agree to 1e-10 because optax cannot agree with itself:
    the twin started from weights scaled by 1 + 1e-15 ends far more than 1e-10 away. The hand
    rule stays within a few hundred times that floor."""
    out = _train_mlp(name, runs=(("hand", 1.0), ("optax", 1.0), ("optax", 1 + 1e-15)))
    twin = out["optax", 1.0, "float64"][0]
    floor = _max_rel_diff(out["optax", 1 + 1e-15, "float64"][0], twin)
    assert floor > 1e-8
    assert _max_rel_diff(out["hand", 1.0, "float64"][0], twin) <= 300 * floor


def test_twin_cannot_take_eps_outside_the_root():
    """optax's AdaGrad and RMSProp take one ε, inside the root: no twin for PyTorch's ε."""
    for name in ("adagrad", "rmsprop", "rmsprop_centered"):
        rules.make(name, "hand", eps=1e-10)
        with pytest.raises(ConfigError, match="no optax twin") as err:
            rules.make(name, "optax", eps=1e-10)
        assert err.value.field == "eps"
        rules.make(name, "optax", eps=0.0)


# ---------------------------------------------------------------------------------------------
# Optima of a quadratic and of Rosenbrock (optax alias_test.py: 10,000 steps, 3e-2)


def _parabola():
    optimum = jnp.array([1.0, -1.0, 1.0])
    return jnp.array([-1.0, 10.0, 1.0]), optimum, lambda p: jnp.sum((p - optimum) ** 2)


def _rosenbrock():
    def f(p):
        return (1.0 - p[0]) ** 2 + 100.0 * (p[1] - p[0] ** 2) ** 2

    return jnp.array([0.0, 0.0]), jnp.array([1.0, 1.0]), f


@pytest.mark.parametrize("target", [_parabola, _rosenbrock], ids=["parabola", "rosenbrock"])
@pytest.mark.parametrize("name", ALL)
def test_reaches_optimum(name, target):
    x0, optimum, f = target()
    tx = rules.make(name, "hand", learning_rate=RULES[name].convergence_lr)

    @jax.jit
    def run(x0):
        def step(carry, _):
            p, s = carry
            u, s = tx.update(jax.grad(f)(p), s, p)
            return (optax.apply_updates(p, u), s), None

        (p, _), _ = jax.lax.scan(step, (x0, tx.init(x0)), None, length=10_000)
        return p

    np.testing.assert_allclose(run(x0), optimum, rtol=3e-2, atol=3e-2)


# ---------------------------------------------------------------------------------------------
# The two momentum conventions


def _run_updates(name, grads, lrs, mu):
    """Per-step updates of a rule fed a fixed gradient sequence (float64)."""
    theta = jnp.zeros(grads.shape[1])
    state = rules.make(name, learning_rate=lrs[0], momentum=mu).init(theta)
    out = []
    for g, a in zip(grads, lrs, strict=True):
        u, state = rules.make(name, learning_rate=a, momentum=mu).update(jnp.asarray(g), state)
        out.append(np.asarray(u))
    return np.array(out)


@pytest.mark.parametrize("pair", [("momentum", "momentum_keras"), ("nesterov", "nesterov_keras")])
def test_momentum_conventions_agree_at_constant_lr(pair, x64):
    grads = np.random.default_rng(0).normal(size=(100, 4))
    lrs = np.full(100, 0.05)
    a, b = (_run_updates(n, grads, lrs, 0.9) for n in pair)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("pair", [("momentum", "momentum_keras"), ("nesterov", "nesterov_keras")])
def test_momentum_conventions_differ_as_the_algebra_predicts(pair, x64):
    """With a decaying α, optax/PyTorch scale the whole velocity by *today's* α,
    ``u_t = −α_t·Σ_s μ^(t−s)·g_s``, while Keras keeps each step's own α,
    ``u_t = −Σ_s μ^(t−s)·α_s·g_s`` (Nesterov adds the look-ahead term to both)."""
    rng = np.random.default_rng(1)
    steps, mu = 60, 0.9
    grads = rng.normal(size=(steps, 3))
    lrs = 0.1 * 0.95 ** np.arange(steps)
    torch_like, keras_like = (_run_updates(n, grads, lrs, mu) for n in pair)
    nesterov = pair[0] == "nesterov"
    expected_torch, expected_keras = np.zeros_like(grads), np.zeros_like(grads)
    for t in range(steps):
        w = mu ** (t - np.arange(t + 1))[:, None]  # μ^(t−s), s = 0..t
        v_torch = np.sum(w * grads[: t + 1], axis=0)
        v_keras = -np.sum(w * lrs[: t + 1, None] * grads[: t + 1], axis=0)
        if nesterov:
            expected_torch[t] = -lrs[t] * (grads[t] + mu * v_torch)
            expected_keras[t] = -lrs[t] * grads[t] + mu * v_keras
        else:
            expected_torch[t] = -lrs[t] * v_torch
            expected_keras[t] = v_keras
    np.testing.assert_allclose(torch_like, expected_torch, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(keras_like, expected_keras, rtol=1e-10, atol=1e-14)
    assert np.max(np.abs(torch_like - keras_like)) > 1e-3  # they do differ


def test_lr_drop_momentum_keras_keeps_the_old_velocity(x64):
    """A constant gradient g = 1 and α dropping 1 → 0.1 at step k: the first step after the
    drop is ``−0.1·(1−μᵏ⁺¹)/(1−μ)`` in the optax/PyTorch convention and
    ``−(0.1 + μ·(1−μᵏ)/(1−μ))`` in the Keras one (9.1× larger for μ = 0.9, large k)."""
    mu, k, steps = 0.9, 50, 60
    grads = np.ones((steps, 1))
    lrs = np.where(np.arange(steps) < k, 1.0, 0.1)
    torch_like = _run_updates("momentum", grads, lrs, mu)[k, 0]
    keras_like = _run_updates("momentum_keras", grads, lrs, mu)[k, 0]
    np.testing.assert_allclose(torch_like, -0.1 * (1 - mu ** (k + 1)) / (1 - mu), rtol=1e-12)
    np.testing.assert_allclose(keras_like, -(0.1 + mu * (1 - mu**k) / (1 - mu)), rtol=1e-12)
    assert keras_like / torch_like == pytest.approx(9.1, rel=1e-2)


# ---------------------------------------------------------------------------------------------
# Hyperparameters are per-run traced data


def _valid_grid(name):
    """Four valid values of every hyperparameter (and the learning rate), one per run."""
    grid = {}
    for i, (k, default) in enumerate(rules.spec(name).hparams.items()):
        if k in ("momentum", "b1"):
            grid[k] = [0.0, 0.5, 0.8, 0.9]
        elif k == "rho":  # ρ = 0 makes centered RMSProp divide by ε alone: it diverges
            grid[k] = [0.5, 0.8, 0.9, 0.95]
        elif k == "b2":
            grid[k] = [0.9, 0.95, 0.99, 0.999]
        else:  # ε, decay, initial values: positive, distinct
            grid[k] = [(default or 1e-3) * f for f in (1.0, 2.0, 5.0, 10.0)]
        grid[k] = grid[k][i % 4 :] + grid[k][: i % 4]  # not all in lockstep
    return {k: np.asarray(v) for k, v in grid.items()}


@pytest.mark.parametrize("name", ALL)
def test_traced_grid_matches_concrete_values(name, x64, compile_counter):
    """A vmapped grid over every hyperparameter runs in one program and gives, run by run,
    what the rule built from plain Python floats gives."""
    params0 = jnp.asarray(_THETA0)
    grid = _valid_grid(name)
    lrs = np.array([0.01, 0.02, 0.05, 0.1])

    def run(lr, hp, steps=20):
        tx = rules.make(name, learning_rate=lr, **hp)
        p, s = params0, tx.init(params0)
        for _ in range(steps):
            u, s = tx.update(jnp.asarray(_A) * (p - jnp.asarray(_C)), s, p)
            p = optax.apply_updates(p, u)
        return p

    batched = jax.jit(jax.vmap(run))
    # Inputs are moved to the device first: that has small compiled helpers of its own.
    args = jnp.asarray(lrs), {k: jnp.asarray(v) for k, v in grid.items()}
    args2 = jnp.asarray(lrs[::-1].copy()), {k: jnp.asarray(v[::-1].copy()) for k, v in grid.items()}
    with compile_counter.counting():
        out = batched(*args)
        out2 = batched(*args2)
    assert compile_counter.count == 1
    for i in range(4):
        concrete = run(float(lrs[i]), {k: float(v[i]) for k, v in grid.items()})
        np.testing.assert_allclose(out[i], concrete, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(out2[3 - i], concrete, rtol=1e-12, atol=1e-14)
    assert len({tuple(np.round(o, 12)) for o in np.asarray(out)}) == 4


@pytest.mark.parametrize("impl", rules.IMPLS)
@pytest.mark.parametrize("name", ALL)
def test_state_structure_does_not_depend_on_values(name, impl):
    params = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
    grid = _valid_grid(name)
    if impl == "optax":  # values the optax twin has no parameter for stay at theirs
        grid.update({k: np.full(4, v) for k, v in rules.spec(name).twin_requires.items()})
    structures = {
        jax.tree_util.tree_structure(
            rules.make(
                name, impl, learning_rate=0.1, **{k: float(v[i]) for k, v in grid.items()}
            ).init(params)
        )
        for i in (0, 3)
    }
    assert len(structures) == 1


@pytest.mark.slow
def test_sweep_compiles_once_per_optimizer_kind(compile_counter):
    """3 optimizers × 4 momentum/β values × 8 learning rates: exactly 3 programs; a second
    grid with other values adds none; and the values reach the program (runs differ)."""
    model = MLPConfig(hidden=(4,), activation="tanh", kernel_init="glorot_uniform")

    def sweep(lrs, values):
        return Sweep(
            experiment="compile_count",
            dataset="iris",
            model=model,
            epochs=1,
            batch_size=35,
            lrs=lrs,
            optimizers=(
                Optimizer("momentum", {"momentum": values}),
                Optimizer("nesterov", {"momentum": values}),
                Optimizer("adam", {"b1": values}),
            ),
            seeds=(0,),
        )

    # Moving the data set to the device compiles small helpers, and the minibatch orders
    # (made before the program, or on each device when a device holds one seed group) have
    # programs of their own: a grid of another optimizer on the same data compiles them first.
    warm = dataclasses.replace(sweep((0.1,), (0.0,)), optimizers=(Optimizer("sgd"),))
    runner.train(warm)
    lrs = tuple(float(v) for v in np.geomspace(1e-3, 0.3, 8))
    with compile_counter.counting():
        runs, history, timing = runner.train(sweep(lrs, (0.0, 0.5, 0.9, 0.99)))
    assert len(runs) == 3 * 4 * 8
    assert timing["programs"] == 3
    assert compile_counter.count == 3
    with compile_counter.counting():
        runner.train(sweep(tuple(lr * 1.5 for lr in lrs), (0.2, 0.3, 0.6, 0.95)))
    assert compile_counter.count == 3  # no new compile
    final = history.train_loss[:, -1]
    for opt, col in (("momentum", "momentum"), ("nesterov", "momentum"), ("adam", "b1")):
        rows = ((runs["optimizer"] == opt) & (runs["lr"] == lrs[-2])).to_numpy()
        assert runs.loc[rows, col].nunique() == 4
        assert len(np.unique(np.round(final[rows], 7))) == 4


# ---------------------------------------------------------------------------------------------
# Validation: ConfigError (a ValueError) naming the parameter


def test_unknown_rule_and_hyperparameter():
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'") as err:
        rules.make("adamm")
    assert err.value.field == "optimizer"
    with pytest.raises(ConfigError) as err:
        rules.make("adam", beta1=0.9)
    assert err.value.field == "beta1"
    with pytest.raises(ConfigError) as err:
        rules.make("sgd", impl="torch")
    assert err.value.field == "impl"


@pytest.mark.parametrize("lr", [-0.1, 0.0, float("nan"), float("inf")])
def test_bad_learning_rate(lr):
    with pytest.raises(ValueError) as err:
        rules.make("adam", learning_rate=lr)
    assert err.value.field == "lr"


_BAD = {
    "momentum": [1.0, -0.1, 1.5],
    "b1": [1.0, -0.1],
    "b2": [1.0, -0.5],
    "rho": [1.0, -0.1],
    "weight_decay": [-1e-4],
    "initial_accumulator_value": [-0.1],
    "initial_scale": [-1.0],
}


@pytest.mark.parametrize("name", ALL)
def test_bad_hyperparameters_name_the_parameter(name):
    s = rules.spec(name)
    for key in s.hparams:
        bad = list(_BAD.get(key, [])) + [float("nan"), -1e-3]
        for value in bad:
            with pytest.raises(ValueError, match=key) as err:
                rules.make(name, **{key: value})
            assert err.value.field == key, (name, key, value)


@pytest.mark.parametrize("name", [n for n in ALL if "eps" in rules.spec(n).hparams])
def test_eps_must_be_positive(name):
    """ε ≤ 0 is refused: where a rule has one ε, it must be > 0; where it has ε and ε_root,
    both must be ≥ 0 and not both 0."""
    hp = rules.spec(name).hparams
    if "eps_root" not in hp:
        with pytest.raises(ConfigError) as err:
            rules.make(name, eps=0.0)
        assert err.value.field == "eps"
        return
    with pytest.raises(ConfigError, match="divide by zero") as err:
        rules.make(name, eps=0.0, eps_root=0.0)
    assert err.value.field in ("eps", "eps_root")
    assert hp[err.value.field] > 0  # it names the one the rule's default keeps positive


def test_traced_values_are_not_checked():
    """Inside a program the values are tracers; they were checked when the sweep expanded."""

    @jax.jit
    def f(b1):
        tx = rules.make("adam", learning_rate=0.1, b1=b1)
        p = jnp.ones(2)
        return tx.update(jnp.ones(2), tx.init(p), p)[0]

    assert np.all(np.isfinite(f(0.5)))


def test_hparams_are_floats_and_do_not_collide_with_schedule_parameters():
    schedule_params = set(schedules.all_param_names())
    for name in ALL:
        s = rules.spec(name)
        assert all(isinstance(v, float) for v in s.hparams.values()), name
        assert not set(s.hparams) & schedule_params, name
        assert "learning_rate" not in s.hparams and "lr" not in s.hparams
        assert set(s.checks) <= set(s.hparams)
        assert s.default_learning_rate > 0
        rules.resolve(name)  # defaults are valid
        rules.check_impl(name, "optax")  # and the twin can take them


# ---------------------------------------------------------------------------------------------
# Declared slots: the state's size, and the memory estimate that counts them


@pytest.mark.parametrize("impl", rules.IMPLS)
@pytest.mark.parametrize("name", ALL)
def test_declared_slots_are_the_state_size(name, impl):
    """``spec.slots`` = elements of the state's non-scalar leaves / parameter count, counted
    from ``init(params)`` of the hand rule and of its optax twin (which the spec never sees)."""
    params = {"w": jnp.ones((5, 3)), "b": jnp.zeros(3)}
    n_params = sum(p.size for p in jax.tree_util.tree_leaves(params))
    state = rules.make(name, impl).init(params)
    sizes = [leaf.size for leaf in jax.tree_util.tree_leaves(state) if jnp.ndim(leaf) > 0]
    assert sum(sizes) == rules.spec(name).slots * n_params


def test_run_bytes_counts_the_optimizer_slots():
    """AMSGrad keeps one parameter-sized array more than Adam (max v̂), SGD two fewer; the
    estimate differs by that many arrays (doubled for XLA's temporaries), P counted from the
    model's own initial parameters; a mixed sweep takes its worst optimizer."""
    model = MLPConfig(hidden=(16, 8))
    base = Sweep(experiment="mem", dataset="iris", model=model, epochs=3, batch_size=10)
    ds = data.load("iris")
    net = models.build(model, ds.num_classes)
    x = jnp.zeros((1, ds.x_train.shape[1]))
    n_params = sum(p.size for p in jax.tree_util.tree_leaves(net.init(jax.random.PRNGKey(0), x)))

    def estimate(*names):
        sweep = dataclasses.replace(base, optimizers=tuple(map(Optimizer, names)))
        return runner.run_bytes(sweep)

    item = np.dtype(base.dtype).itemsize
    assert estimate("amsgrad") - estimate("adam") == 2 * n_params * item
    assert estimate("adam") - estimate("sgd") == 2 * 2 * n_params * item
    assert estimate("sgd", "amsgrad", "momentum") == estimate("amsgrad")
