"""The README's examples, executed, so that they cannot drift from the code.

Its fenced blocks: ``python`` blocks run (in the fast tier with ``lrbench.run`` stood in for by
a dry run that builds and expands the sweep; in the slow tier for real, in a subprocess);
``bash``/``sh`` blocks: cheap ``lrbench`` lines (``list``, ``compare`` on committed results)
run, heavy ones (training, ``check``, ``bench``, ``lr-find``) are parsed by the command line's
parser and their settings checked (a ``--set`` key applied to the experiment's config), and
``pip install`` extras and ``pytest`` markers are looked up in ``pyproject.toml``. The table of
bad inputs: each row's input is run and its one line on stderr compared with the row's.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from typing import NamedTuple

import pytest

from lrbench import cli

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


class Block(NamedTuple):
    lang: str
    code: str
    line: int  # of the opening fence, 1-based


def blocks(text: str | None = None) -> list[Block]:
    """The fenced code blocks of the README (or of ``text``)."""
    text = README.read_text(encoding="utf-8") if text is None else text
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        fence = re.fullmatch(r"\s*```\s*([\w+-]*)\s*", lines[i])
        if not fence:
            i += 1
            continue
        start, i = i, i + 1
        while i < len(lines) and not re.fullmatch(r"\s*```\s*", lines[i]):
            i += 1
        if i == len(lines):
            raise AssertionError(f"README.md:{start + 1}: a fence that is never closed")
        out.append(Block(fence.group(1).lower(), "\n".join(lines[start + 1 : i]) + "\n", start + 1))
        i += 1
    return out


def commands(code: str) -> list[list[str]]:
    """The commands of a shell block: continuation lines joined, comments dropped, ``&&``
    chains split."""
    out = []
    for line in code.replace("\\\n", " ").splitlines():
        command = []
        for word in [*shlex.split(line, comments=True), "&&"]:
            if word == "&&":
                if command:
                    out.append(command)
                command = []
            else:
                command.append(word)
    return out


def shell_commands() -> list[tuple[int, list[str]]]:
    return [(b.line, c) for b in blocks() if b.lang in ("bash", "sh", "shell", "console")
            for c in commands(b.code)]  # fmt: skip


def python_blocks() -> list[Block]:
    return [b for b in blocks() if b.lang in ("python", "py")]


def test_the_extraction_finds_the_blocks():
    """The parser itself: a fence with and without a language, a continuation line and a
    comment; and the README holds blocks of each kind checked below."""
    text = "a\n```bash\nlrbench run --set a=1 \\\n   --seeds 2  # two\nx && y z\n```\n```\nplain\n```\n"
    assert blocks(text) == [
        Block("bash", "lrbench run --set a=1 \\\n   --seeds 2  # two\nx && y z\n", 2),
        Block("", "plain\n", 7),
    ]
    assert commands(blocks(text)[0].code) == [
        ["lrbench", "run", "--set", "a=1", "--seeds", "2"], ["x"], ["y", "z"]
    ]  # fmt: skip
    with pytest.raises(AssertionError, match="never closed"):
        blocks("```python\nx = 1\n")
    assert len(python_blocks()) >= 2
    programs = {c[0] for _, c in shell_commands()}
    assert {"lrbench", "pip", "pytest"} <= programs, programs


# ---------------------------------------------------------------------------------------------
# Shell blocks

CHEAP = {"list", "compare"}  # run for real in the fast tier; the others are parsed and checked


def _run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exit:  # --help
            code = exit.code
    return code, out.getvalue(), err.getvalue()


def _check_heavy(argv: list[str]) -> None:
    """Parses ``lrbench ARGV`` and checks what it names, without training anything."""
    import experiments
    from lrbench import rules

    args = cli.build_parser().parse_args(argv)  # a renamed flag raises ConfigError
    if args.command == "run":
        module = experiments.load(args.experiment or experiments.DEFAULT)
        sweep = module.ci_config() if args.ci else module.get_config()
        cli.apply_overrides(sweep, args.set or [], args.seeds)  # keys and values
    elif args.command == "check":
        for name in args.experiments:
            experiments.load(name)
        assert Path(ROOT / args.expected).is_dir(), args.expected
    elif args.command == "bench":
        if args.sizes:
            cli._sizes(args.sizes)
    elif args.command == "lr-find":
        hparams = rules.spec(args.optimizer).hparams
        for key, _ in cli.parse_sets(args.set or []):
            assert key in cli._FIND_KEYS or key in hparams, key
    else:
        raise AssertionError(f"lrbench {args.command}: say how to check it in CHEAP or here")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _check_pip(words: list[str]) -> None:
    """``pip install -e ".[extra,...]"``: each extra is declared in pyproject.toml."""
    assert words[:2] == ["pip", "install"], words
    extras = _pyproject()["project"].get("optional-dependencies", {})
    for spec in words[2:]:
        if match := re.fullmatch(r"\.(?:\[([\w,-]+)\])?", spec):
            for extra in filter(None, (match.group(1) or "").split(",")):
                assert extra in extras, f"pip extra {extra!r} is not in pyproject.toml"
        else:
            assert spec == "-e", spec


def _check_pytest(words: list[str]) -> None:
    """``pytest [-m MARKER]``: the marker is declared in pyproject.toml."""
    markers = [m.split(":")[0] for m in _pyproject()["tool"]["pytest"]["ini_options"]["markers"]]
    if "-m" in words:
        assert words[words.index("-m") + 1] in markers, words


@pytest.mark.parametrize(
    ("line", "words"),
    shell_commands(),
    ids=[f"README.md:{line} {' '.join(words)}" for line, words in shell_commands()],
)
def test_shell_lines(line, words, tmp_path, monkeypatch):
    """Each command line of the README's shell blocks: cheap ``lrbench`` lines run (exit 0);
    the others are parsed and checked."""
    del line
    monkeypatch.chdir(ROOT)  # the README's paths are relative to the repository
    program, argv = words[0], words[1:]
    if program == "lrbench":
        if argv and argv[0] in CHEAP or "--help" in argv or "-h" in argv:
            code, out, err = _run_cli(argv)
            assert code == 0, err
            assert out.strip(), "printed nothing"
        else:
            _check_heavy(argv)
    elif program == "pip":
        _check_pip(words)
    elif program == "pytest":
        _check_pytest(words)
    else:
        raise AssertionError(f"{program}: a README command this test does not know how to check")


def test_the_set_keys_the_readme_names():
    """The README's sentence "`--set` takes `...`" and its static axes name every ``--set`` key
    of the command line, and no other."""
    text = " ".join(README.read_text(encoding="utf-8").split())
    (listed,) = re.findall(r"`--set` takes `([^`]*)`", text)
    static = re.search(r"Static axes: (.*?) make axes", text).group(1)
    named = {k.strip() for k in listed.split(",")}
    named |= set(re.findall(r"`(?:--set )?(\w+)=", static)) - {"tasks"}  # tasks=: Python only
    assert named == set(cli._SWEEP_KEYS)


# ---------------------------------------------------------------------------------------------
# The bad-input table


class Row(NamedTuple):
    line: int
    inputs: list[str]  # the code spans of its first cell
    outputs: list[str]  # the code spans of its second cell


def bad_input_rows() -> list[Row]:
    text = README.read_text(encoding="utf-8").splitlines()
    start = text.index("## Bad input")
    rows = []
    for i, line in enumerate(text[start:], start + 1):
        if line.startswith("## ") and i > start + 1:
            break
        if line.startswith("| `") or line.startswith("| a rerun"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            spans = [re.findall(r"`([^`]*)`", c) for c in cells[:2]]
            rows.append(Row(i, *spans))
    return rows


# Rows that need a state the test does not build; every other row is run.
NOT_RUN = {
    "--resume": "needs a .partial folder holding another configuration's chunks",
    "--set epochs=100000000": "which bound trips first (steps or memory) and the sizes it "
    "quotes depend on the machine's memory",
}
NOT_RUN_ROWS = {"before every share is done": "needs a sweep half shared out over processes"}


def _expected(text: str, out: Path) -> re.Pattern:
    """A row's shown line as a pattern: ``…`` stands for anything, ``<out>`` for the folder."""
    parts = [re.escape(p) for p in text.replace("<out>", str(out)).split("…")]
    prefix = "" if text.startswith("lrbench: ") else re.escape("lrbench: error: ")
    return re.compile(prefix + ".*".join(parts))


