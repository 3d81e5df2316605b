"""Fixtures of the training tests."""

import pytest

from synthetic_tokens import write_synthetic_tokens
from vqturb.utils.fileio import file_sha256


@pytest.fixture(scope="session")
def tokens_path(tmp_path_factory):
    d = tmp_path_factory.mktemp("nsp")
    vq = d / "vqvae.eqx"
    vq.write_bytes(b"stand-in VQ-VAE checkpoint")
    return write_synthetic_tokens(
        d / "tokens.npz", n_traj=4, n_steps=12, checkpoint_sha256=file_sha256(vq)
    )
