"""NextScalePredictor: configuration, block-causality through gradients, the two training forms and
the cached sampler agreeing with each other."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from vqturb.models.nsp import (
    NextScalePredictor,
    build_nsp,
    count_parameters,
    trainable_spec,
    with_copy_rates,
)
from vqturb.models.nsp_config import NSPConfig, preset
from vqturb.models.nsp_masks import all_scales_layout, key_prefix_blocks, layout_mask, spec_mask
from vqturb.models.nsp_sampling import filter_logits, generate, rollout, scale_logits

# scales 1, 2, 4 with a deterministic first scale (vocabulary of one), like the SPEC's coarse scales
CFG = NSPConfig(
    scales=(1, 2, 4),
    scale_offsets=(0, 1, 4),
    scale_vocab_sizes=(1, 3, 5),
    codebook_dim=8,
    n_layer=2,
    n_head=2,
    n_embd=16,
)


def random_tokens(cfg, rng, b):
    return np.concatenate(
        [
            o + rng.integers(0, v, (b, s * s))
            for s, o, v in zip(cfg.scales, cfg.scale_offsets, cfg.scale_vocab_sizes, strict=True)
        ],
        axis=1,
    ).astype(np.int32)


@pytest.fixture(
    scope="module",
    params=[(False, False, "none", "swiglu"), (True, True, "self", "gelu")],
    ids=["seed", "t0_same_position+copy_prior"],
)
def model(request):
    """The seed's design (t0 through attention only, strictly earlier scales, SwiGLU MLPs), and
    vqturb's default: t0's token added at t1's positions with the copy prior on top (set to
    non-zero values), a scale's queries seeing each other, GELU MLPs. Every property below must
    hold for both (t0_same_position alone has its own test below)."""
    same, prior, attention, mlp = request.param
    cfg = dataclasses.replace(
        CFG, t0_same_position=same, copy_prior=prior, query_attention=attention, mlp=mlp
    )
    codebook = jr.normal(jr.key(1), (cfg.vocab_size, cfg.codebook_dim))
    m = NextScalePredictor(cfg, codebook, key=jr.key(0))
    if prior:
        m = with_copy_rates(m, [0.6, 0.4])
        m = eqx.tree_at(lambda a: a.near_gain, m, jnp.asarray([0.05, 0.1]))
    return m


def test_config_roundtrip_and_from_tokens():
    d = CFG.to_dict()
    assert NSPConfig.from_dict(d) == CFG
    # a config from before t0_same_position existed is the seed's design, so its checkpoint loads
    old = {k: v for k, v in d.items() if k != "t0_same_position"}
    assert NSPConfig.from_dict(old).t0_same_position is False and CFG.t0_same_position is True
    old = {k: v for k, v in d.items() if k != "copy_prior"}
    assert NSPConfig.from_dict(old).copy_prior is False and CFG.copy_prior is True
    import json

    assert NSPConfig.from_dict(json.loads(json.dumps(d))) == CFG
    fields = {
        "scales": np.array([1, 2, 4]),
        "scale_offsets": np.array([0, 1, 4]),
        "scale_vocab_sizes": np.array([1, 3, 5]),
        "codebook": np.zeros((9, 8), np.float32),
    }
    cfg = NSPConfig.from_tokens(fields, preset="cpu", n_layer=3)
    assert cfg.n_layer == 3 and cfg.n_embd == 64
    assert cfg.tokens_per_frame == 21 and cfg.trainable_scales == (1, 2)
    assert NSPConfig.from_tokens(fields, preset="spec").n_embd == 256
    assert preset("spec") == {"n_layer": 6, "n_head": 8, "n_embd": 256}  # the SPEC defaults
    with pytest.raises(ValueError):
        NSPConfig.from_dict({**d, "n_head": 3})


def test_spec_default_size_and_frozen_codebook():
    # SPEC default trunk on the SPEC's 5 scales: "about 6M parameters"
    cfg = NSPConfig(
        scales=(1, 2, 4, 8, 16),
        scale_offsets=(0, 1, 2, 3, 4),
        scale_vocab_sizes=(1, 1, 1, 1, 512),
        codebook_dim=64,
    )
    m = eqx.filter_eval_shape(build_nsp, cfg, key=jr.key(0))
    assert 4e6 < count_parameters(m) < 8e6
    assert len(m.heads) == 1
    spec = trainable_spec(m)
    assert spec.codebook is False and spec.in_proj.weight is True


def test_masks_are_block_causal():
    m = spec_mask(CFG)
    t = CFG.tokens_per_frame
    assert m[:t, :t].all() and not m[:t, t:].any()  # t0 bidirectional, never sees t1
    assert m[t:, :t].all()  # all of t1 sees all of t0
    # t1 scale 1 (positions 1..4 of the frame) sees t1 scales 0, 1, not 2
    assert m[t + 1, t + 0] and m[t + 1, t + 4] and not m[t + 1, t + 5]
    streams, scales, _ = all_scales_layout(CFG)
    lm = layout_mask(streams, scales)
    assert lm.diagonal().all()  # every position sees itself: no empty softmax row
    q = streams == 2
    c = streams == 1
    # a query of scale k never sees content of scale >= k
    assert not (lm & q[:, None] & c[None, :] & (scales[None, :] >= scales[:, None])).any()
    # query_attention="none": a t1 scale sees t0 and strictly earlier t1 scales, nothing else
    strict = dataclasses.replace(CFG, query_attention="none")
    ms = spec_mask(strict)
    assert ms[:t, :t].all() and not ms[:t, t:].any() and ms[t:, :t].all()
    assert ms[t + 1, t + 0] and not ms[t + 1, t + 1] and not ms[t + 1, t + 4]
    lms = layout_mask(streams, scales, see_self=False)
    t1 = streams != 0
    same_scale = scales[None, :] == scales[:, None]
    assert not (lms & t1[:, None] & t1[None, :] & (scales[None, :] >= scales[:, None])).any()
    assert lms.any(axis=1).all() and (lms == (lm & ~(t1[:, None] & t1[None, :] & same_scale))).all()


def test_query_attention_none_hides_a_scale_from_itself(rng):
    """With "none" the hidden state of a t1 position has zero gradient w.r.t. the content of its
    own scale (the mask blocks it; "self" lets it through)."""
    t0, t1 = random_tokens(CFG, rng, 2)
    for attention, expect_zero in (("none", True), ("self", False)):
        cfg = dataclasses.replace(CFG, query_attention=attention)
        m = NextScalePredictor(cfg, jr.normal(jr.key(1), (cfg.vocab_size, 8)), key=jr.key(0))
        v0, v1 = m.embed_tokens(jnp.asarray(t0)), m.embed_tokens(jnp.asarray(t1))
        idx = np.arange(cfg.tokens_per_frame)
        o, n = cfg.token_offsets[2], cfg.scale_lengths[2]

        def hidden_of_first(v1, m=m, cfg=cfg, v0=v0, idx=idx, o=o):
            x = jnp.concatenate([m.content_inputs(v0, idx, 0), m.content_inputs(v1, idx, 1, v0)])
            return jnp.sum(m.trunk(x, spec_mask(cfg))[cfg.tokens_per_frame + o])

        g = np.asarray(jax.grad(hidden_of_first)(v1))
        own = g[o + 1 : o + n]  # the other positions of scale 2 (position o itself is its input)
        assert (own == 0).all() == expect_zero, attention


def test_swiglu_keeps_the_parameter_count():
    gelu = count_parameters(NextScalePredictor(CFG, key=jr.key(0)))
    swiglu = count_parameters(
        NextScalePredictor(dataclasses.replace(CFG, mlp="swiglu"), key=jr.key(0))
    )
    assert abs(swiglu - gelu) / gelu < 0.02 and swiglu != gelu


def _grad_blocks(fn, v0, v1, k):
    """Gradients of a random linear functional of scale k's logits w.r.t. the t0 and t1 vectors."""
    w = jr.normal(jr.key(7), (CFG.scale_lengths[k], CFG.scale_vocab_sizes[k]))
    i = CFG.trainable_scales.index(k)

    def loss(v0, v1):
        return jnp.sum(fn(v0, v1)[i] * w)

    return jax.jit(jax.grad(loss, argnums=(0, 1)))(v0, v1)


