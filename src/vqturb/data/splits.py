"""The one train / validation / test split rule of vqturb, by trajectory.

Every consumer asks this module which split a snapshot belongs to: :meth:`Dataset.split` (the
VQ-VAE's training and validation data), ``vqturb tokenizer save`` (which records the split of
every row in ``tokens.npz``), the NSP trainer (trains on the tokens' train rows, validates on
their val rows) and ``vqturb eval-nsp`` (starts rollouts from the test rows). So a trajectory the
VQ-VAE validated on is one the NSP model validates on, and the test trajectories are never trained
on by either.

The rule (:class:`SplitRule`): with several trajectories, one seeded permutation of the
trajectory ids ``0 … n − 1``: the first ``n_test`` go to test, the next ``n_val`` to val, the rest
to train. With one trajectory, contiguous time blocks: train first, then val, then test.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from vqturb.errors import InputError

# Split labels stored per row (``tokens.npz`` field ``split``).
TRAIN, VAL, TEST = 0, 1, 2
SPLIT_NAMES: tuple[str, str, str] = ("train", "val", "test")


@dataclass(frozen=True)
class SplitRule:
    """How snapshots are dealt to train / val / test (see the module docstring)."""

    val_fraction: float = 0.1  # share of trajectories (or of the one trajectory's frames) for val
    test_fraction: float = 0.1  # share for test (never trained on)
    seed: int = 0  # seed of the trajectory permutation

    def __post_init__(self) -> None:
        for name, v in (("val_fraction", self.val_fraction), ("test_fraction", self.test_fraction)):
            if not 0.0 <= v < 1.0:
                raise InputError(None, name, f"{v}", "a fraction in [0, 1)")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise InputError(
                None,
                "val_fraction + test_fraction",
                f"{self.val_fraction + self.test_fraction}",
                "less than 1 so that something is left to train on",
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "val_fraction": float(self.val_fraction),
            "test_fraction": float(self.test_fraction),
            "seed": int(self.seed),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SplitRule:
        return cls(float(d["val_fraction"]), float(d["test_fraction"]), int(d["seed"]))

    @classmethod
    def from_run_meta(cls, meta: Mapping[str, Any]) -> SplitRule:
        """The rule a ``vqturb train-vqvae`` run split its data with (checkpoint ``meta``:
        ``split_seed``, ``val_fraction``, ``test_fraction``); the defaults for what is absent."""
        d = cls()
        return cls(
            float(meta.get("val_fraction", d.val_fraction)),
            float(meta.get("test_fraction", d.test_fraction)),
            int(meta.get("split_seed", d.seed)),
        )

    def counts(self, n: int) -> tuple[int, int]:
        """``(n_val, n_test)`` of ``n`` items: rounded shares; a requested split gets at least one
        item when train can keep one, and train always keeps at least one."""
        n_val = round(self.val_fraction * n)
        n_test = round(self.test_fraction * n)
        if self.val_fraction > 0 and n_val == 0 and n - n_test - 1 >= 1:
            n_val = 1
        if self.test_fraction > 0 and n_test == 0 and n - n_val - 1 >= 1:
            n_test = 1
        while n_val + n_test > n - 1:
            if n_test >= n_val and n_test > 0:
                n_test -= 1
            else:
                n_val -= 1
        return n_val, n_test

    def trajectory_ids(self, n_traj: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sorted ``(train, val, test)`` ids of ``n_traj`` trajectories: one seeded permutation,
        test first, then val, the rest train."""
        n_val, n_test = self.counts(n_traj)
        perm = np.random.default_rng(self.seed).permutation(n_traj)
        return (
            np.sort(perm[n_test + n_val :]),
            np.sort(perm[n_test : n_test + n_val]),
            np.sort(perm[:n_test]),
        )

    def time_blocks(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Contiguous ``(train, val, test)`` positions ``0 … n − 1`` of a single trajectory."""
        n_val, n_test = self.counts(n)
        n_train = n - n_val - n_test
        t = np.arange(n)
        return t[:n_train], t[n_train : n_train + n_val], t[n_train + n_val :]

    def labels(
        self,
        trajectory_id: np.ndarray,
        time_index: np.ndarray,
        n_trajectories: int | None = None,
    ) -> np.ndarray:
        """The split of each snapshot, int8 ``[N]`` (:data:`TRAIN`, :data:`VAL`, :data:`TEST`).

        Args:
            trajectory_id: ``[N]`` trajectory number of each snapshot.
            time_index: ``[N]`` time index of each snapshot inside its trajectory.
            n_trajectories: trajectories of the dataset the ids index (default: largest id + 1,
                right for anything that holds every trajectory, e.g. a tokens file).

        With one trajectory the blocks are over its distinct time indices in time order.
        """
        traj = np.asarray(trajectory_id, dtype=np.int64).ravel()
        tidx = np.asarray(time_index, dtype=np.int64).ravel()
        out = np.zeros(traj.size, dtype=np.int8)
        if traj.size == 0:
            return out
        n = int(traj.max()) + 1 if n_trajectories is None else int(n_trajectories)
        if n > 1:
            _, val_ids, test_ids = self.trajectory_ids(n)
            out[np.isin(traj, val_ids)] = VAL
            out[np.isin(traj, test_ids)] = TEST
            return out
        times, pos = np.unique(tidx, return_inverse=True)
        _, val_t, test_t = self.time_blocks(times.size)
        out[np.isin(pos, val_t)] = VAL
        out[np.isin(pos, test_t)] = TEST
        return out
