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

Design decision (documented as the brief asks): the query positions of scale k **do** attend to each
other. They hold only the mask token and positional embeddings, so seeing each other leaks nothing
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

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

# Hyper-parameter presets for the transformer trunk; the scales and vocabularies always come from
# the tokens file. "spec" is the SPEC's default (about 6M parameters with its vocabulary).
PRESETS: dict[str, dict[str, int]] = {
    "spec": {"n_layer": 6, "n_head": 8, "n_embd": 256},
    "cpu": {"n_layer": 2, "n_head": 4, "n_embd": 64},
}


def preset(name: str) -> dict[str, int]:
    """Trunk hyper-parameters of a preset ("spec" or "cpu"), for ``NSPConfig.from_tokens``."""
    if name not in PRESETS:
        raise ValueError(f"unknown NSP preset {name!r}; known: {', '.join(PRESETS)}")
    return dict(PRESETS[name])


# Tokens-file fields the model configuration is read from (CONTRACTS.md, "Tokens file").
TOKENS_CONFIG_FIELDS = ("scales", "scale_offsets", "scale_vocab_sizes", "codebook")


@dataclass(frozen=True)
class NSPConfig:
    """Configuration of :class:`NextScalePredictor` (JSON-safe through ``to_dict``/``from_dict``)."""

    # Side length of every scale, coarse to fine (tokens per frame T = sum(s**2)).
    scales: tuple[int, ...]
    # Start of each scale's range in the unified vocabulary (tokens file ``scale_offsets``).
    scale_offsets: tuple[int, ...]
    # Size of each scale's vocabulary range; 1 means the scale is deterministic (no head).
    scale_vocab_sizes: tuple[int, ...]
    # Dimension D of the frozen unified codebook vectors that embed the tokens.
    codebook_dim: int
    # Number of transformer blocks (SPEC default 6).
    n_layer: int = 6
    # Number of attention heads; must divide n_embd (SPEC default 8).
    n_head: int = 8
    # Width of the residual stream (SPEC default 256).
    n_embd: int = 256
    # Hidden width of the MLP as a multiple of n_embd (GPT-2 uses 4).
    mlp_ratio: int = 4
    # Dropout probability on the attention and MLP outputs while training (0 disables it).
    dropout: float = 0.0

    def __post_init__(self):
        n = len(self.scales)
        if not (n == len(self.scale_offsets) == len(self.scale_vocab_sizes)) or n == 0:
            raise ValueError(
                "scales, scale_offsets and scale_vocab_sizes must be non-empty and of equal length"
            )
        for f in ("scales", "scale_offsets", "scale_vocab_sizes"):
            object.__setattr__(self, f, tuple(int(v) for v in getattr(self, f)))
        if any(s < 1 for s in self.scales) or any(v < 1 for v in self.scale_vocab_sizes):
            raise ValueError("scales and vocabulary sizes must be positive")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_head={self.n_head} must divide n_embd={self.n_embd}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    # ---- derived sizes (all static Python values) ----
    @property
    def n_scales(self) -> int:
        return len(self.scales)

    @property
    def scale_lengths(self) -> tuple[int, ...]:
        """Tokens per scale, ``s**2``."""
        return tuple(s * s for s in self.scales)

    @property
    def token_offsets(self) -> tuple[int, ...]:
        """Start of each scale inside a frame's row of tokens."""
        return tuple(int(v) for v in np.cumsum((0,) + self.scale_lengths[:-1]))

    @property
    def tokens_per_frame(self) -> int:
        return sum(self.scale_lengths)

    @property
    def vocab_size(self) -> int:
        """Rows of the unified codebook (the largest id + 1)."""
        return max(o + v for o, v in zip(self.scale_offsets, self.scale_vocab_sizes, strict=True))

    @property
    def trainable_scales(self) -> tuple[int, ...]:
        """Scales with more than one possible token: they get a head and a loss."""
        return tuple(i for i, v in enumerate(self.scale_vocab_sizes) if v > 1)

    @property
    def content_scales(self) -> tuple[int, ...]:
        """t1 scales some later trainable scale reads (all scales before the last trainable one)."""
        last = max(self.trainable_scales, default=0)
        return tuple(range(last))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for f in ("scales", "scale_offsets", "scale_vocab_sizes"):
            d[f] = list(d[f])
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NSPConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown NSPConfig fields: {sorted(unknown)}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})

    @classmethod
    def from_tokens(
        cls, tokens: Mapping[str, Any], *, preset: str | None = None, **overrides: Any
    ) -> NSPConfig:
        """Build the configuration from a tokens file's fields (``np.load`` result or a dict).

        ``preset`` ("spec" or "cpu") sets the trunk size; ``overrides`` (n_layer, n_head, n_embd,
        mlp_ratio, dropout) win over the preset.
        """
        fields: dict[str, Any] = _preset(preset) if preset is not None else {}
        fields.update({k: v for k, v in overrides.items() if v is not None})
        return cls(
            scales=tuple(int(s) for s in np.asarray(tokens["scales"]).ravel()),
            scale_offsets=tuple(int(s) for s in np.asarray(tokens["scale_offsets"]).ravel()),
            scale_vocab_sizes=tuple(
                int(s) for s in np.asarray(tokens["scale_vocab_sizes"]).ravel()
            ),
            codebook_dim=int(np.asarray(tokens["codebook"]).shape[-1]),
            **fields,
        )


