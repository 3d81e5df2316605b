"""Tokenizer: vocabulary remapping, unified per-scale ranges, round trips, tokens.npz fields."""

import numpy as np
import pytest

from codec.tiny_model import fields, make_checkpoint
from vqturb.errors import InputError
from vqturb.tokenizer import VQVAETokenizer, save_tokens, tokenizer_info


@pytest.fixture(params=[False, True], ids=["standard", "var"])
def tok_and_data(request, tmp_path, stand_in_vqvae, rng):
    path, cfg = make_checkpoint(tmp_path / "m.eqx", var_mode=request.param)
    tok = VQVAETokenizer(path, batch_size=4)
    return tok, fields(rng, 10)


def test_var_mode_flag_must_agree(tmp_path, stand_in_vqvae):
    path, _ = make_checkpoint(tmp_path / "m.eqx", var_mode=False)
    with pytest.raises(InputError, match="--var_mode"):
        VQVAETokenizer(path, var_mode=True)
    assert VQVAETokenizer(path, var_mode=False).var_mode is False


def test_fit_remaps_to_consecutive_ranges(tok_and_data):
    tok, x = tok_and_data
    tok.fit(x)
    sizes, offs = tok.scale_vocab_sizes, tok.scale_offsets
    assert offs[0] == 0 and np.all(offs[1:] == np.cumsum(sizes)[:-1])
    assert tok.unified_vocab_size == sizes.sum() == tok.unified_to_original.size
    rows = tok.encode_batch(x)
    assert rows.shape == (10, sum(s * s for s in tok.scales))
    start = 0
    for k, s in enumerate(tok.scales):
        part = rows[:, start : start + s * s]
        assert part.min() >= offs[k] and part.max() < offs[k] + sizes[k]
        # every id of the range is used (the vocabulary was built from exactly these fields)
        assert np.unique(part).size == sizes[k]
        assert np.all(tok.unified_to_scale[part] == k)
        start += s * s
    # remap round trip: unified -> original codes equals the model's own codes
    codes = tok.encode_codes(x)
    back = tok.unified_to_codes(rows)
    assert all(np.array_equal(a, b) for a, b in zip(back, codes, strict=True))
    flat = np.concatenate([c.reshape(10, -1) for c in codes], axis=1)
    assert np.array_equal(tok.unified_to_original[rows], flat)


def test_decode_equals_model_reconstruction(tok_and_data):
    tok, x = tok_and_data
    tok.fit(x)
    rows = tok.encode_batch(x)
    rec = tok.decode_indices(rows)
    xn = tok.normalization.apply(x)
    model_rec = tok.normalization.invert(np.asarray(tok.model.decode_indices(tok.model.encode(xn))))
    assert np.allclose(rec, model_rec, atol=1e-5)
    assert np.allclose(tok.decode_indices(rows[3]), rec[3])
    assert np.array_equal(tok.encode(x[3]), rows[3])


def test_wrong_field_shape_is_a_clear_error(tok_and_data, rng):
    tok, _ = tok_and_data
    with pytest.raises(InputError, match="resolution this checkpoint was trained on"):
        tok.fit(fields(rng, 2, size=32))


def test_unseen_code_is_a_clear_error(tok_and_data, rng):
    tok, x = tok_and_data
    tok.fit(x[:1] * 0.0)  # a constant field uses very few codes
    with pytest.raises(InputError, match="not seen when the tokenizer was fitted"):
        tok.encode_batch(x)


def test_ids_outside_a_scale_range_are_rejected(tok_and_data):
    tok, x = tok_and_data
    tok.fit(x)
    rows = tok.encode_batch(x)
    rows[0, -1] = tok.unified_vocab_size  # past the end
    with pytest.raises(InputError, match="outside the scale's range"):
        tok.decode_indices(rows)