def _row_id(row: Row) -> str:
    return f"README.md:{row.line} {row.inputs[0] if row.inputs else ''}"


@pytest.mark.parametrize("row", bad_input_rows(), ids=_row_id)
def test_bad_input_table(row, tmp_path, monkeypatch):
    """Each row's (first) input, run as typed (no --quiet): exit 2 and the one line on stderr
    the row shows."""
    readme_row = README.read_text(encoding="utf-8").splitlines()[row.line - 1]
    reason = NOT_RUN.get(row.inputs[0]) or next(
        (why for words, why in NOT_RUN_ROWS.items() if words in readme_row), None
    )
    if reason:
        pytest.skip(reason)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "some_file").write_text("")  # --out some_file/x
    (tmp_path / "runs.csv").write_text("")  # --compile-cache runs.csv/jax
    (tmp_path / "mine.csv").write_text("age,city,target\n30,x,0\n40,y,1\n")  # a text column
    argv = shlex.split(row.inputs[0])
    argv = argv[1:] if argv[0] == "lrbench" else ["run", *argv]
    out = tmp_path / "out"
    if argv[0] == "run" and "--out" not in argv:
        argv += ["--out", str(out)]
    code, _, err = _run_cli(argv)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert any(_expected(text, out).fullmatch(lines[0]) for text in row.outputs), (
        f"README.md:{row.line} shows {row.outputs}, lrbench says {lines[0]!r}"
    )
    assert not out.exists()