@pytest.mark.parametrize("mode", ["spec", "all"])
def test_loss_at_scale_k_has_zero_gradient_wrt_t1_scales_ge_k(model, rng, mode):
    t0, t1 = random_tokens(CFG, rng, 2)
    v0, v1 = model.embed_tokens(jnp.asarray(t0)), model.embed_tokens(jnp.asarray(t1))
    for k in CFG.trainable_scales:
        if mode == "spec":
            fn = lambda a, b, k=k: model.logits_spec(a, b, k)  # noqa: E731
        else:
            fn = model.logits_all
        g0, g1 = _grad_blocks(fn, v0, v1, k)
        assert np.abs(np.asarray(g0)).min(axis=-1).max() > 0
        # every t0 token influences every scale of t1
        assert (np.abs(np.asarray(g0)).sum(-1) > 0).all()
        g1 = np.asarray(g1)
        for j in range(CFG.n_scales):
            o, n = CFG.token_offsets[j], CFG.scale_lengths[j]
            block = g1[o : o + n]
            if j >= k:
                assert (block == 0).all(), (mode, k, j)  # exactly zero: no leak
            else:
                assert (np.abs(block).sum(-1) > 0).all(), (mode, k, j)


def test_spec_all_scales_cached_and_uncached_logits_agree(model, rng):
    t0, t1 = random_tokens(CFG, rng, 3), random_tokens(CFG, rng, 3)
    v0, v1 = model.embed_tokens(jnp.asarray(t0)), model.embed_tokens(jnp.asarray(t1))
    all_logits = jax.vmap(model.logits_all)(v0, v1)
    cached = scale_logits(model, t0, t1, use_cache=True)
    uncached = scale_logits(model, t0, t1, use_cache=False)
    for i, k in enumerate(CFG.trainable_scales):
        spec = jax.vmap(lambda a, b, k=k: model.logits_spec(a, b, k))(v0, v1)[i]
        assert spec.shape == (3, CFG.scale_lengths[k], CFG.scale_vocab_sizes[k])
        np.testing.assert_allclose(all_logits[i], spec, atol=1e-5)
        np.testing.assert_allclose(cached[i], spec, atol=1e-5)
        np.testing.assert_allclose(uncached[i], spec, atol=1e-5)


