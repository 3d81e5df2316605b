"""JSON records: values made JSON-safe, and ``metrics.jsonl`` files read back (docs/formats.md)."""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np


def to_python(value: Any) -> Any:
    """Turn JAX/NumPy scalars and arrays into JSON-safe Python values (NaN/Inf become None)."""
    if isinstance(value, (np.ndarray, np.generic)) or type(value).__module__.startswith("jax"):
        arr = np.asarray(value)
        value = arr.item() if arr.ndim == 0 else arr.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [to_python(v) for v in value]
    if isinstance(value, dict):
        return {k: to_python(v) for k, v in value.items()}
    return value


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """Read a ``metrics.jsonl`` file back (used by reports and tests)."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
