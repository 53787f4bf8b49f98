"""The MLP tasks: the classifier of every seed experiment, and the same MLP on squared error."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax.numpy as jnp

from lrbench import models
from lrbench.models import MLPConfig
from lrbench.tasks import Task

# Model fields added after the first results were published: left out of a run's
# configuration at their defaults, so the run_ids of plain softmax MLPs stay as they were.
_OPTIONAL_MODEL_FIELDS = {"output": "softmax", "kernel_l2": ()}


@dataclasses.dataclass(frozen=True)
class Classifier(Task):
    """An MLP (:class:`lrbench.models.MLPConfig`) trained with Keras' sparse categorical
    cross-entropy of its output head (softmax, or Keras' sigmoid head) plus its L2 kernel
    penalty; ``test_acc`` is the accuracy of ``argmax`` of the outputs."""

    model: MLPConfig = MLPConfig()

    per_example: ClassVar[bool] = False  # flax Dense takes a batch; see lrbench.models
    kind: ClassVar[str] = "classifier"

    @property
    def num_outputs(self) -> int:
        return self.data().num_classes

    def net(self) -> models.MLP:
        return models.build(self.model, self.num_outputs)

    def init(self, key, x):
        return self.net().init(key, x)["params"]

    def apply(self, params, x):
        return self.net().apply({"params": params}, x)

    def loss(self, outputs, y):
        return models.per_example_loss(self.model, outputs, y)

    def penalty(self, params):
        return models.penalty(self.model, params)

    @property
    def first_width(self) -> int:
        return self.model.hidden[0] if self.model.hidden else self.num_outputs

    def widths(self) -> list[int]:
        """Units of every layer, input to output."""
        ds = self.data()
        return [ds.num_features, *self.model.hidden, self.num_outputs]

    def activation_units(self) -> int:
        return sum(self.widths())

    @property
    def label(self) -> str:
        return self.model.name

    def config(self) -> dict[str, Any]:
        """The run's model as in its run_id: fields added later are left out at the value
        that gives the model from before they existed. ``output_init`` is left out when it
        equals ``kernel_init`` (the output layer took ``kernel_init`` before), so a model
        with Keras' default output layer and another hidden initialiser has a run_id of its
        own, never the old one's."""
        model = dataclasses.asdict(self.model)
        for name, default in _OPTIONAL_MODEL_FIELDS.items():
            if model[name] == default:
                del model[name]
        if model["output_init"] == model["kernel_init"]:
            del model["output_init"]
        return {"model": model}


@dataclasses.dataclass(frozen=True)
class Regressor(Classifier):
    """The same MLP on the squared error ``½·Σ_k (z_k − t_k)²`` of its outputs ``z``, with
    ``t`` the one-hot label on a classification set (as Cohen et al. 2021 train networks for
    the edge of stability) or the float target of a regression set (``num_classes`` 0);
    ``test_acc`` is the accuracy of ``argmax z`` on a classification set, NaN otherwise."""

    kind: ClassVar[str] = "regressor"

    @property
    def num_outputs(self) -> int:
        ds = self.data()
        return ds.num_classes or (1 if ds.y_train.ndim == 1 else ds.y_train.shape[1])

    def targets(self, y, like):
        if self.data().num_classes:
            return (jnp.arange(like.shape[-1]) == y[..., None]).astype(like.dtype)
        return jnp.reshape(y, like.shape).astype(like.dtype)

    def loss(self, outputs, y):
        return 0.5 * jnp.sum(jnp.square(outputs - self.targets(y, outputs)), -1)

    def score(self, outputs, y):
        if self.data().num_classes:
            return super().score(outputs, y)
        return jnp.full(outputs.shape[:-1], jnp.nan, outputs.dtype)

    @property
    def label(self) -> str:
        return f"{self.model.name}-mse"

    def config(self) -> dict[str, Any]:
        return {"task": self.kind, **super().config()}
