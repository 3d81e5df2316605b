"""One process of a multi-process training run, for tests/training/test_multiprocess.py.

Usage: python mp_worker.py TRAINER RUN_DIR MAX_STEPS RESUME DATA NPROC PID PORT
(TRAINER: vqvae | nsp; RESUME: "auto" or "-"; NPROC 1 starts no distributed runtime.)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vqturb.training.distributed import DistributedConfig, initialize  # noqa: E402


def main() -> None:
    trainer, run_dir, max_steps, resume, data, nproc, pid, port = sys.argv[1:9]
    nproc, pid = int(nproc), int(pid)
    if nproc > 1:
        assert initialize(DistributedConfig(f"127.0.0.1:{port}", nproc, pid))
    import jax

    assert jax.process_count() == nproc, jax.process_count()
    # SGD: Adam and Lion divide each gradient element by its own magnitude, so elements whose
    # gradient is zero by symmetry (a bias before a normalisation) turn the last-bit differences
    # of a differently ordered all-reduce into full steps of opposite sign; SGD keeps them small
    kw = dict(
        max_steps=int(max_steps), resume=None if resume == "-" else resume, save_every=2,
        optimizer="sgd", lr=1e-2,
    )  # fmt: skip
    if trainer == "vqvae":
        from test_vqvae_task import tiny_cfg, train_cfg

        from vqturb.training.vqvae_task import train_vqvae

        # no validation split and no k-means: the test compares training steps, fast
        train_vqvae(tiny_cfg(), train_cfg(data, run_dir, val_fraction=0.0, kmeans_init=False, **kw))
    else:
        from test_nsp_task import config, model_config

        from vqturb.training.nsp_task import train_nsp

        train_nsp(model_config(data), config(data, run_dir, log_every=1, **kw))


if __name__ == "__main__":
    main()
