"""MATLAB .mat files (v4, v5, v5 compressed, v7.3): version, variables, one 2-D field, its time.

MAT versions (MathWorks, "MAT-File Format", 2024):

- v4 and v5/v7 (optionally zlib-compressed) are read with ``scipy.io.loadmat`` with the stored
  types (``mat_dtype=False``): with ``mat_dtype=True`` scipy casts a complex ``double`` to real,
  dropping the imaginary part with only a warning. MATLAB may store a ``double`` array with a
  narrower integer *storage* type, and stores ``logical`` as uint8, so an integer result is
  resolved with the variable's MATLAB class from the header (rare; the common path is one read,
  :mod:`vqturb.data.mat_v5`).
- v7.3 files are HDF5 files with a 512-byte user block holding the MATLAB header. MATLAB writes
  arrays column-major, so an ``H x W`` matrix appears in HDF5 as ``W x H``: we transpose. The
  ``MATLAB_class`` attribute says what the variable is (``double``, ``single``, ``logical``,
  ``char``, ``cell``, ``struct`` ...).

Every reader validates what it returns (:mod:`vqturb.data.validate`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from vqturb.data.mat_v5 import read_v5
from vqturb.data.validate import (
    EXPECTED_FIELD,
    check_shape,
    check_values,
    non_numeric,
    shape_str,
    short_error,
    var_label,
)
from vqturb.errors import InputError

MAT_SUFFIXES: tuple[str, ...] = (".mat",)
# MATLAB class names (v5 header / v7.3 ``MATLAB_class`` attribute) that hold real numbers.
_NUMERIC_CLASSES: dict[str, str] = {
    "double": "float64",
    "single": "float32",
    "int8": "int8",
    "uint8": "uint8",
    "int16": "int16",
    "uint16": "uint16",
    "int32": "int32",
    "uint32": "uint32",
    "int64": "int64",
    "uint64": "uint64",
}


@dataclass(frozen=True)
class FieldInfo:
    """What a file's header says about one variable, without reading its values."""

    shape: tuple[int, ...]  # shape as MATLAB sees it (rows, columns, ...)
    dtype: str  # numpy dtype name the values load as ("float64", "float32", ...)
    version: str  # MAT version: "4", "5" or "7.3"


def mat_version(path: str | os.PathLike) -> str:
    """The MAT-file version of ``path``: ``"4"``, ``"5"`` (v5/v6/v7) or ``"7.3"`` (HDF5).

    Raises:
        InputError: the file does not exist, is empty, truncated, or not a MAT/HDF5 file.
    """
    from scipy.io.matlab import matfile_version

    path = Path(path)
    if path.is_dir():
        raise InputError(path, None, "a folder, not a file", "a .mat file")
    if not path.is_file():
        raise InputError(path, None, "no such file", "an existing .mat file")
    if path.stat().st_size == 0:
        raise InputError(path, None, "empty file (0 bytes)", "a MAT-file")
    # The common case first, from the 128-byte header alone: a little-endian v5 file ("MATLAB"
    # text, version 0x0100, endian indicator "IM"). Everything else takes the careful path.
    with open(path, "rb") as f:
        head = f.read(128)
    if len(head) == 128 and head[:6] == b"MATLAB" and head[124:128] == b"\x00\x01IM":
        return "5"
    # HDF5 finds its superblock at offset 0, 512, 1024, ...: this covers v7.3 (512-byte MATLAB
    # user block) and plain HDF5 files given a .mat name.
    if h5py.is_hdf5(path):
        return "7.3"
    try:
        with open(path, "rb") as f:
            head = f.read(6)
            f.seek(0)
            major, _minor = matfile_version(f)
    except Exception as e:  # scipy raises MatReadError, ValueError, IndexError, ...
        # v4 files have no text header (scipy recognises them without error): a failure on a file
        # that starts "MATLAB" is a broken MAT-file, anything else is not a MAT-file at all
        found = (
            f"a MAT header but unreadable ({short_error(e)}); truncated?"
            if head == b"MATLAB"
            else f"not a MAT-file (no MATLAB header; starts with {head!r})"
        )
        raise InputError(path, None, found, "MATLAB MAT-file v4, v5 or v7.3") from e
    if major == 0:
        return "4"
    if major == 1:
        return "5"
    if major == 2:  # v7.3 header but no HDF5 superblock after it: truncated
        raise InputError(
            path, None, "MAT v7.3 header without a valid HDF5 body (truncated?)", "MAT v7.3"
        )
    raise InputError(path, None, f"unknown MAT-file version {major}", "MAT v4, v5 or v7.3")


