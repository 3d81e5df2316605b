"""Readers (.mat v4/v5/v7.3, HDF5), validation, the dataset index, normalisation and batching.

Device sharding lives in :mod:`vqturb.data.sharding` (it imports JAX; this package does not).
"""

from vqturb.data.dataset import (
    DEFAULT_CACHE_BYTES,
    Dataset,
    InspectReport,
    Normalization,
    RunningStats,
    Splits,
    Subset,
    Trajectory,
    compute_normalization,
    inspect_dataset,
    natural_key,
    natural_sorted,
    open_dataset,
)
from vqturb.data.loader import BatchLoader, PairLoader
from vqturb.data.readers import (
    FieldInfo,
    field_info,
    list_variables,
    mat_version,
    read_field,
    read_time,
)

__all__ = [
    "DEFAULT_CACHE_BYTES",
    "BatchLoader",
    "Dataset",
    "FieldInfo",
    "InspectReport",
    "Normalization",
    "PairLoader",
    "RunningStats",
    "Splits",
    "Subset",
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
