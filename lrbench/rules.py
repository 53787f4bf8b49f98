"""Update rules written by hand, each beside its optax twin.

Every rule follows optax's shape: a factory returning ``optax.GradientTransformation``, its
state a ``<Name>State`` NamedTuple with a ``count``. The *direction* (``scale_by_<rule>``) is
split from the *step size* (``scale_by_learning_rate``), so a hand rule and its twin differ
in one place only.

All hyperparameters are plain arguments that may be traced arrays: the engine builds the
transformation inside the jitted, vmapped step with this step's learning rate and the run's
own hyperparameters, so a grid over any of them compiles once. The state never depends on a
hyperparameter's value, which is what makes that legal (it is how ``optax.inject_hyperparams``
works too).

Public API: :func:`make`, :func:`names`, :func:`spec`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lrbench.errors import ConfigError

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
        updates = jax.tree_util.tree_map(lambda d: -learning_rate * d, updates)
        return updates, ScaleByLearningRateState(count=state.count + 1)

    return optax.GradientTransformation(init_fn, update_fn)


# ---------------------------------------------------------------------------------------------
# Directions


class ScaleByMomentumState(NamedTuple):
    count: jax.Array
    velocity: Any


def scale_by_momentum(momentum, nesterov: bool = False) -> optax.GradientTransformation:
    """Heavy-ball momentum in the optax/PyTorch convention.

    ``v ← μ·v + g``; the direction is ``v`` (heavy ball, Polyak 1964) or ``g + μ·v``
    (Nesterov 1983 in the form of Sutskever et al. 2013, as ``optax.trace(nesterov=True)``
    and ``torch.optim.SGD(nesterov=True)`` use it). The learning rate multiplies the
    direction afterwards, so a change of α during training rescales the whole velocity.
    """

    def init_fn(params):
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        return ScaleByMomentumState(count=jnp.zeros([], jnp.int32), velocity=zeros)

    def update_fn(updates, state, params=None):
        del params
        velocity = jax.tree_util.tree_map(lambda g, v: g + momentum * v, updates, state.velocity)
        if nesterov:
            direction = jax.tree_util.tree_map(lambda g, v: g + momentum * v, updates, velocity)
        else:
            direction = velocity
        return direction, ScaleByMomentumState(count=state.count + 1, velocity=velocity)

    return optax.GradientTransformation(init_fn, update_fn)


# ---------------------------------------------------------------------------------------------
# Rules: hand-written factories


def sgd(learning_rate) -> optax.GradientTransformation:
    """Plain gradient descent: ``θ ← θ − α·g`` (Robbins & Monro 1951)."""
    return scale_by_learning_rate(learning_rate)


def momentum(learning_rate, momentum=0.9) -> optax.GradientTransformation:
    """Heavy ball: ``v ← μ·v + g;  θ ← θ − α·v`` (Polyak 1964; optax/PyTorch convention)."""
    return optax.chain(scale_by_momentum(momentum), scale_by_learning_rate(learning_rate))


def nesterov(learning_rate, momentum=0.9) -> optax.GradientTransformation:
    """Nesterov momentum: ``v ← μ·v + g;  θ ← θ − α·(g + μ·v)`` (Sutskever et al. 2013)."""
    return optax.chain(
        scale_by_momentum(momentum, nesterov=True), scale_by_learning_rate(learning_rate)
    )


# ---------------------------------------------------------------------------------------------
# Registry


def _probability(name):
    def check(v):
        if not 0.0 <= v < 1.0:
            raise ConfigError(name, f"{name}={v!r} must be in [0, 1)")

    return check


class RuleSpec(NamedTuple):
    """What the engine and the CLI need to know about a rule."""

    name: str
    hand: Callable[..., optax.GradientTransformation]
    twin: Callable[..., optax.GradientTransformation]
    twin_name: str
    hparams: dict[str, float]  # traced hyperparameters (besides the learning rate) and defaults
    checks: dict[str, Callable[[float], None]]


_RULES: dict[str, RuleSpec] = {}


def register(spec: RuleSpec) -> None:
    _RULES[spec.name] = spec


register(
    RuleSpec(
        "sgd",
        hand=sgd,
        twin=lambda learning_rate: optax.sgd(learning_rate),
        twin_name="optax.sgd",
        hparams={},
        checks={},
    )
)
register(
    RuleSpec(
        "momentum",
        hand=momentum,
        twin=lambda learning_rate, momentum: optax.sgd(learning_rate, momentum=momentum),
        twin_name="optax.sgd(momentum=μ)",
        hparams={"momentum": 0.9},
        checks={"momentum": _probability("momentum")},
    )
)
register(
    RuleSpec(
        "nesterov",
        hand=nesterov,
        twin=lambda learning_rate, momentum: optax.sgd(
            learning_rate, momentum=momentum, nesterov=True
        ),
        twin_name="optax.sgd(momentum=μ, nesterov=True)",
        hparams={"momentum": 0.9},
        checks={"momentum": _probability("momentum")},
    )
)

IMPLS = ("hand", "optax")


def names() -> list[str]:
    return sorted(_RULES)


def spec(name: str) -> RuleSpec:
    if name not in _RULES:
        raise ConfigError("optimizer", f"unknown optimizer {name!r}; allowed: {', '.join(names())}")
    return _RULES[name]


def _is_concrete(v) -> bool:
    return not isinstance(v, jax.core.Tracer)


def check_learning_rate(lr) -> None:
    if _is_concrete(lr):
        lr = float(lr)
        if not (math.isfinite(lr) and lr > 0):
            raise ConfigError("lr", f"learning_rate={lr!r} must be a finite number > 0")


def resolve(name: str, hparams: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fills in defaults and validates concrete values; raises ``ConfigError`` naming the field."""
    s = spec(name)
    hparams = dict(hparams or {})
    unknown = sorted(set(hparams) - set(s.hparams))
    if unknown:
        allowed = ", ".join(s.hparams) or "none"
        raise ConfigError(
            unknown[0], f"not a hyperparameter of {name!r}; its hyperparameters: {allowed}"
        )
    out = {**s.hparams, **hparams}
    for key, value in out.items():
        if _is_concrete(value):
            value = float(value)
            if not math.isfinite(value):
                raise ConfigError(key, f"{key}={value!r} must be finite")
            if key in s.checks:
                s.checks[key](value)
    return out


def make(name: str, impl: str = "hand", learning_rate=1e-2, **hparams) -> optax.GradientTransformation:
    """Builds rule ``name`` written by hand (``impl="hand"``) or taken from optax (``"optax"``).

    Args:
      name: one of :func:`names`.
      impl: ``"hand"`` or ``"optax"``.
      learning_rate: the step size α (a float or a traced scalar).
      **hparams: the rule's other hyperparameters (see ``spec(name).hparams``).

    Raises:
      ConfigError (a ``ValueError``) naming the parameter when a value is not allowed.
    """
    if impl not in IMPLS:
        raise ConfigError("impl", f"unknown impl {impl!r}; allowed: {', '.join(IMPLS)}")
    s = spec(name)
    check_learning_rate(learning_rate)
    hp = resolve(name, hparams)
    factory = s.hand if impl == "hand" else s.twin
    return factory(learning_rate, **hp)
