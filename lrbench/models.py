"""Models: a Flax MLP whose initialisers can match Keras, and a batched initialiser over seeds."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

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

# The output head and the loss that goes with it (both Keras' sparse categorical cross-entropy).
OUTPUTS = ("softmax", "sigmoid")
KERAS_EPSILON = 1e-7  # keras.backend.epsilon(): probabilities are clipped to [eps, 1 - eps]


@dataclasses.dataclass(frozen=True)
class MLPConfig:
    """A fully connected network: ``hidden`` sizes, one activation, a dense output layer.

    ``kernel_init`` names a Keras initialiser for the hidden layers (``he_uniform`` for the
    MLM tutorial, ``glorot_uniform`` is Keras' own default); ``output_init`` the output
    layer's. It defaults to ``glorot_uniform``, Keras' ``Dense`` default, which is what every
    reproduced article's output layer had: the blobs tutorial's ``Dense(3, activation=
    "softmax")`` and deeplizard's ``Dense(2, activation="sigmoid")`` name no initialiser.
    Before this field existed the output layer took ``kernel_init``; ``output_init=
    kernel_init`` is that model, with the run_ids it had (see
    :meth:`lrbench.tasks.mlp.Classifier.config`).

    ``output`` is the output layer's activation, trained with Keras' sparse categorical
    cross-entropy (see :func:`per_example_loss`): ``softmax`` (the network returns logits, the
    loss applies the softmax) or ``sigmoid`` (Keras ``Dense(k, activation="sigmoid")``: the
    loss renormalises the clipped sigmoids to sum to one, as Keras does for probabilities).

    ``kernel_l2`` holds one coefficient per dense layer (hidden layers, then the output
    layer), or is empty for none: Keras' ``kernel_regularizer=l2(c)`` adds ``c·ΣW²`` of that
    layer's kernel to the loss (biases are not penalised).
    """

    hidden: tuple[int, ...] = (50,)
    activation: str = "relu"
    kernel_init: str = "he_uniform"
    output: str = "softmax"
    kernel_l2: tuple[float, ...] = ()
    output_init: str = "glorot_uniform"

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                "activation", f"unknown {self.activation!r}; allowed: {', '.join(ACTIVATIONS)}"
            )
        if self.kernel_init not in KERNEL_INITS:
            raise ConfigError(
                "kernel_init", f"unknown {self.kernel_init!r}; allowed: {', '.join(KERNEL_INITS)}"
            )
        if not isinstance(self.output_init, str) or self.output_init not in KERNEL_INITS:
            raise ConfigError(
                "output_init", f"unknown {self.output_init!r}; allowed: {', '.join(KERNEL_INITS)}"
            )
        if not all(isinstance(h, int) and h > 0 for h in self.hidden):
            raise ConfigError(
                "hidden", f"{self.hidden!r} must be positive integers, e.g. 50 or 64,64"
            )
        if self.output not in OUTPUTS:
            raise ConfigError("output", f"unknown {self.output!r}; allowed: {', '.join(OUTPUTS)}")
        layers = len(self.hidden) + 1
        if self.kernel_l2 and (
            len(self.kernel_l2) != layers
            or not all(isinstance(c, int | float) and c >= 0 for c in self.kernel_l2)
        ):
            raise ConfigError(
                "kernel_l2",
                f"{self.kernel_l2!r} must be empty or {layers} numbers >= 0 (one per dense layer)",
            )

    @property
    def name(self) -> str:
        sizes = "-".join(str(h) for h in self.hidden) or "linear"
        head = "" if self.output == "softmax" else f"-{self.output}"
        l2 = "-l2" if any(self.kernel_l2) else ""
        return f"mlp({sizes})-{self.activation}{head}{l2}"


NARROW = 8  # output layers this narrow are computed column by column (NarrowDense); a first
# layer with inputs this narrow takes its bias into its product (BiasTrickDense)


class _DenseLike(nn.Module):
    """``nn.Dense``'s parameters and initialisers, for a layer that orders its work otherwise."""

    features: int
    kernel_init: Callable = nn.initializers.lecun_normal()

    def dense_params(self, x):
        """``(x, kernel, bias)`` promoted to one dtype; called from the layer's compact call."""
        # float32 parameters, as nn.Dense's default param_dtype (the same draws under x64)
        kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), jnp.float32)
        return nn.dtypes.promote_dtype(x, kernel, bias)


