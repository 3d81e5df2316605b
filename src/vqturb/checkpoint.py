"""Self-describing checkpoints: one JSON header line, then ``eqx.tree_serialise_leaves``.

File layout (format version 2; ``docs/formats.md``, "Checkpoint")::

    b"VQTURB-CKPT\\n"                       magic line
    <one line of JSON>\\n                   header: format_version, kind, config, meta,
                                           vqturb_version, payload_sha256
    <eqx.tree_serialise_leaves payload>     the array leaves, in tree order

``payload_sha256`` is the SHA-256 of the payload bytes; loading verifies it before reading a leaf,
so a flipped or missing byte is reported as such instead of as wrong numbers. Version-1 files (no
checksum) still load, unverified.

Loading needs no model flags: the header's ``kind`` selects a builder (registered with
:func:`register_kind`) that rebuilds the skeleton from ``config`` with ``eqx.filter_eval_shape`` (no
parameter initialisation), then the leaves are read into it. No pickle anywhere.

Training state (optimiser state, step, RNG key) is a second file in the same format with
``kind="state"``, saved beside the model. Every write is atomic.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import equinox as eqx

from vqturb import __version__
from vqturb.errors import InputError
from vqturb.models import nsp, vqvae
from vqturb.utils.fileio import atomic_open

MAGIC = b"VQTURB-CKPT\n"
FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)  # 1: the same layout without payload_sha256

Builder = Callable[[dict], Any]  # header config dict -> module skeleton (eval_shape'd on load)
_BUILDERS: dict[str, Builder] = {}


def register_kind(kind: str, builder: Builder) -> None:
    """Tell the loader how to rebuild a module of ``kind`` from its header's config dict."""
    if kind == "state":
        raise ValueError("'state' is the kind of training-state files, not of a model")
    _BUILDERS[kind] = builder


@contextlib.contextmanager
def registered_kind(kind: str, builder: Builder) -> Iterator[None]:
    """Register ``builder`` for ``kind`` inside the block only (tests and stand-in models); the
    previous builder of ``kind``, if any, is restored on exit."""
    previous = _BUILDERS.get(kind)
    register_kind(kind, builder)
    try:
        yield
    finally:
        if previous is None:
            del _BUILDERS[kind]
        else:
            _BUILDERS[kind] = previous


# The built-in kinds.
register_kind("vqvae", vqvae.build_from_dict)
register_kind("nsp", nsp.build_from_dict)


def _builder(kind: str, path: Path) -> Builder:
    if kind not in _BUILDERS:
        known = ", ".join(sorted(_BUILDERS))
        raise InputError(
            path, "checkpoint header 'kind'", f"unknown kind {kind!r}", f"one of {known}"
        )
    return _BUILDERS[kind]


def _write(path: str | os.PathLike, header: dict, tree: Any) -> None:
    buf = io.BytesIO()
    eqx.tree_serialise_leaves(buf, tree)
    payload = buf.getvalue()
    header = {**header, "payload_sha256": hashlib.sha256(payload).hexdigest()}
    header_line = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    if b"\n" in header_line:  # json.dumps escapes newlines inside strings; guard anyway
        raise ValueError("checkpoint header must be one line")
    with atomic_open(path, "wb") as f:
        f.write(MAGIC)
        f.write(header_line + b"\n")
        f.write(payload)


def _payload(path: Path, header: dict) -> io.BytesIO:
    """The leaves' bytes of ``path``, checked against the header's ``payload_sha256``."""
    with open(path, "rb") as f:
        f.read(len(MAGIC))
        f.readline()
        payload = f.read()
    expected = header.get("payload_sha256")
    if header["format_version"] >= 2:
        found = hashlib.sha256(payload).hexdigest()
        if found != expected:
            raise InputError(
                path,
                "checkpoint payload",
                f"SHA-256 {found[:12]}... of {len(payload)} bytes, header says "
                f"{str(expected)[:12]}...",
                "an intact checkpoint (this file is corrupted or truncated)",
            )
    return io.BytesIO(payload)


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
    if version not in _READABLE_VERSIONS:
        raise InputError(
            path,
            "checkpoint header 'format_version'",
            f"{version!r}",
            " or ".join(map(str, _READABLE_VERSIONS)),
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
    builder = _builder(header["kind"], path)
    skeleton = eqx.filter_eval_shape(builder, header["config"])
    payload = _payload(path, header)
    try:
        model = eqx.tree_deserialise_leaves(payload, skeleton)
    except Exception as e:  # config that does not match the leaves (or an old truncated file)
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
    payload = _payload(path, header)
    try:
        tree = eqx.tree_deserialise_leaves(payload, like)
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
