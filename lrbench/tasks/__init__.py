"""Tasks: what the engine trains — a data set, a model, its loss and its metric.

A task is a frozen dataclass (hashable: it selects the compiled program, so its fields are
static) with four pieces, written as pure functions the engine calls inside its jitted,
vmapped program:

- ``data()``: the :class:`lrbench.data.Dataset` (fixed arrays; labels, or float targets when
  ``num_classes`` is 0);
- ``init(key, x)`` -> parameters, ``apply(params, x)`` -> outputs: the model. With
  ``per_example = True`` (the default) both are written for one example, as in equinox and
  flax, and the engine batches ``apply`` with ``jax.vmap``; a task whose ``apply`` already
  takes a batch sets it ``False`` (the built-in MLPs, whose layers order their work for the
  CPU, see :mod:`lrbench.models`);
- ``loss(outputs, y)`` -> one value per example (the training loss is its minibatch mean,
  plus ``penalty(params)``);
- ``score(outputs, y)`` -> one value per example whose test-set mean is recorded as
  ``test_acc`` (accuracy by default; NaN where a task has none).

Built in: :class:`Classifier` (the MLP of every seed experiment, softmax cross-entropy or
Keras' sigmoid head), :class:`Regressor` (the MLP with mean squared error), :class:`Neuron`
(one linear neuron trained by the delta rule, i.e. SGD on half the squared error) and
:class:`Quadratic` (a quadratic bowl with known Hessian eigenvalues) and :class:`Perceptron`
(KDnuggets' clipped one-input neuron with a bias). A researcher's own
task is a subclass in their own file (``docs/tasks.md``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax.numpy as jnp
import numpy as np
import optax

from lrbench import data


@dataclasses.dataclass(frozen=True)
class Task:
    """The base of every task: a classifier on the data set ``dataset`` by default."""

    dataset: str = "blobs"

    per_example: ClassVar[bool] = True  # init/apply take one example; the engine vmaps apply
    kind: ClassVar[str] = ""  # the runs table's ``task`` column (default: the class's name)
    # True: a fresh random order of the training examples every epoch (a seed's, shared by its
    # runs); False: their stored order, every epoch (a loop that visits samples in turn)
    shuffle: ClassVar[bool] = True

    def data(self) -> data.Dataset:
        return data.load(self.dataset)

    def init(self, key, x) -> Any:
        """Initial parameters from a PRNG key and one training example ``x`` (a batch of one
        when ``per_example`` is False)."""
        raise NotImplementedError(f"{type(self).__name__} must define init(key, x)")

    def apply(self, params, x):
        """Outputs (e.g. logits) of the model with ``params`` on ``x``."""
        raise NotImplementedError(f"{type(self).__name__} must define apply(params, x)")

    def loss(self, outputs, y):
        """Per-example loss: softmax cross-entropy with integer labels."""
        return optax.softmax_cross_entropy_with_integer_labels(outputs, y)

    def penalty(self, params):
        """A parameter penalty added to the minibatch loss (and to the reported losses)."""
        return jnp.zeros([], jnp.result_type(*_leaves(params)))

    def score(self, outputs, y):
        """Per-example metric recorded as ``test_acc``: 1 where the argmax is the label."""
        return (jnp.argmax(outputs, -1) == y).astype(outputs.dtype)

    # -- for the layout and the memory plan (estimates a task may refine) -----------------

    @property
    def first_width(self) -> int:
        """Units of the first layer, whose product with a shared minibatch the engine makes
        one wide matrix product over a seed group's runs (``engine.max_slots``)."""
        return 64

    def activation_units(self) -> int:
        """Activations per example, forward (the memory plan counts them twice)."""
        ds = self.data()
        return ds.num_features + max(ds.num_classes, 1) + 256

    def num_params(self) -> int:
        """The number of parameters (from the shapes ``init`` returns; nothing is computed)."""
        import jax

        x = self.data().x_train
        x = x[0] if self.per_example else x[:1]
        shapes = jax.eval_shape(self.init, jax.random.PRNGKey(0), x)
        return sum(int(np.prod(s.shape)) for s in _leaves(shapes))

    # -- naming ----------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The runs table's ``task`` column: ``kind``, or the class's name."""
        return self.kind or type(self).__name__

    @property
    def label(self) -> str:
        """The runs table's ``model`` column."""
        return self.name.lower()

    def config(self) -> dict[str, Any]:
        """The task's part of a run's configuration, hashed into its run_id beside the data
        set: its kind and its fields."""
        fields = dataclasses.asdict(self)
        del fields["dataset"]
        return {"task": self.name, **fields}


def _leaves(tree):
    import jax

    return jax.tree_util.tree_leaves(tree)


from lrbench.tasks.mlp import Classifier, Regressor  # noqa: E402
from lrbench.tasks.neuron import Neuron, Perceptron, Quadratic  # noqa: E402

BUILT_IN = {t.kind: t for t in (Classifier, Regressor, Neuron, Quadratic, Perceptron)}

__all__ = ["BUILT_IN", "Classifier", "Neuron", "Perceptron", "Quadratic", "Regressor", "Task"]