def test_every_bad_input_row_is_found():
    rows = bad_input_rows()
    assert len(rows) >= 20, rows
    assert all(row.inputs and row.outputs for row in rows), rows


# ---------------------------------------------------------------------------------------------
# Python blocks

# Stands in for ``lrbench.run`` in the fast tier: builds the sweep's runs table, trains nothing.
DRY_RUN = """
import lrbench

def _dry_run(sweep, out=None, **kwargs):
    table = lrbench.expand(sweep)
    assert len(table) > 0
    return table

lrbench.run = _dry_run
"""

DRIVER = """
import runpy, sys
from lrbench.sweep import Sweep

namespace = runpy.run_path(sys.argv[1], run_name="__readme__")
if "get_config" in namespace:  # an experiment module: its config must build
    assert isinstance(namespace["get_config"](), Sweep)
print("ok")
"""


def _run_block(block: Block, folder: Path, prelude: str = "") -> None:
    script = folder / f"readme_{block.line}.py"
    script.write_text(prelude + block.code)
    driver = folder / "driver.py"
    driver.write_text(textwrap.dedent(DRIVER))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    proc = subprocess.run(
        [sys.executable, str(driver), str(script)], cwd=folder, env=env, capture_output=True,
        text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), (
        f"README.md:{block.line}: {proc.stderr[-3000:]}"
    )


def test_python_blocks_dry_run(tmp_path):
    """Every python block of the README runs, with ``lrbench.run`` a dry run (the sweep is
    built and expanded, nothing trained), in one subprocess."""
    code = "from lrbench.sweep import Sweep\n" + "".join(
        f"ns = {{'__name__': '__readme__'}}\n"
        f"exec(compile({b.code!r}, 'README.md:{b.line}', 'exec'), ns)\n"
        "assert 'get_config' not in ns or isinstance(ns['get_config'](), Sweep)\n"
        for b in python_blocks()
    )
    _run_block(Block("python", code, 0), tmp_path, DRY_RUN)


@pytest.mark.slow
@pytest.mark.parametrize("block", python_blocks(), ids=lambda b: f"README.md:{b.line}")
def test_python_blocks_run(block, tmp_path):
    """Each python block of the README, as it is, in a subprocess (it trains)."""
    _run_block(block, tmp_path)
