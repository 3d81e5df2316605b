"""Readers for single snapshots: MATLAB .mat (v4, v5, v5 compressed, v7.3) and HDF5 datasets.

Every reader validates what it returns and raises :class:`vqturb.errors.InputError` naming the file,
the variable, what was found and what was expected, so a bad file in a folder of thousands is found
by name, not by a traceback.

MAT versions (MathWorks, "MAT-File Format", 2024):

- v4 and v5/v7 (optionally zlib-compressed) are read with ``scipy.io.loadmat`` with the stored
  types (``mat_dtype=False``): with ``mat_dtype=True`` scipy casts a complex ``double`` to real,
  dropping the imaginary part with only a warning. MATLAB may store a ``double`` array with a
  narrower integer *storage* type, and stores ``logical`` as uint8, so an integer result is
  resolved with the variable's MATLAB class from the header (rare; the common path is one read).
- v7.3 files are HDF5 files with a 512-byte user block holding the MATLAB header. MATLAB writes
  arrays column-major, so an ``H x W`` matrix appears in HDF5 as ``W x H``: we transpose. The
  ``MATLAB_class`` attribute says what the variable is (``double``, ``single``, ``logical``,
  ``char``, ``cell``, ``struct`` ...).

HDF5 datasets (not MAT files) are addressed by an in-file path: The Well's layout
(``t0_fields/<name>`` shaped ``[n_traj, n_t, H, W]``, times in ``dimensions/time``; Ohana et al.,
"The Well", NeurIPS 2024 Datasets & Benchmarks) or any dataset shaped ``[n_t, H, W]`` or
``[n_traj, n_t, H, W]`` (``h5_key``). Snapshots are read one slice at a time, never the whole file.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from vqturb.errors import InputError

MAT_SUFFIXES: tuple[str, ...] = (".mat",)
H5_SUFFIXES: tuple[str, ...] = (".h5", ".hdf5", ".hdf", ".he5")

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
_EXPECTED_FIELD = "a real numeric 2-D array (H, W), float32 or float64"


@dataclass(frozen=True)
class FieldInfo:
    """What a file's header says about one variable, without reading its values."""

    shape: tuple[int, ...]  # shape as MATLAB sees it (rows, columns, ...)
    dtype: str  # numpy dtype name the values load as ("float64", "float32", ...)
    version: str  # MAT version: "4", "5" or "7.3"


def _var(var: str) -> str:
    return f"variable '{var}'"


def _shape_str(shape: tuple[int, ...]) -> str:
    return "x".join(str(int(s)) for s in shape) if shape else "scalar"


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
            f"a MAT header but unreadable ({_short(e)}); truncated?"
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


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


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
            f"could not read the MAT-file headers ({_short(e)}); truncated?",
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
            path, None, f"could not open as HDF5 / MAT v7.3 ({_short(e)}); truncated?", "MAT v7.3"
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
        _var(var),
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
                    raise _non_numeric(path, var, f"MATLAB class '{cls}'")
                shape = tuple(int(s) for s in reversed(obj.shape))
                if obj.attrs.get("MATLAB_empty", 0):
                    shape = (0, 0)
                stored = _h5_numeric_dtype(path, var, obj.dtype, cls)  # refuses complex
                if "MATLAB_class" in obj.attrs:
                    dtype = _NUMERIC_CLASSES.get(cls)
                    if dtype is None:  # logical, char, cell references, ...
                        raise _non_numeric(path, var, f"MATLAB class '{cls}'")
                else:  # plain HDF5 written by another tool
                    dtype = stored
        except OSError as e:
            raise InputError(path, _var(var), f"unreadable HDF5 ({_short(e)})", "MAT v7.3") from e
    else:
        entries = {n: (sh, c) for n, sh, c in list_variables(path)}
        if var not in entries:
            raise _missing(path, var)
        shape, cls = entries[var]
        dtype = _NUMERIC_CLASSES.get(cls)
        if dtype is None:
            raise _non_numeric(path, var, f"MATLAB class '{cls}'")
    _check_shape(path, _var(var), shape)
    return FieldInfo(shape=shape, dtype=dtype, version=version)


