"""The spectral and gradient loss terms: zero at the target, the benchmark's metric, gradients."""

import jax
import jax.numpy as jnp
import numpy as np

from codec.synth import synth_fields
from vqturb.metrics import spectrum_log_error
from vqturb.physics import stats
from vqturb.training import losses


def _blur(x, keep):
    f = np.fft.rfft2(x)
    ky = np.fft.fftfreq(x.shape[-2], 1 / x.shape[-2])[:, None]
    kx = np.fft.rfftfreq(x.shape[-1], 1 / x.shape[-1])[None, :]
    return np.fft.irfft2(f * np.exp(-(ky**2 + kx**2) / keep**2), s=x.shape[-2:])


def test_spectral_loss_is_the_benchmarks_spectrum_error(rng):
    x = synth_fields(rng, 3, 32).astype(np.float32)
    r = _blur(x, 10.0).astype(np.float32)  # above the loss's floor at every shell
    assert float(losses.spectral_loss(x, x)) == 0.0
    want = np.mean(spectrum_log_error(stats.energy_spectrum(r), stats.energy_spectrum(x), kmax=16))
    got = float(losses.spectral_loss(r, x))
    assert got > 0.3
    np.testing.assert_allclose(got, want, rtol=1e-3)
    # channel-last input, and scale-free
    np.testing.assert_allclose(float(losses.spectral_loss(3 * r[..., None], 3 * x)), got, rtol=1e-4)


def test_gradient_loss_zero_at_target_one_at_zero_and_weighs_fine_scales(rng):
    x = synth_fields(rng, 3, 32).astype(np.float32)
    assert float(losses.gradient_loss(x, x)) == 0.0
    np.testing.assert_allclose(float(losses.gradient_loss(np.zeros_like(x), x)), 1.0, rtol=1e-5)
    # the same MSE put at fine scales costs more than at coarse ones
    fine, coarse = x - _blur(x, 3.0), _blur(x, 3.0)
    n_c = coarse / np.sqrt(np.mean(coarse**2))
    n_f = fine / np.sqrt(np.mean(fine**2))
    assert losses.gradient_loss(x + 0.1 * n_f, x) > 2 * losses.gradient_loss(x + 0.1 * n_c, x)


def test_gradients_are_finite_even_for_a_constant_reconstruction(rng):
    x = jnp.asarray(synth_fields(rng, 2, 16).astype(np.float32))
    for fn in (losses.spectral_loss, losses.gradient_loss):
        g = jax.grad(lambda r, fn=fn: fn(r, x))(jnp.zeros_like(x) + 0.5)
        assert np.all(np.isfinite(np.asarray(g)))
        g = jax.grad(lambda r, fn=fn: fn(r, x))(x * 0.7)
        assert np.all(np.isfinite(np.asarray(g))) and float(jnp.abs(g).max()) > 0
