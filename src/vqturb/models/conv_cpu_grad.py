"""Faster gradients of the VALID convolution on XLA:CPU (custom VJPs); the forward pass is XLA's.

``valid_conv_xla`` is the plain XLA convolution every conv layer runs; ``valid_conv_cpu`` is the
same function with the gradient forms below, which ``vqturb.models.conv`` selects on XLA:CPU for
wide layers on large grids and for strided layers. Other backends keep XLA's gradients.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array


def valid_conv_xla(xp: Array, w: Array, stride: int) -> Array:
    """Unpadded ("VALID") cross-correlation of a padded NHWC batch ``xp`` with an HWIO kernel
    ``w`` at ``stride``, by XLA (whose own gradients it keeps)."""
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
# kernel's polyphase sub-kernels, interleaved (the transpose of
# the sub-pixel form of ``Conv2d.upsampled``).
#
# Other backends keep XLA's gradients (cuDNN's kernels are fast).
_TAP_GRAD_MIN_CHANNELS = 96
_TAP_GRAD_MIN_ROWS = 8192
_TAP_GRAD_CHUNK_ROWS = 4096


def use_tap_weight_grad(rows: int, cin: int, cout: int) -> bool:
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
            row.append(valid_conv_xla(jnp.pad(dy, pad), flipped, 1))
        phases.append(jnp.stack(row, axis=3))  # [n, rows, cols, b, cin]
    full = jnp.stack(phases, axis=2)  # [n, rows, a, cols, b, cin]
    return full.reshape(n, rows_out * s, cols_out * s, -1)[:, :hp, :wp]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def valid_conv_cpu(xp: Array, w: Array, stride: int, tap_weight_grad: bool) -> Array:
    """``valid_conv_xla`` whose gradients take the faster XLA:CPU forms described above."""
    return valid_conv_xla(xp, w, stride)


def _valid_conv_cpu_fwd(xp, w, stride, tap_weight_grad):
    return valid_conv_xla(xp, w, stride), (xp, w)


def _valid_conv_cpu_bwd(stride, tap_weight_grad, res, dy):
    xp, w = res
    if stride > 1:
        dxp = _strided_input_grad(dy, w, stride, xp.shape[1], xp.shape[2])
    else:
        dxp = jax.vjp(lambda v: valid_conv_xla(v, w, stride), xp)[1](dy)[0]
    if tap_weight_grad:
        dw = _tap_weight_grad(xp, dy, w.shape[0], stride)
    else:
        dw = jax.vjp(lambda v: valid_conv_xla(xp, v, stride), w)[1](dy)[0]
    return dxp, dw.astype(w.dtype)


valid_conv_cpu.defvjp(_valid_conv_cpu_fwd, _valid_conv_cpu_bwd)
