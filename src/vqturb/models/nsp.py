"""Next-scale prediction (NSP): a block-causal transformer over multi-scale VQ tokens of two frames.

The model learns p(t1 | t0) for a pair of snapshots (t, t + dt) tokenised by a VAR-style VQ-VAE
(scales 1x1, 2x2, ..., 16x16 of residual codes). A scale of t1 is predicted all at once (every token
of the scale in parallel), conditioned on every scale of t0 and on the coarser scales of t1 --
next-scale prediction, Tian et al. 2024, "Visual Autoregressive Modeling" (VAR), arXiv:2404.02905,
applied across time as in the SPEC.

Sequence and streams
--------------------
A frame is a row of ``T = sum(s**2)`` tokens, scale by scale, row-major within a scale (the tokens
file's order). Three kinds of positions exist:

* ``t0``      -- the conditioning frame, true tokens. Attends to all of t0 (bidirectional).
* ``content`` -- t1 scale j holding its *true* tokens. Attends to t0 and to t1 content scales <= j.
  It is what later scales of t1 read; it never predicts anything.
* ``query``   -- t1 scale k holding a learned *mask token* (plus its position/scale/frame
  embeddings). Attends to t0, to t1 content scales < k, and to the other query positions of the
  same scale k. Its output is classified into scale k's vocabulary.

Design decision (documented as the brief asks): by default (``query_attention="self"``) the query
positions of scale k **do** attend to each other; ``"none"`` gives the SPEC's strict rule, where a
t1 scale, query or content, sees only t0 and the coarser t1 scales. They hold only the mask token and positional embeddings, so seeing each other leaks nothing
about scale k's tokens, and it lets the positions of a scale coordinate (VAR's block-causal mask,
in which a scale sees itself, does the same; there the inputs of scale k are derived from scale
k - 1, here they are a mask token). What scale k must never see is its own *true* tokens (the
content of scale k) or anything finer: the gradient tests in ``tests/models/test_nsp.py`` check
exactly that.

Two training forms compute the *same function* for the scale they predict:

* SPEC mode (:meth:`NextScalePredictor.logits_spec`): the sequence ``[t0 | t1]`` of length 2T, t1
  scale k replaced by query positions, the others content; the static mask "group(key) <=
  group(query)" with groups t0 = 0, t1 scale j = 1 + j. One scale is trained per forward pass.
* all-scales mode (:meth:`NextScalePredictor.logits_all`): two-stream layout (cf. XLNet's two-stream
  attention, Yang et al. 2019, arXiv:1906.08237) ``[t0 | t1 content (scales that some later scale
  reads) | t1 query (every trainable scale)]``; one forward pass trains every trainable scale, each
  without access to its own tokens. For the SPEC scales 1..16 the sequence is 341 + 85 + 341 = 767
  positions instead of 682, for five scales trained instead of one (766 when the 1x1 scale is
  deterministic and needs no query).

Sampling (``vqturb.models.nsp_sampling``) uses a key/value cache: t0 is encoded once, then for each
scale one query pass (its own s**2 positions, reading the cache) gives the logits, and one content
pass with the sampled tokens extends the cache.

Scales whose vocabulary has a single entry are deterministic: they have no head and are filled
with their only token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from vqturb.models.nsp_config import NSPConfig
from vqturb.models.nsp_masks import CONTENT, all_scales_layout, layout_mask, spec_mask
from vqturb.models.transformer import KV, Block, gpt2_linear

# Scale of the copy prior's parameters (NextScalePredictor.copy_bias).
PRIOR_GAIN = 10.0


class NextScalePredictor(eqx.Module):
    """Block-causal transformer predicting t1's scales from t0 (see the module docstring).

    All methods work on one example (no batch axis); vmap them over a batch.
    """

    # Frozen unified codebook [V, D] from tokens.npz; excluded from training by `trainable_spec`.
    codebook: Float[Array, "vocab dim"]
    in_proj: eqx.nn.Linear
    mask_token: Float[Array, " c"]
    pos_emb: Float[Array, "t c"]
    scale_emb: Float[Array, "s c"]
    frame_emb: Float[Array, "2 c"]
    # t0's codebook vectors -> residual stream, added at t1's positions (cfg.t0_same_position)
    t0_proj: eqx.nn.Linear | None
    blocks: tuple[Block, ...]
    ln_f: eqx.nn.LayerNorm
    # One head per trainable scale, in the order of cfg.trainable_scales; head k maps to scale k's
    # own vocabulary range (output i <-> unified id scale_offsets[k] + i).
    heads: tuple[eqx.nn.Linear, ...]
    # cfg.copy_prior: per trainable scale, the bonus of t0's own token and the gain of the
    # codebook-distance penalty, both in units of PRIOR_GAIN (see copy_bias); None when off.
    copy_logit: Float[Array, " k"] | None
    near_gain: Float[Array, " k"] | None
    config: NSPConfig = eqx.field(static=True)

    def __init__(
        self,
        config: NSPConfig,
        codebook: Float[Array, "vocab dim"] | Float[np.ndarray, "vocab dim"] | None = None,
        *,
        key: PRNGKeyArray,
    ):
        cfg = config
        c = cfg.n_embd
        k_in, k_mask, k_pos, k_scale, k_frame, k_blocks, k_heads, k_t0 = jr.split(key, 8)
        if codebook is None:  # skeleton for deserialisation; the leaves are read from the file
            codebook = jnp.zeros((cfg.vocab_size, cfg.codebook_dim), jnp.float32)
        codebook = jnp.asarray(codebook, jnp.float32)
        if codebook.shape != (cfg.vocab_size, cfg.codebook_dim):
            raise ValueError(
                f"codebook shape {codebook.shape} != (vocab_size, codebook_dim) = "
                f"{(cfg.vocab_size, cfg.codebook_dim)}"
            )
        self.codebook = codebook
        self.in_proj = gpt2_linear(cfg.codebook_dim, c, 0.02, key=k_in)
        self.mask_token = 0.02 * jr.normal(k_mask, (c,))
        self.pos_emb = 0.02 * jr.normal(k_pos, (cfg.tokens_per_frame, c))
        self.scale_emb = 0.02 * jr.normal(k_scale, (cfg.n_scales, c))
        self.frame_emb = 0.02 * jr.normal(k_frame, (2, c))
        self.t0_proj = (
            gpt2_linear(cfg.codebook_dim, c, 0.02, key=k_t0) if cfg.t0_same_position else None
        )
        self.blocks = tuple(
            Block(c, cfg.n_head, cfg.mlp_ratio, cfg.dropout, cfg.n_layer, mlp=cfg.mlp, key=k)
            for k in jr.split(k_blocks, cfg.n_layer)
        )
        self.ln_f = eqx.nn.LayerNorm(c)
        head_keys = jr.split(k_heads, max(len(cfg.trainable_scales), 1))
        self.heads = tuple(
            gpt2_linear(c, cfg.scale_vocab_sizes[k], 0.02, key=hk)
            for k, hk in zip(cfg.trainable_scales, head_keys, strict=False)
        )
        n_k = len(cfg.trainable_scales)
        self.copy_logit = jnp.zeros(n_k) if cfg.copy_prior else None
        self.near_gain = jnp.zeros(n_k) if cfg.copy_prior else None
        self.config = cfg

    # ---------------- embeddings ----------------
    def embed_tokens(self, tokens: Int[Array, "*batch t"]) -> Float[Array, "*batch t dim"]:
        """Codebook vectors of unified token ids (the codebook is frozen: no gradient)."""
        return jax.lax.stop_gradient(self.codebook)[tokens]

    def _position(self, index: Int[np.ndarray, " n"], frame: int) -> Float[Array, "n c"]:
        """Position + scale + frame embeddings of the frame positions ``index``."""
        cfg = self.config
        scale_of = np.repeat(np.arange(cfg.n_scales), cfg.scale_lengths)
        return self.pos_emb[index] + self.scale_emb[scale_of[index]] + self.frame_emb[frame]

    def t0_hint(
        self, v0: Float[Array, "t dim"], index: Int[np.ndarray, " n"]
    ) -> Float[Array, "n c"] | float:
        """t0's token at the frame positions ``index``, projected (``cfg.t0_same_position``), to
        add at t1's same positions; 0 when the configuration has it off."""
        if self.t0_proj is None:
            return 0.0
        return jax.vmap(self.t0_proj)(v0[index])

    def content_inputs(
        self,
        vectors: Float[Array, "n dim"],
        index: Int[np.ndarray, " n"],
        frame: int,
        v0: Float[Array, "t dim"] | None = None,
    ) -> Float[Array, "n c"]:
        """Residual-stream inputs of true tokens (codebook vectors) at frame positions ``index``;
        for t1 (``frame == 1``) ``v0`` is t0's codebook vectors ``[T, D]`` (:meth:`t0_hint`)."""
        x = jax.vmap(self.in_proj)(vectors) + self._position(index, frame)
        return x + self.t0_hint(v0, index) if frame == 1 else x

    def query_inputs(
        self, index: Int[np.ndarray, " n"], v0: Float[Array, "t dim"]
    ) -> Float[Array, "n c"]:
        """Residual-stream inputs of t1 positions being predicted: the mask token + positions
        (+ t0's token at the same positions, :meth:`t0_hint`)."""
        return self.mask_token[None, :] + self._position(index, 1) + self.t0_hint(v0, index)

    # ---------------- trunk and heads ----------------
    def trunk(
        self,
        x: Float[Array, "l c"],
        mask: Bool[np.ndarray, "l l"],
        *,
        key: PRNGKeyArray | None = None,
    ) -> Float[Array, "l c"]:
        keys = [None] * len(self.blocks) if key is None else list(jr.split(key, len(self.blocks)))
        for block, k in zip(self.blocks, keys, strict=True):
            x, _ = block(x, mask=mask, key=k)
        return jax.vmap(self.ln_f)(x)

    def head_logits(
        self, k: int, hidden: Float[Array, "n c"], v0_k: Float[Array, "n dim"]
    ) -> Float[Array, "n v"]:
        """Logits of scale ``k`` (static) over its own vocabulary range; ``v0_k`` are t0's
        codebook vectors at scale k's positions (for :meth:`copy_bias`)."""
        head = self.heads[self.config.trainable_scales.index(k)]
        return jax.vmap(head)(hidden) + self.copy_bias(k, v0_k)

    def copy_bias(self, k: int, v0_k: Float[Array, "n dim"]) -> Float[Array, "n v"] | float:
        """``cfg.copy_prior``: ``G (copy_logit_k [c_j = v0_i] - near_gain_k d_ij^2 / mean d^2)``
        with ``d_ij`` the distance of scale k's code j to t0's code at position i and ``mean d^2``
        the mean squared distance between two of the scale's codes; 0 when off.

        ``G = PRIOR_GAIN``: optimisers move a parameter by about the learning rate per step
        whatever its gradient (Adam's and Lion's normalised updates), so a logit-sized scalar
        at lr 1e-4 would move by 0.2 in 2000 steps; scaled by G it moves G times further."""
        if self.copy_logit is None:
            return 0.0
        cfg = self.config
        i = cfg.trainable_scales.index(k)
        off = cfg.scale_offsets[k]
        codes = jax.lax.stop_gradient(self.codebook)[off : off + cfg.scale_vocab_sizes[k]]
        d2 = jnp.sum((v0_k[:, None, :] - codes[None, :, :]) ** 2, axis=-1)
        spread = jnp.maximum(2.0 * jnp.sum(jnp.var(codes, axis=0)), 1e-12)
        same = (d2 == 0).astype(d2.dtype)
        return PRIOR_GAIN * (self.copy_logit[i] * same - self.near_gain[i] * d2 / spread)

    # ---------------- training forms ----------------
    def logits_spec(
        self,
        v0: Float[Array, "t dim"],
        v1: Float[Array, "t dim"],
        scale: Int[Array, ""] | int,
        *,
        key: PRNGKeyArray | None = None,
    ) -> tuple[Float[Array, "_n _v"], ...]:
        """SPEC mode: ``[t0 | t1]`` with t1 scale ``scale`` (may be traced) replaced by queries.

        Args:
            v0, v1: codebook vectors of t0 and t1, ``[T, D]`` (see :meth:`embed_tokens`).
            scale: the t1 scale being predicted (index into ``config.scales``).
            key: dropout key (``None`` = inference).

        Returns:
            One logits array ``[s_k**2, vocab_k]`` per trainable scale k. Only the entry of
            ``scale`` is a valid prediction; the others read their own true tokens.
        """
        cfg = self.config
        idx = np.arange(cfg.tokens_per_frame)
        scale_of = np.repeat(np.arange(cfg.n_scales), cfg.scale_lengths)
        x1 = jnp.where(
            (scale_of == scale)[:, None],
            self.query_inputs(idx, v0),
            self.content_inputs(v1, idx, 1, v0),
        )
        x = jnp.concatenate([self.content_inputs(v0, idx, 0), x1], axis=0)
        h = self.trunk(x, spec_mask(cfg), key=key)[cfg.tokens_per_frame :]
        out = []
        for k in cfg.trainable_scales:
            sl = slice(cfg.token_offsets[k], cfg.token_offsets[k] + cfg.scale_lengths[k])
            out.append(self.head_logits(k, h[sl], v0[sl]))
        return tuple(out)

    def logits_all(
        self,
        v0: Float[Array, "t dim"],
        v1: Float[Array, "t dim"],
        *,
        key: PRNGKeyArray | None = None,
    ) -> tuple[Float[Array, "_n _v"], ...]:
        """All-scales mode: one pass predicts every trainable scale of t1, each from t0 and the
        coarser t1 scales only (two-stream layout, module docstring).

        Returns:
            One logits array ``[s_k**2, vocab_k]`` per trainable scale k, all valid predictions.
        """
        cfg = self.config
        streams, scales, index = all_scales_layout(cfg)
        t = cfg.tokens_per_frame
        n_content = int(np.sum(streams == CONTENT))
        ci = index[t : t + n_content]
        qi = index[t + n_content :]
        x = jnp.concatenate(
            [
                self.content_inputs(v0, index[:t], 0),
                self.content_inputs(v1[ci], ci, 1, v0),
                self.query_inputs(qi, v0),
            ],
            axis=0,
        )
        h = self.trunk(x, layout_mask(streams, scales, cfg.query_attention == "self"), key=key)
        h = h[t + n_content :]
        out, start = [], 0
        for k in cfg.trainable_scales:
            n = cfg.scale_lengths[k]
            o = cfg.token_offsets[k]
            out.append(self.head_logits(k, h[start : start + n], v0[o : o + n]))
            start += n
        return tuple(out)

    # ---------------- cached inference (used by nsp_sampling) ----------------
    def encode_t0(self, v0: Float[Array, "t dim"]) -> tuple[KV, ...]:
        """Run t0 through the trunk (bidirectional) and return every layer's keys/values."""
        cfg = self.config
        x = self.content_inputs(v0, np.arange(cfg.tokens_per_frame), 0)
        cache = []
        for block in self.blocks:
            x, kv = block(x)
            cache.append(kv)
        return tuple(cache)

    def extend(
        self, x: Float[Array, "n c"], cache: tuple[KV, ...]
    ) -> tuple[Float[Array, "n c"], tuple[KV, ...]]:
        """Run ``n`` new positions that may read the whole cache and each other (only the cache
        with ``query_attention="none"``).

        Returns the final hidden states (after ``ln_f``) and the new positions' keys/values per
        layer (append them to the cache when the positions are content).
        """
        see_self = self.config.query_attention == "self"
        new = []
        for block, prefix in zip(self.blocks, cache, strict=True):
            x, kv = block(x, prefix=prefix, see_self=see_self)
            new.append(kv)
        return jax.vmap(self.ln_f)(x), tuple(new)


