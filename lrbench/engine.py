"""The training engine: one jitted, vmapped program per static signature.

``make_train(static)`` returns a pure ``train(arrays, runs) -> History`` for a whole batch of
runs (PureJaxRL's ``make_train`` pattern): ``jax.vmap`` over runs, ``lax.scan`` over epochs
and minibatches. What selects the program (the task — data set, model, loss, metric — the
optimizer kind and impl, epochs, batch size, dtype) is :class:`Static`; everything a grid
varies (learning rate, schedule kind and parameters, optimizer hyperparameters, seed) is
:class:`RunData`, traced, so changing it never recompiles. The engine takes these typed
arrays, not tables: :mod:`lrbench.spec` builds them from a sweep's runs table.

Common random numbers: a run's initial weights and minibatch order depend on its seed only,
so runs that differ in learning rate, schedule or optimizer see the same data in the same
order from the same starting point. The orders (a sort per seed and epoch) are computed
before the program, once per seed (:func:`data.minibatch_orders`), and given to it; with one
group a device, each device computes its group's orders itself (:class:`DevicePrograms`).

Layout (:func:`plan`): a chunk of runs is ``[groups, slots]``, every group of one seed. The
program vmaps over a group's slots with the seed unbatched, so a minibatch is gathered once
per group and the first layer's product with it is one wide matrix product over the group;
groups run one after another (``lax.map``), so a group's working set stays in cache; the
groups axis is split over the local devices, each running the one-device program on its
share (:class:`DevicePrograms`: runs never talk to each other). A run's seed group (its
width and its position in it) depends on the sweep alone, never on the device count or the
chunk size, and every device runs the same one-device program: a run's numbers are bitwise
the same however the sweep is laid out.

Closed-loop schedules (reduce/increase on plateau) keep their state in the epoch-scan carry
and update it at the end of each epoch (``schedules.closed_loop_update``).

A run whose loss turns non-finite at a step, or whose weights are non-finite at the end of
an epoch, has diverged: its ``diverged_at`` is that 1-based epoch, that epoch and the later
ones are NaN, and its closed-loop schedule state is frozen. Its weights are not checked or
selected at every step (that cost 7% of a blobs step): they may go on as NaN, which touches
no other run, and nothing reads them again.

Probes (off by default, so the default program is unchanged): ``Static.probes`` names what to
record after every step (:data:`STEP_PROBES`: the minibatch loss, the learning rate, the full
training-set loss, the parameters) and ``Static.final_params`` asks for the parameters at the
end; the program then returns ``(History, Probes)``. Step records are raw: a diverged run's
non-finite values are kept, as a learning-rate range test needs them. The curvature probes
(:data:`CURVATURE_PROBES`: sharpness, Adam's preconditioned sharpness, gradient norm,
update-to-weight ratio per layer; :mod:`lrbench.curvature`) are taken after every
``Static.probe_every``-th step only, on the loss of the training set or its first
``Static.probe_batch`` examples, and are NaN after the other steps; the step index that picks
them comes from the scans' unbatched indices, so under the vmap the choice is a ``lax.cond``
branch and a step without them computes no Hessian-vector product. Each sharpness probe is
``Static.probe_iters`` steps of power iteration warm-started from the previous probe's
eigenvector (kept in the step carry; the first start is a random unit vector from the run's
seed).
"""

from __future__ import annotations

import concurrent.futures
import functools
import math
import os
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrbench import curvature, data, rules, schedules
from lrbench.errors import ConfigError
from lrbench.tasks import Task


class Static(NamedTuple):
    """What a compiled program is specialised to (hashable: the compile-cache key)."""

    task: Task
    optimizer: str
    impl: str
    epochs: int
    batch_size: int
    dtype: str = "float32"
    schedule_impl: str = "hand"  # "optax": the runs' lr comes from their optax twin schedules
    plateau_twin: tuple[float, float] | None = None  # optax reduce_on_plateau (factor, min_delta)
    validation_freq: int = 1  # test evaluation every k epochs (Keras); 0: none
    probes: tuple[str, ...] = ()  # recorded after every step (``STEP_PROBES``); () records none
    final_params: bool = False  # also return every run's parameters after the last step
    probe_every: int = 1  # curvature probes (``CURVATURE_PROBES``) after steps k, 2k, ... (1-based)
    probe_iters: int = 20  # Hessian-vector products per sharpness probe (power iteration)
    probe_batch: int = 0  # curvature probes' loss: 0 the full training set, n its first n examples


class RunData(NamedTuple):
    """Per-run traced inputs; every leaf has a leading [N] axis."""

    seed: Any  # int32
    lr: Any  # base learning rate
    hparams: dict[str, Any]  # the optimizer's hyperparameters
    schedule_kind: Any  # int32 index into ``schedules.kinds()``
    schedule_params: dict[str, Any]  # every name in ``schedules.all_param_names()``
    unit_is_step: Any  # bool: schedule time counts steps (else epochs)
    lr_table: Any = None  # [N, total steps] optax twin multipliers (``schedule_impl="optax"``)


class History(NamedTuple):
    """What a run records; [N, epochs] arrays except where noted."""

    lr: Any  # learning rate at the first step of each epoch
    train_loss: Any  # mean minibatch loss over the epoch (sample-weighted)
    test_loss: Any  # NaN at epochs without a test evaluation (``Static.validation_freq``)
    test_acc: Any
    initial_train_loss: Any  # [N] full training-set loss before the first step
    diverged_at: Any  # [N] int32: 1-based epoch where the run turned non-finite, 0 if never


