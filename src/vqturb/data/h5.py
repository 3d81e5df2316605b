"""HDF5 snapshot datasets (not MAT files): The Well's layout or any ``[n_t, H, W]`` /
``[n_traj, n_t, H, W]`` dataset.

Datasets are addressed by an in-file path: The Well's layout (``t0_fields/<name>`` shaped
``[n_traj, n_t, H, W]``, times in ``dimensions/time``; Ohana et al., "The Well", NeurIPS 2024
Datasets & Benchmarks) or any dataset shaped ``[n_t, H, W]`` or ``[n_traj, n_t, H, W]``
(``h5_key``). Snapshots are read one slice at a time, never the whole file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import h5py
import numpy as np

from vqturb.data.validate import check_values, shape_str, var_label
from vqturb.errors import InputError

H5_SUFFIXES: tuple[str, ...] = (".h5", ".hdf5", ".hdf", ".he5")


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
                var_label(var),
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
            f"{d.ndim} dimensions (shape {shape_str(d.shape)})",
            "[n_t, H, W] or [n_traj, n_t, H, W]",
        )
    if min(n_traj, n_t, h, w) == 0:
        raise InputError(path, what, f"empty (shape {shape_str(d.shape)})", "snapshots")
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
