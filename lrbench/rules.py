"""Update rules written by hand, each beside its optax twin: one registry entry per rule.

Every rule follows optax's shape: a factory returning ``optax.GradientTransformation``, its
state a ``<Name>State`` NamedTuple with a ``count``. The *direction* (``scale_by_<rule>``) is
split from the *step size* (``scale_by_learning_rate``), so a hand rule and its twin differ
in one place only, and the two momentum conventions differ only in the order of the two.

Each rule is one section of this module: its state, its ``scale_by_<rule>``, its alias (the
only place its hyperparameters' defaults are written) and one :func:`register` call, whose
:class:`RuleSpec` adds the optax twin, the checks and the number of parameter-sized arrays
its state keeps (``slots``, for the memory estimate). Everything else — :func:`names`, the
defaults (``spec(name).hparams``, read from the alias' signature), ``lrbench list``, the
tests' table, ``runner.run_bytes`` — derives from the registry. ``docs/extending.md`` shows
how to add a rule.

All hyperparameters are plain arguments that may be traced arrays: the engine builds the
transformation inside the jitted, vmapped step with this step's learning rate and the run's
own hyperparameters, so a grid over any of them compiles once. The state never depends on a
hyperparameter's value, which is what makes that legal (it is how ``optax.inject_hyperparams``
works too). Structural choices (centering, the momentum convention, Nesterov, AMSGrad's
maximum) are separate rule names instead: keyword-only flags of an alias, fixed by
``functools.partial`` in the variant's entry.

Conventions that differ between libraries are hyperparameters, so a hand rule can match
optax, Keras or PyTorch: ``eps`` is always added *outside* the square root and ``eps_root``
*inside* it (optax's Adam names), ``initial_accumulator_value`` / ``initial_scale`` start the
second-moment accumulators, ``rho`` is the decay of RMSProp's and AdaDelta's averages. The
defaults are optax's; the README's table of conventions gives the other libraries' settings.

Public API: :func:`make`, :func:`names`, :func:`spec`, :func:`resolve`, :func:`check_impl`,
:func:`max_slots`, :func:`register`.
"""

from __future__ import annotations

import functools
import inspect
import math
import types
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from lrbench._lazy import imported, lazy
from lrbench.errors import ConfigError

# Imported on first use: the registry below (names, hyperparameters, defaults) is read by
# ``lrbench list`` and the command line's checks without JAX.
jax = lazy("jax")
jnp = lazy("jax.numpy")
optax = lazy("optax")


def _map(*args, **kwargs):
    return jax.tree_util.tree_map(*args, **kwargs)


def _bias_correction(moment, decay, count):
    """``moment / (1 − decayᵗ)``; the power is taken in the hyperparameter's precision and
    only then cast, as optax does, so a float32 correction is not rounded to 0 early on."""
    correction = 1 - decay**count
    return _map(lambda t: t / correction.astype(t.dtype), moment)


def _zeros(params):
    return _map(jnp.zeros_like, params)


# ---------------------------------------------------------------------------------------------
# Checks: each raises ConfigError naming the hyperparameter


def _in_unit_interval(name):
    def check(v):
        if not 0.0 <= v < 1.0:
            raise ConfigError(name, f"{name}={v!r} must be in [0, 1)")

    return check


def _nonnegative(name):
    def check(v):
        if v < 0:
            raise ConfigError(name, f"{name}={v!r} must be >= 0")

    return check


def _positive(name):
    def check(v):
        if not v > 0:
            raise ConfigError(name, f"{name}={v!r} must be > 0")

    return check


def _eps_pair(primary: str):
    """ε outside and ε inside the root may each be 0, not both: the denominator of a
    coordinate whose gradients were all 0 would be 0. Names ``primary``, the one the rule's
    default keeps positive."""

    def check(hp):
        if hp["eps"] == 0 and hp["eps_root"] == 0:
            raise ConfigError(
                primary,
                f"{primary}={hp[primary]!r} must be > 0 when the other epsilon is 0 "
                "(eps=0 and eps_root=0 divide by zero where all gradients were 0)",
            )

    return check


_MOMENTUM = {"momentum": _in_unit_interval("momentum")}
_BETAS = {"b1": _in_unit_interval("b1"), "b2": _in_unit_interval("b2")}
_EPS_PAIR = {"eps": _nonnegative("eps"), "eps_root": _nonnegative("eps_root")}

# optax's RMSProp and AdaGrad take one ε, inside the root; ε outside it has no twin.
_NO_OUTSIDE_EPS = types.MappingProxyType({"eps": 0.0})
_EMPTY = types.MappingProxyType({})


# ---------------------------------------------------------------------------------------------
# The registry


