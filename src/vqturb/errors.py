"""Errors that the command line turns into one clear line and exit code 2 (no traceback)."""

from __future__ import annotations

import os


class VqturbError(Exception):
    """Base class for errors caused by the user's input or setup, not by a bug in vqturb."""


class InputError(VqturbError):
    """A file, variable or value is not what vqturb needs.

    The message always names the file, the variable (when there is one), what was found and
    what was expected, so a user can fix the right file without reading a traceback.

    Args:
        path: the offending file or folder (``None`` when the problem is not tied to a file).
        what: the variable, field or flag concerned, e.g. ``"variable 'Omega'"``.
        found: what vqturb found.
        expected: what it needed instead.
    """

    def __init__(
        self,
        path: str | os.PathLike | None,
        what: str | None,
        found: str,
        expected: str | None = None,
    ):
        self.path = None if path is None else os.fspath(path)
        self.what = what
        self.found = found
        self.expected = expected
        parts = []
        if self.path is not None:
            parts.append(f"{self.path}:")
        if what:
            parts.append(f"{what}:")
        parts.append(found)
        msg = " ".join(parts)
        if expected:
            msg += f" (expected {expected})"
        super().__init__(msg)
