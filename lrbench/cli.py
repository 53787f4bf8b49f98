"""The ``lrbench`` command line.

  lrbench run [EXPERIMENT] [--ci] [--set key=value ...] [--seeds N] [--out DIR] [--quiet]
              [--max-memory SIZE] [--resume | --overwrite] [--yes]
              [--process-index I --process-count N | --distributed] [--merge]
              [--executor local|ray [--address HOST:PORT]] [--compile-cache DIR|off]
  lrbench compare RESULTS --a SELECTOR --b SELECTOR [--metric M] [--by COLUMN]
                  [--lower-is-better]
  lrbench bench [--quick] [--sizes N,N,...] [--levers] [--out DIR] [--quiet]
  lrbench list

Bad input never shows a traceback: one line on stderr naming the field and what is allowed,
exit code 2, and the output folder left as it was.

``--help``, ``lrbench list`` and argument errors answer without importing JAX (a test checks
it): this module imports only the registries at its top, and each command imports what it
needs.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from lrbench import rules
from lrbench.errors import ConfigError

if TYPE_CHECKING:
    from lrbench.sweep import Sweep

PROG = "lrbench"

# The library names its inputs by field (keyword argument or config field); these are the
# fields that the command line sets through a flag of its own rather than ``--set``.
FLAGS = {
    "out": "--out",
    "resume": "--resume",
    "overwrite": "--overwrite",
    "yes": "--yes",
    "merge": "--merge",
    "process_index": "--process-index",
    "process_count": "--process-count",
    "max_memory": "--max-memory",
    "distributed": "--distributed",
    "compile_cache": "--compile-cache",
    "executor": "--executor",
    "address": "--address",
}


def error_line(err: ConfigError) -> str:
    """The one line a ``ConfigError`` prints at the command line: its field as the flag that
    sets it (``max_memory`` -> ``--max-memory``), then what is allowed."""
    return _one_line(f"{PROG}: error: {FLAGS.get(err.field, err.field)}: {err.message}")


def _one_line(text: str) -> str:
    """Line breaks inside a message (a key or value typed with one) shown escaped."""
    return "".join(repr(c)[1:-1] if c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029" else c
                   for c in text)  # fmt: skip


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit code 2."""

    def error(self, message):
        # "argument --seeds: 'abc' is not an integer": the flag's own line, as the rest say it
        flag, sep, rest = message.partition(": ")
        if flag.startswith("argument ") and sep:
            names = flag.removeprefix("argument ").split("/")
            raise ConfigError(max(names, key=len), rest)
        raise ConfigError("arguments", message)


# ---------------------------------------------------------------------------------------------
# --set key=value


def _split(key: str, text: str) -> list[str]:
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise ConfigError(
            key, f"{text!r} is empty or has an empty item; give comma-separated values"
        )
    return items


