"""The tiny VQ-VAE configuration the model, codec and evaluation tests share."""


def tiny_vqvae_config(**overrides):
    """A VQ-VAE config for 16² fields, 4x down to a 4x4 latent grid (a few thousand parameters);
    ``overrides`` replace any field. One definition for every test that needs a tiny model."""
    from vqturb.models import VQVAEConfig

    base = dict(
        resolution=16, base_channels=4, channel_mult=(1, 2), num_res_blocks=1, hidden_dim=8,
        codebook_dim=4, vocab_size=16, norm_groups=2, scales=(1, 2, 4),
    )  # fmt: skip
    return VQVAEConfig(**{**base, **overrides})
