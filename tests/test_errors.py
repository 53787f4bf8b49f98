"""The library names bad input by its field (keyword argument or config field); the command
line prints that field as its flag, in one line with exit code 2."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lrbench import cli, runner
from lrbench.errors import ConfigError
from lrbench.models import MLPConfig
from lrbench.sweep import Sweep, expand

LIBRARY = Path(__file__).resolve().parents[1] / "lrbench"


def _sweep() -> Sweep:
    return Sweep(experiment="test", dataset="blobs", model=MLPConfig(hidden=(4,)), epochs=2,
                 batch_size=64, lrs=(0.1,), seeds=(0,))  # fmt: skip


def _raises(field, call, *args, **kwargs) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        call(*args, **kwargs)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.field == field
    assert str(err) == f"{field}: {err.message}"
    assert "--" not in str(err), str(err)  # no flag: the library does not know the CLI
    return err


def test_run_names_its_keyword_arguments(tmp_path):
    sweep = _sweep()
    assert "output folder" in _raises("resume", runner.run, sweep, resume=True).message
    _raises("out", runner.run, sweep, process_index=0, process_count=2)
    assert (
        "nothing to merge" in _raises("merge", runner.run, sweep, out=tmp_path, merge=True).message
    )
    _raises("process_count", runner.run, sweep, out=tmp_path, process_count=0)
    _raises("process_index", runner.run, sweep, out=tmp_path, process_index=2, process_count=2)
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_shard_and_memory_name_their_fields():
    runs = expand(_sweep())
    assert "[0, 1] (2 processes)" in _raises("process_index", runner.shard, runs, 2, 2).message
    _raises("process_index", runner.shard, runs, -1, 2)
    _raises("process_count", runner.shard, runs, 0, 0)
    assert "not a size" in _raises("max_memory", runner.parse_memory, "lots").message


def test_resume_of_another_configuration_names_resume(tmp_path):
    import dataclasses

    store = runner.ChunkStore(tmp_path / "p")
    store.open(_sweep(), 4, fresh=True)
    other = dataclasses.replace(_sweep(), epochs=3)
    err = _raises("resume", store.open, other, 4, False)
    assert "different configuration" in err.message


def test_no_library_error_names_a_flag():
    """Only the command line speaks in flags: every ``ConfigError`` raised elsewhere in the
    package starts from a field name."""
    offenders = [
        f"{path.relative_to(LIBRARY)}:{n}"
        for path in sorted(LIBRARY.rglob("*.py"))
        if path.name != "cli.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"ConfigError\(\s*f?[\"']--", line)
    ]
    assert offenders == []


@pytest.mark.parametrize(("field", "flag"), sorted(cli.FLAGS.items()))
def test_cli_prints_a_field_as_its_flag(field, flag):
    line = cli.error_line(ConfigError(field, "what is allowed"))
    assert line == f"lrbench: error: {flag}: what is allowed"


def test_cli_keeps_a_set_key_as_it_is():
    assert cli.error_line(ConfigError("lr", "x")) == "lrbench: error: lr: x"


@pytest.mark.parametrize(
    ("argv", "flag", "words"),
    [
        (["--max-memory", "0"], "--max-memory", "must be more than 0 bytes"),
        (["--merge"], "--merge", "nothing to merge"),
    ],
)
def test_library_errors_at_the_cli_name_the_flag(argv, flag, words, tmp_path, capsys):
    out = tmp_path / "o"
    base = ["run", "blobs_lr", "--set", "epochs=1", "--set", "lr=0.1", "--seeds", "1", "--quiet"]
    assert cli.main([*base, "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith(f"lrbench: error: {flag}: ") and words in lines[0]
    assert not out.exists()
