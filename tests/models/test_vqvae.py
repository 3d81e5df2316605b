"""VQVAE2d / VARVQVAE2d: shapes, codes, straight-through, exact decoding, EMA, training step."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

from tiny_vqvae import tiny_vqvae_config
from vqturb.errors import InputError
from vqturb.models import (
    VARVQVAE2d,
    VQVAE2d,
    VQVAEConfig,
    build_model,
    ema_update,
    kmeans_init,
    trainable_spec,
)
from vqturb.models.vqvae import _straight_through

VAR_SCALES = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)


tiny = tiny_vqvae_config


def fields(rng, n, size):
    return jnp.asarray(rng.standard_normal((n, size, size)), jnp.float32)


@pytest.mark.parametrize(
    "var_mode,scales,shared",
    [
        (False, (1, 2, 4, 8, 16), True),
        (True, (1, 2, 4, 8, 16), True),
        (True, (1, 2, 4, 8, 16), False),
        (True, VAR_SCALES, True),
        (True, VAR_SCALES, False),
    ],
)
def test_decode_indices_reproduces_forward_exactly(rng, var_mode, scales, shared):
    # 32² with one 2x stage: a 16x16 latent grid, so both scale lists end on it.
    cfg = tiny(
        resolution=32, channel_mult=(1,), var_mode=var_mode, scales=scales, shared_codebook=shared
    )
    model = build_model(cfg, key=jr.PRNGKey(0))
    assert isinstance(model, VARVQVAE2d if var_mode else VQVAE2d)
    x = fields(rng, 2, 32)
    recon, out = model(x)
    assert recon.shape == x.shape and bool(jnp.all(jnp.isfinite(recon)))
    expect = scales if var_mode else (16,)
    assert [i.shape for i in out.indices] == [(2, s, s) for s in expect]
    for i in out.indices:
        assert i.dtype == jnp.int32 and int(i.min()) >= 0 and int(i.max()) < cfg.vocab_size
    assert out.commit_loss.shape == () and float(out.commit_loss) > 0
    idx = model.encode(x)
    for a, b in zip(idx, out.indices, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.decode_indices(idx), recon)
    # numpy indices (as read back from a tokens file) decode the same
    np.testing.assert_array_equal(model.decode_indices(tuple(np.asarray(i) for i in idx)), recon)


def test_decode_indices_matches_forward_under_jit(rng):
    model = build_model(tiny(var_mode=True), key=jr.PRNGKey(1))
    x = fields(rng, 2, 16)
    recon, out = eqx.filter_jit(model.__call__)(x)
    idx = out.indices
    np.testing.assert_allclose(eqx.filter_jit(model.decode_indices)(idx), recon, rtol=0, atol=1e-6)


@pytest.mark.parametrize("var_mode", [False, True])
def test_straight_through_gradient(rng, var_mode):
    """d recon / d z_e equals d recon / d z_q: the decoder's gradient is copied to the encoder."""
    model = build_model(tiny(var_mode=var_mode), key=jr.PRNGKey(2))
    x = fields(rng, 2, 16)
    ct = jnp.asarray(rng.standard_normal((2, 16, 16, 1)), jnp.float32)
    z_e = model.embed(x)
    z_q = model.lookup(model.encode(x))
    _, vjp_e = jax.vjp(lambda ze: model.decoder(_straight_through(z_q, ze)), z_e)
    _, vjp_q = jax.vjp(model.decoder, z_q)
    (g_e,), (g_q,) = vjp_e(ct), vjp_q(ct)
    assert float(jnp.abs(g_q).max()) > 0
    np.testing.assert_allclose(g_e, g_q, rtol=1e-5, atol=1e-7)


