"""``Conv2d`` on NHWC batches (zero or periodic padding), its sub-pixel upsampling form, and
the composition of two convolutions into one (``conv_pair``).

Layout choice, measured with ``benchmarks/bench_conv_layout.py`` (the same encoder-decoder trunk
built both ways: base 32, channel_mult (1,2,2), 64², batch 8, forward+backward+Adam, medians of 20
steps run in turn; 2-core CPU shared with other jobs, load 7-13, so absolute figures are low):

    padding   vmapped eqx.nn.Conv2d (NCHW)   batched NHWC Conv2d (this module)   ratio
    run 1 (load ~7)
    zeros     3.61 img/s                     4.26 img/s                          1.18x
    circular  2.08 img/s                     4.29 img/s                          2.06x
    run 2 (load ~6)
    zeros     9.98 img/s                     11.79 img/s                         1.18x
    circular  5.78 img/s                     10.08 img/s                         1.74x

(an earlier, non-interleaved run at low load: zeros 25.5 vs 27.2 img/s, 1.07x). The NHWC layout is
never slower, and periodic padding costs it 0.99-1.17x of zero padding against 1.7x for
``eqx.nn.Conv2d``. XLA:CPU runs convolutions without padding ("VALID") on a slow path (5x slower
forward at 64², 32 channels), hence the wrap-pad-then-padded-conv trick in ``Conv2d.__call__``.

The whole trunk works on ``[batch, height, width, channels]`` batches: one convolution call per
layer for the whole batch instead of ``vmap`` over per-sample NCHW calls, which XLA:CPU lowers to
the faster oneDNN/Eigen NHWC kernels (DESIGN.md, "Speed").

Boundaries: the vorticity fields are periodic on [0, 2π)², so ``padding_mode="circular"`` (wrap
padding) is the physically right default; ``"zeros"`` is the usual image choice.

Every module follows the input dtype (weights are cast to ``x.dtype``), so feeding bfloat16 inputs
runs the trunk in bfloat16 with float32 master weights; normalisation statistics are computed in
float32.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from vqturb.models.conv_cpu_grad import use_tap_weight_grad, valid_conv_cpu, valid_conv_xla
from vqturb.models.initializers import random_init, split_key

PADDING_MODES = ("zeros", "circular")


def _uniform(key: PRNGKeyArray, shape: tuple[int, ...], lim: float) -> Array:
    return lim * random_init(key, shape, "uniform")


class Conv2d(eqx.Module):
    """2D convolution on NHWC batches, weights HWIO (one XLA convolution for the whole batch).

    Initialisation matches ``eqx.nn.Conv2d`` (and PyTorch): weight and bias uniform in
    ``±1/sqrt(fan_in)`` with ``fan_in = in_channels * kernel_size²``.

    Padding keeps ``ceil(size / stride)`` outputs for odd kernels: ``kernel_size // 2`` cells on
    each side, zeros or periodic wrap-around (``padding_mode``).
    """

    weight: Float[Array, "kh kw cin cout"]
    bias: Float[Array, " cout"] | None
    in_channels: int = eqx.field(static=True)
    out_channels: int = eqx.field(static=True)
    kernel_size: int = eqx.field(static=True)
    stride: int = eqx.field(static=True)
    padding_mode: str = eqx.field(static=True)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        *,
        stride: int = 1,
        padding_mode: str = "circular",
        use_bias: bool = True,
        key: PRNGKeyArray,
    ):
        wkey, bkey = split_key(key, 2)
        lim = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.weight = _uniform(wkey, (kernel_size, kernel_size, in_channels, out_channels), lim)
        self.bias = _uniform(bkey, (out_channels,), lim) if use_bias else None
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding_mode = padding_mode

    def __check_init__(self):
        if self.padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode {self.padding_mode!r} not in {PADDING_MODES}")
        if self.kernel_size % 2 != 1:
            raise ValueError("Conv2d uses odd kernels (symmetric padding)")

    def __call__(self, x: Float[Array, "b h w cin"]) -> Float[Array, "b ho wo cout"]:
        p = self.kernel_size // 2
        xp = _pad(x, p, self.padding_mode) if p else x
        return self._add_bias(_valid_conv(xp, self.weight.astype(x.dtype), self.stride))

    def upsampled(self, x: Float[Array, "b h w cin"]) -> Float[Array, "b h2 w2 cout"]:
        """``self(upsample_nearest2x(x))``, computed on the coarse grid (sub-pixel form).

        After a nearest-neighbour ×2 upsampling, the fine cell (2i+a, 2j+b) of a 3×3 conv sees
        only the coarse cells i-1..i (phase 0) or i..i+1 (phase 1) in each direction: along a
        direction, phase 0 weighs them (w₀, w₁+w₂) and phase 1 (w₀+w₁, w₂). So the layer is four
        2×2 convs on the coarse grid, interleaved: the same function and parameters with 16/36 of
        the multiply-adds (Shi et al. 2016 call the interleaving "sub-pixel convolution"). Padding
        the coarse grid by one cell, periodic or zero, pads the upsampled grid the same way.
        """
        if self.kernel_size != 3 or self.stride != 1:
            return self(upsample_nearest2x(x))
        h, w = x.shape[1:3]
        xp = _pad(x, 1, self.padding_mode)
        kernels = _subpixel_kernels(self.weight.astype(x.dtype))
        phases = [
            [_valid_conv(xp[:, a : a + h + 1, b : b + w + 1], kernels[a][b], 1) for b in (0, 1)]
            for a in (0, 1)
        ]
        rows = [jnp.stack(phases[a], axis=3) for a in (0, 1)]  # [n, h, w, b, c]
        y = jnp.stack(rows, axis=2)  # [n, h, a, w, b, c]
        return self._add_bias(y.reshape(y.shape[0], 2 * h, 2 * w, y.shape[-1]))

    def _add_bias(self, y: Array) -> Array:
        return y if self.bias is None else y + self.bias.astype(y.dtype)


def _pad(x: Array, p: int, padding_mode: str) -> Array:
    mode = "wrap" if padding_mode == "circular" else "constant"
    return jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode=mode)


def _subpixel_kernels(w: Float[Array, "3 3 cin cout"]) -> list[list[Array]]:
    """The four 2×2 kernels ``[a][b]`` of a 3×3 conv after nearest ×2 upsampling (``upsampled``)."""

    def fold(v: Array, axis: int, phase: int) -> Array:
        t0, t1, t2 = (jnp.take(v, i, axis=axis) for i in range(3))
        return jnp.stack((t0, t1 + t2) if phase == 0 else (t0 + t1, t2), axis=axis)

    return [[fold(fold(w, 0, a), 1, b) for b in (0, 1)] for a in (0, 1)]


def _valid_conv(xp: Array, w: Array, stride: int) -> Array:
    """Unpadded ("VALID") cross-correlation of an already padded NHWC batch with an HWIO kernel:
    output (y, x) reads ``xp[s·y : s·y + k, s·x : s·x + k]``.

    On XLA:CPU the gradients of wide layers on large grids and of strided layers are computed by
    ``valid_conv_cpu`` (see ``vqturb.models.conv_cpu_grad``)."""
    _, ho, wo = _valid_shape(xp.shape, w.shape[0], stride)
    tap = use_tap_weight_grad(xp.shape[0] * ho * wo, w.shape[2], w.shape[3])
    if tap or (stride > 1 and jax.default_backend() == "cpu"):
        return valid_conv_cpu(xp, w, stride, tap)
    return valid_conv_xla(xp, w, stride)


def _valid_shape(shape: tuple[int, ...], k: int, stride: int) -> tuple[int, int, int]:
    return shape[0], (shape[1] - k) // stride + 1, (shape[2] - k) // stride + 1


def upsample_nearest2x(x: Float[Array, "b h w c"]) -> Float[Array, "b h2 w2 c"]:
    """Nearest-neighbour ×2 upsampling (each cell copied to a 2×2 block)."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def conv_pair(first: Conv2d, second: Conv2d, x: Float[Array, "b h w cin"]) -> Array:
    """``second(first(x))``, as one convolution when that is exact and cheaper.

    With nothing between them, two periodic convolutions compose into one: a k₁×k₁ stride-1
    conv followed by a k₂×k₂ stride-s conv is a (k₁+k₂-1)² stride-s conv with kernel
    W[t] = Σ_{u+v=t} W₁[u] W₂[v] and bias b₂ + Σ_v W₂[v]ᵀ b₁ (every tap of the second conv sees
    the first's bias on a periodic field). The parameters and their gradients are those of the
    two layers (the composed kernel is differentiated back into W₁, W₂); only the intermediate
    activation is never formed. The encoder's field-side pair (1 → 128 channels at 256², then
    the stride-2 128 → 128 conv) costs ~0.05 instead of ~5 GFLOP per image and skips a
    [256, 256, 128] activation. Used when the input is narrow (composed kernel no wider than the
    second's) and padding is periodic (zero padding does not compose at the border).
    """
    k1, k2 = first.kernel_size, second.kernel_size
    composable = (
        first.padding_mode == second.padding_mode == "circular"
        and first.stride == 1
        and first.out_channels == second.in_channels
        and (k1 + k2 - 1) ** 2 * first.in_channels <= k2 * k2 * second.in_channels
    )
    if not composable:
        return second(first(x))
    w1 = first.weight.astype(jnp.float32)
    w2 = second.weight.astype(jnp.float32)
    k = k1 + k2 - 1
    w = jnp.zeros((k, k, first.in_channels, second.out_channels), jnp.float32)
    for u0 in range(k1):
        for u1 in range(k1):
            w = w.at[u0 : u0 + k2, u1 : u1 + k2].add(jnp.einsum("ic,vwco->vwio", w1[u0, u1], w2))
    y = _valid_conv(_pad(x, k // 2, "circular"), w.astype(x.dtype), second.stride)
    bias = jnp.zeros((second.out_channels,), jnp.float32)
    if first.bias is not None:
        bias = bias + jnp.einsum("c,vwco->o", first.bias.astype(jnp.float32), w2)
    if second.bias is not None:
        bias = bias + second.bias.astype(jnp.float32)
    return y + bias.astype(x.dtype)