class RuleSpec(NamedTuple):
    """One rule: what the engine, the CLI, the memory estimate and the tests know about it.

    Attributes:
      name: the rule's name (``optimizer`` in a sweep).
      hand: the alias written here, ``hand(learning_rate, **hparams)``.
      twin: its optax counterpart, called the same way.
      twin_name: how the twin reads in tables (``"optax.adam"``).
      hparams: traced hyperparameters (besides the learning rate) and their defaults; read
        from ``hand``'s signature by :func:`rule`, never written a second time.
      checks: per hyperparameter, a check that raises ``ConfigError`` naming it.
      slots: parameter-sized arrays the state keeps (Adam 2: m and v; AMSGrad 3).
      default_learning_rate: used when ``make`` gets no learning rate.
      joint_check: a check across hyperparameters (ε and ε_root not both 0).
      twin_requires: values the optax twin cannot change (``{"eps": 0.0}``).
      twin_note: why a pair may not agree to rounding, or what the twin is built from.
    """

    name: str
    hand: Callable[..., optax.GradientTransformation]
    twin: Callable[..., optax.GradientTransformation]
    twin_name: str
    hparams: dict[str, float]
    checks: dict[str, Callable[[float], None]]
    slots: int
    default_learning_rate: float = 1e-2
    joint_check: Callable[[dict[str, float]], None] | None = None
    twin_requires: Mapping[str, float] = _EMPTY
    twin_note: str = ""


_RULES: dict[str, RuleSpec] = {}


def _defaults(alias: Callable) -> dict[str, float]:
    """The alias' traced hyperparameters and their defaults: every argument after
    ``learning_rate`` that may be passed by position (keyword-only ones are structural)."""
    args = list(inspect.signature(alias).parameters.values())
    if not args or args[0].name != "learning_rate":
        raise TypeError(f"{alias!r} must take learning_rate first")
    out = {}
    for a in args[1:]:
        if a.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD:
            continue
        if a.default is inspect.Parameter.empty:
            raise TypeError(f"{alias!r}: hyperparameter {a.name!r} needs a default")
        out[a.name] = float(a.default)
    return out


def rule(
    name: str,
    hand: Callable[..., optax.GradientTransformation],
    twin: Callable[..., optax.GradientTransformation],
    *,
    slots: int,
    twin_name: str | None = None,
    checks: Mapping[str, Callable[[float], None]] | None = None,
    **options: Any,
) -> RuleSpec:
    """A :class:`RuleSpec` whose hyperparameters and defaults are ``hand``'s signature.

    Args:
      name: the rule's name.
      hand: the alias, ``hand(learning_rate, <hyperparameter>=<default>, ...)``.
      twin: the optax twin, taking the same arguments by name.
      slots: parameter-sized arrays the state keeps.
      twin_name: defaults to ``optax.<name>``.
      checks: per-hyperparameter checks (none by default).
      **options: the other fields of :class:`RuleSpec`.
    """
    return RuleSpec(
        name,
        hand=hand,
        twin=twin,
        twin_name=twin_name or f"optax.{name}",
        hparams=_defaults(hand),
        checks=dict(checks or {}),
        slots=slots,
        **options,
    )


def register(spec: RuleSpec) -> RuleSpec:
    """Adds ``spec`` to the registry (a name registered twice is a programming error)."""
    if spec.name in _RULES:
        raise ValueError(f"rule {spec.name!r} is registered twice")
    _RULES[spec.name] = spec
    return spec


# ---------------------------------------------------------------------------------------------
# Step size


class ScaleByLearningRateState(NamedTuple):
    count: jax.Array


def scale_by_learning_rate(learning_rate) -> optax.GradientTransformation:
    """Turns a direction ``d`` into an update ``-α·d`` (gradient *descent*).

    ``learning_rate`` is a scalar (possibly traced); schedules are evaluated by the engine,
    which passes this step's value.
    """

    def init_fn(params):
        del params
        return ScaleByLearningRateState(count=jnp.zeros([], jnp.int32))

    def update_fn(updates, state, params=None):
        del params
        updates = _map(lambda d: -learning_rate * d, updates)
        return updates, ScaleByLearningRateState(count=state.count + 1)

    return optax.GradientTransformation(init_fn, update_fn)


class AddDecayedWeightsState(NamedTuple):
    count: jax.Array


def add_decayed_weights(weight_decay) -> optax.GradientTransformation:
    """Adds ``λ·θ`` to the direction: decoupled weight decay once the step size multiplies it.

    ``d ← d + λ·θ``, so ``θ ← θ − α·(d + λ·θ)`` (Loshchilov & Hutter 2019). It is not an L2
    penalty: the decay never passes through the adaptive denominator.
    """

    def init_fn(params):
        del params
        return AddDecayedWeightsState(count=jnp.zeros([], jnp.int32))

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("add_decayed_weights needs the parameters: call update(g, s, params)")
        updates = _map(lambda d, p: d + weight_decay * p, updates, params)
        return updates, AddDecayedWeightsState(count=state.count + 1)

    return optax.GradientTransformation(init_fn, update_fn)


# ---------------------------------------------------------------------------------------------
# The delta rule and plain gradient descent (no state: 0 slots)


def delta_signal(x, target, output):
    """The negated error signal ``−(target − output)·x`` the delta rule takes as ``updates``.

    ``x`` is the input vector of one neuron and ``target − output`` its (scalar) error; for a
    layer with several outputs pass ``target``/``output`` of shape ``[k]`` and ``x`` of shape
    ``[d]`` to get the ``[d, k]`` signal of a Flax ``Dense`` kernel. For a linear unit with
    the squared error ``½(target − output)²``, and for a softmax unit with the cross-entropy,
    this is exactly the gradient with respect to the weights.
    """
    error = jnp.asarray(target) - jnp.asarray(output)
    x = jnp.asarray(x)
    if error.ndim == 0:
        return -error * x
    return -jnp.outer(x, error)


