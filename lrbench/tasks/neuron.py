"""Neuron tasks: one linear neuron (seed 000's delta rule), a quadratic bowl whose Hessian
eigenvalues are given, and KDnuggets' clipped perceptron (seed 003)."""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from lrbench import data
from lrbench.tasks import Task


@dataclasses.dataclass(frozen=True)
class Neuron(Task):
    """One linear neuron ``y = w·x`` (no bias) on a regression set, trained on half the
    squared error ``½·(t − y)²``.

    SGD on that error is the delta rule ``w ← w + α·(t − y)·x`` (Widrow–Hoff), the update of
    seed 000 (``rules.make("delta")`` is the same update written as the article does). Every
    run starts at ``w = w0`` (the article's picture has one starting point); ``test_acc`` is
    the share of test examples predicted within ``tolerance`` of their target. With
    ``data_seed`` the line is drawn with that seed (:func:`lrbench.data.noisy_line`, float64):
    one data set per seed, as an experiment that redraws its data for every seed needs.
    """

    dataset: str = "line"
    w0: float = -1.0
    tolerance: float = 0.1
    data_seed: int | None = None

    kind: ClassVar[str] = "neuron"

    def __post_init__(self):
        from lrbench.errors import ConfigError

        if self.data_seed is not None and (
            self.dataset != "line" or not isinstance(self.data_seed, int) or self.data_seed < 0
        ):
            raise ConfigError(
                "data_seed",
                f"data_seed={self.data_seed!r} draws the 'line' set: an integer >= 0 with "
                f"dataset='line' (got {self.dataset!r})",
            )

    def data(self) -> data.Dataset:
        if self.data_seed is None:
            return super().data()
        return data.noisy_line(self.data_seed)

    def config(self):
        fields = super().config()
        if fields.get("data_seed") is None:  # the run_ids of the shipped line stay as they were
            fields.pop("data_seed", None)
        return fields

    def init(self, key, x):
        del key  # one starting point for every seed
        return {"w": jnp.full(x.shape, self.w0, jnp.float32)}

    def apply(self, params, x):
        return jnp.dot(x, params["w"])

    def loss(self, outputs, y):
        return 0.5 * jnp.square(y - outputs)

    def score(self, outputs, y):
        return (jnp.abs(outputs - y) <= self.tolerance).astype(outputs.dtype)

    @property
    def first_width(self) -> int:
        return 1

    def activation_units(self) -> int:
        return self.data().num_features + 1


@dataclasses.dataclass(frozen=True)
class Quadratic(Neuron):
    """The quadratic bowl ``L(w) = ½·Σ_i λ_i·(w_i − 1)²`` with the given ``eigenvalues`` λ.

    Written as least squares, so the engine's minibatch machinery trains it unchanged: the
    data set has one example per eigenvalue, ``x_i = √(d·λ_i)·e_i`` and ``t_i = √(d·λ_i)``
    (d examples), and the mean of ``½·(t_i − x_i·w)²`` over them is ``L(w)``. With
    ``batch_size = d`` a step is gradient descent on ``L``, whose closed form from ``w = w0``
    is ``w_i(t) − 1 = (1 − η·λ_i)^t·(w0 − 1)``: stable iff ``η < 2/λ_max``.
    """

    dataset: str = "quadratic"
    eigenvalues: tuple[float, ...] = (1.0, 0.1)
    w0: float = 0.0

    kind: ClassVar[str] = "quadratic"

    def __post_init__(self):
        from lrbench.errors import ConfigError

        lam = self.eigenvalues
        if not (lam and all(isinstance(v, int | float) and v > 0 for v in lam)):
            raise ConfigError("eigenvalues", f"{lam!r} must be one or more numbers > 0")

    def data(self) -> data.Dataset:
        scale = np.sqrt(len(self.eigenvalues) * np.asarray(self.eigenvalues, np.float64))
        x = np.diag(scale)  # float64: the engine casts it to the sweep's dtype
        return data.Dataset(self.dataset, x, scale, x, scale, 0)


@functools.partial(jax.custom_jvp, nondiff_argnums=(3,))
def clipped_neuron(w, x, bias_input, clip):
    """``min(b·1 + W·x, clip)`` for ``w = [b, W]`` (``clip if z > clip else z``: NaN stays NaN),
    whose derivative is the perceptron's: ``∂y/∂b = bias_input``, ``∂y/∂W = x``, as if the
    clip were not there (the rule uses no derivative of the activation)."""
    z = w[0] * 1.0 + w[1] * x
    return jnp.where(z > clip, clip, z)


@clipped_neuron.defjvp
def _clipped_neuron_jvp(clip, primals, tangents):
    w, x, bias_input = primals
    dw = tangents[0]
    return clipped_neuron(w, x, bias_input, clip), dw[0] * bias_input + dw[1] * x


@dataclasses.dataclass(frozen=True)
class Perceptron(Task):
    """KDnuggets' one-input neuron with a bias (seed 003): ``y = min(b + W·x, clip)``, trained
    on ``½·(t − y)²`` by the perceptron's delta rule, which passes the error through the clip
    as if it were not there:

        b ← b + α·(t − y)·s,    W ← W + α·(t − y)·x

    with bias input ``s`` = 1 (``bias_input="one"``, the textbook rule) or ``s = x``
    (``"x"``: the article's code, which moves both weights by the same step, so ``W − b``
    never changes). The samples are the article's six (train) and four (test), visited in
    their stored order every epoch (``shuffle`` False), from ``[b, W] = initial``;
    ``test_acc`` is the share of test samples predicted within ``tolerance`` (relative) of
    their target.
    """

    dataset: str = "kdnuggets"
    x_train: tuple[float, ...] = (60.0, 40.0, 100.0, 300.0, -50.0, 310.0)
    t_train: tuple[float, ...] = (60.0, 40.0, 150.0, 250.0, -50.0, 250.0)
    x_test: tuple[float, ...] = (10.0, 240.0, 550.0, -160.0)
    t_test: tuple[float, ...] = (10.0, 240.0, 250.0, -160.0)
    initial: tuple[float, float] = (0.05, 0.1)
    clip: float = 250.0
    bias_input: str = "one"
    tolerance: float = 0.05

    kind: ClassVar[str] = "perceptron"
    shuffle: ClassVar[bool] = False

    def __post_init__(self):
        from lrbench.errors import ConfigError

        if self.bias_input not in ("one", "x"):
            raise ConfigError("bias_input", f"{self.bias_input!r} must be 'one' or 'x'")

    def data(self) -> data.Dataset:
        col = lambda v: np.asarray(v, np.float64)[:, None]  # noqa: E731
        return data.Dataset(
            self.dataset, col(self.x_train), np.asarray(self.t_train, np.float64),
            col(self.x_test), np.asarray(self.t_test, np.float64), 0,
        )  # fmt: skip

    def init(self, key, x):
        del key  # the article's starting point for every seed
        return {"w": jnp.asarray(self.initial, x.dtype)}

    def apply(self, params, x):
        s = x[0] if self.bias_input == "x" else jnp.ones_like(x[0])
        return clipped_neuron(params["w"], x[0], s, self.clip)

    def loss(self, outputs, y):
        return 0.5 * jnp.square(y - outputs)

    def score(self, outputs, y):
        return (jnp.abs(outputs - y) <= self.tolerance * jnp.abs(y)).astype(outputs.dtype)

    @property
    def first_width(self) -> int:
        return 1

    def activation_units(self) -> int:
        return 2
