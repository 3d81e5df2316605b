"""Conv-trunk kernels on XLA:CPU: the library's gradient forms against XLA's own, layer by layer.

For the layer shapes of the SPEC default VQ-VAE at 256², batch 4 (and a few of the cpu preset),
times forward+backward (gradients with respect to input and weights) of

* ``conv``      -- a 3×3 conv, stride 1 or 2: XLA's gradients (``_valid_conv_xla``) against the
  CPU forms (``_valid_conv_cpu``: tap-wise weight gradient, polyphase input gradient of strided
  convs);
* ``upsample``  -- nearest ×2 upsampling then a 3×3 conv, against ``Conv2d.upsampled`` (the same
  function as four 2×2 convs on the coarse grid);
* ``pair``      -- the encoder's ``conv_in`` (``cin`` → ``cout``) then its first stride-2 conv
  (``cout`` → ``cout``), one after the other, against ``conv_pair`` (one composed kernel);
* ``groupnorm`` -- GroupNorm + SiLU, the two-pass form over a [b, h, w, groups, c/g] view against
  ``GroupNorm`` (one-pass shifted per-channel statistics).

The two variants of each row run back to back, ``--repeats`` times each, and the medians and their
ratio are printed (one JSON line per row on stdout, a table on stderr). GFLOP/s counts a layer's
nominal multiply-adds (for ``upsample``, those of the conv on the fine grid, so the sub-pixel form
can exceed the machine's matmul rate). The figures quoted in
``vqturb/models/conv_cpu_grad.py`` and ``vqturb/models/norm.py`` come from this script.

    .venv/bin/python benchmarks/bench_conv_grad.py [--batch 4] [--repeats 5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr

from vqturb.models import conv, conv_cpu_grad
from vqturb.models.conv import Conv2d, conv_pair, upsample_nearest2x
from vqturb.models.norm import GroupNorm

# (kind, size, cin, cout, stride): the SPEC default trunk at 256² (downsample-first layout)
SPEC_ROWS = [
    ("conv", 128, 128, 128, 1),
    ("conv", 64, 256, 256, 1),
    ("conv", 32, 512, 512, 1),
    ("conv", 16, 512, 512, 1),
    ("conv", 256, 128, 128, 2),
    ("conv", 128, 128, 256, 2),
    ("upsample", 128, 128, 128, 1),
    ("upsample", 64, 256, 128, 1),
    ("upsample", 32, 512, 256, 1),
    ("groupnorm", 128, 128, 128, 1),
    ("groupnorm", 256, 128, 128, 1),
    ("pair", 256, 1, 128, 2),
]
# the cpu preset's widths at 64² (the thresholds keep XLA's gradients for most of them)
CPU_ROWS = [
    ("conv", 32, 32, 32, 1),
    ("conv", 64, 32, 64, 2),
    ("upsample", 32, 64, 32, 1),
    ("groupnorm", 64, 32, 32, 1),
]


def median_time(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def two_pass_group_norm(gn: GroupNorm, x):
    b, h, w, c = x.shape
    xg = x.reshape(b, h, w, gn.groups, c // gn.groups)
    mean = jnp.mean(xg, axis=(1, 2, 4), keepdims=True)
    var = jnp.mean(jnp.square(xg - mean), axis=(1, 2, 4), keepdims=True)
    y = ((xg - mean) * jax.lax.rsqrt(var + gn.eps)).reshape(b, h, w, c)
    return y * gn.weight + gn.bias


def variants(kind: str, batch: int, size: int, cin: int, cout: int, stride: int):
    """(inputs, reference fn, library fn, forward GFLOP) for one row."""
    key = jr.PRNGKey(0)
    if kind == "groupnorm":
        gn = GroupNorm(cin)
        x = jr.normal(key, (batch, size, size, cin))
        return (
            (x,),
            lambda x: jnp.sum(jax.nn.silu(two_pass_group_norm(gn, x)) ** 2),
            lambda x: jnp.sum(jax.nn.silu(gn(x)) ** 2),
            0.0,
        )
    if kind == "pair":
        first = Conv2d(cin, cout, 3, key=key)
        second = Conv2d(cout, cout, 3, stride=stride, key=jr.PRNGKey(1))
        x = jr.normal(key, (batch, size, size, cin))
        out = (size - 1) // stride + 1
        gflop = 2 * batch * (size**2 * 9 * cin * cout + out**2 * 9 * cout * cout) / 1e9
        return (
            ((first, second),),
            lambda p: jnp.sum(p[1](p[0](x)) ** 2),
            lambda p: jnp.sum(conv_pair(p[0], p[1], x) ** 2),
            gflop,
        )
    conv = Conv2d(cin, cout, 3, stride=stride, key=key)
    if kind == "upsample":
        x = jr.normal(key, (batch, size, size, cin))
        gflop = 2 * batch * (2 * size) ** 2 * 9 * cin * cout / 1e9
        return (
            (x, conv.weight),
            lambda x, w: jnp.sum(_xla_conv(upsample_nearest2x(x), w, 1) ** 2),
            lambda x, w: jnp.sum(eqx_replace_weight(conv, w).upsampled(x) ** 2),
            gflop,
        )
    xp = jr.normal(key, (batch, size + 2, size + 2, cin))
    out = (size - 1) // stride + 1
    gflop = 2 * batch * out**2 * 9 * cin * cout / 1e9
    return (
        (xp, conv.weight),
        lambda xp, w: jnp.sum(conv_cpu_grad.valid_conv_xla(xp, w, stride) ** 2),
        lambda xp, w: jnp.sum(conv._valid_conv(xp, w, stride) ** 2),
        gflop,
    )


def _xla_conv(x, w, stride):
    return conv_cpu_grad.valid_conv_xla(conv._pad(x, 1, "circular"), w, stride)


def eqx_replace_weight(conv: Conv2d, w) -> Conv2d:
    return eqx.tree_at(lambda c: c.weight, conv, w)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="cpu-preset rows only (seconds)")
    args = ap.parse_args(argv)
    rows = CPU_ROWS if args.quick else SPEC_ROWS + CPU_ROWS
    print(
        f"{'layer':38s} {'XLA/ref ms':>10s} {'vqturb ms':>10s} {'speedup':>8s} {'GFLOP/s':>8s}",
        file=sys.stderr,
    )
    for kind, size, cin, cout, stride in rows:
        batch = args.batch
        inputs, ref, lib, gflop = variants(kind, batch, size, cin, cout, stride)
        argnums = tuple(range(len(inputs)))
        t_ref = median_time(jax.jit(jax.grad(ref, argnums)), *inputs, repeats=args.repeats)
        t_lib = median_time(jax.jit(jax.grad(lib, argnums)), *inputs, repeats=args.repeats)
        name = f"{kind} {batch}x{size}²x{cin}->{cout} s{stride}"
        rate = 3 * gflop / t_lib if gflop else None
        row = {
            "layer": name,
            "reference_ms": round(t_ref * 1e3, 1),
            "vqturb_ms": round(t_lib * 1e3, 1),
            "speedup": round(t_ref / t_lib, 2),
            "vqturb_gflops": round(rate, 1) if rate else None,
            "backend": jax.default_backend(),
        }
        print(json.dumps(row))
        print(
            f"{name:38s} {t_ref * 1e3:10.1f} {t_lib * 1e3:10.1f} {t_ref / t_lib:7.2f}x "
            f"{rate or 0:8.1f}",
            file=sys.stderr,
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
