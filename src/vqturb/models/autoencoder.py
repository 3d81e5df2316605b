"""``Encoder2d`` and ``Decoder2d``: the convolutional trunk of both VQ-VAE variants (NHWC).

Encoder (VQGAN-style, Esser et al. 2021, but downsampling at every stage):
    conv3x3(in → base·m₀) → for each stage i: num_res_blocks × ResBlock(→ base·mᵢ), conv3x3 stride 2
    → conv3x3(→ hidden_dim) → ResBlock, [Attention], ResBlock (hidden_dim)
    → norm, SiLU, conv1x1(→ codebook_dim)
Decoder (mirror):
    conv3x3(codebook_dim → hidden_dim) → ResBlock, [Attention], ResBlock
    → for each stage i from the last: nearest ×2, conv3x3(→ base·mᵢ), num_res_blocks × ResBlock
    → norm, SiLU, conv3x3(→ in_channels)
The nearest ×2 + conv3x3 pair runs in its exact sub-pixel form on the coarse grid
(``Conv2d.upsampled``: 16/36 of the multiply-adds).
So ``len(channel_mult)`` stages give a 2**len(channel_mult) downsampling: (1,2,4,4) is 16×.

``downsample_first`` moves each stage's residual blocks after its strided conv (and, mirrored,
before the decoder's upsampling): every block then runs on a quarter of the pixels, ~4x fewer
FLOPs for the SPEC default, but no residual block works at full resolution.
"""

from __future__ import annotations

import equinox as eqx
import jax
from jaxtyping import Array, Float, PRNGKeyArray

from vqturb.models.blocks import AttentionBlock2d, ResBlock2d
from vqturb.models.config import VQVAEConfig
from vqturb.models.conv import Conv2d, conv_pair
from vqturb.models.initializers import split_key
from vqturb.models.norm import GroupNorm, Identity, make_norm


def _apply_block(block: ResBlock2d, h: Array, remat: bool) -> Array:
    """``block(h)``, or under ``jax.checkpoint`` (activations recomputed in the backward pass:
    ~1/3 more compute, activation memory of one block instead of all) when ``remat``."""
    if remat:
        return jax.checkpoint(lambda b, x: b(x))(block, h)
    return block(h)


def _res(cfg: VQVAEConfig, cin: int, cout: int, key: PRNGKeyArray) -> ResBlock2d:
    return ResBlock2d(
        cin,
        cout,
        group_norm=cfg.group_norm,
        norm_groups=cfg.norm_groups,
        padding_mode=cfg.padding_mode,
        key=key,
    )


class Bottleneck2d(eqx.Module):
    """ResBlock, optional self-attention, ResBlock at ``hidden_dim`` width (the latent grid)."""

    block1: ResBlock2d
    attn: AttentionBlock2d | None
    block2: ResBlock2d

    def __init__(self, cfg: VQVAEConfig, *, key: PRNGKeyArray):
        k1, k2, k3 = split_key(key, 3)
        c = cfg.hidden_dim
        self.block1 = _res(cfg, c, c, k1)
        self.attn = (
            AttentionBlock2d(
                c,
                cfg.attention_heads,
                group_norm=cfg.group_norm,
                norm_groups=cfg.norm_groups,
                key=k2,
            )
            if cfg.attention
            else None
        )
        self.block2 = _res(cfg, c, c, k3)

    def __call__(self, x: Float[Array, "b h w c"]) -> Float[Array, "b h w c"]:
        x = self.block1(x)
        if self.attn is not None:
            x = self.attn(x)
        return self.block2(x)


