"""Vector quantizers: ``Quantizer2d`` (one EMA codebook) and ``MultiScaleQuantizer2d`` (VAR).

Quantizer2d: nearest code by L2 distance, straight-through gradient (van den Oord et al. 2017,
"Neural Discrete Representation Learning"), codebook learned by exponential moving averages of code
counts and code sums with Laplace smoothing of the counts (ibid., App. A.1; Razavi et al. 2019,
"Generating Diverse High-Fidelity Images with VQ-VAE-2", Sec. 3.1 / the Sonnet
``VectorQuantizerEMA``), and random restart of dead codes from encoder outputs of the current
batch (Dhariwal et al. 2020, "Jukebox", Sec. 3.3; Williams et al. 2020).

MultiScaleQuantizer2d: the multi-scale residual quantizer of VAR (Tian et al. 2024, "Visual
Autoregressive Modeling", Sec. 3.3 and Alg. 1): for each scale s, area-downsample the residual to
s×s, quantize, upsample to the latent grid, refine with a 3×3 conv blend φ, add to the running
reconstruction f̂ and subtract from the residual.

All codebook state (codebook, EMA counts, EMA sums) are array leaves of the module, updated only
functionally by ``Quantizer2d.ema_update`` (``eqx.tree_at``) and never by the optimiser.
Distances and EMA statistics are float32 whatever the trunk's dtype.
"""

from __future__ import annotations

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from vqturb.models.conv import Conv2d
from vqturb.models.initializers import random_init, split_key

_HI = jax.lax.Precision.HIGHEST  # fp32 matmuls even where the backend defaults to TF32


