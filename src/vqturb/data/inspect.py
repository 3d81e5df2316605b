"""Full validation of a dataset (``vqturb inspect``): every snapshot read, values and times
summarised, every bad file listed."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vqturb.data.discover import open_dataset
from vqturb.data.h5 import h5_times
from vqturb.data.mat import read_time
from vqturb.data.normalization import RunningStats
from vqturb.errors import InputError


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
    warnings: list[str] = field(default_factory=list)  # doubts that are not errors

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
        lines += [f"warning       {w}" for w in self.warnings]
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
                            times.append(read_time(tr.files[t]))
                    except InputError as e:
                        report.errors.append(str(e))
                        times.append(None)
                    bar.update(1)
                if not tr.files:
                    f = ds._h5(tr.h5_path)
                    h5t = h5_times(f, ds._h5_layouts[tr.h5_path], tr.h5_index)
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
    root = Path(path) if isinstance(path, str | os.PathLike) else None
    if root is not None and root.is_dir() and not (root / "generate.json").is_file():
        if any(d.is_dir() and re.fullmatch(r"traj_\d+", d.name) for d in root.iterdir()):
            report.warnings.append(
                f"{root} has vqturb generate's layout (traj_NNN folders) but no generate.json, "
                "which generate writes last: the run that made it may not have finished"
            )
    report.has_time = all_have_time
    report.time_range = (t_lo, t_hi)
    if dt_lo <= dt_hi:
        report.dt_range = (dt_lo, dt_hi)
    if stats.n:
        report.min, report.max = stats.min, stats.max
        report.mean, report.std = stats.mean, stats.std
    return report
