"""``VQVAE2d`` and ``VARVQVAE2d``, and the functions the trainer uses on them.

Both are final subclasses of ``AbstractEMAVQVAE`` (Encoder2d → EMA-codebook quantizer →
Decoder2d), itself an ``AbstractVQVAE`` (models/interface.py: what the tokenizer, codec and
evaluation use). They differ only in the quantizer, behind ``quantize``, ``lookup``,
``codebook_groups`` and ``with_quantizers``; everything else is written once.

- ``build_model(cfg, *, key)``: VQVAE2d, or VARVQVAE2d when ``cfg.var_mode``.
- ``model(x) -> (recon, out)``: ``out`` a ``QuantOutput`` (per-scale indices and quantized vectors,
  unweighted commitment loss, the quantized latent).
- ``ema_update(model, out, *, key) -> (model, stats)``: EMA codebook step + dead-code restart.
- ``trainable_spec(model)``: bool pytree for ``eqx.partition`` (codebooks and EMA stats False).
- ``kmeans_init(model, x, *, key)``: Lloyd iterations on a batch's encoder outputs.

Straight-through: the decoder sees ``z_q + (z_e − sg(z_e))``, whose value is exactly ``z_q``
(``z_e − z_e`` is exactly 0 in floating point) and whose gradient with respect to ``z_e`` is the
identity (van den Oord et al. 2017, Sec. 3.1). For VAR, ``z_q`` is the refined multi-scale sum f̂,
so the decoder's gradient also trains the φ convs directly (VAR trains φ through its codebook loss
‖f̂ − sg(z_e)‖²; with an EMA codebook there is no such loss, and training φ for reconstruction is
the more direct choice). Because of this, ``decode_indices(encode(x))`` reproduces the training
forward pass's reconstruction exactly.

Commitment loss: mean over all latent elements of (z_e − sg(z_q))², unweighted (the trainer
multiplies by β = ``commitment_weight``). For VAR it compares z_e with the final f̂, as VAR's β term
(``F.mse_loss(f_hat.data, f_BChw)``) but once, not averaged over the running partial sums.

Inputs are normalised fields ``[b, H, W]`` (``[b, H, W, C]`` when ``in_channels > 1``); the trunk
runs in the input's dtype (pass bfloat16 for mixed precision), the quantizer in float32.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from vqturb.errors import InputError
from vqturb.models.autoencoder import Decoder2d, Encoder2d
from vqturb.models.config import VQVAEConfig
from vqturb.models.initializers import split_key
from vqturb.models.interface import AbstractVQVAE, FieldIn, FieldOut, Indices, IndicesIn
from vqturb.models.quantizer import MultiScaleQuantizer2d, Quantizer2d


class QuantOutput(eqx.Module):
    """What one forward pass hands to the loss and to ``ema_update``.

    Fields:
        indices: per scale [b, s, s] int32 code indices (a 1-tuple for VQVAE2d).
        vectors: per scale [b, s, s, D] float32 stop-gradient vectors that were quantized
            (encoder outputs for VQVAE2d, residuals for VAR); used for EMA and restarts.
        commit_loss: scalar, unweighted mean (z_e − sg(z_q))².
        z_q: [b, h, w, D] quantized latent (value as the decoder sees it, no gradient path).
    """

    indices: tuple[Int[Array, "b _s _t"], ...]
    vectors: tuple[Float[Array, "b _s _t d"], ...]
    commit_loss: Float[Array, ""]
    z_q: Float[Array, "b h w d"]


def _to_nhwc(x: ArrayLike, cfg: VQVAEConfig) -> Array:
    x = jnp.asarray(x)
    if cfg.in_channels == 1 and x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] != cfg.in_channels:
        raise ValueError(
            f"input of shape {x.shape}: expected [b, H, W]"
            + (f" or [b, H, W, {cfg.in_channels}]" if cfg.in_channels > 1 else "")
        )
    f = cfg.downsample_factor
    if x.shape[1] % f or x.shape[2] % f:
        raise InputError(
            None,
            "field size",
            f"{x.shape[1]}x{x.shape[2]}",
            f"multiples of the downsampling factor {f} (2**len(channel_mult))",
        )
    return x


def _from_nhwc(y: Array, cfg: VQVAEConfig) -> Array:
    return y[..., 0] if cfg.in_channels == 1 else y


def _straight_through(
    z_q: Float[Array, "b h w d"], z_e: Float[Array, "b h w d"]
) -> Float[Array, "b h w d"]:
    ze = z_e.astype(jnp.float32)
    return (z_q + (ze - jax.lax.stop_gradient(ze))).astype(z_e.dtype)


def _commit(z_q: Float[Array, "b h w d"], z_e: Float[Array, "b h w d"]) -> Float[Array, ""]:
    return jnp.mean(jnp.square(z_e.astype(jnp.float32) - jax.lax.stop_gradient(z_q)))


class AbstractEMAVQVAE(AbstractVQVAE):
    """Encoder2d → a quantizer with EMA-learned codebooks → Decoder2d: what the trainer needs.

    The two final models differ only in their quantizer; this class holds everything else once
    (the forward pass, encode/decode, the codebooks by scale), and ``ema_update``,
    ``kmeans_init`` and ``trainable_spec`` work on any subclass through ``codebook_groups`` and
    ``with_quantizers``.
    """

    # Declared in the final classes' order: the leaves' order is the checkpoint payload's order.
    encoder: eqx.AbstractVar[Encoder2d]
    quantizer: eqx.AbstractVar[Quantizer2d | MultiScaleQuantizer2d]
    decoder: eqx.AbstractVar[Decoder2d]
    config: eqx.AbstractVar[VQVAEConfig]

    @abc.abstractmethod
    def embed(self, x: FieldIn) -> Float[Array, "b h w d"]:
        """Encoder output z_e [b, H/f, W/f, D]."""

    @abc.abstractmethod
    def quantize(self, z_e: Float[Array, "b h w d"]) -> QuantOutput:
        """Quantize an encoder output (indices, quantized vectors, commitment loss, z_q)."""

    @abc.abstractmethod
    def lookup(self, indices: IndicesIn) -> Float[Array, "b h w d"]:
        """The quantized latent z_q for per-scale ``indices``."""

    @abc.abstractmethod
    def codebook_groups(self) -> tuple[tuple[Quantizer2d, tuple[int, ...]], ...]:
        """(quantizer, the scale indices it quantizes) for every codebook of the model."""

    @abc.abstractmethod
    def with_quantizers(self, new: tuple[Quantizer2d, ...]) -> AbstractEMAVQVAE:
        """The model with the quantizers of ``codebook_groups`` replaced by ``new``, in order."""

    def __call__(self, x: FieldIn) -> tuple[FieldOut, QuantOutput]:
        """Reconstruction (same shape and dtype as ``x``) and the quantizer output."""
        z_e = self.embed(x)
        out = self.quantize(z_e)
        recon = self.decoder(_straight_through(out.z_q, z_e))
        return _from_nhwc(recon, self.config), out

    def encode(self, x: FieldIn) -> Indices:
        """Per-scale code indices, [b, s, s] int32 for each s in ``scales``."""
        return self.quantize(self.embed(x)).indices

    def decode_indices(self, indices: IndicesIn) -> FieldOut:
        """Field from per-scale indices; equals the training forward pass's reconstruction."""
        return _from_nhwc(self.decoder(self.lookup(indices)), self.config)

    def codebooks(self) -> tuple[Float[Array, "V D"], ...]:
        """The codebook used at each scale (the same array repeated when shared)."""
        by_scale = {k: q.codebook for q, ids in self.codebook_groups() for k in ids}
        return tuple(by_scale[k] for k in range(len(self.scales)))


