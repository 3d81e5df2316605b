"""Self-describing checkpoints: one JSON header line, then ``eqx.tree_serialise_leaves``.

File layout (format version 1)::

    b"VQTURB-CKPT\\n"                       magic line
    <one line of JSON>\\n                   header: format_version, kind, config, meta, vqturb_version
    <eqx.tree_serialise_leaves payload>     the array leaves, in tree order

Loading needs no model flags: the header's ``kind`` selects a builder (registered with
:func:`register_kind`) that rebuilds the skeleton from ``config`` with ``eqx.filter_eval_shape`` (no
parameter initialisation), then the leaves are read into it. No pickle anywhere.

Training state (optimiser state, step, RNG key) is a second file in the same format with
``kind="state"``, saved beside the model. Every write is atomic.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx

from vqturb import __version__
from vqturb.errors import InputError
from vqturb.utils.fileio import atomic_open, file_sha256

MAGIC = b"VQTURB-CKPT\n"
FORMAT_VERSION = 1

# kind -> builder(config dict) -> module, or a "module:function" string imported on first use.
_BUILDERS: dict[str, Callable[[dict], Any] | str] = {
    "vqvae": "vqturb.training.checkpoint:_build_vqvae",
    "nsp": "vqturb.models.nsp:build_from_dict",
}


def register_kind(kind: str, builder: Callable[[dict], Any] | str) -> None:
    """Tell the loader how to rebuild a module of ``kind`` from its header's config dict.

    ``builder`` may be a callable or a ``"module:function"`` string resolved lazily.
    """
    _BUILDERS[kind] = builder


def _resolve_builder(kind: str, path: Path) -> Callable[[dict], Any]:
    if kind not in _BUILDERS:
        known = ", ".join(sorted(_BUILDERS))
        raise InputError(
            path, "checkpoint header 'kind'", f"unknown kind {kind!r}", f"one of {known}"
        )
    b = _BUILDERS[kind]
    if isinstance(b, str):
        mod, fn = b.split(":")
        b = getattr(importlib.import_module(mod), fn)
        _BUILDERS[kind] = b
    return b


def _build_vqvae(config: dict) -> Any:
    import jax.random as jr

    from vqturb.models import VQVAEConfig, build_model

    return build_model(VQVAEConfig.from_dict(config), key=jr.PRNGKey(0))


def _write(path: str | os.PathLike, header: dict, tree: Any) -> None:
    header_line = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    if b"\n" in header_line:  # json.dumps escapes newlines inside strings; guard anyway
        raise ValueError("checkpoint header must be one line")
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, tree)
    with atomic_open(path, "wb") as f:
        f.write(MAGIC)
        f.write(header_line + b"\n")
        f.write(buf.getvalue())


def read_header(path: str | os.PathLike) -> dict:
    """Read only the JSON header of a checkpoint (cheap: no arrays are loaded)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, "no such checkpoint file", "a .eqx file written by vqturb")
    with open(path, "rb") as f:
        magic = f.read(len(MAGIC))
        if magic != MAGIC:
            raise InputError(
                path,
                "checkpoint",
                f"starts with {magic[:16]!r}",
                "a vqturb checkpoint (VQTURB-CKPT)",
            )
        line = f.readline()
    try:
        header = json.loads(line)
    except json.JSONDecodeError as e:
        raise InputError(
            path, "checkpoint header", f"unreadable JSON ({e})", "one JSON line"
        ) from None
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise InputError(
            path, "checkpoint header 'format_version'", f"{version!r}", f"{FORMAT_VERSION}"
        )
    return header


def save_model(
    path: str | os.PathLike,
    model: Any,
    *,
    kind: str,
    config: dict,
    meta: dict | None = None,
) -> None:
    """Write ``model`` with a header that lets :func:`load_model` rebuild it without flags.

    Args:
        path: destination ``.eqx`` file (written atomically).
        model: an Equinox module (any PyTree whose skeleton the ``kind`` builder recreates).
        kind: registered kind, e.g. ``"vqvae"`` or ``"nsp"``.
        config: JSON-safe dict the builder takes (``VQVAEConfig.to_dict()``, ...).
        meta: JSON-safe extras: normalisation statistics, step, data description, ...
    """
    header = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "config": config,
        "meta": meta or {},
        "vqturb_version": __version__,
    }
    _write(path, header, model)


