"""Dataset writers: one ``.mat`` file per snapshot (the SPEC format) and HDF5 in The Well's layout.

Every file is written atomically (:func:`vqturb.utils.fileio.atomic_path`): a reader or a crash
never sees half a file.

``.mat`` (SPEC): ``<folder>/<n>.mat`` with ``n = 1, 2, …`` in time order, each holding ``Omega``
(``H × W`` float64, rows = y, columns = x) and ``time`` (scalar float64).

HDF5 (The Well, https://github.com/PolymathicAI/the_well, ``docs/data_format.md``): scalar fields
in ``t0_fields/<name>`` shaped ``[n_traj, n_t, H, W]`` (float32, as The Well stores them), the
time axis in ``dimensions/time`` (float64, so saved times are exact), grid coordinates in ``dimensions/y`` and ``dimensions/x``,
periodic boundary conditions, and root attributes ``dataset_name``, ``grid_type``,
``n_spatial_dims``, ``n_trajectories``, ``simulation_parameters`` (plus one attribute per
parameter). The arrays are stored rows-first, so ``dimensions@spatial_dims = ['y', 'x']``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import scipy.io
from jaxtyping import Float

from vqturb.utils.fileio import atomic_path

__all__ = ["WellH5Writer", "write_mat_snapshot", "write_mat_trajectory", "write_well_h5"]


def write_mat_snapshot(
    path: str | os.PathLike, omega: Float[np.ndarray, "h w"], time: float
) -> Path:
    """Write one snapshot as a MATLAB v5 file with ``Omega`` (float64) and ``time``."""
    path = Path(path)
    with atomic_path(path) as tmp:
        scipy.io.savemat(
            tmp,
            {"Omega": np.asarray(omega, dtype=np.float64), "time": np.float64(time)},
            do_compression=False,
        )
    return path


def write_mat_trajectory(
    folder: str | os.PathLike,
    fields: Float[np.ndarray, "t h w"],
    times: Float[np.ndarray, " t"],
    *,
    start: int = 1,
) -> list[Path]:
    """Write ``fields[i]`` at ``times[i]`` to ``folder/<start + i>.mat``; returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if len(fields) != len(times):
        raise ValueError(f"{len(fields)} fields but {len(times)} times")
    return [
        write_mat_snapshot(folder / f"{start + i}.mat", f, float(t))
        for i, (f, t) in enumerate(zip(fields, times, strict=True))
    ]


def _attr(value: Any) -> Any:
    # h5py stores str lists as variable-length strings; None has no HDF5 form.
    if value is None:
        return "none"
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        return np.array(value, dtype=h5py.string_dtype())
    return value