class Quantizer2d(eqx.Module):
    """One codebook of ``vocab_size`` vectors of dimension ``dim`` with EMA statistics.

    Fields:
        codebook: [V, D] code vectors (float32).
        ema_count: [V] EMA of the number of vectors assigned to each code per step (N_i).
        ema_sum: [V, D] EMA of the sum of the vectors assigned to each code per step (m_i).

    The EMA starts from zero counts (no bias correction needed: the codebook is the ratio of two
    EMAs with the same bias); a code that has never been used keeps its initial vector.
    """

    codebook: Float[Array, "V D"]
    ema_count: Float[Array, " V"]
    ema_sum: Float[Array, "V D"]
    decay: float = eqx.field(static=True)
    eps: float = eqx.field(static=True)
    dead_code_threshold: float = eqx.field(static=True)

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        *,
        decay: float = 0.99,
        eps: float = 1e-5,
        dead_code_threshold: float = 0.3,
        key: PRNGKeyArray,
    ):
        # Unit-variance codes: the same order as encoder outputs at initialisation; the first
        # ema_update restarts every unused code from data anyway (or use kmeans_init).
        self.codebook = random_init(key, (vocab_size, dim), "normal")
        self.ema_count = jnp.zeros((vocab_size,), jnp.float32)
        self.ema_sum = jnp.zeros((vocab_size, dim), jnp.float32)
        self.decay = decay
        self.eps = eps
        self.dead_code_threshold = dead_code_threshold

    @property
    def vocab_size(self) -> int:
        return self.codebook.shape[0]

    @property
    def dim(self) -> int:
        return self.codebook.shape[1]

    def nearest(self, z: Float[Array, "*n d"]) -> Int[Array, "*n"]:
        """Index of the nearest code in L2: argmin_i ||z||² − 2 z·e_i + ||e_i||², in float32."""
        z = z.astype(jnp.float32)
        e = jax.lax.stop_gradient(self.codebook)
        d = (
            jnp.sum(z * z, axis=-1, keepdims=True)
            - 2.0 * jnp.einsum("...d,vd->...v", z, e, precision=_HI)
            + jnp.sum(e * e, axis=-1)
        )
        return jnp.argmin(d, axis=-1).astype(jnp.int32)

    def lookup(self, indices: Int[ArrayLike, "*n"]) -> Float[Array, "*n d"]:
        """Code vectors for ``indices`` (no gradient reaches the codebook: it is learned by EMA)."""
        return jnp.take(jax.lax.stop_gradient(self.codebook), jnp.asarray(indices), axis=0)

    def counts(self, indices: Int[Array, "*n"]) -> Float[Array, " V"]:
        """How many of ``indices`` point at each code (float32 histogram)."""
        flat = indices.reshape(-1)
        return jax.ops.segment_sum(jnp.ones(flat.shape, jnp.float32), flat, self.vocab_size)

    def ema_update(
        self,
        vectors: Float[Array, "n d"],
        indices: Int[Array, " n"],
        *,
        key: PRNGKeyArray,
    ) -> tuple[Quantizer2d, Int[Array, ""]]:
        """One EMA step of the codebook from a batch of assigned vectors, then dead-code restart.

        With decay γ, batch counts n_i and batch sums s_i (van den Oord et al. 2017, App. A.1):
            N_i ← γ N_i + (1 − γ) n_i,   m_i ← γ m_i + (1 − γ) s_i,
            Ñ_i = (N_i + ε) / (Σ_j N_j + V ε) · Σ_j N_j   (Laplace smoothing),
            e_i = m_i / Ñ_i   (for codes with N_i > 0; others keep their vector).
        Then every code with N_i < threshold · mean_j N_j (a dead code) is restarted: e_i is set to
        a vector of this batch drawn uniformly with ``key``, N_i to the cut-off and m_i = N_i e_i
        so the next EMA step continues from it. Codes at or above the cut-off are never touched.

        Args:
            vectors: [n, D] the vectors that were quantized (stop-gradient encoder outputs or
                VAR residuals).
            indices: [n] the code each was assigned to.
            key: PRNG key for choosing restart vectors.

        Returns:
            (updated quantizer, number of codes restarted).
        """
        g = self.decay
        x = jax.lax.stop_gradient(vectors).astype(jnp.float32)
        n_batch = self.counts(indices)
        s_batch = jax.ops.segment_sum(x, indices, self.vocab_size)
        count = g * self.ema_count + (1.0 - g) * n_batch
        ssum = g * self.ema_sum + (1.0 - g) * s_batch
        total = jnp.sum(count)
        v = self.vocab_size
        smoothed = (count + self.eps) / (total + v * self.eps) * total
        used = count > 0
        codebook = jnp.where(
            used[:, None], ssum / jnp.where(used, smoothed, 1.0)[:, None], self.codebook
        )
        if self.dead_code_threshold > 0:
            cutoff = self.dead_code_threshold * total / v
            dead = count < cutoff
            pick = jr.randint(key, (v,), 0, x.shape[0])
            codebook = jnp.where(dead[:, None], x[pick], codebook)
            count = jnp.where(dead, cutoff, count)
            ssum = jnp.where(dead[:, None], cutoff * x[pick], ssum)
            n_restarted = jnp.sum(dead).astype(jnp.int32)
        else:
            n_restarted = jnp.zeros((), jnp.int32)
        new = eqx.tree_at(
            lambda q: (q.codebook, q.ema_count, q.ema_sum), self, (codebook, count, ssum)
        )
        return new, n_restarted

    def set_codebook(
        self, codebook: Float[Array, "V D"], counts: Float[Array, " V"]
    ) -> Quantizer2d:
        """Replace the codebook and start the EMA from it with ``counts`` (e.g. after k-means)."""
        codebook = codebook.astype(jnp.float32)
        counts = counts.astype(jnp.float32)
        return eqx.tree_at(
            lambda q: (q.codebook, q.ema_count, q.ema_sum),
            self,
            (codebook, counts, codebook * counts[:, None]),
        )


# ---------------------------------------------------------------------------------------------
# Exact, periodic resampling matrices for VAR (built in NumPy at trace time: sizes are static).


