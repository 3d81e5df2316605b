"""Held-out frames of a tokens file (:class:`~vqturb.data.tokens_file.TokensFile`) for NSP
evaluation: the trajectories neither model trained on, the starting frames and their ground-truth
windows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vqturb.data.splits import TEST, VAL, SplitRule
from vqturb.data.tokens_file import TokensFile
from vqturb.errors import InputError


def heldout_frames(
    tokens: TokensFile, nsp_meta: Mapping[str, Any]
) -> tuple[str, dict[int, np.ndarray]]:
    """Frames the NSP model never trained on: the tokens file's *test* rows.

    The split is the one recorded in the tokens file (the VQ-VAE run's, :mod:`vqturb.data.splits`);
    for a file without one, the rule the NSP run split the same file with (its checkpoint's
    ``meta["split"]``), else the defaults. ``vqturb train-nsp`` trains on train rows only, so test
    rows are unseen by both models. Falls back to the val rows when the test split is empty
    (e.g. two trajectories), and to everything when both are. An NSP checkpoint from before the
    split was shared (``val_trajectories`` but no ``split`` in its meta) trained on every other
    trajectory: its own validation trajectories are used instead.

    Returns:
        ``(split name used, {trajectory: sorted time indices})``.
    """

    def by_trajectory(sel: np.ndarray) -> dict[int, np.ndarray]:
        traj, tidx = tokens.trajectory_id[sel], tokens.time_index[sel]
        return {int(i): np.sort(tidx[traj == i]) for i in np.unique(traj)}

    everything = np.ones(tokens.n_rows, bool)
    if "split" not in nsp_meta and "val_trajectories" in nsp_meta:
        sel = np.isin(tokens.trajectory_id, [int(i) for i in nsp_meta["val_trajectories"]])
        if sel.any():
            return "NSP validation trajectories (held out from NSP training)", by_trajectory(sel)
        return "all (in-sample for NSP: it held out no trajectory)", by_trajectory(everything)
    rule = SplitRule.from_dict(nsp_meta["split"]) if "split" in nsp_meta else None
    labels = tokens.split_labels(rule)
    for name, k in (("test", TEST), ("val", VAL)):
        if np.any(labels == k):
            return name, by_trajectory(labels == k)
    return "all (in-sample for NSP: nothing held out)", by_trajectory(everything)


def choose_starts(
    frames: Mapping[int, np.ndarray], n_samples: int, n_steps: int
) -> list[tuple[int, int]]:
    """Starting frames ``(trajectory, time index)``: samples dealt round-robin over trajectories;
    inside a trajectory, starts spread evenly over the times that leave ``n_steps`` of ground
    truth after them (all at its first frame when it is shorter)."""
    trajs = sorted(frames)
    if not trajs:
        raise InputError(None, "tokens file", "no frames to start from", "at least one trajectory")
    per = {t: [] for t in trajs}
    for i in range(n_samples):
        per[trajs[i % len(trajs)]].append(i)
    starts: list[tuple[int, int]] = [(-1, -1)] * n_samples
    for t, samples in per.items():
        times = frames[t]
        last = max(0, times.size - 1 - n_steps)
        pos = np.linspace(0, last, len(samples)).round().astype(int) if samples else []
        for s, p in zip(samples, pos, strict=True):
            starts[s] = (t, int(times[p]))
    return starts


def ground_truth_windows(
    tokens: TokensFile, starts: Sequence[tuple[int, int]], n_steps: int
) -> np.ndarray:
    """Ground-truth token rows ``[S, T_gt, T]`` for t0, t0 + 1, … (consecutive time indices),
    ``T_gt`` = the longest window every sample has, at most ``n_steps + 1``."""
    rows = tokens.row_of()
    windows = []
    for traj, t0 in starts:
        w = []
        for k in range(n_steps + 1):
            r = rows.get((traj, t0 + k))
            if r is None:
                break
            w.append(r)
        windows.append(w)
    n_gt = min(len(w) for w in windows)
    if n_gt < 1:
        raise InputError(
            tokens.path, "time_index", "a starting frame is missing", "rows for every start"
        )
    return np.stack([tokens.indices[w[:n_gt]] for w in windows])