def delta_rule(learning_rate) -> optax.GradientTransformation:
    """The delta rule (Widrow & Hoff 1960, LMS; Rosenblatt's perceptron update).

    ``w ← w + α·(target − output)·x``: it receives the negated error signal ``−(t − y)·x``
    (:func:`delta_signal`) as ``updates`` and returns ``α·(t − y)·x``, to be added to the
    weights with ``optax.apply_updates``. That is gradient descent on the squared error of a
    linear unit; given the gradient of any loss instead, it is the generalised delta rule of
    backpropagation (Rumelhart, Hinton & Williams 1986), which is how the engine uses it.
    Seeds 000 and 003 apply it without the activation's derivative; so does this rule, since
    it only ever sees the signal it is given.
    """
    return scale_by_learning_rate(learning_rate)


def sgd(learning_rate) -> optax.GradientTransformation:
    """Plain gradient descent: ``θ ← θ − α·g`` (Robbins & Monro 1951)."""
    return scale_by_learning_rate(learning_rate)


register(
    rule(
        "delta",
        delta_rule,
        lambda learning_rate: optax.sgd(learning_rate),
        slots=0,
        twin_name="optax.sgd",
        twin_note="the delta rule is gradient descent on the error signal it is given",
    )
)
register(rule("sgd", sgd, lambda learning_rate: optax.sgd(learning_rate), slots=0))


# ---------------------------------------------------------------------------------------------
# Momentum, heavy ball and Nesterov, in the two conventions (1 slot: the velocity)


class ScaleByMomentumState(NamedTuple):
    count: jax.Array
    velocity: Any


def scale_by_momentum(momentum, nesterov: bool = False) -> optax.GradientTransformation:
    """A velocity that accumulates whatever comes in: ``v ← μ·v + u``.

    The output is ``v`` (heavy ball, Polyak 1964) or ``u + μ·v`` (Nesterov 1983 in the form of
    Sutskever et al. 2013, as ``optax.trace(nesterov=True)`` and
    ``torch.optim.SGD(nesterov=True)`` use it). Placed *before* the step size it accumulates
    gradients (optax/PyTorch convention); placed *after* it accumulates steps ``−α·g``
    (classic/Keras convention). The two differ when α changes during training.
    """

    def init_fn(params):
        return ScaleByMomentumState(count=jnp.zeros([], jnp.int32), velocity=_zeros(params))

    def update_fn(updates, state, params=None):
        del params
        velocity = _map(lambda u, v: u + momentum * v, updates, state.velocity)
        if nesterov:
            direction = _map(lambda u, v: u + momentum * v, updates, velocity)
        else:
            direction = velocity
        return direction, ScaleByMomentumState(count=state.count + 1, velocity=velocity)

    return optax.GradientTransformation(init_fn, update_fn)


def momentum(
    learning_rate, momentum=0.9, *, nesterov: bool = False
) -> optax.GradientTransformation:
    """Heavy ball, optax/PyTorch convention: ``v ← μ·v + g;  θ ← θ − α·v`` (Polyak 1964).

    A change of α rescales the whole velocity at once. With ``nesterov``:
    ``θ ← θ − α·(g + μ·v)`` (Nesterov 1983, in the form of Sutskever et al. 2013).
    """
    return optax.chain(
        scale_by_momentum(momentum, nesterov=nesterov), scale_by_learning_rate(learning_rate)
    )


def momentum_keras(
    learning_rate, momentum=0.9, *, nesterov: bool = False
) -> optax.GradientTransformation:
    """Heavy ball, classic/Keras convention: ``v ← μ·v − α·g;  θ ← θ + v``.

    (Rumelhart, Hinton & Williams 1986; Sutskever et al. 2013, eq. 1-2; ``keras.optimizers.SGD``.)
    The velocity remembers past steps with the learning rate they were taken at, so after α
    drops the old velocity still carries the old α for ~1/(1−μ) steps. With a constant α it
    equals :func:`momentum`. With ``nesterov``: ``θ ← θ + μ·v − α·g``
    (``keras.optimizers.SGD(nesterov=True)``; Sutskever et al. 2013, eq. 3-4, rewritten in the
    look-ahead variable as Bengio et al. 2013 do).
    """
    return optax.chain(
        scale_by_learning_rate(learning_rate), scale_by_momentum(momentum, nesterov=nesterov)
    )


nesterov = functools.partial(momentum, nesterov=True)
nesterov.__doc__ = "Nesterov momentum, optax/PyTorch convention: :func:`momentum` with nesterov."
nesterov_keras = functools.partial(momentum_keras, nesterov=True)
nesterov_keras.__doc__ = (
    "Nesterov momentum, Keras convention: :func:`momentum_keras` with nesterov."
)


def _keras_twin(nesterov_: bool):
    """optax has no alias for the Keras convention: its blocks in the Keras order."""

    def twin(learning_rate, momentum):
        return optax.chain(
            optax.scale_by_learning_rate(learning_rate),
            optax.trace(decay=momentum, nesterov=nesterov_),
        )

    return twin


