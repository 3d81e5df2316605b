import numpy as np
import pytest

from vqturb.physics import stats


def _velocity_from_vorticity(omega):
    """Independent route to u, v: solve ∇²ψ = −ω in Fourier space with NumPy."""
    n = omega.shape[-1]
    k = np.fft.fftfreq(n, 1.0 / n)
    ky, kx = np.meshgrid(k, k, indexing="ij")
    k2 = kx**2 + ky**2
    k2[0, 0] = 1.0
    psi_hat = np.fft.fft2(omega) / k2
    psi_hat[0, 0] = 0.0
    u = np.real(np.fft.ifft2(1j * ky * psi_hat))
    v = np.real(np.fft.ifft2(-1j * kx * psi_hat))
    return u, v


# JAX computes in float32 unless x64 is enabled, hence relative tolerances of 1e-5.
def test_energy_spectrum_sums_to_kinetic_energy(rng):
    omega = rng.standard_normal((32, 32))
    # drop the Nyquist row/column: its derivative is not representable on the grid
    what = np.fft.fft2(omega)
    what[16, :] = 0
    what[:, 16] = 0
    what[0, 0] = 0
    omega = np.real(np.fft.ifft2(what))
    u, v = _velocity_from_vorticity(omega)
    e = np.asarray(stats.energy_spectrum(omega))
    assert e.sum() == pytest.approx(0.5 * np.mean(u**2 + v**2), rel=1e-5)


def test_enstrophy_spectrum_sums_to_half_mean_square(rng):
    omega = rng.standard_normal((2, 24, 24))
    z = np.asarray(stats.enstrophy_spectrum(omega))
    np.testing.assert_allclose(z.sum(-1), 0.5 * np.mean(omega**2, axis=(-2, -1)), rtol=1e-5)


def test_single_mode_lands_in_its_shell():
    n = 32
    x = np.arange(n) * 2 * np.pi / n
    omega = np.cos(3 * x)[None, :] * np.ones((n, 1))  # wavenumber (0, 3)
    e = np.asarray(stats.energy_spectrum(omega))
    assert np.argmax(e) == 3
    # ⟨cos²⟩ = ½, so ½⟨ω²⟩/|k|² = 1/(4·9)
    assert e[3] == pytest.approx(1 / 36, rel=1e-5)
    assert e.sum() == pytest.approx(e[3], rel=1e-5)
