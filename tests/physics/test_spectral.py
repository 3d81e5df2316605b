import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vqturb.physics import spectral, stats


def _modes_field(n, modes):
    """Sum of a_j cos(kx x + ky y + φ) on an n × n grid (rows y, columns x), in float64 NumPy."""
    c = 2 * np.pi * np.arange(n) / n
    y, x = np.meshgrid(c, c, indexing="ij")
    return sum(a * np.cos(kx * x + ky * y + ph) for (kx, ky, a, ph) in modes)


def test_wavenumbers_agree_with_stats():
    ky, kx = spectral.rfft_wavenumbers(12)
    sky, skx = stats.wavenumbers(12, 12)
    np.testing.assert_array_equal(np.asarray(ky), np.asarray(sky)[:, :7])
    # only the Nyquist column differs: rfftfreq says +6 where fftfreq says −6
    np.testing.assert_array_equal(np.asarray(kx)[:, :6], np.asarray(skx)[:, :6])
    assert np.all(np.asarray(kx)[:, 6] == 6)


def test_taylor_green_streamfunction_and_velocity():
    n = 16
    y, x = spectral.grid(n)
    omega = 2 * jnp.cos(x) * jnp.cos(y)
    psi = spectral.streamfunction(omega)
    u, v = spectral.velocity(omega)
    np.testing.assert_allclose(psi, jnp.cos(x) * jnp.cos(y), atol=1e-6)
    # u = ∂ψ/∂y, v = −∂ψ/∂x
    np.testing.assert_allclose(u, -jnp.cos(x) * jnp.sin(y), atol=1e-6)
    np.testing.assert_allclose(v, jnp.sin(x) * jnp.cos(y), atol=1e-6)


def test_velocity_is_divergence_free_and_has_the_right_curl(rng):
    n = 32
    w = rng.standard_normal((2, n, n))
    w_hat = np.fft.rfft2(w) * np.asarray(spectral.dealias_mask(n))
    w = np.fft.irfft2(w_hat, s=(n, n))
    w -= w.mean(axis=(-2, -1), keepdims=True)
    u, v = spectral.velocity(w)
    ky, kx = (np.asarray(a) for a in spectral.derivative_wavenumbers(n))
    u_hat, v_hat = np.fft.rfft2(np.asarray(u)), np.fft.rfft2(np.asarray(v))
    div = np.fft.irfft2(1j * kx * u_hat + 1j * ky * v_hat, s=(n, n))
    curl = np.fft.irfft2(1j * kx * v_hat - 1j * ky * u_hat, s=(n, n))
    assert np.max(np.abs(div)) < 1e-4 * np.max(np.abs(w))
    np.testing.assert_allclose(curl, w, atol=1e-4 * np.max(np.abs(w)))


def test_dealias_mask_makes_quadratic_products_exact(rng):
    """Products of kept modes, computed on the grid and projected on the kept modes, equal the
    exact product (computed on a grid twice as fine, where nothing aliases)."""
    n = 24
    mask = np.asarray(spectral.dealias_mask(n))
    assert mask.sum() == 15 * 8  # |ky| ≤ 7 (15 values) and 0 ≤ kx ≤ 7 (8 values)

    def band_limited():
        return np.fft.irfft2(np.fft.rfft2(rng.standard_normal((n, n))) * mask, s=(n, n))

    a, b = band_limited(), band_limited()
    on_grid = np.fft.rfft2(a * b) * mask
    fine = spectral.resample_spectral(a, 2 * n) * spectral.resample_spectral(b, 2 * n)
    exact = np.fft.rfft2(spectral.resample_spectral(fine, n)) * mask
    np.testing.assert_allclose(on_grid, exact, atol=1e-9 * np.abs(exact).max())


@pytest.mark.parametrize("n,m", [(32, 16), (32, 20), (32, 48), (31, 16), (16, 31), (30, 9)])
def test_resample_is_exact_for_band_limited_fields(n, m):
    modes = [(1, 0, 1.0, 0.3), (0, 2, -0.5, 1.0), (3, -2, 0.25, 2.0), (-4, 1, 0.7, -0.4)]
    field = _modes_field(n, modes)
    out = spectral.resample_spectral(field, m)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (m, m)
    np.testing.assert_allclose(out, _modes_field(m, modes), atol=1e-12)


