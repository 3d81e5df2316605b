"""Atomic writes: write to a temporary file in the same folder, fsync, then rename.

A reader (or a crash) never sees a half-written file: either the old content or the new one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish(tmp: str, path: Path) -> None:
    """Give the temporary file the permissions a plain ``open`` would have (mkstemp makes it
    0600), then rename it over ``path``."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on success it replaces ``path`` atomically.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _publish(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path for libraries that insist on opening files themselves (h5py,
    scipy.io.savemat, imageio); it is renamed to ``path`` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        _publish(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def staging_folder(out: str | os.PathLike) -> Path:
    """A fresh hidden folder next to ``out`` (same file system) to write a multi-file output
    into before :func:`publish_folder`; a stale one from an interrupted run is removed first."""
    out = Path(out)
    stage = out.parent / f".{out.name}.partial"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    return stage


def publish_folder(stage: str | os.PathLike, out: str | os.PathLike) -> None:
    """Move every entry of a complete ``stage`` folder into ``out`` (replacing same-named
    entries) and remove ``stage``: until this runs, ``out`` shows none of the new output, so an
    interrupted command (a full disk, a kill) never leaves a partial result that looks whole."""
    stage, out = Path(stage), Path(out)
    if not out.exists():
        os.replace(stage, out)
        return
    for entry in sorted(stage.iterdir()):
        target = out / entry.name
        if target.is_dir() and entry.is_dir():
            publish_folder(entry, target)
            continue
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(entry, target)
    stage.rmdir()


@contextlib.contextmanager
def staged_output(out: str | os.PathLike, flag: str, expected: str) -> Iterator[Path]:
    """Yield a :func:`staging_folder` for ``out``; published into ``out`` when the block ends
    normally, removed otherwise (a full disk gets its space back), an ``OSError`` then reported as
    an :class:`~vqturb.errors.InputError` naming ``out`` and ``flag``."""
    from vqturb.errors import InputError

    stage = staging_folder(out)
    try:
        yield stage
        publish_folder(stage, out)
    except BaseException as e:
        shutil.rmtree(stage, ignore_errors=True)
        if isinstance(e, OSError):
            raise InputError(
                out, flag, f"could not be written ({e.strerror or e}); nothing was published",
                expected,
            ) from None  # fmt: skip
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def atomic_save_npz(path: str | os.PathLike, compressed: bool = True, **arrays: Any) -> None:
    """``np.savez`` (compressed by default) through a temporary file."""
    save = np.savez_compressed if compressed else np.savez
    with atomic_open(path, "wb") as f:
        save(f, **arrays)


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _json_default(o: Any) -> Any:
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