# What ``Static.probes`` may name, each recorded once per step (its update):
STEP_PROBES = {
    "loss": "the minibatch loss the step's gradient is taken of (before its update)",
    "lr": "the step's learning rate",
    "train_loss": "the full training-set loss after the update, E(w) = mean_i loss_i + penalty",
    "params": "the parameters after the update",
    "sharpness": "the top Hessian eigenvalue of the training loss after the update (power "
    "iteration, warm-started from the previous probe's eigenvector)",
    "preconditioned_sharpness": "the top eigenvalue of P^-1 H after the update, P Adam's "
    "preconditioner (1 - b1^t) diag(sqrt(v_hat) + eps) from the run's optimizer state",
    "grad_norm": "the norm of the training loss's full gradient after the update",
    "update_ratio": "per layer, the norm of the step's update over the norm of the parameters "
    "it was applied to (a dict layer -> value)",
}

# The probes computed only every ``Static.probe_every`` steps (NaN at the others), on the loss
# of the whole training set or its first ``Static.probe_batch`` examples (:mod:`curvature`).
CURVATURE_PROBES = ("sharpness", "preconditioned_sharpness", "grad_norm", "update_ratio")
# Optimizers with an Adam-type second moment, whose state gives ``preconditioned_sharpness``.
ADAM_TYPE = ("adam", "adamw", "nadam", "amsgrad")


class Probes(NamedTuple):
    """Step-resolution records and final parameters (``Static.probes``, ``final_params``)."""

    steps: dict[str, Any]  # name -> [N, total steps, ...]: after step k (0-based) at index k
    params: Any  # the parameters after the last step, leaves [N, ...]; None unless asked


def records(static: Static) -> bool:
    """Whether the program of ``static`` returns ``(History, Probes)`` (else ``History``)."""
    return bool(static.probes) or static.final_params


def _check_probes(static: Static) -> None:
    unknown = [p for p in static.probes if p not in STEP_PROBES]
    if unknown or len(set(static.probes)) != len(static.probes):
        raise ConfigError(
            "probes",
            f"{static.probes!r} must name distinct step probes; allowed: {', '.join(STEP_PROBES)}",
        )
    for field, low in (("probe_every", 1), ("probe_iters", 1), ("probe_batch", 0)):
        value = getattr(static, field)
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < low:
            raise ConfigError(field, f"{field}={value!r} must be a whole number >= {low}")
    if "preconditioned_sharpness" in static.probes and static.optimizer not in ADAM_TYPE:
        raise ConfigError(
            "probes",
            f"preconditioned_sharpness needs an Adam-type second moment; optimizer "
            f"{static.optimizer!r} has none (allowed: {', '.join(ADAM_TYPE)})",
        )


class _Carry(NamedTuple):
    params: Any
    opt_state: Any
    step: jax.Array
    alive: jax.Array
    diverged_at: jax.Array
    plateau: schedules.PlateauState  # closed-loop schedules: base rate, best metric, counters
    plateau_twin: Any  # optax.contrib.reduce_on_plateau's state (``Static.plateau_twin``), or None
    eigvecs: Any = None  # the sharpness probes' last eigenvectors (warm starts), or None


def _adam_state(opt_state):
    """The part of an optimizer state (hand or optax) that holds Adam's ``count`` and ``nu``."""
    if hasattr(opt_state, "nu") and hasattr(opt_state, "count"):
        return opt_state
    if isinstance(opt_state, tuple | list):
        for part in opt_state:
            found = _adam_state(part)
            if found is not None:
                return found
    return None


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]
    return functools.reduce(jnp.logical_and, leaves, jnp.bool_(True))


def _select(ok, new, old):
    return jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    return math.ceil(n_train / batch_size)