def _non_numeric(path: Path | str, var: str, found: str) -> InputError:
    return InputError(path, _var(var), f"non-numeric content ({found})", _EXPECTED_FIELD)


def _h5_numeric_dtype(path: Path | str, var: str, dtype: np.dtype, cls: str) -> str:
    if dtype.names is not None and set(dtype.names) >= {"real", "imag"}:
        raise InputError(path, _var(var), "complex values", _EXPECTED_FIELD)
    if dtype.kind not in "fiu":
        raise _non_numeric(path, var, f"MATLAB class '{cls}', HDF5 type {dtype}")
    return str(dtype)


def _check_shape(path: Path | str, what: str, shape: tuple[int, ...]) -> None:
    if len(shape) != 2:
        raise InputError(
            path, what, f"{len(shape)} dimensions (shape {_shape_str(shape)})", _EXPECTED_FIELD
        )
    if min(shape) == 0:
        raise InputError(path, what, f"empty array (shape {_shape_str(shape)})", _EXPECTED_FIELD)


def check_values(a: np.ndarray, path: str | os.PathLike, what: str) -> np.ndarray:
    """Check an array holds real finite numbers; return it as float32/float64.

    Integer arrays are converted to float64 (MATLAB's ``double``); booleans, strings, objects
    and complex numbers are refused.

    Raises:
        InputError: naming ``path`` and ``what`` with the count of NaN / Inf values, or the type.
    """
    if a.dtype.kind == "c":
        raise InputError(path, what, f"complex values ({a.dtype})", _EXPECTED_FIELD)
    if a.dtype.kind == "b":
        raise InputError(path, what, "non-numeric content (logical/boolean)", _EXPECTED_FIELD)
    if a.dtype.kind not in "fiu":
        kind = "struct" if a.dtype.names else str(a.dtype)
        raise InputError(path, what, f"non-numeric content ({kind})", _EXPECTED_FIELD)
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
    return a


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
    what = _var(var)
    if version == "7.3":
        a = _read_mat73(path, var)
    else:
        a = _read_v5_fast(path, var) if version == "5" else None
        if a is None:
            a = _read_mat_scipy(path, var)
            if isinstance(a, np.ndarray) and a.dtype.kind in "iu":
                a = _apply_matlab_class(path, var, a)
    if not isinstance(a, np.ndarray):  # scipy.sparse matrix or MATLAB object
        raise _non_numeric(path, var, type(a).__name__)
    if a.dtype.names is not None or a.dtype.kind in "OUS":
        kind = (
            "MATLAB class 'struct'"
            if a.dtype.names
            else {"O": "MATLAB class 'cell'", "U": "text, MATLAB class 'char'"}.get(
                a.dtype.kind, f"NumPy dtype {a.dtype}"
            )
        )
        raise _non_numeric(path, var, kind)
    _check_shape(path, what, tuple(int(s) for s in a.shape))
    a = check_values(a, path, what)
    # One copy: transpose to C order and cast together. A separate transposed float64 copy
    # followed by a cast costs ~3x more (fresh 512 KiB buffers page-fault on every file).
    return np.ascontiguousarray(a, dtype=dtype)


def _apply_matlab_class(path: Path, var: str, a: np.ndarray) -> np.ndarray:
    """Integer values from scipy: a logical, a true integer class, or a double/single stored in a
    narrower integer type. The header's class decides."""
    cls = {n: c for n, _, c in list_variables(path)}.get(var)
    if cls == "logical":
        raise _non_numeric(path, var, "MATLAB class 'logical'")
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
            path, _var(var), f"could not read ({_short(e)}); truncated or corrupt?", "a MAT-file"
        ) from e
    if var not in d:
        raise _missing(path, var)
    return d[var]


