"""`tokenizer save --vocab_from`: a new dataset tokenized with an earlier file's vocabulary."""

import dataclasses

import numpy as np
import pytest

from codec.tiny_model import fields, make_checkpoint
from vqturb.errors import InputError
from vqturb.tokenizer import VQVAETokenizer, save_tokens


@pytest.fixture
def tok(tmp_path, stand_in_vqvae):
    path, _ = make_checkpoint(tmp_path / "m.eqx", var_mode=True)
    return VQVAETokenizer(path, batch_size=4)


def test_vocab_from_keeps_the_vocabulary_and_maps_unknown_codes_to_the_nearest(tok, tmp_path, rng):
    x = fields(rng, 10)
    small = tmp_path / "small.npz"
    first = save_tokens(tok, x[:2] * 0.3, small)  # a quiet field: few codes per scale
    assert first.remapped_tokens.sum() == 0
    codes = tok.encode_codes(x)
    new = save_tokens(tok, x, tmp_path / "new.npz", vocab_from=small)
    assert new.layout == first.layout
    np.testing.assert_array_equal(new.unified_to_original, first.unified_to_original)
    np.testing.assert_array_equal(new.codebook, first.codebook)
    used = np.split(first.unified_to_original, np.cumsum(first.scale_vocab_sizes)[:-1])
    cbs = [np.asarray(c) for c in tok.model.codebooks()]
    rows = new.indices
    start = 0
    n_unknown = []
    for c, u, cb in zip(codes, used, cbs, strict=True):
        s = c.shape[-1]
        got = new.unified_to_original[rows[:, start : start + s * s]].reshape(c.shape)
        start += s * s
        unknown = ~np.isin(c, u)
        n_unknown.append(int(unknown.sum()))
        np.testing.assert_array_equal(got[~unknown], c[~unknown])  # known codes kept
        # an unknown code became the used code closest to it in the codebook
        for orig, rep in zip(c[unknown], got[unknown], strict=True):
            d = np.linalg.norm(cb[u] - cb[orig], axis=1)
            assert np.isin(rep, u) and np.linalg.norm(cb[rep] - cb[orig]) == pytest.approx(d.min())
    assert new.remapped_tokens.tolist() == n_unknown
    assert sum(n_unknown) > 0  # the test exercised the remapping
    assert np.load(tmp_path / "new.npz")["remapped_tokens"].tolist() == n_unknown


def test_vocab_from_another_checkpoint_is_refused(tok, tmp_path, rng, stand_in_vqvae):
    x = fields(rng, 2)
    path = tmp_path / "t.npz"
    tokens = save_tokens(tok, x, path)
    dataclasses.replace(tokens, checkpoint_sha256="0" * 64).write(path)
    with pytest.raises(InputError, match="checkpoint_sha256"):
        save_tokens(tok, x, tmp_path / "u.npz", vocab_from=path)
