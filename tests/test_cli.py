"""The command line end to end: files and columns of the contract, bad input -> one line, exit 2."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from lrbench import cli

SHRUNK = ["--set", "epochs=3", "--set", "lr=0.1,0.01", "--seeds", "2", "--quiet"]

RUN_COLUMNS = [
    "run_id", "experiment", "dataset", "model", "optimizer", "impl", "lr", "schedule", "seed",
    "final_train_loss", "final_test_loss", "final_test_acc", "best_test_acc",
    "epochs_to_target", "status", "diverged_at",
]  # fmt: skip
CURVE_COLUMNS = ["run_id", "epoch", "lr", "train_loss", "test_loss", "test_acc"]


@pytest.fixture(scope="module")
def shrunk_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "blobs"
    code = cli.main(
        [
            "run",
            *SHRUNK,
            "--set",
            "optimizer=sgd,momentum",
            "--set",
            "momentum=0.5,0.9",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    return out


def test_run_writes_the_contract(shrunk_run):
    out = shrunk_run
    for name in (
        "runs.csv",
        "curves.csv",
        "runs.parquet",
        "curves.parquet",
        "meta.json",
        "table.md",
        "table.tex",
        "table.csv",
        "curves.png",
    ):
        assert (out / name).is_file(), name
    runs = pd.read_csv(out / "runs.csv")
    curves = pd.read_csv(out / "curves.csv")
    assert set(RUN_COLUMNS) <= set(runs.columns)
    assert "momentum" in runs.columns  # an optimizer hyperparameter column
    assert list(curves.columns) == CURVE_COLUMNS
    # sgd (1 point) + momentum (2 points), 2 learning rates, 2 seeds; 3 epochs each
    assert len(runs) == (1 + 2) * 2 * 2
    assert len(curves) == len(runs) * 3
    assert runs["run_id"].is_unique
    assert set(runs["status"]) <= {"converged", "slow", "oscillating", "diverged"}
    meta = json.loads((out / "meta.json").read_text())
    for key in ("versions", "backend", "devices", "XLA_FLAGS", "git_revision", "config",
                "compile_seconds", "train_seconds", "wall_seconds", "compile_cache",
                "compile_cache_hits", "compile_cache_misses"):  # fmt: skip
        assert key in meta, key
    assert meta["compile_cache"] == os.environ["LRBENCH_COMPILE_CACHE"]  # the session's own
    assert {"lrbench", "jax", "jaxlib", "optax", "flax"} <= set(meta["versions"])
    assert meta["config"]["epochs"] == 3


def test_parquet_matches_csv(shrunk_run):
    a = pd.read_parquet(shrunk_run / "runs.parquet")
    b = pd.read_csv(shrunk_run / "runs.csv")
    pd.testing.assert_series_equal(a["final_test_acc"], b["final_test_acc"])


def test_table_is_mean_and_std_over_seeds(shrunk_run):
    runs = pd.read_csv(shrunk_run / "runs.csv")
    table = (shrunk_run / "table.md").read_text()
    row = runs[(runs["optimizer"] == "sgd") & (runs["lr"] == 0.1)]["final_test_acc"]
    assert f"{row.mean():.3f} ± {row.std():.3f}" in table
    header = table.splitlines()[0]
    assert header.startswith("| lr |")
    # one column per optimizer point: sgd, momentum 0.5, momentum 0.9
    assert header.count("|") == 5 and "momentum=0.5" in header and "momentum=0.9" in header
    cols = list(runs.columns)
    assert cols.index("unit") < cols.index("momentum") < cols.index("seed")


def test_list(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    for word in (
        "blobs_lr",
        "blobs",
        "digits",
        "iris",
        "moons",
        "sgd",
        "momentum",
        "nesterov",
        "time_based",
    ):
        assert word in out


BAD_INPUTS = [
    (["run", "no_such_experiment"], "experiment"),
    (["run", "--set", "dataset=mnist"], "dataset"),
    (["run", "--set", "task=nope"], "task"),
    (["run", "--set", "optimizer=adamm"], "optimizer"),
    (["run", "--set", "schedule=zigzag"], "schedule"),
    (["run", "--set", "lr=0"], "lr"),
    (["run", "--set", "lr=-0.1"], "lr"),
    (["run", "--set", "lr=inf"], "lr"),
    (["run", "--set", "lr=nan"], "lr"),
    (["run", "--set", "lr=abc"], "lr"),
    (["run", "--set", "lr="], "lr"),
    (["run", "--set", "lr=0.1,,0.2"], "lr"),
    (["run", "--set", "epochs=0"], "epochs"),
    (["run", "--set", "epochs=-3"], "epochs"),
    (["run", "--set", "batch_size=501"], "batch_size"),
    (["run", "--set", "batch_size=0"], "batch_size"),
    (["run", "--set", "epochs"], "--set"),
    (["run", "--set", "=3"], "--set"),
    (["run", "--set", "wibble=3"], "wibble"),
    (["run", "--set", "momentum=1.5", "--set", "optimizer=momentum"], "momentum"),
    (["run", "--seeds", "0"], "--seeds"),
    (["run", "--set", "seeds="], "seeds"),
    (["run", "--set", "validation_freq=-1"], "validation_freq"),
    (["run", "--set", "validation_freq=0.5"], "validation_freq"),
    (
        ["run", "--set", "validation_freq=2", "--set", "schedule=reduce_on_plateau"],
        "validation_freq",
    ),
    (["run", "error_bowl", "--set", "validation_freq=2"], "validation_freq"),
    (["bench", "--sizes", "0,8"], "--sizes"),
    (["bench", "--sizes", "8,,64"], "--sizes"),
    (["bench", "--sizes", "1e3"], "--sizes"),
    (["frobnicate"], "command: invalid choice"),
]


@pytest.mark.parametrize(("argv", "field"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_one_line_exit_2(argv, field, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("untouched")
    code = cli.main([*argv, "--out", str(out)] if argv[0] == "run" else argv)
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("lrbench: error: ")
    assert field in lines[0]
    assert "Traceback" not in captured.err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["keep.txt", "out"]
    assert (out / "keep.txt").read_text() == "untouched"


def test_console_script_no_traceback(tmp_path):
    exe = shutil.which("lrbench")
    cmd = [exe] if exe else [sys.executable, "-m", "lrbench"]
    proc = subprocess.run(
        [*cmd, "run", "--set", "lr=-1"], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "lr" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "results").exists()


def test_setting_without_optax_twin_is_refused(tmp_path, capsys):
    argv = [
        "run",
        "--set",
        "optimizer=adagrad",
        "--set",
        "impl=optax",
        "--set",
        "eps=1e-10",
        "--out",
        str(tmp_path / "o"),
    ]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "eps" in err
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------------------------
# Help and discoverability: fast, complete, in step with the registries

# Heavy modules that help, ``list`` and argument errors must never import (each costs seconds).
HEAVY = ("jax", "jaxlib", "optax", "flax", "pandas", "matplotlib", "sklearn", "scipy")
LIGHT_ARGVS = [
    ["--help"],
    ["list"],
    ["run", "nosuch"],
    ["run", "--seeds", "x"],
    *([command, "--help"] for command in ("run", "lr-find", "check", "compare", "bench", "list")),
]


def test_light_paths_do_not_import_jax():
    """``import lrbench``, ``import lrbench.cli``, every --help, ``list`` and argument errors
    answer without importing JAX (or pandas, matplotlib, ...): checked in a fresh interpreter."""
    code = f"""
