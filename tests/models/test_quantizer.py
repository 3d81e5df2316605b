"""Quantizer2d (nearest code, EMA arithmetic, dead-code restart) and VAR's resampling matrices."""

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from vqturb.models.quantizer import (
    Quantizer2d,
    area_downsample,
    area_matrix,
    phi_index,
    upsample,
    upsample_matrix,
)


def test_nearest_matches_brute_force(rng):
    q = Quantizer2d(32, 6, key=jr.PRNGKey(0))
    z = rng.standard_normal((3, 5, 6)).astype(np.float32)
    d = ((z[..., None, :] - np.asarray(q.codebook)) ** 2).sum(-1)
    idx = np.asarray(q.nearest(jnp.asarray(z)))
    assert idx.dtype == np.int32 and idx.shape == (3, 5)
    assert (0 <= idx).all() and (idx < 32).all()
    np.testing.assert_array_equal(idx, d.argmin(-1))
    np.testing.assert_array_equal(q.lookup(jnp.asarray(idx)), np.asarray(q.codebook)[idx])
    np.testing.assert_array_equal(q.lookup(idx), np.asarray(q.codebook)[idx])  # numpy in


def test_ema_arithmetic_two_codes_by_hand():
    q = Quantizer2d(2, 2, decay=0.5, eps=0.1, dead_code_threshold=0.0, key=jr.PRNGKey(0))
    q = q.set_codebook(jnp.array([[0.0, 0.0], [10.0, 10.0]]), jnp.array([1.0, 1.0]))
    x = jnp.array([[1.0, 1.0], [3.0, 3.0], [9.0, 9.0]])
    idx = q.nearest(x)
    np.testing.assert_array_equal(idx, [0, 0, 1])
    new, n_restarted = q.ema_update(x, idx, key=jr.PRNGKey(1))
    # N <- 0.5 N + 0.5 n with n = (2, 1);  m <- 0.5 m + 0.5 s with s = ((4, 4), (9, 9))
    count = np.array([0.5 * 1 + 0.5 * 2, 0.5 * 1 + 0.5 * 1])  # (1.5, 1.0)
    msum = np.array([[0.5 * 0 + 0.5 * 4] * 2, [0.5 * 10 + 0.5 * 9] * 2])  # (2, 2), (9.5, 9.5)
    total = 2.5
    smoothed = (count + 0.1) / (total + 2 * 0.1) * total  # Laplace smoothing
    np.testing.assert_allclose(new.ema_count, count, rtol=1e-6)
    np.testing.assert_allclose(new.ema_sum, msum, rtol=1e-6)
    np.testing.assert_allclose(new.codebook, msum / smoothed[:, None], rtol=1e-6)
    np.testing.assert_allclose(new.codebook[0], [2 / (1.6 / 2.7 * 2.5)] * 2, rtol=1e-6)
    assert int(n_restarted) == 0


def test_unused_code_keeps_its_vector_before_any_use():
    q = Quantizer2d(3, 2, dead_code_threshold=0.0, key=jr.PRNGKey(0))
    x = q.codebook[:1] + 0.01
    new, _ = q.ema_update(x, jnp.array([0]), key=jr.PRNGKey(1))
    np.testing.assert_array_equal(new.codebook[1:], q.codebook[1:])


