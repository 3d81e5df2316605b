"""JAX's persistent compilation cache, on by default for every `vqturb` command.

A command compiles its jitted functions once; the executables are written to a folder on disk, and
the next command that compiles the same function (same shapes, same flags, same JAX and device)
loads the executable instead of compiling again. The folder is least-recently-used bounded.

Settings, in order of precedence:

* ``vqturb --no_compile_cache <command>`` (sets ``VQTURB_COMPILE_CACHE=0`` for the process and its
  children);
* ``VQTURB_COMPILE_CACHE``: ``0`` / ``off`` / ``false`` / ``no`` turns the cache off; any other
  non-empty value other than ``1`` / ``on`` / ``true`` / ``yes`` is the cache folder;
* otherwise ``$XDG_CACHE_HOME/vqturb/jax`` (``~/.cache/vqturb/jax`` when ``XDG_CACHE_HOME`` is
  unset);
* ``VQTURB_COMPILE_CACHE_MAX_MB``: the folder's size bound in MiB (default
  :data:`DEFAULT_MAX_MB`); JAX evicts the least recently used entries beyond it.

The settings are JAX's own options (``jax_compilation_cache_dir``,
``jax_compilation_cache_max_size``, ``jax_persistent_cache_min_compile_time_secs``,
``jax_enable_compilation_cache``), given as environment variables, which JAX reads when it is
imported, and through ``jax.config`` when JAX is already imported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from vqturb.errors import InputError

ENV = "VQTURB_COMPILE_CACHE"
ENV_MAX_MB = "VQTURB_COMPILE_CACHE_MAX_MB"
DEFAULT_MAX_MB = 2048
# Compilations shorter than this are not written (JAX's default is 1 s). Many of a command's
# compilations take 0.1–1 s each on a CPU; together they are most of a small command's start-up.
MIN_COMPILE_TIME_S = 0.1

_OFF = {"0", "off", "false", "no"}
_ON = {"", "1", "on", "true", "yes"}


def default_cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CACHE_HOME/vqturb/jax``, or ``~/.cache/vqturb/jax`` when XDG_CACHE_HOME is unset."""
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vqturb" / "jax"


def compile_cache_dir(environ: Mapping[str, str] = os.environ) -> Path | None:
    """The cache folder the environment asks for, or None when the cache is turned off."""
    value = environ.get(ENV, "").strip()
    if value.lower() in _OFF:
        return None
    if value.lower() in _ON:
        return default_cache_dir(environ)
    return Path(value).expanduser()


def compile_cache_settings(
    environ: Mapping[str, str] = os.environ,
) -> dict[str, bool | str | int | float]:
    """JAX options (name -> value) for this environment."""
    path = compile_cache_dir(environ)
    if path is None:
        return {"jax_enable_compilation_cache": False}
    text = environ.get(ENV_MAX_MB, str(DEFAULT_MAX_MB)).strip()
    try:
        max_mb = int(text)
    except ValueError:
        max_mb = -1
    if max_mb < 1:
        raise InputError(None, ENV_MAX_MB, repr(text), "a positive integer (MiB)")
    return {
        "jax_enable_compilation_cache": True,
        "jax_compilation_cache_dir": str(path),
        "jax_compilation_cache_max_size": max_mb * 2**20,
        "jax_persistent_cache_min_compile_time_secs": MIN_COMPILE_TIME_S,
    }


def configure_compile_cache(environ: MutableMapping[str, str] = os.environ) -> Path | None:
    """Apply :func:`compile_cache_settings` before the first compilation; returns the folder.

    The options go into ``environ`` (JAX reads them at import; child processes inherit them) and,
    when JAX is already imported, into ``jax.config``. A folder that cannot be created turns the
    cache off with a one-line warning on stderr.
    """
    settings = compile_cache_settings(environ)
    path = compile_cache_dir(environ)
    if path is not None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            print(f"vqturb: compilation cache off: cannot create {path}: {e}", file=sys.stderr)
            settings, path = {"jax_enable_compilation_cache": False}, None
    environ.update({name.upper(): _env_text(value) for name, value in settings.items()})
    jax = sys.modules.get("jax")
    if jax is not None:  # imported already: it has read its environment
        for name, value in settings.items():
            jax.config.update(name, value)
    return path


def _env_text(value: bool | str | int | float) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