import contextlib, io, sys
import lrbench, lrbench.cli
heavy = {HEAVY!r}
seen = sorted(m for m in heavy if m in sys.modules)
print("import", seen)
for argv in {LIGHT_ARGVS!r}:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            code = lrbench.cli.main(argv)
        except SystemExit as exit:
            code = exit.code
    print(" ".join(argv), code, sorted(m for m in heavy if m in sys.modules))
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "import []", lines[0]
    for argv, line in zip(LIGHT_ARGVS, lines[1:], strict=True):
        expected = 2 if argv in (["run", "nosuch"], ["run", "--seeds", "x"]) else 0
        assert line == f"{' '.join(argv)} {expected} []", line


def test_lazy_package_exports():
    """``from lrbench import Sweep, run, ...`` still works (PEP 562), and a wrong name is an
    AttributeError."""
    import lrbench

    for name in lrbench.__all__:
        assert getattr(lrbench, name) is not None, name
    from lrbench import MLPConfig, Optimizer, Result, Schedule, Sweep, expand, run  # noqa: F401
    from lrbench.runner import run as runner_run

    assert run is runner_run
    assert set(lrbench.__all__) <= set(dir(lrbench))
    with pytest.raises(AttributeError, match="no_such_name"):
        lrbench.no_such_name  # noqa: B018