class VQVAE2d(AbstractEMAVQVAE):
    """Single-scale VQ-VAE: Encoder2d → Quantizer2d (EMA) → Decoder2d."""

    encoder: Encoder2d
    quantizer: Quantizer2d
    decoder: Decoder2d
    config: VQVAEConfig = eqx.field(static=True)

    def __init__(self, cfg: VQVAEConfig, *, key: PRNGKeyArray):
        ekey, qkey, dkey = split_key(key, 3)
        self.encoder = Encoder2d(cfg, key=ekey)
        self.quantizer = Quantizer2d(
            cfg.vocab_size,
            cfg.codebook_dim,
            decay=cfg.decay,
            eps=cfg.laplace_eps,
            dead_code_threshold=cfg.dead_code_threshold,
            key=qkey,
        )
        self.decoder = Decoder2d(cfg, key=dkey)
        self.config = cfg

    @property
    def scales(self) -> tuple[int, ...]:
        return (self.config.latent_size,)

    def embed(self, x: FieldIn) -> Float[Array, "b h w d"]:
        """Encoder output z_e [b, H/f, W/f, D] (any field size that is a multiple of f)."""
        return self.encoder(_to_nhwc(x, self.config))

    def quantize(self, z_e: Float[Array, "b h w d"]) -> QuantOutput:
        """Nearest code of every latent vector; ``vectors`` are the stop-gradient z_e."""
        idx = self.quantizer.nearest(z_e)
        z_q = self.quantizer.lookup(idx)
        vec = jax.lax.stop_gradient(z_e).astype(jnp.float32)
        return QuantOutput((idx,), (vec,), _commit(z_q, z_e), z_q)

    def lookup(self, indices: IndicesIn) -> Float[Array, "b h w d"]:
        """The quantized latent z_q for ``indices`` (a 1-tuple)."""
        return self.quantizer.lookup(indices[0])

    def codebook_groups(self) -> tuple[tuple[Quantizer2d, tuple[int, ...]], ...]:
        """The one quantizer, for scale 0."""
        return ((self.quantizer, (0,)),)

    def with_quantizers(self, new: tuple[Quantizer2d, ...]) -> VQVAE2d:
        """The model with its quantizer replaced by ``new[0]``."""
        return eqx.tree_at(lambda m: m.quantizer, self, new[0])


