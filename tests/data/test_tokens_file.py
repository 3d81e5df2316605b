"""The tokens file: round trip, decoding ids to codebook indices, the recorded split, and one
InputError naming the file and the field for every kind of bad file."""

from __future__ import annotations

import numpy as np
import pytest

from synthetic_tokens import synthetic_tokens
from vqturb.data.splits import TEST, TRAIN, VAL, SplitRule
from vqturb.data.tokens_file import TokensFile, ids_to_codes
from vqturb.errors import InputError
from vqturb.utils.fileio import atomic_save_npz


def _fields(tokens: TokensFile) -> dict:
    return {k: v for k, v in tokens.__dict__.items() if not k.startswith("_")}


def test_write_read_round_trip_keeps_every_field(tmp_path):
    rule = SplitRule(0.25, 0.25, seed=2)
    tok = synthetic_tokens(n_traj=6, n_steps=5, split_rule=rule)
    back = TokensFile.read(tok.write(tmp_path / "t.npz"))
    assert back.path == str(tmp_path / "t.npz")
    for name in ("indices", "codebook", "unified_to_original", "trajectory_id", "time_index"):
        np.testing.assert_array_equal(getattr(back, name), getattr(tok, name))
    assert back.layout == tok.layout and back.split_rule == rule
    np.testing.assert_array_equal(back.split, rule.labels(tok.trajectory_id, tok.time_index))
    z = np.load(tmp_path / "t.npz")
    # the SPEC's fields: vectors are the codebook rows of the ids, offsets are cumulative sizes
    np.testing.assert_array_equal(z["vectors_flat"], z["codebook"][z["indices_flat"]])
    sizes = z["scale_vocab_sizes"]
    np.testing.assert_array_equal(z["scale_offsets"], np.r_[0, np.cumsum(sizes)[:-1]])
    assert z["indices_flat"].dtype == np.int32 and z["split"].dtype == np.int8
    for k, (o, v) in enumerate(zip(z["scale_offsets"], sizes, strict=True)):
        assert np.all(z["unified_to_scale"][o : o + v] == k)