class WellH5Writer:
    """Stream ``[n_traj, H, W]`` frames into one HDF5 file in The Well's layout, atomically.

    Example::

        with WellH5Writer(path, n_traj=4, times=t, shape=(64, 64), parameters={"Re": 1e3}) as w:
            for k, frames in enumerate(...):
                w.write(k, frames)  # all trajectories at time index k

    The file appears at ``path`` only when the block exits without an exception.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        n_traj: int,
        times: Float[np.ndarray, " t"],
        shape: tuple[int, int],
        field_name: str = "vorticity",
        dataset_name: str = "vqturb_forced_ns2d",
        parameters: Mapping[str, Any] | None = None,
        dtype: Any = np.float32,
    ):
        self.path = Path(path)
        self.n_traj = int(n_traj)
        # float64 (The Well uses float32): t = 20.1 must not read back as 20.0999985.
        self.times = np.asarray(times, dtype=np.float64)
        self.shape = (int(shape[0]), int(shape[1]))
        self.field_name = field_name
        self.dataset_name = dataset_name
        self.parameters = dict(parameters or {})
        self.dtype = np.dtype(dtype)
        self._stack: contextlib.ExitStack | None = None
        self._file: h5py.File | None = None
        self._data: h5py.Dataset | None = None

    def __enter__(self) -> WellH5Writer:
        stack = contextlib.ExitStack()
        try:
            tmp = stack.enter_context(atomic_path(self.path))
            f = stack.enter_context(h5py.File(tmp, "w"))
            self._populate(f)
        except BaseException:
            stack.close()
            raise
        self._stack, self._file = stack, f
        return self

    def _populate(self, f: h5py.File) -> None:
        h, w = self.shape
        n_t = self.times.shape[0]
        f.attrs["dataset_name"] = self.dataset_name
        f.attrs["grid_type"] = "cartesian"
        f.attrs["n_spatial_dims"] = 2
        f.attrs["n_trajectories"] = self.n_traj
        f.attrs["simulation_parameters"] = _attr(list(self.parameters))
        for k, v in self.parameters.items():
            f.attrs[k] = _attr(v)

        dims = f.create_group("dimensions")
        dims.attrs["spatial_dims"] = _attr(["y", "x"])  # storage order: rows are y
        t = dims.create_dataset("time", data=self.times)
        t.attrs["sample_varying"] = False
        for name, n in (("y", h), ("x", w)):
            d = dims.create_dataset(name, data=(2 * np.pi * np.arange(n) / n).astype(np.float32))
            d.attrs["sample_varying"] = False
            d.attrs["time_varying"] = False

        bcs = f.create_group("boundary_conditions")
        for name, n in (("y", h), ("x", w)):
            g = bcs.create_group(f"{name}_periodic")
            g.attrs["associated_dims"] = _attr([name])
            g.attrs["associated_fields"] = np.array([], dtype=h5py.string_dtype())
            g.attrs["bc_type"] = "PERIODIC"
            g.attrs["sample_varying"] = False
            g.attrs["time_varying"] = False
            mask = np.zeros(n, dtype=bool)
            mask[[0, -1]] = True
            g.create_dataset("mask", data=mask)

        scalars = f.create_group("scalars")
        scalars.attrs["field_names"] = np.array([], dtype=h5py.string_dtype())
        t0 = f.create_group("t0_fields")
        t0.attrs["field_names"] = _attr([self.field_name])
        self._data = t0.create_dataset(
            self.field_name,
            shape=(self.n_traj, n_t, h, w),
            dtype=self.dtype,
            chunks=(1, 1, h, w),  # one snapshot per chunk: readers fetch frames
        )
        self._data.attrs["dim_varying"] = np.array([True, True])
        self._data.attrs["sample_varying"] = True
        self._data.attrs["time_varying"] = True
        for name in ("t1_fields", "t2_fields"):
            f.create_group(name).attrs["field_names"] = np.array([], dtype=h5py.string_dtype())

    def write(self, time_index: int, frames: Float[np.ndarray, "b h w"]) -> None:
        """Store all trajectories' fields at one time index."""
        if self._data is None:
            raise RuntimeError("WellH5Writer.write outside its `with` block")
        self._data[:, time_index] = np.asarray(frames, dtype=self.dtype)

    def __exit__(self, *exc) -> None:
        stack, self._stack, self._file, self._data = self._stack, None, None, None
        if stack is not None:
            stack.__exit__(*exc)


def write_well_h5(
    path: str | os.PathLike,
    fields: Float[np.ndarray, "b t h w"],
    times: Float[np.ndarray, " t"],
    *,
    field_name: str = "vorticity",
    dataset_name: str = "vqturb_forced_ns2d",
    parameters: Mapping[str, Any] | None = None,
) -> Path:
    """Write a whole ``[n_traj, n_t, H, W]`` array as one Well-layout HDF5 file (atomic)."""
    fields = np.asarray(fields)
    if fields.shape[1] != len(times):
        raise ValueError(f"{fields.shape[1]} frames but {len(times)} times")
    with WellH5Writer(
        path,
        n_traj=fields.shape[0],
        times=times,
        shape=fields.shape[-2:],
        field_name=field_name,
        dataset_name=dataset_name,
        parameters=parameters,
    ) as w:
        for k in range(fields.shape[1]):
            w.write(k, fields[:, k])
    return Path(path)