class Encoder2d(eqx.Module):
    """Field [b, H, W, in_channels] → latent [b, H/f, W/f, codebook_dim], f = 2**len(channel_mult)."""

    conv_in: Conv2d
    stages: tuple[tuple[ResBlock2d, ...], ...]
    downs: tuple[Conv2d, ...]
    proj: Conv2d
    mid: Bottleneck2d
    norm_out: GroupNorm | Identity
    conv_out: Conv2d
    remat: bool = eqx.field(static=True)
    downsample_first: bool = eqx.field(static=True)

    def __init__(self, cfg: VQVAEConfig, *, key: PRNGKeyArray):
        n = len(cfg.channel_mult)
        self.remat = cfg.remat
        self.downsample_first = cfg.downsample_first
        in_key, proj_key, mid_key, out_key, *stage_keys = split_key(key, 4 + n)
        pm = cfg.padding_mode
        widths = [cfg.base_channels * m for m in cfg.channel_mult]
        self.conv_in = Conv2d(cfg.in_channels, widths[0], 3, padding_mode=pm, key=in_key)
        stages, downs, c = [], [], widths[0]
        for w, sk in zip(widths, stage_keys, strict=True):
            down_key, *bkeys = split_key(sk, 1 + cfg.num_res_blocks)
            if cfg.downsample_first:  # strided conv changes the width, blocks at the new size
                downs.append(Conv2d(c, w, 3, stride=2, padding_mode=pm, key=down_key))
                stages.append(tuple(_res(cfg, w, w, bk) for bk in bkeys))
                c = w
                continue
            blocks = []
            for bk in bkeys:
                blocks.append(_res(cfg, c, w, bk))
                c = w
            stages.append(tuple(blocks))
            downs.append(Conv2d(c, c, 3, stride=2, padding_mode=pm, key=down_key))
        self.stages = tuple(stages)
        self.downs = tuple(downs)
        self.proj = Conv2d(c, cfg.hidden_dim, 3, padding_mode=pm, key=proj_key)
        self.mid = Bottleneck2d(cfg, key=mid_key)
        self.norm_out = make_norm(cfg.hidden_dim, cfg.group_norm, cfg.norm_groups)
        self.conv_out = Conv2d(cfg.hidden_dim, cfg.codebook_dim, 1, key=out_key)

    def __call__(self, x: Float[Array, "b H W cin"]) -> Float[Array, "b h w d"]:
        if self.downsample_first:  # nothing between conv_in and the first strided conv
            h = conv_pair(self.conv_in, self.downs[0], x)
        else:
            h = self.conv_in(x)
        for s, (blocks, down) in enumerate(zip(self.stages, self.downs, strict=True)):
            if self.downsample_first and s > 0:
                h = down(h)
            for blk in blocks:
                h = _apply_block(blk, h, self.remat)
            if not self.downsample_first:
                h = down(h)
        h = self.mid(self.proj(h))
        return self.conv_out(jax.nn.silu(self.norm_out(h)))


class Decoder2d(eqx.Module):
    """Latent [b, h, w, codebook_dim] → field [b, h·f, w·f, in_channels] (mirror of Encoder2d)."""

    conv_in: Conv2d
    mid: Bottleneck2d
    ups: tuple[Conv2d, ...]
    stages: tuple[tuple[ResBlock2d, ...], ...]
    norm_out: GroupNorm | Identity
    conv_out: Conv2d
    remat: bool = eqx.field(static=True)
    downsample_first: bool = eqx.field(static=True)

    def __init__(self, cfg: VQVAEConfig, *, key: PRNGKeyArray):
        n = len(cfg.channel_mult)
        self.remat = cfg.remat
        self.downsample_first = cfg.downsample_first
        in_key, mid_key, out_key, *stage_keys = split_key(key, 3 + n)
        pm = cfg.padding_mode
        widths = [cfg.base_channels * m for m in cfg.channel_mult]
        self.conv_in = Conv2d(cfg.codebook_dim, cfg.hidden_dim, 3, padding_mode=pm, key=in_key)
        self.mid = Bottleneck2d(cfg, key=mid_key)
        ups, stages, c = [], [], cfg.hidden_dim
        rev = widths[::-1]
        for j, (w, sk) in enumerate(zip(rev, stage_keys, strict=True)):
            up_key, *bkeys = split_key(sk, 1 + cfg.num_res_blocks)
            if cfg.downsample_first:  # mirror: blocks at the low size, then upsample + conv
                blocks = []
                for bk in bkeys:
                    blocks.append(_res(cfg, c, w, bk))
                    c = w
                stages.append(tuple(blocks))
                w_next = rev[j + 1] if j + 1 < n else w
                ups.append(Conv2d(c, w_next, 3, padding_mode=pm, key=up_key))
                c = w_next
                continue
            # Change width in the upsampling conv: cheaper than a full-width conv at the new size.
            ups.append(Conv2d(c, w, 3, padding_mode=pm, key=up_key))
            stages.append(tuple(_res(cfg, w, w, bk) for bk in bkeys))
            c = w
        self.ups = tuple(ups)
        self.stages = tuple(stages)
        self.norm_out = make_norm(c, cfg.group_norm, cfg.norm_groups)
        self.conv_out = Conv2d(c, cfg.in_channels, 3, padding_mode=pm, key=out_key)

    def __call__(self, z: Float[Array, "b h w d"]) -> Float[Array, "b H W cout"]:
        h = self.mid(self.conv_in(z))
        for up, blocks in zip(self.ups, self.stages, strict=True):
            if not self.downsample_first:
                h = up.upsampled(h)
            for blk in blocks:
                h = _apply_block(blk, h, self.remat)
            if self.downsample_first:
                h = up.upsampled(h)
        return self.conv_out(jax.nn.silu(self.norm_out(h)))
