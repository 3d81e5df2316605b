"""``GroupNorm`` (statistics in float32 whatever the input dtype) and the ``Identity`` that
replaces it when normalisation is switched off."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


def _num_groups(channels: int, max_groups: int) -> int:
    """Largest divisor of ``channels`` not above ``max_groups`` (so any width works)."""
    for g in range(min(max_groups, channels), 0, -1):
        if channels % g == 0:
            return g
    return 1


class GroupNorm(eqx.Module):
    """Group normalisation (Wu & He 2018) over (height, width, channels-in-group) of NHWC batches.

    ``groups`` is the largest divisor of ``channels`` not above ``max_groups``. Statistics in
    float32 whatever the input dtype.

    The statistics take one pass over the activations: per channel, the sums of ``x - x₀`` and
    its square, shifted by the channel's first pixel ``x₀`` so that a large mean does not cancel
    the variance away (the shifted-data algorithm; Chan, Golub & LeVeque 1983); the channels of a
    group are then combined exactly (group variance = mean channel variance + variance of the
    channel means). The normalisation is then one per-channel scale and shift. Against the
    textbook two-pass form over a [b, h, w, groups, c/g] view, forward+backward (with SiLU) at
    4×128²×128 takes 67 instead of 122 ms on the 2-core CPU: XLA:CPU reduces over the
    non-minor axes of that view slowly.
    """

    weight: Float[Array, " c"]
    bias: Float[Array, " c"]
    groups: int = eqx.field(static=True)
    eps: float = eqx.field(static=True)

    def __init__(self, channels: int, max_groups: int = 32, eps: float = 1e-6):
        self.weight = jnp.ones((channels,))
        self.bias = jnp.zeros((channels,))
        self.groups = _num_groups(channels, max_groups)
        self.eps = eps

    def __call__(self, x: Float[Array, "b h w c"]) -> Float[Array, "b h w c"]:
        b, h, w, c = x.shape
        per_group = c // self.groups
        xf = x.astype(jnp.float32)
        shift = jax.lax.stop_gradient(xf[:, :1, :1, :])
        d = xf - shift
        s1 = jnp.sum(d, axis=(1, 2))  # [b, c]
        s2 = jnp.sum(jnp.square(d), axis=(1, 2))
        n = h * w
        shape = (b, self.groups, per_group)
        chan_mean = (shift.reshape(b, c) + s1 / n).reshape(shape)
        chan_var = jnp.maximum(s2 / n - jnp.square(s1 / n), 0.0).reshape(shape)
        mean = jnp.mean(chan_mean, axis=-1, keepdims=True)
        var = jnp.mean(chan_var + jnp.square(chan_mean - mean), axis=-1, keepdims=True)
        scale = jnp.broadcast_to(jax.lax.rsqrt(var + self.eps), shape).reshape(b, c) * self.weight
        offset = self.bias - jnp.broadcast_to(mean, shape).reshape(b, c) * scale
        return (xf * scale[:, None, None, :] + offset[:, None, None, :]).astype(x.dtype)


class Identity(eqx.Module):
    """Stands in for a switched-off norm so module structure stays fixed."""

    def __call__(self, x: Float[Array, "b h w c"]) -> Float[Array, "b h w c"]:
        return x


def make_norm(channels: int, group_norm: bool, max_groups: int) -> GroupNorm | Identity:
    return GroupNorm(channels, max_groups) if group_norm else Identity()
