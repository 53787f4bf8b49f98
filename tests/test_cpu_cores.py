"""``engine.use_cpu_cores``: one JAX device per CPU core, set before JAX starts (subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = "from lrbench import engine; n = engine.use_cpu_cores(); import jax; print(n, jax.device_count())"


def _probe(**env) -> tuple[int, int]:
    clean = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "LRBENCH_CPU_DEVICES")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return int(out[0]), int(out[1])


@pytest.mark.slow
def test_one_device_per_core_by_default():
    assert _probe() == (os.cpu_count(), os.cpu_count())


def test_environment_sets_the_count():
    assert _probe(LRBENCH_CPU_DEVICES="3") == (3, 3)


@pytest.mark.slow
def test_explicit_xla_flags_win():
    assert _probe(
        XLA_FLAGS="--xla_force_host_platform_device_count=4", LRBENCH_CPU_DEVICES="3"
    ) == (0, 4)


@pytest.mark.slow
def test_too_late_changes_nothing():
    code = "import jax.numpy as jnp; jnp.zeros(1); from lrbench import engine; print(engine.use_cpu_cores())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"


@pytest.mark.parametrize("bad", ["0", "two", "-1"])
def test_bad_count_names_the_variable(bad, monkeypatch):
    from lrbench import engine
    from lrbench.errors import ConfigError

    monkeypatch.setenv("LRBENCH_CPU_DEVICES", bad)
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    with pytest.raises(ConfigError) as err:
        engine.use_cpu_cores()
    assert err.value.field == "LRBENCH_CPU_DEVICES"
