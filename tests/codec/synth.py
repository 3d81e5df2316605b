"""Synthetic turbulence-like fields for codec tests: random phases, a k^-4 slope."""

import numpy as np


def synth_fields(rng, n, h, slope=-4.0, std=5.0):
    ky = np.fft.fftfreq(h, 1.0 / h)
    kx = np.fft.rfftfreq(h, 1.0 / h)
    k = np.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)
    amp = np.where(k > 0, np.maximum(k, 1) ** (slope / 2), 0)
    z = (
        rng.standard_normal((n, h, h // 2 + 1)) + 1j * rng.standard_normal((n, h, h // 2 + 1))
    ) * amp
    f = np.fft.irfft2(z, s=(h, h))
    return f / f.std() * std + 0.3
