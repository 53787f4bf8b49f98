"""Property-based: random values of every type for every ``Sweep`` field, and random
``--set``/``--seeds``/``--out`` arguments of ``lrbench run``, end in a sweep that expands (a
run that would start training) or in a clean refusal naming the field: never another
exception, never a traceback, never a file written.

The fast tier runs a modest number of examples; the ``slow`` tests run many more.
``python tests/test_fuzz.py [N]`` runs both with N examples each and prints the counts.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import io
import os
import string
import sys
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lrbench import cli, data, rules, runner, schedules, tasks
from lrbench.errors import ConfigError
from lrbench.sweep import Optimizer, Schedule, Sweep, expand

BASE = Sweep(experiment="fuzz", epochs=2, lrs=(0.1,), seeds=(0,))
COUNTS: collections.Counter = collections.Counter()

HPARAMS = {h for n in rules.names() for h in rules.spec(n).hparams}
SPARAMS = {p for k in schedules.kinds() for p in schedules.kind(k).params} | {"unit"}
TASK_FIELDS = {"task", "dataset", "model", "batch_size", "axes"}
# Sweep field -> the fields its refusal may name ("axes": a value given twice repeats a run;
# an optimizer's or schedule's default point is checked by the names of its parameters).
FIELDS = {
    "experiment": {"experiment"},
    "description": {"description"},
    "dataset": {"dataset"},
    "model": {"model", "hidden"},
    "task": {"task"} | TASK_FIELDS,
    "epochs": {"epochs"},
    "batch_size": {"batch_size"},
    "lrs": {"lr", "axes"},
    "optimizers": {"optimizer", "axes"} | HPARAMS,
    "schedules": {"schedule", "axes"} | SPARAMS,
    "seeds": {"seeds", "axes"},
    "impls": {"impl", "axes"} | HPARAMS,
    "schedule_impls": {"schedule_impl", "axes"} | SPARAMS,
    "target_acc": {"target_acc"},
    "dtype": {"dtype"},
    "validation_freq": {"validation_freq"},
    "tasks": {"tasks"} | TASK_FIELDS,
    "hiddens": {"hiddens", "axes"},
    "batch_sizes": {"batch_sizes", "batch_size", "axes"},
    "dtypes": {"dtypes", "dtype", "axes"},
}
assert set(FIELDS) == {f.name for f in dataclasses.fields(Sweep)}

NAMES = [*rules.names(), *schedules.kinds(), *rules.IMPLS, "float32", "float64", "float16",
         *tasks.BUILT_IN, *data.names(), "", "sgd "]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 300),
    st.integers(-(2**70), 2**70),
    st.sampled_from([2**31 - 1, 2**31, 2**32, 2**63]),
    st.floats(),  # nan, inf, huge and tiny included
    st.sampled_from([0.1, 1e-3, 0.5, 1.0, 1e-320]),
    st.text(max_size=6),
    st.sampled_from(NAMES),
    st.integers(0, 5).map(np.int64),
    st.floats(1e-4, 1.0).map(np.float32),
    st.sampled_from(rules.names()).map(Optimizer),
    st.sampled_from(schedules.kinds()).map(Schedule),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=3), inner, max_size=2),
        st.lists(st.integers(0, 9), max_size=3).map(np.array),
    ),
    max_leaves=6,
)


def api_case(field: str, value) -> str:
    """``accepted`` or ``refused``; anything else fails."""
    COUNTS["api tried"] += 1
    try:
        runs = expand(dataclasses.replace(BASE, **{field: value}))
    except ConfigError as err:
        assert err.field in FIELDS[field], (field, value, err)
        assert "\n" not in str(err), str(err)
        COUNTS["api refused"] += 1
        return "refused"
    except Exception:
        COUNTS["api other"] += 1
        raise
    assert len(runs) >= 1 and runs["run_id"].is_unique
    COUNTS["api accepted"] += 1
    return "accepted"


def grid_case(entry: str, name: str, grid) -> str:
    """An optimizer or schedule of a random grid: ``accepted`` or ``refused`` naming the entry
    or one of its parameters; anything else fails."""
    COUNTS["api tried"] += 1
    kind, field = (Optimizer, "optimizers") if entry == "optimizer" else (Schedule, "schedules")
    try:
        runs = expand(dataclasses.replace(BASE, **{field: (kind(name, grid),)}))
    except ConfigError as err:
        params = set(grid) if isinstance(grid, dict) else set()
        assert err.field in FIELDS[field] | params | {"validation_freq"}, (name, grid, err)
        COUNTS["api refused"] += 1
        return "refused"
    except Exception:
        COUNTS["api other"] += 1
        raise
    assert len(runs) >= 1
    COUNTS["api accepted"] += 1
    return "accepted"


PARAM_NAMES = sorted(HPARAMS | SPARAMS) + ["bogus"]
grids = st.one_of(
    st.dictionaries(st.sampled_from(PARAM_NAMES), values, max_size=2),
    values,
)
entries = st.one_of(
    st.tuples(st.just("optimizer"), st.sampled_from(rules.names()), grids),
    st.tuples(st.just("schedule"), st.sampled_from(schedules.kinds()), grids),
)


KEYS = ["lr", "lrs", "epochs", "batch_size", "seeds", "dataset", "task", "optimizer", "schedule",
        "impl", "dtype", "hidden", "momentum", "gamma", "unit", "target_acc", "validation_freq",
        "batch_sizes", "dtypes", "hiddens", "activation", "bogus", ""]  # fmt: skip
NASTY = ["0", "1", "2", "3", "-1", "0.1", "1e-3", "1e999", "nan", "inf", "", ",", "1,,2", "abc",
         "1e-400", "0x10", "5000", "4294967296", "2147483647", "2147483648", "2**70", "sgd",
         "sgd,momentum", "constant,step", "hand,optax", "float64", "8-4", "☃", "'", " ", "True",
         "1_0"]  # fmt: skip
texts = st.one_of(st.sampled_from(NASTY), st.text(string.printable, max_size=10))
set_items = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS), texts),
    st.text(string.printable, max_size=12),
)
seed_counts = st.one_of(
    st.integers(-3, 12).map(str),
    st.sampled_from(["100000", "100001", "4294967296", "2**31", "abc", "", "1.5", " 2"]),
    st.text(string.printable, max_size=6),
)
outs = st.one_of(
    st.sampled_from(["o", "a/b/c", "file.txt", "file.txt/x", "folder", ".", "", "~"]),
    st.text(string.ascii_letters + "./-_ ", min_size=1, max_size=10),
)


class _Accepted(BaseException):  # noqa: N818 - a signal, not an error: the run would start
    pass


def _train_nothing(sweep, **kwargs):
    raise _Accepted


def cli_case(sets: list[str], seeds: str | None, out: str | None) -> str:
    """``lrbench run`` in a scratch folder, training replaced by a stop: ``accepted`` (it got
    as far as training) or ``refused`` (exit 2, one line); anything else fails. Nothing may be
    written either way."""
    COUNTS["cli tried"] += 1
    argv = ["run", "--quiet", *[a for s in sets for a in ("--set", s)]]
    argv += [] if seeds is None else [f"--seeds={seeds}"]
    argv += [] if out is None else [f"--out={out}"]
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / "file.txt").write_text("kept")
        (Path(scratch) / "folder").mkdir()
        before = sorted(str(p) for p in Path(scratch).rglob("*"))
        err, cwd = io.StringIO(), os.getcwd()
        os.chdir(scratch)
        try:
            with mock.patch.object(runner, "run", _train_nothing), contextlib.redirect_stderr(err):
                code = cli.main(argv)
        except _Accepted:
            code = "accepted"
        finally:
            os.chdir(cwd)
        assert sorted(str(p) for p in Path(scratch).rglob("*")) == before, argv
    text = err.getvalue()
    if code == "accepted":
        COUNTS["cli accepted"] += 1
        return "accepted"
    if code == 2 and len(text.splitlines()) == 1 and text.startswith("lrbench: error: "):
        COUNTS["cli refused"] += 1
        return "refused"
    COUNTS["cli other"] += 1
    raise AssertionError(f"{argv}: exit {code}: {text}")


def _api_property(n: int):
    @settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(st.tuples(st.sampled_from(sorted(FIELDS)), values), entries))
    def prop(case):
        if len(case) == 3:
            grid_case(*case)
        else:
            api_case(*case)

    return prop


def _cli_property(n: int):
    @settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(set_items, max_size=3), st.none() | seed_counts, st.none() | outs)
    def prop(sets, seeds, out):
        cli_case(sets, seeds, out)

    return prop


def test_api_fields_refuse_cleanly():
    _api_property(200)()


def test_cli_arguments_refuse_cleanly():
    _cli_property(60)()


@pytest.mark.slow
def test_api_fields_refuse_cleanly_many():
    _api_property(3000)()


@pytest.mark.slow
def test_cli_arguments_refuse_cleanly_many():
    _cli_property(1000)()


def test_known_cases():
    """A few fixed points of both properties (so each can fail on a known input)."""
    assert api_case("seeds", (2**32,)) == "refused"
    assert api_case("seeds", (True,)) == "refused"
    assert api_case("lrs", ("0.1",)) == "refused"
    assert api_case("optimizers", ("sgd",)) == "accepted"
    assert api_case("seeds", range(3)) == "accepted"
    assert grid_case("optimizer", "momentum", {"momentum": "0.9"}) == "refused"
    assert grid_case("optimizer", "momentum", {"momentum": None}) == "refused"
    assert grid_case("schedule", "step", {"step_size": True}) == "refused"
    assert grid_case("schedule", "step", {"unit": ("step",), "gamma": [0.5, 0.25]}) == "accepted"
    assert cli_case(["lr=0.1"], "2", "o") == "accepted"
    assert cli_case(["lr=0.1", "lr=0.2"], None, None) == "refused"
    assert cli_case([], "abc", None) == "refused"
    assert cli_case([], None, "file.txt") == "refused"
    assert cli_case(["0=", "0=\n"], None, None) == "refused"  # a line break typed: escaped
    assert cli_case(["a\u2028b=1"], None, None) == "refused"


if __name__ == "__main__":
    os.environ.setdefault("LRBENCH_COMPILE_CACHE", "off")
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    _api_property(n)()
    _cli_property(n)()
    for key in ("api", "cli"):
        print(key, {k.split()[1]: v for k, v in sorted(COUNTS.items()) if k.startswith(key)})
