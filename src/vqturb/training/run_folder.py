"""One run per run folder: an exclusive lock for the run's lifetime, and no silent reuse of a folder
that holds another run.

A run folder (``--checkpoint_dir``) holds one training run: ``config.json``, ``metrics.jsonl``,
``ckpt_<step>.eqx`` + ``state_<step>.eqx``, ``best.eqx``, ``final.eqx`` (:mod:`vqturb.training.loop`).
Before a run writes anything there, :func:`claim_run_folder`

* takes an exclusive ``flock`` on ``<folder>/.lock`` (released by the kernel when the process ends,
  however it ends, so the lock of a killed run is never stale) and writes the holder's pid, host
  and start time into it, for the message a second run gets;
* removes the hidden temporary files an interrupted atomic write left (``.ckpt_*.tmp`` …);
* refuses a folder that holds another run's files unless the run resumes it (``--resume``) or
  replaces it (``--overwrite``, which deletes exactly those files first).

:func:`truncate_metrics` keeps ``metrics.jsonl`` consistent on resume: the records after the
resumed checkpoint's step (written before the interruption, and about to be written again) go.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from vqturb.errors import InputError
from vqturb.utils.fileio import atomic_write_text

LOCK_NAME = ".lock"
# The files of a run (what --overwrite deletes and what makes a folder "hold a run").
RUN_FILES: tuple[str, ...] = (
    "config.json",
    "metrics.jsonl",
    "final.eqx",
    "best.eqx",
    "ckpt_*.eqx",
    "state_*.eqx",
)


class RunFolderLock:
    """The held lock of a run folder; :meth:`release` (or the process ending) frees it."""

    def __init__(self, path: Path, fd: int):
        self.path, self._fd = path, fd

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> RunFolderLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def run_files(run_dir: Path) -> list[Path]:
    """The run files present in ``run_dir`` (:data:`RUN_FILES`)."""
    out: list[Path] = []
    for pattern in RUN_FILES:
        out.extend(sorted(run_dir.glob(pattern)))
    return out


def _lock(run_dir: Path) -> RunFolderLock:
    path = run_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        except (ValueError, OSError):
            holder = {}
        os.close(fd)
        who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"
        since = holder.get("started")
        raise InputError(
            run_dir, "--checkpoint_dir",
            f"in use by another run ({who}" + (f", started {since})" if since else ")"),
            "one run per folder: wait for that run to end or choose another --checkpoint_dir",
        ) from None  # fmt: skip
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode(), 0)
    return RunFolderLock(path, fd)


def _remove_temporaries(run_dir: Path) -> list[Path]:
    """Hidden files of interrupted atomic writes (``.<name>.<random>.tmp`` / ``.eqx``)."""
    gone = []
    for p in run_dir.iterdir():
        if p.name.startswith(".") and p.name != LOCK_NAME and p.suffix in (".tmp", ".eqx"):
            if p.is_file():
                p.unlink()
                gone.append(p)
    return gone


def claim_run_folder(run_dir: str | os.PathLike, *, resume: bool, overwrite: bool) -> RunFolderLock:
    """Lock ``run_dir`` for this run and check it may be used (module docstring).

    Args:
        resume: the run continues the folder's run (``--resume``): its files stay.
        overwrite: the folder's run files are deleted (``--overwrite``).

    Raises:
        InputError: the folder is locked by a live run, or holds another run's files while
            neither ``resume`` nor ``overwrite`` is given.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise InputError(run_dir, "--checkpoint_dir", "is a file", "a folder for the run")
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = _lock(run_dir)
    try:
        _remove_temporaries(run_dir)
        existing = run_files(run_dir)
        if existing and not resume:
            if not overwrite:
                names = ", ".join(p.name for p in existing[:4])
                more = f" and {len(existing) - 4} more" if len(existing) > 4 else ""
                raise InputError(
                    run_dir, "--checkpoint_dir", f"holds another run ({names}{more})",
                    "a new or empty folder, --resume auto to continue that run, or --overwrite "
                    "to delete its files and start again",
                )  # fmt: skip
            for p in existing:
                p.unlink()
    except BaseException:
        lock.release()
        raise
    return lock


def truncate_metrics(path: str | os.PathLike, step: int) -> int:
    """Drop the records of ``metrics.jsonl`` after ``step`` (and a torn last line); returns how
    many records were dropped. The file is rewritten atomically."""
    path = Path(path)
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            dropped += 1
            continue
        if int(record.get("step", 0)) <= step:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        atomic_write_text(path, "".join(line + "\n" for line in kept))
    return dropped