def test_dead_code_restart_only_touches_dead_codes(rng):
    v, d = 8, 3
    counts = jnp.array([10.0, 10.0, 10.0, 10.0, 0.0, 0.0, 0.01, 10.0])
    cb = jnp.asarray(rng.standard_normal((v, d)), jnp.float32)
    kw = dict(decay=0.9, eps=1e-5, key=jr.PRNGKey(0))
    q = Quantizer2d(v, d, dead_code_threshold=0.5, **kw).set_codebook(cb, counts)
    ref = Quantizer2d(v, d, dead_code_threshold=0.0, **kw).set_codebook(cb, counts)
    x = jnp.asarray(rng.standard_normal((40, d)), jnp.float32)
    idx = jnp.asarray(rng.integers(0, 4, 40), jnp.int32)  # only codes 0..3 used in this batch
    new, n_restarted = q.ema_update(x, idx, key=jr.PRNGKey(5))
    pure, _ = ref.ema_update(x, idx, key=jr.PRNGKey(5))
    cutoff = 0.5 * float(jnp.sum(pure.ema_count)) / v
    dead = np.asarray(pure.ema_count) < cutoff
    # codes 4, 5, 6 are dead (7 is unused in this batch but in heavy use: kept)
    np.testing.assert_array_equal(dead, [0, 0, 0, 0, 1, 1, 1, 0])
    assert int(n_restarted) == 3
    alive = ~dead
    np.testing.assert_array_equal(np.asarray(new.codebook)[alive], np.asarray(pure.codebook)[alive])
    np.testing.assert_array_equal(
        np.asarray(new.ema_count)[alive], np.asarray(pure.ema_count)[alive]
    )
    np.testing.assert_array_equal(np.asarray(new.ema_sum)[alive], np.asarray(pure.ema_sum)[alive])
    xs = np.asarray(x)
    for row in np.asarray(new.codebook)[dead]:  # restarted from vectors of this batch
        assert np.isclose(xs, row).all(axis=1).any()
    # the restarted code's EMA continues from the new vector
    np.testing.assert_allclose(
        np.asarray(new.ema_sum)[dead] / np.asarray(new.ema_count)[dead, None],
        np.asarray(new.codebook)[dead],
        rtol=1e-5,
    )


def test_ema_update_is_jittable_and_functional(rng):
    q = Quantizer2d(4, 2, key=jr.PRNGKey(0))
    x = jnp.asarray(rng.standard_normal((10, 2)), jnp.float32)
    new, n = eqx.filter_jit(lambda q, x, k: q.ema_update(x, q.nearest(x), key=k))(
        q, x, jr.PRNGKey(1)
    )
    assert n.dtype == jnp.int32
    assert float(jnp.sum(q.ema_count)) == 0.0  # the original is untouched
    assert float(jnp.sum(new.ema_count)) > 0.0


@pytest.mark.parametrize("n_in,n_out", [(16, 4), (16, 5), (13, 3), (10, 10)])
def test_area_matrix_is_a_cell_average(n_in, n_out):
    a = area_matrix(n_in, n_out)
    np.testing.assert_allclose(a.sum(1), 1.0, rtol=1e-6)
    # the mean of the field is preserved (equal-area cells)
    np.testing.assert_allclose(a.sum(0) * n_in / n_out, 1.0, rtol=1e-5)
    if n_in % n_out == 0:
        x = np.arange(n_in, dtype=np.float32)
        np.testing.assert_allclose(a @ x, x.reshape(n_out, -1).mean(1), rtol=1e-6)


@pytest.mark.parametrize("mode", ["bicubic", "bilinear", "nearest"])
@pytest.mark.parametrize("n_in,n_out", [(1, 16), (2, 16), (3, 16), (13, 16), (4, 8)])
def test_upsample_matrix_is_periodic_interpolation(mode, n_in, n_out):
    m = upsample_matrix(n_in, n_out, mode)
    np.testing.assert_allclose(m.sum(1), 1.0, rtol=1e-6)  # constants preserved
    np.testing.assert_allclose(upsample_matrix(n_out, n_out, mode), np.eye(n_out), atol=1e-7)
    if n_out % n_in == 0:  # shifting by one coarse cell shifts the output by n_out / n_in cells
        x = np.random.default_rng(0).standard_normal(n_in)
        np.testing.assert_allclose(m @ np.roll(x, 1), np.roll(m @ x, n_out // n_in), atol=1e-5)


def test_resample_helpers_shapes(rng):
    x = jnp.asarray(rng.standard_normal((2, 16, 16, 3)), jnp.float32)
    d = area_downsample(x, 5)
    assert d.shape == (2, 5, 5, 3)
    np.testing.assert_allclose(d.mean((1, 2)), x.mean((1, 2)), atol=1e-5)
    assert upsample(d, 16, "bicubic").shape == (2, 16, 16, 3)
    assert area_downsample(x, 16) is x


def test_phi_index_follows_var_partial_sharing():
    # 10 scales, 4 phis: ticks 1/12, 4/12, 7/12, 10/12 against k/9
    assert [phi_index(k, 10, 4) for k in range(10)] == [0, 0, 1, 1, 1, 2, 2, 3, 3, 3]
    assert phi_index(0, 1, 4) == 0
