"""Solver throughput: vqturb's IF-RK4 pseudo-spectral solver vs jax-cfd's spectral solver.

Both integrate forced 2D Navier–Stokes in vorticity form on [0, 2π)² from the same initial field
with the same time step, Re = 1000 (ν = 1e-3), drag 0.1 and forcing at k = 4, with 2/3
dealiasing, jitted, ``lax.scan`` over ``--inner`` steps, trajectories batched with ``vmap``.
jax-cfd: ``jax_cfd.spectral.equations.ForcedNavierStokes2D`` (Kochkov et al. 2021) stepped by
``crank_nicolson_rk4`` (Carpenter–Kennedy low-storage RK4 + Crank–Nicolson, 5 stages).
vqturb: :func:`vqturb.physics.solver.advance_batch` (classical RK4 with an exact integrating
factor, 4 stages), with its default CPU chunking of the batch (``default_chunk``); when that
chunks, one ``vmap`` over the whole batch is timed too. Both are fourth order for advection.

Prints one JSON line per (grid, batch): steps/s (one step advances every trajectory of the
batch), trajectory-steps/s, and the ratio vqturb / jax-cfd, medians over ``--repeats`` timed
calls after a compiling call; the solvers are timed in turn so they share the background load.

    .venv/bin/python benchmarks/bench_solver.py [--grids 128,256 --batches 1,8 --repeats 7]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp

from vqturb.physics import solver, spectral


def _time_interleaved(runs: dict, repeats: int) -> dict:
    """Median seconds per call of each ``name: (fn, x)``, timing the candidates in turn so that
    they see the same background load (the machine is shared and its load swings)."""
    for fn, x in runs.values():
        jax.block_until_ready(fn(x))  # compile + one run
    times: dict = {name: [] for name in runs}
    for _ in range(repeats):
        for name, (fn, x) in runs.items():
            t = time.perf_counter()
            jax.block_until_ready(fn(x))
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _jax_cfd_runner(n: int, dt: float, inner: int):
    import jax_cfd.base as cfd
    from jax_cfd.spectral import equations, time_stepping

    grid = cfd.grids.Grid((n, n), domain=((0, 2 * math.pi), (0, 2 * math.pi)))
    eq = equations.ForcedNavierStokes2D(viscosity=1e-3, grid=grid, smooth=True)
    step = time_stepping.crank_nicolson_rk4(eq, dt)
    many = cfd.funcutils.repeated(step, inner)
    return jax.jit(jax.vmap(many))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grids", default="128,256", help="grid sizes [128,256]")
    ap.add_argument("--batches", default="1,8", help="trajectories per batch [1,8]")
    ap.add_argument("--inner", type=int, default=20, help="steps per timed call [20]")
    ap.add_argument("--repeats", type=int, default=7, help="timed calls, median reported [7]")
    args = ap.parse_args()

    for n in (int(s) for s in args.grids.split(",")):
        cfg = solver.SolverConfig(resolution=n, re=1000.0, alpha=0.1, fkx=0, fky=4)
        # The step vqturb's auto rule gives for U = max(|u|+|v|) = 7 (a developed Kolmogorov
        # flow at this Re; jax-cfd's examples use max_velocity = 7 too).
        dt = solver.stable_dt(7.0, cfg)
        for b in (int(s) for s in args.batches.split(",")):
            keys = jax.random.split(jax.random.PRNGKey(0), b)
            omega0 = jax.vmap(lambda k, n=n: spectral.random_vorticity(k, n))(keys)
            ours_state = solver.to_state(omega0, cfg)
            runs = {
                "ours": (
                    lambda s, cfg=cfg, dt=dt: solver.advance_batch(
                        s, dt, n_steps=args.inner, cfg=cfg
                    ),
                    ours_state,
                ),
                "ref": (
                    _jax_cfd_runner(n, dt, args.inner),
                    jnp.fft.rfftn(omega0, axes=(-2, -1)),
                ),
            }
            if (solver.default_chunk(n) or b) < b:  # also time one vmap over the whole batch
                runs["vmap"] = (
                    lambda s, cfg=cfg, dt=dt, b=b: solver.advance_batch(
                        s, dt, n_steps=args.inner, cfg=cfg, chunk=b
                    ),
                    ours_state,
                )
            t = _time_interleaved(runs, args.repeats)
            t_ours, t_ref, t_vmap = t["ours"], t["ref"], t.get("vmap", t["ours"])
            ours = args.inner / t_ours
            ref = args.inner / t_ref
            print(
                json.dumps(
                    {
                        "bench": "solver",
                        "grid": n,
                        "batch": b,
                        "dt": round(dt, 6),
                        "inner_steps": args.inner,
                        "repeats": args.repeats,
                        "vqturb_steps_per_s": round(ours, 2),
                        "jaxcfd_steps_per_s": round(ref, 2),
                        "vqturb_traj_steps_per_s": round(ours * b, 2),
                        "jaxcfd_traj_steps_per_s": round(ref * b, 2),
                        "vqturb_chunk": solver.default_chunk(n),
                        "vqturb_single_vmap_steps_per_s": round(args.inner / t_vmap, 2),
                        "ratio_vqturb_over_jaxcfd": round(ours / ref, 3),
                        "device": str(jax.devices()[0]),
                        "cpus": os.cpu_count(),
                        "machine": platform.machine(),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
