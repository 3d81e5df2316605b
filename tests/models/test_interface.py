"""AbstractVQVAE: both models implement it; codebooks per scale; the abstract class is abstract."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from vqturb.models import AbstractVQVAE, VQVAEConfig, build_model


def tiny(**kw) -> VQVAEConfig:
    base = dict(resolution=16, base_channels=4, channel_mult=(1, 2), num_res_blocks=1,
                hidden_dim=8, codebook_dim=4, vocab_size=16, norm_groups=2, scales=(1, 2, 4))  # fmt: skip
    return VQVAEConfig(**{**base, **kw})


@pytest.mark.parametrize(
    "kw", [{}, {"var_mode": True}, {"var_mode": True, "shared_codebook": False}],
    ids=["vqvae", "var-shared", "var-per-scale"],
)  # fmt: skip
def test_models_implement_the_interface(rng, kw):
    cfg = tiny(**kw)
    model = build_model(cfg, key=jr.PRNGKey(0))
    assert isinstance(model, AbstractVQVAE)
    assert model.scales == cfg.model_scales and model.latent_grid == cfg.latent_size
    x = jnp.asarray(rng.standard_normal((2, 16, 16)), jnp.float32)
    idx = model.encode(x)
    assert [i.shape for i in idx] == [(2, s, s) for s in model.scales]
    cbs = model.codebooks()
    assert len(cbs) == len(model.scales)
    assert all(c.shape == (cfg.vocab_size, cfg.codebook_dim) for c in cbs)
    # each scale's indices point into its own codebook: the nearest code of a VQVAE2d latent
    # vector is its row of that codebook
    if not cfg.var_mode:
        z_e = np.asarray(model.embed(x), np.float64).reshape(-1, cfg.codebook_dim)
        d = ((z_e[:, None, :] - np.asarray(cbs[0], np.float64)[None]) ** 2).sum(-1)
        assert np.array_equal(d.argmin(-1), np.asarray(idx[0]).ravel())
    distinct = {id(c) for c in cbs}
    if cfg.var_mode and not cfg.shared_codebook:
        assert len(distinct) == len(cbs)
        assert not np.array_equal(np.asarray(cbs[0]), np.asarray(cbs[1]))
    else:
        assert len(distinct) == 1  # one codebook, repeated for every scale


def test_abstract_classes_cannot_be_instantiated():
    with pytest.raises(TypeError):
        AbstractVQVAE()

    class Incomplete(AbstractVQVAE):
        scales: tuple[int, ...] = (1,)

        def encode(self, x):
            return ()

    with pytest.raises(TypeError):
        Incomplete()


@pytest.mark.parametrize("var_mode", [False, True])
def test_leaf_order_is_encoder_quantizer_decoder(var_mode):
    """The checkpoint payload is the leaves in tree order: it must not depend on how the abstract
    base classes declare their fields (checkpoints written before them still load)."""
    import jax

    model = build_model(tiny(var_mode=var_mode), key=jr.PRNGKey(0))
    tops = []
    for path, _ in jax.tree_util.tree_flatten_with_path(model)[0]:
        name = path[0].name
        if not tops or tops[-1] != name:
            tops.append(name)
    assert tops == ["encoder", "quantizer", "decoder"]