def with_copy_rates(model: NextScalePredictor, rates) -> NextScalePredictor:
    """Set ``copy_logit`` so that, with the heads' logits at 0, t0's token has probability
    ``rates[i]`` at trainable scale i: ``log(r (V - 1) / (1 - r))`` (clipped to r in [1/V, 0.999]);
    the distance gain is reset to 0. A model without the copy prior is returned unchanged."""
    if model.copy_logit is None:
        return model
    cfg = model.config
    v = np.asarray([cfg.scale_vocab_sizes[k] for k in cfg.trainable_scales], np.float64)
    r = np.clip(np.asarray(rates, np.float64), 1.0 / v, 0.999)
    logit = np.log(r * (v - 1) / (1 - r)) / PRIOR_GAIN
    model = eqx.tree_at(lambda m: m.copy_logit, model, jnp.asarray(logit, jnp.float32))
    return eqx.tree_at(lambda m: m.near_gain, model, jnp.zeros_like(model.near_gain))


def build_nsp(
    config: NSPConfig | Mapping[str, Any],
    codebook: Float[Array, "vocab dim"] | Float[np.ndarray, "vocab dim"] | None = None,
    *,
    key: PRNGKeyArray | None = None,
) -> NextScalePredictor:
    """Build a model from a config (or its dict); without ``codebook`` a zero one (a skeleton)."""
    cfg = config if isinstance(config, NSPConfig) else NSPConfig.from_dict(config)
    return NextScalePredictor(cfg, codebook, key=jr.key(0) if key is None else key)


def _is_float_leaf(x: Any) -> bool:
    # ShapeDtypeStructs too, so that sizes can be counted on `eqx.filter_eval_shape` skeletons
    return isinstance(x, jax.Array | jax.ShapeDtypeStruct) and jnp.issubdtype(x.dtype, jnp.inexact)


def trainable_spec(model: NextScalePredictor) -> Any:
    """Filter spec for ``eqx.partition``: True for trained arrays, False for the frozen codebook."""
    spec = jax.tree.map(_is_float_leaf, model)
    return eqx.tree_at(lambda m: m.codebook, spec, False)


def count_parameters(model: NextScalePredictor) -> int:
    """Number of trained parameters (the frozen codebook excluded)."""
    params, _ = eqx.partition(model, trainable_spec(model))
    return sum(int(x.size) for x in jax.tree.leaves(params))


def build_from_dict(config: Mapping[str, Any]) -> NextScalePredictor:
    """Checkpoint builder (kind ``"nsp"``): the skeleton from a header's config dict."""
    return build_nsp(NSPConfig.from_dict(config))
