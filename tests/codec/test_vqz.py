""".vqz helpers: time storage and index coding."""

import zlib

import numpy as np

from vqturb.codec.vqz import _times_header, _unzigzag, _zigzag, raw_bits_per_field


def test_regular_times_cost_no_section():
    tidx = np.array([0, 1, 2, 0, 1, 2])
    info, blob = _times_header(20.0 + 0.5 * tidx, tidx)
    assert blob is None and info == {"t0": 20.0, "dt": 0.5}


def test_irregular_times_are_stored_exactly(rng):
    tidx = np.arange(5)
    t = np.sort(rng.random(5))
    info, blob = _times_header(t, tidx)
    assert info == {"raw": True}
    assert np.array_equal(np.frombuffer(zlib.decompress(blob), "<f8"), t)


def test_zigzag_round_trip(rng):
    d = rng.integers(-1000, 1000, 50)
    assert np.array_equal(_unzigzag(_zigzag(d)), d)
    assert _zigzag(np.array([0, -1, 1, -2])).tolist() == [0, 1, 2, 3]


def test_raw_bits():
    assert raw_bits_per_field((1, 2, 4, 8, 16), 512) == 341 * 9
    assert raw_bits_per_field((16,), 100) == 256 * 7
