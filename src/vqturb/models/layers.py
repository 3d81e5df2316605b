"""Conv-trunk building blocks in NHWC: ``Conv2d``, ``GroupNorm``, ``ResBlock2d``, ``AttentionBlock2d``.

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

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PRNGKeyArray

PADDING_MODES = ("zeros", "circular")

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
    ``_valid_conv_cpu`` (see the notes above ``_TAP_GRAD_MIN_CHANNELS``)."""
    _, ho, wo = _valid_shape(xp.shape, w.shape[0], stride)
    tap = _use_tap_weight_grad(xp.shape[0] * ho * wo, w.shape[2], w.shape[3])
    if tap or (stride > 1 and jax.default_backend() == "cpu"):
        return _valid_conv_cpu(xp, w, stride, tap)
    return _valid_conv_xla(xp, w, stride)


def _valid_shape(shape: tuple[int, ...], k: int, stride: int) -> tuple[int, int, int]:
    return shape[0], (shape[1] - k) // stride + 1, (shape[2] - k) // stride + 1


def _valid_conv_xla(xp: Array, w: Array, stride: int) -> Array:
    s = stride
    conv = functools.partial(
        jax.lax.conv_general_dilated,
        window_strides=(s, s),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    if w.shape[0] == 1:
        return conv(xp, w, padding="VALID")
    # XLA:CPU runs a convolution with no padding ("VALID") on a slow path (5x slower forward, 2x
    # backward, measured 64², 32 channels), so pad `s` zero cells in front and drop the first
    # output row/column: the remaining outputs are exactly the VALID ones.
    return conv(xp, w, padding=((s, 0), (s, 0)))[:, 1:, 1:]


# Gradients on XLA:CPU (figures: 2-core CPU, fp32, forward+backward medians; reproduce with
# benchmarks/bench_conv_grad.py).
#
# Weight gradient. XLA differentiates a convolution with respect to its kernel into a
# "backward-filter" convolution whose CPU kernel is slow for wide layers on large grids: 829 ms
# for a 3×3, 128→128 channel conv on 4×128², against 131 ms for the forward pass and 146 ms for
# the input gradient (23 vs 147 GFLOP/s). Written as matrix products,
# dW[i, j] = Σ_{n,y,x} xp[n, y+i, x+j, :]ᵀ dy[n, y, x, :], it takes ~200 ms: for each kernel row
# i one product of the row-shifted input [n·y·x', cin] with the three column-shifted copies of
# dy side by side [n·y·x', 3·cout] (so the input is copied 3 times, not 9), the long reduction
# split into ~4096-row products summed afterwards. Strided convs run the same on each polyphase
# component of the input. The products lose to XLA's kernel when the layer is narrow (64², 32
# channels: 25 vs 9 ms), hence the thresholds; from 4×32²×512 on they win by 0-25%.
#
# Input gradient of strided convs. XLA computes it as an lhs-dilated convolution, 410 ms for
# the 3×3 stride-2 conv 4×256²×128 → 128², against 181 ms as s² stride-1 convs of dy with the
# kernel's polyphase sub-kernels, interleaved (the transpose of the sub-pixel form above).
#
# Other backends keep XLA's gradients (cuDNN's kernels are fast).
_TAP_GRAD_MIN_CHANNELS = 96
_TAP_GRAD_MIN_ROWS = 8192
_TAP_GRAD_CHUNK_ROWS = 4096


def _use_tap_weight_grad(rows: int, cin: int, cout: int) -> bool:
    """``rows`` = batch × output pixels: the length of the weight gradient's reduction."""
    return (
        jax.default_backend() == "cpu"
        and min(cin, cout) >= _TAP_GRAD_MIN_CHANNELS
        and rows >= _TAP_GRAD_MIN_ROWS
    )


def _sum_of_products(a: Array, b: Array) -> Array:
    """``aᵀ b`` for tall ``a`` [n, c], ``b`` [n, d], in float32, as a sum of row-chunk products."""
    n = a.shape[0]
    chunks = max(1, n // _TAP_GRAD_CHUNK_ROWS)
    while n % chunks:
        chunks -= 1
    parts = jax.lax.dot_general(
        a.reshape(chunks, n // chunks, a.shape[1]),
        b.reshape(chunks, n // chunks, b.shape[1]),
        (((1,), (1,)), ((0,), (0,))),
        preferred_element_type=jnp.float32,
    )
    return parts.sum(0)


def _tap_weight_grad_unstrided(xp: Array, dy: Array, kh: int, kw: int) -> Array:
    """∂L/∂w [kh, kw, cin, cout] of a stride-1 VALID conv; ``xp`` may extend past the window."""
    _, ho, wo, cout = dy.shape
    cin = xp.shape[-1]
    wq = wo + kw - 1
    xp = xp[:, : ho + kh - 1, :wq]
    # dy placed at each column offset j of the input window: [n, ho, wq, kw, cout]
    shifted = jnp.stack(
        [jnp.pad(dy, ((0, 0), (0, 0), (j, kw - 1 - j), (0, 0))) for j in range(kw)], axis=3
    ).reshape(-1, kw * cout)
    rows = [
        _sum_of_products(xp[:, i : i + ho].reshape(-1, cin), shifted).reshape(cin, kw, cout)
        for i in range(kh)
    ]
    return jnp.stack(rows).transpose(0, 2, 1, 3)


def _tap_weight_grad(xp: Array, dy: Array, k: int, stride: int) -> Array:
    """∂L/∂w [k, k, cin, cout] of ``_valid_conv`` from its input and output cotangent."""
    if stride == 1:
        return _tap_weight_grad_unstrided(xp, dy, k, k)
    s = stride
    dw = jnp.zeros((k, k, xp.shape[-1], dy.shape[-1]), jnp.float32)
    for a in range(min(s, k)):
        for b in range(min(s, k)):
            kh, kw = len(range(a, k, s)), len(range(b, k, s))
            sub = _tap_weight_grad_unstrided(xp[:, a::s, b::s], dy, kh, kw)
            dw = dw.at[a::s, b::s].set(sub)
    return dw


def _strided_input_grad(dy: Array, w: Array, stride: int, hp: int, wp: int) -> Array:
    """∂L/∂xp [n, hp, wp, cin] of a strided ``_valid_conv``, one stride-1 conv per phase.

    Input cell (s·u + a, s·v + b) receives dy[u - r, v - q] · w[a + s·r, b + s·q]ᵀ: a full
    correlation of dy with the flipped, transposed polyphase sub-kernel ``w[a::s, b::s]``.
    """
    s, k = stride, w.shape[0]
    n, ho, wo, _ = dy.shape
    rows_out, cols_out = -(-hp // s), -(-wp // s)
    phases = []
    for a in range(s):
        row = []
        for b in range(s):
            sub = w[a::s, b::s]
            kh, kw = sub.shape[:2]
            if a >= k or b >= k:
                row.append(jnp.zeros((n, rows_out, cols_out, w.shape[2]), dy.dtype))
                continue
            pad = ((0, 0), (kh - 1, rows_out - ho), (kw - 1, cols_out - wo), (0, 0))
            flipped = jnp.flip(sub, (0, 1)).transpose(0, 1, 3, 2)
            row.append(_valid_conv_xla(jnp.pad(dy, pad), flipped, 1))
        phases.append(jnp.stack(row, axis=3))  # [n, rows, cols, b, cin]
    full = jnp.stack(phases, axis=2)  # [n, rows, a, cols, b, cin]
    return full.reshape(n, rows_out * s, cols_out * s, -1)[:, :hp, :wp]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _valid_conv_cpu(xp: Array, w: Array, stride: int, tap_weight_grad: bool) -> Array:
    """``_valid_conv_xla`` whose gradients take the faster XLA:CPU forms described above."""
    return _valid_conv_xla(xp, w, stride)


def _valid_conv_cpu_fwd(xp, w, stride, tap_weight_grad):
    return _valid_conv_xla(xp, w, stride), (xp, w)


def _valid_conv_cpu_bwd(stride, tap_weight_grad, res, dy):
    xp, w = res
    if stride > 1:
        dxp = _strided_input_grad(dy, w, stride, xp.shape[1], xp.shape[2])
    else:
        dxp = jax.vjp(lambda v: _valid_conv_xla(v, w, stride), xp)[1](dy)[0]
    if tap_weight_grad:
        dw = _tap_weight_grad(xp, dy, w.shape[0], stride)
    else:
        dw = jax.vjp(lambda v: _valid_conv_xla(xp, v, stride), w)[1](dy)[0]
    return dxp, dw.astype(w.dtype)


_valid_conv_cpu.defvjp(_valid_conv_cpu_fwd, _valid_conv_cpu_bwd)


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