# --------------------------------------------------------------------------------------------
# Static layouts and masks (NumPy, built at trace time: they are constants of the program)
# --------------------------------------------------------------------------------------------

_T0, _CONTENT, _QUERY = 0, 1, 2


def spec_mask(cfg: NSPConfig) -> np.ndarray:
    """Block-causal mask ``[2T, 2T]`` (True = may attend) of SPEC mode: group(key) <= group(query)
    with groups t0 -> 0 and t1 scale j -> 1 + j."""
    g0 = np.zeros(cfg.tokens_per_frame, np.int32)
    g1 = np.concatenate([np.full(n, 1 + j, np.int32) for j, n in enumerate(cfg.scale_lengths)])
    g = np.concatenate([g0, g1])
    return g[None, :] <= g[:, None]


def all_scales_layout(cfg: NSPConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two-stream layout of all-scales mode: per position (stream, scale, index in frame).

    Order: t0 (every scale), t1 content (``cfg.content_scales``), t1 queries
    (``cfg.trainable_scales``).
    """
    segments = [(_T0, j) for j in range(cfg.n_scales)]
    segments += [(_CONTENT, j) for j in cfg.content_scales]
    segments += [(_QUERY, k) for k in cfg.trainable_scales]
    streams, scales, index = [], [], []
    for stream, j in segments:
        n = cfg.scale_lengths[j]
        streams.append(np.full(n, stream))
        scales.append(np.full(n, j))
        index.append(cfg.token_offsets[j] + np.arange(n))
    return tuple(np.concatenate(a).astype(np.int32) for a in (streams, scales, index))


def layout_mask(streams: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Attention rule of the module docstring for an arbitrary layout; ``[L, L]`` True = attend."""
    qs, qj = streams[:, None], scales[:, None]
    ks, kj = streams[None, :], scales[None, :]
    see_t0 = ks == _T0
    see_content = (ks == _CONTENT) & (
        ((qs == _CONTENT) & (kj <= qj)) | ((qs == _QUERY) & (kj < qj))
    )
    see_query = (ks == _QUERY) & (qs == _QUERY) & (kj == qj)
    return see_t0 | see_content | see_query


def key_prefix_blocks(mask: np.ndarray) -> tuple[tuple[int, int, int], ...]:
    """Split the rows of a static mask into runs ``(row_start, row_end, key_end)`` whose rows
    attend to no key at or after ``key_end`` (consecutive rows with the same last allowed key)."""
    if not mask.any(axis=1).all():
        raise ValueError("every row of an attention mask needs at least one allowed key")
    key_end = mask.shape[1] - np.argmax(mask[:, ::-1], axis=1)
    starts = np.flatnonzero(np.diff(key_end, prepend=-1))
    ends = np.append(starts[1:], mask.shape[0])
    return tuple((int(a), int(b), int(key_end[a])) for a, b in zip(starts, ends, strict=True))


# --------------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------------


def _linear(in_f: int, out_f: int, std: float, *, key: PRNGKeyArray) -> eqx.nn.Linear:
    """Linear layer with N(0, std^2) weights and zero bias (GPT-2 initialisation)."""
    k_lin, k_w = jr.split(key)
    lin = eqx.nn.Linear(in_f, out_f, key=k_lin)
    w = std * jr.normal(k_w, (out_f, in_f))
    return eqx.tree_at(lambda m: (m.weight, m.bias), lin, (w, jnp.zeros(out_f)))


# Per-layer key/value cache: keys and values ``[P, n_head, head_dim]`` for P cached positions.
KV = tuple[Float[Array, "_p h d"], Float[Array, "_p h d"]]


class Block(eqx.Module):
    """Pre-LN transformer block (GPT-2): x + Attn(LN(x)), then x + MLP(LN(x)).

    Attention takes an explicit boolean mask, or a key/value prefix (the cache) that every query
    may read in full plus the block's own positions.
    """

    ln1: eqx.nn.LayerNorm
    qkv: eqx.nn.Linear
    attn_out: eqx.nn.Linear
    ln2: eqx.nn.LayerNorm
    fc: eqx.nn.Linear
    fc_out: eqx.nn.Linear
    n_head: int = eqx.field(static=True)
    dropout: float = eqx.field(static=True)

    def __init__(
        self, n_embd: int, n_head: int, mlp_ratio: int, dropout: float, n_layer: int, *, key
    ):
        k_qkv, k_out, k_fc, k_fc_out = jr.split(key, 4)
        # Residual projections scaled by 1/sqrt(2 n_layer) so the stream's variance does not
        # grow with depth (GPT-2, Radford et al. 2019).
        res_std = 0.02 / math.sqrt(2 * n_layer)
        self.ln1 = eqx.nn.LayerNorm(n_embd)
        self.qkv = _linear(n_embd, 3 * n_embd, 0.02, key=k_qkv)
        self.attn_out = _linear(n_embd, n_embd, res_std, key=k_out)
        self.ln2 = eqx.nn.LayerNorm(n_embd)
        self.fc = _linear(n_embd, mlp_ratio * n_embd, 0.02, key=k_fc)
        self.fc_out = _linear(mlp_ratio * n_embd, n_embd, res_std, key=k_fc_out)
        self.n_head = n_head
        self.dropout = dropout

    def _drop(self, x: Float[Array, "l c"], key: PRNGKeyArray | None) -> Float[Array, "l c"]:
        if key is None or self.dropout == 0.0:
            return x
        keep = jr.bernoulli(key, 1.0 - self.dropout, x.shape)
        return jnp.where(keep, x / (1.0 - self.dropout), 0.0)

    def __call__(
        self,
        x: Float[Array, "l c"],
        *,
        mask: Bool[np.ndarray, "l l"] | None = None,
        prefix: KV | None = None,
        key: PRNGKeyArray | None = None,
    ) -> tuple[Float[Array, "l c"], tuple[Float[Array, "l h d"], Float[Array, "l h d"]]]:
        """Returns the new residual stream and this block's own keys/values (for a cache).

        ``mask`` restricts attention among the ``l`` positions; ``prefix`` adds cached positions
        every query may attend to (the cached path uses no mask: a block reads the whole prefix
        and itself).
        """
        n, c = x.shape
        h_dim = c // self.n_head
        k_attn, k_mlp = (None, None) if key is None else jr.split(key)
        h = jax.vmap(self.ln1)(x)
        q, k, v = jnp.split(jax.vmap(self.qkv)(h), 3, axis=-1)
        q, k, v = (a.reshape(n, self.n_head, h_dim) for a in (q, k, v))
        k_all, v_all = k, v
        if prefix is not None:
            k_all = jnp.concatenate([prefix[0], k], axis=0)
            v_all = jnp.concatenate([prefix[1], v], axis=0)
        if mask is None:
            a = jax.nn.dot_product_attention(q, k_all, v_all)
        else:
            # Row blocks that only read a prefix of the keys attend to that prefix only: same
            # result as the full masked product, ~30% fewer attention FLOPs on the block-causal
            # layouts (attention dominates the small CPU models).
            blocks = []
            for r0, r1, kend in key_prefix_blocks(mask):
                m = mask[r0:r1, :kend]
                # a fully allowed block (t0 reading t0) needs no mask at all
                m = None if m.all() else jnp.asarray(m)[None]
                blocks.append(
                    jax.nn.dot_product_attention(q[r0:r1], k_all[:kend], v_all[:kend], mask=m)
                )
            a = jnp.concatenate(blocks, axis=0)
        a = a.reshape(n, c)
        x = x + self._drop(jax.vmap(self.attn_out)(a), k_attn)
        h = jax.vmap(self.ln2)(x)
        h = jax.vmap(self.fc_out)(jax.nn.gelu(jax.vmap(self.fc)(h)))
        x = x + self._drop(h, k_mlp)
        return x, (k, v)


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
    blocks: tuple[Block, ...]
    ln_f: eqx.nn.LayerNorm
    # One head per trainable scale, in the order of cfg.trainable_scales; head k maps to scale k's
    # own vocabulary range (output i <-> unified id scale_offsets[k] + i).
    heads: tuple[eqx.nn.Linear, ...]
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
        k_in, k_mask, k_pos, k_scale, k_frame, k_blocks, k_heads = jr.split(key, 7)
        if codebook is None:  # skeleton for deserialisation; the leaves are read from the file
            codebook = jnp.zeros((cfg.vocab_size, cfg.codebook_dim), jnp.float32)
        codebook = jnp.asarray(codebook, jnp.float32)
        if codebook.shape != (cfg.vocab_size, cfg.codebook_dim):
            raise ValueError(
                f"codebook shape {codebook.shape} != (vocab_size, codebook_dim) = "
                f"{(cfg.vocab_size, cfg.codebook_dim)}"
            )
        self.codebook = codebook
        self.in_proj = _linear(cfg.codebook_dim, c, 0.02, key=k_in)
        self.mask_token = 0.02 * jr.normal(k_mask, (c,))
        self.pos_emb = 0.02 * jr.normal(k_pos, (cfg.tokens_per_frame, c))
        self.scale_emb = 0.02 * jr.normal(k_scale, (cfg.n_scales, c))
        self.frame_emb = 0.02 * jr.normal(k_frame, (2, c))
        self.blocks = tuple(
            Block(c, cfg.n_head, cfg.mlp_ratio, cfg.dropout, cfg.n_layer, key=k)
            for k in jr.split(k_blocks, cfg.n_layer)
        )
        self.ln_f = eqx.nn.LayerNorm(c)
        head_keys = jr.split(k_heads, max(len(cfg.trainable_scales), 1))
        self.heads = tuple(
            _linear(c, cfg.scale_vocab_sizes[k], 0.02, key=hk)
            for k, hk in zip(cfg.trainable_scales, head_keys, strict=False)
        )
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

    def content_inputs(
        self, vectors: Float[Array, "n dim"], index: Int[np.ndarray, " n"], frame: int
    ) -> Float[Array, "n c"]:
        """Residual-stream inputs of true tokens (codebook vectors) at frame positions ``index``."""
        return jax.vmap(self.in_proj)(vectors) + self._position(index, frame)

    def query_inputs(self, index: Int[np.ndarray, " n"]) -> Float[Array, "n c"]:
        """Residual-stream inputs of t1 positions being predicted: the mask token + positions."""
        return self.mask_token[None, :] + self._position(index, 1)

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

    def head_logits(self, k: int, hidden: Float[Array, "n c"]) -> Float[Array, "n v"]:
        """Logits of scale ``k`` (static) over its own vocabulary range."""
        head = self.heads[self.config.trainable_scales.index(k)]
        return jax.vmap(head)(hidden)

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
            (scale_of == scale)[:, None], self.query_inputs(idx), self.content_inputs(v1, idx, 1)
        )
        x = jnp.concatenate([self.content_inputs(v0, idx, 0), x1], axis=0)
        h = self.trunk(x, spec_mask(cfg), key=key)[cfg.tokens_per_frame :]
        return tuple(
            self.head_logits(
                k, h[cfg.token_offsets[k] : cfg.token_offsets[k] + cfg.scale_lengths[k]]
            )
            for k in cfg.trainable_scales
        )

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
        n_content = int(np.sum(streams == _CONTENT))
        ci = index[t : t + n_content]
        qi = index[t + n_content :]
        x = jnp.concatenate(
            [
                self.content_inputs(v0, index[:t], 0),
                self.content_inputs(v1[ci], ci, 1),
                self.query_inputs(qi),
            ],
            axis=0,
        )
        h = self.trunk(x, layout_mask(streams, scales), key=key)[t + n_content :]
        out, start = [], 0
        for k in cfg.trainable_scales:
            n = cfg.scale_lengths[k]
            out.append(self.head_logits(k, h[start : start + n]))
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
        """Run ``n`` new positions that may read the whole cache and each other.

        Returns the final hidden states (after ``ln_f``) and the new positions' keys/values per
        layer (append them to the cache when the positions are content).
        """
        new = []
        for block, prefix in zip(self.blocks, cache, strict=True):
            x, kv = block(x, prefix=prefix)
            new.append(kv)
        return jax.vmap(self.ln_f)(x), tuple(new)


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


_preset = preset  # NSPConfig.from_tokens has a parameter named `preset`
