"""Deterministic, resumable batches of snapshots (``BatchLoader``) and of pairs (``PairLoader``).

Determinism: the batch at global step ``s`` is a pure function of ``(seed, s)``. With
``n = steps_per_epoch``, epoch ``e = s // n`` uses the permutation drawn from
``np.random.default_rng([seed, e])`` and step ``s`` takes its slice ``s % n``. So the loader has
no hidden position: exact resume is "restart from the saved step", on any machine, with any
prefetch depth, and two runs with the same seed see the same batches in the same order.

Prefetch: ``iterate`` runs ``batch_at`` ahead of the consumer on background threads using
grain (``grain.MapDataset.range(start, stop).map(batch_at).to_iter_dataset(ReadOptions(...))``).
grain fits cleanly here because our batches are already a random-access map ``step -> batch``:
grain only has to evaluate it ahead of time, in order, on ``prefetch`` threads with a buffer of
``prefetch`` elements, and it propagates exceptions (an :class:`InputError` raised while reading a
bad file reaches the training loop unchanged). We do not use grain's own shuffle so that the
order stays defined by this module alone (and ``batch_at`` can be called without grain). Threads,
not processes: threads share the snapshot cache, and most of the read time (file I/O, zlib,
NumPy copies; the v5 fast path is nothing else) releases the GIL; scipy's generic MAT parser
and h5py hold it, so those formats gain less from more threads (``benchmarks/bench_loader.py``
measures prefetch against none). A :class:`Dataset` pickles, so a process pool remains possible.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from vqturb.data.normalization import Normalization
from vqturb.data.store import Index, Subset
from vqturb.errors import InputError

# Stop index for an "infinite" iteration; grain's MapDataset.range needs an end.
_FOREVER = 2**62


def _prefetch_iter(fn: Callable[[int], Any], start: int, stop: int, prefetch: int) -> Iterator:
    if prefetch <= 0:
        return (fn(s) for s in range(start, stop))
    import grain

    ds = grain.MapDataset.range(start, stop).map(fn)
    opts = grain.ReadOptions(num_threads=prefetch, prefetch_buffer_size=prefetch)
    return iter(ds.to_iter_dataset(opts))


class BatchSchedule:
    """Which item indices make up the batch at each global step."""

    def __init__(self, n_items: int, batch_size: int, seed: int, shuffle: bool, drop_last: bool):
        self.n_items = n_items
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        if drop_last:
            self.steps_per_epoch = n_items // batch_size
        else:
            self.steps_per_epoch = math.ceil(n_items / batch_size)
        self._perm_cache: tuple[int, np.ndarray] | None = None

    def permutation(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n_items)
        cached = self._perm_cache  # one read of the attribute: safe with prefetch threads
        if cached is not None and cached[0] == epoch:
            return cached[1]
        perm = np.random.default_rng([self.seed, epoch]).permutation(self.n_items)
        self._perm_cache = (epoch, perm)
        return perm

    def indices_at(self, step: Index) -> np.ndarray:
        if step < 0:
            raise ValueError(f"step must be >= 0, got {step}")
        epoch, k = divmod(int(step), self.steps_per_epoch)
        return self.permutation(epoch)[k * self.batch_size : (k + 1) * self.batch_size]


def _normalize_inplace(x: np.ndarray, norm: Normalization) -> None:
    # the batch is a fresh array: normalise it in place (bitwise equal to norm.apply(x), whose
    # Python-float scalars are "weak" and computed in float32 too) without two temporaries
    np.subtract(x, norm.mean, out=x)
    np.divide(x, norm.std, out=x)


def _fingerprint(kind: str, subset: Subset, schedule: BatchSchedule, extra: str = "") -> str:
    ds = subset.dataset
    h = hashlib.sha256()
    h.update(
        f"{kind}|{schedule.seed}|{schedule.batch_size}|{schedule.shuffle}|{schedule.drop_last}|"
        f"{extra}|{ds.var}|{ds.shape}|".encode()
    )
    for tr in ds.trajectories:
        h.update(f"{tr.name}:{tr.n_steps};".encode())
    h.update(np.ascontiguousarray(subset.refs, dtype="<i8").tobytes())
    return h.hexdigest()[:16]


def _check_sizes(n_items: int, batch_size: int, drop_last: bool, what: str) -> None:
    if batch_size < 1:
        raise InputError(None, "batch_size", f"{batch_size}", "a positive integer")
    if n_items == 0 or (drop_last and n_items < batch_size):
        raise InputError(
            None,
            "batch_size",
            f"{batch_size} but the subset has only {n_items} {what}",
            f"at most {n_items} (or more data)",
        )


class _ScheduledLoader:
    """What both loaders share: the (seed, step) -> batch schedule, its fingerprint and the
    prefetching iterator. Abstract: subclasses set ``subset``, ``prefetch``, ``_schedule`` and
    ``_extra`` in ``__init__`` and define ``batch_at``."""

    subset: Subset
    prefetch: int
    _schedule: BatchSchedule
    _extra: str

    @property
    def seed(self) -> int:
        return self._schedule.seed

    @property
    def steps_per_epoch(self) -> int:
        return self._schedule.steps_per_epoch

    @property
    def fingerprint(self) -> str:
        """A short hash of everything that decides the batch order (seed, batch size, flags,
        the subset's snapshots and trajectory names), for a checkpoint to record (the trainers do
        not yet): the same fingerprint on resume means batches from the saved step on are the
        uninterrupted ones."""
        return _fingerprint(type(self).__name__, self.subset, self._schedule, self._extra)

    def indices_at(self, step: Index) -> np.ndarray:
        """Schedule positions (subset positions, or pair rows) of the batch at ``step``."""
        return self._schedule.indices_at(step)

    def batch_at(self, step: Index, *, rows: slice | None = None):
        raise NotImplementedError

    def iterate(
        self, start_step: int = 0, num_steps: int | None = None, *, rows: slice | None = None
    ) -> Iterator:
        """Batches for steps ``start_step, start_step + 1, ...`` (forever unless ``num_steps``),
        prepared ``prefetch`` ahead on background threads; ``rows`` as in :meth:`batch_at`."""
        stop = _FOREVER if num_steps is None else start_step + num_steps
        fn = self.batch_at if rows is None else (lambda s: self.batch_at(s, rows=rows))
        return _prefetch_iter(fn, start_step, stop, self.prefetch)


class BatchLoader(_ScheduledLoader):
    """Shuffled float32 batches ``[B, H, W]`` from a :class:`Subset`, deterministic in (seed, step).

    Args:
        subset: the snapshots to draw from (e.g. ``ds.split().train``).
        batch_size: snapshots per batch.
        seed: seeds the per-epoch permutations.
        shuffle: permute each epoch (else subset order).
        drop_last: drop the incomplete batch at the end of an epoch (keeps shapes static under
            jit); when False the last batch of each epoch is shorter.
        normalization: applied to every batch when given.
        prefetch: batches prepared ahead by ``iterate``, on as many background threads (0:
            none). Raise it on many-core hosts when cold reads are slower than the training
            step (``benchmarks/bench_loader.py`` gives snapshots/s per format).
    """

    def __init__(
        self,
        subset: Subset,
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        normalization: Normalization | None = None,
        prefetch: int = 2,
    ):
        _check_sizes(len(subset), batch_size, drop_last, "snapshots")
        self.subset = subset
        self.batch_size = batch_size
        self.normalization = normalization
        self.prefetch = prefetch
        self._schedule = BatchSchedule(len(subset), batch_size, seed, shuffle, drop_last)
        self._extra = ""

    def batch_at(self, step: Index, *, rows: slice | None = None) -> np.ndarray:
        """The batch at global step ``step``: float32 ``[B, H, W]`` (normalised if configured).
        ``rows`` reads only that slice of it (one process's share of a multi-process batch)."""
        idx = self.indices_at(step)
        x = self.subset.get_batch(idx if rows is None else idx[rows])
        if self.normalization is not None:
            _normalize_inplace(x, self.normalization)
        return x

    def __repr__(self) -> str:
        return (
            f"BatchLoader({self.subset!r}, batch_size={self.batch_size}, seed={self.seed}, "
            f"steps_per_epoch={self.steps_per_epoch})"
        )


class PairLoader(_ScheduledLoader):
    """Batches of pairs ``(x_t, x_{t+dt})`` (float32 ``[B, H, W]`` each), deterministic in
    (seed, step), from :meth:`Subset.pairs` (so no pair crosses a trajectory or split block).

    Arguments as :class:`BatchLoader`, plus ``dt``: the time offset in snapshots.
    """

    def __init__(
        self,
        subset: Subset,
        batch_size: int,
        dt: int = 1,
        *,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        normalization: Normalization | None = None,
        prefetch: int = 2,
    ):
        self.pairs = subset.pairs(dt)
        _check_sizes(len(self.pairs), batch_size, drop_last, f"pairs (t, t+{dt})")
        self.subset = subset
        self.dt = dt
        self.batch_size = batch_size
        self.normalization = normalization
        self.prefetch = prefetch
        self._schedule = BatchSchedule(len(self.pairs), batch_size, seed, shuffle, drop_last)
        self._extra = f"dt={dt}"

    def batch_at(self, step: Index, *, rows: slice | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(x_t, x_{t+dt})`` at global step ``step``, each float32 ``[B, H, W]`` (``rows``: only
        that slice of the batch)."""
        sel = self.indices_at(step)
        pairs = self.pairs[sel if rows is None else sel[rows]]
        x0 = self.subset.get_batch(pairs[:, 0])
        x1 = self.subset.get_batch(pairs[:, 1])
        if self.normalization is not None:
            _normalize_inplace(x0, self.normalization)
            _normalize_inplace(x1, self.normalization)
        return x0, x1
