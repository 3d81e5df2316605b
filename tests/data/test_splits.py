"""The one split rule and the one pairs rule: what the dataset, the tokens file, the NSP trainer
and the evaluation all rely on."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matfile_helpers import write_trajectory

from vqturb.data import open_dataset
from vqturb.data.pairs import make_pairs, pairs_in
from vqturb.data.splits import SPLIT_NAMES, TEST, TRAIN, VAL, SplitRule
from vqturb.errors import InputError


def test_dataset_split_is_the_rule_row_by_row(tmp_path, rng):
    for i, n in enumerate((3, 5, 4, 6, 3, 2, 4)):
        write_trajectory(tmp_path / "ds" / f"t{i}", rng.standard_normal((n, 4, 4)))
    ds = open_dataset(tmp_path / "ds")
    for val, test, seed in ((0.1, 0.1, 0), (0.3, 0.2, 5), (0.0, 0.4, 1)):
        rule = SplitRule(val, test, seed)
        refs = ds.all().refs
        labels = rule.labels(refs[:, 0], refs[:, 1])
        for k, sub in enumerate(ds.split(val, test, seed)):
            np.testing.assert_array_equal(sub.refs, refs[labels == k])
            assert sub.name == SPLIT_NAMES[k]
        # the labels of a row do not depend on which other rows are present or their order
        perm = rng.permutation(len(refs))
        np.testing.assert_array_equal(
            rule.labels(refs[perm, 0], refs[perm, 1], n_trajectories=7), labels[perm]
        )


def test_one_trajectory_is_split_into_time_blocks(tmp_path, rng):
    write_trajectory(tmp_path / "run", rng.standard_normal((10, 4, 4)))
    ds = open_dataset(tmp_path / "run")
    rule = SplitRule(0.2, 0.3)
    labels = rule.labels(np.zeros(10, int), np.arange(10))
    assert labels.tolist() == [TRAIN] * 5 + [VAL] * 2 + [TEST] * 3
    assert [list(s.time_indices) for s in ds.split(0.2, 0.3)] == [
        list(range(5)), [5, 6], [7, 8, 9],
    ]  # fmt: skip
    # time indices that do not start at 0 or have gaps: blocks over the frames present, in order
    shuffled = rng.permutation(10)
    got = rule.labels(np.zeros(10, int), 100 + 3 * shuffled)
    np.testing.assert_array_equal(got, labels[shuffled])


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 40),
    val=st.floats(0.0, 0.45),
    test=st.floats(0.0, 0.45),
    seed=st.integers(0, 2**16),
)
def test_split_counts_properties(n, val, test, seed):
    rule = SplitRule(val, test, seed)
    train_ids, val_ids, test_ids = rule.trajectory_ids(n)
    assert len(train_ids) >= 1  # something is always left to train on
    everything = np.concatenate([train_ids, val_ids, test_ids])
    assert sorted(everything.tolist()) == list(range(n))  # a partition
    n_val, n_test = rule.counts(n)
    assert (len(val_ids), len(test_ids)) == (n_val, n_test)
    # a requested split gets something whenever train can keep one
    if val > 0 and test > 0 and n >= 3:
        assert n_val >= 1 and n_test >= 1
    if (val > 0 or test > 0) and n >= 2:
        assert n_val + n_test >= 1
    assert abs(n_val - val * n) <= 1 and abs(n_test - test * n) <= 1


def test_rule_checks_and_run_meta():
    with pytest.raises(InputError, match="val_fraction"):
        SplitRule(val_fraction=1.0)
    with pytest.raises(InputError, match="val_fraction \\+ test_fraction"):
        SplitRule(0.6, 0.5)
    rule = SplitRule.from_run_meta({"split_seed": 4, "val_fraction": 0.2, "test_fraction": 0.05})
    assert rule == SplitRule(0.2, 0.05, 4) == SplitRule.from_dict(rule.to_dict())
    assert SplitRule.from_run_meta({}) == SplitRule()


def _brute_pairs(traj, time, dt):
    return sorted(
        (i, j)
        for i in range(len(traj))
        for j in range(len(traj))
        if traj[i] == traj[j] and time[j] == time[i] + dt
    )


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 3), st.integers(-2, 9)), max_size=30, unique=True),
    dt=st.integers(1, 4),
)
def test_make_pairs_equals_brute_force(rows, dt):
    traj = np.array([r[0] for r in rows], np.int64)
    time = np.array([r[1] for r in rows], np.int64)
    got = make_pairs(traj, time, dt)
    assert got.shape == (len(_brute_pairs(traj, time, dt)), 2)
    assert sorted(map(tuple, got.tolist())) == _brute_pairs(traj, time, dt)
    labels = (traj % 3).astype(np.int8)
    for k in range(3):
        inside = pairs_in(got, labels, k)
        assert np.all(labels[inside] == k)


def test_make_pairs_rejects_dt_below_one():
    with pytest.raises(InputError, match="dt"):
        make_pairs(np.zeros(3, int), np.arange(3), 0)
