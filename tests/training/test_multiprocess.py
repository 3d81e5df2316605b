"""Two processes on 127.0.0.1 (JAX's Gloo CPU collectives) train exactly what one process does
with the same global batch, for both trainers, and an interrupted two-process run resumes."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import pytest

from vqturb import checkpoint as ck
from vqturb.utils.records import read_metrics

WORKER = Path(__file__).with_name("mp_worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(trainer: str, run: Path, max_steps: int, data: Path, nproc: int, resume: str = "-"):
    """Start ``nproc`` processes of one run and wait for all; every one must succeed."""
    port = free_port()
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                trainer,
                str(run),
                str(max_steps),
                resume,
                str(data),
                str(nproc),
                str(pid),
                str(port),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for pid in range(nproc)
    ]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]


def arrays(path: Path) -> list[np.ndarray]:
    model, _ = ck.load_model(path)
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array))]


def assert_close(a: Path, b: Path) -> None:
    for x, y in zip(arrays(a), arrays(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("trainer", ["vqvae", "nsp"])
def test_two_processes_equal_one_and_resume(trainer, tmp_path, mat_dataset, tokens_path):
    """One process trains 4 steps; two processes train 2 steps, stop, and two processes resume to
    4: the final parameters agree (the all-reduce sums in another order, hence the tolerance)."""
    data = mat_dataset if trainer == "vqvae" else tokens_path
    launch(trainer, tmp_path / "one", 4, data, nproc=1)
    launch(trainer, tmp_path / "two", 2, data, nproc=2)
    assert ck.list_checkpoints(tmp_path / "two") == [2]
    launch(trainer, tmp_path / "two", 4, data, nproc=2, resume="auto")
    assert_close(tmp_path / "one" / "final.eqx", tmp_path / "two" / "final.eqx")
    # only process 0 writes: one record per logged step, not one per process
    steps = [
        r["step"] for r in read_metrics(tmp_path / "two" / "metrics.jsonl") if r["kind"] == "train"
    ]
    assert steps == [1, 2, 3, 4]
