"""BatchLoader / PairLoader: determinism in (seed, step), exact resume, prefetch, pairs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from matfile_helpers import write_field, write_trajectory, write_well

from vqturb.data import BatchLoader, Normalization, PairLoader, open_dataset
from vqturb.errors import InputError


@pytest.fixture
def ds(tmp_path, rng):
    # every snapshot is constant = 1000 * traj + t, so a batch tells which snapshots it holds
    for i, n in enumerate((9, 11, 13)):
        fields = np.stack([np.full((4, 4), 1000.0 * i + t) for t in range(n)])
        write_trajectory(tmp_path / "ds" / f"traj_{i}", fields)
    return open_dataset(tmp_path / "ds")


def _ids(batch: np.ndarray) -> list[int]:
    return [int(b[0, 0]) for b in batch]


def test_batches_are_a_function_of_seed_and_step(ds):
    sub = ds.all()
    a = BatchLoader(sub, 5, seed=7, prefetch=0)
    b = BatchLoader(sub, 5, seed=7, prefetch=0)
    c = BatchLoader(sub, 5, seed=8, prefetch=0)
    assert a.steps_per_epoch == 33 // 5
    for step in (0, 3, 6, 7, 50):
        np.testing.assert_array_equal(a.batch_at(step), b.batch_at(step))
    assert any(not np.array_equal(a.batch_at(s), c.batch_at(s)) for s in range(a.steps_per_epoch))
    # each epoch is a new permutation
    assert not np.array_equal(a.indices_at(0), a.indices_at(a.steps_per_epoch))


def test_an_epoch_visits_each_snapshot_at_most_once(ds):
    sub = ds.all()
    loader = BatchLoader(sub, 4, seed=1, prefetch=0)
    for epoch in range(3):
        steps = range(epoch * loader.steps_per_epoch, (epoch + 1) * loader.steps_per_epoch)
        idx = np.concatenate([loader.indices_at(s) for s in steps])
        assert len(idx) == len(set(idx.tolist())) == 4 * loader.steps_per_epoch
    full = BatchLoader(sub, 4, seed=1, drop_last=False, shuffle=False, prefetch=0)
    assert full.steps_per_epoch == 9
    idx = np.concatenate([full.indices_at(s) for s in range(9)])
    np.testing.assert_array_equal(idx, np.arange(33))
    assert full.batch_at(8).shape == (1, 4, 4)  # the short last batch


@pytest.mark.parametrize("prefetch", [0, 3])
def test_resume_from_a_saved_step_equals_the_uninterrupted_run(ds, prefetch):
    sub = ds.split(val_fraction=0.34, test_fraction=0.0).train
    n = 25
    run = BatchLoader(sub, 3, seed=11, prefetch=prefetch)
    uninterrupted = list(itertools.islice(run.iterate(), n))
    k = 13  # "crash" after 13 steps; a new process rebuilds the loader and restarts at step 13
    resumed = BatchLoader(sub, 3, seed=11, prefetch=prefetch)
    after = list(resumed.iterate(start_step=k, num_steps=n - k))
    assert len(after) == n - k
    for x, y in zip(uninterrupted[k:], after, strict=True):
        np.testing.assert_array_equal(x, y)
    for step, x in enumerate(uninterrupted):
        np.testing.assert_array_equal(x, run.batch_at(step))


def test_subset_and_normalization(ds):
    train = ds.split(val_fraction=0.34, test_fraction=0.0).train
    norm = Normalization(mean=523.417, std=251.3)
    loader = BatchLoader(train, 4, seed=0, normalization=norm, prefetch=0)
    raw = BatchLoader(train, 4, seed=0, prefetch=0)
    x = loader.batch_at(2)
    assert x.dtype == np.float32 and x.shape == (4, 4, 4)
    np.testing.assert_array_equal(x, norm.apply(raw.batch_at(2)))  # bitwise
    # every batch only holds training trajectories
    allowed = set(train.trajectory_set)
    for s in range(loader.steps_per_epoch):
        assert {v // 1000 for v in _ids(raw.batch_at(s))} <= allowed


def test_pair_loader_pairs_are_dt_apart_in_one_trajectory(ds):
    sub = ds.all()
    pl = PairLoader(sub, 6, dt=2, seed=3, prefetch=2)
    assert len(pl.pairs) == 7 + 9 + 11
    for x0, x1 in pl.iterate(num_steps=2 * pl.steps_per_epoch):
        a, b = np.asarray(_ids(x0)), np.asarray(_ids(x1))
        assert np.all(b - a == 2)  # same trajectory (same thousands) and t + 2
    x0, x1 = pl.batch_at(5)
    y0, y1 = PairLoader(sub, 6, dt=2, seed=3, prefetch=0).batch_at(5)
    np.testing.assert_array_equal(x0, y0)
    np.testing.assert_array_equal(x1, y1)


def test_too_large_batch_is_an_input_error(ds):
    with pytest.raises(InputError, match="batch_size"):
        BatchLoader(ds.all(), 100)
    with pytest.raises(InputError, match="pairs"):
        PairLoader(ds.all(), 40, dt=1)


def test_read_errors_reach_the_consumer_through_prefetch(tmp_path, rng):
    write_trajectory(tmp_path / "run", rng.standard_normal((8, 4, 4)))
    bad = np.zeros((4, 4))
    bad[1, 1] = np.nan
    write_field(tmp_path / "run" / "5.mat", bad)
    loader = BatchLoader(open_dataset(tmp_path / "run").all(), 8, shuffle=False, prefetch=2)
    with pytest.raises(InputError, match="1 NaN") as e:
        next(loader.iterate())
    assert "5.mat" in str(e.value)


def test_numpy_integers_are_accepted_as_indices(ds):
    sub = ds.all()
    traj, t = sub.refs[5]  # NumPy int64s, as callers naturally get them
    np.testing.assert_array_equal(ds.get(traj, t), sub.get(np.int64(5)))
    loader = BatchLoader(sub, 4, prefetch=0)
    np.testing.assert_array_equal(loader.batch_at(np.int64(3)), loader.batch_at(3))
    assert len(type(sub)(ds, [(0, 1), (1, 2)], name="x")) == 2


def test_fingerprint_changes_with_what_decides_the_order(ds):
    sub = ds.all()
    fp = BatchLoader(sub, 4, seed=1).fingerprint
    assert BatchLoader(sub, 4, seed=1, prefetch=0).fingerprint == fp  # prefetch is irrelevant
    assert BatchLoader(sub, 4, seed=2).fingerprint != fp
    assert BatchLoader(sub, 5, seed=1).fingerprint != fp
    assert BatchLoader(ds.split().train, 4, seed=1).fingerprint != fp
    assert PairLoader(sub, 4, dt=1).fingerprint != PairLoader(sub, 4, dt=2).fingerprint


@pytest.mark.parametrize("fmt", ["mat", "h5"])
def test_larger_than_cache_streams_with_prefetch(tmp_path, fmt):
    fields = np.stack(
        [np.stack([np.full((4, 4), 1000.0 * i + t) for t in range(10)]) for i in range(2)]
    )
    if fmt == "mat":
        for i in range(2):
            write_trajectory(tmp_path / "ds" / f"traj_{i}", fields[i])
        path = tmp_path / "ds"
    else:  # concurrent slice reads from one open HDF5 file
        path = write_well(tmp_path / "w.h5", fields)
    small = open_dataset(path, cache_bytes=3 * 4 * 4 * 4)  # 3 of 20 snapshots
    loader = BatchLoader(small.all(), 4, seed=5, prefetch=3)
    n = 3 * loader.steps_per_epoch
    for step, x in enumerate(loader.iterate(num_steps=n)):
        idx = loader.indices_at(step)
        np.testing.assert_array_equal(x[:, 0, 0], [1000.0 * (i // 10) + i % 10 for i in idx])
        info = small.cache_info()
        assert info["bytes"] <= info["max_bytes"] and info["items"] <= 3
    assert small.cache_info()["misses"] > 20  # it really re-read from disk