def load_model(path: str | os.PathLike, kind: str | None = None) -> tuple[Any, dict]:
    """Load a checkpoint written by :func:`save_model`; returns ``(model, header)``.

    Args:
        path: the ``.eqx`` file.
        kind: if given, the checkpoint must be of this kind (a clear error otherwise).
    """
    path = Path(path)
    header = read_header(path)
    if kind is not None and header.get("kind") != kind:
        raise InputError(
            path, "checkpoint header 'kind'", f"{header.get('kind')!r}", f"a {kind!r} checkpoint"
        )
    builder = _resolve_builder(header["kind"], path)
    skeleton = eqx.filter_eval_shape(builder, header["config"])
    with open(path, "rb") as f:
        f.read(len(MAGIC))
        f.readline()
        try:
            model = eqx.tree_deserialise_leaves(f, skeleton)
        except Exception as e:  # truncated file, or config that does not match the leaves
            raise InputError(
                path,
                "checkpoint leaves",
                f"cannot be read into the model its header describes ({e})",
                "an intact checkpoint written by this version of vqturb",
            ) from None
    return model, header


def save_state(path: str | os.PathLike, tree: Any, meta: dict | None = None) -> None:
    """Save training state (optimiser state, step, RNG key, ...) atomically, kind ``"state"``."""
    header = {
        "format_version": FORMAT_VERSION,
        "kind": "state",
        "config": {},
        "meta": meta or {},
        "vqturb_version": __version__,
    }
    _write(path, header, tree)


def load_state(path: str | os.PathLike, like: Any) -> tuple[Any, dict]:
    """Load state saved by :func:`save_state` into a PyTree shaped like ``like``."""
    path = Path(path)
    header = read_header(path)
    if header.get("kind") != "state":
        raise InputError(path, "checkpoint header 'kind'", f"{header.get('kind')!r}", "'state'")
    with open(path, "rb") as f:
        f.read(len(MAGIC))
        f.readline()
        try:
            tree = eqx.tree_deserialise_leaves(f, like)
        except Exception as e:
            raise InputError(
                path,
                "training state",
                f"does not match the run being resumed ({e})",
                "state saved by the same model and optimiser configuration",
            ) from None
    return tree, header


_STEP_RE = re.compile(r"^ckpt_(\d+)\.eqx$")


def checkpoint_paths(run_dir: str | os.PathLike, step: int) -> tuple[Path, Path]:
    """The model and state files of ``step`` in ``run_dir``."""
    run_dir = Path(run_dir)
    return run_dir / f"ckpt_{step:09d}.eqx", run_dir / f"state_{step:09d}.eqx"


def list_checkpoints(run_dir: str | os.PathLike) -> list[int]:
    """Steps that have both a model and a state file in ``run_dir``, ascending."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    steps = []
    for p in run_dir.iterdir():
        m = _STEP_RE.match(p.name)
        if m and checkpoint_paths(run_dir, int(m.group(1)))[1].is_file():
            steps.append(int(m.group(1)))
    return sorted(steps)


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint (model + state) in ``run_dir``, or ``None``."""
    steps = list_checkpoints(run_dir)
    return checkpoint_paths(run_dir, steps[-1])[0] if steps else None


def prune_checkpoints(run_dir: str | os.PathLike, keep: int) -> None:
    """Delete all but the newest ``keep`` step checkpoints (``final.eqx`` is never touched)."""
    for step in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        for p in checkpoint_paths(run_dir, step):
            p.unlink(missing_ok=True)


def checkpoint_hash(path: str | os.PathLike) -> str:
    """SHA-256 of a checkpoint file; tokens and codec files record it to detect mismatches."""
    return file_sha256(path)
