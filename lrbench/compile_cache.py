"""JAX's persistent compilation cache for lrbench's programs, and its hits and misses.

A sweep's programs depend only on its static signature (task, model shape, epochs, batch
size, dtype, optimizer kind, chunk layout); learning rates, schedules, hyperparameters and
seeds are arguments. So a rerun, or a new grid of those values, finds every program already
compiled on disk and spends its compile time reading it back.

Where the cache lives, first match wins:

1. the ``setting`` passed to :func:`configure` (``lrbench run --compile-cache DIR|off``);
2. the environment variable ``LRBENCH_COMPILE_CACHE`` (a folder, or ``off`` / ``0``);
3. a folder already given to JAX itself (``JAX_COMPILATION_CACHE_DIR`` or
   ``jax.config.update("jax_compilation_cache_dir", ...)``);
4. ``$XDG_CACHE_HOME/lrbench/jax``, else ``~/.cache/lrbench/jax``.

JAX opens its cache once per process, at the first compile that consults it, so the folder
must be chosen before then; the command line does so first thing.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import jax

ENV = "LRBENCH_COMPILE_CACHE"
OFF = ("off", "0")

# The events JAX records (jax/_src/compiler.py) for each compile that consults the
# persistent cache, and for each one the cache served. Misses are their difference: JAX's own
# "cache_misses" event is recorded only when the new entry is written, which it skips for a
# program with host callbacks or on a process other than the first.
REQUEST_EVENT = "/jax/compilation_cache/compile_requests_use_cache"
HIT_EVENT = "/jax/compilation_cache/cache_hits"

_counts = {REQUEST_EVENT: 0, HIT_EVENT: 0}
_state: dict = {}  # "folder": the folder configured in this process (None: off)
_listening: list = []  # the counting listener, once registered


def _count(event: str, **kwargs) -> None:
    del kwargs
    if event in _counts:
        _counts[event] += 1


def cache_home() -> Path:
    """lrbench's folder in the user's cache: ``$XDG_CACHE_HOME/lrbench``, else
    ``~/.cache/lrbench`` (the compilation cache and generated data sets live under it)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lrbench"


def default_folder() -> Path:
    """``$XDG_CACHE_HOME/lrbench/jax``, else ``~/.cache/lrbench/jax``."""
    return cache_home() / "jax"


def resolve(setting: str | None = None) -> Path | None:
    """The folder ``setting`` (else ``$LRBENCH_COMPILE_CACHE``, else JAX's own setting, else
    :func:`default_folder`) asks for; ``None`` for ``off`` or ``0``."""
    text = setting if setting is not None else os.environ.get(ENV)
    if text is None or not text.strip():
        jax_folder = jax.config.jax_compilation_cache_dir
        if jax_folder and jax_folder != _state.get("jax_folder"):  # the user's, not ours
            return Path(jax_folder)
        return default_folder()
    if text.strip().lower() in OFF:
        return None
    return Path(text.strip()).expanduser()


def configure(setting: str | None = None) -> Path | None:
    """Points JAX's persistent compilation cache at :func:`resolve` ``(setting)``, or turns it
    off; returns the folder (``None``: off).

    Every program is cached however small or quick to compile (JAX's defaults skip those
    under a second of compile time, which is most of lrbench's). Called again without a
    ``setting``, it keeps what the process already has.

    Raises:
      ConfigError: ``compile_cache`` (or ``LRBENCH_COMPILE_CACHE`` when the folder came from
        there) when the folder cannot be created.
    """
    from lrbench.errors import ConfigError

    if setting is None and "folder" in _state:
        return _state["folder"]
    if not _listening:
        jax.monitoring.register_event_listener(_count)
        _listening.append(_count)
    folder = resolve(setting)
    if folder is None:
        jax.config.update("jax_enable_compilation_cache", False)
    else:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(
                "compile_cache" if setting is not None or ENV not in os.environ else ENV,
                f"{str(folder)!r} cannot be used as a folder ({err.strerror}); "
                f"give a writable folder, or off",
            ) from None
        jax.config.update("jax_enable_compilation_cache", True)
        jax.config.update("jax_compilation_cache_dir", str(folder))
        _state["jax_folder"] = str(folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    _state["folder"] = folder
    return folder


def describe() -> str:
    """The configured folder, ``off``, or ``not configured`` (lrbench has not set it up)."""
    if "folder" not in _state:
        return "not configured"
    return "off" if _state["folder"] is None else str(_state["folder"])


def counts() -> tuple[int, int]:
    """(hits, misses) of the persistent cache in this process so far: a miss is a compile
    that consulted the cache and did not find its program there."""
    hits = _counts[HIT_EVENT]
    return hits, _counts[REQUEST_EVENT] - hits


@contextlib.contextmanager
def counting():
    """Configures the cache (keeping a folder this process already chose) and yields a dict
    that holds, once the block ends, the block's ``compile_cache_hits`` and
    ``compile_cache_misses`` (for a run's timing and ``meta.json``)."""
    configure()
    hits, misses = counts()
    found: dict[str, int] = {}
    try:
        yield found
    finally:
        now_hits, now_misses = counts()
        found.update(compile_cache_hits=now_hits - hits, compile_cache_misses=now_misses - misses)