class VARVQVAE2d(AbstractEMAVQVAE):
    """Multi-scale residual VQ-VAE (Tian et al. 2024): Encoder2d → MultiScaleQuantizer2d → Decoder2d."""

    encoder: Encoder2d
    quantizer: MultiScaleQuantizer2d
    decoder: Decoder2d
    config: VQVAEConfig = eqx.field(static=True)

    def __init__(self, cfg: VQVAEConfig, *, key: PRNGKeyArray):
        ekey, qkey, dkey = split_key(key, 3)
        self.encoder = Encoder2d(cfg, key=ekey)
        self.quantizer = MultiScaleQuantizer2d(
            cfg.scales,
            cfg.vocab_size,
            cfg.codebook_dim,
            shared_codebook=cfg.shared_codebook,
            num_phi=cfg.num_phi,
            phi_ratio=cfg.phi_ratio,
            upsample_mode=cfg.upsample,
            padding_mode=cfg.padding_mode,
            decay=cfg.decay,
            eps=cfg.laplace_eps,
            dead_code_threshold=cfg.dead_code_threshold,
            key=qkey,
        )
        self.decoder = Decoder2d(cfg, key=dkey)
        self.config = cfg

    @property
    def scales(self) -> tuple[int, ...]:
        return self.config.scales

    def embed(self, x: FieldIn) -> Float[Array, "b h w d"]:
        """Encoder output z_e [b, s_last, s_last, D]; the input must give that latent grid."""
        z_e = self.encoder(_to_nhwc(x, self.config))
        s = self.config.scales[-1]
        if z_e.shape[1:3] != (s, s):
            f = self.config.downsample_factor
            raise InputError(
                None,
                "field size",
                f"{x.shape[1]}x{x.shape[2]} (a {z_e.shape[1]}x{z_e.shape[2]} latent grid)",
                f"{s * f}x{s * f} for --scales ending in {s}",
            )
        return z_e

    def quantize(self, z_e: Float[Array, "b h w d"]) -> QuantOutput:
        """The multi-scale residual pass; ``vectors`` are the per-scale residuals, z_q is f̂."""
        f_hat, indices, residuals = self.quantizer(z_e)
        return QuantOutput(indices, residuals, _commit(f_hat, z_e), f_hat)

    def lookup(self, indices: IndicesIn) -> Float[Array, "b h w d"]:
        """The quantized latent f̂ for per-scale ``indices``: all scales, or the first k of them
        (progressive decoding: the finer scales' terms of the residual sum left out)."""
        if not 1 <= len(indices) <= len(self.config.scales):
            raise ValueError(f"{len(indices)} index maps for {len(self.config.scales)} scales")
        return self.quantizer.decode(indices)

    def codebook_groups(self) -> tuple[tuple[Quantizer2d, tuple[int, ...]], ...]:
        """One shared quantizer for all scales, or one per scale."""
        n = len(self.config.scales)
        if self.quantizer.shared:
            return ((self.quantizer.quantizers[0], tuple(range(n))),)
        return tuple((q, (k,)) for k, q in enumerate(self.quantizer.quantizers))

    def with_quantizers(self, new: tuple[Quantizer2d, ...]) -> VARVQVAE2d:
        """The model with its (shared or per-scale) quantizers replaced by ``new``."""
        return eqx.tree_at(lambda m: m.quantizer.quantizers, self, tuple(new))


def build_model(cfg: VQVAEConfig, *, key: PRNGKeyArray) -> AbstractEMAVQVAE:
    """VQVAE2d, or VARVQVAE2d when ``cfg.var_mode``."""
    return VARVQVAE2d(cfg, key=key) if cfg.var_mode else VQVAE2d(cfg, key=key)


def build_from_dict(config: dict) -> AbstractEMAVQVAE:
    """Checkpoint builder (kind ``"vqvae"``): the model of ``VQVAEConfig.from_dict(config)``.

    The key is fixed: the checkpoint loader only takes the skeleton (under
    ``eqx.filter_eval_shape``) and reads the leaves into it."""
    return build_model(VQVAEConfig.from_dict(config), key=jr.PRNGKey(0))


# ---------------------------------------------------------------------------------------------
# Codebook bookkeeping shared by ema_update and kmeans_init.