register(
    rule(
        "momentum",
        momentum,
        lambda learning_rate, momentum: optax.sgd(learning_rate, momentum=momentum),
        slots=1,
        twin_name="optax.sgd(momentum=μ)",
        checks=_MOMENTUM,
    )
)
register(
    rule(
        "momentum_keras",
        momentum_keras,
        _keras_twin(False),
        slots=1,
        twin_name="optax.chain(scale_by_learning_rate(α), trace(μ))",
        checks=_MOMENTUM,
        twin_note="optax has no alias for this convention; the twin is built from its blocks",
    )
)
register(
    rule(
        "nesterov",
        nesterov,
        lambda learning_rate, momentum: optax.sgd(learning_rate, momentum=momentum, nesterov=True),
        slots=1,
        twin_name="optax.sgd(momentum=μ, nesterov=True)",
        checks=_MOMENTUM,
    )
)
register(
    rule(
        "nesterov_keras",
        nesterov_keras,
        _keras_twin(True),
        slots=1,
        twin_name="optax.chain(scale_by_learning_rate(α), trace(μ, nesterov=True))",
        checks=_MOMENTUM,
        twin_note="optax has no alias for this convention; the twin is built from its blocks",
    )
)


# ---------------------------------------------------------------------------------------------
# AdaGrad (1 slot: the sum of squares)


class ScaleByRssState(NamedTuple):
    count: jax.Array
    sum_of_squares: Any


def scale_by_rss(initial_accumulator_value, eps, eps_root) -> optax.GradientTransformation:
    """AdaGrad's direction: divide by the root of the sum of all squared gradients so far.

    ``G ← G + g²;  d = g / (√(G + ε_root) + ε)``, with ``G₀`` = ``initial_accumulator_value``
    (Duchi, Hazan & Singer 2011).
    """

    def init_fn(params):
        acc = _map(lambda p: jnp.full_like(p, initial_accumulator_value), params)
        return ScaleByRssState(count=jnp.zeros([], jnp.int32), sum_of_squares=acc)

    def update_fn(updates, state, params=None):
        del params
        acc = _map(lambda g, s: s + g**2, updates, state.sum_of_squares)
        direction = _map(lambda g, s: g / (jnp.sqrt(s + eps_root) + eps), updates, acc)
        return direction, ScaleByRssState(count=state.count + 1, sum_of_squares=acc)

    return optax.GradientTransformation(init_fn, update_fn)


def adagrad(
    learning_rate, initial_accumulator_value=0.1, eps=0.0, eps_root=1e-7
) -> optax.GradientTransformation:
    """AdaGrad: ``G ← G + g²;  θ ← θ − α·g / (√(G + ε_root) + ε)`` (Duchi et al. 2011).

    Defaults are optax's and Keras' (``G₀`` = 0.1, ε = 1e-7 inside the root); PyTorch uses
    ``G₀ = 0``, ``eps = 1e-10`` outside the root and ``eps_root = 0``.
    """
    return optax.chain(
        scale_by_rss(initial_accumulator_value, eps, eps_root),
        scale_by_learning_rate(learning_rate),
    )


register(
    rule(
        "adagrad",
        adagrad,
        lambda learning_rate, initial_accumulator_value, eps, eps_root: optax.adagrad(
            learning_rate, initial_accumulator_value=initial_accumulator_value, eps=eps_root
        ),
        slots=1,
        checks={
            "initial_accumulator_value": _nonnegative("initial_accumulator_value"),
            **_EPS_PAIR,
        },
        joint_check=_eps_pair("eps_root"),
        twin_requires=_NO_OUTSIDE_EPS,
        twin_note="optax.adagrad's eps is our eps_root; ε outside the root (PyTorch) has no twin",
    )
)


# ---------------------------------------------------------------------------------------------
# AdaDelta (2 slots: E[g²] and E[Δx²])


class ScaleByAdadeltaState(NamedTuple):
    count: jax.Array
    e_g: Any  # running average of squared gradients, E[g²]
    e_x: Any  # running average of squared directions, E[Δx²]


def scale_by_adadelta(rho, eps) -> optax.GradientTransformation:
    """AdaDelta's direction: a ratio of two running RMS values, "units" of a step.

    ``E[g²] ← ρ·E[g²] + (1−ρ)·g²;  d = √(E[Δx²] + ε) / √(E[g²] + ε) · g;
    E[Δx²] ← ρ·E[Δx²] + (1−ρ)·d²`` (Zeiler 2012). ``E[Δx²]`` accumulates the direction
    before the learning rate multiplies it, as optax, Keras and PyTorch all do, so the
    learning rate is a plain scale on Zeiler's step (1.0 reproduces the paper).
    """

    def init_fn(params):
        zeros = _zeros(params)
        return ScaleByAdadeltaState(count=jnp.zeros([], jnp.int32), e_g=zeros, e_x=zeros)

    def update_fn(updates, state, params=None):
        del params
        e_g = _map(lambda g, e: (1 - rho) * g**2 + rho * e, updates, state.e_g)
        direction = _map(
            lambda g, eg, ex: jnp.sqrt(ex + eps) / jnp.sqrt(eg + eps) * g, updates, e_g, state.e_x
        )
        e_x = _map(lambda d, e: (1 - rho) * d**2 + rho * e, direction, state.e_x)
        return direction, ScaleByAdadeltaState(count=state.count + 1, e_g=e_g, e_x=e_x)

    return optax.GradientTransformation(init_fn, update_fn)


