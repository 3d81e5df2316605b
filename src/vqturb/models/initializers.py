"""Parameter initialisation and key splitting shared by every model module."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

# Random initialisation in fixed-size blocks. ``jr.uniform(key, shape)`` compiles a threefry
# program per distinct shape (0.5-3 s each on the 2-core CPU), which made building a small model
# take 20+ s eagerly; drawing fixed-size blocks from ``fold_in(key, i)`` compiles once per process.
_BLOCK = 1 << 14


@functools.partial(jax.jit, static_argnums=1)
def _block(key: PRNGKeyArray, kind: str) -> Float[Array, " n"]:
    if kind == "normal":
        return jr.normal(key, (_BLOCK,), jnp.float32)
    return jr.uniform(key, (_BLOCK,), jnp.float32, minval=-1.0, maxval=1.0)


def random_init(key: PRNGKeyArray, shape: tuple[int, ...], kind: str = "uniform") -> Array:
    """Float32 draws of ``shape``: ``"uniform"`` on [-1, 1) or standard ``"normal"``.

    Deterministic in ``key`` and identical eagerly and under tracing.
    """
    n = math.prod(shape)
    blocks = [_block(jr.fold_in(key, i), kind) for i in range(-(-n // _BLOCK))]
    flat = blocks[0] if len(blocks) == 1 else jnp.concatenate(blocks)
    return flat[:n].reshape(shape)


def split_key(key: PRNGKeyArray, n: int) -> list[PRNGKeyArray]:
    """``n`` independent keys (``fold_in``: one compiled program for every ``n``)."""
    return [jr.fold_in(key, i) for i in range(n)]
