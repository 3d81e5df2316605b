"""The trunk's blocks: pre-activation ``ResBlock2d`` and the bottleneck ``AttentionBlock2d``."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from vqturb.models.conv import Conv2d
from vqturb.models.initializers import split_key
from vqturb.models.norm import GroupNorm, Identity, make_norm


class ResBlock2d(eqx.Module):
    """Pre-activation residual block: ``x + conv(silu(norm(conv(silu(norm(x))))))``.

    As in the VQGAN/VAR trunks (Esser et al. 2021; Tian et al. 2024); a 1×1 conv on the skip path
    when the width changes.
    """

    norm1: GroupNorm | Identity
    conv1: Conv2d
    norm2: GroupNorm | Identity
    conv2: Conv2d
    skip: Conv2d | None

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        group_norm: bool = True,
        norm_groups: int = 32,
        padding_mode: str = "circular",
        key: PRNGKeyArray,
    ):
        k1, k2, k3 = split_key(key, 3)
        self.norm1 = make_norm(in_channels, group_norm, norm_groups)
        self.conv1 = Conv2d(in_channels, out_channels, 3, padding_mode=padding_mode, key=k1)
        self.norm2 = make_norm(out_channels, group_norm, norm_groups)
        self.conv2 = Conv2d(out_channels, out_channels, 3, padding_mode=padding_mode, key=k2)
        self.skip = (
            Conv2d(in_channels, out_channels, 1, key=k3) if in_channels != out_channels else None
        )

    def __call__(self, x: Float[Array, "b h w cin"]) -> Float[Array, "b h w cout"]:
        h = self.conv1(jax.nn.silu(self.norm1(x)))
        h = self.conv2(jax.nn.silu(self.norm2(h)))
        s = x if self.skip is None else self.skip(x)
        return s + h


class AttentionBlock2d(eqx.Module):
    """Multi-head self-attention over all ``h*w`` positions, pre-norm, residual (VQGAN's AttnBlock).

    Used only at the bottleneck (16×16 = 256 positions for the SPEC default), where a global
    receptive field is cheap.
    """

    norm: GroupNorm | Identity
    qkv: Conv2d
    proj: Conv2d
    num_heads: int = eqx.field(static=True)

    def __init__(
        self,
        channels: int,
        num_heads: int = 1,
        *,
        group_norm: bool = True,
        norm_groups: int = 32,
        key: PRNGKeyArray,
    ):
        if channels % num_heads:
            raise ValueError(f"{channels} channels not divisible by {num_heads} heads")
        k1, k2 = split_key(key, 2)
        self.norm = make_norm(channels, group_norm, norm_groups)
        self.qkv = Conv2d(channels, 3 * channels, 1, key=k1)
        self.proj = Conv2d(channels, channels, 1, key=k2)
        self.num_heads = num_heads

    def __call__(self, x: Float[Array, "b h w c"]) -> Float[Array, "b h w c"]:
        b, h, w, c = x.shape
        nh, dh = self.num_heads, c // self.num_heads
        q, k, v = jnp.split(self.qkv(self.norm(x)).reshape(b, h * w, 3, nh, dh), 3, axis=2)
        q, k, v = (t[:, :, 0] for t in (q, k, v))  # [b, n, heads, dh]
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k).astype(jnp.float32) / math.sqrt(dh)
        att = jax.nn.softmax(logits, axis=-1).astype(x.dtype)
        out = jnp.einsum("bhqk,bkhd->bqhd", att, v).reshape(b, h, w, c)
        return x + self.proj(out)