def test_resample_roundtrip_and_interpolation_for_any_field(rng):
    f = rng.standard_normal((3, 16, 16))  # not band-limited: Nyquist modes included
    up = spectral.resample_spectral(f, 48)
    np.testing.assert_allclose(spectral.resample_spectral(up, 16), f, atol=1e-12)
    np.testing.assert_allclose(up[:, ::3, ::3], f, atol=1e-12)  # interpolates the samples
    np.testing.assert_allclose(up.mean(axis=(-2, -1)), f.mean(axis=(-2, -1)), atol=1e-12)


def test_resample_jax_path_and_identity(rng):
    f = jnp.asarray(rng.standard_normal((2, 16, 16)), dtype=jnp.float32)
    out = spectral.resample_spectral(f, 8)
    assert isinstance(out, jax.Array) and out.dtype == jnp.float32 and out.shape == (2, 8, 8)
    np.testing.assert_allclose(
        out, spectral.resample_spectral(np.asarray(f, np.float64), 8), atol=1e-5
    )
    assert spectral.resample_spectral(f, 16) is f


def test_random_vorticity_has_the_prescribed_spectrum():
    n = 48
    w = spectral.random_vorticity(jax.random.PRNGKey(3), n, energy=0.7, k_peak=5.0)
    e = np.asarray(stats.energy_spectrum(w), np.float64)
    assert abs(float(jnp.mean(w))) < 1e-6
    assert e.sum() == pytest.approx(0.7, rel=1e-4)
    shells = np.arange(e.size)
    target = shells**4 * np.exp(-2 * (shells / 5.0) ** 2)
    kept = slice(1, n // 3)  # shells fully inside the dealiasing mask
    target = target * (e[kept].sum() / target[kept].sum())
    np.testing.assert_allclose(e[kept], target[kept], rtol=1e-3)
    # band-limited: nothing outside the 2/3 mask
    w_hat = np.fft.rfft2(np.asarray(w, np.float64))
    outside = ~np.asarray(spectral.dealias_mask(n))
    assert np.abs(w_hat[outside]).max() < 1e-5 * np.abs(w_hat).max()
    # deterministic in the key, different for another key
    np.testing.assert_array_equal(
        w, spectral.random_vorticity(jax.random.PRNGKey(3), n, energy=0.7, k_peak=5.0)
    )
    assert not np.allclose(
        w, spectral.random_vorticity(jax.random.PRNGKey(4), n, energy=0.7, k_peak=5.0)
    )


def test_random_vorticity_custom_spectrum():
    w = spectral.random_vorticity(
        jax.random.PRNGKey(0), 32, energy=1.0, spectrum=lambda k: jnp.where(k == 3, 1.0, 0.0)
    )
    e = np.asarray(stats.energy_spectrum(w))
    assert e[3] == pytest.approx(1.0, rel=1e-4)
    assert e.sum() - e[3] < 1e-6


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(2, 24),
    extra=st.integers(0, 20),
    lead=st.lists(st.integers(1, 2), max_size=2),
    seed=st.integers(0, 2**31),
)
def test_resample_up_then_down_is_identity(n, extra, lead, seed):
    """For any field and any M ≥ N (odd or even), truncating the zero-padded field recovers it,
    the padded field interpolates the samples, and the mean is kept."""
    f = np.random.default_rng(seed).standard_normal((*lead, n, n))
    m = n + extra
    up = spectral.resample_spectral(f, m)
    assert up.shape == (*lead, m, m)
    np.testing.assert_allclose(spectral.resample_spectral(up, n), f, atol=1e-10)
    np.testing.assert_allclose(up.mean(axis=(-2, -1)), f.mean(axis=(-2, -1)), atol=1e-10)
    if m % n == 0:
        np.testing.assert_allclose(up[..., :: m // n, :: m // n], f, atol=1e-10)
