"""Sampling from a :class:`~vqturb.models.nsp.NextScalePredictor`: t0 -> t1, and rollouts t0 -> t_n.

t1 is generated scale by scale, coarse to fine; all tokens of a scale are drawn at once (in
parallel, independently given the context), as in VAR (Tian et al. 2024, arXiv:2404.02905).

With the key/value cache (default) t0 is encoded once; each scale then costs one *query* pass over
its own ``s**2`` positions (mask tokens reading the cache) that gives its logits, and one *content*
pass over the same positions holding the sampled tokens whose keys/values are appended to the
cache. Without the cache every scale runs the whole ``[t0 | t1]`` sequence of SPEC mode. Both paths
compute the same function (tested to float tolerance); the loop over scales is a static Python loop
over the short static tuple of scales, so the whole generation is one compiled program.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from vqturb.models.nsp import NextScalePredictor


def filter_logits(
    logits: Float[Array, "*batch v"],
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> Float[Array, "*batch v"]:
    """Temperature scaling, then top-k and nucleus (top-p; Holtzman et al. 2020) truncation.

    Truncated entries become ``-inf``; the most likely entry is always kept.
    """
    logits = logits / temperature
    v = logits.shape[-1]
    if top_k is not None and top_k < v:
        kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    if top_p is not None and top_p < 1.0:
        sorted_logits = jnp.sort(logits, axis=-1)[..., ::-1]
        probs = jax.nn.softmax(sorted_logits, axis=-1)
        # keep an entry when the mass strictly before it is below top_p (so at least one)
        before = jnp.cumsum(probs, axis=-1) - probs
        kept = jnp.where(before < top_p, sorted_logits, jnp.inf)
        threshold = jnp.min(kept, axis=-1, keepdims=True)
        logits = jnp.where(logits < threshold, -jnp.inf, logits)
    return logits


def sample_logits(
    logits: Float[Array, "n v"],
    *,
    key: PRNGKeyArray,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> Int[Array, " n"]:
    """One draw per row; ``temperature == 0`` means greedy (argmax)."""
    if temperature == 0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = filter_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p)
    return jr.categorical(key, logits, axis=-1).astype(jnp.int32)


def _decode_one(
    model: NextScalePredictor,
    t0: Int[Array, " t"],
    key: PRNGKeyArray,
    teacher: Int[Array, " t"] | None,
    use_cache: bool,
    sampling: dict,
) -> tuple[Int[Array, " t"], tuple[Float[Array, "_n _v"], ...]]:
    """Generate (or, with ``teacher``, teacher-force) one t1; returns tokens and the logits of
    every trainable scale."""
    cfg = model.config
    scale_keys = jr.split(key, cfg.n_scales)
    v0 = model.embed_tokens(t0)
    logits_out = []
    # placeholder ids for scales not generated yet; they are never visible to a coarser scale
    t1 = jnp.asarray(np.repeat(np.asarray(cfg.scale_offsets), cfg.scale_lengths), jnp.int32)
    cache = model.encode_t0(v0) if use_cache else None
    for j in range(cfg.n_scales):
        off, n = cfg.token_offsets[j], cfg.scale_lengths[j]
        idx = np.arange(off, off + n)
        if cfg.scale_vocab_sizes[j] == 1:
            tok = jnp.full((n,), cfg.scale_offsets[j], jnp.int32)
        else:
            if use_cache:
                h, _ = model.extend(model.query_inputs(idx, v0), cache)
                logits = model.head_logits(j, h, v0[idx])
            else:
                all_logits = model.logits_spec(v0, model.embed_tokens(t1), j)
                logits = all_logits[cfg.trainable_scales.index(j)]
            logits_out.append(logits)
            if teacher is not None:
                tok = teacher[off : off + n]
            else:
                tok = cfg.scale_offsets[j] + sample_logits(logits, key=scale_keys[j], **sampling)
        t1 = t1.at[off : off + n].set(tok)
        if use_cache and j in cfg.content_scales:
            _, kv = model.extend(model.content_inputs(model.embed_tokens(tok), idx, 1, v0), cache)
            cache = tuple(
                (jnp.concatenate([ck, k], 0), jnp.concatenate([cv, v], 0))
                for (ck, cv), (k, v) in zip(cache, kv, strict=True)
            )
    return t1, tuple(logits_out)


def _generate_batch(model, t0_tokens, key, use_cache, sampling_items):
    sampling = dict(sampling_items)
    keys = jr.split(key, t0_tokens.shape[0])
    return jax.vmap(lambda t0, k: _decode_one(model, t0, k, None, use_cache, sampling)[0])(
        t0_tokens, keys
    )


_generate = eqx.filter_jit(_generate_batch)


def generate(
    model: NextScalePredictor,
    t0_tokens: Int[Array, "b t"] | Int[np.ndarray, "b t"],
    *,
    key: PRNGKeyArray,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    use_cache: bool = True,
) -> Int[Array, "b t"]:
    """Sample t1 given t0 for a batch of frames.

    Args:
        model: a trained next-scale predictor.
        t0_tokens: unified token ids of the conditioning frames, ``[B, T]``.
        key: PRNG key (split per sample and per scale).
        temperature: softmax temperature; 0 is greedy decoding.
        top_k: keep only the k most likely tokens of each position (per scale, capped at its
            vocabulary size).
        top_p: nucleus sampling mass.
        use_cache: key/value cache (each scale costs only its own tokens) or the full sequence.

    Returns:
        t1 token ids ``[B, T]`` in the tokens file's order (unified ids, in each scale's range).
    """
    sampling = (("temperature", float(temperature)), ("top_k", top_k), ("top_p", top_p))
    return _generate(model, jnp.asarray(t0_tokens, jnp.int32), key, bool(use_cache), sampling)


@eqx.filter_jit
def _scale_logits(model, t0_tokens, t1_tokens, use_cache):
    return jax.vmap(lambda t0, t1: _decode_one(model, t0, jr.key(0), t1, use_cache, {})[1])(
        t0_tokens, t1_tokens
    )


def scale_logits(
    model: NextScalePredictor,
    t0_tokens: Int[Array, "b t"] | Int[np.ndarray, "b t"],
    t1_tokens: Int[Array, "b t"] | Int[np.ndarray, "b t"],
    *,
    use_cache: bool = True,
) -> tuple[Float[Array, "b _n _v"], ...]:
    """Teacher-forced logits of every trainable scale of t1 through the generation path (the
    cached or uncached one): ``[B, s_k**2, vocab_k]`` per trainable scale."""
    return _scale_logits(
        model, jnp.asarray(t0_tokens, jnp.int32), jnp.asarray(t1_tokens, jnp.int32), bool(use_cache)
    )


@eqx.filter_jit
def _rollout(model, t0_tokens, n_steps, key, use_cache, sampling_items):
    def step(tokens, k):
        nxt = _generate_batch(model, tokens, k, use_cache, sampling_items)
        return nxt, nxt

    _, frames = jax.lax.scan(step, t0_tokens, jr.split(key, n_steps))
    return jnp.swapaxes(frames, 0, 1)


def rollout(
    model: NextScalePredictor,
    t0_tokens: Int[Array, "b t"] | Int[np.ndarray, "b t"],
    n_steps: int,
    *,
    key: PRNGKeyArray,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    use_cache: bool = True,
) -> Int[Array, "b n t"]:
    """Autoregressive rollout t1, t2, ..., t_n, each frame generated from the previous one.

    One compiled program: ``lax.scan`` over the steps around :func:`generate`.

    Returns:
        token ids ``[B, n_steps, T]`` (t0 itself is not included).
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    sampling = (("temperature", float(temperature)), ("top_k", top_k), ("top_p", top_p))
    return _rollout(
        model, jnp.asarray(t0_tokens, jnp.int32), int(n_steps), key, bool(use_cache), sampling
    )
