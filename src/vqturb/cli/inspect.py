"""`vqturb inspect PATH`: validate every file of a dataset and summarise it.

Exit 0 when every snapshot is valid; otherwise one line per bad file on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys

# Print at most this many per-file error lines; the count of the rest follows.
MAX_ERROR_LINES = 50


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "inspect",
        help="validate a dataset and print its trajectories, shape, dtype, value and time ranges",
        description=(
            "Read every snapshot of a dataset (a folder of .mat files, a folder of trajectory "
            "folders, or HDF5 files), check it, and print trajectories, snapshots, shape, dtype, "
            "min/max/mean/std and the time range. Exit code 0 when every file is valid, 2 "
            "otherwise (one line per bad file on stderr)."
        ),
    )
    p.add_argument("path", help="dataset folder, .mat file, or HDF5 file")
    p.add_argument("--var", default="Omega", help="variable holding the field [Omega]")
    p.add_argument(
        "--h5_key",
        default=None,
        help="HDF5 dataset path, e.g. t0_fields/vorticity [search t0_fields/<var>, <var>]",
    )
    p.add_argument(
        "--divisible_by",
        type=int,
        default=None,
        help="also require H and W to be multiples of N (the model's downsampling factor)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from vqturb.data import inspect_dataset

    report = inspect_dataset(
        args.path,
        args.var,
        args.h5_key,
        divisible_by=args.divisible_by,
        progress=not args.no_progress,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        print(report.summary())
    if report.ok:
        return 0
    for line in report.errors[:MAX_ERROR_LINES]:
        print(f"vqturb inspect: error: {line}", file=sys.stderr)
    n_more = len(report.errors) - MAX_ERROR_LINES
    if n_more > 0:
        print(f"vqturb inspect: ... and {n_more} more errors", file=sys.stderr)
    print(
        f"vqturb inspect: {len(report.errors)} problem(s); "
        f"{report.n_snapshots - report.n_valid} of {report.n_snapshots} snapshots invalid",
        file=sys.stderr,
    )
    return 2