def adadelta(learning_rate, rho=0.9, eps=1e-6) -> optax.GradientTransformation:
    """AdaDelta (Zeiler 2012): ``θ ← θ − α·√(E[Δx²] + ε)/√(E[g²] + ε)·g``.

    α = 1 is Zeiler's rule, optax's (``learning_rate=None``) and PyTorch's default; Keras
    defaults to α = 0.001, ρ = 0.95, ε = 1e-7.
    """
    return optax.chain(scale_by_adadelta(rho, eps), scale_by_learning_rate(learning_rate))


register(
    rule(
        "adadelta",
        adadelta,
        lambda learning_rate, rho, eps: optax.adadelta(learning_rate, rho=rho, eps=eps),
        slots=2,
        checks={"rho": _in_unit_interval("rho"), "eps": _positive("eps")},
        default_learning_rate=1.0,
    )
)


# ---------------------------------------------------------------------------------------------
# RMSProp, plain and centered (2 slots: ν and the momentum buffer; centered 3: and μ)


class ScaleByRmsState(NamedTuple):
    count: jax.Array
    nu: Any  # running average of squared gradients
    mu: Any  # running average of gradients (centered only, else None)


def scale_by_rms(
    rho, eps, eps_root, initial_scale, centered: bool = False
) -> optax.GradientTransformation:
    """RMSProp's direction: divide by a running root mean square of the gradients.

    ``ν ← ρ·ν + (1−ρ)·g²;  d = g / (√(ν + ε_root) + ε)`` (Tieleman & Hinton 2012, lecture
    6.5). Centered (Graves 2013, eq. 38-40) also tracks ``μ ← ρ·μ + (1−ρ)·g`` and divides by
    ``√(ν − μ² + ε_root) + ε``, an estimate of the standard deviation. ``ν₀`` =
    ``initial_scale`` (0 in optax, Keras and PyTorch; 1 in TF1).
    """

    def init_fn(params):
        nu = _map(lambda p: jnp.full_like(p, initial_scale), params)
        mu = _zeros(params) if centered else None
        return ScaleByRmsState(count=jnp.zeros([], jnp.int32), nu=nu, mu=mu)

    def update_fn(updates, state, params=None):
        del params
        nu = _map(lambda g, n: (1 - rho) * g**2 + rho * n, updates, state.nu)
        if centered:
            mu = _map(lambda g, m: (1 - rho) * g + rho * m, updates, state.mu)
            var = _map(lambda n, m: n - m**2, nu, mu)
        else:
            mu, var = None, nu
        direction = _map(lambda g, v: g / (jnp.sqrt(v + eps_root) + eps), updates, var)
        return direction, ScaleByRmsState(count=state.count + 1, nu=nu, mu=mu)

    return optax.GradientTransformation(init_fn, update_fn)


def rmsprop(
    learning_rate,
    rho=0.9,
    eps=0.0,
    eps_root=1e-8,
    initial_scale=0.0,
    momentum=0.0,
    *,
    centered: bool = False,
) -> optax.GradientTransformation:
    """RMSProp: ``ν ← ρ·ν + (1−ρ)·g²;  b ← μ·b + α·g/(√(ν + ε_root) + ε);  θ ← θ − b``.

    (Tieleman & Hinton 2012.) ``momentum`` = 0 is plain RMSProp; > 0 adds a momentum buffer
    that, as in optax, Keras and TensorFlow, accumulates *steps* (α inside); PyTorch's buffer
    accumulates directions and multiplies by α afterwards, which differs only when α changes.
    ``centered`` (Graves 2013) divides by ``√(ν − μ² + ε_root) + ε``, ``μ`` the running mean
    of ``g``.
    """
    return optax.chain(
        scale_by_rms(rho, eps, eps_root, initial_scale, centered=centered),
        scale_by_learning_rate(learning_rate),
        scale_by_momentum(momentum),
    )


rmsprop_centered = functools.partial(rmsprop, centered=True)
rmsprop_centered.__doc__ = "Centered RMSProp (Graves 2013): :func:`rmsprop` with centered."


def _rmsprop_twin(centered: bool):
    def twin(learning_rate, rho, eps, eps_root, initial_scale, momentum):
        del eps  # twin_requires keeps it 0: optax.rmsprop's one ε is inside the root
        return optax.rmsprop(
            learning_rate,
            decay=rho,
            eps=eps_root,
            initial_scale=initial_scale,
            centered=centered,
            momentum=momentum,
        )

    return twin