def _pool(out: QuantOutput, scale_ids: tuple[int, ...]) -> tuple[Array, Array]:
    vecs = jnp.concatenate(
        [out.vectors[k].reshape(-1, out.vectors[k].shape[-1]) for k in scale_ids]
    )
    idx = jnp.concatenate([out.indices[k].reshape(-1) for k in scale_ids])
    return vecs, idx


def ema_update(
    model: AbstractEMAVQVAE, out: QuantOutput, *, key: PRNGKeyArray
) -> tuple[AbstractEMAVQVAE, dict[str, Array]]:
    """EMA codebook step and dead-code restart from one forward pass's ``out`` (jit-safe).

    A shared VAR codebook is updated once from the vectors of all scales together; per-scale
    codebooks each from their own scale.

    Returns:
        (new model, stats) with stats ``perplexity`` [S] (exp of the entropy of this batch's code
        histogram, per scale), ``usage`` [S] (fraction of the codebook used in this batch, per
        scale) and ``n_restarted`` (int32 scalar: dead codes restarted, all codebooks).
    """
    groups = model.codebook_groups()
    keys = split_key(key, len(groups))
    new_qs, n_restarted = [], jnp.zeros((), jnp.int32)
    for (q, scale_ids), k in zip(groups, keys, strict=True):
        vecs, idx = _pool(out, scale_ids)
        q2, n = q.ema_update(vecs, idx, key=k)
        new_qs.append(q2)
        n_restarted = n_restarted + n
    perplexity, usage = [], []
    for q, scale_ids in groups:
        for s in scale_ids:
            c = q.counts(out.indices[s])
            p = c / jnp.sum(c)
            perplexity.append(
                jnp.exp(-jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0)))
            )
            usage.append(jnp.mean((c > 0).astype(jnp.float32)))
    order = [s for _, ids in groups for s in ids]
    perm = sorted(range(len(order)), key=order.__getitem__)
    stats = {
        "perplexity": jnp.stack([perplexity[i] for i in perm]),
        "usage": jnp.stack([usage[i] for i in perm]),
        "n_restarted": n_restarted,
    }
    return model.with_quantizers(tuple(new_qs)), stats


def trainable_spec(model: AbstractEMAVQVAE):
    """Bool pytree for ``eqx.partition``: True for trained float arrays, False for codebooks/EMA."""

    def spec(node):
        if isinstance(node, Quantizer2d):
            return jax.tree.map(lambda _: False, node)
        return eqx.is_inexact_array(node)

    return jax.tree.map(spec, model, is_leaf=lambda n: isinstance(n, Quantizer2d))


# ---------------------------------------------------------------------------------------------
# k-means initialisation.


@eqx.filter_jit
def _embed(model: AbstractEMAVQVAE, x: FieldIn) -> Float[Array, "b h w d"]:
    return model.embed(x)


@eqx.filter_jit
def _quantize(model: AbstractEMAVQVAE, z_e: Float[Array, "b h w d"]) -> QuantOutput:
    return model.quantize(z_e)


@eqx.filter_jit
def _lloyd_step(
    model: AbstractEMAVQVAE, out: QuantOutput, key: PRNGKeyArray, first: Array
) -> AbstractEMAVQVAE:
    """Codes ← means of their assigned vectors; empty codes (and all, on the first call) ←
    random vectors of the batch."""
    groups = model.codebook_groups()
    new = []
    for (q, scale_ids), k in zip(groups, split_key(key, len(groups)), strict=True):
        vecs, idx = _pool(out, scale_ids)
        counts = q.counts(idx)
        sums = jax.ops.segment_sum(vecs, idx, q.vocab_size)
        rand = vecs[jr.randint(k, (q.vocab_size,), 0, vecs.shape[0])]
        empty = jnp.logical_or(first, counts == 0)  # traced flag: one compilation
        means = jnp.where(empty[:, None], rand, sums / jnp.maximum(counts, 1.0)[:, None])
        new.append(q.set_codebook(means, jnp.where(empty, 0.0, counts)))
    return model.with_quantizers(tuple(new))


def kmeans_init(
    model: AbstractEMAVQVAE, x: FieldIn, *, key: PRNGKeyArray, iters: int = 10
) -> AbstractEMAVQVAE:
    """Initialise every codebook by k-means (Lloyd) on the encoder outputs of the batch ``x``.

    Codes start as random batch vectors; each iteration reassigns (for VAR, a full multi-scale
    pass, so later scales see the residuals of the current codebooks) and moves each code to the
    mean of its vectors, re-seeding empty codes. The EMA statistics restart from the final counts.
    """
    z_e = jax.lax.stop_gradient(_embed(model, x)).astype(jnp.float32)
    keys = split_key(key, iters + 1)
    for i, k in enumerate(keys):
        model = _lloyd_step(model, _quantize(model, z_e), k, jnp.asarray(i == 0))
    return model
