"""Reconstruction loss terms beyond the MSE, for decoders that would otherwise blur the small scales.

Pure functions of a reconstruction and its target, both ``[B, H, W]`` (or ``[B, H, W, 1]``)
normalised periodic fields, each returning a scalar:

- :func:`spectral_loss`: mean over shells 1 ≤ k ≤ N/2 of |log10 E_r(k) − log10 E_x(k)|, the
  energy-spectrum log error that the rate–distortion benchmark reports (DESIGN.md "Physics"),
  made differentiable: shell sums of |ω̂|²/|k|² by a fixed matrix, with a floor relative to the
  target's total energy so empty shells stay finite.
- :func:`gradient_loss`: the mean squared error of the periodic centred-difference gradients,
  relative to the target's mean squared gradient (an H¹-seminorm term: errors at wavenumber k
  weigh ~k² more than in the MSE, so the fine scales the MSE neglects are not given up).

Both are scale-free (their value does not change when recon and target are scaled together), so
one weight means the same for any normalisation.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

EPS_REL = 1e-10  # spectrum floor, relative to the target's total energy per field


@functools.cache
def shell_matrix(h: int, w: int) -> np.ndarray:
    """``[h*(w//2+1), min(h, w)//2]`` (float32) mapping ``rfft2`` modes of vorticity to the
    shells k = round(|k|) = 1 … min(h, w)//2 of the energy spectrum: weight 1/|k|² (E = |ω̂|²/2k²,
    up to a constant), doubled for the modes whose conjugate the rfft leaves out."""
    ky = np.fft.fftfreq(h, 1.0 / h)[:, None]
    kx = np.fft.rfftfreq(w, 1.0 / w)[None, :]
    k = np.rint(np.sqrt(ky**2 + kx**2)).astype(int).ravel()
    twice = np.where((kx == 0) | ((w % 2 == 0) & (kx == w // 2)), 1.0, 2.0)
    k2 = np.broadcast_to(ky**2 + kx**2, (h, w // 2 + 1)).ravel()
    weight = np.broadcast_to(twice, (h, w // 2 + 1)).ravel() / np.maximum(k2, 1.0)
    n_k = min(h, w) // 2
    m = np.zeros((k.size, n_k), dtype=np.float32)
    sel = (k >= 1) & (k <= n_k)
    m[np.flatnonzero(sel), k[sel] - 1] = weight[sel]
    return m


def _fields(x: ArrayLike) -> Float[Array, "b h w"]:
    x = jnp.asarray(x, dtype=jnp.float32)
    return x[..., 0] if x.ndim == 4 else x


def _shell_energy(x: Float[Array, "b h w"]) -> Float[Array, "b k"]:
    b, h, w = x.shape
    p = jnp.abs(jnp.fft.rfft2(x)) ** 2
    return p.reshape(b, -1) @ jnp.asarray(shell_matrix(h, w))


def spectral_loss(recon: ArrayLike, target: ArrayLike) -> Float[Array, ""]:
    """Mean |log10 E_recon(k) − log10 E_target(k)| over 1 ≤ k ≤ N/2 and the batch.

    Args:
        recon, target: ``[B, H, W]`` or ``[B, H, W, 1]``.
    """
    r, x = _fields(recon), _fields(target)
    er, ex = _shell_energy(r), _shell_energy(x)
    floor = EPS_REL * jnp.sum(ex, axis=1, keepdims=True) + 1e-30
    return jnp.mean(jnp.abs(jnp.log10(er + floor) - jnp.log10(ex + floor)))


def _grad(x: Float[Array, "b h w"]) -> tuple[Array, Array]:
    gy = 0.5 * (jnp.roll(x, -1, axis=1) - jnp.roll(x, 1, axis=1))
    gx = 0.5 * (jnp.roll(x, -1, axis=2) - jnp.roll(x, 1, axis=2))
    return gy, gx


def gradient_loss(recon: ArrayLike, target: ArrayLike) -> Float[Array, ""]:
    """‖∇recon − ∇target‖² / ‖∇target‖² (periodic centred differences, batch means).

    Args:
        recon, target: ``[B, H, W]`` or ``[B, H, W, 1]``.
    """
    (ry, rx), (xy, xx) = _grad(_fields(recon)), _grad(_fields(target))
    err = jnp.mean((ry - xy) ** 2 + (rx - xx) ** 2)
    return err / (jnp.mean(xy**2 + xx**2) + 1e-30)
