import numpy as np
import pytest

from vqturb import metrics
from vqturb.physics import stats


def test_relative_l2_psnr_and_spectrum_error(rng):
    b = rng.standard_normal((3, 16, 16))
    assert np.allclose(metrics.relative_l2(b, b), 0.0)
    assert np.allclose(metrics.relative_l2(2 * b, b), 1.0)
    a = b + 0.1
    assert np.allclose(
        metrics.psnr(a, b, value_range=10.0), 20 * np.log10(10.0) - 10 * np.log10(0.01)
    )
    e = stats.energy_spectrum(b)
    assert np.allclose(metrics.spectrum_log_error(e, e), 0.0)
    assert np.allclose(metrics.spectrum_log_error(10 * e, e), 1.0, atol=1e-6)


def test_js_and_tv_bounds():
    p = np.array([1.0, 0.0, 0.0])
    q = np.array([0.0, 0.0, 1.0])
    assert float(metrics.js_divergence(p, q)) == pytest.approx(1.0)
    assert float(metrics.tv_distance(p, q)) == pytest.approx(1.0)
    assert float(metrics.js_divergence(p, p)) == pytest.approx(0.0)
    r = np.array([0.5, 0.25, 0.25])
    # hand computation: m = [0.75, 0.125, 0.125]
    m = np.array([0.75, 0.125, 0.125])
    expected = 0.5 * (np.log2(1 / 0.75)) + 0.5 * (
        0.5 * np.log2(0.5 / 0.75) + 2 * 0.25 * np.log2(0.25 / 0.125)
    )
    assert float(metrics.js_divergence(p, r)) == pytest.approx(expected)
    assert float(metrics.tv_distance(p, r)) == pytest.approx(0.5)
    assert m.sum() == 1.0


def test_histogram_is_a_distribution(rng):
    x = rng.standard_normal(1000) * 3
    h = np.asarray(metrics.histogram(x, np.linspace(-2, 2, 11)))
    assert h.shape == (10,)
    assert h.sum() == pytest.approx(1.0)
    assert (h >= 0).all()


def test_seed_js_kl_tv_against_a_hand_computation():
    """The seed's smoothed, natural-log variants on p = (2, 1, 1, 0)/4 and q = uniform."""
    import math

    p = np.array([2.0, 1.0, 1.0, 0.0])  # counts: normalised inside
    q = np.array([1.0, 1.0, 1.0, 1.0])
    eps = 1e-10
    # m = (3/8, 1/4, 1/4, 1/8); KL(p||m) = ½ ln(4/3); KL(q||m) = ¼ ln(2/3) + ¼ ln 2
    js = 0.5 * (0.5 * math.log(4 / 3)) + 0.5 * (0.25 * math.log(2 / 3) + 0.25 * math.log(2))
    got = float(metrics.js_divergence(p, q, base=math.e, eps=eps))
    assert got == pytest.approx(js, abs=1e-8)
    # vqturb's default: the same in bits, no smoothing
    assert float(metrics.js_divergence(p, q)) == pytest.approx(js / math.log(2), rel=1e-12)
    # KL(q||p): q's mass ¼ on the bin p lacks meets p's smoothed ε/(1 + 4ε) there
    p_s = (np.array([0.5, 0.25, 0.25, 0.0]) + eps) / (1 + 4 * eps)
    q_s = (0.25 + eps) / (1 + 4 * eps)
    kl_qp = sum(q_s * math.log(q_s / pi) for pi in p_s)
    assert float(metrics.kl_divergence(q, p, eps=eps)) == pytest.approx(kl_qp, rel=1e-12)
    assert kl_qp == pytest.approx(0.25 * (math.log(0.5) + math.log(0.25 / eps)), rel=1e-8)
    # the other direction has no empty bin of q: ½ ln 2 + 2·¼ ln 1
    assert float(metrics.kl_divergence(p, q, eps=eps)) == pytest.approx(0.5 * math.log(2), abs=1e-8)
    assert math.isinf(float(metrics.kl_divergence(q, p)))  # unsmoothed: infinite
    assert float(metrics.tv_distance(p, q, eps=eps)) == pytest.approx(0.25, abs=1e-9)
    # NumPy in, NumPy float64 out (the seed's precision); JAX in, JAX out
    assert isinstance(metrics.kl_divergence(q, p, eps=eps), np.ndarray)
    import jax.numpy as jnp

    assert not isinstance(metrics.tv_distance(jnp.asarray(p), jnp.asarray(q)), np.ndarray)
