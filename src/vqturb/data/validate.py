"""Validation shared by every reader: a field is a real, finite, non-empty 2-D array.

Every reader validates what it returns and raises :class:`vqturb.errors.InputError` naming the file,
the variable, what was found and what was expected, so a bad file in a folder of thousands is found
by name, not by a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from vqturb.errors import InputError

EXPECTED_FIELD = "a real numeric 2-D array (H, W), float32 or float64"


def var_label(var: str) -> str:
    return f"variable '{var}'"


def shape_str(shape: tuple[int, ...]) -> str:
    return "x".join(str(int(s)) for s in shape) if shape else "scalar"


def short_error(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def non_numeric(path: Path | str, var: str, found: str) -> InputError:
    return InputError(path, var_label(var), f"non-numeric content ({found})", EXPECTED_FIELD)


def check_shape(path: Path | str, what: str, shape: tuple[int, ...]) -> None:
    if len(shape) != 2:
        raise InputError(
            path, what, f"{len(shape)} dimensions (shape {shape_str(shape)})", EXPECTED_FIELD
        )
    if min(shape) == 0:
        raise InputError(path, what, f"empty array (shape {shape_str(shape)})", EXPECTED_FIELD)


# Largest magnitude a field may hold: squares (energies, L2 norms) of larger float32 values overflow
# (float32's largest value is 3.4e38).
MAX_MAGNITUDE = 1e19


def check_values(a: np.ndarray, path: str | os.PathLike, what: str) -> np.ndarray:
    """Check an array holds real finite numbers; return it as float32/float64.

    Integer arrays are converted to float64 (MATLAB's ``double``); booleans, strings, objects
    and complex numbers are refused.

    Raises:
        InputError: naming ``path`` and ``what`` with the count of NaN / Inf values, or the type.
    """
    if a.dtype.kind == "c":
        raise InputError(path, what, f"complex values ({a.dtype})", EXPECTED_FIELD)
    if a.dtype.kind == "b":
        raise InputError(path, what, "non-numeric content (logical/boolean)", EXPECTED_FIELD)
    if a.dtype.kind not in "fiu":
        kind = "struct" if a.dtype.names else str(a.dtype)
        raise InputError(path, what, f"non-numeric content ({kind})", EXPECTED_FIELD)
    if a.dtype.kind in "iu":
        a = a.astype(np.float64)
    elif a.dtype not in (np.float32, np.float64):  # float16 / longdouble
        a = a.astype(np.float64)
    finite = np.isfinite(a)
    if not finite.all():
        n_nan = int(np.isnan(a).sum())
        n_inf = int(a.size - finite.sum()) - n_nan
        raise InputError(
            path, what, f"{n_nan} NaN and {n_inf} Inf values out of {a.size}", "finite values"
        )
    big = float(np.max(np.abs(a))) if a.size else 0.0
    if big >= MAX_MAGNITUDE:
        raise InputError(
            path, what, f"values up to {big:.3g} in magnitude",
            f"|values| < {MAX_MAGNITUDE:.0e}: their squares overflow float32, which training and "
            "the error metrics use (rescale the data, e.g. to SI or per-unit values)",
        )  # fmt: skip
    return a
