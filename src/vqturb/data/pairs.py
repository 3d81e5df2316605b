"""Pairs ``(t, t + dt)`` of snapshots inside one trajectory: what the NSP model learns from.

One implementation for a dataset subset (:meth:`Subset.pairs`, the VQ-VAE side's
:class:`~vqturb.data.loader.PairLoader`) and a tokens file (:meth:`TokensFile.pairs`, NSP training).
"""

from __future__ import annotations

import numpy as np

from vqturb.errors import InputError


def make_pairs(trajectory_id: np.ndarray, time_index: np.ndarray, dt: int = 1) -> np.ndarray:
    """Positions ``(i, j)`` with the same trajectory and ``time_index[j] == time_index[i] + dt``.

    Args:
        trajectory_id: ``[N]`` trajectory of each entry.
        time_index: ``[N]`` time index of each entry inside its trajectory.
        dt: pair spacing in time-index units (>= 1).

    Returns:
        ``[P, 2]`` int64, ordered by ``i``; a pair never crosses a trajectory, and a gap in the
        time indices gives no pair across it.

    Raises:
        InputError: ``dt < 1``.
    """
    if dt < 1:
        raise InputError(None, "dt", f"{dt}", "a positive number of snapshots")
    traj = np.asarray(trajectory_id, dtype=np.int64).ravel()
    tidx = np.asarray(time_index, dtype=np.int64).ravel()
    if traj.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    # one integer key per (trajectory, time): the partner of key k is key k + dt
    lo = int(tidx.min())
    stride = int(tidx.max()) - lo + dt + 1
    keys = (traj - int(traj.min())) * stride + (tidx - lo)
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    want = keys + dt
    pos = np.minimum(np.searchsorted(sorted_keys, want), len(sorted_keys) - 1)
    ok = sorted_keys[pos] == want
    i = np.nonzero(ok)[0]
    return np.stack([i, order[pos[ok]]], axis=1).astype(np.int64)


def pairs_in(pairs: np.ndarray, labels: np.ndarray, which: int) -> np.ndarray:
    """The pairs whose two ends both carry split label ``which`` (``labels`` ``[N]`` per entry)."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    labels = np.asarray(labels)
    keep = (labels[pairs[:, 0]] == which) & (labels[pairs[:, 1]] == which)
    return pairs[keep]
