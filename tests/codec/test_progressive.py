"""Progressive decoding: the VAR model decodes a coarse-to-fine prefix of its scales."""

import jax.random as jr
import numpy as np
import pytest

from tiny_vqvae import tiny_vqvae_config
from vqturb.models import build_model


def test_a_prefix_of_scales_decodes_to_the_partial_residual_sum(rng):
    cfg = tiny_vqvae_config(var_mode=True)
    model = build_model(cfg, key=jr.PRNGKey(0))
    x = rng.standard_normal((2, 16, 16)).astype(np.float32)
    idx = model.encode(x)
    full = np.asarray(model.lookup(idx))
    parts = [np.asarray(model.lookup(idx[:k])) for k in (1, 2, 3)]
    np.testing.assert_array_equal(parts[-1], full)
    # each longer prefix adds the next scale's term
    assert not np.allclose(parts[0], parts[1])
    for k in (1, 2):
        rec = np.asarray(model.decode_indices(idx[:k]))
        assert rec.shape == x.shape and np.all(np.isfinite(rec))
    with pytest.raises(ValueError):
        model.lookup(())
