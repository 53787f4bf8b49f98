"""The persistent compilation cache: a second process finds every program of a sweep on disk,
also when only learning rates, schedule parameters or seeds changed; ``off`` writes nothing;
where the folder is chosen; the test session never writes into the user's cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lrbench import cli, compile_cache

# One device: the programs of every process below are the same whatever the host's cores.
ENV = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
       "JAX_PLATFORMS": "cpu"}  # fmt: skip
SWEEP = ["--set", "epochs=2", "--set", "hidden=4", "--set", "schedule=step", "--quiet"]


def _run(out: Path, cache: str, *settings: str, flag: str | None = None) -> dict:
    """``lrbench run blobs_lr`` in a new process; returns its meta.json."""
    cmd = [sys.executable, "-m", "lrbench", "run", "blobs_lr", *SWEEP, *settings, "--out", str(out)]
    if flag is not None:
        cmd += ["--compile-cache", flag]
    env = {**ENV, "LRBENCH_COMPILE_CACHE": cache}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "meta.json").read_text())


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    cache = root / "jax"
    grid = ["--set", "lr=0.1,0.01", "--set", "seeds=0,1", "--set", "gamma=0.5"]
    first = _run(root / "first", str(cache), *grid)
    again = _run(root / "again", str(cache), *grid)
    # new values of every traced axis: rates, a schedule's parameters, seeds (same counts)
    other = ["--set", "lr=0.3,0.003", "--set", "seeds=5,9", "--set", "gamma=0.2",
             "--set", "step_size=3"]  # fmt: skip
    values = _run(root / "values", str(cache), *other)
    return cache, first, again, values


@pytest.mark.slow
def test_a_first_run_fills_the_cache(three_runs):
    cache, first, _, _ = three_runs
    assert first["compile_cache"] == str(cache)
    assert first["compile_cache_hits"] == 0 and first["compile_cache_misses"] >= 1
    assert len(list(cache.iterdir())) >= first["compile_cache_misses"]


@pytest.mark.slow
def test_a_second_identical_run_compiles_nothing(three_runs):
    _, first, again, _ = three_runs
    assert again["compile_cache_misses"] == 0
    assert again["compile_cache_hits"] == first["compile_cache_misses"]
    # every program came from the cache (the counts above); its time saved is the bench's to
    # show, not a timed assertion (under a loaded machine it failed by chance)


@pytest.mark.slow
def test_new_rates_schedule_parameters_and_seeds_compile_nothing(three_runs):
    _, first, _, values = three_runs
    assert values["config"]["lrs"] == [0.3, 0.003] and values["config"]["seeds"] == [5, 9]
    assert values["compile_cache_misses"] == 0
    assert values["compile_cache_hits"] == first["compile_cache_misses"]


@pytest.mark.slow
def test_off_writes_nothing(tmp_path):
    cache = tmp_path / "jax"
    cache.mkdir()
    meta = _run(tmp_path / "out", str(cache), "--set", "lr=0.1", "--seeds", "1", flag="off")
    assert meta["compile_cache"] == "off"
    assert meta["compile_cache_hits"] == meta["compile_cache_misses"] == 0
    assert list(cache.iterdir()) == []  # the flag won over the environment


@pytest.mark.parametrize(
    ("setting", "env", "expected"),
    [
        (None, {}, "XDG/lrbench/jax"),
        (None, {"XDG_CACHE_HOME": ""}, "HOME/.cache/lrbench/jax"),
        (None, {"LRBENCH_COMPILE_CACHE": "ENVDIR"}, "ENVDIR"),
        (None, {"LRBENCH_COMPILE_CACHE": "off"}, None),
        (None, {"LRBENCH_COMPILE_CACHE": "0"}, None),
        (None, {"LRBENCH_COMPILE_CACHE": " OFF "}, None),
        ("FLAGDIR", {"LRBENCH_COMPILE_CACHE": "ENVDIR"}, "FLAGDIR"),
        ("off", {"LRBENCH_COMPILE_CACHE": "ENVDIR"}, None),
    ],
)
def test_where_the_cache_lives(setting, env, expected, tmp_path, monkeypatch):
    def place(text):
        for name in ("XDG", "HOME", "ENVDIR", "FLAGDIR"):
            text = text.replace(name, str(tmp_path / name.lower()))
        return text

    monkeypatch.delenv("LRBENCH_COMPILE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", place("XDG"))
    monkeypatch.setenv("HOME", place("HOME"))
    for key, value in env.items():
        monkeypatch.setenv(key, place(value))
    folder = compile_cache.resolve(None if setting is None else place(setting))
    assert folder == (None if expected is None else Path(place(expected)))
    assert list(tmp_path.iterdir()) == []  # resolving creates nothing


def test_a_folder_given_to_jax_itself_is_kept(tmp_path, monkeypatch):
    import jax

    monkeypatch.delenv("LRBENCH_COMPILE_CACHE")
    previous = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "mine"))
    try:
        assert compile_cache.resolve() == tmp_path / "mine"
        assert compile_cache.resolve("off") is None  # lrbench's own setting still wins
    finally:
        jax.config.update("jax_compilation_cache_dir", previous)


def test_the_test_session_has_its_own_cache():
    folder = compile_cache.resolve()
    assert folder is not None and folder.is_dir()
    assert Path.home() / ".cache" not in folder.parents
    assert (
        os.environ.get("XDG_CACHE_HOME") is None
        or Path(os.environ["XDG_CACHE_HOME"]) not in folder.parents
    )


def test_a_folder_that_cannot_be_made_is_one_line_exit_2(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    out = tmp_path / "o"
    argv = ["run", "blobs_lr", "--quiet", "--out", str(out), "--compile-cache", str(blocker / "x")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lrbench: error: --compile-cache: ")
    assert "writable folder, or off" in err[0]
    assert not out.exists()


def test_a_bad_environment_folder_names_the_variable(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("LRBENCH_COMPILE_CACHE", str(blocker))
    # A process configures its cache once (JAX opens it once): start from a fresh process's
    # state, whatever the tests before this one configured.
    monkeypatch.setattr(compile_cache, "_state", {})
    argv = ["run", "blobs_lr", "--quiet", "--out", str(tmp_path / "o")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lrbench: error: LRBENCH_COMPILE_CACHE: ")


def test_the_compile_counter_sees_each_new_program_once(compile_counter):
    import jax
    import jax.numpy as jnp

    def f(x, lr):
        return x - lr * jnp.tanh(x)

    step = jax.jit(f)
    x, shorter, shortest = jnp.arange(5.0), jnp.arange(3.0), jnp.arange(2.0)
    with compile_counter.counting():
        step(x, 0.1).block_until_ready()
        assert compile_counter.count == 1
        step(x, 0.2).block_until_ready()  # a new value of a traced argument: same program
        step(shorter, 0.1).block_until_ready()  # a new shape: a new program
    assert compile_counter.count == 2
    step(shortest, 0.1).block_until_ready()  # outside ``counting()``: not counted
    assert compile_counter.count == 2


@pytest.mark.parametrize("command", ["run", "check", "lr-find"])
def test_the_commands_that_train_take_the_flag(command):
    parser = cli.build_parser()
    assert parser.parse_args([command, "--compile-cache", "off"]).compile_cache == "off"
    assert parser.parse_args([command]).compile_cache is None  # then the environment decides