def list_variables(path: str | os.PathLike) -> list[tuple[str, tuple[int, ...], str]]:
    """``(name, shape, MATLAB class)`` for every variable in a MAT-file, from headers only."""
    path = Path(path)
    version = mat_version(path)
    if version == "7.3":
        return _h5_list_variables(path)
    import scipy.io

    try:
        with open(path, "rb") as f:
            return [(n, tuple(int(s) for s in sh), c) for n, sh, c in scipy.io.whosmat(f)]
    except Exception as e:
        raise InputError(
            path,
            None,
            f"could not read the MAT-file headers ({short_error(e)}); truncated?",
            "a MAT-file",
        ) from e


def _h5_list_variables(path: Path) -> list[tuple[str, tuple[int, ...], str]]:
    try:
        with h5py.File(path, "r") as f:
            out = []
            for name, obj in f.items():
                if name.startswith("#"):  # MATLAB's hidden "#refs#" / "#subsystem#" groups
                    continue
                cls = _h5_class(obj)
                shape = tuple(reversed(obj.shape)) if isinstance(obj, h5py.Dataset) else ()
                out.append((name, tuple(int(s) for s in shape), cls))
            return out
    except OSError as e:
        raise InputError(
            path,
            None,
            f"could not open as HDF5 / MAT v7.3 ({short_error(e)}); truncated?",
            "MAT v7.3",
        ) from e


def _h5_class(obj: h5py.HLObject) -> str:
    cls = obj.attrs.get("MATLAB_class")
    if cls is None:
        if isinstance(obj, h5py.Group):
            return "struct"
        return str(obj.dtype)
    return cls.decode() if isinstance(cls, bytes) else str(cls)


def _variables_found(path: Path) -> str:
    try:
        names = [n for n, _, _ in list_variables(path)]
    except InputError:
        return "?"
    return ", ".join(repr(n) for n in names) if names else "none"


def _missing(path: Path, var: str) -> InputError:
    return InputError(
        path,
        var_label(var),
        f"not in the file (variables present: {_variables_found(path)})",
        f"a variable named '{var}'; choose another with --var",
    )


def field_info(path: str | os.PathLike, var: str = "Omega") -> FieldInfo:
    """Shape and dtype of ``var`` from the file's headers, without reading the values.

    Used to index a dataset cheaply; :func:`read_field` does the full validation.
    """
    path = Path(path)
    version = mat_version(path)
    if version == "7.3":
        try:
            with h5py.File(path, "r") as f:
                if var not in f:
                    raise _missing(path, var)
                obj = f[var]
                cls = _h5_class(obj)
                if not isinstance(obj, h5py.Dataset):
                    raise non_numeric(path, var, f"MATLAB class '{cls}'")
                shape = tuple(int(s) for s in reversed(obj.shape))
                if obj.attrs.get("MATLAB_empty", 0):
                    shape = (0, 0)
                stored = _h5_numeric_dtype(path, var, obj.dtype, cls)  # refuses complex
                if "MATLAB_class" in obj.attrs:
                    dtype = _NUMERIC_CLASSES.get(cls)
                    if dtype is None:  # logical, char, cell references, ...
                        raise non_numeric(path, var, f"MATLAB class '{cls}'")
                else:  # plain HDF5 written by another tool
                    dtype = stored
        except OSError as e:
            raise InputError(
                path, var_label(var), f"unreadable HDF5 ({short_error(e)})", "MAT v7.3"
            ) from e
    else:
        entries = {n: (sh, c) for n, sh, c in list_variables(path)}
        if var not in entries:
            raise _missing(path, var)
        shape, cls = entries[var]
        dtype = _NUMERIC_CLASSES.get(cls)
        if dtype is None:
            raise non_numeric(path, var, f"MATLAB class '{cls}'")
    check_shape(path, var_label(var), shape)
    return FieldInfo(shape=shape, dtype=dtype, version=version)


def _h5_numeric_dtype(path: Path | str, var: str, dtype: np.dtype, cls: str) -> str:
    if dtype.names is not None and set(dtype.names) >= {"real", "imag"}:
        raise InputError(path, var_label(var), "complex values", EXPECTED_FIELD)
    if dtype.kind not in "fiu":
        raise non_numeric(path, var, f"MATLAB class '{cls}', HDF5 type {dtype}")
    return str(dtype)