def test_var_residual_decreases_scale_by_scale(rng):
    cfg = tiny(
        resolution=32, channel_mult=(1,), var_mode=True, scales=VAR_SCALES, shared_codebook=False
    )
    model = build_model(cfg, key=jr.PRNGKey(3))
    x = fields(rng, 2, 32)
    model = kmeans_init(model, x, key=jr.PRNGKey(4))
    z_e = model.embed(x)
    _, out = model(x)
    # mean ||z_e - f_hat_k||² after k = 0..S scales
    res = [float(jnp.mean(z_e**2))]
    for k in range(1, len(VAR_SCALES) + 1):
        res.append(float(jnp.mean((z_e - model.quantizer.decode(out.indices[:k])) ** 2)))
    steps = np.diff(res)
    assert res[-1] < 0.5 * res[0], res
    assert steps.mean() < 0 and (steps < 0).mean() >= 0.7, res


@pytest.mark.parametrize("var_mode,shared", [(False, True), (True, True), (True, False)])
def test_ema_update_stats_and_state(rng, var_mode, shared):
    cfg = tiny(var_mode=var_mode, shared_codebook=shared)
    model = build_model(cfg, key=jr.PRNGKey(5))
    x = fields(rng, 4, 16)
    _, out = model(x)
    new, stats = ema_update(model, out, key=jr.PRNGKey(6))
    n_s = len(cfg.model_scales)
    assert stats["perplexity"].shape == (n_s,) and stats["usage"].shape == (n_s,)
    assert bool(jnp.all(stats["perplexity"] >= 1 - 1e-5))
    assert bool(jnp.all(stats["perplexity"] <= cfg.vocab_size))
    assert bool(jnp.all((stats["usage"] > 0) & (stats["usage"] <= 1)))
    # first update: every code unused so far is dead and restarted from this batch
    assert 0 < int(stats["n_restarted"]) <= cfg.vocab_size * (1 if shared else n_s)
    old_qs, new_qs = (
        ([model.quantizer], [new.quantizer])
        if not var_mode
        else (model.quantizer.quantizers, new.quantizer.quantizers)
    )
    for q0, q1 in zip(old_qs, new_qs, strict=True):
        assert float(jnp.sum(q0.ema_count)) == 0 and float(jnp.sum(q1.ema_count)) > 0
    # everything outside the quantizers is untouched
    strip = lambda m: eqx.filter(m, trainable_spec(m))  # noqa: E731
    for a, b in zip(jax.tree.leaves(strip(model)), jax.tree.leaves(strip(new)), strict=True):
        np.testing.assert_array_equal(a, b)


def test_trainable_spec_excludes_codebooks_and_ema_stats():
    model = build_model(tiny(var_mode=True, shared_codebook=False), key=jr.PRNGKey(7))
    spec = trainable_spec(model)
    for q in spec.quantizer.quantizers:
        assert (q.codebook, q.ema_count, q.ema_sum) == (False, False, False)
    assert spec.quantizer.phis[0].conv.weight is True
    assert spec.encoder.conv_in.weight is True and spec.decoder.conv_out.bias is True
    params, frozen = eqx.partition(model, spec)
    assert params.quantizer.quantizers[0].codebook is None
    assert frozen.quantizer.quantizers[0].ema_sum is not None
    n_trainable = sum(x is True for x in jax.tree.leaves(spec))
    opt_state = optax.adam(1e-3).init(params)
    assert len(jax.tree.leaves(opt_state[0].mu)) == n_trainable


