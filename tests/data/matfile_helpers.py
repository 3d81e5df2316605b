"""Write test inputs directly with scipy.io / h5py (no dependency on vqturb's writers)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import scipy.io

FORMATS = ("v4", "v5", "v5c", "v73")

# MATLAB's v7.3 header: 116 bytes of text, 8 bytes of subsystem offset, version 0x0200 and the
# endian indicator "IM", in a 512-byte HDF5 user block (hdf5storage docs, "MATLAB File Header").
_MAT73_HEADER = (
    (
        b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Fri Nov 27 08:00:00 2026 "
        b"HDF5 schema 1.00 ."
    ).ljust(116, b" ")
    + b"\x00" * 8
    + b"\x00\x02IM"
)


def _matlab_class(a: np.ndarray) -> bytes:
    return {
        np.dtype(np.float64): b"double",
        np.dtype(np.float32): b"single",
        np.dtype(np.int16): b"int16",
        np.dtype(np.int32): b"int32",
        np.dtype(np.uint8): b"uint8",
        np.dtype(np.bool_): b"logical",
    }[a.dtype]


def write_mat73(path: Path, variables: dict[str, np.ndarray | float]) -> Path:
    """A MATLAB v7.3 file as MATLAB writes it: 512-byte header, column-major datasets with
    ``MATLAB_class`` attributes."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, value in variables.items():
            a = np.asarray(value)
            if a.ndim < 2:
                a = a.reshape(1, -1) if a.ndim == 1 else a.reshape(1, 1)
            cls = _matlab_class(a)
            if a.dtype == np.bool_:
                a = a.astype(np.uint8)  # MATLAB stores logical as uint8 + class attribute
            d = f.create_dataset(name, data=a.T)  # column-major: MATLAB (H, W) -> HDF5 (W, H)
            d.attrs["MATLAB_class"] = np.bytes_(cls)
    with open(path, "r+b") as fh:
        fh.write(_MAT73_HEADER)
    return path


def write_field(
    path: Path, omega: np.ndarray, fmt: str = "v5", time: float | None = None, **extra
) -> Path:
    """Write ``Omega`` (and optionally ``time`` and extra variables) in one of FORMATS."""
    variables: dict = {"Omega": omega, **extra}
    if time is not None:
        variables["time"] = np.array([[time]])
    if fmt == "v73":
        return write_mat73(path, variables)
    if fmt == "v4":
        scipy.io.savemat(path, variables, format="4")
    elif fmt == "v5":
        scipy.io.savemat(path, variables)
    elif fmt == "v5c":
        scipy.io.savemat(path, variables, do_compression=True)
    else:
        raise ValueError(fmt)
    return path


def write_trajectory(
    folder: Path,
    fields: np.ndarray,
    fmt: str = "v5",
    t0: float = 0.0,
    dt: float = 0.1,
    start: int = 1,
) -> list[Path]:
    """``fields`` [n_t, H, W] -> ``folder/1.mat, 2.mat, ...`` with ``Omega`` and ``time``."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        write_field(folder / f"{start + i}.mat", f, fmt, time=t0 + dt * i)
        for i, f in enumerate(fields)
    ]


def write_well(
    path: Path, fields: np.ndarray, name: str = "vorticity", times: np.ndarray | None = None
) -> Path:
    """The Well layout: ``t0_fields/<name>`` [n_traj, n_t, H, W], ``dimensions/time`` [n_t]."""
    with h5py.File(path, "w") as f:
        f.create_dataset(f"t0_fields/{name}", data=fields, chunks=(1, 1, *fields.shape[2:]))
        if times is None:
            times = np.arange(fields.shape[1]) * 0.5
        f.create_dataset("dimensions/time", data=times)
    return path