def test_generate_ranges_greedy_consistency_and_rollout(model, rng):
    # batch of 3 everywhere: the compiled programs are shared between tests
    t0 = random_tokens(CFG, rng, 3)
    g = np.asarray(generate(model, t0, key=jr.key(3), top_k=2))
    assert g.shape == t0.shape and g.dtype == np.int32
    for j in range(CFG.n_scales):
        o, n = CFG.token_offsets[j], CFG.scale_lengths[j]
        lo, hi = CFG.scale_offsets[j], CFG.scale_offsets[j] + CFG.scale_vocab_sizes[j]
        assert ((g[:, o : o + n] >= lo) & (g[:, o : o + n] < hi)).all()
    assert (g[:, 0] == 0).all()  # deterministic scale filled with its only token
    # greedy: each scale is the argmax of its logits given the greedy coarser scales
    gg = np.asarray(generate(model, t0, key=jr.key(0), temperature=0.0))
    logits = scale_logits(model, t0, gg)
    for i, k in enumerate(CFG.trainable_scales):
        o, n = CFG.token_offsets[k], CFG.scale_lengths[k]
        np.testing.assert_array_equal(
            np.argmax(logits[i], -1) + CFG.scale_offsets[k], gg[:, o : o + n]
        )
    # a greedy rollout chains generate: t1 from t0, t2 from t1
    r = np.asarray(rollout(model, t0, 2, key=jr.key(5), temperature=0.0))
    assert r.shape == (3, 2, CFG.tokens_per_frame)
    np.testing.assert_array_equal(r[:, 0], gg)
    gg2 = np.asarray(generate(model, gg, key=jr.key(0), temperature=0.0))
    np.testing.assert_array_equal(r[:, 1], gg2)


def test_filter_logits_top_k_top_p():
    logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05]]))
    k2 = np.asarray(filter_logits(logits, top_k=2))
    assert np.isfinite(k2).sum() == 2 and np.isfinite(k2[0, :2]).all()
    p = np.asarray(filter_logits(logits, top_p=0.7))
    assert np.isfinite(p[0]).tolist() == [True, True, False, False]
    p = np.asarray(filter_logits(logits, top_p=0.1))
    assert np.isfinite(p[0]).tolist() == [True, False, False, False]
    t = np.asarray(filter_logits(logits, temperature=2.0))
    np.testing.assert_allclose(t, np.asarray(logits) / 2)


def test_dropout_only_with_a_key_and_keeps_causality(rng):
    cfg = dataclasses.replace(CFG, dropout=0.5)
    m = NextScalePredictor(cfg, jr.normal(jr.key(1), (cfg.vocab_size, 8)), key=jr.key(0))
    t0, t1 = random_tokens(cfg, rng, 2)
    v0, v1 = m.embed_tokens(jnp.asarray(t0)), m.embed_tokens(jnp.asarray(t1))

    @jax.jit
    def run(v0, v1, key):
        def loss(v1):
            return jnp.sum(m.logits_all(v0, v1, key=key)[0])  # scale 1

        return m.logits_all(v0, v1)[0], m.logits_all(v0, v1, key=key)[0], jax.grad(loss)(v1)

    plain, dropped, g = run(v0, v1, jr.key(3))
    again, _, _ = run(v0, v1, jr.key(4))
    np.testing.assert_array_equal(plain, again)  # no key: inference, deterministic
    assert not np.allclose(plain, dropped)
    assert (np.asarray(g)[1:] == 0).all()  # scales >= 1 of t1 still invisible to scale 1


