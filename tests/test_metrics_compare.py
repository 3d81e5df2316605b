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
