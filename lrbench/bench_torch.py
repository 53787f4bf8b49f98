"""PyTorch baselines for ``lrbench bench``: the same grid trained the ways PyTorch users would.

``c``   an eager loop over runs: ``nn.Sequential`` of ``nn.Linear`` + ``torch.optim.SGD``
        (``momentum``, PyTorch's convention ``b ← μ·b + g``, ``θ ← θ − η_t·b``), the
        learning rate set on the param group before every step.
``c′``  ``torch.func.vmap`` over stacked models: ``functional_call`` of one model with the
        [N, ...] parameters, ``grad_and_value`` per model, and a hand-written per-model
        SGD-momentum update with the same convention.

Both take a :class:`Problem` built by ``lrbench.bench`` from the engine's own runs: the JAX
initial weights, the per-epoch minibatch orders and the per-step learning rates, so the
work is identical and the final losses can be compared. They need ``torch`` (the ``bench``
extra); :func:`available` says whether it is installed.
"""

from __future__ import annotations

import os
import time
from typing import NamedTuple

import numpy as np


class Problem(NamedTuple):
    """One static group of runs, as NumPy arrays (float32 unless noted)."""

    x_train: np.ndarray  # [n_train, features]
    y_train: np.ndarray  # [n_train] int
    layers: list[
        tuple[np.ndarray, np.ndarray]
    ]  # per dense layer: kernel [S, in, out], bias [S, out]
    orders: np.ndarray  # [S, epochs, n_train] int: the minibatch order of every epoch
    which: np.ndarray  # [N] int: the run's seed among the S distinct seeds (its init and order)
    lr: np.ndarray  # [N, total steps]: the learning rate of every step
    momentum: np.ndarray  # [N]
    batch_size: int

    @property
    def n_steps(self) -> int:
        """Optimizer steps per epoch (the last minibatch is partial)."""
        return -(-len(self.x_train) // self.batch_size)


def available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def version() -> str | None:
    if not available():
        return None
    import torch

    return torch.__version__


def _torch(threads: int | None):
    import torch

    torch.set_num_threads(threads or os.cpu_count() or 1)
    return torch


def _minibatches(problem: Problem, order: np.ndarray):
    """(step within the epoch, index slice) of one epoch: the last minibatch is partial."""
    b = problem.batch_size
    return [(s, order[s * b : (s + 1) * b]) for s in range(problem.n_steps)]


def eager_loop(problem: Problem, k: int, threads: int | None = None) -> tuple[float, np.ndarray]:
    """(c) Trains runs 0 … k−1 one after another; returns (seconds, final epoch's mean loss).

    ``threads``: PyTorch's intra-op threads (default: every core).
    """
    torch = _torch(threads)
    from torch import nn

    x = torch.from_numpy(problem.x_train)
    y = torch.from_numpy(problem.y_train.astype(np.int64))
    orders = torch.from_numpy(problem.orders.astype(np.int64))
    n_train, epochs = len(x), problem.orders.shape[1]
    final = np.empty(k)
    start = time.perf_counter()
    for i in range(k):
        modules = []
        for kernel, bias in problem.layers:
            layer = nn.Linear(*kernel.shape[1:])
            with torch.no_grad():
                layer.weight.copy_(torch.from_numpy(kernel[problem.which[i]].T))
                layer.bias.copy_(torch.from_numpy(bias[problem.which[i]]))
            modules += [layer, nn.ReLU()]
        model = nn.Sequential(*modules[:-1])
        opt = torch.optim.SGD(model.parameters(), lr=0.0, momentum=float(problem.momentum[i]))
        lrs = problem.lr[i].tolist()
        for epoch in range(epochs):
            total = torch.zeros(())
            for s, idx in _minibatches(problem, orders[problem.which[i], epoch]):
                opt.param_groups[0]["lr"] = lrs[epoch * problem.n_steps + s]
                opt.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
                loss.backward()
                opt.step()
                total += loss.detach() * len(idx)
        final[i] = float(total) / n_train
    return time.perf_counter() - start, final


def vmapped(problem: Problem, threads: int | None = None) -> tuple[float, np.ndarray]:
    """(c′) Trains all N runs with ``torch.func.vmap``; returns (seconds, final epoch's mean loss).

    Runs that share their minibatch order (the same seed) share the minibatch itself
    (``in_dims=None``), so its first layer is one wide product; otherwise each run's
    minibatch is gathered. ``threads``: PyTorch's intra-op threads (default: every core).
    """
    torch = _torch(threads)
    from torch import nn
    from torch.func import functional_call, grad_and_value, vmap

    n = len(problem.momentum)
    x = torch.from_numpy(problem.x_train)
    y = torch.from_numpy(problem.y_train.astype(np.int64))
    which = torch.from_numpy(problem.which.astype(np.int64))
    orders = torch.from_numpy(problem.orders.astype(np.int64))[which]  # [N, epochs, n_train]
    shared = bool((problem.which == problem.which[0]).all())
    n_train, epochs = len(x), problem.orders.shape[1]
    modules = []
    for kernel, _ in problem.layers:
        modules += [nn.Linear(*kernel.shape[1:]), nn.ReLU()]
    model = nn.Sequential(*modules[:-1]).to("meta")

    def loss_one(params, xb, yb):
        return nn.functional.cross_entropy(functional_call(model, params, (xb,)), yb)

    start = time.perf_counter()
    params = {}
    for layer, (kernel, bias) in enumerate(problem.layers):
        params[f"{2 * layer}.weight"] = torch.from_numpy(kernel.transpose(0, 2, 1))[which]
        params[f"{2 * layer}.bias"] = torch.from_numpy(bias)[which]
    step = vmap(grad_and_value(loss_one), in_dims=(0, None, None) if shared else (0, 0, 0))
    buffers = {name: torch.zeros_like(p) for name, p in params.items()}
    lr = torch.from_numpy(problem.lr.T.copy())  # [steps, N]
    mu = torch.from_numpy(problem.momentum)
    for epoch in range(epochs):
        total = torch.zeros(n)
        for s, idx in _minibatches(problem, orders[0, epoch] if shared else orders[:, epoch].T):
            xb, yb = (x[idx], y[idx]) if shared else (x[idx.T], y[idx.T])
            grads, loss = step(params, xb, yb)
            eta = lr[epoch * problem.n_steps + s]
            with torch.no_grad():
                for name, p in params.items():
                    shape = (n,) + (1,) * (p.dim() - 1)
                    b = buffers[name].mul_(mu.view(shape)).add_(grads[name])
                    p.sub_(eta.view(shape) * b)
            total += loss * (idx.shape[0])
    seconds = time.perf_counter() - start
    return seconds, total.numpy() / n_train
