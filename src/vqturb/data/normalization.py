"""Normalisation: one mean and std for a whole dataset, computed in one stable streaming pass."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from vqturb.data.store import Subset
from vqturb.errors import InputError

T = TypeVar("T")


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