for _name, _hand, _centered, _slots in (
    ("rmsprop", rmsprop, False, 2),
    ("rmsprop_centered", rmsprop_centered, True, 3),
):
    register(
        rule(
            _name,
            _hand,
            _rmsprop_twin(_centered),
            slots=_slots,
            twin_name=f"optax.rmsprop({'centered=True, ' if _centered else ''}momentum=μ)",
            checks={
                "rho": _in_unit_interval("rho"),
                **_EPS_PAIR,
                "initial_scale": _nonnegative("initial_scale"),
                **_MOMENTUM,
            },
            default_learning_rate=1e-3,
            joint_check=_eps_pair("eps_root"),
            twin_requires=_NO_OUTSIDE_EPS,
            twin_note="optax.rmsprop's eps is our eps_root; ε outside the root (PyTorch) has no twin",
        )
    )


# ---------------------------------------------------------------------------------------------
# Adam, Nadam, AdamW, AMSGrad (2 slots: m and v; AMSGrad 3: and max v̂)


class ScaleByAdamState(NamedTuple):
    count: jax.Array
    mu: Any  # first moment
    nu: Any  # second moment


def scale_by_adam(b1, b2, eps, eps_root, nesterov: bool = False) -> optax.GradientTransformation:
    """Adam's direction: bias-corrected first moment over the root of the second.

    ``m ← β₁·m + (1−β₁)·g;  v ← β₂·v + (1−β₂)·g²;  m̂ = m/(1−β₁ᵗ);  v̂ = v/(1−β₂ᵗ);
    d = m̂ / (√(v̂ + ε_root) + ε)`` (Kingma & Ba 2015, Algorithm 1). With ``nesterov`` the
    first moment looks one step ahead, ``m̂ = β₁·m/(1−β₁ᵗ⁺¹) + (1−β₁)·g/(1−β₁ᵗ)`` (Nadam,
    Dozat 2016, without the momentum schedule, as optax).
    """

    def init_fn(params):
        zeros = _zeros(params)
        return ScaleByAdamState(count=jnp.zeros([], jnp.int32), mu=zeros, nu=zeros)

    def update_fn(updates, state, params=None):
        del params
        count = state.count + 1
        mu = _map(lambda g, m: (1 - b1) * g + b1 * m, updates, state.mu)
        nu = _map(lambda g, v: (1 - b2) * g**2 + b2 * v, updates, state.nu)
        if nesterov:
            mu_hat = _map(
                lambda m, g: b1 * m + (1 - b1) * g,
                _bias_correction(mu, b1, count + 1),
                _bias_correction(updates, b1, count),
            )
        else:
            mu_hat = _bias_correction(mu, b1, count)
        nu_hat = _bias_correction(nu, b2, count)
        direction = _map(lambda m, v: m / (jnp.sqrt(v + eps_root) + eps), mu_hat, nu_hat)
        return direction, ScaleByAdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init_fn, update_fn)


def adam(
    learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, *, nesterov: bool = False
) -> optax.GradientTransformation:
    """Adam: ``θ ← θ − α·m̂ / (√(v̂ + ε_root) + ε)`` (Kingma & Ba 2015).

    With ``nesterov`` it is Nadam (Dozat 2016) as optax has it:
    ``m̂ = β₁·m/(1−β₁ᵗ⁺¹) + (1−β₁)·g/(1−β₁ᵗ)``, with a constant β₁. Dozat's momentum schedule
    ``μ_t = β₁·(1 − ½·0.96^(ψ·t))`` is not applied (PyTorch uses ψ = 0.004, Keras ψ = 1; see
    the README).
    """
    return optax.chain(
        scale_by_adam(b1, b2, eps, eps_root, nesterov=nesterov),
        scale_by_learning_rate(learning_rate),
    )


nadam = functools.partial(adam, nesterov=True)
nadam.__doc__ = "Nadam: :func:`adam` with a Nesterov look-ahead on the first moment (Dozat 2016)."


def adamw(
    learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, weight_decay=1e-4
) -> optax.GradientTransformation:
    """AdamW: ``θ ← θ − α·(m̂ / (√(v̂ + ε_root) + ε) + λ·θ)`` (Loshchilov & Hutter 2019).

    The decay is multiplied by the learning rate, as optax, PyTorch and Keras do (not by the
    schedule multiplier alone, as the paper's η_t).
    """
    return optax.chain(
        scale_by_adam(b1, b2, eps, eps_root),
        add_decayed_weights(weight_decay),
        scale_by_learning_rate(learning_rate),
    )


class ScaleByAmsgradState(NamedTuple):
    count: jax.Array
    mu: Any
    nu: Any
    nu_max: Any  # running maximum of the bias-corrected second moment


def scale_by_amsgrad(b1, b2, eps, eps_root) -> optax.GradientTransformation:
    """AMSGrad's direction: Adam's, divided by the largest second moment seen so far.

    ``v̂ₘₐₓ ← max(v̂ₘₐₓ, v/(1−β₂ᵗ));  d = m̂ / (√(v̂ₘₐₓ + ε_root) + ε)`` (Reddi, Kale & Kumar
    2018), so the effective step never grows. The maximum is over *bias-corrected* second
    moments, as optax's default; PyTorch and Keras take the maximum of the raw ``v`` and
    correct afterwards, the paper does not correct ``v`` at all.
    """

    def init_fn(params):
        zeros = _zeros(params)
        return ScaleByAmsgradState(count=jnp.zeros([], jnp.int32), mu=zeros, nu=zeros, nu_max=zeros)

    def update_fn(updates, state, params=None):
        del params
        count = state.count + 1
        mu = _map(lambda g, m: (1 - b1) * g + b1 * m, updates, state.mu)
        nu = _map(lambda g, v: (1 - b2) * g**2 + b2 * v, updates, state.nu)
        nu_max = _map(jnp.maximum, state.nu_max, _bias_correction(nu, b2, count))
        mu_hat = _bias_correction(mu, b1, count)
        direction = _map(lambda m, v: m / (jnp.sqrt(v + eps_root) + eps), mu_hat, nu_max)
        return direction, ScaleByAmsgradState(count=count, mu=mu, nu=nu, nu_max=nu_max)

    return optax.GradientTransformation(init_fn, update_fn)


