"""Statistics of one field: wavenumber grids, energy and enstrophy spectra, enstrophy.

Comparisons of two fields or distributions (relative L2, PSNR, spectrum error, JS, TV) are in
:mod:`vqturb.metrics`.

Conventions (DESIGN.md, "Physics"): fields live on the periodic square [0, 2π)², so wavenumbers
are integers; ω̂ = fft2(ω) / (H W). Every function accepts any leading batch dimensions
(``[..., H, W]``) and works on NumPy or JAX arrays (results are JAX arrays).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float


def wavenumbers(h: int, w: int) -> tuple[Float[Array, "h w"], Float[Array, "h w"]]:
    """Integer wavenumber grids ``(ky, kx)`` for an ``h × w`` field on [0, 2π)²."""
    ky = jnp.fft.fftfreq(h, d=1.0 / h)
    kx = jnp.fft.fftfreq(w, d=1.0 / w)
    ky2, kx2 = jnp.meshgrid(ky, kx, indexing="ij")
    return ky2, kx2


def _shell_index(h: int, w: int) -> tuple[np.ndarray, int]:
    ky = np.fft.fftfreq(h, d=1.0 / h)
    kx = np.fft.fftfreq(w, d=1.0 / w)
    kmag = np.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)
    # shell k holds k − ½ ≤ |k| < k + ½
    idx = np.floor(kmag + 0.5).astype(np.int32)
    return idx, int(idx.max()) + 1


def _shell_sum(density: Float[Array, "... h w"]) -> Float[Array, "... nk"]:
    h, w = density.shape[-2:]
    idx, nk = _shell_index(h, w)
    lead = density.shape[:-2]
    flat = density.reshape((-1, h * w))
    out = jnp.zeros((flat.shape[0], nk), dtype=density.dtype).at[:, idx.ravel()].add(flat)
    return out.reshape(lead + (nk,))


def energy_spectrum(omega: Float[ArrayLike, "... h w"]) -> Float[Array, "... nk"]:
    """Shell-summed kinetic energy spectrum E(k), k = 0, 1, …, from vorticity.

    E(k) = Σ_{k−½ ≤ |k'| < k+½} |ω̂(k')|² / (2|k'|²), with E(0) = 0, so that Σ_k E(k) = ½⟨u² + v²⟩
    (Parseval, with u = ∂ψ/∂y, v = −∂ψ/∂x and ∇²ψ = −ω).
    """
    omega = jnp.asarray(omega, dtype=jnp.result_type(float))
    h, w = omega.shape[-2:]
    what = jnp.fft.fft2(omega) / (h * w)
    ky, kx = wavenumbers(h, w)
    k2 = ky**2 + kx**2
    inv = jnp.where(k2 > 0, 1.0 / jnp.where(k2 > 0, k2, 1.0), 0.0)
    return _shell_sum(0.5 * jnp.abs(what) ** 2 * inv)


def enstrophy_spectrum(omega: Float[ArrayLike, "... h w"]) -> Float[Array, "... nk"]:
    """Shell-summed enstrophy spectrum Z(k) = Σ_shell ½|ω̂|², so that Σ_k Z(k) = ½⟨ω²⟩."""
    omega = jnp.asarray(omega, dtype=jnp.result_type(float))
    h, w = omega.shape[-2:]
    what = jnp.fft.fft2(omega) / (h * w)
    return _shell_sum(0.5 * jnp.abs(what) ** 2)


def enstrophy(omega: Float[ArrayLike, "... h w"]) -> Float[Array, "..."]:
    """Mean enstrophy ½⟨ω²⟩ over the domain."""
    omega = jnp.asarray(omega)
    return 0.5 * jnp.mean(omega**2, axis=(-2, -1))