def _subparsers(parser):
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices


def test_every_option_has_help():
    """Every argument of every subcommand says what it does; an option that takes a value says
    what it accepts (a metavar or choices) and, unless required, its default."""
    parser = cli.build_parser()
    missing = []
    for name, sub in {"": parser, **_subparsers(parser)}.items():
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            where = f"{name} {'/'.join(action.option_strings) or action.dest}"
            text = action.help or ""
            if not text.strip() or text == argparse.SUPPRESS:
                missing.append(f"{where}: no help")
                continue
            if not action.option_strings or action.nargs == 0:
                continue  # a positional, or a flag (off by default)
            if action.metavar is None and action.choices is None:
                missing.append(f"{where}: no metavar or choices")
            if not action.required and "default" not in text.lower():
                missing.append(f"{where}: its default is not said")
    assert not missing, "\n".join(missing)


def _help(*argv) -> str:
    with pytest.raises(SystemExit) as exit:
        cli.build_parser().parse_args([*argv, "--help"])
    assert exit.value.code == 0


def test_run_help_lists_the_set_keys(capsys):
    assert list(cli.SET_HELP) == list(cli._SWEEP_KEYS)  # a line for each key, in its order
    _help("run")
    text = " ".join(capsys.readouterr().out.split())
    for key in [*cli._SWEEP_KEYS, "unit"]:
        assert re.search(rf"\b{key}\b", text), key
    assert "lrbench list" in text


def test_help_shows_defaults(capsys):
    _help("lr-find")
    text = " ".join(capsys.readouterr().out.split())
    for flag, default in (("--dataset", "blobs"), ("--optimizer", "sgd"), ("--impl", "hand"),
                          ("--model", "50")):  # fmt: skip
        assert re.search(rf"{flag} \S+ .*?default: {default}\b", text), flag
    from lrbench.models import MLPConfig

    assert cli._FIND_DEFAULTS["output_init"] == MLPConfig.output_init
    from lrbench import lrfind

    assert cli._FIND_DEFAULTS["extend"] == lrfind.EXTEND_DECADES
    _help("check")
    text = " ".join(capsys.readouterr().out.split())
    assert re.search(r"--expected DIR .*?default: results/expected", text)
    assert list(cli._FIND_DEFAULTS) == list(cli._FIND_KEYS)


def _listing(capsys) -> dict[str, dict[str, str]]:
    """``lrbench list``'s sections: section -> {entry name: rest of its line(s)}."""
    assert cli.main(["list"]) == 0
    sections, section, entry = {}, None, None
    for line in capsys.readouterr().out.splitlines():
        if line and not line.startswith(" "):
            section, entry = line.split()[0].rstrip(":"), None
            sections[section] = {}
        elif line.startswith("      ") and entry:  # a wrapped line of the entry above
            sections[section][entry] += " " + line.strip()
        elif line.strip():
            entry, _, rest = line.strip().partition(" ")
            sections[section][entry] = rest.strip()
    return sections


def _params(text: str) -> dict[str, float]:
    number = r"[-+]?[0-9][0-9.]*(?:e[-+]?[0-9]+)?"
    return {k: float(v) for k, v in re.findall(rf"([a-z_0-9]+)=({number})\b", text)}


