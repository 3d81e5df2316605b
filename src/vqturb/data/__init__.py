"""Readers (.mat v4/v5/v7.3, HDF5), validation, the dataset index, splits, pairs, normalisation,
batching and the tokens file.

One concept per module: ``mat`` / ``mat_v5`` / ``h5`` / ``validate`` (readers), ``discover``
(which files make which trajectories), ``store`` (the :class:`Dataset`, its cache and subsets),
``splits`` (the one split rule), ``pairs``, ``normalization``, ``inspect`` (``vqturb inspect``),
``loader`` (batches), ``tokens_file`` (``tokens.npz``). Device sharding lives in
:mod:`vqturb.data.sharding` (it imports JAX; this package does not).
"""

from vqturb.data.discover import natural_key, natural_sorted, open_dataset
from vqturb.data.inspect import InspectReport, inspect_dataset
from vqturb.data.loader import BatchLoader, PairLoader
from vqturb.data.mat import (
    FieldInfo,
    field_info,
    list_variables,
    mat_version,
    read_field,
    read_time,
)
from vqturb.data.normalization import Normalization, RunningStats, compute_normalization
from vqturb.data.splits import SplitRule
from vqturb.data.store import DEFAULT_CACHE_BYTES, Dataset, Splits, Subset, Trajectory
from vqturb.data.tokens_file import TokensFile

__all__ = [
    "DEFAULT_CACHE_BYTES",
    "BatchLoader",
    "Dataset",
    "FieldInfo",
    "InspectReport",
    "Normalization",
    "PairLoader",
    "RunningStats",
    "SplitRule",
    "Splits",
    "Subset",
    "TokensFile",
    "Trajectory",
    "compute_normalization",
    "field_info",
    "inspect_dataset",
    "list_variables",
    "mat_version",
    "natural_key",
    "natural_sorted",
    "open_dataset",
    "read_field",
    "read_time",
]