def amsgrad(
    learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0
) -> optax.GradientTransformation:
    """AMSGrad: ``θ ← θ − α·m̂ / (√(max v̂ + ε_root) + ε)`` (Reddi et al. 2018)."""
    return optax.chain(
        scale_by_amsgrad(b1, b2, eps, eps_root), scale_by_learning_rate(learning_rate)
    )


def _adam_like(name: str, hand: Callable, slots: int) -> RuleSpec:
    """The Adam family's entry: β checks, the ε pair, any extra hyperparameter (AdamW's
    weight decay) >= 0, and its twin ``optax.<name>`` called by keyword."""
    extra = set(_defaults(hand)) - {"b1", "b2", "eps", "eps_root"}
    return rule(
        name,
        hand,
        lambda learning_rate, **hp: getattr(optax, name)(learning_rate, **hp),
        slots=slots,
        checks={**_BETAS, **_EPS_PAIR, **{k: _nonnegative(k) for k in sorted(extra)}},
        default_learning_rate=1e-3,
        joint_check=_eps_pair("eps"),
    )


register(_adam_like("adam", adam, slots=2))
register(_adam_like("adamw", adamw, slots=2))
register(_adam_like("amsgrad", amsgrad, slots=3))
register(_adam_like("nadam", nadam, slots=2))


# ---------------------------------------------------------------------------------------------
# Adamax (2 slots: m and the infinity norm u)


class ScaleByAdamaxState(NamedTuple):
    count: jax.Array
    mu: Any  # first moment
    u: Any  # exponentially weighted infinity norm


def scale_by_adamax(b1, b2, eps) -> optax.GradientTransformation:
    """Adamax's direction: Adam with the infinity norm in place of the second moment.

    ``m ← β₁·m + (1−β₁)·g;  u ← max(β₂·u, |g| + ε);  d = m / ((1−β₁ᵗ)·u)`` (Kingma & Ba
    2015, Section 7.1, Algorithm 2). ``ε`` sits inside the maximum as in optax and PyTorch
    (Keras adds it to ``u`` instead, see the README); ``u`` needs no bias correction.
    """

    def init_fn(params):
        zeros = _zeros(params)
        return ScaleByAdamaxState(count=jnp.zeros([], jnp.int32), mu=zeros, u=zeros)

    def update_fn(updates, state, params=None):
        del params
        count = state.count + 1
        mu = _map(lambda g, m: (1 - b1) * g + b1 * m, updates, state.mu)
        u = _map(lambda g, u: jnp.maximum(jnp.abs(g) + eps, b2 * u), updates, state.u)
        direction = _map(lambda m, u: m / u, _bias_correction(mu, b1, count), u)
        return direction, ScaleByAdamaxState(count=count, mu=mu, u=u)

    return optax.GradientTransformation(init_fn, update_fn)


def adamax(learning_rate, b1=0.9, b2=0.999, eps=1e-8) -> optax.GradientTransformation:
    """Adamax: ``u ← max(β₂·u, |g| + ε);  θ ← θ − α·m/((1−β₁ᵗ)·u)`` (Kingma & Ba 2015, §7.1)."""
    return optax.chain(scale_by_adamax(b1, b2, eps), scale_by_learning_rate(learning_rate))


register(
    rule(
        "adamax",
        adamax,
        lambda learning_rate, b1, b2, eps: optax.adamax(learning_rate, b1=b1, b2=b2, eps=eps),
        slots=2,
        checks={**_BETAS, "eps": _positive("eps")},
        default_learning_rate=2e-3,
    )
)


# ---------------------------------------------------------------------------------------------
# Lion (1 slot: the momentum m)


class ScaleByLionState(NamedTuple):
    count: jax.Array
    mu: Any  # exponential average of gradients, decayed by β₂


def scale_by_lion(b1, b2) -> optax.GradientTransformation:
    """Lion's direction: the sign of an interpolation of the momentum and the gradient.

    ``d = sign(β₁·m + (1−β₁)·g);  m ← β₂·m + (1−β₂)·g`` (Chen et al. 2023, "Symbolic
    Discovery of Optimization Algorithms", Algorithm 2); every coordinate moves by ±1 before
    the step size, so Lion wants a learning rate 3-10x smaller than AdamW's.
    """

    def init_fn(params):
        return ScaleByLionState(count=jnp.zeros([], jnp.int32), mu=_zeros(params))

    def update_fn(updates, state, params=None):
        del params
        direction = _map(lambda g, m: jnp.sign((1.0 - b1) * g + b1 * m), updates, state.mu)
        mu = _map(lambda g, m: (1 - b2) * g + b2 * m, updates, state.mu)
        return direction, ScaleByLionState(count=state.count + 1, mu=mu)

    return optax.GradientTransformation(init_fn, update_fn)