def test_list_shows_each_optimizer_and_schedule_with_its_defaults(capsys):
    from lrbench import data, rules, schedules

    sections = _listing(capsys)
    assert list(sections["optimizers"]) == rules.names()
    for name in rules.names():
        assert _params(sections["optimizers"][name]) == rules.spec(name).hparams, name
    note = sections["schedules"].pop("every")  # "every kind also takes ...": the warmup
    assert _params(note) == schedules.WARMUP
    assert list(sections["schedules"]) == schedules.kinds()
    for name in schedules.kinds():
        kind = schedules.kind(name)
        shown = sections["schedules"][name]
        assert f"unit={kind.unit}" in shown, name
        expected = {k: v for k, v in kind.params.items() if k not in schedules.WARMUP}
        assert _params(shown) == expected, name
    listed = " ".join(f"{k} {v}" for k, v in sections["datasets"].items())
    for name in data.names():
        assert name.split("(")[0] in listed, name


def test_list_describes_each_experiment_as_its_config_does(capsys):
    """The listing reads each experiment's description without importing it; it must be the
    one its ``get_config()`` returns."""
    import experiments

    sections = _listing(capsys)
    shown = sections["experiments"]
    assert list(shown) == experiments.names()
    for name in experiments.names():
        description = experiments.load(name).get_config().description
        mark = "(default) " if name == experiments.DEFAULT else ""
        assert shown[name] == mark + description, name


FAKE_EXPERIMENT = '''"""A fake experiment: a run hook that trains nothing and leaves a table in its meta."""

import pandas as pd

from lrbench import runner
from lrbench.sweep import Sweep
{names}

def get_config():
    return Sweep(experiment="{name}", description="a fake experiment", epochs=1, lrs=(0.1,))


def run(sweep, out=None, quiet=False):
    table = pd.DataFrame({{"lr": [0.1], "score": [0.625]}}).set_index("lr")
    return runner.Result(pd.DataFrame(), pd.DataFrame(), {{"tables": {{"t": table}}}}, out)
{summary}'''


@pytest.fixture
def fake_experiments(tmp_path, monkeypatch):
    """Adds experiment modules written in ``tmp_path`` to the ``experiments`` package."""
    import experiments

    folder = tmp_path / "fake_experiments"
    folder.mkdir()
    monkeypatch.setattr(experiments, "__path__", [*experiments.__path__, str(folder)])
    written = []

    def write(name: str, names: str = "", summary: str = "") -> None:
        text = FAKE_EXPERIMENT.format(name=name, names=names, summary=summary)
        (folder / f"{name}.py").write_text(text)
        written.append(name)

    yield write
    for name in written:
        sys.modules.pop(f"experiments.{name}", None)


@pytest.mark.parametrize(
    ("names", "summary", "title"),
    [
        ('NAME = "fake_named"\nTITLE = "its own title"\n', "", "fake_named: its own title"),
        ("", "", "fake_plain: a fake experiment"),  # no NAME or TITLE: name, description
        ("", "\n\ndef summary(result):\n    return 'its own summary'\n", "its own summary"),
    ],
    ids=["NAME and TITLE", "neither", "own summary()"],
)
def test_summary_fallback(fake_experiments, tmp_path, capsys, names, summary, title):
    """An experiment without ``summary()`` prints the tables of its run hook under
    ``NAME: TITLE`` (``claims.summary``); one with ``summary()`` prints that."""
    name = "fake_named" if names else "fake_plain" if not summary else "fake_summary"
    fake_experiments(name, names, summary)
    assert cli.main(["run", name, "--out", str(tmp_path / "out"), "--quiet"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert title in lines, out
    assert ("0.625" in out) == (not summary), out  # the run hook's table, when no summary()
    assert lines[-1].startswith(f"wrote {tmp_path / 'out'} (config ")
    assert _listing(capsys)["experiments"][name] == "a fake experiment"  # read from its source