def test_saved_tokens_file(tok_and_data, tmp_path):
    tok, x = tok_and_data
    arrays = save_tokens(tok, x, tmp_path / "tokens.npz").arrays()
    z = np.load(tmp_path / "tokens.npz")
    expected = {
        "indices_flat", "vectors_flat", "codebook", "scale_offsets", "scale_vocab_sizes",
        "unified_to_scale", "unified_to_original", "scales", "trajectory_id", "time_index",
        "norm_mean", "norm_std", "checkpoint_sha256", "split", "split_val_fraction",
        "split_test_fraction", "split_seed", "remapped_tokens",
    }  # fmt: skip
    k = len(z["scales"])
    seed = {"effective_vocab_size", "vocab_size", "codebook_dim", "config_json", "var_mode"}
    for name in ("indices_scale", "original_codebook_scale", "codebook_to_unified_scale"):
        seed |= {f"{name}_{j}" for j in range(k)}
    assert set(z.files) == expected | seed
    assert int(z["vocab_size"]) == tok.vocab_size and bool(z["var_mode"]) == tok.var_mode
    # fitted on these fields: no token needed a nearest-code replacement (that is --vocab_from's)
    assert z["remapped_tokens"].shape == (len(z["scales"]),) and not z["remapped_tokens"].any()
    n, t = z["indices_flat"].shape
    v, d = z["codebook"].shape
    assert n == 10 and t == int(np.sum(z["scales"] ** 2))
    assert z["indices_flat"].dtype == np.int32 and z["indices_flat"].max() < v
    assert z["vectors_flat"].shape == (n, t, d) and z["vectors_flat"].dtype == np.float32
    assert np.array_equal(z["vectors_flat"], z["codebook"][z["indices_flat"]])
    assert z["unified_to_scale"].shape == z["unified_to_original"].shape == (v,)
    assert len(str(z["checkpoint_sha256"])) == 64
    assert float(z["norm_std"]) == 2.0
    # decoding the saved tokens equals the model's reconstruction
    rec = tok.decode_indices(z["indices_flat"])
    xn = tok.normalization.apply(x)
    model_rec = tok.normalization.invert(np.asarray(tok.model.decode_indices(tok.model.encode(xn))))
    assert np.allclose(rec, model_rec, atol=1e-5)
    assert np.array_equal(arrays["indices_flat"], z["indices_flat"])


def _mat_trajectories(root, rng, n_traj):
    """A dataset folder of ``n_traj`` trajectories of 3 random ``.mat`` fields, opened."""
    import scipy.io

    from vqturb.data import open_dataset

    for i in range(n_traj):
        (root / f"traj_{i}").mkdir(parents=True)
        for t, f in enumerate(fields(rng, 3)):
            scipy.io.savemat(root / f"traj_{i}" / f"{t + 1}.mat", {"Omega": f})
    return open_dataset(root)


def test_saved_split_is_the_datasets(tok_and_data, tmp_path, rng):
    """Each row of tokens.npz records its split: the dataset's own (the VQ-VAE run's rule)."""

    from vqturb.data.splits import SPLIT_NAMES, SplitRule
    from vqturb.data.tokens_file import TokensFile

    tok, _ = tok_and_data
    ds = _mat_trajectories(tmp_path / "ds", rng, 6)
    assert tok.split_rule == SplitRule()  # the checkpoint's meta has no split: the defaults
    for rule in (None, SplitRule(0.3, 0.2, seed=3)):
        save_tokens(tok, ds, tmp_path / "tokens.npz", split_rule=rule)
        back = TokensFile.read(tmp_path / "tokens.npz")
        assert back.split_rule == (rule or tok.split_rule)
        r = back.split_rule
        want = ds.split(val_fraction=r.val_fraction, test_fraction=r.test_fraction, seed=r.seed)
        for k, sub in enumerate(want):
            sel = back.split == k
            got = sorted(zip(back.trajectory_id[sel], back.time_index[sel], strict=True))
            got = [(int(a), int(b)) for a, b in got]
            assert got == sorted(map(tuple, sub.refs.tolist())), SPLIT_NAMES[k]


