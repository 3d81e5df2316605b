"""Several processes, one run: ``jax.distributed.initialize`` from the trainers' flags.

``--coordinator_address HOST:PORT --num_processes N --process_id I`` start an explicit cluster
(every process gets the same address and count, and its own id); without them JAX's own cluster
detection runs where a scheduler announces a multi-process job (SLURM, Open MPI, Kubernetes
JobSets, Cloud TPU; JAX docs, "Multi-process environments"), and a plain single process starts
nothing. On CPUs JAX's Gloo collectives carry the gradient all-reduce between processes.
It must run before JAX creates its backend (the first device query or array).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from vqturb.errors import InputError

# Environment variables that announce a multi-process job which JAX's cluster detection handles.
_CLUSTER_MARKERS = (
    ("SLURM_NTASKS", "SLURM_JOB_ID"),
    ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"),
    ("JAX_COORDINATOR_ADDRESS", "JAX_COORDINATOR_ADDRESS"),
)


@dataclass(frozen=True)
class DistributedConfig:
    """Where this process sits in a multi-process run (all None: detect, or run alone)."""

    coordinator_address: str | None = None  # HOST:PORT of process 0's coordinator service
    num_processes: int | None = None  # processes in the run
    process_id: int | None = None  # this process, 0 .. num_processes - 1

    def __post_init__(self) -> None:
        given = [self.coordinator_address, self.num_processes, self.process_id]
        if any(v is not None for v in given) and not all(v is not None for v in given):
            raise InputError(
                None, "--coordinator_address/--num_processes/--process_id",
                "only some of the three given", "all three, or none (cluster auto-detection)",
            )  # fmt: skip
        if self.num_processes is not None and self.num_processes < 1:
            raise InputError(None, "--num_processes", f"{self.num_processes}", "an integer >= 1")
        if self.process_id is not None and not (0 <= self.process_id < (self.num_processes or 1)):
            raise InputError(
                None, "--process_id", f"{self.process_id}", f"0 .. {(self.num_processes or 1) - 1}"
            )
        if self.coordinator_address is not None:
            host, _, port = self.coordinator_address.rpartition(":")
            if not host or not port.isdigit():
                raise InputError(
                    None, "--coordinator_address", repr(self.coordinator_address), "HOST:PORT"
                )


def cluster_detected() -> bool:
    """Whether the environment announces a multi-process job (more than one task)."""
    for size_var, marker in _CLUSTER_MARKERS:
        if marker in os.environ and size_var in os.environ:
            try:
                return int(os.environ[size_var]) > 1
            except ValueError:
                return True
    return False


def initialize(cfg: DistributedConfig) -> bool:
    """Start JAX's distributed runtime for ``cfg``; returns whether it was started.

    Raises:
        InputError: JAX's backend already exists (something used JAX before this call), or the
            coordinator cannot be reached.
    """
    import jax

    if cfg.num_processes is None and not cluster_detected():
        return False
    if cfg.num_processes == 1:
        return False
    try:
        if cfg.num_processes is None:
            jax.distributed.initialize()
        else:
            jax.distributed.initialize(
                coordinator_address=cfg.coordinator_address,
                num_processes=cfg.num_processes,
                process_id=cfg.process_id,
            )
    except RuntimeError as e:
        raise InputError(
            None, "--coordinator_address", f"JAX's distributed runtime did not start ({e})",
            "a reachable coordinator, started before any other JAX use in this process",
        ) from None  # fmt: skip
    return True