class NarrowDense(_DenseLike):
    """``nn.Dense`` for a few outputs, one matrix-vector product per output column.

    The same parameters (``kernel`` [in, out], ``bias`` [out]), initialisers and result as
    ``nn.Dense``: only the order of the work differs. XLA's CPU backend runs a batched
    matrix product with an output a few columns wide, and the transposed products of its
    backward pass, far below its matrix rate; column by column they become vectorised
    reductions (``lrbench bench`` measures the gain on the blobs MLP).
    """

    @nn.compact
    def __call__(self, x):
        x, kernel, bias = self.dense_params(x)
        columns = [x @ kernel[:, c] for c in range(self.features)]
        return jnp.stack(columns, axis=-1) + bias


class BiasTrickDense(_DenseLike):
    """``nn.Dense`` whose bias rides in its matrix product: ``[x, 1] @ [kernel; bias]`` (the
    "bias trick" of linear classifiers).

    The same parameters (``kernel`` [in, out], ``bias`` [out]), initialisers and result, up
    to rounding, as ``nn.Dense``. For a first layer with a few inputs, whose input every run
    of a seed group shares, the bias gradient then comes out of the kernel gradient's
    product instead of a reduction of its own, and XLA's CPU backend fuses the rest of the
    backward pass into the product's operand (``lrbench bench`` measures the gain on the
    blobs MLP; with 64 inputs, as on digits, the wider product costs more than it saves).
    """

    @nn.compact
    def __call__(self, x):
        x, kernel, bias = self.dense_params(x)
        ones = jnp.ones((*x.shape[:-1], 1), x.dtype)
        return jnp.concatenate([x, ones], -1) @ jnp.concatenate([kernel, bias[None]], 0)


class MLP(nn.Module):
    """``x -> Dense(h1) -> act -> ... -> Dense(num_outputs)``: pre-activation outputs (logits).

    The hidden layers' kernels start from ``kernel_init``, the output layer's from
    ``output_init``."""

    hidden: tuple[int, ...]
    num_outputs: int
    activation: str = "relu"
    kernel_init: str = "he_uniform"
    output_init: str = "glorot_uniform"

    @nn.compact
    def __call__(self, x):
        act = ACTIVATIONS[self.activation]
        init = KERNEL_INITS[self.kernel_init]
        for layer, width in enumerate(self.hidden):
            dense = BiasTrickDense if layer == 0 and x.shape[-1] <= NARROW else nn.Dense
            x = act(dense(width, kernel_init=init, name=f"Dense_{layer}")(x))
        out, name = KERNEL_INITS[self.output_init], f"Dense_{len(self.hidden)}"
        if self.num_outputs <= NARROW:  # same parameters and names as nn.Dense
            return NarrowDense(self.num_outputs, out, name=name)(x)
        return nn.Dense(self.num_outputs, kernel_init=out, name=name)(x)


def build(config: MLPConfig, num_outputs: int) -> MLP:
    return MLP(
        config.hidden, num_outputs, config.activation, config.kernel_init, config.output_init
    )


def per_example_loss(config: MLPConfig, logits, labels):
    """Keras' ``sparse_categorical_crossentropy`` of the output head, one value per example.

    ``softmax``: ``-log softmax(z)[y]``. ``sigmoid``: Keras clips the probabilities
    ``p = σ(z)`` to ``[eps, 1 - eps]`` and takes ``-log(p_y / Σ_k p_k)`` (its backend feeds
    ``log p`` to a softmax cross-entropy), so two sigmoid outputs act as unnormalised class
    probabilities. Predictions are ``argmax z`` for both heads.
    """
    if config.output == "softmax":
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    p = jnp.clip(jax.nn.sigmoid(logits), KERAS_EPSILON, 1 - KERAS_EPSILON)
    return optax.softmax_cross_entropy_with_integer_labels(jnp.log(p), labels)


def penalty(config: MLPConfig, params):
    """The L2 kernel penalty ``Σ_l c_l·ΣW_l²`` (0 when ``kernel_l2`` is empty)."""
    total = jnp.zeros([], jax.tree_util.tree_leaves(params)[0].dtype)
    for layer, c in enumerate(config.kernel_l2):
        if c:
            total = total + c * jnp.sum(jnp.square(params[f"Dense_{layer}"]["kernel"]))
    return total


def init_many(model: nn.Module, keys: jax.Array, num_features: int, dtype=jnp.float32):
    """Initialises one parameter set per key in one vmapped call: leaves get a leading [N] axis."""
    dummy = jnp.zeros((1, num_features), dtype)
    return jax.vmap(lambda k: model.init(k, dummy)["params"])(keys)


def num_params(params) -> int:
    return sum(int(x.size) for x in jax.tree_util.tree_leaves(params))
