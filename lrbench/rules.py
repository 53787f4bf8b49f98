"""Update rules written by hand, each beside its optax twin.

Every rule follows optax's shape: a factory returning ``optax.GradientTransformation``, its
state a ``<Name>State`` NamedTuple with a ``count``. The *direction* (``scale_by_<rule>``) is
split from the *step size* (``scale_by_learning_rate``), so a hand rule and its twin differ
in one place only, and the two momentum conventions differ only in the order of the two.

All hyperparameters are plain arguments that may be traced arrays: the engine builds the
transformation inside the jitted, vmapped step with this step's learning rate and the run's
own hyperparameters, so a grid over any of them compiles once. The state never depends on a
hyperparameter's value, which is what makes that legal (it is how ``optax.inject_hyperparams``
works too). Structural choices (centering, the momentum convention, Nesterov, AMSGrad's
maximum) are separate rule names instead.

Conventions that differ between libraries are hyperparameters, so a hand rule can match
optax, Keras or PyTorch: ``eps`` is always added *outside* the square root and ``eps_root``
*inside* it (optax's Adam names), ``initial_accumulator_value`` / ``initial_scale`` start the
second-moment accumulators, ``rho`` is the decay of RMSProp's and AdaDelta's averages. The
defaults are optax's; the README's table of conventions gives the other libraries' settings.

Public API: :func:`make`, :func:`names`, :func:`spec`, :func:`resolve`, :func:`check_impl`.
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lrbench.errors import ConfigError

_map = jax.tree_util.tree_map


def _bias_correction(moment, decay, count):
    """``moment / (1 − decayᵗ)``; the power is taken in the hyperparameter's precision and
    only then cast, as optax does, so a float32 correction is not rounded to 0 early on."""
    correction = 1 - decay**count
    return _map(lambda t: t / correction.astype(t.dtype), moment)


def _zeros(params):
    return _map(jnp.zeros_like, params)


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


# ---------------------------------------------------------------------------------------------
# Directions


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


class ScaleByRssState(NamedTuple):
    count: jax.Array
    sum_of_squares: Any


def scale_by_rss(
    initial_accumulator_value=0.1, eps=0.0, eps_root=1e-7
) -> optax.GradientTransformation:
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


class ScaleByAdadeltaState(NamedTuple):
    count: jax.Array
    e_g: Any  # running average of squared gradients, E[g²]
    e_x: Any  # running average of squared directions, E[Δx²]


def scale_by_adadelta(rho=0.9, eps=1e-6) -> optax.GradientTransformation:
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


class ScaleByRmsState(NamedTuple):
    count: jax.Array
    nu: Any  # running average of squared gradients
    mu: Any  # running average of gradients (centered only, else None)


def scale_by_rms(
    rho=0.9, eps=0.0, eps_root=1e-8, initial_scale=0.0, centered: bool = False
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


class ScaleByAdamState(NamedTuple):
    count: jax.Array
    mu: Any  # first moment
    nu: Any  # second moment


def scale_by_adam(
    b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, nesterov: bool = False
) -> optax.GradientTransformation:
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


class ScaleByAmsgradState(NamedTuple):
    count: jax.Array
    mu: Any
    nu: Any
    nu_max: Any  # running maximum of the bias-corrected second moment


def scale_by_amsgrad(b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0) -> optax.GradientTransformation:
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


class ScaleByAdamaxState(NamedTuple):
    count: jax.Array
    mu: Any  # first moment
    u: Any  # exponentially weighted infinity norm


def scale_by_adamax(b1=0.9, b2=0.999, eps=1e-8) -> optax.GradientTransformation:
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
# The delta rule


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


# ---------------------------------------------------------------------------------------------
# Rules: hand-written factories


def sgd(learning_rate) -> optax.GradientTransformation:
    """Plain gradient descent: ``θ ← θ − α·g`` (Robbins & Monro 1951)."""
    return scale_by_learning_rate(learning_rate)


def momentum(learning_rate, momentum=0.9) -> optax.GradientTransformation:
    """Heavy ball, optax/PyTorch convention: ``v ← μ·v + g;  θ ← θ − α·v`` (Polyak 1964).

    A change of α rescales the whole velocity at once.
    """
    return optax.chain(scale_by_momentum(momentum), scale_by_learning_rate(learning_rate))


def momentum_keras(learning_rate, momentum=0.9) -> optax.GradientTransformation:
    """Heavy ball, classic/Keras convention: ``v ← μ·v − α·g;  θ ← θ + v``.

    (Rumelhart, Hinton & Williams 1986; Sutskever et al. 2013, eq. 1-2; ``keras.optimizers.SGD``.)
    The velocity remembers past steps with the learning rate they were taken at, so after α
    drops the old velocity still carries the old α for ~1/(1−μ) steps. With a constant α it
    equals :func:`momentum`.
    """
    return optax.chain(scale_by_learning_rate(learning_rate), scale_by_momentum(momentum))


def nesterov(learning_rate, momentum=0.9) -> optax.GradientTransformation:
    """Nesterov momentum, optax/PyTorch convention: ``v ← μ·v + g;  θ ← θ − α·(g + μ·v)``.

    (Nesterov 1983, in the form of Sutskever et al. 2013.)
    """
    return optax.chain(
        scale_by_momentum(momentum, nesterov=True), scale_by_learning_rate(learning_rate)
    )


def nesterov_keras(learning_rate, momentum=0.9) -> optax.GradientTransformation:
    """Nesterov momentum, Keras convention: ``v ← μ·v − α·g;  θ ← θ + μ·v − α·g``.

    (``keras.optimizers.SGD(nesterov=True)``; Sutskever et al. 2013, eq. 3-4, rewritten in
    the look-ahead variable as Bengio et al. 2013 do.)
    """
    return optax.chain(
        scale_by_learning_rate(learning_rate), scale_by_momentum(momentum, nesterov=True)
    )


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


def adadelta(learning_rate, rho=0.9, eps=1e-6) -> optax.GradientTransformation:
    """AdaDelta (Zeiler 2012): ``θ ← θ − α·√(E[Δx²] + ε)/√(E[g²] + ε)·g``.

    α = 1 is Zeiler's rule, optax's (``learning_rate=None``) and PyTorch's default; Keras
    defaults to α = 0.001, ρ = 0.95, ε = 1e-7.
    """
    return optax.chain(scale_by_adadelta(rho, eps), scale_by_learning_rate(learning_rate))


def rmsprop(
    learning_rate, rho=0.9, eps=0.0, eps_root=1e-8, initial_scale=0.0, momentum=0.0
) -> optax.GradientTransformation:
    """RMSProp: ``ν ← ρ·ν + (1−ρ)·g²;  b ← μ·b + α·g/(√(ν + ε_root) + ε);  θ ← θ − b``.

    (Tieleman & Hinton 2012.) ``momentum`` = 0 is plain RMSProp; > 0 adds a momentum buffer
    that, as in optax, Keras and TensorFlow, accumulates *steps* (α inside); PyTorch's buffer
    accumulates directions and multiplies by α afterwards, which differs only when α changes.
    """
    return optax.chain(
        scale_by_rms(rho, eps, eps_root, initial_scale),
        scale_by_learning_rate(learning_rate),
        scale_by_momentum(momentum),
    )


def rmsprop_centered(
    learning_rate, rho=0.9, eps=0.0, eps_root=1e-8, initial_scale=0.0, momentum=0.0
) -> optax.GradientTransformation:
    """Centered RMSProp (Graves 2013): divides by ``√(ν − μ² + ε_root) + ε``, ``μ`` the
    running mean of ``g``; otherwise as :func:`rmsprop`."""
    return optax.chain(
        scale_by_rms(rho, eps, eps_root, initial_scale, centered=True),
        scale_by_learning_rate(learning_rate),
        scale_by_momentum(momentum),
    )


def adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0) -> optax.GradientTransformation:
    """Adam: ``θ ← θ − α·m̂ / (√(v̂ + ε_root) + ε)`` (Kingma & Ba 2015)."""
    return optax.chain(scale_by_adam(b1, b2, eps, eps_root), scale_by_learning_rate(learning_rate))


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


def amsgrad(
    learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0
) -> optax.GradientTransformation:
    """AMSGrad: ``θ ← θ − α·m̂ / (√(max v̂ + ε_root) + ε)`` (Reddi et al. 2018)."""
    return optax.chain(
        scale_by_amsgrad(b1, b2, eps, eps_root), scale_by_learning_rate(learning_rate)
    )


def nadam(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0) -> optax.GradientTransformation:
    """Nadam: Adam with a Nesterov look-ahead on the first moment (Dozat 2016), as optax:
    ``m̂ = β₁·m/(1−β₁ᵗ⁺¹) + (1−β₁)·g/(1−β₁ᵗ)``, with a constant β₁. Dozat's momentum
    schedule ``μ_t = β₁·(1 − ½·0.96^(ψ·t))`` is not applied (PyTorch uses ψ = 0.004, Keras
    ψ = 1; see the README)."""
    return optax.chain(
        scale_by_adam(b1, b2, eps, eps_root, nesterov=True), scale_by_learning_rate(learning_rate)
    )


def adamax(learning_rate, b1=0.9, b2=0.999, eps=1e-8) -> optax.GradientTransformation:
    """Adamax: ``u ← max(β₂·u, |g| + ε);  θ ← θ − α·m/((1−β₁ᵗ)·u)`` (Kingma & Ba 2015, §7.1)."""
    return optax.chain(scale_by_adamax(b1, b2, eps), scale_by_learning_rate(learning_rate))


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
_RMS_HPARAMS = {"rho": 0.9, "eps": 0.0, "eps_root": 1e-8, "initial_scale": 0.0, "momentum": 0.0}
_RMS_CHECKS = {
    "rho": _in_unit_interval("rho"),
    **_EPS_PAIR,
    "initial_scale": _nonnegative("initial_scale"),
    **_MOMENTUM,
}
_ADAM_HPARAMS = {"b1": 0.9, "b2": 0.999, "eps": 1e-8, "eps_root": 0.0}

# optax's RMSProp and AdaGrad take one ε, inside the root; ε outside it has no twin.
_NO_OUTSIDE_EPS = types.MappingProxyType({"eps": 0.0})
_EMPTY = types.MappingProxyType({})


# ---------------------------------------------------------------------------------------------
# Registry


class RuleSpec(NamedTuple):
    """What the engine and the CLI need to know about a rule."""

    name: str
    hand: Callable[..., optax.GradientTransformation]
    twin: Callable[..., optax.GradientTransformation]
    twin_name: str
    hparams: dict[str, float]  # traced hyperparameters (besides the learning rate) and defaults
    checks: dict[str, Callable[[float], None]]
    # What follows has defaults, so a spec can be written with the six fields above.
    default_learning_rate: float = 1e-2  # used when ``make`` gets no learning rate
    joint_check: Callable[[dict[str, float]], None] | None = None  # across hyperparameters
    twin_requires: Mapping[str, float] = _EMPTY  # values the optax twin cannot change
    twin_note: str = ""  # why a pair may not agree to rounding, or what the twin is built from


_RULES: dict[str, RuleSpec] = {}


def register(spec: RuleSpec) -> None:
    _RULES[spec.name] = spec


register(
    RuleSpec(
        "delta",
        hand=delta_rule,
        twin=lambda learning_rate: optax.sgd(learning_rate),
        twin_name="optax.sgd",
        hparams={},
        checks={},
        twin_note="the delta rule is gradient descent on the error signal it is given",
    )
)
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
        checks=_MOMENTUM,
    )
)
register(
    RuleSpec(
        "momentum_keras",
        hand=momentum_keras,
        twin=lambda learning_rate, momentum: optax.chain(
            optax.scale_by_learning_rate(learning_rate), optax.trace(decay=momentum)
        ),
        twin_name="optax.chain(scale_by_learning_rate(α), trace(μ))",
        hparams={"momentum": 0.9},
        checks=_MOMENTUM,
        twin_note="optax has no alias for this convention; the twin is built from its blocks",
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
        checks=_MOMENTUM,
    )
)
register(
    RuleSpec(
        "nesterov_keras",
        hand=nesterov_keras,
        twin=lambda learning_rate, momentum: optax.chain(
            optax.scale_by_learning_rate(learning_rate), optax.trace(decay=momentum, nesterov=True)
        ),
        twin_name="optax.chain(scale_by_learning_rate(α), trace(μ, nesterov=True))",
        hparams={"momentum": 0.9},
        checks=_MOMENTUM,
        twin_note="optax has no alias for this convention; the twin is built from its blocks",
    )
)
register(
    RuleSpec(
        "adagrad",
        hand=adagrad,
        twin=lambda learning_rate, initial_accumulator_value, eps, eps_root: optax.adagrad(
            learning_rate, initial_accumulator_value=initial_accumulator_value, eps=eps_root
        ),
        twin_name="optax.adagrad",
        hparams={"initial_accumulator_value": 0.1, "eps": 0.0, "eps_root": 1e-7},
        checks={
            "initial_accumulator_value": _nonnegative("initial_accumulator_value"),
            **_EPS_PAIR,
        },
        joint_check=_eps_pair("eps_root"),
        twin_requires=_NO_OUTSIDE_EPS,
        twin_note="optax.adagrad's eps is our eps_root; ε outside the root (PyTorch) has no twin",
    )
)
register(
    RuleSpec(
        "adadelta",
        hand=adadelta,
        twin=lambda learning_rate, rho, eps: optax.adadelta(learning_rate, rho=rho, eps=eps),
        twin_name="optax.adadelta",
        hparams={"rho": 0.9, "eps": 1e-6},
        checks={"rho": _in_unit_interval("rho"), "eps": _positive("eps")},
        default_learning_rate=1.0,
    )
)
for _name, _hand, _centered in (
    ("rmsprop", rmsprop, False),
    ("rmsprop_centered", rmsprop_centered, True),
):
    register(
        RuleSpec(
            _name,
            hand=_hand,
            twin=lambda learning_rate, rho, eps, eps_root, initial_scale, momentum, c=_centered: (
                optax.rmsprop(
                    learning_rate,
                    decay=rho,
                    eps=eps_root,
                    initial_scale=initial_scale,
                    centered=c,
                    momentum=momentum,
                )
            ),
            twin_name=f"optax.rmsprop({'centered=True, ' if _centered else ''}momentum=μ)",
            hparams=dict(_RMS_HPARAMS),
            checks=_RMS_CHECKS,
            default_learning_rate=1e-3,
            joint_check=_eps_pair("eps_root"),
            twin_requires=_NO_OUTSIDE_EPS,
            twin_note="optax.rmsprop's eps is our eps_root; ε outside the root (PyTorch) has no twin",
        )
    )


def _adam_like(name: str, hand: Callable, optax_fn: Callable, **extra: float) -> RuleSpec:
    """The Adam family's spec: Adam's hyperparameters (plus ``extra`` with their defaults),
    twinned with ``optax_fn`` (``optax.<name>``) called by keyword."""
    checks = {**_BETAS, **_EPS_PAIR, **{k: _nonnegative(k) for k in extra}}
    return RuleSpec(
        name,
        hand=hand,
        twin=lambda learning_rate, **hp: optax_fn(learning_rate, **hp),
        twin_name=f"optax.{name}",
        hparams={**_ADAM_HPARAMS, **extra},
        checks=checks,
        default_learning_rate=1e-3,
        joint_check=_eps_pair("eps"),
    )


register(_adam_like("adam", adam, optax.adam))
register(_adam_like("adamw", adamw, optax.adamw, weight_decay=1e-4))
register(_adam_like("amsgrad", amsgrad, optax.amsgrad))
register(_adam_like("nadam", nadam, optax.nadam))
register(
    RuleSpec(
        "adamax",
        hand=adamax,
        twin=lambda learning_rate, b1, b2, eps: optax.adamax(learning_rate, b1=b1, b2=b2, eps=eps),
        twin_name="optax.adamax",
        hparams={"b1": 0.9, "b2": 0.999, "eps": 1e-8},
        checks={**_BETAS, "eps": _positive("eps")},
        default_learning_rate=2e-3,
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
