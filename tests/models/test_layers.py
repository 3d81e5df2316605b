"""Conv trunk layers: NHWC Conv2d against references, GroupNorm, attention, dtype following."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from vqturb.models import conv_cpu_grad
from vqturb.models.blocks import AttentionBlock2d, ResBlock2d
from vqturb.models.conv import Conv2d, conv_pair, upsample_nearest2x
from vqturb.models.norm import GroupNorm


def periodic_conv_reference(x, w, b, stride):
    """Direct periodic 3x3 cross-correlation by rolling (independent of lax.conv)."""
    out = 0.0
    for a in range(3):
        for c in range(3):
            out = out + np.einsum("bhwi,io->bhwo", np.roll(x, (1 - a, 1 - c), axis=(1, 2)), w[a, c])
    return out[:, ::stride, ::stride] + b


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [8, 9])
def test_circular_conv_matches_rolled_reference(rng, stride, size):
    conv = Conv2d(3, 5, 3, stride=stride, padding_mode="circular", key=jr.PRNGKey(0))
    x = rng.standard_normal((2, size, size, 3)).astype(np.float32)
    y = np.asarray(conv(jnp.asarray(x)))
    ref = periodic_conv_reference(x, np.asarray(conv.weight), np.asarray(conv.bias), stride)
    assert y.shape == ref.shape == (2, -(-size // stride), -(-size // stride), 5)
    np.testing.assert_allclose(y, ref, atol=1e-5)


def test_circular_conv_commutes_with_periodic_shift(rng):
    conv = Conv2d(2, 2, 3, padding_mode="circular", key=jr.PRNGKey(1))
    x = jnp.asarray(rng.standard_normal((1, 8, 8, 2)), jnp.float32)
    shifted = conv(jnp.roll(x, (3, -2), axis=(1, 2)))
    np.testing.assert_allclose(shifted, jnp.roll(conv(x), (3, -2), axis=(1, 2)), atol=1e-5)


@pytest.mark.parametrize("stride", [1, 2])
def test_zero_padded_conv_matches_eqx_conv(rng, stride):
    ours = Conv2d(3, 4, 3, stride=stride, padding_mode="zeros", key=jr.PRNGKey(2))
    ref = eqx.nn.Conv2d(3, 4, 3, stride=stride, padding=1, key=jr.PRNGKey(3))
    ref = eqx.tree_at(
        lambda c: (c.weight, c.bias),
        ref,
        (jnp.transpose(ours.weight, (3, 2, 0, 1)), ours.bias[:, None, None]),
    )
    x = jnp.asarray(rng.standard_normal((2, 8, 8, 3)), jnp.float32)
    expected = jax.vmap(ref)(jnp.transpose(x, (0, 3, 1, 2))).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(ours(x), expected, atol=1e-5)


def force_tap_weight_grad(monkeypatch):
    monkeypatch.setattr(conv_cpu_grad, "_TAP_GRAD_MIN_CHANNELS", 1)
    monkeypatch.setattr(conv_cpu_grad, "_TAP_GRAD_MIN_ROWS", 1)
    monkeypatch.setattr(conv_cpu_grad, "_TAP_GRAD_CHUNK_ROWS", 7)  # several chunks, uneven split


@pytest.mark.parametrize("tap", [True, False])
@pytest.mark.parametrize(
    ("kernel", "stride", "size"),
    [(3, 1, 8), (3, 2, 10), (3, 2, 11), (3, 3, 12), (2, 1, 7), (2, 2, 9), (1, 1, 6), (1, 2, 7)],
)
def test_cpu_gradients_match_xla_gradients(rng, monkeypatch, tap, kernel, stride, size):
    """The CPU gradient forms (tap-wise weight gradient, polyphase input gradient) equal XLA's."""
    force_tap_weight_grad(monkeypatch)
    xp = jnp.asarray(rng.standard_normal((2, size, size + 1, 3)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((kernel, kernel, 3, 4)), jnp.float32)
    g = jnp.asarray(
        rng.standard_normal(conv_cpu_grad.valid_conv_xla(xp, w, stride).shape), jnp.float32
    )

    def loss(w, xp, fn):
        return jnp.sum(fn(xp, w) * g)

    grads = jax.grad(loss, argnums=(0, 1))
    dw_cpu, dx_cpu = grads(w, xp, lambda xp, w: conv_cpu_grad.valid_conv_cpu(xp, w, stride, tap))
    dw_xla, dx_xla = grads(w, xp, lambda xp, w: conv_cpu_grad.valid_conv_xla(xp, w, stride))
    np.testing.assert_allclose(dw_cpu, dw_xla, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx_cpu, dx_xla, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("padding_mode", ["circular", "zeros"])
@pytest.mark.parametrize("stride", [1, 2])
def test_conv_takes_cpu_gradient_path_with_same_gradients(rng, monkeypatch, padding_mode, stride):
    conv = Conv2d(3, 4, 3, stride=stride, padding_mode=padding_mode, key=jr.PRNGKey(2))
    x = jnp.asarray(rng.standard_normal((2, 8, 8, 3)), jnp.float32)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")  # XLA's own gradients
    assert "custom_vjp_call" not in str(jax.make_jaxpr(conv)(x))
    c_xla, x_xla = jax.grad(lambda c, x: jnp.sum(jnp.sin(c(x))), argnums=(0, 1))(conv, x)
    monkeypatch.setattr(jax, "default_backend", lambda: "cpu")
    force_tap_weight_grad(monkeypatch)
    assert "custom_vjp_call" in str(jax.make_jaxpr(conv)(x))
    c_cpu, x_cpu = jax.grad(lambda c, x: jnp.sum(jnp.sin(c(x))), argnums=(0, 1))(conv, x)
    np.testing.assert_allclose(c_cpu.weight, c_xla.weight, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(c_cpu.bias, c_xla.bias, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(x_cpu, x_xla, rtol=1e-5, atol=1e-5)


def test_tap_weight_gradient_bf16_accumulates_in_float32(rng):
    xp = jnp.asarray(rng.standard_normal((4, 18, 18, 8)), jnp.float32)
    dy = jnp.asarray(rng.standard_normal((4, 16, 16, 8)), jnp.float32)
    exact = conv_cpu_grad._tap_weight_grad(xp, dy, 3, 1)
    low = conv_cpu_grad._tap_weight_grad(xp.astype(jnp.bfloat16), dy.astype(jnp.bfloat16), 3, 1)
    assert low.dtype == jnp.float32
    # Only the bf16 rounding of the inputs (2^-8 relative) remains, not a bf16 running sum.
    assert float(jnp.linalg.norm(low - exact) / jnp.linalg.norm(exact)) < 1e-2


def test_tap_weight_gradient_thresholds():
    cpu = jax.default_backend() == "cpu"
    assert conv_cpu_grad.use_tap_weight_grad(4 * 128 * 128, 128, 128) == cpu
    assert not conv_cpu_grad.use_tap_weight_grad(8 * 64 * 64, 32, 32)  # narrow: XLA's kernel wins
    assert not conv_cpu_grad.use_tap_weight_grad(4 * 32 * 32, 512, 512)  # small grid: XLA's wins


@pytest.mark.parametrize("padding_mode", ["circular", "zeros"])
@pytest.mark.parametrize("size", [4, 5])
@pytest.mark.parametrize("tap_grad", [False, True])
def test_upsampled_conv_equals_conv_of_upsampled_field(
    rng, monkeypatch, padding_mode, size, tap_grad
):
    """The sub-pixel form is the same function, with the same gradients, as upsample-then-conv."""
    if tap_grad:
        force_tap_weight_grad(monkeypatch)
    conv = Conv2d(3, 5, 3, padding_mode=padding_mode, key=jr.PRNGKey(3))
    x = jnp.asarray(rng.standard_normal((2, size, size + 1, 3)), jnp.float32)
    direct = conv(upsample_nearest2x(x))
    fast = conv.upsampled(x)
    assert fast.shape == direct.shape == (2, 2 * size, 2 * size + 2, 5)
    np.testing.assert_allclose(fast, direct, rtol=1e-5, atol=1e-5)

    def loss(c, x, fn):
        return jnp.sum(jnp.sin(fn(c, x)))

    g_fast = jax.grad(loss, argnums=(0, 1))(conv, x, lambda c, x: c.upsampled(x))
    g_direct = jax.grad(loss, argnums=(0, 1))(conv, x, lambda c, x: c(upsample_nearest2x(x)))
    for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_direct), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_upsampled_conv_in_bfloat16_follows_input_dtype(rng):
    conv = Conv2d(2, 3, 3, key=jr.PRNGKey(4))
    x = jnp.asarray(rng.standard_normal((1, 4, 4, 2)), jnp.bfloat16)
    y = conv.upsampled(x)
    assert y.dtype == jnp.bfloat16
    ref = conv(upsample_nearest2x(x.astype(jnp.float32)))
    np.testing.assert_allclose(np.asarray(y, np.float32), ref, rtol=0.05, atol=0.05)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [8, 9])
def test_conv_pair_composes_exactly_with_the_same_gradients(rng, stride, size):
    first = Conv2d(2, 16, 3, key=jr.PRNGKey(5))
    second = Conv2d(16, 8, 3, stride=stride, key=jr.PRNGKey(6))
    x = jnp.asarray(rng.standard_normal((2, size, size, 2)), jnp.float32)
    np.testing.assert_allclose(conv_pair(first, second, x), second(first(x)), atol=1e-5)
    # one convolution: the [.., 16] intermediate is never formed
    jaxpr = str(jax.make_jaxpr(lambda x: conv_pair(first, second, x))(x))
    assert jaxpr.count("conv_general_dilated") == 1

    def loss(pair, x, fn):
        return jnp.sum(jnp.sin(fn(pair[0], pair[1], x)))

    def sequential(a, b, x):
        return b(a(x))

    g_pair = jax.grad(loss, argnums=(0, 1))((first, second), x, conv_pair)
    g_seq = jax.grad(loss, argnums=(0, 1))((first, second), x, sequential)
    for a, b in zip(jax.tree.leaves(g_pair), jax.tree.leaves(g_seq), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_conv_pair_falls_back_where_composition_is_not_exact(rng):
    x = jnp.asarray(rng.standard_normal((1, 8, 8, 2)), jnp.float32)
    zeros = Conv2d(2, 16, 3, padding_mode="zeros", key=jr.PRNGKey(5))
    second = Conv2d(16, 8, 3, stride=2, padding_mode="zeros", key=jr.PRNGKey(6))
    np.testing.assert_allclose(conv_pair(zeros, second, x), second(zeros(x)), atol=1e-6)
    assert str(jax.make_jaxpr(lambda x: conv_pair(zeros, second, x))(x)).count("conv_gen") == 2
    wide = Conv2d(64, 4, 3, key=jr.PRNGKey(7))  # composed kernel wider than the pair
    third = Conv2d(4, 4, 3, key=jr.PRNGKey(8))
    y = jnp.asarray(rng.standard_normal((1, 8, 8, 64)), jnp.float32)
    np.testing.assert_allclose(conv_pair(wide, third, y), third(wide(y)), atol=1e-6)


def test_conv_init_scale_matches_eqx():
    conv = Conv2d(16, 32, 3, key=jr.PRNGKey(0))
    lim = 1 / np.sqrt(16 * 9)
    w = np.asarray(conv.weight)
    assert np.abs(w).max() <= lim and np.abs(np.asarray(conv.bias)).max() <= lim
    ref = eqx.nn.Conv2d(16, 32, 3, key=jr.PRNGKey(0)).weight
    np.testing.assert_allclose(w.std(), np.asarray(ref).std(), rtol=0.1)


def test_group_norm_matches_eqx(rng):
    gn = GroupNorm(8, max_groups=4)
    assert gn.groups == 4
    x = jnp.asarray(rng.standard_normal((2, 5, 5, 8)) * 3 + 1, jnp.float32)
    ref = eqx.nn.GroupNorm(4, 8, eps=1e-6)
    expected = jax.vmap(ref)(jnp.transpose(x, (0, 3, 1, 2))).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(gn(x), expected, atol=1e-4)
    # odd widths still work: the largest divisor of 6 not above 4 is 3
    assert GroupNorm(6, max_groups=4).groups == 3


@pytest.mark.parametrize("offset", [0.0, 1e3])
def test_group_norm_matches_two_pass_float64_reference(rng, offset):
    """One-pass shifted statistics keep full accuracy when the mean dwarfs the spread."""
    gn = GroupNorm(12, max_groups=4)
    gn = eqx.tree_at(lambda g: (g.weight, g.bias), gn, (jnp.linspace(0.5, 2, 12), jnp.ones(12)))
    # channels of one group with different means: the group variance includes their spread
    x = rng.standard_normal((3, 6, 7, 12)) + offset + np.arange(12) * 0.5
    xg = x.reshape(3, 6, 7, 4, 3)
    mean = xg.mean(axis=(1, 2, 4), keepdims=True)
    var = ((xg - mean) ** 2).mean(axis=(1, 2, 4), keepdims=True)
    ref = ((xg - mean) / np.sqrt(var + 1e-6)).reshape(x.shape) * np.linspace(0.5, 2, 12) + 1
    # float32 rounding of x itself (6e-5 at 1e3) bounds the agreement; the textbook one-pass
    # E[x²] - E[x]² would be off by ~1e-2 here.
    np.testing.assert_allclose(gn(jnp.asarray(x, jnp.float32)), ref, atol=1e-4 + offset * 1e-6)


def test_group_norm_gradient_matches_two_pass_form(rng):
    gn = GroupNorm(8, max_groups=4)
    x = jnp.asarray(rng.standard_normal((2, 5, 5, 8)) * 3 + 7, jnp.float32)

    def two_pass(x):
        xg = x.reshape(2, 5, 5, 4, 2)
        mean = xg.mean(axis=(1, 2, 4), keepdims=True)
        var = jnp.square(xg - mean).mean(axis=(1, 2, 4), keepdims=True)
        return ((xg - mean) * jax.lax.rsqrt(var + 1e-6)).reshape(x.shape)

    weights = jnp.asarray(rng.standard_normal(x.shape), jnp.float32)
    g_fast = jax.grad(lambda x: jnp.sum(jnp.sin(gn(x)) * weights))(x)
    g_ref = jax.grad(lambda x: jnp.sum(jnp.sin(two_pass(x)) * weights))(x)
    np.testing.assert_allclose(g_fast, g_ref, rtol=1e-4, atol=1e-4)


def test_attention_is_equivariant_to_pixel_permutation(rng):
    """No positional encoding: transposing the grid transposes the output (a real global mixer)."""
    att = AttentionBlock2d(8, num_heads=2, norm_groups=4, key=jr.PRNGKey(0))
    x = jnp.asarray(rng.standard_normal((2, 4, 5, 8)), jnp.float32)
    y = att(x)
    np.testing.assert_allclose(att(x.transpose(0, 2, 1, 3)), y.transpose(0, 2, 1, 3), atol=1e-5)
    # and it mixes globally: a change at one pixel changes far-away outputs
    y2 = att(x.at[:, 0, 0].add(5.0))
    assert float(jnp.abs(y2 - y)[:, 3, 4].max()) > 1e-4


def test_resblock_shapes_and_dtype_following(rng):
    blk = ResBlock2d(4, 8, norm_groups=2, key=jr.PRNGKey(0))
    x = jnp.asarray(rng.standard_normal((2, 6, 6, 4)), jnp.float32)
    assert blk(x).shape == (2, 6, 6, 8) and blk(x).dtype == jnp.float32
    yb = blk(x.astype(jnp.bfloat16))
    assert yb.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(yb, np.float32), blk(x), atol=0.1)
