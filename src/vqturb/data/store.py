"""The dataset index: trajectories of snapshots, read lazily and validated through a bounded cache,
and its subsets (ordered lists of ``(trajectory, time)`` references, the train / val / test split).

Build a :class:`Dataset` with :func:`vqturb.data.discover.open_dataset` (headers only). Snapshots
are served through a bytes-bounded LRU cache so a dataset larger than memory streams from disk.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import h5py
import numpy as np

from vqturb.data.h5 import H5Layout, h5_times, read_h5_snapshot
from vqturb.data.mat import read_field, read_time
from vqturb.data.pairs import make_pairs
from vqturb.data.splits import SPLIT_NAMES, SplitRule
from vqturb.errors import InputError

# Indices may come from NumPy arrays (subset.refs[i]); accept NumPy integers as well as int.
Index = int | np.integer


def _default_cache_bytes() -> int:
    """A quarter of physical memory, between 512 MiB and 8 GiB (8 GiB = 32768 float32 snapshots
    at 256x256): a dataset that fits is read from disk once per run, not once per epoch."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX
        ram = 0
    return int(min(8 * 2**30, max(512 * 2**20, ram // 4)))


# The cache only holds what has been read, so a small dataset never uses this much.
DEFAULT_CACHE_BYTES: int = _default_cache_bytes()
H5_CHUNK_CACHE_BYTES: int = 32 * 2**20  # per open HDF5 file


@dataclass(frozen=True)
class Trajectory:
    """One trajectory: a time-ordered run of snapshots from one source."""

    name: str  # folder name for .mat data, "<file>[<i>]" for HDF5
    n_steps: int  # number of snapshots
    files: tuple[Path, ...] = ()  # .mat files in time order (empty for HDF5)
    h5_path: Path | None = None  # HDF5 file holding this trajectory (None for .mat)
    h5_index: int = 0  # trajectory index inside the HDF5 dataset


class _LRUCache:
    """A thread-safe least-recently-used cache bounded by the bytes of the arrays it holds."""

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.nbytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[int, int]) -> np.ndarray | None:
        with self._lock:
            a = self._items.get(key)
            if a is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return a

    def put(self, key: tuple[int, int], a: np.ndarray) -> None:
        if a.nbytes > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.nbytes -= old.nbytes
            self._items[key] = a
            self.nbytes += a.nbytes
            while self.nbytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self.nbytes -= dropped.nbytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.nbytes = 0

    def __len__(self) -> int:
        return len(self._items)


class Dataset:
    """An index of snapshots grouped into trajectories, read lazily through a bounded cache.

    Build one with :func:`open_dataset`. Snapshots are addressed as ``(traj, t)``: trajectory
    number and time index within it.
    """

    def __init__(
        self,
        trajectories: list[Trajectory],
        *,
        var: str,
        shape: tuple[int, int],
        dtype: str,
        source: str,
        h5_layouts: dict[Path, H5Layout] | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        reference: str | None = None,
    ):
        if not trajectories:
            raise InputError(source, None, "no snapshots", "at least one snapshot")
        self.trajectories = list(trajectories)
        self.var = var
        self.shape = shape
        self.dtype = dtype
        self.source = source
        tr0 = self.trajectories[0]
        # the file the shape and dtype were taken from (named in shape errors)
        self.reference = reference or str(tr0.files[0] if tr0.files else tr0.h5_path)
        self._h5_layouts = dict(h5_layouts or {})
        self._h5_files: dict[Path, h5py.File] = {}
        self._h5_lock = threading.Lock()
        self._cache = _LRUCache(cache_bytes)
        self._times: dict[int, np.ndarray] = {}
        self.offsets = np.concatenate([[0], np.cumsum([tr.n_steps for tr in trajectories])])

    # ---- sizes and addressing -----------------------------------------------------------

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def n_trajectories(self) -> int:
        return len(self.trajectories)

    def location(self, traj: Index, t: Index) -> str:
        """Human-readable address of one snapshot: its file (and HDF5 slice)."""
        tr = self.trajectories[traj]
        if tr.files:
            return str(tr.files[t])
        layout = self._h5_layouts[tr.h5_path]
        return f"{tr.h5_path}[{layout.key}][{tr.h5_index}, {t}]"

    def _check_ref(self, traj: Index, t: Index) -> None:
        if not 0 <= traj < len(self.trajectories):
            raise IndexError(f"trajectory {traj} out of range [0, {len(self.trajectories)})")
        if not 0 <= t < self.trajectories[traj].n_steps:
            raise IndexError(
                f"time index {t} out of range [0, {self.trajectories[traj].n_steps}) "
                f"for trajectory {traj}"
            )

    # ---- reading ------------------------------------------------------------------------

    def _h5(self, path: Path) -> h5py.File:
        with self._h5_lock:
            f = self._h5_files.get(path)
            if f is None:
                try:
                    # a 32 MiB chunk cache (h5py's default is 1 MiB): files chunked over several
                    # time steps would otherwise decompress the same chunk once per snapshot
                    f = h5py.File(path, "r", rdcc_nbytes=H5_CHUNK_CACHE_BYTES)
                except OSError as e:
                    raise InputError(path, None, f"could not open ({e})", "an HDF5 file") from e
                self._h5_files[path] = f
            return f

    def read(self, traj: Index, t: Index, *, dtype: type | np.dtype | None = None) -> np.ndarray:
        """Read and validate one snapshot from disk, bypassing the cache.

        Returns:
            ``(H, W)`` C-order array in the stored precision (float32 or float64), or in
            ``dtype`` when given.

        Raises:
            InputError: the file is bad, or its shape differs from the dataset's (both files named).
        """
        self._check_ref(traj, t)
        tr = self.trajectories[traj]
        if tr.files:
            path: Path = tr.files[t]
            a = read_field(path, self.var, dtype=dtype)
            what = f"variable '{self.var}'"
        else:
            path = tr.h5_path
            layout = self._h5_layouts[path]
            f = self._h5(path)
            with self._h5_lock:  # h5py serialises calls anyway; keep the handle use explicit
                a = read_h5_snapshot(f, path, layout, tr.h5_index, t)
            if dtype is not None:
                a = a.astype(dtype, copy=False)
            what = f"dataset '{layout.key}'"
        if a.shape != self.shape:
            raise InputError(
                path,
                what,
                f"shape {a.shape[0]}x{a.shape[1]} differs from {self.shape[0]}x{self.shape[1]} "
                f"in {self.reference}",
                "every snapshot of a dataset to have the same shape",
            )
        return a

    def get(self, traj: Index, t: Index) -> np.ndarray:
        """One snapshot as float32 ``(H, W)``, through the bounded cache.

        The returned array is read-only (it may be shared with the cache); copy before writing.
        """
        key = (int(traj), int(t))
        a = self._cache.get(key)
        if a is None:
            a = self._store(key, self.read(*key, dtype=np.float32))
        return a

    def _store(self, key: tuple[int, int], raw: np.ndarray) -> np.ndarray:
        a = raw.astype(np.float32, copy=False)
        a.flags.writeable = False
        self._cache.put(key, a)
        return a

    def times(self, traj: Index) -> np.ndarray:
        """Physical times of trajectory ``traj``, float64 ``[n_steps]``.

        For .mat data: the ``time`` variable of each file (read on first call, then remembered);
        for HDF5: ``dimensions/time``. Where there is no time, the snapshot indices 0, 1, ...
        """
        traj = int(traj)
        if traj not in self._times:
            tr = self.trajectories[traj]
            times: np.ndarray | None = None
            if tr.files:
                vals = [read_time(p) for p in tr.files]
                if all(v is not None for v in vals):
                    times = np.asarray(vals, dtype=np.float64)
            else:
                f = self._h5(tr.h5_path)
                with self._h5_lock:
                    times = h5_times(f, self._h5_layouts[tr.h5_path], tr.h5_index)
            if times is None:
                times = np.arange(tr.n_steps, dtype=np.float64)
            self._times[traj] = times
        return self._times[traj]

    def cache_info(self) -> dict[str, int]:
        """Cache counters: hits, misses, items, bytes held and the byte bound."""
        c = self._cache
        return {
            "hits": c.hits,
            "misses": c.misses,
            "items": len(c),
            "bytes": c.nbytes,
            "max_bytes": c.max_bytes,
        }

    def clear_cache(self) -> None:
        self._cache.clear()

    def close(self) -> None:
        """Close open HDF5 handles (the dataset reopens them on the next read)."""
        with self._h5_lock:
            for f in self._h5_files.values():
                f.close()
            self._h5_files.clear()

    def __getstate__(self) -> dict[str, Any]:
        # For process-based workers: open HDF5 handles, locks and cached arrays stay behind;
        # the copy reopens files on first use and starts with an empty cache of the same bound.
        state = self.__dict__.copy()
        state["_h5_files"] = {}
        state["_h5_lock"] = None
        state["_cache"] = self._cache.max_bytes
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._h5_lock = threading.Lock()
        self._cache = _LRUCache(state["_cache"])

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Dataset({self.source!r}, var={self.var!r}, trajectories={self.n_trajectories}, "
            f"snapshots={len(self)}, shape={self.shape}, dtype={self.dtype})"
        )

    # ---- subsets ------------------------------------------------------------------------

    def all(self) -> Subset:
        """Every snapshot, in trajectory then time order."""
        return Subset(self, _refs_of(self, range(self.n_trajectories)), name="all")

    def split(self, val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0) -> Splits:
        """Split into train / val / test with :class:`~vqturb.data.splits.SplitRule`, the rule
        every stage uses (the tokenizer records it per row, the NSP trainer and eval-nsp read it).

        With several trajectories the split is by whole trajectory (a seeded permutation, so
        it is the same on every run and machine): no trajectory contributes to two subsets, so
        validation measures generalisation to unseen runs, not to neighbouring frames. A
        fraction > 0 gets at least one trajectory while train keeps at least one.

        With one trajectory the split is by contiguous time blocks, train first, then val, then
        test, so pairs (t, t+k) never mix blocks. Blocks adjacent in time are still correlated:
        the score on val is then optimistic.
        """
        rule = SplitRule(val_fraction, test_fraction, seed)
        refs = _refs_of(self, range(self.n_trajectories))
        labels = rule.labels(refs[:, 0], refs[:, 1], n_trajectories=self.n_trajectories)
        return Splits(
            *(Subset(self, refs[labels == k], name=name) for k, name in enumerate(SPLIT_NAMES))
        )

    def check_divisible(self, factor: Index) -> None:
        """Raise InputError (naming a file) when H or W is not a multiple of ``factor``.

        ``factor`` is the model's total downsampling (16 for channel_mult 1,2,4,4).
        """
        h, w = self.shape
        if factor < 1:
            raise InputError(None, "divisible_by", f"{factor}", "a positive integer")
        if h % factor or w % factor:
            lo = f"{max(factor, h - h % factor)}x{max(factor, w - w % factor)}"
            raise InputError(
                self.reference,
                f"variable '{self.var}'",
                f"field size {h}x{w} is not divisible by {factor} (the model's downsampling factor)",
                f"H and W multiples of {factor}, e.g. crop or resample to {lo}",
            )


def _refs_of(ds: Dataset, traj_ids: Sequence[int] | np.ndarray | range) -> np.ndarray:
    parts = [
        np.stack(
            [np.full(ds.trajectories[i].n_steps, i), np.arange(ds.trajectories[i].n_steps)],
            axis=1,
        )
        for i in traj_ids
    ]
    if not parts:
        return np.zeros((0, 2), dtype=np.int64)
    return np.concatenate(parts).astype(np.int64)


class Subset:
    """An ordered list of ``(traj, t)`` references into a :class:`Dataset`.

    Position ``i`` in the subset is what loaders shuffle; ``trajectory_ids[i]`` and
    ``time_indices[i]`` say which snapshot it is.
    """

    def __init__(
        self, dataset: Dataset, refs: np.ndarray | Sequence[Sequence[int]], name: str = "subset"
    ):
        refs = np.array(refs, dtype=np.int64).reshape(-1, 2)  # a copy: we freeze it below
        refs.flags.writeable = False
        self.dataset = dataset
        self.refs = refs
        self.name = name

    def __len__(self) -> int:
        return int(self.refs.shape[0])

    def __repr__(self) -> str:
        return (
            f"Subset({self.name!r}, snapshots={len(self)}, trajectories={len(self.trajectory_set)})"
        )

    @property
    def shape(self) -> tuple[int, int]:
        return self.dataset.shape

    @property
    def trajectory_ids(self) -> np.ndarray:
        """``[N]`` int64 trajectory number of each entry."""
        return self.refs[:, 0]

    @property
    def time_indices(self) -> np.ndarray:
        """``[N]`` int64 time index (within its trajectory) of each entry."""
        return self.refs[:, 1]

    @property
    def trajectory_set(self) -> list[int]:
        """The trajectories this subset draws from, sorted."""
        return [int(i) for i in np.unique(self.refs[:, 0])]

    def get(self, i: Index) -> np.ndarray:
        """Entry ``i`` as float32 ``(H, W)`` (read-only; cached)."""
        traj, t = self.refs[i]
        return self.dataset.get(int(traj), int(t))

    def get_batch(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Entries ``indices`` stacked: float32 ``[B, H, W]`` (a fresh, writable array)."""
        out = np.empty((len(indices), *self.shape), dtype=np.float32)
        for k, i in enumerate(indices):
            out[k] = self.get(int(i))
        return out

    def times(self) -> np.ndarray:
        """``[N]`` float64 physical time of each entry (see :meth:`Dataset.times`)."""
        out = np.empty(len(self), dtype=np.float64)
        for traj in self.trajectory_set:
            sel = self.refs[:, 0] == traj
            out[sel] = self.dataset.times(traj)[self.refs[sel, 1]]
        return out

    def pairs(self, dt: Index = 1) -> np.ndarray:
        """``[P, 2]`` int64 positions ``(i, j)`` in this subset with the same trajectory and
        ``time_indices[j] == time_indices[i] + dt``.

        Both ends must belong to this subset, so a pair never crosses a trajectory or a split
        block.
        """
        return make_pairs(self.refs[:, 0], self.refs[:, 1], dt)


class Splits(NamedTuple):
    """Train / validation / test subsets, disjoint by trajectory (or by time block)."""

    train: Subset
    val: Subset
    test: Subset