def make_train(static: Static) -> Callable[[tuple, RunData, Any], History]:
    """Builds ``train(arrays, runs, orders)`` for one static signature (not yet jitted).

    It returns a :class:`History`, or ``(History, Probes)`` when ``static`` asks for probes
    (:func:`records`).

    ``arrays`` is ``(x_train, y_train, x_test, y_test)``; ``runs`` a :class:`RunData` whose
    leaves have leading ``[groups, slots]`` axes, every group holding runs of one seed
    (:func:`plan` lays a chunk out so); ``orders`` is ``[groups, epochs, n_train]``, each
    group's minibatch orders (:func:`data.minibatch_orders` of its seed, computed before the
    program: once per seed, not once per group); the history has the leading axes of
    ``runs``. The last minibatch of an epoch is partial, as in Keras and PyTorch's
    ``DataLoader``: it is padded and masked, so every step has the same shape.
    """
    _check_probes(static)
    task = static.task
    ds = task.data()
    dtype = jnp.dtype(static.dtype)
    n_train, batch = len(ds.x_train), static.batch_size
    n_steps = steps_per_epoch(n_train, batch)
    pad = n_steps * batch - n_train
    forward = jax.vmap(task.apply, in_axes=(None, 0)) if task.per_example else task.apply

    # The minibatch sizes, and each example's share of its minibatch's mean loss (0 for the
    # padding of the last, partial minibatch): constants of the program.
    sizes = np.full(n_steps, batch).astype(dtype)
    sizes[-1] -= pad
    real = (np.arange(n_steps * batch) < n_train).reshape(n_steps, batch)
    shares = (real / sizes[:, None]).astype(dtype)
    measured = [p for p in static.probes if p in CURVATURE_PROBES]
    if static.probe_batch > n_train:
        raise ConfigError(
            "probe_batch",
            f"probe_batch={static.probe_batch} must be at most the {n_train} training examples "
            "(0: all of them)",
        )
    n_probe = static.probe_batch or n_train

    def loss_fn(params, x, y, share):
        losses = task.loss(forward(params, x), y)
        return jnp.sum(share * losses) + task.penalty(params)

    def evaluate(params, x, y):
        outputs = forward(params, x)
        loss = jnp.mean(task.loss(outputs, y))
        loss = loss + task.penalty(params)  # Keras reports it in both
        score = jnp.mean(task.score(outputs, y).astype(dtype))
        return loss, score

    def validate(params, epoch, x, y):
        """Test loss and accuracy (on ``x``, ``y``) at the end of 0-based ``epoch``; NaN where
        Keras' ``validation_freq`` skips it. The branch depends on the epoch only, never on a run,
        so under the vmap it stays a branch and a skipped evaluation costs nothing."""
        k = static.validation_freq
        skipped = lambda p: (jnp.full([], jnp.nan, dtype), jnp.full([], jnp.nan, dtype))  # noqa: E731
        if k == 0:
            return skipped(params)
        if k == 1:
            return evaluate(params, x, y)
        return jax.lax.cond((epoch + 1) % k == 0, lambda p: evaluate(p, x, y), skipped, params)

    def train_one(arrays, seed, orders, run: RunData) -> History:
        x_tr, y_tr, x_te, y_te = arrays
        init_key, _ = data.seed_keys(seed)
        params = task.init(init_key, x_tr[0] if task.per_example else x_tr[:1])
        params = jax.tree_util.tree_map(lambda p: jnp.asarray(p).astype(dtype), params)

        def optimizer(lr):
            return rules.make(static.optimizer, static.impl, learning_rate=lr, **run.hparams)

        def epoch_lrs(first_step, base_lr):
            """The learning rate of each step of the epoch starting at ``first_step``: computed
            for the whole epoch at once, so the step loop carries no schedule arithmetic."""
            steps = first_step + jnp.arange(n_steps)
            if static.schedule_impl == "optax":
                factor = run.lr_table[jnp.minimum(steps, run.lr_table.shape[0] - 1)]
            else:
                factor = jax.vmap(
                    lambda t: schedules.evaluate(
                        run.schedule_kind, run.schedule_params, run.unit_is_step, t, n_steps
                    )
                )(steps)
            return (base_lr * factor).astype(dtype)

        twin_plateau = None
        if static.plateau_twin is not None:
            twin_plateau = schedules.optax_plateau(
                *static.plateau_twin, run.schedule_params, run.lr
            )

        def end_of_epoch(carry: _Carry, train_loss, test_loss, test_acc):
            """Closed-loop schedules (Keras ReduceLROnPlateau) act at the end of the epoch."""
            if twin_plateau is None:
                plateau = schedules.closed_loop_update(
                    run.schedule_kind, run.schedule_params, carry.plateau,
                    train_loss, test_loss, test_acc,
                )  # fmt: skip
                return plateau, carry.plateau_twin
            value = schedules.monitored(run.schedule_params, train_loss, test_loss, test_acc)
            _, state = twin_plateau.update(jnp.zeros([], dtype), carry.plateau_twin, value=value)
            return carry.plateau._replace(lr=(run.lr * state.scale).astype(dtype)), state

        def start_vectors(key, params):
            """The sharpness probes' first starts: random unit vectors from the run's seed."""
            names = [p for p in measured if p in ("sharpness", "preconditioned_sharpness")]
            if not names:
                return None
            key = jax.random.fold_in(key, 0x5EED)
            return {
                name: curvature.random_unit_vector(jax.random.fold_in(key, i), params)
                for i, name in enumerate(("sharpness", "preconditioned_sharpness"))
                if name in names
            }

        def probe(params, loss, lr):
            """This step's records (``Static.probes``), after its update."""
            record = {"loss": loss, "lr": lr, "params": params}
            if "train_loss" in static.probes:  # a pass over the training set: only when asked
                record["train_loss"] = evaluate(params, x_tr, y_tr)[0]
            return {name: record[name] for name in static.probes if name in record}

        def probe_loss(p):
            """The curvature probes' loss: the training loss on the probe batch."""
            return jnp.mean(task.loss(forward(p, x_tr[:n_probe]), y_tr[:n_probe])) + task.penalty(p)

        def adam_precond(opt_state):
            """Adam's preconditioner P from the state after the update (count t)."""
            state = _adam_state(opt_state)
            hp = rules.resolve(static.optimizer, run.hparams)
            if hasattr(state, "nu_max"):  # AMSGrad: the running maximum of v_hat
                nu_hat = state.nu_max
            else:
                correction = 1 - hp["b2"] ** state.count
                nu_hat = jax.tree_util.tree_map(lambda v: v / correction.astype(v.dtype), state.nu)
            nu_hat = jax.tree_util.tree_map(lambda v: v + hp["eps_root"], nu_hat)
            precond = curvature.adam_preconditioner(nu_hat, hp["b1"], state.count, hp["eps"])
            return jax.tree_util.tree_map(lambda q, p: q.astype(p.dtype), precond, nu_hat)

        def measure(operands):
            """The curvature probes of this step (``CURVATURE_PROBES``) and the new warm starts."""
            params, old_params, opt_state, eigvecs = operands
            out, eigvecs = {}, dict(eigvecs)
            iters = static.probe_iters
            if "sharpness" in measured:
                out["sharpness"], eigvecs["sharpness"] = curvature.top_eigenvalue(
                    probe_loss, params, eigvecs["sharpness"], iters
                )
            if "preconditioned_sharpness" in measured:
                lam, eigvecs["preconditioned_sharpness"] = curvature.preconditioned_top_eigenvalue(
                    probe_loss, params, adam_precond(opt_state),
                    eigvecs["preconditioned_sharpness"], iters,
                )  # fmt: skip
                out["preconditioned_sharpness"] = lam
            if "grad_norm" in measured:
                out["grad_norm"] = curvature.grad_norm(probe_loss, params)
            if "update_ratio" in measured:
                update = jax.tree_util.tree_map(jnp.subtract, params, old_params)
                ratio = curvature.update_ratio(update, old_params)
                out["update_ratio"] = ratio if isinstance(ratio, dict) else {"params": ratio}
            out = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), out)
            return out, eigvecs

        def skip_measure(operands):
            """A step without curvature probes: NaN, and the warm starts kept."""
            shapes = jax.eval_shape(measure, operands)[0]
            return jax.tree_util.tree_map(lambda a: jnp.full(a.shape, jnp.nan, a.dtype), shapes), (
                operands[3]
            )

        def measure_every(step_id, operands):
            """Curvature probes at steps ``k`` with ``(k + 1) % probe_every == 0``. ``step_id``
            comes from the scans' unbatched indices, never from a run: under the vmap the
            ``cond`` stays a branch, so a step without probes skips the Hessian-vector
            products."""
            k = static.probe_every
            if k == 1:
                return measure(operands)
            return jax.lax.cond((step_id + 1) % k == 0, measure, skip_measure, operands)

        def train_step(carry: _Carry, minibatch):
            if measured:
                x, y, share, lr, step_id = minibatch
            else:
                x, y, share, lr = minibatch
            loss, grads = jax.value_and_grad(loss_fn)(carry.params, x, y, share)
            updates, opt_state = optimizer(lr).update(grads, carry.opt_state, carry.params)
            params = optax.apply_updates(carry.params, updates)
            ok = carry.alive & jnp.isfinite(loss)
            old = carry
            carry = _Carry(
                params=params,
                opt_state=opt_state,
                step=carry.step + 1,
                alive=ok,
                diverged_at=carry.diverged_at,
                plateau=carry.plateau,
                plateau_twin=carry.plateau_twin,
                eigvecs=carry.eigvecs,
            )
            if not static.probes:
                return carry, loss
            record = probe(params, loss, lr)
            if measured:
                operands = (params, old.params, opt_state, old.eigvecs)
                values, eigvecs = measure_every(step_id, operands)
                record.update(values)
                carry = carry._replace(eigvecs=eigvecs)
            return carry, (loss, {name: record[name] for name in static.probes})

        def train_epoch(carry: _Carry, epoch_order):
            epoch, order = epoch_order
            idx = jnp.concatenate([order, jnp.zeros(pad, order.dtype)]).reshape(n_steps, batch)
            lrs = epoch_lrs(carry.step, carry.plateau.lr)
            minibatches = (x_tr[idx], y_tr[idx], shares, lrs)  # gathered once an epoch
            if measured:  # the run's step index, from the unbatched epoch index
                minibatches += (epoch * n_steps + jnp.arange(n_steps, dtype=jnp.int32),)
            carry, losses = jax.lax.scan(train_step, carry, minibatches)
            steps = {}
            if static.probes:
                losses, steps = losses
            test_loss, test_acc = validate(carry.params, epoch, x_te, y_te)
            alive = carry.alive & _all_finite(carry.params)
            train_loss = jnp.sum(losses * sizes) / n_train
            plateau, plateau_twin = end_of_epoch(carry, train_loss, test_loss, test_acc)
            nan = jnp.asarray(jnp.nan, dtype)
            record = (
                lrs[0],
                jnp.where(alive, train_loss, nan),
                jnp.where(alive, test_loss, nan),
                jnp.where(alive, test_acc, nan),
            )
            first_failure = (~alive) & (carry.diverged_at == 0)
            carry = carry._replace(
                diverged_at=jnp.where(first_failure, epoch + 1, carry.diverged_at),
                plateau=_select(alive, plateau, carry.plateau),
                plateau_twin=_select(alive, plateau_twin, carry.plateau_twin),
            )
            return carry, (record, steps)

        carry = _Carry(
            params=params,
            opt_state=optimizer(run.lr).init(params),
            step=jnp.zeros([], jnp.int32),
            alive=jnp.bool_(True),
            diverged_at=jnp.zeros([], jnp.int32),
            plateau=schedules.plateau_init(run.lr, dtype),
            plateau_twin=None if twin_plateau is None else twin_plateau.init(params),
            eigvecs=start_vectors(init_key, params),
        )
        initial_loss, _ = evaluate(params, x_tr, y_tr)
        carry, ((lr, train_loss, test_loss, test_acc), steps) = jax.lax.scan(
            train_epoch, carry, (jnp.arange(static.epochs, dtype=jnp.int32), orders)
        )
        history = History(lr, train_loss, test_loss, test_acc, initial_loss, carry.diverged_at)
        if not records(static):
            return history
        # [epochs, steps per epoch, ...] -> [total steps, ...]: step k of the run at index k
        steps = jax.tree_util.tree_map(lambda a: a.reshape(-1, *a.shape[2:]), steps)
        return history, Probes(steps, carry.params if static.final_params else None)

    # Runs of one seed share their initial weights and minibatches: the vmap keeps those
    # unbatched, so each minibatch is gathered once per seed and a layer's product with it
    # is one wide matrix product over the seed's runs. Groups go one after another
    # (``lax.map``), so one group's working set stays in cache.
    per_seed = jax.vmap(train_one, in_axes=(None, None, None, 0))

    def train(arrays, runs: RunData, orders) -> History:
        def group(args):
            runs, orders = args
            return per_seed(arrays, runs.seed[0], orders, runs)

        return jax.lax.map(group, (runs, orders))

    return train