def test_symmetry_images_are_training_trajectories_of_the_rotated_fields(
    tok_and_data, tmp_path, rng
):
    """--augment rot90,mirror: each training row gets 7 images (3 turns x 2 mirrors + 1 mirror),
    each the encoding of the transformed field, in its own training trajectory with the original's
    time indices; val/test rows get none, and the data's own rows are unchanged."""

    from vqturb.data.splits import TRAIN
    from vqturb.data.tokens_file import TokensFile
    from vqturb.training.augment import apply_symmetry, symmetry_group

    tok, _ = tok_and_data
    ds = _mat_trajectories(tmp_path / "ds", rng, 5)
    plain = save_tokens(tok, ds, tmp_path / "plain.npz")
    aug = save_tokens(tok, ds, tmp_path / "aug.npz", augment=("rot90", "mirror"))
    back = TokensFile.read(tmp_path / "aug.npz")
    assert back.symmetry_ops == "rot90,mirror" and back.symmetry.max() == 7
    n = plain.n_rows
    train = plain.split == TRAIN
    assert 0 < train.sum() < n and back.n_rows == n + 7 * train.sum()
    own = back.symmetry == 0
    assert own.sum() == n and (back.split[~own] == TRAIN).all()
    np.testing.assert_array_equal(back.split[own], plain.split)
    for a, b in zip(back.codes(back.indices[own]), plain.codes(plain.indices), strict=True):
        np.testing.assert_array_equal(a, b)
    group = symmetry_group(("rot90", "mirror"))
    x = np.asarray(ds.all().get_batch(np.flatnonzero(train)), np.float32)
    for j in (1, 4, 7):
        rows = np.flatnonzero(back.symmetry == j)
        assert (back.trajectory_id[rows] // 5 == j).all()  # image j of trajectory t is j * 5 + t
        np.testing.assert_array_equal(back.time_index[rows], plain.time_index[train])
        want = tok.encode_codes(apply_symmetry(x, group[j], mirror_sign=-1.0))
        got = back.codes(back.indices[rows])
        for w, g in zip(want, got, strict=True):
            np.testing.assert_array_equal(w, g)
    pairs = plain.pairs(1)
    n_train_pairs = int(train[pairs[:, 0]].sum())
    assert len(aug.pairs(1)) == len(pairs) + 7 * n_train_pairs  # pairs stay inside each image


def test_symmetry_group_and_its_action():
    from vqturb.training.augment import apply_symmetry, symmetry_group

    assert symmetry_group(("rot90",)) == [(0, False), (1, False), (2, False), (3, False)]
    assert len(symmetry_group(("rot90", "mirror"))) == 8 and symmetry_group(())[0] == (0, False)
    with pytest.raises(InputError, match="roll"):
        symmetry_group(("roll",))
    x = np.arange(16.0).reshape(1, 4, 4)
    np.testing.assert_array_equal(apply_symmetry(x, (1, False)), np.rot90(x, 1, axes=(1, 2)))
    np.testing.assert_array_equal(apply_symmetry(x, (0, True)), -x[..., ::-1])
    np.testing.assert_array_equal(apply_symmetry(x, (0, True), mirror_sign=1.0), x[..., ::-1])


def test_info(tok_and_data):
    tok, x = tok_and_data
    info = tokenizer_info(tok, x)
    assert info["unified_vocab_size"] == sum(s["codes_used"] for s in info["scales"])
    for s in info["scales"]:
        assert 1 <= s["perplexity"] <= s["codes_used"] + 1e-9
    assert 0 < info["recon_rel_l2_mean"] < 1


def _real_checkpoint(path, var_mode):
    import jax

    from vqturb import checkpoint as ck
    from vqturb.models import VQVAEConfig, build_model

    cfg = VQVAEConfig(resolution=16, base_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                      hidden_dim=16, codebook_dim=4, vocab_size=32, scales=(1, 2, 4),
                      var_mode=var_mode, norm_groups=4)  # fmt: skip
    model = build_model(cfg, key=jax.random.PRNGKey(0))
    meta = {"normalization": {"mean": 0.2, "std": 3.0}}
    ck.save_model(path, model, kind="vqvae", config=cfg.to_dict(), meta=meta)
    return model


@pytest.mark.parametrize(
    "var_mode", [True, pytest.param(False, marks=pytest.mark.slow)], ids=["var", "standard"]
)
def test_real_model_tokens(tmp_path, rng, var_mode):
    """With the real VQVAE2d / VARVQVAE2d: vectors are the model's codebook rows, and decoding
    the saved tokens equals the model's forward-pass reconstruction."""
    model = _real_checkpoint(tmp_path / "real.eqx", var_mode)
    tok = VQVAETokenizer(tmp_path / "real.eqx", var_mode=var_mode, batch_size=4)
    x = fields(rng, 6)
    arrays = save_tokens(tok, x, tmp_path / "tokens.npz").arrays()
    assert arrays["indices_flat"].shape == (6, 21 if var_mode else 16)
    cbs = [np.asarray(c) for c in model.codebooks()]
    k = arrays["unified_to_scale"]
    orig = arrays["unified_to_original"]
    expect = np.stack([cbs[int(s)][int(o)] for s, o in zip(k, orig, strict=True)])
    assert np.array_equal(arrays["codebook"], expect)
    rec = tok.decode_indices(arrays["indices_flat"])
    # the model's own codes, decoded by the model (jitted inside the tokenizer: cheap)
    direct = tok.decode_codes(tok.encode_codes(x))
    assert np.array_equal(rec, direct)
    if not var_mode:  # slow variant: against the eager training forward pass as well
        model_rec = tok.normalization.invert(np.asarray(model(tok.normalization.apply(x))[0]))
        assert np.allclose(rec, model_rec, atol=1e-4 * np.abs(model_rec).max())