# MAT v5 data types and classes (MathWorks, "MAT-File Format", Tables 1-1 and 1-3)
_MI_INT8, _MI_INT32, _MI_UINT32, _MI_SINGLE, _MI_DOUBLE, _MI_MATRIX = 1, 5, 6, 7, 9, 14
_MI_COMPRESSED = 15
_MX_DOUBLE, _MX_SINGLE = 6, 7
_FAST_TYPES = {_MX_DOUBLE: (_MI_DOUBLE, np.dtype("<f8")), _MX_SINGLE: (_MI_SINGLE, np.dtype("<f4"))}


def _v5_tag(buf: bytes, pos: int) -> tuple[int, int, int, int]:
    """(data type, byte count, data start, next element) of the v5 data element at ``pos``."""
    (word,) = struct.unpack_from("<I", buf, pos)
    if word >> 16:  # "small data element": type and size share the first 4 bytes
        return word & 0xFFFF, word >> 16, pos + 4, pos + 8
    mdtype, nbytes = struct.unpack_from("<II", buf, pos)
    return mdtype, nbytes, pos + 8, pos + 8 + (nbytes + 7) // 8 * 8


def _v5_matrix_header(sub: bytes) -> tuple[str, int, int, tuple[int, ...], int]:
    """``(name, class, flags, dims, offset of the next sub-element)`` from the start of a
    miMATRIX element's contents (array flags, dimensions, name). Raises ValueError/struct.error
    on anything unexpected."""
    t, n, d, k = _v5_tag(sub, 0)
    if t != _MI_UINT32 or n != 8:
        raise ValueError("array flags")
    (flags_word,) = struct.unpack_from("<I", sub, d)
    t, n, d, k = _v5_tag(sub, k)
    if t != _MI_INT32:
        raise ValueError("dimensions")
    dims = tuple(struct.unpack_from(f"<{n // 4}i", sub, d))
    t, n, d, k = _v5_tag(sub, k)
    if t != _MI_INT8:
        raise ValueError("name")
    name = sub[d : d + n].decode("latin-1")
    return name, flags_word & 0xFF, (flags_word >> 8) & 0xFF, dims, k


def _v5_values(
    sub: bytes, k: int, cls: int, flags: int, dims: tuple[int, ...]
) -> tuple[np.dtype, int, int] | None:
    """``(dtype, count, offset)`` of the real part when it is a plain float block, else None."""
    if cls not in _FAST_TYPES or flags & 0x0A or len(dims) != 2:  # complex or logical flags
        return None
    mi, dtype = _FAST_TYPES[cls]
    t, n, d, _ = _v5_tag(sub, k)
    count = dims[0] * dims[1]
    if t != mi or n != count * dtype.itemsize or count == 0:
        return None  # e.g. a double stored as integers: scipy converts
    return dtype, count, d