# ---------------------------------------------------------------------------------------------
# Running a group of runs: compile once, chunk, shard over devices


def arrays_for(static: Static) -> tuple:
    """``(x_train, y_train, x_test, y_test)`` of the static group's data set, in its dtype."""
    return _dataset_arrays(static.task, static.dtype)


def _dataset_arrays(task: Task, dtype: str) -> tuple:
    ds = task.data()
    target = lambda y: jnp.asarray(y, dtype if ds.num_classes == 0 else None)  # noqa: E731
    return (
        jnp.asarray(ds.x_train, dtype),
        target(ds.y_train),
        jnp.asarray(ds.x_test, dtype),
        target(ds.y_test),
    )


@functools.cache
def _replicated_arrays(task: Task, dtype: str, version=None) -> tuple:
    """A data set placed once on every local device (each device program's input), so no call
    of a group's program copies it again; one copy per data set, dtype and device (and
    ``version``: :func:`data.version`, which changes with a data file on disk)."""
    arrays = _dataset_arrays(task, dtype)
    return tuple(jax.device_put(arrays, d) for d in jax.local_devices())


def use_cpu_cores(n: int | None = None) -> int:
    """Splits the host CPU into ``n`` JAX devices (default: ``LRBENCH_CPU_DEVICES``, else the
    core count), so the grid axis is sharded over every core; returns the count asked for,
    or 0 when nothing changed.

    XLA runs one CPU device's program on few threads; with a device per core the chunks'
    shards run side by side (``lrbench bench`` measures the gain). Must run before JAX starts
    its backends (the CLI calls it first thing); an explicit
    ``--xla_force_host_platform_device_count`` in ``XLA_FLAGS`` wins. Accelerators are
    unaffected: only the CPU backend is split.
    """
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return 0
    if n is None and (text := os.environ.get("LRBENCH_CPU_DEVICES")):
        if not (text.isdigit() and int(text) > 0):
            raise ConfigError("LRBENCH_CPU_DEVICES", f"{text!r} must be a whole number >= 1")
        n = int(text)
    n = n or os.cpu_count() or 1
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:  # backends already initialised: keep what is there
        return 0
    return n