def _number(key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(key, f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise ConfigError(key, f"{text!r} must be finite")
    return value


def _integer(key: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(key, f"{text!r} is not an integer") from None


def _floats(key, text):
    return tuple(_number(key, t) for t in _split(key, text))


def _ints(key, text):
    return tuple(_integer(key, t) for t in _split(key, text))


def _hide(match) -> str:
    return match.group(0).replace(",", "\0")


def _strs(key, text):
    return tuple(_split(key, text))


def _one(parse):
    def one(key, text):
        values = parse(key, text)
        if len(values) != 1:
            raise ConfigError(key, f"{text!r}: give exactly one value")
        return values[0]

    return one


def _optimizers(s: Sweep, names) -> Sweep:
    from lrbench.sweep import Optimizer

    return dataclasses.replace(s, optimizers=tuple(Optimizer(n) for n in names))


def _schedules(s: Sweep, kinds) -> Sweep:
    from lrbench.sweep import Schedule

    return dataclasses.replace(s, schedules=tuple(Schedule(k) for k in kinds))


# key -> (how to parse the text, how to put the value into the sweep)
_SWEEP_KEYS: dict[str, tuple[Callable, Callable[[Sweep, object], Sweep]]] = {
    "dataset": (  # commas inside name(key=value, ...) separate parameters, not values
        _one(lambda key, text: tuple(_split(key, re.sub(r"\([^()]*\)", _hide, text)))),
        lambda s, v: dataclasses.replace(s, dataset=v.replace("\0", ",")),
    ),
    "task": (_one(_strs), lambda s, v: dataclasses.replace(s, task=v)),
    "epochs": (_one(_ints), lambda s, v: dataclasses.replace(s, epochs=v)),
    "batch_size": (_one(_ints), lambda s, v: dataclasses.replace(s, batch_size=v)),
    "lr": (_floats, lambda s, v: dataclasses.replace(s, lrs=v)),
    "seeds": (_ints, lambda s, v: dataclasses.replace(s, seeds=v)),
    "impl": (_strs, lambda s, v: dataclasses.replace(s, impls=v)),
    "dtype": (_one(_strs), lambda s, v: dataclasses.replace(s, dtype=v)),
    "target_acc": (_one(_floats), lambda s, v: dataclasses.replace(s, target_acc=v)),
    "validation_freq": (
        _one(_ints),
        lambda s, v: dataclasses.replace(s, validation_freq=v),
    ),
    "hidden": (
        _ints,
        lambda s, v: dataclasses.replace(s, model=dataclasses.replace(s.model, hidden=v)),
    ),
    "activation": (
        _one(_strs),
        lambda s, v: dataclasses.replace(s, model=dataclasses.replace(s.model, activation=v)),
    ),
    "kernel_init": (
        _one(_strs),
        lambda s, v: dataclasses.replace(s, model=dataclasses.replace(s.model, kernel_init=v)),
    ),
    "output_init": (
        _one(_strs),
        lambda s, v: dataclasses.replace(s, model=dataclasses.replace(s.model, output_init=v)),
    ),
    # Static axes: each value its own program (``Sweep.parts``).
    "batch_sizes": (_ints, lambda s, v: dataclasses.replace(s, batch_sizes=v)),
    "dtypes": (_strs, lambda s, v: dataclasses.replace(s, dtypes=v)),
    "hiddens": (
        lambda key, text: tuple(_ints(key, h.replace("-", ",")) for h in _split(key, text)),
        lambda s, v: dataclasses.replace(s, hiddens=v),
    ),
    # Axes by name: each entry starts from its defaults; hyperparameters set after apply to it.
    "optimizer": (_strs, _optimizers),
    "schedule": (_strs, _schedules),
}
_AXIS_KEYS = ("optimizer", "schedule")  # applied first, so hyperparameters land on them


def _set_hparam(sweep: Sweep, key: str, text: str) -> Sweep:
    """``momentum=0.5,0.9`` sets a grid on every optimizer of the sweep that takes ``momentum``;
    ``gamma=0.5`` likewise on every schedule that takes ``gamma`` (``unit`` on all of them)."""
    from lrbench import schedules

    opts = [o for o in sweep.optimizers if key in rules.spec(o.name).hparams]
    scheds = [s for s in sweep.schedules if key == "unit" or key in schedules.kind(s.kind).params]
    if not opts and not scheds:
        allowed = sorted(set(_SWEEP_KEYS) | {"unit"})
        hp = sorted({h for o in sweep.optimizers for h in rules.spec(o.name).hparams})
        sp = sorted({p for s in sweep.schedules for p in schedules.kind(s.kind).params})
        extra = (
            f"; hyperparameters of this sweep's optimizers and schedules: {', '.join(hp + sp)}"
            if hp or sp
            else ""
        )
        raise ConfigError(key, f"unknown --set key {key!r}; allowed: {', '.join(allowed)}{extra}")
    value = _strs(key, text) if key == "unit" else _floats(key, text)
    return dataclasses.replace(
        sweep,
        optimizers=tuple(
            dataclasses.replace(o, hparams={**o.hparams, key: value}) if o in opts else o
            for o in sweep.optimizers
        ),
        schedules=tuple(
            dataclasses.replace(s, params={**s.params, key: value}) if s in scheds else s
            for s in sweep.schedules
        ),
    )


def parse_sets(items: list[str]) -> list[tuple[str, str]]:
    """``key=value`` items -> (key, text) pairs; a key given twice is refused (the last would
    silently win)."""
    pairs = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError("--set", f"{item!r} must look like key=value, e.g. lr=0.1,0.01")
        key = "lr" if key == "lrs" else key
        if key in pairs:
            raise ConfigError(
                key,
                f"given twice ({pairs[key]!r}, then {text!r}); "
                "give it once, with comma-separated values",
            )
        pairs[key] = text
    return list(pairs.items())


def apply_overrides(sweep: Sweep, items: list[str], seeds: int | None = None) -> Sweep:
    """Applies ``--set`` items (axes first, then the rest in order) and ``--seeds N``."""
    pairs = parse_sets(items)
    pairs.sort(key=lambda kv: kv[0] not in _AXIS_KEYS)  # stable: order kept within each part
    for key, text in pairs:
        if key in _SWEEP_KEYS:
            parse, put = _SWEEP_KEYS[key]
            sweep = put(sweep, parse(key, text))
        else:
            sweep = _set_hparam(sweep, key, text)
    if seeds is not None:
        _seed_count(seeds)
        if any(key == "seeds" for key, _ in pairs):
            raise ConfigError("--seeds", "give --seeds N or --set seeds=..., not both")
        sweep = dataclasses.replace(sweep, seeds=tuple(range(seeds)))
    return sweep.validate()


# ---------------------------------------------------------------------------------------------
# Commands


# ``--seeds N`` means seeds 0 .. N-1; more than this many is taken for a typo (other seeds,
# up to ``sweep.SEED_MAX``, are given with ``--set seeds=...``).
MAX_SEEDS = 100_000


def _seed_count(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SEEDS:
        raise ConfigError("--seeds", f"--seeds {n!r} must be in [1, {MAX_SEEDS}] (seeds 0 .. N-1)")
    return n


def _positive_int(text: str) -> int:
    """``--seeds N`` (argparse reports an ``ArgumentTypeError`` as the flag's own line)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    try:
        return _seed_count(n)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(err.message) from None


def _int_arg(field: str):
    del field  # argparse names the flag

    def parse(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None

    return parse


# JAX's documented environment for jax.distributed, by keyword of jax.distributed.initialize:
# JAX itself reads only the coordinator's address, so the others are handed over explicitly.
_DISTRIBUTED_ENV = {
    "coordinator_address": "JAX_COORDINATOR_ADDRESS",
    "num_processes": "JAX_NUM_PROCESSES",
    "process_id": "JAX_PROCESS_ID",
}


def _distributed_env() -> dict:
    """The keywords of ``jax.distributed.initialize`` set in the environment; none set: {} (SLURM,
    Open MPI or a TPU pod then fill them in)."""
    given = {}
    for key, name in _DISTRIBUTED_ENV.items():
        text = os.environ.get(name, "").strip()
        if not text:
            continue
        if key != "coordinator_address":
            if not text.isdigit():
                raise ConfigError(name, f"{text!r} must be a whole number (--distributed)")
            text = int(text)
        given[key] = text
    return given


def _process(args) -> tuple[int, int]:
    """This process's (index, count) of a sweep shared out over processes."""
    if args.distributed:
        import jax

        given = _distributed_env()
        try:
            jax.distributed.initialize(**given)
        except (RuntimeError, ValueError) as err:
            raise ConfigError(
                "--distributed", f"jax.distributed.initialize() failed: {err}"
            ) from None
        return jax.process_index(), jax.process_count()
    count = 1 if args.process_count is None else args.process_count
    index = 0 if args.process_index is None else args.process_index
    if count < 1:
        raise ConfigError("--process-count", f"{count} must be >= 1")
    if not 0 <= index < count:
        raise ConfigError(
            "--process-index", f"{index} must be in [0, {count - 1}] (--process-count {count})"
        )
    return index, count


def _executor(args) -> bool:
    """True for ``--executor ray`` (Ray importable, no option it cannot honour)."""
    if args.executor != "ray":
        if args.address is not None:
            raise ConfigError("--address", "joins a Ray cluster: give it with --executor ray")
        return False
    for flag, given in (
        ("--distributed", args.distributed),
        ("--process-index", args.process_index is not None),
        ("--process-count", args.process_count is not None),
        ("--merge", args.merge),
    ):
        if given:
            raise ConfigError(
                flag,
                "the ray executor shares the chunks out and merges by itself; "
                f"run it without {flag}, or use --executor local",
            )
    from lrbench import executors

    executors.import_ray()
    return True


RESULTS = Path("results")  # where ``lrbench run`` writes without ``--out``


def default_out(name: str, module, sweep, ci: bool = False) -> tuple[Path, str | None]:
    """The results folder ``lrbench run NAME`` writes without ``--out``, and what to say about
    it on stderr (None when there is nothing to say).

    Only the experiment's committed configuration (``get_config()``, unchanged) writes the
    committed ``results/NAME/``. Any other configuration gets a folder of its own, so that it
    never replaces the committed results: ``results/NAME-ci/`` for the CI variant
    (``--ci`` without overrides), ``results/NAME-<hash>/`` for anything else, ``<hash>`` the
    first 8 hex digits of the configuration's hash (:func:`lrbench.runner.config_hash`: the
    same configuration, the same folder, so a rerun resumes it). ``.gitignore`` ignores both
    kinds of folders.
    """
    from lrbench import runner

    committed = RESULTS / name
    digest = runner.config_hash(sweep)
    if digest == runner.config_hash(module.get_config()):
        return committed, None
    if ci and digest == runner.config_hash(module.ci_config()):
        out, what = RESULTS / f"{name}-ci", "the CI-sized variant"
    else:
        out, what = RESULTS / f"{name}-{digest[:8]}", "this configuration"
    return out, (
        f"writing {out}/ ({what} differs from the committed {committed}/, which is left as it "
        "is; --out DIR writes elsewhere)"
    )


def cmd_run(args) -> int:
    import experiments

    name = args.experiment or experiments.DEFAULT
    if name not in experiments.names():
        experiments.load(name)  # refuses it in one line, before anything heavy is imported
    ray = _executor(args)
    from lrbench import compile_cache, engine, results, runner

    # A Ray task trains on one CPU device (unless LRBENCH_CPU_DEVICES says otherwise): the
    # driver plans the chunks for the same device count.
    engine.use_cpu_cores(1 if ray and not os.environ.get("LRBENCH_CPU_DEVICES") else None)
    compile_cache.configure(args.compile_cache)  # before the first compile: JAX opens it once
    module = experiments.load(name)
    if args.ci and not hasattr(module, "ci_config"):
        raise ConfigError(
            "--ci",
            f"experiment {name!r} has no CI-sized variant (no ci_config()); run it without --ci, "
            "or shrink it with --set (e.g. --set epochs=10 --seeds 1)",
        )
    sweep = module.ci_config() if args.ci else module.get_config()
    sweep = apply_overrides(sweep, args.set or [], args.seeds)
    max_memory = None if args.max_memory is None else runner.parse_memory(args.max_memory)
    out, note = (Path(args.out), None) if args.out else default_out(name, module, sweep, args.ci)
    results.check_out(out)
    index, count = _process(args)
    if hasattr(module, "run"):  # what its run hook cannot honour
        for flag, given in (
            ("--resume", args.resume),
            ("--merge", args.merge),
            ("--process-count", count > 1),
            ("--executor", ray),
        ):
            if given:
                raise ConfigError(
                    flag,
                    f"experiment {name!r} trains through its own run hook, which cannot resume, merge or be shared out over processes; run it without {flag}",
                )
    if note and not args.quiet:  # said once every option is accepted: bad input is one line
        print(note, file=sys.stderr, flush=True)
    if hasattr(module, "run"):
        result = module.run(sweep, out=out, quiet=args.quiet)
    elif ray:
        from lrbench import executors

        try:
            result = executors.run_ray(
                sweep, out, address=args.address, quiet=args.quiet, resume=args.resume,
                overwrite=args.overwrite, yes=args.yes, max_memory=max_memory,
                compile_cache_setting=args.compile_cache,
            )  # fmt: skip
        except RuntimeError as err:
            print(f"{PROG}: error: --executor ray: {err}", file=sys.stderr)
            return 1
    else:
        max_chunk = runner.max_chunk_for(sweep, max_memory)
        result = runner.run(
            sweep, out=out, quiet=args.quiet, max_chunk=max_chunk, resume=args.resume,
            process_index=index, process_count=count, merge=args.merge,
            overwrite=args.overwrite, yes=args.yes,
        )  # fmt: skip
        if result.folder is None:
            print(
                f"process {index} of {count}: trained {len(result.runs)} runs into {runner.partial_dir(out)}; when every process is done, write {out} with the same command and --merge instead of the process options"
            )
            return 0
    print(summary(name, module, sweep, result))
    print(f"wrote {result.folder} (config {runner.config_hash(sweep)[:8]})")
    return 0


def summary(name: str, module, sweep, result) -> str:
    """What ``lrbench run NAME`` prints before ``wrote DIR``.

    The experiment's own ``summary(result)`` when it defines one; else, when its run hook
    left tables or claims in ``result.meta`` (:func:`lrbench.claims.finish`), those under the
    title ``NAME: TITLE`` (the module's ``NAME`` and ``TITLE``, else the experiment's name and
    the sweep's description); else the generic table: the headline metric, mean ± std over
    seeds, per learning rate.
    """
    from lrbench import report, runner

    if callable(getattr(module, "summary", None)):
        return module.summary(result)
    if "tables" in result.meta or "claims" in result.meta:
        from lrbench import claims

        title = getattr(module, "TITLE", None) or sweep.description
        return claims.summary(f"{getattr(module, 'NAME', name)}: {title}", result.meta)
    column, words = runner.headline(sweep)
    table = report.mean_std_table(result.runs, column)
    head = f"\n{sweep.experiment}: {words}, mean ± std over {len(sweep.seeds)} seeds\n"
    return head + "\n" + report.to_markdown(table)


def _literal_description(path: Path) -> str | None:
    """The ``description=`` string of the call ``get_config()`` returns in the experiment
    module at ``path`` (``return Sweep(..., description="...")``), read without importing it;
    None when it is not written there as a literal string."""
    import ast

    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "get_config":
            returns = [n for n in ast.walk(node) if isinstance(n, ast.Return)]
            if len(returns) != 1 or not isinstance(returns[0].value, ast.Call):
                return None
            for keyword in returns[0].value.keywords:
                if keyword.arg == "description":
                    value = keyword.value
                    if isinstance(value, ast.Constant) and isinstance(value.value, str):
                        return value.value
    return None


def experiment_descriptions() -> dict[str, str]:
    """Each experiment's description (its ``get_config().description``), read from its source
    where it is a literal, so that ``lrbench list`` imports no experiment (each imports JAX);
    an experiment whose description is computed is imported."""
    import importlib.util

    import experiments

    out = {}
    for name in experiments.names():
        spec = importlib.util.find_spec(f"{experiments.__name__}.{name}")  # imports nothing
        text = _literal_description(Path(spec.origin)) if spec and spec.origin else None
        out[name] = text if text is not None else experiments.load(name).get_config().description
    return out


def _value_text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _entries(title: str, rows: dict[str, str], width: int = 100) -> list[str]:
    """``title``, then one entry a line: its name, then its text, wrapped under itself."""
    import textwrap

    pad = 2 + max(map(len, rows), default=0) + 2
    lines = [title]
    for name, text in rows.items():
        wrapped = textwrap.wrap(text, width - pad, break_on_hyphens=False) or [""]
        lines.append(f"  {name:<{pad - 4}}  {wrapped[0]}".rstrip())
        lines += [" " * pad + rest for rest in wrapped[1:]]
    return lines


def _params_text(params: dict) -> str:
    return ", ".join(f"{k}={_value_text(v)}" for k, v in params.items())


def list_text() -> str:
    """What ``lrbench list`` prints: every experiment with its description, the data sets, and
    every optimizer and schedule kind with its parameters at their defaults (read from the
    registries, so it cannot drift from them)."""
    import textwrap

    import experiments
    from lrbench import data, schedules

    described = experiment_descriptions()
    mark = {experiments.DEFAULT: "(default) "}
    lines = _entries(
        "experiments (lrbench run NAME):",
        {name: mark.get(name, "") + text for name, text in described.items()},
    )
    lines.append("datasets (--set dataset=NAME; a generator takes NAME(key=value,...)):")
    sets = ", ".join(data.names()) + f", or a file ({', '.join(data.FILE_SUFFIXES)})"
    lines += textwrap.wrap(sets, 100, initial_indent="  ", subsequent_indent="      ",
                           break_on_hyphens=False)  # fmt: skip
    lines += _entries(
        "optimizers (--set optimizer=NAME,...; hyperparameters --set KEY=VALUE,..., "
        "defaults shown):",
        {name: _params_text(rules.spec(name).hparams) or "(none)" for name in rules.names()},
    )
    rows = {}
    for name in schedules.kinds():
        kind = schedules.kind(name)
        own = {k: v for k, v in kind.params.items() if k not in schedules.WARMUP}
        rows[name] = _params_text({"unit": kind.unit, **own})
    lines += _entries(
        "schedules (--set schedule=KIND,...; parameters --set KEY=VALUE,..., defaults shown):",
        rows,
    )
    monitors = ", ".join(f"{i} = {m}" for i, m in enumerate(schedules.MONITORS))
    note = (
        f"every kind also takes a linear warmup, {_params_text(schedules.WARMUP)} (in its unit); "
        f"unit is one of {', '.join(schedules.UNITS)}; monitor: {monitors}"
    )
    lines += textwrap.wrap(note, 100, initial_indent="  ", subsequent_indent="      ")
    return "\n".join(lines)


def cmd_list(args) -> int:
    del args
    print(list_text())
    return 0


def _hidden(text: str) -> tuple[int, ...]:
    """``50``, ``64,64``, ``64-64`` or ``mlp(64-64)`` -> hidden sizes."""
    inner = text.strip()
    if inner.startswith("mlp(") and inner.endswith(")"):
        inner = inner[4:-1]
    return _ints("--model", inner.replace("-", ","))


_FIND_KEYS = {
    "batch_size": _one(_ints), "num_steps": _one(_ints), "start_lr": _one(_floats),
    "end_lr": _one(_floats), "num_lrs": _one(_ints), "epochs": _one(_ints), "seed": _one(_ints),
    "activation": _one(_strs), "kernel_init": _one(_strs), "output_init": _one(_strs),
    "extend": _one(_ints),
}  # fmt: skip
# What lr-find uses for a key it is not given (the help shows these; output_init is
# MLPConfig's default, which a test compares).
_FIND_DEFAULTS = {
    "batch_size": 32, "num_steps": 100, "start_lr": 1e-7, "end_lr": 10.0, "num_lrs": 25,
    "epochs": 3, "seed": 0, "activation": "relu", "kernel_init": "he_uniform",
    "output_init": "glorot_uniform", "extend": 3,
}  # fmt: skip


def cmd_lr_find(args) -> int:
    import json

    from lrbench import compile_cache, data, lrfind, results
    from lrbench.models import MLPConfig
    from lrbench.sweep import SEED_MAX

    compile_cache.configure(args.compile_cache)
    ds = data.load(args.dataset)
    rules.spec(args.optimizer)
    settings, hparams = {}, {}
    for key, text in parse_sets(args.set or []):
        if key in _FIND_KEYS:
            settings[key] = _FIND_KEYS[key](key, text)
        elif key in rules.spec(args.optimizer).hparams:
            hparams[key] = _one(_floats)(key, text)
        else:
            allowed = sorted([*_FIND_KEYS, *rules.spec(args.optimizer).hparams])
            raise ConfigError(
                key, f"unknown --set key {key!r} for lr-find; allowed: {', '.join(allowed)}"
            )
    rules.resolve(args.optimizer, hparams)

    def setting(key: str):
        return settings.get(key, _FIND_DEFAULTS[key])

    model = MLPConfig(
        hidden=_hidden(args.model),
        activation=setting("activation"),
        kernel_init=setting("kernel_init"),
        output_init=setting("output_init"),
    )
    seed = setting("seed")
    if not 0 <= seed <= SEED_MAX:
        raise ConfigError(
            "seed",
            f"seed {seed} must be in [0, {SEED_MAX}] (2**31 - 1: seeds are the engine's int32 "
            "random streams)",
        )
    batch = setting("batch_size")
    if not 0 < batch <= len(ds.x_train):
        raise ConfigError("batch_size", f"batch_size={batch} must be in [1, {len(ds.x_train)}]")
    start, end = setting("start_lr"), setting("end_lr")
    for key, value in (("num_steps", setting("num_steps")), ("num_lrs", setting("num_lrs")),
                       ("epochs", setting("epochs"))):  # fmt: skip
        if value < 2 and key != "epochs" or value < 1:
            raise ConfigError(key, f"{key}={value} is too small")
    if settings.get("extend", 0) < 0:
        raise ConfigError("extend", f"extend={settings['extend']} must be >= 0 (decades)")
    problem = lrfind.Problem(
        args.dataset, model, args.optimizer, args.impl, hparams, batch, setting("seed")
    )
    out = (
        Path(args.out)
        if args.out
        else Path("results") / "lr_find" / f"{args.dataset}-{args.optimizer}"
    )
    if not args.quiet:
        print(f"range test: {args.dataset} {model.name} {args.optimizer} ...", file=sys.stderr)
    rng = lrfind.range_test(problem, start, end, setting("num_steps"))
    if not args.quiet:
        print("grid test: one program over log-spaced learning rates ...", file=sys.stderr)
    grid, _ = lrfind.grid_test(
        problem, start, end, setting("num_lrs"), setting("epochs"), extend=setting("extend")
    )
    for curve, finder in ((rng, "range test"), (grid, "grid test")):
        note = lrfind.edge_note(curve, finder, "--set start_lr=", "--set end_lr=")
        if note:
            print(note, file=sys.stderr)

    def write(folder: Path) -> None:
        import pandas as pd

        pd.DataFrame(
            {"lr": rng.lrs, "smoothed_loss": rng.losses, "loss": rng.raw[: rng.stop]}
        ).to_csv(folder / "range_test.csv", index=False)
        pd.DataFrame({"lr": grid.lrs, "final_train_loss": grid.losses}).to_csv(
            folder / "grid_test.csv", index=False
        )
        rows = [
            {"finder": f, "suggestion": k, "lr": v, "min_at_edge": c.edge or "no"}
            for f, c in (("range", rng), ("grid", grid))
            for k, v in c.suggestions.items()
        ]
        pd.DataFrame(rows).to_csv(folder / "suggestions.csv", index=False)
        lrfind.figure(
            rng, grid, folder / "lr_find.png", f"{args.dataset}, {model.name}, {args.optimizer}"
        )
        meta = {
            "problem": dataclasses.asdict(problem),
            "settings": settings,
            "spans": {"range": rng.span, "grid": grid.span},  # the rates tried, extended
            **results.environment(),
        }
        (folder / "meta.json").write_text(json.dumps(meta, indent=2, default=str) + "\n")

    results.write_atomically(out, write)
    r, g = rng.suggestions, grid.suggestions
    print(
        f"lr-find {args.dataset} {model.name} {args.optimizer}: use lr ≈ {r['valley']:.2g} (range-test valley); "
        f"steepest {r['steepest']:.2g}, minimum/10 {r['minimum/10']:.2g}; grid test: valley {g['valley']:.2g}, "
        f"steepest {g['steepest']:.2g}, minimum/10 {g['minimum/10']:.2g}; wrote {out}"
    )
    return 0


def cmd_check(args) -> int:
    from lrbench import check, compile_cache, report

    compile_cache.configure(args.compile_cache)
    table = check.run_checks(
        args.experiments or None, Path(args.expected), quiet=args.quiet, record_numbers=args.record
    )
    failed = table[~table["ok"]]
    for (name, config), rows in table.groupby(["experiment", "config"], sort=False):
        print(f"{name}: reran its {config}: {rows['ok'].sum()} of {len(rows)} checks passed")
    for _, row in table[table["note"].str.startswith("skipped")].iterrows():
        print(f"{row['experiment']} {row['tier']}: {row['note']}")
    shown = (table if args.verbose else failed).copy()
    if not shown.empty:
        for col in ("value", "expected", "atol", "rtol", "min", "max"):
            shown[col] = [
                ""
                if v is None or (isinstance(v, float) and math.isnan(v))
                else ("yes" if v else "no")
                if isinstance(v, bool)
                else f"{v:.4g}"
                for v in shown[col]
            ]
        shown["ok"] = shown["ok"].map({True: "ok", False: "FAILED"})
        print(report.to_markdown(shown.set_index("experiment")))
    print(f"{len(table) - len(failed)} passed, {len(failed)} failed")
    return 1 if len(failed) else 0


_COMPARE_FLAGS = {"a": "--a", "b": "--b", "metric": "--metric", "by": "--by"}


def cmd_compare(args) -> int:
    import pandas as pd

    from lrbench import report, results, stats

    folder = Path(args.results)
    path = folder / "runs.csv" if folder.is_dir() else folder
    if not path.is_file() or path.suffix != ".csv":
        raise ConfigError(
            "RESULTS", f"{str(folder)!r} is neither a results folder nor a runs .csv file"
        )
    try:
        runs = results.load_runs(path)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise ConfigError("RESULTS", f"{str(path)!r} is not a runs table: {err}") from None
    try:
        table = stats.compare(runs, args.a, args.b, args.metric, args.by,
                              higher_is_better=not args.lower_is_better)  # fmt: skip
    except ConfigError as err:
        raise ConfigError(_COMPARE_FLAGS.get(err.field, err.field), err.message) from None
    metric = stats.metric_column(runs, args.metric)
    better = "lower" if args.lower_is_better else "higher"
    print(f"P(A > B): the probability that a run of A has a {better} {metric} than a run of B "
          f"(ties count half), with its 95% bootstrap interval, per {args.by}")  # fmt: skip
    print(f"A: {args.a}\nB: {args.b}\n")
    shown = pd.DataFrame(
        {
            "n A": table["n_a"], "n B": table["n_b"],
            "P(A > B) [95% interval]": [report.interval(v, lo, hi) for v, lo, hi in zip(
                table["p_a_better"], table["low"], table["high"], strict=True)],
            "runs": table["pairing"].replace("", "—"),
        }
    )  # fmt: skip
    shown.index = [f"{v:g}" if isinstance(v, float) else str(v) for v in table[args.by]]
    shown.index.name = args.by
    print(report.to_markdown(shown), end="")
    return 0


def _sizes(text: str) -> tuple[int, ...]:
    """``--sizes 1,8,64`` -> (1, 8, 64): whole numbers >= 1."""
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() and int(p) >= 1 for p in parts):
        raise ConfigError("--sizes", f"{text!r} must be whole numbers >= 1, e.g. 1,8,64")
    return tuple(int(p) for p in parts)


def cmd_bench(args) -> int:
    from lrbench import engine

    engine.use_cpu_cores()
    from lrbench import bench

    sizes = _sizes(args.sizes) if args.sizes else None
    out = (
        Path(args.out) if args.out else Path("results") / ("bench_quick" if args.quick else "bench")
    )
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", f"{str(out)!r} exists and is not a folder")
    bench.main(args.quick, out, args.quiet, levers=args.levers, sizes=sizes)
    print(f"wrote {out}")
    return 0


def _compile_cache_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--compile-cache",
        metavar="DIR|off",
        help="folder of JAX's persistent compilation cache, or off (default: "
        "$LRBENCH_COMPILE_CACHE, else $XDG_CACHE_HOME/lrbench/jax or ~/.cache/lrbench/jax)",
    )


def _quiet_option(parser: argparse.ArgumentParser, what: str = "") -> None:
    parser.add_argument(
        "--quiet", action="store_true", help=f"no progress lines on stderr{what} (default: off)"
    )


# What each ``--set`` key of ``lrbench run`` sets (``run --help`` lists them; a test checks
# that every key of ``_SWEEP_KEYS`` has a line).
SET_HELP = {
    "dataset": "data set: a name, NAME(key=value,...) of a generator, or a .npz/.csv/.parquet "
    "file (see lrbench list)",
    "task": "what is trained on the data set: classifier (the default), regressor, or another "
    "built-in task (an unknown name lists them)",
    "epochs": "epochs of training (an integer >= 1)",
    "batch_size": "minibatch size (an integer in [1, training set size])",
    "lr": "learning rates, an axis: lr=0.1,0.01,0.001 (also lrs=)",
    "seeds": "seeds, an axis: seeds=0,1,2 (each in [0, 2**31-1]; --seeds N is 0 .. N-1)",
    "impl": "who computes the update rule: hand, optax, or both (hand,optax)",
    "dtype": "floating-point type of training: float32 or float64",
    "target_acc": "test accuracy that epochs_to_target counts the epochs to",
    "validation_freq": "evaluate the test set every k epochs (0: never)",
    "hidden": "hidden layer sizes of the MLP: hidden=64,64",
    "activation": "activation of the hidden layers (relu, tanh, ...)",
    "kernel_init": "initializer of the hidden layers (he_uniform, glorot_uniform, ...)",
    "output_init": "initializer of the output layer",
    "batch_sizes": "a static axis of batch sizes, one program each: batch_sizes=16,32",
    "dtypes": "a static axis of dtypes: dtypes=float32,float64",
    "hiddens": "a static axis of hidden sizes, layers joined by '-': hiddens=50,64-64",
    "optimizer": "update rules, an axis: optimizer=sgd,momentum (each at its defaults)",
    "schedule": "schedule kinds, an axis: schedule=constant,step (each at its defaults)",
}


def _run_epilog() -> str:
    import textwrap

    pad = max(map(len, SET_HELP)) + 4
    lines = [
        "--set keys (KEY=VALUE; comma-separated values make an axis; default: the",
        "experiment's configuration):",
    ]
    for key, text in SET_HELP.items():
        wrapped = textwrap.wrap(text, 100 - pad)
        lines.append(f"  {key:<{pad - 2}}{wrapped[0]}")
        lines += [" " * pad + rest for rest in wrapped[1:]]
    lines.append(
        f"  {'unit':<{pad - 2}}epoch or step: the time unit of every schedule of the sweep"
    )
    lines += textwrap.wrap(
        "and any hyperparameter of the sweep's optimizers (momentum=0.5,0.9) or parameter of "
        "its schedules (gamma=0.5): `lrbench list` shows every optimizer and schedule kind "
        "with its parameters and their defaults, and the experiments and data sets.",
        100,
        initial_indent="  ",
        subsequent_indent="  ",
    )
    return "\n".join(lines)


def _default_experiment() -> str:
    try:
        import experiments
    except ImportError:  # lrbench without the repository's experiments
        return "blobs_lr"
    return experiments.DEFAULT


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Learning-rate grids trained in one vmapped program. "
        "`lrbench command --help` describes each command.",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser, metavar="command",
        help="one of the commands below",
    )  # fmt: skip
    default = _default_experiment()
    run = sub.add_parser(
        "run",
        help=f"run an experiment (default: {default})",
        description="Train an experiment's sweep and write its results folder.",
        epilog=_run_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "experiment",
        nargs="?",
        default=None,
        help=f"experiment name, see `lrbench list` (default: {default})",
    )
    run.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a config field or a hyperparameter, e.g. --set lr=0.1,0.01; may be "
        "repeated; the keys are listed below (default: the experiment's configuration)",
    )
    run.add_argument(
        "--seeds",
        type=_positive_int,
        metavar="N",
        help=f"use seeds 0 .. N-1, N in [1, {MAX_SEEDS}] (default: the experiment's seeds)",
    )
    run.add_argument(
        "--out",
        metavar="DIR",
        help="results folder (default: results/<experiment> for the committed configuration, "
        "results/<experiment>-ci with --ci, results/<experiment>-<config hash> with any "
        "other --set/--seeds)",
    )
    _quiet_option(run)
    run.add_argument(
        "--ci",
        action="store_true",
        help="the experiment's CI-sized variant (refused for an experiment without one)",
    )
    run.add_argument(
        "--max-memory",
        metavar="SIZE",
        help="memory budget that sets the chunk size, e.g. 2GB, 512MB (default: half the free "
        "memory)",
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="keep the chunks already in <out>.partial/ and train only the rest (a rerun of "
        "the same configuration does so by itself and says so; --resume also refuses a "
        "<out>.partial/ of another configuration that holds no finished chunk yet)",
    )
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="discard the chunks in <out>.partial/ and start afresh (without it, a rerun "
        "refuses to discard finished chunks of another configuration)",
    )
    run.add_argument(
        "--yes",
        action="store_true",
        help="run a sweep past the sane bounds of lrbench.plan (runs, steps, curves rows, "
        "programs); the memory and disk it needs are never overridden",
    )
    run.add_argument(
        "--process-index",
        type=_int_arg("--process-index"),
        metavar="I",
        help="train only share I of the runs, I in [0, N-1] (with --process-count N; default: 0)",
    )
    run.add_argument(
        "--process-count",
        type=_int_arg("--process-count"),
        metavar="N",
        help="the runs are shared out over N processes (default: 1)",
    )
    run.add_argument(
        "--distributed",
        action="store_true",
        help="jax.distributed.initialize(); this process's share from "
        "jax.process_index()/process_count()",
    )
    run.add_argument(
        "--merge",
        action="store_true",
        help="train nothing: write <out> from every process's share in <out>.partial/",
    )
    run.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local: train here; ray: train the chunks as tasks of a Ray cluster, "
        "retrying a task whose worker died (pip install 'lrbench-jax[ray]') "
        "(default: %(default)s)",
    )
    run.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="the Ray cluster to join (with --executor ray; default: $RAY_ADDRESS, else a "
        "new local cluster)",
    )
    _compile_cache_option(run)
    run.set_defaults(func=cmd_run)

    find = sub.add_parser(
        "lr-find",
        help="suggest a learning rate: range test and grid test",
        description="Smith's range test and a grid test on one problem; prints the "
        "suggestions and writes both curves and a figure.",
    )
    find.add_argument(
        "--dataset",
        default="blobs",
        metavar="NAME",
        help="data set: a name, NAME(key=value,...) of a generator, or a .npz/.csv/.parquet "
        "file; `lrbench list` shows them (default: %(default)s)",
    )
    find.add_argument(
        "--model",
        default="50",
        metavar="SIZES",
        help="hidden layer sizes of the MLP, e.g. 50 or 64,64 (default: %(default)s)",
    )
    find.add_argument(
        "--optimizer",
        default="sgd",
        metavar="NAME",
        help="update rule; `lrbench list` shows them with their hyperparameters "
        "(default: %(default)s)",
    )
    find.add_argument(
        "--impl",
        default="hand",
        choices=rules.IMPLS,
        help="hand: the rule written in lrbench.rules; optax: its optax twin "
        "(default: %(default)s)",
    )
    find.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="a setting of the tests, one value each, may be repeated; the keys and their "
        "defaults: "
        + ", ".join(f"{k}={_value_text(v)}" for k, v in _FIND_DEFAULTS.items())
        + "; or a hyperparameter of the optimizer (default: the optimizer's own, see "
        "`lrbench list`)",
    )
    find.add_argument(
        "--out",
        metavar="DIR",
        help="results folder (default: results/lr_find/<dataset>-<optimizer>)",
    )
    _quiet_option(find, ", only the one-line answer on stdout")
    _compile_cache_option(find)
    find.set_defaults(func=cmd_lr_find)

    chk = sub.add_parser(
        "check",
        help="rerun experiments and compare with results/expected/",
        description="Rerun experiments (their CI-sized variants) and compare their numbers "
        "with the reference numbers; exit code 1 when one is outside its tolerance.",
    )
    chk.add_argument(
        "experiments",
        nargs="*",
        metavar="EXPERIMENT",
        help="experiments to check (default: every experiment with reference numbers)",
    )
    chk.add_argument(
        "--expected",
        default=str(Path("results") / "expected"),
        metavar="DIR",
        help="folder of the reference numbers, one <experiment>.json each (default: %(default)s)",
    )
    chk.add_argument(
        "--verbose", action="store_true", help="show every check, not only failures (default: off)"
    )
    chk.add_argument(
        "--record", action="store_true", help="rewrite the recorded numbers (regression tier) first"
    )
    _quiet_option(chk)
    _compile_cache_option(chk)
    chk.set_defaults(func=cmd_check)

    cmp = sub.add_parser(
        "compare",
        help="P(A > B) with its bootstrap interval, per learning rate",
        description="The probability that a run of A beats a run of B, with its 95% "
        "bootstrap interval, per value of a column (the learning rate by default).",
    )
    cmp.add_argument("results", metavar="RESULTS", help="a results folder (or its runs.csv)")
    cmp.add_argument("--a", required=True, metavar="COLUMN=VALUE[,...]",
                     help='the runs of A, e.g. "optimizer=adam"')  # fmt: skip
    cmp.add_argument("--b", required=True, metavar="COLUMN=VALUE[,...]",
                     help='the runs of B, e.g. "optimizer=sgd"')  # fmt: skip
    cmp.add_argument("--metric", default="final_test_acc", metavar="COLUMN",
                     help="a numeric column of runs.csv; test_acc means final_test_acc "
                     "(default: %(default)s)")  # fmt: skip
    cmp.add_argument("--by", default="lr", metavar="COLUMN",
                     help="one row per value of this column (default: %(default)s)")  # fmt: skip
    cmp.add_argument("--lower-is-better", action="store_true",
                     help="A is better when its metric is lower, e.g. a loss (default: higher "
                     "is better)")  # fmt: skip
    cmp.set_defaults(func=cmd_compare)

    bn = sub.add_parser(
        "bench",
        help="throughput of the engine against loop baselines",
        description="Time the engine against loops that train the same runs one by one.",
    )
    bn.add_argument(
        "--quick", action="store_true", help="N in {1, 8, 64}, one repeat (about a minute)"
    )
    bn.add_argument(
        "--out", metavar="DIR", help="default results/bench (results/bench_quick with --quick)"
    )
    bn.add_argument(
        "--sizes", metavar="N,N,...", help="grid sizes N (default 1,8,64,256,1024,4096)"
    )
    bn.add_argument(
        "--levers",
        action="store_true",
        help="also time the engine's speed levers (devices, dtype, seed groups, chunks, ...)",
    )
    _quiet_option(bn)
    bn.set_defaults(func=cmd_bench)

    lst = sub.add_parser(
        "list",
        help="list experiments, data sets, optimizers and schedules",
        description="Every experiment, data set, optimizer and schedule kind, with each "
        "optimizer's and schedule kind's parameters at their defaults.",
    )
    lst.set_defaults(func=cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except ConfigError as err:
        print(error_line(err), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the last line of defence: no traceback for users
        if os.environ.get("LRBENCH_DEBUG"):
            traceback.print_exc()
        print(
            _one_line(
                f"{PROG}: internal error: {type(err).__name__}: {err} "
                "(set LRBENCH_DEBUG=1 for details)"
            ),
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
