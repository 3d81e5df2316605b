"""Opening a dataset: which files make which trajectories, from headers only.

A dataset is one of

- a folder of ``.mat`` files: one trajectory, time order = natural sort of the file names
  (``2.mat`` before ``10.mat``);
- a folder of trajectory folders, each a folder of ``.mat`` files (what ``vqturb generate`` writes);
- one or several HDF5 files (a folder of them, a file, or a list of files): The Well's layout
  ``t0_fields/<name>`` ``[n_traj, n_t, H, W]`` or any dataset chosen with ``h5_key``.

Opening a dataset reads headers only (one header per trajectory), so it is fast on a folder of
thousands of files; values are validated when read (:meth:`Dataset.get`) and everything is checked
up front by :func:`vqturb.data.inspect.inspect_dataset` (``vqturb inspect``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py

from vqturb.data.h5 import H5_SUFFIXES, H5Layout, h5_layout
from vqturb.data.mat import MAT_SUFFIXES, field_info
from vqturb.data.store import DEFAULT_CACHE_BYTES, Dataset, Trajectory
from vqturb.data.validate import short_error
from vqturb.errors import InputError


def natural_key(name: str) -> list[Any]:
    """Sort key putting ``2.mat`` before ``10.mat`` (digit runs compare as integers)."""
    # re.split with a capture group alternates text, digits, text, ...: types line up by position.
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", name)]


def natural_sorted(paths: Sequence[Path]) -> list[Path]:
    return sorted(paths, key=lambda p: (natural_key(p.name), p.name))


def _is_h5_file(p: Path) -> bool:
    return p.suffix.lower() in H5_SUFFIXES


def _visible(folder: Path) -> list[Path]:
    # Hidden names are never data: ".1.x8f2.mat" is a temporary file of an atomic write still in
    # progress (vqturb.utils.fileio), "._1.mat" an AppleDouble file left by macOS copies.
    return [p for p in folder.iterdir() if not p.name.startswith(".")]


def _mat_files(folder: Path) -> list[Path]:
    return natural_sorted(
        [p for p in _visible(folder) if p.is_file() and p.suffix.lower() in MAT_SUFFIXES]
    )


def open_dataset(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    var: str = "Omega",
    h5_key: str | None = None,
    *,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    strict: bool = True,
) -> Dataset:
    """Index a dataset from headers only (see the module docstring for the layouts).

    Args:
        path: a folder of .mat files, a folder of trajectory folders, an HDF5 file or a folder or
            list of HDF5 files, or a single .mat file (one snapshot).
        var: the MAT variable (or The Well field name under ``t0_fields/``).
        h5_key: in-file path of the HDF5 dataset; overrides the search by ``var``.
        cache_bytes: bound on the bytes of decoded float32 snapshots kept in memory.
        strict: raise on the first bad header. ``False`` (used by :func:`inspect_dataset`) skips
            unreadable headers and shape differences so the full pass can list every bad file;
            it still raises when no header is readable at all.

    Raises:
        InputError: missing path, empty folder, mixed layouts, a missing variable in the first
            file, shapes that differ between trajectories (both files named), bad HDF5 layout.
    """
    if isinstance(path, (str, os.PathLike)):
        p = Path(path)
        source = str(p)
        if not p.exists():
            raise InputError(p, None, "no such file or folder", "a dataset folder or file")
        if p.is_dir():
            return _open_folder(p, var, h5_key, cache_bytes, strict)
        if _is_h5_file(p) or (p.suffix.lower() not in MAT_SUFFIXES and h5py.is_hdf5(p)):
            return _open_h5([p], var, h5_key, cache_bytes, source)
        return _open_mat([(p.stem, [p])], var, cache_bytes, source)
    paths = [Path(x) for x in path]
    if not paths:
        raise InputError(None, "dataset", "an empty list of files", "at least one HDF5 file")
    for p in paths:
        if not p.is_file():
            raise InputError(p, None, "no such file", "an HDF5 file")
    return _open_h5(paths, var, h5_key, cache_bytes, ", ".join(map(str, paths)))


def _open_folder(
    folder: Path, var: str, h5_key: str | None, cache_bytes: int, strict: bool = True
) -> Dataset:
    entries = _visible(folder)
    mats = _mat_files(folder)
    h5s = natural_sorted([p for p in entries if p.is_file() and _is_h5_file(p)])
    trajs = [
        (d.name, files)
        for d in natural_sorted([p for p in entries if p.is_dir()])
        if (files := _mat_files(d))
    ]
    kinds = [
        k
        for k, v in (("'.mat' files", mats), ("HDF5 files", h5s), ("trajectory folders", trajs))
        if v
    ]
    if len(kinds) > 1:
        raise InputError(
            folder,
            None,
            f"a mix of {' and '.join(kinds)}",
            "one layout: .mat files (one trajectory), trajectory folders of .mat files, or HDF5 files",
        )
    if mats:
        return _open_mat([(folder.name, mats)], var, cache_bytes, str(folder), strict)
    if trajs:
        return _open_mat(trajs, var, cache_bytes, str(folder), strict)
    if h5s:
        return _open_h5(h5s, var, h5_key, cache_bytes, str(folder))
    found = (
        "an empty folder" if not entries else f"no .mat or HDF5 files among {len(entries)} entries"
    )
    raise InputError(
        folder,
        None,
        found,
        "a folder of .mat files, a folder of trajectory folders, or HDF5 files",
    )


def _open_mat(
    trajs: list[tuple[str, list[Path]]],
    var: str,
    cache_bytes: int,
    source: str,
    strict: bool = True,
) -> Dataset:
    shape: tuple[int, int] | None = None
    dtype = ""
    ref: Path | None = None
    out = []
    first_error: InputError | None = None
    for name, files in trajs:
        out.append(Trajectory(name=name, n_steps=len(files), files=tuple(files)))
        # one header per trajectory: cheap, and catches a wrong variable name or a trajectory
        # at another resolution before training starts. Not strict (inspect): a bad header is
        # skipped here (the full pass reports it) and the next file of the trajectory is tried.
        for path in files if not strict else files[:1]:
            try:
                info = field_info(path, var)
            except InputError as e:
                if strict:
                    raise
                first_error = first_error or e
                continue
            s = (int(info.shape[0]), int(info.shape[1]))
            if shape is None:
                shape, dtype, ref = s, info.dtype, path
            elif s != shape and strict:
                raise InputError(
                    path,
                    f"variable '{var}'",
                    f"shape {s[0]}x{s[1]} differs from {shape[0]}x{shape[1]} in {ref}",
                    "every snapshot of a dataset to have the same shape",
                )
            break
    if shape is None:  # not strict and no readable header anywhere: report the first problem
        assert first_error is not None
        raise first_error
    return Dataset(
        out,
        var=var,
        shape=shape,
        dtype=dtype,
        source=source,
        cache_bytes=cache_bytes,
        reference=str(ref),
    )


def _open_h5(
    paths: list[Path], var: str, h5_key: str | None, cache_bytes: int, source: str
) -> Dataset:
    layouts: dict[Path, H5Layout] = {}
    out = []
    shape: tuple[int, int] | None = None
    dtype = ""
    for p in paths:
        try:
            with h5py.File(p, "r") as f:
                layout = h5_layout(f, p, var, h5_key)
        except OSError as e:
            raise InputError(
                p, None, f"not a readable HDF5 file ({short_error(e)}); truncated?", "HDF5"
            ) from e
        if shape is None:
            shape, dtype = layout.shape, layout.dtype
        elif layout.shape != shape:
            raise InputError(
                p,
                f"dataset '{layout.key}'",
                f"shape {layout.shape[0]}x{layout.shape[1]} differs from "
                f"{shape[0]}x{shape[1]} in {paths[0]}",
                "every snapshot of a dataset to have the same shape",
            )
        layouts[p] = layout
        for i in range(layout.n_traj):
            name = f"{p.name}[{i}]" if layout.has_traj_axis else p.name
            out.append(Trajectory(name=name, n_steps=layout.n_t, h5_path=p, h5_index=i))
    assert shape is not None
    return Dataset(
        out,
        var=var,
        shape=shape,
        dtype=dtype,
        source=source,
        h5_layouts=layouts,
        cache_bytes=cache_bytes,
    )
