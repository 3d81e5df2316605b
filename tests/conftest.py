"""Test-wide setup: CPU only, float32, no persistent compilation cache, small shared fixtures."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The tests must not write into the user's compilation cache (vqturb.utils.compile_cache); the
# subprocesses they start inherit this too.
os.environ["VQTURB_COMPILE_CACHE"] = "0"

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def stand_in_vqvae():
    """Inside the test, "vqvae" checkpoints load as the tiny stand-in of tests/codec/tiny_model.py
    (written by its ``make_checkpoint``)."""
    from codec.tiny_model import stand_in_builder
    from vqturb import checkpoint as ck

    with ck.registered_kind("vqvae", stand_in_builder):
        yield


def smooth_fields(rng, n: int, size: int, kmax: int = 4) -> np.ndarray:
    """``n`` random band-limited periodic fields (|k| <= kmax), unit-ish amplitude, float64."""
    k = np.fft.fftfreq(size, 1.0 / size)
    mask = (k[:, None] ** 2 + k[None, :] ** 2) <= kmax**2
    spec = (rng.standard_normal((n, size, size)) + 1j * rng.standard_normal((n, size, size))) * mask
    f = np.real(np.fft.ifft2(spec))
    return f / f.std()


def write_mat_dataset(root, rng, n_traj: int = 3, n_t: int = 8, size: int = 16):
    """A folder of trajectory folders of ``<n>.mat`` files holding ``Omega`` and ``time``,
    written directly with scipy (independent of vqturb's own writers)."""
    import scipy.io

    for j in range(n_traj):
        d = root / f"traj_{j:03d}"
        d.mkdir(parents=True)
        base = smooth_fields(rng, 1, size)[0]
        drift = smooth_fields(rng, 1, size)[0]
        for t in range(n_t):
            omega = np.cos(0.3 * t) * base + np.sin(0.3 * t) * drift
            scipy.io.savemat(d / f"{t + 1}.mat", {"Omega": omega, "time": 0.1 * (t + 1)})
    return root


@pytest.fixture
def mat_dataset(tmp_path, rng):
    return write_mat_dataset(tmp_path / "data", rng)