@functools.lru_cache(maxsize=256)
def area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] area averaging: output cell i is the mean over [i, i+1)·n_in/n_out.

    Exact fractional overlaps (PyTorch's ``mode="area"`` uses whole overlapping cells when
    n_in/n_out is not an integer; this is the true cell average and equals it when it is).
    """
    a = np.zeros((n_out, n_in))
    r = n_in / n_out
    for i in range(n_out):
        lo, hi = i * r, (i + 1) * r
        for j in range(int(math.floor(lo)), min(n_in, int(math.ceil(hi)))):
            a[i, j] = (min(hi, j + 1) - max(lo, j)) / r
    return a.astype(np.float32)


def _cubic(t: np.ndarray, a: float = -0.75) -> np.ndarray:
    """Keys' cubic convolution kernel; a = −0.75 as PyTorch's bicubic (which VAR uses)."""
    t = np.abs(t)
    return np.where(
        t <= 1,
        (a + 2) * t**3 - (a + 3) * t**2 + 1,
        np.where(t < 2, a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a, 0.0),
    )


@functools.lru_cache(maxsize=256)
def upsample_matrix(n_in: int, n_out: int, mode: str) -> np.ndarray:
    """[n_out, n_in] periodic interpolation (half-pixel centres, taps wrap around the domain).

    ``bicubic`` (Keys a = −0.75) and ``bilinear`` use output centres at (j + ½)·n_in/n_out − ½ in
    input cells, ``nearest`` takes input cell ⌊j·n_in/n_out⌋ (PyTorch's rule). Rows sum to 1;
    n_in == n_out gives the identity.
    """
    m = np.zeros((n_out, n_in))
    r = n_in / n_out
    for j in range(n_out):
        if mode == "nearest":
            m[j, int(math.floor(j * r)) % n_in] = 1.0
            continue
        u = (j + 0.5) * r - 0.5
        f = math.floor(u)
        taps = range(f - 1, f + 3) if mode == "bicubic" else range(f, f + 2)
        for t in taps:
            w = _cubic(np.array(u - t)) if mode == "bicubic" else max(0.0, 1.0 - abs(u - t))
            m[j, t % n_in] += float(w)
    return m.astype(np.float32)


def _resample(
    x: Float[Array, "b h w d"], mh: np.ndarray, mw: np.ndarray
) -> Float[Array, "b p q d"]:
    y = jnp.einsum("ph,bhwd->bpwd", jnp.asarray(mh), x, precision=_HI)
    return jnp.einsum("qw,bpwd->bpqd", jnp.asarray(mw), y, precision=_HI)


def area_downsample(x: Float[Array, "b h w d"], size: int) -> Float[Array, "b s s d"]:
    """Cell-average ``x`` to ``size``×``size`` (identity when already that size)."""
    if x.shape[1] == size and x.shape[2] == size:
        return x
    return _resample(x, area_matrix(x.shape[1], size), area_matrix(x.shape[2], size))


def upsample(x: Float[Array, "b s s d"], size: int, mode: str) -> Float[Array, "b h w d"]:
    """Periodic interpolation of ``x`` to ``size``×``size`` (identity when already that size)."""
    if x.shape[1] == size and x.shape[2] == size:
        return x
    return _resample(
        x, upsample_matrix(x.shape[1], size, mode), upsample_matrix(x.shape[2], size, mode)
    )


class Phi(eqx.Module):
    """VAR's refinement φ: ``h ← (1 − r)·h + r·conv3x3(h)`` (Tian et al. 2024, ``quant.py``)."""

    conv: Conv2d
    ratio: float = eqx.field(static=True)

    def __init__(self, dim: int, ratio: float, *, padding_mode: str, key: PRNGKeyArray):
        self.conv = Conv2d(dim, dim, 3, padding_mode=padding_mode, key=key)
        self.ratio = ratio

    def __call__(self, h: Float[Array, "b h w d"]) -> Float[Array, "b h w d"]:
        return (1.0 - self.ratio) * h + self.ratio * self.conv(h)


def phi_index(scale_index: int, n_scales: int, n_phi: int) -> int:
    """VAR's partial sharing of φ: scale k uses the φ whose tick in linspace(1/3K, 1 − 1/3K, K)
    is nearest to k / (n_scales − 1) (``PhiPartiallyShared``)."""
    ticks = np.linspace(1 / (3 * n_phi), 1 - 1 / (3 * n_phi), n_phi)
    ratio = scale_index / (n_scales - 1) if n_scales > 1 else 0.0
    return int(np.argmin(np.abs(ticks - ratio)))


class MultiScaleQuantizer2d(eqx.Module):
    """VAR multi-scale residual quantizer over a square latent grid whose side is ``scales[-1]``.

    The residual starts from stop_gradient(z_e) (as in VAR); each scale's quantized map goes
    through φ before being added to f̂ and subtracted from the residual. Upsampling is exact
    periodic interpolation by a fixed matrix (``upsample``: bicubic by default, as VAR's bicubic
    but wrapping around the periodic domain instead of clamping at the edges).
    """

    quantizers: tuple[Quantizer2d, ...]  # one (shared) or one per scale
    phis: tuple[Phi, ...]  # num_phi refinement convs (empty: no refinement)
    scales: tuple[int, ...] = eqx.field(static=True)
    upsample_mode: str = eqx.field(static=True)

    def __init__(
        self,
        scales: tuple[int, ...],
        vocab_size: int,
        dim: int,
        *,
        shared_codebook: bool = True,
        num_phi: int = 4,
        phi_ratio: float = 0.5,
        upsample_mode: str = "bicubic",
        padding_mode: str = "circular",
        decay: float = 0.99,
        eps: float = 1e-5,
        dead_code_threshold: float = 0.3,
        key: PRNGKeyArray,
    ):
        n_q = 1 if shared_codebook else len(scales)
        q_keys = split_key(jr.fold_in(key, 0), n_q)
        phi_keys = split_key(jr.fold_in(key, 1), max(num_phi, 1))
        self.quantizers = tuple(
            Quantizer2d(
                vocab_size,
                dim,
                decay=decay,
                eps=eps,
                dead_code_threshold=dead_code_threshold,
                key=k,
            )
            for k in q_keys
        )
        self.phis = tuple(
            Phi(dim, phi_ratio, padding_mode=padding_mode, key=phi_keys[i]) for i in range(num_phi)
        )
        self.scales = tuple(scales)
        self.upsample_mode = upsample_mode

    @property
    def shared(self) -> bool:
        return len(self.quantizers) == 1

    def quantizer(self, k: int) -> Quantizer2d:
        """The quantizer of scale index ``k``."""
        return self.quantizers[0 if self.shared else k]

    def _refine(self, k: int, h: Float[Array, "b h w d"]) -> Float[Array, "b h w d"]:
        if not self.phis:
            return h
        return self.phis[phi_index(k, len(self.scales), len(self.phis))](h)

    def _scale_map(
        self, k: int, idx: Int[ArrayLike, "b s t"], size: int
    ) -> Float[Array, "b h w d"]:
        h = upsample(self.quantizer(k).lookup(idx), size, self.upsample_mode)
        return self._refine(k, h)

    def __call__(
        self, z_e: Float[Array, "b h w d"]
    ) -> tuple[
        Float[Array, "b h w d"],
        tuple[Int[Array, "b _s _t"], ...],
        tuple[Float[Array, "b _s _t d"], ...],
    ]:
        """Quantize scale by scale.

        Returns:
            f_hat: [b, H, W, D] the sum of the refined code maps (no straight-through here).
            indices: per scale [b, s, s] int32 code indices.
            residuals: per scale [b, s, s, D] the (stop-gradient) residual vectors that were
                quantized, for the EMA update.
        """
        size = z_e.shape[1]
        if z_e.shape[1] != z_e.shape[2] or size != self.scales[-1]:
            raise ValueError(
                f"latent grid {z_e.shape[1:3]} must be square with side {self.scales[-1]}"
            )
        rest = jax.lax.stop_gradient(z_e).astype(jnp.float32)
        f_hat = jnp.zeros_like(rest)
        indices, residuals = [], []
        for k, s in enumerate(self.scales):
            r = area_downsample(rest, s)
            idx = self.quantizer(k).nearest(r)
            h = self._scale_map(k, idx, size)
            f_hat = f_hat + h
            rest = rest - h
            indices.append(idx)
            residuals.append(r)
        return f_hat, tuple(indices), tuple(residuals)

    def decode(self, indices: tuple[Int[ArrayLike, "b _s _t"], ...]) -> Float[Array, "b h w d"]:
        """f̂ from per-scale indices: the same sum, in the same order, as ``__call__``."""
        size = self.scales[-1]
        f_hat = None
        for k, idx in enumerate(indices):
            h = self._scale_map(k, idx, size)
            f_hat = h if f_hat is None else f_hat + h
        return f_hat
