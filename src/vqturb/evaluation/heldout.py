"""Held-out frames of a tokens file for NSP evaluation: the parts of the file evaluation reads
(:class:`TokenSet`), the trajectories the model never trained on, the starting frames and their
ground-truth windows."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vqturb.errors import InputError

# Tokens-file fields this module needs (CONTRACTS.md, "Tokens file").
REQUIRED_TOKEN_FIELDS = (
    "indices_flat",
    "scales",
    "scale_offsets",
    "scale_vocab_sizes",
    "unified_to_original",
    "trajectory_id",
    "time_index",
)


@dataclass(frozen=True)
class TokenSet:
    """The parts of a tokens file that evaluation uses."""

    path: str  # where it was read from (for error messages)
    indices: np.ndarray  # [N, T] int32 unified token ids, scale by scale
    scales: tuple[int, ...]  # side length of each scale
    scale_offsets: tuple[int, ...]  # first unified id of each scale
    scale_vocab_sizes: tuple[int, ...]  # ids per scale
    unified_to_original: np.ndarray  # [V] unified id -> code index in the VQ-VAE's codebook
    trajectory_id: np.ndarray  # [N] trajectory of each row
    time_index: np.ndarray  # [N] time index of each row inside its trajectory
    norm_mean: float  # normalisation the VQ-VAE saw: physical = mean + std * normalised
    norm_std: float  # (1.0 when the file has no statistics)
    checkpoint_sha256: str | None  # hash of the VQ-VAE checkpoint that made the tokens

    @property
    def layout(self) -> dict[str, tuple[int, ...]]:
        return {
            "scales": self.scales,
            "scale_offsets": self.scale_offsets,
            "scale_vocab_sizes": self.scale_vocab_sizes,
        }

    def row_of(self) -> dict[tuple[int, int], int]:
        """(trajectory, time index) -> row."""
        return {
            (int(a), int(b)): i
            for i, (a, b) in enumerate(zip(self.trajectory_id, self.time_index, strict=True))
        }


def load_tokens(path: str | os.PathLike) -> TokenSet:
    """Read and check a tokens file (``vqturb tokenizer save``); InputError names what is wrong."""
    from vqturb.data.tokens_file import read_tokens_file

    path = Path(path)
    z = read_tokens_file(
        path, REQUIRED_TOKEN_FIELDS, optional=("norm_mean", "norm_std", "checkpoint_sha256")
    )
    idx = np.asarray(z["indices_flat"])
    scales = tuple(int(s) for s in np.ravel(z["scales"]))
    ts = TokenSet(
        path=str(path),
        indices=idx.astype(np.int32),
        scales=scales,
        scale_offsets=tuple(int(s) for s in np.ravel(z["scale_offsets"])),
        scale_vocab_sizes=tuple(int(s) for s in np.ravel(z["scale_vocab_sizes"])),
        unified_to_original=np.asarray(z["unified_to_original"]).astype(np.int32),
        trajectory_id=np.asarray(z["trajectory_id"]).astype(np.int64),
        time_index=np.asarray(z["time_index"]).astype(np.int64),
        norm_mean=float(z["norm_mean"]) if "norm_mean" in z else 0.0,
        norm_std=float(z["norm_std"]) if "norm_std" in z else 1.0,
        checkpoint_sha256=str(z["checkpoint_sha256"]) if "checkpoint_sha256" in z else None,
    )
    n_tok = sum(s * s for s in scales)
    if idx.ndim != 2 or idx.shape[1] != n_tok:
        raise InputError(
            path, "indices_flat", f"shape {idx.shape}", f"[N, {n_tok}] for scales {scales}"
        )
    if not (idx.shape[0] == ts.trajectory_id.shape[0] == ts.time_index.shape[0]):
        raise InputError(
            path,
            "trajectory_id/time_index",
            "lengths differ from indices_flat rows",
            "one entry per row",
        )
    return ts


def split_trajectories(
    trajectory_id: np.ndarray,
    time_index: np.ndarray,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> tuple[str, dict[int, np.ndarray]]:
    """The held-out frames of a tokens file, as ``Dataset.split`` makes them.

    Several trajectories: the same seeded permutation of trajectory ids ``0 … max id`` as
    ``Dataset.split`` (tokens files index the dataset's trajectories), test first. One trajectory:
    the last contiguous time block. Falls back to the validation split when the test split is
    empty (e.g. two trajectories), and to everything when both are.

    Returns:
        ``(split name used, {trajectory: sorted time indices})``.
    """
    from vqturb.data.dataset import split_time_blocks, split_trajectory_ids

    traj = np.asarray(trajectory_id)
    tidx = np.asarray(time_index)
    present = np.unique(traj)
    by_traj = {int(i): np.sort(tidx[traj == i]) for i in present}
    if present.size > 1:
        _, val_ids, test_ids = split_trajectory_ids(
            int(present.max()) + 1, val_fraction, test_fraction, seed
        )
        for name, ids in (("test", test_ids), ("val", val_ids)):
            chosen = {int(i): by_traj[int(i)] for i in ids if int(i) in by_traj}
            if chosen:
                return name, chosen
        return "all", by_traj
    (only,) = by_traj
    times = by_traj[only]
    _, val_t, test_t = split_time_blocks(times.size, val_fraction, test_fraction)
    if test_t.size:
        return "test", {only: times[test_t]}
    if val_t.size:
        return "val", {only: times[val_t]}
    return "all", by_traj


def heldout_frames(
    tokens: TokenSet, nsp_meta: Mapping[str, Any]
) -> tuple[str, dict[int, np.ndarray]]:
    """Frames the NSP model never trained on, preferring its own record.

    ``vqturb train-nsp`` stores the trajectories it held out in its checkpoint
    (``meta["val_trajectories"]``); those are used when present in the tokens file. Otherwise
    :func:`split_trajectories` (the ``Dataset.split`` test split). When the checkpoint says it
    held nothing out (one trajectory), the split name ends in ``"(in-sample for NSP)"``.
    """
    held = nsp_meta.get("val_trajectories")
    present = set(np.unique(tokens.trajectory_id).tolist())
    if held:
        ids = [int(i) for i in held if int(i) in present]
        if ids:
            by = {i: np.sort(tokens.time_index[tokens.trajectory_id == i]) for i in ids}
            return "NSP validation trajectories (held out from NSP training)", by
    name, frames = split_trajectories(tokens.trajectory_id, tokens.time_index)
    if held is not None and not held:
        name += " (in-sample for NSP: it held out no trajectory)"
    return name, frames


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
    tokens: TokenSet, starts: Sequence[tuple[int, int]], n_steps: int
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
