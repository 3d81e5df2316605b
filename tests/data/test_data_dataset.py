"""The dataset index: layouts, natural sort, splits, pairs, normalisation, cache, validation."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
from matfile_helpers import write_field, write_trajectory, write_well

from vqturb.data import (
    Normalization,
    compute_normalization,
    inspect_dataset,
    natural_sorted,
    open_dataset,
)
from vqturb.errors import InputError


@pytest.fixture
def three_traj(tmp_path, rng):
    """3 trajectories of 10, 12, 14 snapshots at 8x8; returns (folder, list of [n_t, 8, 8])."""
    fields = [rng.standard_normal((n, 8, 8)) for n in (10, 12, 14)]
    for i, f in enumerate(fields):
        write_trajectory(tmp_path / "ds" / f"traj_{i:03d}", f, t0=10.0 * i)
    return tmp_path / "ds", fields


def test_natural_sort():
    names = ["10.mat", "2.mat", "1.mat", "traj_10", "traj_9", "a2b10", "a2b9"]
    got = [p.name for p in natural_sorted([Path(n) for n in names])]
    assert got == ["1.mat", "2.mat", "10.mat", "a2b9", "a2b10", "traj_9", "traj_10"]


def test_folder_of_mat_files_is_one_trajectory_in_natural_order(tmp_path, rng):
    fields = rng.standard_normal((12, 4, 6))
    write_trajectory(tmp_path / "run", fields)  # 1.mat ... 12.mat: lexical order would be wrong
    ds = open_dataset(tmp_path / "run")
    assert ds.n_trajectories == 1 and len(ds) == 12 and ds.shape == (4, 6)
    assert ds.dtype == "float64"
    for t in range(12):
        np.testing.assert_array_equal(ds.get(0, t), fields[t].astype(np.float32))
        assert ds.get(0, t).dtype == np.float32
    np.testing.assert_allclose(ds.times(0), 0.1 * np.arange(12))
    assert ds.trajectories[0].files[1].name == "2.mat"


def test_folder_of_trajectory_folders(three_traj):
    folder, fields = three_traj
    ds = open_dataset(folder)
    assert [tr.name for tr in ds.trajectories] == ["traj_000", "traj_001", "traj_002"]
    assert [tr.n_steps for tr in ds.trajectories] == [10, 12, 14]
    assert len(ds) == 36
    np.testing.assert_array_equal(ds.get(2, 13), fields[2][13].astype(np.float32))
    assert ds.times(1)[0] == 10.0


def test_single_mat_file(tmp_path, rng):
    p = write_field(tmp_path / "one.mat", rng.standard_normal((4, 4)))
    ds = open_dataset(p)
    assert len(ds) == 1 and ds.get(0, 0).shape == (4, 4)


def test_empty_and_mixed_folders(tmp_path, rng):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty folder") as e:
        open_dataset(tmp_path / "empty")
    assert str(tmp_path / "empty") in str(e.value)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "readme.txt").write_text("x")
    with pytest.raises(InputError, match="no .mat or HDF5"):
        open_dataset(tmp_path / "junk")
    mixed = tmp_path / "mixed"
    write_trajectory(mixed, rng.standard_normal((2, 4, 4)))
    write_trajectory(mixed / "traj_0", rng.standard_normal((2, 4, 4)))
    with pytest.raises(InputError, match="a mix of"):
        open_dataset(mixed)
    with pytest.raises(InputError, match="no such file"):
        open_dataset(tmp_path / "nope")


def test_missing_variable_at_open_names_file_and_lists_variables(three_traj):
    folder, _ = three_traj
    with pytest.raises(InputError) as e:
        open_dataset(folder, var="vorticity")
    msg = str(e.value)
    assert "1.mat" in msg and "'vorticity'" in msg and "'Omega'" in msg


def test_shapes_that_differ_name_both_files(tmp_path, rng):
    write_trajectory(tmp_path / "ds" / "a", rng.standard_normal((3, 8, 8)))
    write_trajectory(tmp_path / "ds" / "b", rng.standard_normal((3, 8, 4)))
    with pytest.raises(InputError) as e:
        open_dataset(tmp_path / "ds")
    msg = str(e.value)
    assert str(tmp_path / "ds" / "b" / "1.mat") in msg
    assert str(tmp_path / "ds" / "a" / "1.mat") in msg
    assert "8x4" in msg and "8x8" in msg
    # inside one trajectory only the first header is read at open: the read catches it
    write_trajectory(tmp_path / "one", rng.standard_normal((3, 8, 8)))
    write_field(tmp_path / "one" / "2.mat", rng.standard_normal((6, 6)))
    ds = open_dataset(tmp_path / "one")
    with pytest.raises(InputError) as e:
        ds.get(0, 1)
    assert str(tmp_path / "one" / "2.mat") in str(e.value)
    assert str(tmp_path / "one" / "1.mat") in str(e.value)


def test_check_divisible(three_traj):
    ds = open_dataset(three_traj[0])
    ds.check_divisible(8)
    ds.check_divisible(4)
    with pytest.raises(InputError) as e:
        ds.check_divisible(16)
    msg = str(e.value)
    assert "traj_000" in msg and "'Omega'" in msg and "not divisible by 16" in msg


def test_well_layout_and_h5_key(tmp_path, rng):
    fields = rng.standard_normal((3, 5, 8, 8)).astype(np.float32)
    p = write_well(tmp_path / "well.h5", fields, times=np.linspace(0, 2, 5))
    ds = open_dataset(p)  # default var Omega finds t0_fields/vorticity
    assert ds.n_trajectories == 3 and len(ds) == 15 and ds.dtype == "float32"
    np.testing.assert_array_equal(ds.get(2, 4), fields[2, 4])
    np.testing.assert_allclose(ds.times(1), np.linspace(0, 2, 5))
    assert "t0_fields/vorticity" in ds.location(1, 3)
    ds.close()
    # an arbitrary [n_t, H, W] dataset by path, in a folder with a second file
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_dataset("sim/w", data=fields[0])
    with h5py.File(tmp_path / "other2.h5", "w") as f:
        f.create_dataset("sim/w", data=fields[1])
    ds2 = open_dataset([tmp_path / "other.h5", tmp_path / "other2.h5"], h5_key="sim/w")
    assert ds2.n_trajectories == 2 and len(ds2) == 10
    np.testing.assert_array_equal(ds2.get(1, 2), fields[1, 2])
    np.testing.assert_array_equal(ds2.times(0), np.arange(5))  # no time stored: indices
    ds2.close()
    with pytest.raises(InputError) as e:
        open_dataset(tmp_path / "other.h5")
    assert "'sim/w'" in str(e.value)  # lists what is there
    with pytest.raises(InputError, match="not in the file"):
        open_dataset(tmp_path / "other.h5", h5_key="sim/nope")


def test_h5_reads_slices_lazily(tmp_path, rng, monkeypatch):
    fields = rng.standard_normal((2, 4, 8, 8))
    p = write_well(tmp_path / "w.h5", fields)
    calls = []
    orig = h5py.Dataset.__getitem__

    def spy(self, key):
        calls.append(key)
        return orig(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    with open_dataset(p, cache_bytes=0) as ds:
        ds.get(1, 2)
    assert calls == [(1, 2)]  # one slice, never the whole array


def test_h5_bad_values_and_rank(tmp_path):
    a = np.zeros((1, 3, 4, 4))
    a[0, 2, 1, 1] = np.nan
    p = write_well(tmp_path / "nan.h5", a)
    with open_dataset(p) as ds:
        ds.get(0, 1)
        with pytest.raises(InputError, match="1 NaN") as e:
            ds.get(0, 2)
    assert "nan.h5" in str(e.value) and "t0_fields/vorticity" in str(e.value)
    with h5py.File(tmp_path / "r2.h5", "w") as f:
        f.create_dataset("x", data=np.zeros((4, 4)))
    with pytest.raises(InputError, match="2 dimensions"):
        open_dataset(tmp_path / "r2.h5", h5_key="x")


def test_split_by_trajectory(tmp_path, rng):
    for i in range(10):
        write_trajectory(tmp_path / "ds" / f"t{i}", rng.standard_normal((3, 4, 4)))
    ds = open_dataset(tmp_path / "ds")
    sp = ds.split(val_fraction=0.2, test_fraction=0.1, seed=3)
    sets = [set(s.trajectory_set) for s in sp]
    assert [len(s) for s in sets] == [7, 2, 1]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert sets[0] | sets[1] | sets[2] == set(range(10))
    assert sum(len(s) for s in sp) == len(ds)
    again = ds.split(val_fraction=0.2, test_fraction=0.1, seed=3)
    assert [s.trajectory_set for s in again] == [s.trajectory_set for s in sp]
    other = ds.split(val_fraction=0.2, test_fraction=0.1, seed=4)
    assert [s.trajectory_set for s in other] != [s.trajectory_set for s in sp]
    # few trajectories: each requested split still gets one, train keeps at least one
    small = open_dataset(tmp_path / "ds" / "t0").split()  # one trajectory: time blocks
    assert small.train.trajectory_set == [0]
    with pytest.raises(InputError):
        ds.split(val_fraction=0.6, test_fraction=0.5)


def test_split_one_trajectory_by_contiguous_time_blocks(tmp_path, rng):
    write_trajectory(tmp_path / "run", rng.standard_normal((20, 4, 4)))
    ds = open_dataset(tmp_path / "run")
    train, val, test = ds.split(val_fraction=0.2, test_fraction=0.1)
    assert list(train.time_indices) == list(range(14))
    assert list(val.time_indices) == list(range(14, 18))
    assert list(test.time_indices) == list(range(18, 20))
    for s in (train, val, test):
        p = s.pairs(1)
        # pairs stay inside a block: both ends are in the same subset, t -> t+1
        assert np.all(s.time_indices[p[:, 1]] == s.time_indices[p[:, 0]] + 1)
        assert len(p) == len(s) - 1


def test_pairs_never_cross_trajectories(three_traj):
    ds = open_dataset(three_traj[0])
    sub = ds.all()
    for dt in (1, 3):
        p = sub.pairs(dt)
        assert len(p) == sum(tr.n_steps - dt for tr in ds.trajectories)
        assert np.all(sub.trajectory_ids[p[:, 0]] == sub.trajectory_ids[p[:, 1]])
        assert np.all(sub.time_indices[p[:, 1]] - sub.time_indices[p[:, 0]] == dt)
    assert len(sub.pairs(100)) == 0


def test_normalization_matches_numpy(three_traj):
    folder, fields = three_traj
    ds = open_dataset(folder)
    sub = ds.split(val_fraction=0.34, test_fraction=0.0, seed=0).train
    allv = np.concatenate([fields[i].ravel() for i in sub.trajectory_set])
    norm = compute_normalization(sub)
    np.testing.assert_allclose(norm.mean, allv.astype(np.float64).mean(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(norm.std, allv.astype(np.float64).std(), rtol=1e-10)
    x = sub.get_batch([0, 1])
    y = norm.apply(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(norm.invert(y), x, rtol=1e-5, atol=1e-5)
    assert Normalization.from_dict(norm.to_dict()) == norm


def test_normalization_is_stable_for_a_large_mean(tmp_path, rng):
    # naive E[x^2]-E[x]^2 in float64 loses the spread entirely at mean 1e7, std 1e-2
    fields = 1e7 + 1e-2 * rng.standard_normal((6, 16, 16))
    write_trajectory(tmp_path / "big", fields)
    ds = open_dataset(tmp_path / "big")
    sub = ds.all()
    ref = np.concatenate([ds.read(0, t).ravel() for t in range(6)])
    norm = compute_normalization(sub)
    np.testing.assert_allclose(norm.mean, ref.mean(), rtol=1e-12)
    np.testing.assert_allclose(norm.std, ref.std(), rtol=1e-6)
    assert ds.cache_info()["items"] == 6  # the pass warmed the cache


def test_constant_data_has_no_normalization(tmp_path):
    write_trajectory(tmp_path / "c", np.ones((3, 4, 4)))
    with pytest.raises(InputError, match="standard deviation 0"):
        compute_normalization(open_dataset(tmp_path / "c").all())


def test_cache_is_bounded_by_bytes(three_traj):
    per = 8 * 8 * 4  # one float32 snapshot
    ds = open_dataset(three_traj[0], cache_bytes=5 * per + 10)
    for t in range(10):
        ds.get(0, t)
        info = ds.cache_info()
        assert info["bytes"] <= info["max_bytes"]
    assert ds.cache_info()["items"] == 5
    assert ds.cache_info()["misses"] == 10
    ds.get(0, 9)  # most recent: a hit
    assert ds.cache_info()["hits"] == 1
    ds.get(0, 0)  # evicted long ago: a miss
    assert ds.cache_info()["misses"] == 11
    a = ds.get(0, 9)
    with pytest.raises(ValueError):
        a[0, 0] = 1.0  # cached arrays are read-only: consumers cannot corrupt the cache


def test_inspect_reports_every_bad_file(tmp_path, rng):
    folder = tmp_path / "ds"
    write_trajectory(folder / "a", rng.standard_normal((4, 8, 8)))
    write_trajectory(folder / "b", rng.standard_normal((4, 8, 8)), t0=5.0)
    bad = np.ones((8, 8))
    bad[0, 0] = np.inf
    write_field(folder / "a" / "3.mat", bad, time=0.2)
    (folder / "b" / "2.mat").write_bytes(b"garbage" * 10)
    scipy.io.savemat(folder / "b" / "4.mat", {"Omega": np.ones((6, 8)), "time": 5.3})
    rep = inspect_dataset(folder, progress=False)
    assert not rep.ok
    assert rep.n_snapshots == 8 and rep.n_valid == 5
    assert len(rep.errors) == 3
    assert any("a/3.mat" in e and "1 Inf" in e for e in rep.errors)
    assert any("b/2.mat" in e for e in rep.errors)
    assert any("b/4.mat" in e and "6x8" in e for e in rep.errors)


def test_inspect_summary(three_traj):
    folder, fields = three_traj
    rep = inspect_dataset(folder, progress=False, divisible_by=8)
    assert rep.ok
    allv = np.concatenate([f.ravel() for f in fields])
    assert rep.min == allv.min() and rep.max == allv.max()
    np.testing.assert_allclose([rep.mean, rep.std], [allv.mean(), allv.std()], rtol=1e-10)
    assert rep.time_range == (0.0, 20.0 + 0.1 * 13)
    assert rep.has_time
    np.testing.assert_allclose(rep.dt_range, (0.1, 0.1))
    text = rep.summary()
    assert "traj_002: 14 snapshots" in text and "8 x 8" in text
    assert "time step     0.1 (uniform)" in text


def test_inspect_time_must_increase(tmp_path, rng):
    folder = tmp_path / "run"
    write_trajectory(folder, rng.standard_normal((3, 4, 4)))
    write_field(folder / "3.mat", rng.standard_normal((4, 4)), time=0.05)
    rep = inspect_dataset(folder, progress=False)
    assert len(rep.errors) == 1 and "3.mat" in rep.errors[0] and "'time'" in rep.errors[0]
    write_field(folder / "3.mat", rng.standard_normal((4, 4)), time=0.5)  # a longer step
    rep = inspect_dataset(folder, progress=False)
    assert rep.ok and "time step     0.1 .. 0.4 (NOT uniform)" in rep.summary()


def test_inspect_lists_bad_first_files_and_other_shapes(tmp_path, rng):
    folder = tmp_path / "ds"
    write_trajectory(folder / "a", rng.standard_normal((3, 8, 8)))
    write_trajectory(folder / "b", rng.standard_normal((3, 8, 8)))
    write_trajectory(folder / "c", rng.standard_normal((2, 4, 4)))  # another resolution
    (folder / "b" / "1.mat").write_bytes(b"MATLAB 5.0" + b"\x00" * 20)  # truncated header
    with pytest.raises(InputError):
        open_dataset(folder)  # strict: the first problem stops indexing
    rep = inspect_dataset(folder, progress=False)
    assert rep.n_valid == 5 and len(rep.errors) == 3
    assert any("b/1.mat" in e for e in rep.errors)
    assert sum("4x4 differs from 8x8" in e for e in rep.errors) == 2
    # a wrong variable everywhere is still one error, not one per file
    with pytest.raises(InputError, match="'psi'"):
        inspect_dataset(folder, var="psi", progress=False)


def test_hidden_files_are_ignored(tmp_path, rng):
    fields = rng.standard_normal((3, 4, 4))
    write_trajectory(tmp_path / "run", fields)
    (tmp_path / "run" / "._2.mat").write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 60)  # AppleDouble
    (tmp_path / "run" / ".3.a8f2k.mat").write_bytes(b"MATLAB 5.0 half-writ")  # atomic temp
    (tmp_path / "run" / "generate.json").write_text("{}")
    ds = open_dataset(tmp_path / "run")
    assert [p.name for p in ds.trajectories[0].files] == ["1.mat", "2.mat", "3.mat"]
    assert inspect_dataset(tmp_path / "run", progress=False).ok


def test_dataset_pickles_for_worker_processes(tmp_path, rng):
    import pickle

    fields = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    p = write_well(tmp_path / "w.h5", fields)
    ds = open_dataset(p)
    ds.get(1, 2)  # opens the file and fills the cache
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.cache_info()["items"] == 0
    np.testing.assert_array_equal(clone.get(1, 2), fields[1, 2])
    clone.close()
    ds.close()


def test_several_hdf5_files_and_per_trajectory_times(tmp_path, rng):
    folder = tmp_path / "h5s"
    folder.mkdir()
    for k in range(2):
        with h5py.File(folder / f"part{k}.h5", "w") as f:
            f.create_dataset("t0_fields/vorticity", data=rng.standard_normal((2, 3, 4, 4)))
            f.create_dataset("dimensions/time", data=np.arange(6.0).reshape(2, 3) + 10 * k)
    ds = open_dataset(folder)
    assert [tr.name for tr in ds.trajectories] == [
        "part0.h5[0]",
        "part0.h5[1]",
        "part1.h5[0]",
        "part1.h5[1]",
    ]
    np.testing.assert_array_equal(ds.times(3), [13.0, 14.0, 15.0])
    ds.close()
    with h5py.File(folder / "part2.h5", "w") as f:
        f.create_dataset("t0_fields/vorticity", data=rng.standard_normal((1, 3, 8, 8)))
    with pytest.raises(InputError) as e:
        open_dataset(folder)
    assert "part2.h5" in str(e.value) and "part0.h5" in str(e.value)


def test_normalization_on_a_subsample(three_traj):
    folder, fields = three_traj
    sub = open_dataset(folder).all()
    norm = compute_normalization(sub, max_snapshots=5)
    pos = np.linspace(0, len(sub) - 1, 5).round().astype(int)
    allv = np.concatenate(fields)
    vals = np.stack([allv[p] for p in pos])
    np.testing.assert_allclose([norm.mean, norm.std], [vals.mean(), vals.std()], rtol=1e-10)
    assert compute_normalization(sub, max_snapshots=10**6) == compute_normalization(sub)