def read_field(
    path: str | os.PathLike, var: str = "Omega", *, dtype: type | np.dtype | None = None
) -> np.ndarray:
    """Read the 2-D field ``var`` from a MAT-file (v4, v5, v5 compressed or v7.3).

    Other variables in the file are ignored (not even decoded, for v5/v7.3).

    Args:
        path: the .mat file.
        var: the variable name (MATLAB is case sensitive).
        dtype: convert to this dtype (e.g. ``np.float32``) in the same pass that turns MATLAB's
            column-major layout into C order; default: keep the stored precision.

    Returns:
        ``(H, W)`` float32 or float64 array as stored (integer classes become float64), C order.

    Raises:
        InputError: missing variable (listing those present), not 2-D, empty, non-numeric,
            complex, NaN/Inf (counted), truncated or non-MAT file.
    """
    path = Path(path)
    version = mat_version(path)
    what = var_label(var)
    if version == "7.3":
        a = _read_mat73(path, var)
    else:
        a = read_v5(path, var) if version == "5" else None
        if a is None:
            a = _read_mat_scipy(path, var)
            if isinstance(a, np.ndarray) and a.dtype.kind in "iu":
                a = _apply_matlab_class(path, var, a)
    if not isinstance(a, np.ndarray):  # scipy.sparse matrix or MATLAB object
        raise non_numeric(path, var, type(a).__name__)
    if a.dtype.names is not None or a.dtype.kind in "OUS":
        kind = (
            "MATLAB class 'struct'"
            if a.dtype.names
            else {"O": "MATLAB class 'cell'", "U": "text, MATLAB class 'char'"}.get(
                a.dtype.kind, f"NumPy dtype {a.dtype}"
            )
        )
        raise non_numeric(path, var, kind)
    check_shape(path, what, tuple(int(s) for s in a.shape))
    a = check_values(a, path, what)
    # One copy: transpose to C order and cast together. A separate transposed float64 copy
    # followed by a cast costs ~3x more (fresh 512 KiB buffers page-fault on every file).
    return np.ascontiguousarray(a, dtype=dtype)


def _apply_matlab_class(path: Path, var: str, a: np.ndarray) -> np.ndarray:
    """Integer values from scipy: a logical, a true integer class, or a double/single stored in a
    narrower integer type. The header's class decides."""
    cls = {n: c for n, _, c in list_variables(path)}.get(var)
    if cls == "logical":
        raise non_numeric(path, var, "MATLAB class 'logical'")
    if cls == "single":
        return a.astype(np.float32)
    return a  # double stored as integers, or an integer class: check_values makes it float64


def _read_mat_scipy(path: Path, var: str) -> object:
    import scipy.io

    try:
        with open(path, "rb") as f:
            d = scipy.io.loadmat(f, variable_names=[var], mat_dtype=False)
    except Exception as e:
        raise InputError(
            path,
            var_label(var),
            f"could not read ({short_error(e)}); truncated or corrupt?",
            "a MAT-file",
        ) from e
    if var not in d:
        raise _missing(path, var)
    return d[var]


def _read_mat73(path: Path, var: str) -> np.ndarray:
    try:
        with h5py.File(path, "r") as f:
            if var not in f:
                raise _missing(path, var)
            obj = f[var]
            cls = _h5_class(obj)
            if not isinstance(obj, h5py.Dataset):
                # MATLAB writes struct and sparse variables as HDF5 groups
                kind = "sparse" if "MATLAB_sparse" in obj.attrs else cls
                raise non_numeric(path, var, f"MATLAB class '{kind}'")
            if obj.attrs.get("MATLAB_empty", 0):
                raise InputError(path, var_label(var), "empty array", EXPECTED_FIELD)
            if cls in ("logical", "char", "cell") or obj.dtype.kind == "O":
                raise non_numeric(path, var, f"MATLAB class '{cls}'")
            _h5_numeric_dtype(path, var, obj.dtype, cls)
            a = obj[()]
    except OSError as e:
        raise InputError(
            path,
            var_label(var),
            f"could not read ({short_error(e)}); truncated or corrupt?",
            "MAT v7.3",
        ) from e
    a = np.asarray(a)
    # column-major on disk: an (H, W) MATLAB matrix is stored as (W, H)
    return a.T


def read_time(path: str | os.PathLike, var: str = "time") -> float | None:
    """The scalar ``time`` stored beside a field, or ``None`` when the file has no such variable.

    Raises:
        InputError: the variable exists but is not one finite real number.
    """
    path = Path(path)
    version = mat_version(path)
    if version == "7.3":
        try:
            with h5py.File(path, "r") as f:
                if var not in f or not isinstance(f[var], h5py.Dataset):
                    return None
                a = np.asarray(f[var][()])
        except OSError as e:
            raise InputError(
                path, var_label(var), f"could not read ({short_error(e)})", "MAT v7.3"
            ) from e
    else:
        fast = read_v5(path, var) if version == "5" else None
        try:
            a = fast if fast is not None else _read_mat_scipy(path, var)
        except InputError as e:
            if "not in the file" in e.found:
                return None
            raise
        if not isinstance(a, np.ndarray):
            raise non_numeric(path, var, type(a).__name__)
    if a.size != 1 or a.dtype.kind not in "fiu":
        raise InputError(
            path, var_label(var), f"shape {shape_str(a.shape)} dtype {a.dtype}", "one real number"
        )
    t = float(a.reshape(()))
    if not np.isfinite(t):
        raise InputError(path, var_label(var), f"{t}", "a finite time")
    return t
