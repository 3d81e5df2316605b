"""The dataset index: files -> trajectories -> snapshots, splits, normalisation and validation.

A dataset is one of

- a folder of ``.mat`` files: one trajectory, time order = natural sort of the file names
  (``2.mat`` before ``10.mat``);
- a folder of trajectory folders, each a folder of ``.mat`` files (what ``vqturb generate`` writes);
- one or several HDF5 files (a folder of them, a file, or a list of files): The Well's layout
  ``t0_fields/<name>`` ``[n_traj, n_t, H, W]`` or any dataset chosen with ``h5_key``.

Opening a dataset reads headers only (one header per trajectory), so it is fast on a folder of
thousands of files; values are validated when read (:meth:`Dataset.get`) and everything is checked
up front by :func:`inspect_dataset` (``vqturb inspect``). Snapshots are served through a
bytes-bounded LRU cache so a dataset larger than memory streams from disk.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import h5py
import numpy as np

from vqturb.data import readers
from vqturb.errors import InputError


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

T = TypeVar("T")
# Indices may come from NumPy arrays (subset.refs[i]); accept NumPy integers as well as int.
Index = int | np.integer


def natural_key(name: str) -> list[Any]:
    """Sort key putting ``2.mat`` before ``10.mat`` (digit runs compare as integers)."""
    # re.split with a capture group alternates text, digits, text, ...: types line up by position.
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", name)]


def natural_sorted(paths: Sequence[Path]) -> list[Path]:
    return sorted(paths, key=lambda p: (natural_key(p.name), p.name))


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


class Splits(NamedTuple):
    """Train / validation / test subsets, disjoint by trajectory (or by time block)."""

    train: Subset
    val: Subset
    test: Subset


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
        h5_layouts: dict[Path, readers.H5Layout] | None = None,
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
            a = readers.read_field(path, self.var, dtype=dtype)
            what = f"variable '{self.var}'"
        else:
            path = tr.h5_path
            layout = self._h5_layouts[path]
            f = self._h5(path)
            with self._h5_lock:  # h5py serialises calls anyway; keep the handle use explicit
                a = readers.read_h5_snapshot(f, path, layout, tr.h5_index, t)
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
                vals = [readers.read_time(p) for p in tr.files]
                if all(v is not None for v in vals):
                    times = np.asarray(vals, dtype=np.float64)
            else:
                f = self._h5(tr.h5_path)
                with self._h5_lock:
                    times = readers.h5_times(f, self._h5_layouts[tr.h5_path], tr.h5_index)
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
        """Split into train / val / test.

        With several trajectories the split is by whole trajectory (a seeded permutation, so
        it is the same on every run and machine): no trajectory contributes to two subsets, so
        validation measures generalisation to unseen runs, not to neighbouring frames. A
        fraction > 0 gets at least one trajectory while train keeps at least one.

        With one trajectory the split is by contiguous time blocks, train first, then val, then
        test, so pairs (t, t+k) never mix blocks. Blocks adjacent in time are still correlated:
        the score on val is then optimistic.
        """
        for name, v in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0.0 <= v < 1.0:
                raise InputError(None, name, f"{v}", "a fraction in [0, 1)")
        if val_fraction + test_fraction >= 1.0:
            raise InputError(
                None,
                "val_fraction + test_fraction",
                f"{val_fraction + test_fraction}",
                "less than 1 so that something is left to train on",
            )
        n_traj = self.n_trajectories
        if n_traj > 1:
            train_ids, val_ids, test_ids = split_trajectory_ids(
                n_traj, val_fraction, test_fraction, seed
            )
            return Splits(
                Subset(self, _refs_of(self, train_ids), name="train"),
                Subset(self, _refs_of(self, val_ids), name="val"),
                Subset(self, _refs_of(self, test_ids), name="test"),
            )
        blocks = split_time_blocks(self.trajectories[0].n_steps, val_fraction, test_fraction)
        return Splits(
            *(
                Subset(self, np.stack([np.zeros_like(b), b], axis=1), name=name)
                for name, b in zip(("train", "val", "test"), blocks, strict=True)
            )
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


def split_trajectory_ids(
    n_traj: int, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted ``(train, val, test)`` trajectory ids of :meth:`Dataset.split` for ``n_traj``
    trajectories: one seeded permutation, test first, then val, the rest train. Anything that
    must agree with a dataset's split (e.g. the held-out frames of a tokens file) calls this."""
    n_val, n_test = _split_counts(n_traj, val_fraction, test_fraction)
    perm = np.random.default_rng(seed).permutation(n_traj)
    return (
        np.sort(perm[n_test + n_val :]),
        np.sort(perm[n_test : n_test + n_val]),
        np.sort(perm[:n_test]),
    )


