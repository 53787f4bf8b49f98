"""The ``lrbench`` command line.

  lrbench run [EXPERIMENT] [--set key=value ...] [--seeds N] [--out DIR] [--quiet]
  lrbench list

Bad input never shows a traceback: one line on stderr naming the field and what is allowed,
exit code 2, and the output folder left as it was.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from lrbench import data, rules, schedules
from lrbench.errors import ConfigError
from lrbench.sweep import Optimizer, Schedule, Sweep

PROG = "lrbench"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit code 2."""

    def error(self, message):
        raise ConfigError("arguments", message)


# ---------------------------------------------------------------------------------------------
# --set key=value


def _split(key: str, text: str) -> list[str]:
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise ConfigError(key, f"{text!r} is empty or has an empty item; give comma-separated values")
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


def _strs(key, text):
    return tuple(_split(key, text))


def _one(parse):
    def one(key, text):
        values = parse(key, text)
        if len(values) != 1:
            raise ConfigError(key, f"{text!r}: give exactly one value")
        return values[0]

    return one


# key -> (how to parse the text, how to put the value into the sweep)
_SWEEP_KEYS: dict[str, tuple[Callable, Callable[[Sweep, object], Sweep]]] = {
    "dataset": (_one(_strs), lambda s, v: dataclasses.replace(s, dataset=v)),
    "epochs": (_one(_ints), lambda s, v: dataclasses.replace(s, epochs=v)),
    "batch_size": (_one(_ints), lambda s, v: dataclasses.replace(s, batch_size=v)),
    "lr": (_floats, lambda s, v: dataclasses.replace(s, lrs=v)),
    "seeds": (_ints, lambda s, v: dataclasses.replace(s, seeds=v)),
    "impl": (_strs, lambda s, v: dataclasses.replace(s, impls=v)),
    "dtype": (_one(_strs), lambda s, v: dataclasses.replace(s, dtype=v)),
    "target_acc": (_one(_floats), lambda s, v: dataclasses.replace(s, target_acc=v)),
    "hidden": (_ints, lambda s, v: dataclasses.replace(s, model=dataclasses.replace(s.model, hidden=v))),
    "activation": (
        _one(_strs),
        lambda s, v: dataclasses.replace(s, model=dataclasses.replace(s.model, activation=v)),
    ),
    "kernel_init": (
        _one(_strs),
        lambda s, v: dataclasses.replace(s, model=dataclasses.replace(s.model, kernel_init=v)),
    ),
    # Axes by name: each entry starts from its defaults; hyperparameters set after apply to it.
    "optimizer": (
        _strs,
        lambda s, v: dataclasses.replace(s, optimizers=tuple(Optimizer(n) for n in v)),
    ),
    "schedule": (
        _strs,
        lambda s, v: dataclasses.replace(s, schedules=tuple(Schedule(k) for k in v)),
    ),
}
_AXIS_KEYS = ("optimizer", "schedule")  # applied first, so hyperparameters land on them


def _set_hparam(sweep: Sweep, key: str, text: str) -> Sweep:
    """``momentum=0.5,0.9`` sets a grid on every optimizer of the sweep that takes ``momentum``;
    ``gamma=0.5`` likewise on every schedule that takes ``gamma`` (``unit`` on all of them)."""
    opts = [o for o in sweep.optimizers if key in rules.spec(o.name).hparams]
    scheds = [s for s in sweep.schedules if key == "unit" or key in schedules.kind(s.kind).params]
    if not opts and not scheds:
        allowed = sorted(set(_SWEEP_KEYS) | {"unit"})
        hp = sorted({h for o in sweep.optimizers for h in rules.spec(o.name).hparams})
        sp = sorted({p for s in sweep.schedules for p in schedules.kind(s.kind).params})
        extra = f"; hyperparameters of this sweep's optimizers and schedules: {', '.join(hp + sp)}" if hp or sp else ""
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
    pairs = []
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError("--set", f"{item!r} must look like key=value, e.g. lr=0.1,0.01")
        pairs.append(("lr" if key == "lrs" else key, text))
    return pairs


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
        if seeds <= 0:
            raise ConfigError("--seeds", f"--seeds {seeds} must be >= 1")
        sweep = dataclasses.replace(sweep, seeds=tuple(range(seeds)))
    return sweep.validate()


# ---------------------------------------------------------------------------------------------
# Commands


def _positive_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError("--seeds", f"{text!r} is not an integer") from None


def cmd_run(args) -> int:
    import experiments

    from lrbench import report, runner

    name = args.experiment or experiments.DEFAULT
    module = experiments.load(name)
    sweep = module.get_config()
    if args.ci and hasattr(module, "ci_config"):
        sweep = module.ci_config()
    sweep = apply_overrides(sweep, args.set or [], args.seeds)
    out = Path(args.out) if args.out else Path("results") / name
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", f"{str(out)!r} exists and is not a folder")
    run_fn = getattr(module, "run", runner.run)
    result = run_fn(sweep, out=out, quiet=args.quiet)
    table = report.mean_std_table(result.runs, "final_test_acc")
    print(f"\n{sweep.experiment}: final test accuracy, mean ± std over {len(sweep.seeds)} seeds\n")
    print(report.to_markdown(table))
    print(f"wrote {result.folder}")
    return 0


def cmd_list(args) -> int:
    del args
    import experiments

    print("experiments:")
    for name in experiments.names():
        sweep = experiments.load(name).get_config()
        mark = " (default)" if name == experiments.DEFAULT else ""
        print(f"  {name}{mark}: {sweep.description}")
    print("datasets:   " + ", ".join(data.names()))
    print("optimizers: " + ", ".join(rules.names()))
    print("schedules:  " + ", ".join(schedules.kinds()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Learning-rate grids trained in one vmapped program.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="run an experiment (default: blobs_lr)")
    run.add_argument("experiment", nargs="?", help="experiment name (see `lrbench list`)")
    run.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field")
    run.add_argument("--seeds", type=_positive_int, metavar="N", help="use seeds 0 .. N-1")
    run.add_argument("--out", metavar="DIR", help="results folder (default results/<experiment>)")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument("--ci", action="store_true", help="the experiment's CI-sized variant")
    run.set_defaults(func=cmd_run)
    lst = sub.add_parser("list", help="list experiments, data sets, optimizers and schedules")
    lst.set_defaults(func=cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except ConfigError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the last line of defence: no traceback for users
        if os.environ.get("LRBENCH_DEBUG"):
            traceback.print_exc()
        print(f"{PROG}: internal error: {type(err).__name__}: {err} (set LRBENCH_DEBUG=1 for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