def test_jitted_train_step_compiles_once(rng):
    """One jitted step (loss, grad, Adam, EMA) traces once; gradients reach the trunk and φ,
    never the codebooks (learned by EMA)."""
    model = build_model(tiny(var_mode=True), key=jr.PRNGKey(8))
    opt = optax.adam(1e-3)
    params, _ = eqx.partition(model, trainable_spec(model))
    opt_state = opt.init(params)

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def step(model, opt_state, x, key):
        params, frozen = eqx.partition(model, trainable_spec(model))

        def loss_fn(p):
            recon, out = eqx.combine(p, frozen)(x)
            return jnp.mean((recon - x) ** 2) + 0.25 * out.commit_loss, out

        (loss, out), g = eqx.filter_value_and_grad(loss_fn, has_aux=True)(params)
        upd, opt_state = opt.update(g, opt_state, params)
        model = eqx.combine(eqx.apply_updates(params, upd), frozen)
        model, stats = ema_update(model, out, key=key)
        return model, opt_state, loss, g

    losses = []
    for i in range(3):
        model, opt_state, loss, g = step(model, opt_state, fields(rng, 4, 16), jr.PRNGKey(i))
        losses.append(float(loss))
    assert all(np.isfinite(losses))
    assert float(jnp.abs(g.encoder.conv_in.weight).max()) > 0
    assert float(jnp.abs(g.decoder.conv_out.weight).max()) > 0
    assert float(jnp.abs(g.quantizer.phis[0].conv.weight).max()) > 0  # φ trained by recon
    assert g.quantizer.quantizers[0].codebook is None  # not even a gradient slot


def test_kmeans_init_lowers_commitment(rng):
    model = build_model(tiny(), key=jr.PRNGKey(9))
    x = fields(rng, 4, 16)
    before = float(model(x)[1].commit_loss)
    model = kmeans_init(model, x, key=jr.PRNGKey(10))
    _, out = model(x)
    assert float(out.commit_loss) < 0.5 * before
    assert float(jnp.sum(model.quantizer.ema_count)) == pytest.approx(4 * 4 * 4, rel=1e-5)


@pytest.mark.slow  # recompiles every op in bfloat16 (~15 s on a busy box)
def test_bf16_input_runs_trunk_in_bf16(rng):
    model = build_model(tiny(), key=jr.PRNGKey(11))
    x = fields(rng, 2, 16)
    recon, out = model(x.astype(jnp.bfloat16))
    assert recon.dtype == jnp.bfloat16 and out.commit_loss.dtype == jnp.float32
    assert int(out.indices[0].max()) < 16


def test_every_flag_changes_the_model():
    def signature(cfg):
        m = eqx.filter_eval_shape(build_model, cfg, key=jr.PRNGKey(0))
        return type(m).__name__, tuple(x.shape for x in jax.tree.leaves(m))

    ref = signature(tiny())
    for change in [
        dict(hidden_dim=12),
        dict(codebook_dim=6),
        dict(vocab_size=32),
        dict(base_channels=6),
        dict(channel_mult=(1, 3)),
        dict(channel_mult=(1, 2, 2)),
        dict(num_res_blocks=2),
        dict(attention=True),
        dict(group_norm=False),
        dict(var_mode=True),
        dict(downsample_first=not VQVAEConfig.downsample_first),
    ]:
        assert signature(tiny(**change)) != ref, change
    var = signature(tiny(var_mode=True))
    assert signature(tiny(var_mode=True, shared_codebook=False)) != var
    assert signature(tiny(var_mode=True, num_phi=2)) != var
    assert signature(tiny(var_mode=True, scales=(2, 4))) == var  # same weights, other scales
    assert signature(tiny(remat=True)) == ref  # same weights, recomputed activations
    assert build_model(tiny(var_mode=True, scales=(2, 4)), key=jr.PRNGKey(0)).scales == (2, 4)


def test_var_model_rejects_fields_of_another_size(rng):
    model = build_model(tiny(var_mode=True), key=jr.PRNGKey(0))
    with pytest.raises(InputError, match="scales ending in 4"):
        model(fields(rng, 1, 32))


@pytest.mark.slow  # two more whole-model gradient compilations
def test_remat_gives_the_same_gradients(rng):
    x = fields(rng, 2, 16)

    def grads(cfg):
        model = build_model(cfg, key=jr.PRNGKey(12))

        @eqx.filter_jit
        def g(model):
            def loss(m):
                recon, out = m(x)
                return jnp.mean((recon - x) ** 2) + 0.25 * out.commit_loss

            return eqx.filter_grad(loss)(model)

        return jax.tree.leaves(eqx.filter(g(model), eqx.is_inexact_array))

    for a, b in zip(grads(tiny()), grads(tiny(remat=True)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