def _column_major(col: np.ndarray, dims: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    # a column-major (H, W) view; read_field makes the C-order copy
    return col.reshape(dims[1], dims[0]).T.astype(dtype.newbyteorder("="), copy=False)


def _read_v5_fast(path: Path, var: str) -> np.ndarray | None:
    """Read a little-endian v5 ``double``/``single`` real 2-D matrix directly.

    Uncompressed: the values are one contiguous column-major block, so walking the element
    headers (seeking past other variables) and one ``np.fromfile`` suffice: 0.11-0.13 ms per
    256^2 double matrix against 0.27-0.32 ms for scipy.io.loadmat (best of 7, this 2-core
    machine, under load); reading the small ``time`` variable touches a few hundred bytes.
    Compressed (MATLAB's default ``-v7``): the first decompressed bytes give the name, so other
    variables are skipped unread, and the values are one ``zlib`` call, which releases the GIL
    (scipy's streaming parser holds it), so prefetch threads can decompress in parallel.
    Anything else (other classes, complex, logical, big-endian, integer storage types,
    truncation) returns None and scipy reads the file, with its full generality and error
    reporting.
    """
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(128)
            if len(head) < 128 or head[126:128] != b"IM":
                return None
            pos = 128
            while pos + 8 <= size:
                f.seek(pos)
                mdtype, nbytes = struct.unpack("<II", f.read(8))
                start, nxt = pos + 8, pos + 8 + nbytes
                if nxt > size:
                    return None  # truncated: let scipy say so
                if mdtype == _MI_MATRIX:
                    # flags, dimensions and name fit in 256 bytes for names up to MATLAB's
                    # 63 characters and up to 16 dimensions
                    sub = f.read(min(256, nbytes))
                    name, cls, flags, dims, k = _v5_matrix_header(sub)
                    if name != var:
                        pos = nxt
                        continue
                    found = _v5_values(sub, k, cls, flags, dims)
                    if found is None:
                        return None
                    dtype, count, d = found
                    if d + count * dtype.itemsize > nbytes:
                        return None
                    f.seek(start + d)
                    col = np.fromfile(f, dtype=dtype, count=count)
                    return _column_major(col, dims, dtype) if col.size == count else None
                if mdtype == _MI_COMPRESSED:
                    z = zlib.decompressobj()
                    comp = f.read(min(nbytes, 4096))
                    inner = z.decompress(comp, 8 + 256)  # the inner tag and matrix header
                    inner_type, _ = struct.unpack_from("<II", inner, 0)
                    if inner_type != _MI_MATRIX:
                        return None
                    name, cls, flags, dims, k = _v5_matrix_header(inner[8:])
                    if name != var:
                        pos = nxt
                        continue
                    found = _v5_values(inner[8:], k, cls, flags, dims)
                    if found is None:
                        return None
                    dtype, count, d = found
                    rest = f.read(nbytes - len(comp))
                    full = b"".join((inner, z.decompress(z.unconsumed_tail + rest), z.flush()))
                    if 8 + d + count * dtype.itemsize > len(full):
                        return None
                    col = np.frombuffer(full, dtype=dtype, count=count, offset=8 + d)
                    return _column_major(col, dims, dtype)
                return None  # an element type we do not expect at the top level
    except (OSError, struct.error, UnicodeDecodeError, ValueError, zlib.error):
        return None
    return None


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
                raise _non_numeric(path, var, f"MATLAB class '{kind}'")
            if obj.attrs.get("MATLAB_empty", 0):
                raise InputError(path, _var(var), "empty array", _EXPECTED_FIELD)
            if cls in ("logical", "char", "cell") or obj.dtype.kind == "O":
                raise _non_numeric(path, var, f"MATLAB class '{cls}'")
            _h5_numeric_dtype(path, var, obj.dtype, cls)
            a = obj[()]
    except OSError as e:
        raise InputError(
            path, _var(var), f"could not read ({_short(e)}); truncated or corrupt?", "MAT v7.3"
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
            raise InputError(path, _var(var), f"could not read ({_short(e)})", "MAT v7.3") from e
    else:
        fast = _read_v5_fast(path, var) if version == "5" else None
        try:
            a = fast if fast is not None else _read_mat_scipy(path, var)
        except InputError as e:
            if "not in the file" in e.found:
                return None
            raise
        if not isinstance(a, np.ndarray):
            raise _non_numeric(path, var, type(a).__name__)
    if a.size != 1 or a.dtype.kind not in "fiu":
        raise InputError(
            path, _var(var), f"shape {_shape_str(a.shape)} dtype {a.dtype}", "one real number"
        )
    t = float(a.reshape(()))
    if not np.isfinite(t):
        raise InputError(path, _var(var), f"{t}", "a finite time")
    return t


# --------------------------------------------------------------------------------------------
# HDF5 datasets (The Well layout or any [n_t, H, W] / [n_traj, n_t, H, W] dataset)


@dataclass(frozen=True)
class H5Layout:
    """Where the snapshots live in an HDF5 file."""

    key: str  # in-file path of the dataset, e.g. "t0_fields/vorticity"
    n_traj: int  # number of trajectories (1 for an [n_t, H, W] dataset)
    n_t: int  # snapshots per trajectory
    shape: tuple[int, int]  # (H, W)
    dtype: str  # numpy dtype name of the stored values
    has_traj_axis: bool  # True for [n_traj, n_t, H, W], False for [n_t, H, W]


def _h5_candidates(f: h5py.File) -> list[str]:
    out: list[str] = []

    def visit(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset) and obj.ndim in (3, 4):
            out.append(name)

    f.visititems(visit)
    return out


def h5_layout(f: h5py.File, path: str | os.PathLike, var: str, h5_key: str | None) -> H5Layout:
    """Find the snapshot dataset in an open HDF5 file and describe it.

    Without ``h5_key`` the search order is ``t0_fields/<var>``, ``<var>``, then (for the default
    ``Omega``) ``t0_fields/vorticity`` (what ``vqturb generate --format h5`` writes).

    Raises:
        InputError: no such dataset (listing the 3-D/4-D datasets present), wrong rank, or not
            real numeric.
    """
    if h5_key is not None:
        if h5_key not in f or not isinstance(f[h5_key], h5py.Dataset):
            raise InputError(
                path,
                f"dataset '{h5_key}'",
                f"not in the file (3-D/4-D datasets present: {_fmt_list(_h5_candidates(f))})",
                "an HDF5 dataset path given with --h5_key",
            )
        key = h5_key
    else:
        tries = [f"t0_fields/{var}", var]
        if var == "Omega":
            tries.append("t0_fields/vorticity")
        found = [k for k in tries if k in f and isinstance(f[k], h5py.Dataset)]
        if not found:
            raise InputError(
                path,
                _var(var),
                f"no dataset {' or '.join(repr(k) for k in tries)} "
                f"(3-D/4-D datasets present: {_fmt_list(_h5_candidates(f))})",
                "The Well layout t0_fields/<name> or a dataset chosen with --h5_key",
            )
        key = found[0]
    d = f[key]
    what = f"dataset '{key}'"
    if d.dtype.kind not in "fiu":
        raise InputError(path, what, f"non-numeric or complex content ({d.dtype})", "real numbers")
    if d.ndim == 3:
        n_traj, (n_t, h, w), has_traj = 1, d.shape, False
    elif d.ndim == 4:
        (n_traj, n_t, h, w), has_traj = d.shape, True
    else:
        raise InputError(
            path,
            what,
            f"{d.ndim} dimensions (shape {_shape_str(d.shape)})",
            "[n_t, H, W] or [n_traj, n_t, H, W]",
        )
    if min(n_traj, n_t, h, w) == 0:
        raise InputError(path, what, f"empty (shape {_shape_str(d.shape)})", "snapshots")
    return H5Layout(
        key=key,
        n_traj=int(n_traj),
        n_t=int(n_t),
        shape=(int(h), int(w)),
        dtype=str(d.dtype),
        has_traj_axis=has_traj,
    )


def _fmt_list(items: list[str]) -> str:
    if not items:
        return "none"
    shown = ", ".join(repr(k) for k in items[:8])
    return shown + (f", ... ({len(items)} in all)" if len(items) > 8 else "")


def h5_times(f: h5py.File, layout: H5Layout, traj: int) -> np.ndarray | None:
    """Times of trajectory ``traj``: ``dimensions/time`` (The Well) or a root ``time`` dataset,
    shaped ``[n_t]`` or ``[n_traj, n_t]``; ``None`` when neither matches."""
    for key in ("dimensions/time", "time"):
        if key in f and isinstance(f[key], h5py.Dataset):
            t = np.asarray(f[key][()], dtype=np.float64)
            if t.shape == (layout.n_t,):
                return t
            if t.shape == (layout.n_traj, layout.n_t):
                return t[traj]
    return None


def read_h5_snapshot(
    f: h5py.File, path: str | os.PathLike, layout: H5Layout, traj: int, t: int
) -> np.ndarray:
    """Read one ``(H, W)`` snapshot (a lazy slice; the rest of the file stays on disk) and validate."""
    d = f[layout.key]
    a = d[traj, t] if layout.has_traj_axis else d[t]
    what = f"dataset '{layout.key}' [trajectory {traj}, t {t}]"
    return np.ascontiguousarray(check_values(np.asarray(a), path, what))
