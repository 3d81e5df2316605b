"""A tiny stand-in VQ-VAE for tokenizer/codec tests, implementing ``AbstractVQVAE``.

The stand-in quantises average-pooled residuals, scale by scale (VAR style), to the scalar values
``codebook @ proj``; deterministic and fast, so tests exercise the tokenizer, not the model.
Checkpoints of it are written with kind ``"vqvae"``; tests that load them request the
``stand_in_vqvae`` fixture (tests/conftest.py), which registers :func:`stand_in_builder` for that
kind for the duration of the test.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from vqturb import checkpoint as ck
from vqturb.models import AbstractVQVAE


class StandInVQVAE(AbstractVQVAE):
    codebook: jax.Array
    proj: jax.Array
    scales: tuple[int, ...] = eqx.field(static=True)
    size: int = eqx.field(static=True)

    def _values(self):
        return self.codebook @ self.proj

    def _up(self, a, s):
        r = self.size // s
        return jnp.repeat(jnp.repeat(a, r, axis=-2), r, axis=-1)

    def encode(self, x):
        v = self._values()
        res = x
        out = []
        for s in self.scales:
            r = self.size // s
            pooled = res.reshape(res.shape[0], s, r, s, r).mean(axis=(2, 4))
            idx = jnp.argmin(jnp.abs(pooled[..., None] - v), axis=-1).astype(jnp.int32)
            out.append(idx)
            res = res - self._up(v[idx], s)
        return tuple(out)

    def decode_indices(self, indices):
        v = self._values()
        # a coarse-to-fine prefix of the scales decodes progressively, as the real model does
        return sum(
            self._up(v[i], s) for i, s in zip(indices, self.scales[: len(indices)], strict=True)
        )

    def codebooks(self):
        return (self.codebook,) * len(self.scales)

    def __call__(self, x):
        return self.decode_indices(self.encode(x)), None


def stand_in_builder(config):
    d, v = config["codebook_dim"], config["vocab_size"]
    k1, k2 = jax.random.split(jax.random.PRNGKey(config.get("seed", 0)))
    scales = tuple(config["scales"]) if config["var_mode"] else (config["size"] // 4,)
    cb = jax.random.normal(k1, (v, d))
    proj = jax.random.normal(k2, (d,))
    # spread the scalar values over [-2.5, 2.5] so every scale finds a code near its residual
    vals = cb @ proj
    cb = cb * (jnp.linspace(-2.5, 2.5, v)[jnp.argsort(jnp.argsort(vals))] / vals)[:, None]
    return StandInVQVAE(codebook=cb, proj=proj, scales=scales, size=config["size"])


def make_checkpoint(path, *, var_mode, size=16, vocab=24, mean=0.5, std=2.0):
    """Write a tiny 'vqvae' checkpoint of the stand-in; returns (path, config). Loading it needs
    the ``stand_in_vqvae`` fixture."""
    cfg = {
        "var_mode": var_mode,
        "scales": [1, 2, 4],
        "vocab_size": vocab,
        "codebook_dim": 3,
        "size": size,
        "resolution": size,
    }
    model = stand_in_builder(cfg)
    ck.save_model(
        path, model, kind="vqvae", config=cfg, meta={"normalization": {"mean": mean, "std": std}}
    )
    return path, cfg


def fields(rng, n, size=16):
    from codec.synth import synth_fields

    return synth_fields(rng, n, size).astype(np.float32)