def split_time_blocks(
    n: int, val_fraction: float, test_fraction: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contiguous ``(train, val, test)`` time indices of a single trajectory of ``n`` frames."""
    n_val, n_test = _split_counts(n, val_fraction, test_fraction)
    n_train = n - n_val - n_test
    t = np.arange(n)
    return t[:n_train], t[n_train : n_train + n_val], t[n_train + n_val :]


def _split_counts(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int]:
    n_val = round(val_fraction * n)
    n_test = round(test_fraction * n)
    # a requested split gets at least one item when train can keep one
    if val_fraction > 0 and n_val == 0 and n - n_test - 1 >= 1:
        n_val = 1
    if test_fraction > 0 and n_test == 0 and n - n_val - 1 >= 1:
        n_test = 1
    while n_val + n_test > n - 1:
        if n_test >= n_val and n_test > 0:
            n_test -= 1
        else:
            n_val -= 1
    return n_val, n_test


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
        if dt < 1:
            raise InputError(None, "dt", f"{dt}", "a positive number of snapshots")
        if len(self) == 0:
            return np.zeros((0, 2), dtype=np.int64)
        stride = int(self.refs[:, 1].max()) + dt + 1
        keys = self.refs[:, 0] * stride + self.refs[:, 1]
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        want = keys + dt
        pos = np.searchsorted(sorted_keys, want)
        pos_c = np.minimum(pos, len(sorted_keys) - 1)
        ok = sorted_keys[pos_c] == want
        i = np.nonzero(ok)[0]
        j = order[pos_c[ok]]
        return np.stack([i, j], axis=1).astype(np.int64)


# ----------------------------------------------------------------------------------------
# Normalisation


@dataclass(frozen=True)
class Normalization:
    """Affine normalisation ``(x - mean) / std`` with one mean and std for the whole dataset.

    Stored in checkpoints (``to_dict``) so a model is always fed fields normalised the way it
    was trained.
    """

    mean: float  # mean of every value of the training subset
    std: float  # population standard deviation (ddof=0) of the same values

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean) and math.isfinite(self.std) and self.std > 0):
            raise InputError(
                None, "normalization", f"mean={self.mean}, std={self.std}", "finite, std > 0"
            )

    def to_dict(self) -> dict[str, float]:
        return {"mean": float(self.mean), "std": float(self.std)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalization:
        return cls(mean=float(d["mean"]), std=float(d["std"]))

    def apply(self, x: T) -> T:
        """``(x - mean) / std``; keeps the array type and float precision (NumPy or JAX)."""
        return (x - self.mean) / self.std  # Python floats are "weak": float32 stays float32

    def invert(self, x: T) -> T:
        """``x * std + mean``, the inverse of :meth:`apply`."""
        return x * self.std + self.mean


@dataclass
class RunningStats:
    """Streaming count, mean, M2 (sum of squared deviations), min and max in float64.

    Merging uses the pairwise update of Chan, Golub & LeVeque (1979), "Updating formulae and a
    pairwise algorithm for computing sample variances": stable where the naive
    ``E[x^2] - E[x]^2`` loses every digit when the mean is large next to the spread.
    """

    n: int = 0  # values seen so far
    mean: float = 0.0  # their mean
    m2: float = 0.0  # sum of squared deviations from the mean
    min: float = math.inf  # smallest value
    max: float = -math.inf  # largest value

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        n_b = int(x.size)
        if n_b == 0:
            return
        mean_b = float(x.mean())
        m2_b = float(np.square(x - mean_b).sum())
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * self.n * n_b / n
        self.n = n
        self.min = min(self.min, float(x.min()))
        self.max = max(self.max, float(x.max()))

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.n) if self.n else math.nan


def compute_normalization(
    subset: Subset, *, max_snapshots: int | None = None, progress: bool = False
) -> Normalization:
    """Mean and std of every value in ``subset``, in one streaming pass (memory: one snapshot).

    Args:
        subset: usually the training split (statistics must not see validation data).
        max_snapshots: use at most this many snapshots, evenly spaced through the subset
            (deterministic), for datasets too large to read twice; ``None``: all of them.
        progress: show a progress bar on stderr.

    Raises:
        InputError: empty subset, or all values equal (std 0: nothing to normalise by).
    """
    from vqturb.utils.progress import Progress

    if len(subset) == 0:
        raise InputError(subset.dataset.source, None, f"subset '{subset.name}' is empty", "data")
    n = len(subset)
    if max_snapshots is not None and 0 < max_snapshots < n:
        positions = np.unique(np.linspace(0, n - 1, max_snapshots).round().astype(np.int64))
    else:
        positions = np.arange(n)
    stats = RunningStats()
    with Progress(len(positions), desc="normalisation", unit="snap", disable=not progress) as bar:
        for i in positions:
            # statistics in the stored precision (float32 would lose the spread of a field
            # whose |mean| >> std); the float32 copy still warms the cache for training
            traj, t = (int(v) for v in subset.refs[i])
            raw = subset.dataset.read(traj, t)
            subset.dataset._store((traj, t), raw)
            stats.update(raw)
            bar.update(1)
    if not stats.std > 0:
        raise InputError(
            subset.dataset.source,
            f"variable '{subset.dataset.var}'",
            f"standard deviation 0 over {len(positions)} snapshots (every value is {stats.mean})",
            "fields that vary",
        )
    return Normalization(mean=stats.mean, std=stats.std)


# ----------------------------------------------------------------------------------------
# Opening


def _is_h5_file(p: Path) -> bool:
    return p.suffix.lower() in readers.H5_SUFFIXES


def _visible(folder: Path) -> list[Path]:
    # Hidden names are never data: ".1.x8f2.mat" is a temporary file of an atomic write still in
    # progress (vqturb.utils.fileio), "._1.mat" an AppleDouble file left by macOS copies.
    return [p for p in folder.iterdir() if not p.name.startswith(".")]


def _mat_files(folder: Path) -> list[Path]:
    return natural_sorted(
        [p for p in _visible(folder) if p.is_file() and p.suffix.lower() in readers.MAT_SUFFIXES]
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
        if _is_h5_file(p) or (p.suffix.lower() not in readers.MAT_SUFFIXES and h5py.is_hdf5(p)):
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
                info = readers.field_info(path, var)
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
    layouts: dict[Path, readers.H5Layout] = {}
    out = []
    shape: tuple[int, int] | None = None
    dtype = ""
    for p in paths:
        try:
            with h5py.File(p, "r") as f:
                layout = readers.h5_layout(f, p, var, h5_key)
        except OSError as e:
            raise InputError(
                p, None, f"not a readable HDF5 file ({readers._short(e)}); truncated?", "HDF5"
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


# ----------------------------------------------------------------------------------------
# Full validation (vqturb inspect)


@dataclass
class InspectReport:
    """What ``vqturb inspect`` found: a summary of the valid snapshots and every error."""

    source: str  # the path inspected
    var: str  # variable / field name
    n_trajectories: int  # trajectories found
    n_snapshots: int  # snapshots found (valid or not)
    shape: tuple[int, int]  # (H, W)
    dtype: str  # stored dtype of the first file
    trajectories: list[dict[str, Any]] = field(
        default_factory=list
    )  # name, n_steps, t_first, t_last
    n_valid: int = 0  # snapshots that passed every check
    min: float = math.nan  # smallest value over valid snapshots
    max: float = math.nan  # largest value
    mean: float = math.nan  # mean
    std: float = math.nan  # population standard deviation
    time_range: tuple[float, float] | None = None  # (first, last) time over all trajectories
    has_time: bool = False  # whether times come from the files (else snapshot indices)
    dt_range: tuple[float, float] | None = None  # (smallest, largest) step between snapshots
    errors: list[str] = field(default_factory=list)  # one line per bad file

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["ok"] = self.ok
        return d

    def summary(self, max_trajectories: int = 8) -> str:
        """A few lines of text for the terminal."""
        lines = [
            f"dataset       {self.source} (variable '{self.var}')",
            f"trajectories  {self.n_trajectories}",
        ]
        for tr in self.trajectories[:max_trajectories]:
            tr_time = (
                f", t {tr['t_first']:.6g} .. {tr['t_last']:.6g}"
                if tr["t_first"] is not None
                else ""
            )
            lines.append(f"  {tr['name']}: {tr['n_steps']} snapshots{tr_time}")
        if self.n_trajectories > max_trajectories:
            lines.append(f"  ... and {self.n_trajectories - max_trajectories} more")
        lines += [
            f"snapshots     {self.n_snapshots} ({self.n_valid} valid)",
            f"shape         {self.shape[0]} x {self.shape[1]}",
            f"dtype         {self.dtype}",
            f"values        min {self.min:.6g}  max {self.max:.6g}  "
            f"mean {self.mean:.6g}  std {self.std:.6g}",
        ]
        if self.time_range is not None:
            src = "" if self.has_time else " (snapshot indices: no time variable)"
            lines.append(f"time          {self.time_range[0]:.6g} .. {self.time_range[1]:.6g}{src}")
        if self.has_time and self.dt_range is not None:
            lo, hi = self.dt_range
            # pairs (t, t+k) are k snapshots apart: a constant step makes that a constant time
            kind = "uniform" if hi - lo <= 1e-6 * max(abs(hi), 1e-300) else "NOT uniform"
            span = f"{lo:.6g}" if kind == "uniform" else f"{lo:.6g} .. {hi:.6g}"
            lines.append(f"time step     {span} ({kind})")
        return "\n".join(lines)


def inspect_dataset(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    var: str = "Omega",
    h5_key: str | None = None,
    *,
    divisible_by: int | None = None,
    progress: bool = True,
) -> InspectReport:
    """Read and validate every snapshot; summarise values and times.

    Structural problems that stop indexing (missing path, empty folder, wrong variable in the
    first file) raise :class:`InputError`. Per-file problems (bad values, other shapes, broken
    files, times that go backwards) are collected in ``report.errors``, one line per bad file.
    """
    from vqturb.utils.progress import Progress

    ds = open_dataset(path, var, h5_key, cache_bytes=0, strict=False)
    report = InspectReport(
        source=ds.source,
        var=var,
        n_trajectories=ds.n_trajectories,
        n_snapshots=len(ds),
        shape=ds.shape,
        dtype=ds.dtype,
    )
    stats = RunningStats()
    t_lo, t_hi = math.inf, -math.inf
    dt_lo, dt_hi = math.inf, -math.inf
    all_have_time = True
    try:
        with Progress(len(ds), desc="inspect", unit="snap", disable=not progress) as bar:
            for ti, tr in enumerate(ds.trajectories):
                times: list[float | None] = []
                for t in range(tr.n_steps):
                    try:
                        a = ds.read(ti, t)
                        stats.update(a)
                        report.n_valid += 1
                        if tr.files:
                            times.append(readers.read_time(tr.files[t]))
                    except InputError as e:
                        report.errors.append(str(e))
                        times.append(None)
                    bar.update(1)
                if not tr.files:
                    f = ds._h5(tr.h5_path)
                    h5t = readers.h5_times(f, ds._h5_layouts[tr.h5_path], tr.h5_index)
                    times = [None] * tr.n_steps if h5t is None else [float(x) for x in h5t]
                has_time = all(x is not None for x in times)
                all_have_time &= has_time
                tvals = [float(x) if x is not None else float(i) for i, x in enumerate(times)]
                if has_time:
                    for i in range(1, len(tvals)):
                        if not tvals[i] > tvals[i - 1]:
                            report.errors.append(
                                str(
                                    InputError(
                                        ds.location(ti, i),
                                        "variable 'time'",
                                        f"{tvals[i]:.6g} is not after {tvals[i - 1]:.6g} "
                                        f"in {ds.location(ti, i - 1)}",
                                        "times increasing in file-name order",
                                    )
                                )
                            )
                            break
                report.trajectories.append(
                    {
                        "name": tr.name,
                        "n_steps": tr.n_steps,
                        "t_first": tvals[0] if has_time else None,
                        "t_last": tvals[-1] if has_time else None,
                    }
                )
                t_lo, t_hi = min(t_lo, tvals[0]), max(t_hi, tvals[-1])
                if has_time and len(tvals) > 1:
                    steps = np.diff(np.asarray(tvals))
                    dt_lo, dt_hi = min(dt_lo, float(steps.min())), max(dt_hi, float(steps.max()))
    finally:
        ds.close()
    if divisible_by is not None:
        try:
            ds.check_divisible(divisible_by)
        except InputError as e:
            report.errors.append(str(e))
    report.has_time = all_have_time
    report.time_range = (t_lo, t_hi)
    if dt_lo <= dt_hi:
        report.dt_range = (dt_lo, dt_hi)
    if stats.n:
        report.min, report.max = stats.min, stats.max
        report.mean, report.std = stats.mean, stats.std
    return report
