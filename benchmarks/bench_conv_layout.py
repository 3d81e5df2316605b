"""Conv layout benchmark: batched NHWC ``vqturb.models.conv.Conv2d`` vs vmapped ``eqx.nn.Conv2d``.

The same small encoder-decoder trunk (conv_in, per stage a residual pair of 3×3 convs and a
stride-2 conv; the mirror with nearest ×2 upsampling; no norm so only the conv layout differs) is
built twice: once from ``eqx.nn.Conv2d`` applied per sample under ``jax.vmap`` (NCHW), once from the
batched NHWC ``Conv2d``. Each runs a jitted forward+backward+Adam step; prints images/s medians and
the ratio against the vmapped-eqx reference measured in the same run, for zero and circular
padding.

    .venv/bin/python benchmarks/bench_conv_layout.py [--res 64 --batch 8 --base 32 --steps 20]

With ``--preset cpu|default`` it instead times the full library model (VQVAE2d, or VARVQVAE2d with
``--var``) of that preset at its resolution: forward+backward+Adam+EMA, images/s and ms/step.

    .venv/bin/python benchmarks/bench_conv_layout.py --preset cpu --batch 8
    .venv/bin/python benchmarks/bench_conv_layout.py --preset default --batch 4 --steps 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax

from vqturb.models.conv import Conv2d, upsample_nearest2x


class EqxTrunk(eqx.Module):
    """Per-sample NCHW trunk from eqx.nn.Conv2d; call under vmap."""

    convs: list
    n_stages: int = eqx.field(static=True)

    def __init__(self, base, mult, padding_mode, *, key):
        keys = iter(jr.split(key, 64))
        pm = "CIRCULAR" if padding_mode == "circular" else "ZEROS"

        def conv(i, o, s=1):
            return eqx.nn.Conv2d(i, o, 3, stride=s, padding=1, padding_mode=pm, key=next(keys))

        chans = [base * m for m in mult]
        cs = [conv(1, chans[0])]
        c = chans[0]
        for co in chans:
            cs += [conv(c, co), conv(co, co), conv(co, co, 2)]
            c = co
        for co in reversed(chans):
            cs += [conv(c, co), conv(co, co), conv(co, co)]
            c = co
        cs.append(conv(c, 1))
        self.convs = cs
        self.n_stages = len(mult)

    def __call__(self, x):  # [1, H, W]
        it = iter(self.convs)
        h = next(it)(x)
        for _ in range(self.n_stages):
            a = next(it)(jax.nn.silu(h))
            h = a + next(it)(jax.nn.silu(a))
            h = next(it)(h)
        for _ in range(self.n_stages):
            h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
            a = next(it)(h)
            h = a + next(it)(jax.nn.silu(next(it)(jax.nn.silu(a))))
        return next(it)(jax.nn.silu(h))


class NHWCTrunk(eqx.Module):
    """The same trunk from the batched NHWC Conv2d."""

    convs: list
    n_stages: int = eqx.field(static=True)

    def __init__(self, base, mult, padding_mode, *, key):
        keys = iter(jr.split(key, 64))

        def conv(i, o, s=1):
            return Conv2d(i, o, 3, stride=s, padding_mode=padding_mode, key=next(keys))

        chans = [base * m for m in mult]
        cs = [conv(1, chans[0])]
        c = chans[0]
        for co in chans:
            cs += [conv(c, co), conv(co, co), conv(co, co, 2)]
            c = co
        for co in reversed(chans):
            cs += [conv(c, co), conv(co, co), conv(co, co)]
            c = co
        cs.append(conv(c, 1))
        self.convs = cs
        self.n_stages = len(mult)

    def __call__(self, x):  # [B, H, W, 1]
        it = iter(self.convs)
        h = next(it)(x)
        for _ in range(self.n_stages):
            a = next(it)(jax.nn.silu(h))
            h = a + next(it)(jax.nn.silu(a))
            h = next(it)(h)
        for _ in range(self.n_stages):
            h = upsample_nearest2x(h)
            a = next(it)(h)
            h = a + next(it)(jax.nn.silu(next(it)(jax.nn.silu(a))))
        return next(it)(jax.nn.silu(h))


def make_step(model, apply, x):
    """Compile a forward+backward+Adam step; returns a closure running one step (timed)."""
    opt = optax.adam(1e-3)
    carry = [model, opt.init(eqx.filter(model, eqx.is_inexact_array))]

    @eqx.filter_jit
    def step(model, state, x):
        def loss_fn(m):
            return jnp.mean(jnp.square(apply(m, x) - x))

        loss, g = eqx.filter_value_and_grad(loss_fn)(model)
        upd, state = opt.update(g, state, eqx.filter(model, eqx.is_inexact_array))
        return eqx.apply_updates(model, upd), state, loss

    def run():
        t0 = time.perf_counter()
        m, st, loss = step(carry[0], carry[1], x)
        jax.block_until_ready(loss)
        carry[:] = [m, st]
        return time.perf_counter() - t0

    run()  # compile
    return run


def interleaved(runs: dict, steps: int) -> dict:
    """Median seconds per step, variants run in turn so that load from other jobs hits all alike."""
    times = {k: [] for k in runs}
    for _ in range(steps):
        for k, r in runs.items():
            times[k].append(r())
    return {k: statistics.median(v) for k, v in times.items()}


def bench_preset(
    name: str, batch: int, steps: int, var: bool, padding_mode: str | None, dsf: bool = False
) -> dict:
    """The library model of preset ``name``, timed by ``vqturb bench train``'s ``bench_train``
    (the trainer's own jitted step: forward, backward, Adam, EMA codebook update)."""
    from vqturb.models import VQVAEConfig
    from vqturb.training.bench import bench_train

    over = {"var_mode": True} if var else {}
    if dsf:
        over["downsample_first"] = True
    if padding_mode:
        over["padding_mode"] = padding_mode
    cfg = VQVAEConfig.preset(name, **over)
    r = bench_train(cfg, resolution=cfg.resolution, batch_size=batch, steps=steps)
    return {
        "preset": name,
        "padding_mode": cfg.padding_mode,
        "downsample_first": cfg.downsample_first,
        **r,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--base", type=int, default=32)
    p.add_argument("--mult", default="1,2,2")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--preset", choices=["cpu", "default"], help="time the library model instead")
    p.add_argument("--var", action="store_true", help="with --preset: VARVQVAE2d")
    p.add_argument("--padding_mode", choices=["zeros", "circular"], help="with --preset")
    p.add_argument("--downsample_first", action="store_true", help="with --preset")
    a = p.parse_args(argv)
    if a.preset:
        print(
            json.dumps(
                bench_preset(a.preset, a.batch, a.steps, a.var, a.padding_mode, a.downsample_first)
            )
        )
        return
    mult = tuple(int(m) for m in a.mult.split(","))
    key = jr.PRNGKey(0)
    x = jr.normal(key, (a.batch, a.res, a.res))
    res = {
        "res": a.res,
        "batch": a.batch,
        "base": a.base,
        "mult": list(mult),
        "device": str(jax.devices()[0]),
    }
    runs = {}
    for pm in ("zeros", "circular"):
        eqx_m = EqxTrunk(a.base, mult, pm, key=key)
        nhwc_m = NHWCTrunk(a.base, mult, pm, key=key)
        runs[f"eqx_vmap_nchw_{pm}"] = make_step(
            eqx_m, lambda m, x: jax.vmap(m)(x[:, None])[:, 0], x
        )
        runs[f"nhwc_batched_{pm}"] = make_step(nhwc_m, lambda m, x: m(x[..., None])[..., 0], x)
    med = interleaved(runs, a.steps)
    for k, t in med.items():
        res[f"{k}_img_s"] = round(a.batch / t, 2)
    for pm in ("zeros", "circular"):
        res[f"ratio_nhwc_over_eqx_{pm}"] = round(
            med[f"eqx_vmap_nchw_{pm}"] / med[f"nhwc_batched_{pm}"], 2
        )
    res["circular_cost_nhwc"] = round(med["nhwc_batched_circular"] / med["nhwc_batched_zeros"], 2)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
