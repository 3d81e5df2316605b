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


def test_seed_annulus_mean_of_a_single_mode():
    """ω = cos(2x) on 8 × 8: its two modes (0, ±2), |K| = 2·2π/8 = π/2 radians/pixel, land in
    the second annulus, whose value is their power averaged over the annulus's 36 modes.

    Annuli (edges linspace(0, π√2, 4) = 0, π√2/3, 2π√2/3, π√2; in integer units |k| = |K|·8/2π the
    edges are 0, 4√2/3 ≈ 1.886, 3.771, 5.657): |k|² ∈ {0, 1, 2} (1 + 4 + 4 = 9 modes) in the
    first, |k|² ∈ {4, 5, 8, 9, 10, 13} (4 + 8 + 4 + 4 + 8 + 8 = 36 modes) in the second.
    """
    n = 8
    x = np.arange(n) * 2 * np.pi / n
    omega = np.cos(2 * x)[None, :] * np.ones((n, 1))
    centres, edges = stats.annulus_wavenumbers(n, n)
    np.testing.assert_allclose(edges, np.linspace(0, np.pi * np.sqrt(2), 4))
    np.testing.assert_allclose(centres, 0.5 * (edges[1:] + edges[:-1]))
    # |fft2(ω)|² = (N²/2)² = 1024 on each of the two modes
    z = np.asarray(stats.enstrophy_spectrum_annulus_mean(omega))
    np.testing.assert_allclose(z, [0.0, 2 * 0.5 * 1024 / 36, 0.0], atol=1e-3)
    e = np.asarray(stats.energy_spectrum_annulus_mean(omega))
    want = 2 * 0.5 * 1024 / (np.pi / 2) ** 2 / 36
    np.testing.assert_allclose(e, [0.0, want, 0.0], rtol=1e-5, atol=1e-6 * want)
    # vqturb's shell sums of the same field: Z(2) = ½⟨ω²⟩ = ¼, E(2) = Z(2)/4
    assert float(stats.enstrophy_spectrum(omega)[2]) == pytest.approx(0.25, rel=1e-5)
    assert float(stats.energy_spectrum(omega)[2]) == pytest.approx(1 / 16, rel=1e-5)


def test_seed_annulus_mean_counts_the_mean_mode_in_the_first_annulus():
    """ω = 1 + cos(x) on 8 × 8: the mean mode (|fft2|² = 64²) and the modes (0, ±1) share the first
    annulus of 9 modes; the mean mode has no kinetic energy but counts in the average."""
    n = 8
    x = np.arange(n) * 2 * np.pi / n
    omega = (1.0 + np.cos(x))[None, :] * np.ones((n, 1))
    z = np.asarray(stats.enstrophy_spectrum_annulus_mean(omega[None]))[0]
    assert z[0] == pytest.approx((0.5 * 64**2 + 2 * 0.5 * 32**2) / 9, rel=1e-5)
    e = np.asarray(stats.energy_spectrum_annulus_mean(omega))
    assert e[0] == pytest.approx(2 * 0.5 * 32**2 / (np.pi / 4) ** 2 / 9, rel=1e-5)
    assert e[1:].max() < 1e-6 * e[0]
    with pytest.raises(ValueError, match="4 x 4"):
        stats.energy_spectrum_annulus_mean(np.zeros((3, 3)))
