"""Comparison metrics: how far one field, spectrum or distribution is from a reference.

Relative L2, PSNR, the spectrum log-error, value histograms on fixed bins, and the Jensen–Shannon,
Kullback–Leibler and total-variation distances between histograms. Used by the VQ-VAE validation, the codec's
rate–distortion benchmark and the rollout evaluation. The statistics of one field (spectra,
enstrophy) are physics (:mod:`vqturb.physics.stats`).

Every function accepts any leading batch dimensions and NumPy or JAX arrays (results are JAX
arrays, except the distances between histograms, which follow their inputs: NumPy in float64 for
NumPy inputs).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
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


def _namespace(*xs):
    """NumPy (in float64) unless an input is a JAX array: the seed computed its distances in NumPy
    float64, and an ε of 1e-10 next to probabilities of order 1 is lost in float32."""
    import jax

    return jnp if any(isinstance(x, jax.Array) for x in xs) else np


def _distributions(p, q, eps: float, xp):
    """``p`` and ``q`` normalised along the last axis; with ``eps > 0`` then smoothed as the seed
    does: ``(p + ε) / Σ (p + ε)`` (every bin gets ε, so no bin of either side is empty)."""
    dtype = np.float64 if xp is np else jnp.result_type(float)

    def norm(a):
        a = xp.asarray(a, dtype=dtype)
        a = a / xp.maximum(a.sum(-1, keepdims=True), 1e-30)
        if eps:
            a = a + eps
            a = a / a.sum(-1, keepdims=True)
        return a

    return norm(p), norm(q)


def _kl(a, b, log, xp):
    # Σ a log(a / b); bins with a = 0 contribute nothing, bins with a > 0 and b = 0 make it infinite
    safe_b = xp.where(b > 0, b, 1.0)
    ratio = xp.where(a > 0, xp.where(b > 0, a / safe_b, xp.inf), 1.0)
    return xp.sum(xp.where(a > 0, a * log(ratio), 0.0), axis=-1)


def _log(base: float, xp):
    if base == 2.0:
        return xp.log2
    if base == math.e:
        return xp.log
    return lambda x: xp.log(x) / math.log(base)


def js_divergence(
    p: Float[ArrayLike, "... n"],
    q: Float[ArrayLike, "... n"],
    *,
    base: float = 2.0,
    eps: float = 0.0,
) -> Float[Array | np.ndarray, "..."]:
    """Jensen–Shannon divergence ½ KL(p‖m) + ½ KL(q‖m), m = ½(p + q), between histograms.

    Inputs are normalised to sum to one along the last axis. vqturb's own variant is the default:
    logarithms to base 2 (bits, so the value lies in [0, 1]) and no smoothing (empty bins
    contribute nothing). The seed's variant (``seed_token_metrics`` in
    :mod:`vqturb.evaluation.metrics`) is ``base=math.e`` (nats, in [0, ln 2]) and ``eps=1e-10``:
    ε added to every bin of both normalised histograms, which are then normalised again.

    NumPy inputs are computed with NumPy in float64 (and return NumPy); JAX inputs with JAX.
    """
    xp = _namespace(p, q)
    p, q = _distributions(p, q, eps, xp)
    log = _log(base, xp)
    m = 0.5 * (p + q)
    js = 0.5 * _kl(p, m, log, xp) + 0.5 * _kl(q, m, log, xp)
    return xp.asarray(xp.clip(js, 0.0, math.log(2.0) / math.log(base)))


def kl_divergence(
    p: Float[ArrayLike, "... n"],
    q: Float[ArrayLike, "... n"],
    *,
    base: float = math.e,
    eps: float = 0.0,
) -> Float[Array | np.ndarray, "..."]:
    """Kullback–Leibler divergence KL(p‖q) = Σ p log(p / q) between histograms (nats by default).

    Not symmetric: ``p`` is the distribution the expectation is taken under (the seed's token
    metric is KL(ground truth ‖ generated), i.e. ``p`` = ground truth). Normalisation and ``eps``
    as in :func:`js_divergence`; without smoothing a bin with p > 0 and q = 0 makes it infinite.
    """
    xp = _namespace(p, q)
    p, q = _distributions(p, q, eps, xp)
    return xp.asarray(xp.maximum(_kl(p, q, _log(base, xp), xp), 0.0))


def tv_distance(
    p: Float[ArrayLike, "... n"], q: Float[ArrayLike, "... n"], *, eps: float = 0.0
) -> Float[Array | np.ndarray, "..."]:
    """Total-variation distance ½ Σ |p − q| between normalised histograms, in [0, 1].

    ``eps`` smooths both histograms first as in :func:`js_divergence` (the seed's variant).
    """
    xp = _namespace(p, q)
    p, q = _distributions(p, q, eps, xp)
    return xp.asarray(0.5 * xp.sum(xp.abs(p - q), axis=-1))