def test_key_prefix_blocks_cover_the_mask_exactly():
    for m in (spec_mask(CFG), layout_mask(*all_scales_layout(CFG)[:2])):
        blocks = key_prefix_blocks(m)
        assert blocks[0][0] == 0 and blocks[-1][1] == m.shape[0]
        for (r0, r1, kend), nxt in zip(blocks, blocks[1:] + ((m.shape[0], 0, 0),), strict=True):
            assert r1 == nxt[0]  # contiguous runs of rows
            assert not m[r0:r1, kend:].any()  # nothing allowed is dropped
            assert m[r0:r1, kend - 1].any()  # and the prefix is as short as possible


def test_t0_same_position_gives_t1_the_token_of_t0_at_its_position(rng):
    """With the conditioning on, a t1 query's input changes with t0's token at the same position
    only (the position it would copy); with it off, inputs do not depend on t0 at all."""
    on = dataclasses.replace(CFG, t0_same_position=True)
    off = dataclasses.replace(CFG, t0_same_position=False)
    m_on = NextScalePredictor(on, jr.normal(jr.key(1), (on.vocab_size, 8)), key=jr.key(0))
    m_off = NextScalePredictor(off, m_on.codebook, key=jr.key(0))
    assert m_off.t0_proj is None and count_parameters(m_on) > count_parameters(m_off)
    t0 = random_tokens(CFG, rng, 1)[0]
    t0b = t0.copy()
    pos = CFG.token_offsets[2] + 3
    t0b[pos] = CFG.scale_offsets[2] + (t0[pos] - CFG.scale_offsets[2] + 1) % 5
    idx = np.arange(CFG.tokens_per_frame)
    for m in (m_on, m_off):
        a = m.query_inputs(idx, m.embed_tokens(jnp.asarray(t0)))
        b = m.query_inputs(idx, m.embed_tokens(jnp.asarray(t0b)))
        changed = np.flatnonzero(np.abs(np.asarray(a - b)).sum(-1) > 0)
        assert changed.tolist() == ([pos] if m is m_on else [])


def test_copy_prior_starts_at_the_copy_rate_and_favours_t0s_neighbours(rng):
    """With the heads' logits at 0, t0's own token gets exactly the rate it was set to, the other
    codes share the rest, and a positive distance gain ranks them by closeness to t0's code."""
    cfg = dataclasses.replace(CFG, copy_prior=True)
    m = NextScalePredictor(cfg, jr.normal(jr.key(1), (cfg.vocab_size, 8)), key=jr.key(0))
    without = dataclasses.replace(CFG, copy_prior=False)
    assert count_parameters(m) == count_parameters(
        NextScalePredictor(without, m.codebook, key=jr.key(0))
    ) + 2 * len(CFG.trainable_scales)
    m = eqx.tree_at(
        lambda a: a.heads,
        m,
        tuple(
            eqx.tree_at(lambda h: (h.weight, h.bias), h, (0 * h.weight, 0 * h.bias))
            for h in m.heads
        ),
    )
    m = with_copy_rates(m, [0.7, 0.3])
    t0, t1 = random_tokens(CFG, rng, 2)
    v0, v1 = m.embed_tokens(jnp.asarray(t0)), m.embed_tokens(jnp.asarray(t1))
    for i, k in enumerate(CFG.trainable_scales):
        o, n = CFG.token_offsets[k], CFG.scale_lengths[k]
        p = np.asarray(jax.nn.softmax(m.logits_all(v0, v1)[i], -1))
        own = t0[o : o + n] - CFG.scale_offsets[k]
        np.testing.assert_allclose(p[np.arange(n), own], [0.7, 0.3][i], rtol=1e-5)
    near = eqx.tree_at(lambda a: a.near_gain, m, jnp.asarray([0.0, 0.2]))
    k = CFG.trainable_scales[1]
    o, n, off = CFG.token_offsets[k], CFG.scale_lengths[k], CFG.scale_offsets[k]
    p = np.asarray(jax.nn.softmax(near.logits_all(v0, v1)[1], -1))
    codes = np.asarray(m.codebook)[off : off + CFG.scale_vocab_sizes[k]]
    for pos in range(n):
        d2 = np.sum((codes - np.asarray(v0)[o + pos]) ** 2, -1)
        others = np.flatnonzero(d2 > 0)
        order = others[np.argsort(d2[others])]
        assert (np.diff(p[pos, order]) < 0).all()  # closer codes are likelier