def lion(learning_rate, b1=0.9, b2=0.99, weight_decay=1e-3) -> optax.GradientTransformation:
    """Lion: ``θ ← θ − α·(sign(β₁·m + (1−β₁)·g) + λ·θ)`` (Chen et al. 2023), optax's defaults.

    The decay is decoupled and multiplied by α, as in AdamW and ``optax.lion``.
    """
    return optax.chain(
        scale_by_lion(b1, b2),
        add_decayed_weights(weight_decay),
        scale_by_learning_rate(learning_rate),
    )


register(
    rule(
        "lion",
        lion,
        lambda learning_rate, b1, b2, weight_decay: optax.lion(
            learning_rate, b1=b1, b2=b2, weight_decay=weight_decay
        ),
        slots=1,
        checks={**_BETAS, "weight_decay": _nonnegative("weight_decay")},
        default_learning_rate=1e-4,
    )
)


# ---------------------------------------------------------------------------------------------
# Looking rules up, validating, building

IMPLS = ("hand", "optax")


def names() -> list[str]:
    return sorted(_RULES)


def spec(name: str) -> RuleSpec:
    if name not in _RULES:
        raise ConfigError("optimizer", f"unknown optimizer {name!r}; allowed: {', '.join(names())}")
    return _RULES[name]


def max_slots(rule_names) -> int:
    """The most parameter-sized state arrays any of ``rule_names`` keeps (0 for none)."""
    return max((spec(n).slots for n in rule_names), default=0)


def _is_concrete(v) -> bool:
    # Nothing is a tracer before JAX is imported: a check needs no JAX of its own.
    jax_module = imported("jax")
    return jax_module is None or not isinstance(v, jax_module.core.Tracer)


def check_learning_rate(lr) -> None:
    if _is_concrete(lr):
        lr = float(lr)
        if not (math.isfinite(lr) and lr > 0):
            raise ConfigError("lr", f"learning_rate={lr!r} must be a finite number > 0")


def resolve(name: str, hparams: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fills in defaults and validates concrete values; raises ``ConfigError`` naming the field.

    Traced values (inside the engine's program) pass unchecked: they were checked when the
    sweep was expanded.
    """
    s = spec(name)
    hparams = dict(hparams or {})
    unknown = sorted(set(hparams) - set(s.hparams))
    if unknown:
        allowed = ", ".join(s.hparams) or "none"
        raise ConfigError(
            unknown[0], f"not a hyperparameter of {name!r}; its hyperparameters: {allowed}"
        )
    out = {**s.hparams, **hparams}
    concrete = {}
    for key, value in out.items():
        if _is_concrete(value):
            value = float(value)
            if not math.isfinite(value):
                raise ConfigError(key, f"{key}={value!r} must be finite")
            if key in s.checks:
                s.checks[key](value)
            concrete[key] = value
    if s.joint_check is not None and len(concrete) == len(out):
        s.joint_check(concrete)
    return out


def check_impl(name: str, impl: str, hparams: dict[str, Any] | None = None) -> None:
    """Raises ``ConfigError`` when ``impl`` cannot run rule ``name`` with these (concrete)
    hyperparameters: an unknown impl, or a value the optax twin has no parameter for."""
    if impl not in IMPLS:
        raise ConfigError("impl", f"unknown impl {impl!r}; allowed: {', '.join(IMPLS)}")
    s = spec(name)
    if impl != "optax":
        return
    hp = {**s.hparams, **(hparams or {})}
    for key, required in s.twin_requires.items():
        value = hp[key]
        if _is_concrete(value) and float(value) != required:
            raise ConfigError(
                key,
                f"{key}={float(value)!r} has no optax twin for {name!r} ({s.twin_note}); "
                f"use impl='hand' or {key}={required!r}",
            )


def make(
    name: str, impl: str = "hand", learning_rate=None, **hparams
) -> optax.GradientTransformation:
    """Builds rule ``name`` written by hand (``impl="hand"``) or taken from optax (``"optax"``).

    Args:
      name: one of :func:`names`.
      impl: ``"hand"`` or ``"optax"``.
      learning_rate: the step size α (a float or a traced scalar); ``None`` takes the rule's
        ``spec(name).default_learning_rate``.
      **hparams: the rule's other hyperparameters (see ``spec(name).hparams``), floats or
        traced scalars.

    Returns:
      An ``optax.GradientTransformation``; its state's structure depends on ``name`` and
      ``impl`` only, never on a hyperparameter's value.

    Raises:
      ConfigError (a ``ValueError``) naming the parameter when a concrete value is not allowed.
    """
    s = spec(name)
    if learning_rate is None:
        learning_rate = s.default_learning_rate
    check_learning_rate(learning_rate)
    hp = resolve(name, hparams)
    check_impl(name, impl, hp)
    factory = s.hand if impl == "hand" else s.twin
    return factory(learning_rate, **hp)
