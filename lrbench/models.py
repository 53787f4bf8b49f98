"""Models: a Flax MLP whose initialisers can match Keras, and a batched initialiser over seeds."""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from lrbench.errors import ConfigError

ACTIVATIONS = {
    "relu": nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": nn.sigmoid,
    "gelu": nn.gelu,
    "linear": lambda x: x,
}

# Keras and Flax names for the usual kernel initialisers; biases start at zero in both.
KERNEL_INITS = {
    "glorot_uniform": nn.initializers.glorot_uniform(),  # Keras Dense default
    "he_uniform": nn.initializers.variance_scaling(2.0, "fan_in", "uniform"),  # U(±sqrt(6/fan_in))
    "he_normal": nn.initializers.variance_scaling(2.0, "fan_in", "truncated_normal"),
    "lecun_normal": nn.initializers.lecun_normal(),  # Flax Dense default
}


@dataclasses.dataclass(frozen=True)
class MLPConfig:
    """A fully connected network: ``hidden`` sizes, one activation, a linear output layer.

    The output layer returns logits; the loss applies softmax (see ``engine``).
    ``kernel_init`` names a Keras initialiser (``he_uniform`` for the MLM tutorial,
    ``glorot_uniform`` is Keras' own default).
    """

    hidden: tuple[int, ...] = (50,)
    activation: str = "relu"
    kernel_init: str = "he_uniform"

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                "activation", f"unknown {self.activation!r}; allowed: {', '.join(ACTIVATIONS)}"
            )
        if self.kernel_init not in KERNEL_INITS:
            raise ConfigError(
                "kernel_init", f"unknown {self.kernel_init!r}; allowed: {', '.join(KERNEL_INITS)}"
            )
        if not all(isinstance(h, int) and h > 0 for h in self.hidden):
            raise ConfigError("hidden", f"{self.hidden!r} must be positive integers, e.g. 50 or 64,64")

    @property
    def name(self) -> str:
        sizes = "-".join(str(h) for h in self.hidden) or "linear"
        return f"mlp({sizes})-{self.activation}"


class MLP(nn.Module):
    """``x -> Dense(h1) -> act -> ... -> Dense(num_outputs)`` (logits)."""

    hidden: tuple[int, ...]
    num_outputs: int
    activation: str = "relu"
    kernel_init: str = "he_uniform"

    @nn.compact
    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        init = KERNEL_INITS[self.kernel_init]
        for width in self.hidden:
            x = act(nn.Dense(width, kernel_init=init)(x))
        return nn.Dense(self.num_outputs, kernel_init=init)(x)


def build(config: MLPConfig, num_outputs: int) -> MLP:
    return MLP(config.hidden, num_outputs, config.activation, config.kernel_init)


def init_many(model: nn.Module, keys: jax.Array, num_features: int, dtype=jnp.float32):
    """Initialises one parameter set per key in one vmapped call: leaves get a leading [N] axis."""
    dummy = jnp.zeros((1, num_features), dtype)
    return jax.vmap(lambda k: model.init(k, dummy)["params"])(keys)


def num_params(params) -> int:
    return sum(int(x.size) for x in jax.tree_util.tree_leaves(params))
