"""Comparison metrics: how far one field, spectrum or distribution is from a reference.

Relative L2, PSNR, the spectrum log-error, value histograms on fixed bins, and the Jensen–Shannon
and total-variation distances between histograms. Used by the VQ-VAE validation, the codec's
rate–distortion benchmark and the rollout evaluation. The statistics of one field (spectra,
enstrophy) are physics (:mod:`vqturb.physics.stats`).

Every function accepts any leading batch dimensions and NumPy or JAX arrays (results are JAX
arrays).
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float


def spectrum_log_error(
    e_a: Float[ArrayLike, "... nk"],
    e_b: Float[ArrayLike, "... nk"],
    kmax: int | None = None,
    eps: float = 1e-30,
) -> Float[Array, "..."]:
    """Mean over k = 1 … kmax of |log10 E_a(k) − log10 E_b(k)| (DESIGN.md "spectrum error").

    ``kmax`` defaults to the last shell inside the inscribed circle, ``nk`` of an N×N field being
    about N/√2; pass ``N // 2`` to stay below the Nyquist wavenumber.
    """
    e_a = jnp.asarray(e_a)
    e_b = jnp.asarray(e_b)
    nk = e_a.shape[-1]
    kmax = nk - 1 if kmax is None else min(kmax, nk - 1)
    d = jnp.abs(jnp.log10(e_a[..., 1 : kmax + 1] + eps) - jnp.log10(e_b[..., 1 : kmax + 1] + eps))
    return jnp.mean(d, axis=-1)


def relative_l2(
    a: Float[ArrayLike, "... h w"], b: Float[ArrayLike, "... h w"]
) -> Float[Array, "..."]:
    """‖a − b‖₂ / ‖b‖₂ per field (b is the reference)."""
    a = jnp.asarray(a)
    b = jnp.asarray(b)
    num = jnp.sqrt(jnp.sum((a - b) ** 2, axis=(-2, -1)))
    den = jnp.sqrt(jnp.sum(b**2, axis=(-2, -1)))
    return num / jnp.maximum(den, jnp.finfo(den.dtype).tiny)


def psnr(
    a: Float[ArrayLike, "... h w"], b: Float[ArrayLike, "... h w"], value_range: float
) -> Float[Array, "..."]:
    """Peak signal-to-noise ratio in dB with one fixed ``value_range`` (max − min) per dataset."""
    a = jnp.asarray(a)
    b = jnp.asarray(b)
    mse = jnp.mean((a - b) ** 2, axis=(-2, -1))
    return 20.0 * jnp.log10(value_range) - 10.0 * jnp.log10(jnp.maximum(mse, 1e-30))


def histogram(x: ArrayLike, bins: ArrayLike) -> Float[Array, " nbins"]:
    """Probability mass on fixed bin edges (values outside go to the end bins), sums to 1."""
    x = jnp.ravel(jnp.asarray(x))
    edges = jnp.asarray(bins)
    idx = jnp.clip(jnp.searchsorted(edges, x, side="right") - 1, 0, edges.shape[0] - 2)
    counts = jnp.bincount(idx, length=edges.shape[0] - 1).astype(jnp.result_type(float))
    return counts / jnp.maximum(counts.sum(), 1.0)


def js_divergence(
    p: Float[ArrayLike, "... n"], q: Float[ArrayLike, "... n"]
) -> Float[Array, "..."]:
    """Jensen–Shannon divergence in bits (base 2, so it lies in [0, 1]) between histograms.

    Inputs are normalised to sum to one along the last axis; empty bins contribute nothing.
    """
    p = jnp.asarray(p, dtype=jnp.result_type(float))
    q = jnp.asarray(q, dtype=jnp.result_type(float))
    p = p / jnp.maximum(p.sum(-1, keepdims=True), 1e-30)
    q = q / jnp.maximum(q.sum(-1, keepdims=True), 1e-30)
    m = 0.5 * (p + q)

    def kl(a, b):
        ratio = jnp.where(a > 0, a / jnp.where(b > 0, b, 1.0), 1.0)
        return jnp.sum(jnp.where(a > 0, a * jnp.log2(ratio), 0.0), axis=-1)

    return jnp.clip(0.5 * kl(p, m) + 0.5 * kl(q, m), 0.0, 1.0)


def tv_distance(p: Float[ArrayLike, "... n"], q: Float[ArrayLike, "... n"]) -> Float[Array, "..."]:
    """Total-variation distance ½ Σ |p − q| between normalised histograms, in [0, 1]."""
    p = jnp.asarray(p, dtype=jnp.result_type(float))
    q = jnp.asarray(q, dtype=jnp.result_type(float))
    p = p / jnp.maximum(p.sum(-1, keepdims=True), 1e-30)
    q = q / jnp.maximum(q.sum(-1, keepdims=True), 1e-30)
    return 0.5 * jnp.sum(jnp.abs(p - q), axis=-1)
