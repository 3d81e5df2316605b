"""Data parallelism: a 1-D device mesh, batches split over it, parameters replicated.

The training step is jitted once over global arrays; XLA inserts the gradient all-reduce because
the batch is sharded along ``"data"`` and the parameters are replicated (JAX docs, "Distributed
arrays and automatic parallelization"). Tested on one CPU with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` set before JAX is imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from vqturb.errors import InputError

DATA_AXIS = "data"


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh with axis ``"data"``.

    Args:
        devices: the devices to use; default ``jax.devices()`` (every local device on one host;
            every device of every process after ``jax.distributed.initialize()``).
    """
    devs = list(jax.devices() if devices is None else devices)
    if not devs:
        raise InputError(None, "devices", "an empty device list", "at least one device")
    return Mesh(np.array(devs), (DATA_AXIS,))


def _check_divisible(x: Any, n: int) -> None:
    for leaf in jax.tree_util.tree_leaves(x):
        b = int(np.shape(leaf)[0]) if np.ndim(leaf) else None
        if b is None or b % n:
            raise InputError(
                None,
                "batch_size",
                f"a batch of {b} cannot be split evenly over {n} devices",
                f"a batch size that is a multiple of the device count {n}",
            )


def shard_batch(x: Any, mesh: Mesh) -> Any:
    """Put a batch (an array or a pytree of arrays with the same leading axis) on ``mesh``,
    its leading axis split over ``"data"``.

    In a multi-process run each process passes its local part of the batch; the result is the
    global array (``jax.make_array_from_process_local_data``).

    Raises:
        InputError: the leading axis is not divisible by the number of devices.
    """
    sharding = NamedSharding(mesh, P(DATA_AXIS))
    if jax.process_count() > 1:
        n_local = len(mesh.local_devices)
        _check_divisible(x, n_local)
        return jax.tree_util.tree_map(
            lambda a: jax.make_array_from_process_local_data(sharding, np.asarray(a)), x
        )
    _check_divisible(x, mesh.size)
    return jax.device_put(x, sharding)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Copy every array leaf of ``tree`` (parameters, optimiser state) to every device of
    ``mesh``. Non-array leaves (e.g. Equinox static fields, ``None``) pass through."""
    sharding = NamedSharding(mesh, P())

    def put(leaf: Any) -> Any:
        if isinstance(leaf, (jax.Array, np.ndarray, np.generic)):
            return jax.device_put(leaf, sharding)
        return leaf

    return jax.tree_util.tree_map(put, tree)