def test_codes_decode_ids_position_by_position():
    rng = np.random.default_rng(1)
    tok = synthetic_tokens(n_traj=2, n_steps=4)
    # a non-trivial map: each scale's original codes permuted
    u2o = tok.unified_to_original.copy()
    for o, v in zip(tok.scale_offsets, tok.scale_vocab_sizes, strict=True):
        u2o[o : o + v] = rng.permutation(u2o[o : o + v]) + 3
    tok = TokensFile(**{**_fields(tok), "unified_to_original": u2o})
    codes = tok.codes(tok.indices)
    assert [c.shape for c in codes] == [(8, s, s) for s in tok.scales]
    start = 0
    for c, s in zip(codes, tok.scales, strict=True):
        for p in range(s * s):
            np.testing.assert_array_equal(c[:, p // s, p % s], u2o[tok.indices[:, start + p]])
        start += s * s
    bad = tok.indices.copy()
    bad[0, 0] = 1  # scale 0 owns only id 0
    with pytest.raises(InputError, match="scale 0"):
        tok.codes(bad)
    with pytest.raises(InputError, match="token rows"):
        ids_to_codes(bad[:, :-1], tok.scales, tok.scale_offsets, tok.scale_vocab_sizes, u2o)


def test_split_falls_back_to_the_rule_when_not_recorded():
    tok = synthetic_tokens(n_traj=10, n_steps=3)
    assert tok.split is None and tok.split_rule is None
    rule = SplitRule(0.2, 0.3, seed=7)
    labels = tok.split_labels(rule)
    _, val, test = rule.trajectory_ids(10)
    assert set(tok.trajectory_id[labels == VAL]) == set(val.tolist())
    assert set(tok.trajectory_id[labels == TEST]) == set(test.tolist())
    assert tok.effective_split_rule(rule) == rule
    np.testing.assert_array_equal(
        tok.split_labels(), SplitRule().labels(tok.trajectory_id, tok.time_index)
    )
    # a recorded split is never overridden by a fallback
    rec = synthetic_tokens(n_traj=10, n_steps=3, split_rule=SplitRule(0.4, 0.1, seed=1))
    np.testing.assert_array_equal(rec.split_labels(rule), rec.split)
    assert rec.effective_split_rule(rule) == SplitRule(0.4, 0.1, seed=1)
    train, val_p, test_p = rec.split_pairs(1)
    for pairs, k in ((train, TRAIN), (val_p, VAL), (test_p, TEST)):
        assert np.all(rec.split[pairs] == k)
    assert len(train) + len(val_p) + len(test_p) == len(rec.pairs(1))


def _bad(tmp_path, name, **change):
    arrays = synthetic_tokens(n_traj=3, n_steps=4).arrays()
    arrays.update(change)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    atomic_save_npz(tmp_path / name, **arrays)
    return tmp_path / name


@pytest.mark.parametrize(
    "change, field",
    [
        ({"codebook": None, "time_index": None}, "missing codebook, time_index"),
        ({"indices_flat": np.zeros((12, 20), np.int32)}, "indices_flat"),
        ({"indices_flat": np.full((12, 21), 0.5)}, "indices_flat"),
        ({"codebook": np.zeros((5, 8), np.float32)}, "codebook"),
        ({"scales": np.array([1, 2])}, "scales/scale_offsets/scale_vocab_sizes"),
        ({"trajectory_id": np.zeros(11, np.int64)}, "trajectory_id/time_index"),
        ({"time_index": np.zeros(12, np.int64)}, "repeated"),
        ({"unified_to_original": np.arange(5)}, "unified_to_original"),
        ({"unified_to_scale": np.zeros(13, np.int64)}, "unified_to_scale"),
        ({"norm_std": np.float64(0.0)}, "norm_mean/norm_std"),
        ({"split": np.zeros(12, np.int8)}, "split"),  # labels without the rule's parameters
    ],
)
def test_bad_files_name_the_file_and_the_field(tmp_path, change, field):
    path = _bad(tmp_path, "bad.npz", **change)
    with pytest.raises(InputError, match=field) as e:
        TokensFile.read(path)
    assert str(path) in str(e.value)


def test_bad_split_labels_and_unreadable_files(tmp_path):
    rule = {"split_val_fraction": np.float64(0.1), "split_test_fraction": np.float64(0.1),
            "split_seed": np.int64(0)}  # fmt: skip
    with pytest.raises(InputError, match="split"):
        TokensFile.read(_bad(tmp_path, "s.npz", split=np.full(12, 3, np.int8), **rule))
    ids = synthetic_tokens(n_traj=3, n_steps=4).indices.copy()
    ids[0, -1] = 0  # an id of scale 0 at a position of scale 2
    with pytest.raises(InputError, match="indices_flat scale 2"):
        TokensFile.read(_bad(tmp_path, "r.npz", indices_flat=ids))
    with pytest.raises(InputError, match="no such tokens file"):
        TokensFile.read(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(InputError, match="unreadable"):
        TokensFile.read(tmp_path / "junk.npz")


def test_pairs_and_checkpoint_check(tmp_path):
    tok = synthetic_tokens(n_traj=3, n_steps=4)
    assert len(tok.pairs(3)) == 3
    with pytest.raises(InputError, match="longer than --dt 4"):
        tok.pairs(4)
    with pytest.raises(InputError, match="--dt"):
        tok.pairs(0)
    ck = tmp_path / "vq.eqx"
    ck.write_bytes(b"some checkpoint")
    with pytest.raises(InputError, match="checkpoint_sha256"):
        tok.check_checkpoint(ck)
    with pytest.raises(InputError, match="--vqvae_checkpoint"):
        tok.check_checkpoint(tmp_path / "missing.eqx")
    from vqturb.utils.fileio import file_sha256

    ok = TokensFile(**{**_fields(tok), "checkpoint_sha256": file_sha256(ck)})
    assert ok.check_checkpoint(ck) == file_sha256(ck)


def test_seed_fields_are_written_and_a_seed_written_file_reads(tmp_path):
    """vqturb writes the seed's tokenizer fields beside its own, and reads a file that holds only
    the seed's (one trajectory in file order)."""
    import json

    tok = synthetic_tokens(scales=(1, 2, 4), scale_vocab_sizes=(1, 4, 8), n_traj=2, n_steps=5)
    tok = TokensFile(
        **{**_fields(tok), "config_json": json.dumps({"vocab_size": 40, "var_mode": True})}
    )
    z = dict(np.load(tok.write(tmp_path / "t.npz")))
    assert int(z["effective_vocab_size"]) == 13 and int(z["vocab_size"]) == 40
    assert int(z["codebook_dim"]) == tok.codebook.shape[1] and bool(z["var_mode"])
    assert json.loads(str(z["config_json"]))["vocab_size"] == 40
    # per-scale grids of unified ids, and both directions of the remapping, by hand
    row = tok.indices[3]
    np.testing.assert_array_equal(z["indices_scale_1"][3], row[1:5].reshape(2, 2))
    np.testing.assert_array_equal(z["indices_scale_2"][3], row[5:21].reshape(4, 4))
    for k, (o, v) in enumerate(zip(tok.scale_offsets, tok.scale_vocab_sizes, strict=True)):
        orig = z[f"original_codebook_scale_{k}"]
        np.testing.assert_array_equal(orig, tok.unified_to_original[o : o + v])
        back = z[f"codebook_to_unified_scale_{k}"]
        assert back.shape == (40,) and (back[orig] == o + np.arange(v)).all()
        assert (np.delete(back, orig) == -1).all()
    # a file with the seed's fields only
    seed_only = {k: v for k, v in z.items() if k not in (
        "scales", "unified_to_original", "unified_to_scale", "trajectory_id", "time_index",
        "checkpoint_sha256", "split", "split_val_fraction", "split_test_fraction", "split_seed",
        "norm_mean", "norm_std")}  # fmt: skip
    atomic_save_npz(tmp_path / "seed.npz", **seed_only)
    read = TokensFile.read(tmp_path / "seed.npz")
    assert read.scales == (1, 2, 4) and read.checkpoint_sha256 == ""
    np.testing.assert_array_equal(read.indices, tok.indices)
    np.testing.assert_array_equal(read.unified_to_original, tok.unified_to_original)
    np.testing.assert_array_equal(read.trajectory_id, np.zeros(10))
    np.testing.assert_array_equal(read.time_index, np.arange(10))
    assert len(read.pairs(1)) == 9  # one trajectory: every consecutive pair
