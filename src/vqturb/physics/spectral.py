"""Fourier helpers on the periodic square [0, 2π)² (DESIGN.md, "Physics").

Conventions shared with :mod:`vqturb.physics.stats` and the solver:

- A field is ``[..., N, N]`` with the row axis ``y`` and the column axis ``x``:
  ``field[i, j] = f(y_i, x_j)`` with ``y_i = 2π i / N`` and ``x_j = 2π j / N``.
- Wavenumbers are integers (the domain is 2π long), ``(ky, kx)`` in the order of the axes.
- Vorticity and streamfunction: ``∇²ψ = −ω``, velocity ``u = ∂ψ/∂y``, ``v = −∂ψ/∂x``, so that
  ``ω = ∂v/∂x − ∂u/∂y``.
- Spectral state of the solver: ``rfft2`` over the last two axes (``[..., N, N//2 + 1]`` complex,
  unnormalised, as NumPy/JAX return it).

The Nyquist wavenumber (``±N/2``) has no well-defined derivative on the grid (its sine part is
not representable), so derivative operators use ``k = 0`` there, as is standard.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Complex, Float

from vqturb.physics import stats

__all__ = [
    "dealias_mask",
    "default_initial_spectrum",
    "derivative_wavenumbers",
    "grid",
    "random_vorticity",
    "resample_spectral",
    "rfft_wavenumbers",
    "streamfunction",
    "streamfunction_hat",
    "velocity",
    "velocity_hat",
]


def grid(n: int) -> tuple[Float[Array, "n n"], Float[Array, "n n"]]:
    """Collocation points ``(y, x)`` of an ``n × n`` grid on [0, 2π)², each ``[n, n]``."""
    c = 2 * jnp.pi * jnp.arange(n, dtype=jnp.result_type(float)) / n
    y, x = jnp.meshgrid(c, c, indexing="ij")
    return y, x


def rfft_wavenumbers(n: int, dtype=None) -> tuple[Float[Array, "n m"], Float[Array, "n m"]]:
    """Integer wavenumbers ``(ky, kx)`` of ``rfft2`` of an ``n × n`` field, each ``[n, n//2+1]``.

    ``ky`` follows ``fftfreq`` (the Nyquist row is ``−n/2``), ``kx`` follows ``rfftfreq`` (the
    Nyquist column is ``+n/2``); this is the full-FFT grid of :func:`stats.wavenumbers` restricted
    to the non-negative ``kx`` half-plane.
    """
    dtype = jnp.result_type(float) if dtype is None else dtype
    ky = jnp.fft.fftfreq(n, d=1.0 / n).astype(dtype)
    kx = jnp.fft.rfftfreq(n, d=1.0 / n).astype(dtype)
    ky2, kx2 = jnp.meshgrid(ky, kx, indexing="ij")
    return ky2, kx2


def derivative_wavenumbers(n: int, dtype=None) -> tuple[Float[Array, "n m"], Float[Array, "n m"]]:
    """As :func:`rfft_wavenumbers` with the Nyquist wavenumber set to 0 (see module docstring)."""
    ky, kx = rfft_wavenumbers(n, dtype)
    nyq = n // 2 if n % 2 == 0 else None
    if nyq is not None:
        ky = jnp.where(jnp.abs(ky) == nyq, 0.0, ky)
        kx = jnp.where(kx == nyq, 0.0, kx)
    return ky, kx


def dealias_mask(n: int) -> Bool[Array, "n m"]:
    """Orszag's 2/3 rule on the ``rfft2`` grid: keep modes with ``|kx| < n/3`` and ``|ky| < n/3``.

    With this (square) truncation a product of two kept modes has ``|k| < 2n/3``, so its alias
    ``k ∓ n`` has ``|k ∓ n| > n/3`` and falls outside the kept set: quadratic products projected
    on the kept modes are exact (Orszag 1971, J. Atmos. Sci. 28, 1074). The truncated system
    conserves energy and enstrophy exactly in the inviscid limit.
    """
    ky, kx = rfft_wavenumbers(n)
    return (jnp.abs(ky) < n / 3) & (jnp.abs(kx) < n / 3)


def _inverse_laplacian(n: int, dtype) -> Float[Array, "n m"]:
    ky, kx = rfft_wavenumbers(n, dtype)
    k2 = ky**2 + kx**2
    return jnp.where(k2 > 0, 1.0 / jnp.where(k2 > 0, k2, 1.0), 0.0)


def _real_dtype(x) -> jnp.dtype:
    return jnp.finfo(x.dtype).dtype


def streamfunction_hat(omega_hat: Complex[Array, "*b n m"]) -> Complex[Array, "*b n m"]:
    """``ψ̂ = ω̂ / |k|²`` (from ``∇²ψ = −ω``), with a zero mean mode."""
    n = omega_hat.shape[-2]
    return omega_hat * _inverse_laplacian(n, _real_dtype(omega_hat))


def velocity_hat(
    omega_hat: Complex[Array, "*b n m"],
) -> tuple[Complex[Array, "*b n m"], Complex[Array, "*b n m"]]:
    """``(û, v̂) = (i ky ψ̂, −i kx ψ̂)`` from the ``rfft2`` of the vorticity."""
    n = omega_hat.shape[-2]
    ky, kx = derivative_wavenumbers(n, _real_dtype(omega_hat))
    psi_hat = streamfunction_hat(omega_hat)
    return 1j * ky * psi_hat, -1j * kx * psi_hat


def streamfunction(omega: Float[ArrayLike, "*b n n"]) -> Float[Array, "*b n n"]:
    """Streamfunction ψ with ``∇²ψ = −ω`` and zero mean, ``[..., n, n]``."""
    omega = jnp.asarray(omega, dtype=jnp.result_type(float))
    n = omega.shape[-1]
    return jnp.fft.irfft2(streamfunction_hat(jnp.fft.rfft2(omega)), s=(n, n))


def velocity(
    omega: Float[ArrayLike, "*b n n"],
) -> tuple[Float[Array, "*b n n"], Float[Array, "*b n n"]]:
    """Velocity ``(u, v) = (∂ψ/∂y, −∂ψ/∂x)`` of a vorticity field, each ``[..., n, n]``."""
    omega = jnp.asarray(omega, dtype=jnp.result_type(float))
    n = omega.shape[-1]
    u_hat, v_hat = velocity_hat(jnp.fft.rfft2(omega))
    return jnp.fft.irfft2(u_hat, s=(n, n)), jnp.fft.irfft2(v_hat, s=(n, n))


# ----------------------------------------------------------------------------------------------
# Resampling


def _resample_axis(c, axis: int, m: int, xp):
    """Move the full-FFT coefficients ``c`` (length n along ``axis``) to length ``m``.

    Positive and negative frequencies below the smaller Nyquist are copied. At the smaller grid's
    Nyquist ``K/2`` (K even): downsampling adds the source's ``+K/2`` and ``−K/2`` coefficients
    (what point sampling does), upsampling splits the source Nyquist coefficient in two halves
    at ``±K/2`` (trigonometric interpolation of a real signal). Hence ``down(up(f)) == f`` for
    every ``f`` and ``up(f)`` interpolates ``f`` at the coarse points.
    """
    n = c.shape[axis]
    if m == n:
        return c
    k = min(n, m)
    n_pos = (k + 1) // 2  # frequencies 0 .. ceil(k/2) − 1
    n_neg = (k - 1) // 2  # frequencies −1 .. −floor((k−1)/2)

    def take(lo, hi):
        idx = [slice(None)] * c.ndim
        idx[axis] = slice(lo, hi)
        return c[tuple(idx)]

    shape = list(c.shape)
    pos = take(0, n_pos)
    neg = take(n - n_neg, n) if n_neg else take(0, 0)
    if k % 2 == 0:
        if m < n:  # downsampling to an even m: fold ±m/2 onto the new Nyquist
            nyq = take(k // 2, k // 2 + 1) + take(n - k // 2, n - k // 2 + 1)
            mid_len = 0
            parts = [pos, nyq, neg]
        else:  # upsampling from an even n: split the old Nyquist in two halves
            half = 0.5 * take(k // 2, k // 2 + 1)
            mid_len = m - k - 1
            shape[axis] = mid_len
            parts = [pos, half, xp.zeros(shape, dtype=c.dtype), half, neg]
    else:
        mid_len = m - n_pos - n_neg
        shape[axis] = max(mid_len, 0)
        parts = [pos, xp.zeros(shape, dtype=c.dtype), neg]
    return xp.concatenate(parts, axis=axis) * (m / n)


def resample_spectral(
    field: Float[ArrayLike, "*b h w"], m: int
) -> Float[np.ndarray, "*b mh mw"] | Float[Array, "*b mh mw"]:
    """Resample a periodic field to ``m × m`` by spectral truncation (m < N) or zero-padding (m > N).

    Exact for band-limited fields: a field whose modes all satisfy ``|k| < min(N, m)/2`` in each
    direction is represented exactly on the new grid (same Fourier coefficients, so the same
    continuous function), and ``resample_spectral(resample_spectral(f, M), N) == f`` for every
    ``f`` when ``M ≥ N`` (up to float roundoff). The mean is preserved. Downsampling by spectral
    truncation is what ``vqturb generate --save_resolution`` uses.

    Args:
        field: ``[..., H, W]`` real field(s) on [0, 2π)² (H and W may differ; both become m).
            NumPy input is computed with NumPy in its own precision (float64 stays float64) and
            returns NumPy; anything else goes through JAX (float32 unless x64 is enabled).
        m: output side length (≥ 1).

    Returns:
        ``[..., m, m]`` real field(s).
    """
    if m < 1:
        raise ValueError(f"resample_spectral: m must be >= 1, got {m}")
    xp = np if isinstance(field, np.ndarray) else jnp
    x = xp.asarray(field)
    if not xp.issubdtype(x.dtype, xp.floating):
        x = x.astype(xp.float64 if xp is np else jnp.result_type(float))
    h, w = x.shape[-2:]
    if (h, w) == (m, m):
        return x
    c = xp.fft.fft2(x)
    c = _resample_axis(c, -2, m, xp)
    c = _resample_axis(c, -1, m, xp)
    return xp.real(xp.fft.ifft2(c)).astype(x.dtype)


# ----------------------------------------------------------------------------------------------
# Random initial conditions


def default_initial_spectrum(
    k: Float[Array, "*s"], k_peak: float | Float[Array, ""] = 4.0
) -> Float[Array, "*s"]:
    """``E(k) ∝ k⁴ exp(−2 (k/k_peak)²)``: a smooth spectrum peaked at ``k_peak``.

    A common choice for decaying/forced 2D turbulence initial conditions (e.g. McWilliams 1984,
    J. Fluid Mech. 146, 21, uses a similar band-limited bump); unnormalised.
    """
    return k**4 * jnp.exp(-2.0 * (k / k_peak) ** 2)


def random_vorticity(
    key: Array,
    n: int,
    *,
    energy: float = 0.5,
    k_peak: float = 4.0,
    spectrum: Callable[[Array], Array] | None = None,
) -> Float[Array, "n n"]:
    """Random vorticity field whose shell energy spectrum is exactly a prescribed one.

    Gaussian white noise is band-limited by the 2/3 dealiasing mask, then every shell
    ``k − ½ ≤ |k| < k + ½`` is rescaled so that its energy (:func:`stats.energy_spectrum`) equals
    ``E(k)``; phases are those of the noise (uniformly random). ``E`` is normalised so that the
    kinetic energy ``½⟨u² + v²⟩`` equals ``energy``.

    Args:
        key: JAX PRNG key.
        n: grid side.
        energy: kinetic energy ½⟨|u|²⟩ of the result (velocity units²).
        k_peak: peak wavenumber of :func:`default_initial_spectrum` (ignored with ``spectrum``).
        spectrum: ``E(k)`` for integer shells ``k`` (array in, array out), unnormalised.

    Returns:
        ``[n, n]`` vorticity with zero mean, band-limited to the dealiased modes.
    """
    return _random_vorticity(key, energy, k_peak, n=n, spectrum=spectrum)


@partial(jax.jit, static_argnames=("n", "spectrum"))
def _random_vorticity(key, energy, k_peak, *, n, spectrum):
    dtype = jnp.result_type(float)
    noise = jax.random.normal(key, (n, n), dtype=dtype)
    ky, kx = stats.wavenumbers(n, n)
    keep = (jnp.abs(ky) < n / 3) & (jnp.abs(kx) < n / 3) & ((ky != 0) | (kx != 0))
    noise_hat = jnp.fft.fft2(noise) * keep
    e_noise = stats.energy_spectrum(jnp.real(jnp.fft.ifft2(noise_hat)))
    shells = jnp.arange(e_noise.shape[-1], dtype=dtype)
    if spectrum is None:
        target = default_initial_spectrum(shells, k_peak)
    else:
        target = jnp.asarray(spectrum(shells), dtype=dtype)
    target = jnp.where((e_noise > 0) & (shells > 0), target, 0.0)
    target = target * (energy / jnp.maximum(target.sum(), jnp.finfo(dtype).tiny))
    scale = jnp.sqrt(target / jnp.where(e_noise > 0, e_noise, 1.0))
    shell_idx = jnp.floor(jnp.sqrt(ky**2 + kx**2) + 0.5).astype(jnp.int32)
    return jnp.real(jnp.fft.ifft2(noise_hat * scale[shell_idx]))
