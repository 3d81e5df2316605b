"""``AbstractVQVAE``: a trained VQ-VAE as the tokenizer, the codec and the evaluation see it.

A field goes to one code-index map per scale (a 1-tuple for a single-scale VQ-VAE, one
``[b, s, s]`` map per side length ``s`` of ``scales`` for VAR) and back. Everything built on a
trained checkpoint types against this class, never against a concrete model:

- ``encode(x)``: per-scale code indices of normalised fields;
- ``decode_indices(indices)``: fields from them; ``decode_indices(encode(x))`` is the model's
  reconstruction of ``x``;
- ``codebooks()``: the ``[K, D]`` codebook each scale's indices point into (one array per scale,
  the same array repeated when scales share a codebook);
- ``scales``: the side length of each scale's index map;
- ``latent_grid``: the side length of the finest (decoder-input) latent grid.

Abstract/final pattern (Equinox ``docs/pattern.md``; Diffrax's ``AbstractSolver``): abstract
methods via ``abc.abstractmethod``, abstract attributes via ``eqx.AbstractVar``; concrete models
are final subclasses that implement them and override nothing.
"""

from __future__ import annotations

import abc

import equinox as eqx
from jaxtyping import Array, ArrayLike, Float, Int

# Normalised fields: [b, H, W] (one channel) or [b, H, W, c].
FieldIn = Float[ArrayLike, "b H W"] | Float[ArrayLike, "b H W c"]
FieldOut = Float[Array, "b H W"] | Float[Array, "b H W c"]
# One code-index map per scale, [b, s, s] for each s in ``scales``.
Indices = tuple[Int[Array, "b _s _t"], ...]
IndicesIn = tuple[Int[ArrayLike, "b _s _t"], ...]


class AbstractVQVAE(eqx.Module):
    """Fields ↔ per-scale code indices, with the codebooks those indices point into."""

    # Side length of each scale's index map, coarse to fine (one entry for a single-scale model).
    scales: eqx.AbstractVar[tuple[int, ...]]

    @property
    def latent_grid(self) -> int:
        """Side length of the finest latent grid (the decoder's input): ``scales[-1]``."""
        return self.scales[-1]

    @abc.abstractmethod
    def encode(self, x: FieldIn) -> Indices:
        """Per-scale code indices of normalised fields ``x``: ``[b, s, s]`` int32 per scale."""

    @abc.abstractmethod
    def decode_indices(self, indices: IndicesIn) -> FieldOut:
        """Normalised fields from per-scale code indices (one ``[b, s, s]`` map per scale)."""

    @abc.abstractmethod
    def codebooks(self) -> tuple[Float[Array, "K D"], ...]:
        """The ``[K, D]`` codebook of each scale (the same array repeated when shared)."""