class Layout(NamedTuple):
    """How one chunk of runs sits in the compiled program: ``groups`` × ``slots`` runs, each
    group of one seed. ``groups`` is a multiple of the device count (the sharded axis)."""

    groups: int
    slots: int

    @property
    def size(self) -> int:
        return self.groups * self.slots


# Runs of one seed trained side by side: the first layer's shared-input product is about this
# many columns wide. Narrower products waste the matrix unit; wider ones push a group's
# working set out of cache (``lrbench bench`` times the choice: ``--levers``).
WIDE_COLUMNS = 1024


def max_slots(static: Static) -> int:
    """Runs per seed group for a task: ``WIDE_COLUMNS`` over its first layer's width."""
    return max(1, WIDE_COLUMNS // static.task.first_width)


def plan(seeds, max_chunk: int = 4096, slot_cap: int = 2**31) -> tuple[Layout, list[np.ndarray]]:
    """Lays a group's runs out in chunks of one :class:`Layout`; returns it and, per chunk, a
    ``[groups, slots]`` array of row positions into ``seeds``.

    Runs are grouped by seed (rows in their given order within a seed); a seed's runs fill
    groups of ``slots``, the last group of a seed padded by repeating its last run, and the
    last chunk padded by repeating its last group: padding runs are computed and dropped.

    Layout independence: ``slots`` and the seed groups depend on the seeds and ``slot_cap``
    alone — as wide as the largest seed's share and ``slot_cap`` allow, split evenly — never
    on the device count or ``max_chunk`` (except when ``max_chunk`` is narrower than such a
    group: memory then forces narrower groups). Every run therefore sits at the same position
    in the same group (the same wide products, summed in the same order) whatever the layout,
    and its float32 numbers are bitwise the same on any number of devices and in chunks of
    any size. A chunk holds as many whole groups as ``max_chunk`` allows, at least one per
    device, rounded up to a multiple of the device count (padded: a device with no group of
    its own trains a copy). The plan depends only on its arguments and the local device
    count, so every chunk of a group runs one program and a resumed sweep finds the same
    chunks.
    """
    seeds = np.asarray(seeds)
    n_dev = jax.local_device_count()
    if len(seeds) <= SMALL_PLANS:  # a small grid's plan, once: it costs as much as its training
        key = (seeds.tobytes(), seeds.dtype.str, max_chunk, slot_cap, n_dev)
        return _small_plan(key, lambda: _plan(seeds, max_chunk, slot_cap, n_dev))
    return _plan(seeds, max_chunk, slot_cap, n_dev)


SMALL_PLANS = 64  # grids of at most this many runs keep their plans (``_small_plan``)
_PLANS: dict[tuple, tuple] = {}


def _small_plan(key, make) -> tuple[Layout, list[np.ndarray]]:
    """The plan of ``key`` made once (read-only arrays; the 256 most recent kept)."""
    if key not in _PLANS:
        while len(_PLANS) >= 256:
            _PLANS.pop(next(iter(_PLANS)))
        layout, chunks = make()
        for chunk in chunks:
            chunk.flags.writeable = False
        _PLANS[key] = (layout, chunks)
    layout, chunks = _PLANS[key]
    return layout, list(chunks)


def _plan(seeds: np.ndarray, max_chunk: int, slot_cap: int, n_dev: int):
    """:func:`plan` on ``n_dev`` devices."""
    order = np.argsort(seeds, kind="stable")
    _, starts, counts = np.unique(seeds[order], return_index=True, return_counts=True)
    largest = int(counts.max())
    widest = max(1, min(largest, slot_cap, max_chunk))
    slots = math.ceil(largest / math.ceil(largest / widest))  # even groups: least padding
    pieces = []
    for start, count in zip(starts, counts, strict=True):
        rows = order[start : start + count]
        for lo in range(0, count, slots):
            piece = rows[lo : lo + slots]
            pieces.append(np.concatenate([piece, np.repeat(piece[-1:], slots - len(piece))]))
    most = max(1, max_chunk // slots // n_dev) * n_dev  # groups a chunk may hold
    per_chunk = math.ceil(len(pieces) / math.ceil(len(pieces) / most))  # even chunks
    groups = math.ceil(per_chunk / n_dev) * n_dev
    chunks = []
    for lo in range(0, len(pieces), groups):
        part = pieces[lo : lo + groups]
        chunks.append(np.stack(part + [part[-1]] * (groups - len(part))))
    return Layout(groups, slots), chunks


def plan_group(
    static: Static, seeds, max_chunk: int = 4096, slots: int | None = None
) -> tuple[Layout, list[np.ndarray]]:
    """:func:`plan` for one static group: seed groups of at most ``slots`` runs (default
    :func:`max_slots` of its model)."""
    return plan(seeds, max_chunk, slots or max_slots(static))


def program(static: Static) -> Callable[[tuple, RunData, Any], History]:
    """One device's program: :func:`make_train` (not yet jitted).

    Each local device runs its own copy, compiled for one device, on its share of a chunk's
    groups (:class:`DevicePrograms`): runs never talk to each other, so nothing is
    partitioned. Not ``shard_map`` over a mesh: a program partitioned over several devices
    goes through XLA's SPMD passes, which fuse the elementwise updates differently from the
    one-device program, and Adam's update (a division by a square root) then rounds
    differently (1e-4 of a chaotic run's loss after three epochs) on 2 devices than on 1.
    One device's program is the same on every device count, so a run's numbers are too.
    """
    return make_train(static)


def _packing(template: RunData) -> list[tuple[str, int] | None]:
    """Where each leaf of runs shaped as ``template`` travels: ``(dtype, k)``, the ``k``-th
    column of its dtype's packed array (a per-run scalar: leaves ``[groups, slots]``), or
    None: on its own (a leaf with more axes, the optax twin's ``lr_table``)."""
    seen: dict[str, int] = {}
    where = []
    for leaf in jax.tree_util.tree_leaves(template):
        if len(leaf.shape) != 2:
            where.append(None)
            continue
        name = np.dtype(leaf.dtype).name
        where.append((name, seen.get(name, 0)))
        seen[name] = seen.get(name, 0) + 1
    return where


def pack_runs(template: RunData, runs: RunData, where=None) -> tuple[dict[str, np.ndarray], tuple]:
    """``runs`` (NumPy, any leading axes) as few arrays, in ``template``'s dtypes: the per-run
    scalars stacked along a last axis, one array per dtype, and the leaves with more axes as
    they are (:func:`unpack_runs` inverts it inside the program). A program call costs
    microseconds per argument: one a field would cost more than training a small run.
    ``where``: :func:`_packing` of ``template``, if known."""
    leaves = jax.tree_util.tree_leaves(runs)
    where = where or _packing(template)
    width: dict[str, int] = {}
    for to in where:
        if to is not None:
            width[to[0]] = to[1] + 1
    lead = np.shape(runs.seed)
    columns = {name: np.empty((*lead, k), name) for name, k in width.items()}
    rest = []
    for leaf, kind, to in zip(leaves, jax.tree_util.tree_leaves(template), where, strict=True):
        if to is None:
            rest.append(np.asarray(leaf, kind.dtype))
        else:
            columns[to[0]][..., to[1]] = leaf  # NumPy's cast: as np.asarray(leaf, dtype)
    return columns, tuple(rest)


def unpack_runs(template: RunData, packed) -> RunData:
    """:func:`pack_runs`'s inverse (traceable): the :class:`RunData` of ``template``'s shape."""
    columns, rest = packed
    rest = iter(rest)
    leaves = [
        next(rest) if where is None else columns[where[0]][..., where[1]]
        for where in _packing(template)
    ]
    return jax.tree_util.tree_structure(template).unflatten(leaves)


def _packed_spec(template: RunData) -> tuple[dict, tuple]:
    """The shapes and types of :func:`pack_runs` of runs shaped as ``template``."""
    leaves = jax.tree_util.tree_leaves(template)
    columns: dict[str, list] = {}
    rest = []
    for leaf, where in zip(leaves, _packing(template), strict=True):
        if where is None:
            rest.append(leaf)
        else:
            columns.setdefault(where[0], []).append(leaf)
    spec = {
        name: jax.ShapeDtypeStruct((*cols[0].shape, len(cols)), name, sharding=cols[0].sharding)
        for name, cols in columns.items()
    }
    return spec, tuple(rest)


class DevicePrograms:
    """A chunk's program on every local device: ``self(arrays, runs, orders)`` hands device
    ``k`` the ``k``-th equal share of the groups axis (arrays: ``_replicated_arrays``, one
    copy per device), runs the shares side by side (JAX dispatches asynchronously) and
    returns the outputs joined back in order, NumPy.

    A small grid pays little for the machinery around the program: the runs come packed
    (:meth:`pack`: a few arrays, not one per field) and go as NumPy arrays straight into the
    executables; a device whose share is padding only (``used``: the leading groups that are
    not) is not run, and its outputs are left out; and with ``order_programs`` (one group a
    device) each device computes its group's minibatch orders itself from ``seeds`` (the
    groups' seeds; ``orders`` None), so they never pass through the host."""

    def __init__(self, executables, devices, template: RunData, order_programs=None):
        self.executables, self.devices, self.template = executables, devices, template
        self.order_programs = order_programs
        self._where = _packing(template)

    def pack(self, runs: RunData) -> tuple[dict[str, np.ndarray], tuple]:
        """:func:`pack_runs` of ``runs`` (leaves ``[N, ...]``) for these programs; index the
        result with a chunk's positions to get its argument."""
        return pack_runs(self.template, runs, self._where)

    def __call__(self, arrays, packed, orders=None, used: int | None = None, seeds=None):
        groups = len(seeds) if orders is None else len(orders)
        share = groups // len(self.devices)
        needed = len(self.devices) if used is None else -(-used // share)
        outs = []
        for k in range(needed):
            part = jax.tree_util.tree_map(lambda x, k=k: x[k * share : (k + 1) * share], packed)
            if orders is None:  # one group a device: its seed's orders, made on the device
                part_orders = self.order_programs[k](seeds[k])
            else:
                part_orders = orders[k * share : (k + 1) * share]
            outs.append(self.executables[k](arrays[k], part, part_orders))
        if len(outs) == 1:
            return jax.tree_util.tree_map(np.asarray, outs[0])
        return jax.tree_util.tree_map(
            lambda *xs: np.concatenate([np.asarray(x) for x in xs]), *outs
        )

    def memory_analysis(self):
        """One device's program's (each device runs the same)."""
        return self.executables[0].memory_analysis()


# The programs compiled in this process, most recently used last. Bounded: every executable
# keeps its machine code mapped (about 500 memory maps per device's copy on CPU), and a study
# of ~100 programs × a copy per device would exhaust the process's map count
# (vm.max_map_count, 65530 by default) if all were kept. A sweep trains each program's chunks
# one after another, so only a rerun in the same process reuses an older one (and compiles it
# again, from the persistent cache when it is on).
_COMPILED: dict[tuple, Any] = {}
KEEP_EXECUTABLES = 16  # device copies kept over all programs (at least the newest program's)


def compiled(static: Static, layout: Layout, hparam_names: tuple[str, ...]):
    """Returns ``(DevicePrograms, seconds spent compiling now)``; compiled once per signature.

    The cache key holds only static things: learning rates, schedules, hyperparameters and
    seeds are arguments of the executable, so a new grid of them reuses it. Each local
    device gets the one-device program of its ``layout.groups / devices`` groups, compiled
    for it (side by side in threads: XLA releases the GIL).
    """
    layout = Layout(*layout)
    devices = jax.local_devices()
    key = (static, layout, hparam_names, len(devices), data.version(static.task.dataset))
    if key in _COMPILED:
        _COMPILED[key] = _COMPILED.pop(key)  # most recently used
        return _COMPILED[key], 0.0
    kept = lambda: sum(len(p.executables) for p in _COMPILED.values())  # noqa: E731
    while _COMPILED and kept() + len(devices) > KEEP_EXECUTABLES:
        _COMPILED.pop(next(iter(_COMPILED)))  # the least recently used
    dtype = jnp.dtype(static.dtype)
    share = Layout(layout.groups // len(devices), layout.slots)
    x64 = bool(jax.config.jax_enable_x64)  # the caller's (a thread-local context) for the threads

    def runs_spec(put=None) -> RunData:
        spec = lambda dt, *rest: jax.ShapeDtypeStruct((*share, *rest), dt, sharding=put)  # noqa: E731
        return RunData(
            seed=spec(jnp.int32),
            lr=spec(dtype),
            hparams={k: spec(dtype) for k in hparam_names},
            schedule_kind=spec(jnp.int32),
            schedule_params={k: spec(dtype) for k in schedules.all_param_names()},
            unit_is_step=spec(jnp.bool_),
            lr_table=spec(dtype, total_steps(static)) if static.schedule_impl == "optax" else None,
        )

    with jax.enable_x64(x64):
        template = runs_spec()
    train = program(static)
    fn = jax.jit(
        lambda arrays, packed, orders: train(arrays, unpack_runs(template, packed), orders)
    )
    own_orders = share.groups == 1 and static.task.shuffle

    def lower(device):
        with jax.enable_x64(x64):
            return _lower(device)

    def _lower(device):
        put = jax.sharding.SingleDeviceSharding(device)
        arrays = tuple(
            jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=put) for a in arrays_for(static)
        )
        orders = orders_spec(static, share.groups)
        orders = jax.ShapeDtypeStruct(orders.shape, orders.dtype, sharding=put)
        exe = fn.lower(arrays, _packed_spec(runs_spec(put)), orders).compile()
        if not own_orders:
            return exe, None
        seed = jax.ShapeDtypeStruct((), jnp.int32, sharding=put)
        return exe, _orders_program(static.epochs, train_size(static)).lower(seed).compile()

    start = time.perf_counter()
    if len(devices) == 1:
        lowered = [lower(devices[0])]
    else:
        with concurrent.futures.ThreadPoolExecutor(len(devices)) as pool:
            lowered = list(pool.map(lower, devices))
    executables, order_programs = zip(*lowered, strict=True)
    _COMPILED[key] = DevicePrograms(
        list(executables), devices, template, list(order_programs) if own_orders else None
    )
    return _COMPILED[key], time.perf_counter() - start


def train_size(static: Static) -> int:
    return len(static.task.data().x_train)


def total_steps(static: Static) -> int:
    return static.epochs * steps_per_epoch(train_size(static), static.batch_size)


def orders_spec(static: Static, groups: int) -> jax.ShapeDtypeStruct:
    """The shape and type of the ``orders`` argument of ``groups`` seed groups."""
    return jax.ShapeDtypeStruct((groups, static.epochs, train_size(static)), jnp.int32)


def group_orders(static: Static, runs: RunData, positions: np.ndarray) -> np.ndarray:
    """``[groups, epochs, n_train]``: the minibatch orders of a chunk laid out as
    ``positions`` (``[groups, slots]`` rows of ``runs``), one per group (its seed's)."""
    n = train_size(static)
    if not static.task.shuffle:  # the stored order, every epoch
        return np.broadcast_to(np.arange(n, dtype=np.int32), (len(positions), static.epochs, n))
    return data.minibatch_orders(np.asarray(runs.seed)[positions[:, 0]], static.epochs, n)


def take(tree, positions):
    """Every leaf's rows at ``positions`` (an index array of any shape, as NumPy indexes)."""
    return jax.tree_util.tree_map(lambda x: np.asarray(x)[positions], tree)


class Timing(NamedTuple):
    compile_seconds: float
    train_seconds: float


def train_group(
    static: Static,
    runs: RunData,
    max_chunk: int = 4096,
    skip: Callable[[np.ndarray], bool] | None = None,
    on_chunk: Callable[[int, np.ndarray, History], None] | None = None,
    slots: int | None = None,
) -> tuple[History, Timing]:
    """Trains every run of one static group; returns NumPy histories in the runs' order.

    Runs go through in the chunks of :func:`plan` (at most ``max_chunk`` runs each, one
    layout), so the group compiles exactly once. Per chunk ``k`` with row positions ``rows``
    (sorted, padding dropped): ``skip(rows)`` true leaves it untrained (its rows of the
    returned history are NaN and its ``diverged_at`` -1: a caller that skips holds them
    elsewhere); after training, ``on_chunk(k, rows, history)`` receives the chunk's NumPy
    histories (a caller can write them out before the next chunk starts). ``slots`` caps
    the runs of a seed group (default :func:`max_slots`).
    """
    if records(static):
        raise ConfigError("probes", "a group with probes is trained by engine.probe_group")
    (history, _), timing = _train_chunks(static, runs, max_chunk, skip, on_chunk, slots)
    return history, timing


def probe_group(
    static: Static, runs: RunData, max_chunk: int = 4096, slots: int | None = None
) -> tuple[History, Probes, Timing]:
    """:func:`train_group` for a group whose ``static`` asks for probes (``Static.probes``,
    ``final_params``): NumPy histories and probes in the runs' order."""
    if not records(static):
        raise ConfigError("probes", "no probes asked for: set Static.probes or final_params")
    (history, probes), timing = _train_chunks(static, runs, max_chunk, None, None, slots)
    return history, probes, timing


def _train_chunks(static, runs, max_chunk, skip, on_chunk, slots):
    """Every chunk of the group through its one compiled program: ``((History, Probes or
    None), Timing)``, NumPy, in the runs' order."""
    n = len(runs.seed)
    layout, chunks = plan_group(static, runs.seed, max_chunk, slots)
    exe, compile_s = compiled(static, layout, tuple(sorted(runs.hparams)))
    arrays = _replicated_arrays(static.task, static.dtype, data.version(static.task.dataset))
    history, probes = _missing(static, n), None
    start = time.perf_counter()
    packed = exe.pack(runs)
    for k, positions in enumerate(chunks):
        rows = np.unique(positions) if skip or on_chunk else None
        if skip is not None and skip(rows):
            continue
        part = jax.tree_util.tree_map(lambda x, p=positions: x[p], packed)
        used = _real_groups(positions)
        if exe.order_programs:  # one group a device: each device makes its group's orders
            seeds = np.asarray(runs.seed, np.int32)[positions[:, 0]]
            out = exe(arrays, part, used=used, seeds=seeds)
        else:
            out = exe(arrays, part, group_orders(static, runs, positions), used)
        out_history, out_probes = out if records(static) else (out, None)
        done = positions[: len(out_history.diverged_at)]  # the devices run: padding left out
        _scatter(history, out_history, done)
        if out_probes is not None:
            if probes is None:  # shaped after the program's output; NaN until trained
                probes = jax.tree_util.tree_map(
                    lambda a: np.full((n, *a.shape[2:]), np.nan, a.dtype), out_probes
                )
            _scatter(probes, out_probes, done)
        if on_chunk:
            on_chunk(k, rows, take(history, rows))
    return (history, probes), Timing(compile_s, time.perf_counter() - start)


def _real_groups(positions: np.ndarray) -> int:
    """How many leading groups of a chunk are its own: :func:`plan` pads the last chunk with
    copies of its last group (a run sits in one group only, so the first copy is the group)."""
    last = positions[-1]
    return int(np.argmax((positions == last).all(axis=1))) + 1


@functools.cache
def _orders_program(epochs: int, n_train: int):
    """``seed -> [1, epochs, n_train]``: :func:`data.seed_orders` of one seed group, jitted
    (``DevicePrograms.order_programs``: one group a device)."""
    return jax.jit(lambda seed: data.seed_orders(seed, epochs, n_train)[None].astype(jnp.int32))


def _scatter(whole, part, positions: np.ndarray) -> None:
    """Writes a chunk's outputs (leaves ``[groups, slots, ...]``) into the rows ``positions``
    of ``whole`` (leaves ``[N, ...]``); a padding copy equals its original."""
    for w, p in zip(jax.tree_util.tree_leaves(whole), jax.tree_util.tree_leaves(part), strict=True):
        p = np.asarray(p)
        w[positions.reshape(-1)] = p.reshape(positions.size, *p.shape[2:])


def _missing(static: Static, n: int) -> History:
    """The history of ``n`` runs not trained yet: NaN, and ``diverged_at`` -1."""
    curve = lambda: np.full((n, static.epochs), np.nan, static.dtype)  # noqa: E731
    return History(
        curve(),
        curve(),
        curve(),
        curve(),
        np.full(n, np.nan, static.dtype),
        np.full(n, -1, np.int32),
    )
