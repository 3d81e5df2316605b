"""Statistics of one field: wavenumber grids, energy and enstrophy spectra, enstrophy.

Two conventions of spectra: vqturb's shell sums in integer wavenumbers (:func:`energy_spectrum`,
:func:`enstrophy_spectrum`, which add up to the energy and enstrophy) and the seed's annulus means
in radians/pixel (:func:`energy_spectrum_annulus_mean`, :func:`enstrophy_spectrum_annulus_mean`).

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


def _bin_sum(density: Float[Array, "... h w"], idx: np.ndarray, n: int) -> Float[Array, "... n"]:
    """Sum of ``density`` over the modes of each bin (``idx[i, j]`` = bin of mode (i, j))."""
    h, w = density.shape[-2:]
    lead = density.shape[:-2]
    flat = density.reshape((-1, h * w))
    out = jnp.zeros((flat.shape[0], n), dtype=density.dtype).at[:, idx.ravel()].add(flat)
    return out.reshape(lead + (n,))


def _shell_sum(density: Float[Array, "... h w"]) -> Float[Array, "... nk"]:
    idx, nk = _shell_index(*density.shape[-2:])
    return _bin_sum(density, idx, nk)


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


# ----------------------------------------------------------------------------------------------
# The seed's spectra: annulus means in radians/pixel


def _radians_per_pixel(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    # the integer wavenumbers of `wavenumbers`, as angular frequency per grid step: K = 2π k / N
    ky = 2.0 * np.pi * np.fft.fftfreq(h, d=1.0 / h) / h
    kx = 2.0 * np.pi * np.fft.fftfreq(w, d=1.0 / w) / w
    return ky[:, None] * np.ones((1, w)), kx[None, :] * np.ones((h, 1))


def _annulus_index(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ky, kx = _radians_per_pixel(h, w)
    kmag = np.sqrt(kx**2 + ky**2)
    n_edges = min(h, w) // 2
    if n_edges < 2:
        raise ValueError(f"annulus spectra need fields of at least 4 x 4 points, got {h} x {w}")
    edges = np.linspace(0.0, float(kmag.max()), n_edges)
    # annulus i holds e_i < |K| <= e_(i+1); the first also holds |K| = 0
    idx = np.clip(np.searchsorted(edges, kmag, side="left") - 1, 0, n_edges - 2).astype(np.int32)
    counts = np.bincount(idx.ravel(), minlength=n_edges - 1)
    return idx, counts, edges


def annulus_wavenumbers(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Centres and edges (radians/pixel) of the annuli of :func:`energy_spectrum_annulus_mean`.

    Returns:
        ``(centres [n], edges [n + 1])`` with ``n = min(h, w) // 2 − 1`` and the edges equally
        spaced from 0 to the largest |K| on the grid (π√2 for even ``h = w``).
    """
    _, _, edges = _annulus_index(h, w)
    return 0.5 * (edges[1:] + edges[:-1]), edges


def _annulus_mean(density: Float[Array, "... h w"]) -> Float[Array, "... n"]:
    idx, counts, _ = _annulus_index(*density.shape[-2:])
    sums = _bin_sum(density, idx, counts.size)
    return sums / jnp.asarray(np.maximum(counts, 1), dtype=density.dtype)


def _seed_power(omega) -> tuple[Float[Array, "... h w"], Float[Array, "... h w"]]:
    omega = jnp.asarray(omega, dtype=jnp.result_type(float))
    h, w = omega.shape[-2:]
    power = jnp.abs(jnp.fft.fft2(omega)) ** 2  # unnormalised FFT, as the seed
    ky, kx = _radians_per_pixel(h, w)
    k2 = ky**2 + kx**2
    inv = np.where(k2 > 0, 1.0 / np.where(k2 > 0, k2, 1.0), 0.0)
    return power, jnp.asarray(inv, dtype=power.dtype)


def energy_spectrum_annulus_mean(omega: Float[ArrayLike, "... h w"]) -> Float[Array, "... n"]:
    """The seed's kinetic-energy spectrum: the *mean* over each annulus of ½|û|² + ½|v̂|², with
    wavenumbers in radians/pixel.

    Definition (the seed's rollout and reconstruction analyses):

    - ``ω̂ = fft2(ω)`` unnormalised (no 1/(H W)), wavenumber of mode (i, j) in radians per grid
      step: ``K = (2π k_y / H, 2π k_x / W)`` with the integer ``k`` of :func:`wavenumbers`, so
      ``|K|`` runs from 0 to π√2;
    - ``ψ̂ = ω̂ / |K|²`` (0 at K = 0), ``û = i K_y ψ̂``, ``v̂ = i K_x ψ̂``, so the density of
      mode K is ``½(|û|² + |v̂|²) = ½ |ω̂|² / |K|²``;
    - annuli: ``min(H, W)//2`` equally spaced edges ``e_0 = 0 … e_n = max |K|``; annulus ``i``
      holds the modes with ``e_i < |K| ≤ e_(i+1)``, the first also K = 0 (so its mean counts the
      zero-energy mean mode); the value is the arithmetic mean of the density over the modes in
      the annulus (0 for an empty one), not the sum.

    It is neither a density per unit wavenumber nor normalised per unit area: for an N × N field
    a mode of amplitude a (ω = a cos(k·x)) puts ½ (a N²/2)² / |K|² on each of its two modes ±k.
    vqturb's :func:`energy_spectrum` is the shell *sum* in integer wavenumbers that adds up to
    ½⟨u² + v²⟩.

    Returns:
        ``[..., n]`` with ``n = min(H, W)//2 − 1``, at the centres of
        :func:`annulus_wavenumbers`.
    """
    power, inv = _seed_power(omega)
    return _annulus_mean(0.5 * power * inv)


def enstrophy_spectrum_annulus_mean(
    omega: Float[ArrayLike, "... h w"],
) -> Float[Array, "... n"]:
    """The seed's enstrophy spectrum: the mean over each annulus of ½|ω̂|² (ω̂ = fft2(ω),
    unnormalised), on the annuli in radians/pixel of :func:`energy_spectrum_annulus_mean`."""
    power, _ = _seed_power(omega)
    return _annulus_mean(0.5 * power)
