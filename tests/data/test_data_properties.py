"""Hypothesis property tests over random shapes, dtypes, formats and split/loader parameters."""

from __future__ import annotations

import tempfile
from pathlib import Path

import hypothesis.extra.numpy as hnp
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from matfile_helpers import FORMATS, write_field, write_trajectory

from vqturb.data import BatchLoader, RunningStats, open_dataset, read_field
from vqturb.errors import InputError

_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=32)


@_SETTINGS
@given(
    a=hnp.arrays(
        dtype=st.sampled_from([np.float32, np.float64]),
        shape=hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=9),
        elements=finite,
    ),
    fmt=st.sampled_from(FORMATS),
)
def test_read_field_round_trips_any_shape_and_dtype(a, fmt):
    with tempfile.TemporaryDirectory() as d:
        p = write_field(Path(d) / "x.mat", a, fmt)
        b = read_field(p)
        c = read_field(p, dtype=np.float32)
    assert b.dtype == a.dtype
    assert b.shape == a.shape and b.flags.c_contiguous
    np.testing.assert_array_equal(b, a)
    assert c.dtype == np.float32 and c.flags.c_contiguous
    np.testing.assert_array_equal(c, a.astype(np.float32))


@_SETTINGS
@given(
    a=hnp.arrays(
        dtype=st.sampled_from([np.int16, np.int32, np.uint8]),
        shape=hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6),
    ),
    fmt=st.sampled_from(["v5", "v5c", "v73"]),
)
def test_integer_fields_load_as_float64(a, fmt):
    with tempfile.TemporaryDirectory() as d:
        b = read_field(write_field(Path(d) / "x.mat", a, fmt))
    assert b.dtype == np.float64
    np.testing.assert_array_equal(b, a.astype(np.float64))


@_SETTINGS
@given(
    shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4).filter(
        lambda s: len(s) != 2
    ),
    fmt=st.sampled_from(["v5", "v73"]),
)
def test_wrong_rank_is_an_input_error(shape, fmt):
    a = np.ones(shape)
    with tempfile.TemporaryDirectory() as d:
        p = write_field(Path(d) / "x.mat", a, fmt)
        try:
            read_field(p)
        except InputError as e:
            msg = str(e)
            assert str(p) in msg and "'Omega'" in msg and "dimensions" in msg
        else:
            # MATLAB has no 1-D arrays: a vector is stored as a 1 x N matrix, a valid 2-D field
            assert len(shape) == 1


@_SETTINGS
@given(
    chunks=st.lists(
        hnp.arrays(np.float64, st.integers(1, 30), elements=st.floats(-1e3, 1e3)),
        min_size=1,
        max_size=8,
    ),
    offset=st.sampled_from([0.0, 1e8]),
)
def test_running_stats_match_numpy(chunks, offset):
    stats = RunningStats()
    for c in chunks:
        stats.update(c + offset)
    allv = np.concatenate(chunks) + offset
    assert stats.n == allv.size
    np.testing.assert_allclose(stats.mean, allv.mean(), rtol=1e-12, atol=1e-9)
    # two-pass numpy std as reference; Chan's update keeps it to rounding of the data itself
    np.testing.assert_allclose(stats.std, allv.std(), rtol=1e-6, atol=1e-7)
    assert stats.min == allv.min() and stats.max == allv.max()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lengths=st.lists(st.integers(1, 7), min_size=1, max_size=5),
    batch=st.integers(1, 4),
    seed=st.integers(0, 2**31 - 1),
    val=st.sampled_from([0.0, 0.2, 0.4]),
    test=st.sampled_from([0.0, 0.2]),
)
def test_splits_partition_and_loaders_are_deterministic(lengths, batch, seed, val, test):
    with tempfile.TemporaryDirectory() as d:
        for i, n in enumerate(lengths):
            fields = np.stack([np.full((2, 2), 100.0 * i + t) for t in range(n)])
            write_trajectory(Path(d) / f"t{i}", fields)
        ds = open_dataset(d)
        sp = ds.split(val_fraction=val, test_fraction=test, seed=seed)
        refs = np.concatenate([s.refs for s in sp])
        # a partition of every snapshot
        assert len(refs) == len(ds)
        assert len({tuple(r) for r in refs.tolist()}) == len(ds)
        if len(lengths) > 1:
            sets = [set(s.trajectory_set) for s in sp]
            assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
        assert len(sp.train) > 0
        for s in sp:
            p = s.pairs(1)
            assert np.all(s.trajectory_ids[p[:, 0]] == s.trajectory_ids[p[:, 1]])
        if len(sp.train) >= batch:
            a = BatchLoader(sp.train, batch, seed=seed, prefetch=0)
            b = BatchLoader(sp.train, batch, seed=seed, prefetch=0)
            for step in (0, a.steps_per_epoch, 3 * a.steps_per_epoch + 1):
                np.testing.assert_array_equal(a.batch_at(step), b.batch_at(step))
