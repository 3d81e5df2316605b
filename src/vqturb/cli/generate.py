"""`vqturb generate`: forced 2D Navier–Stokes trajectories as a dataset (.mat folders or HDF5).

Numbers are parsed here (not by argparse) so that a bad value gives the same one-line error and
exit code 2 as every other input error.
"""

from __future__ import annotations

import argparse

from vqturb.errors import InputError

_DESCRIPTION = """\
Simulate forced 2D incompressible Navier–Stokes turbulence on [0, 2π)² in vorticity form,
  dω/dt + u·∇ω = ν∇²ω − αω + F + β∂ψ/∂x,  ν = 1/Re,  F = fky cos(fky y) + fkx cos(fkx x),
with a pseudo-spectral solver (2/3 dealiasing, integrating-factor RK4, trajectories batched with
vmap), spin up for --t_spinup, then save --n_save frames every --t_save.
Output (mat): OUT/traj_000/1.mat, 2.mat, ... with Omega (N×N float64) and time;
(h5): OUT/data.h5 in The Well's layout (t0_fields/vorticity [n_traj, n_t, N, N]).
OUT/generate.json records every parameter and the time step actually used."""


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "generate",
        help="simulate forced 2D turbulence and write a dataset (.mat or HDF5)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a = p.add_argument
    a("--out", required=True, metavar="DIR", help="output folder (new or empty, or --overwrite)")
    a("--n_traj", default="4", metavar="N", help="number of trajectories [4]")
    a("--resolution", default="256", metavar="N", help="grid points per side, even [256]")
    a("--re", default="1000", metavar="RE", help="Reynolds number, ν = 1/Re [1000]")
    a("--fkx", default="4", metavar="K", help="forcing wavenumber of fkx·cos(fkx·x); 0: off [4]")
    a("--fky", default="4", metavar="K", help="forcing wavenumber of fky·cos(fky·y); 0: off [4]")
    a("--alpha", default="0.1", metavar="A", help="linear drag coefficient α [0.1]")
    a("--beta", default="0", metavar="B", help="β-plane coefficient of +β∂ψ/∂x [0]")
    a("--dt", default="auto", metavar="DT", help="time step, or 'auto' from the CFL limit [auto]")
    a("--t_spinup", default="30", metavar="T", help="simulated time before saving [30]")
    a("--t_save", default="0.1", metavar="T", help="simulated time between saved frames [0.1]")
    a("--n_save", default="200", metavar="N", help="frames saved per trajectory [200]")
    a(
        "--save_resolution",
        default="same",
        metavar="M",
        help="side of the saved fields, by spectral truncation, or 'same' [same]",
    )
    a("--seed", default="0", metavar="S", help="random seed of the initial conditions [0]")
    a("--format", default="mat", metavar="{mat,h5}", help="output format: mat or h5 [mat]")
    a("--overwrite", action="store_true", help="replace a previous dataset in --out")
    p.set_defaults(func=run)
    return p


def _int(args: argparse.Namespace, name: str) -> int:
    s = getattr(args, name)
    try:
        return int(s)
    except ValueError:
        raise InputError(None, f"--{name}", repr(s), "an integer") from None


def _float(args: argparse.Namespace, name: str) -> float:
    s = getattr(args, name)
    try:
        return float(s)
    except ValueError:
        raise InputError(None, f"--{name}", repr(s), "a number") from None


def run(args: argparse.Namespace) -> int:
    from vqturb.data.generate import generate_dataset
    from vqturb.physics.solver import SolverConfig

    dt = None if args.dt.strip().lower() == "auto" else _float(args, "dt")
    same = args.save_resolution.strip().lower() == "same"
    save_resolution = None if same else _int(args, "save_resolution")
    physics = dict(
        resolution=_int(args, "resolution"),
        re=_float(args, "re"),
        alpha=_float(args, "alpha"),
        beta=_float(args, "beta"),
        fkx=_int(args, "fkx"),
        fky=_int(args, "fky"),
    )
    try:
        cfg = SolverConfig(**physics)
    except InputError as e:  # name the flag, as the user typed it
        raise InputError(None, f"--{e.what}", e.found, e.expected) from None
    meta = generate_dataset(
        args.out,
        cfg,
        n_traj=_int(args, "n_traj"),
        t_spinup=_float(args, "t_spinup"),
        t_save=_float(args, "t_save"),
        n_save=_int(args, "n_save"),
        dt=dt,
        save_resolution=save_resolution,
        seed=_int(args, "seed"),
        fmt=args.format,
        overwrite=args.overwrite,
    )
    p = meta["parameters"]
    print(
        f"wrote {p['n_traj']} trajectories × {p['n_save']} frames of "
        f"{p['save_resolution']}² ({args.format}) to {args.out} in {meta['wall_time_s']:.1f} s "
        f"(dt {meta['dt']:.3g}, max Courant number {meta['max_cfl']:.2f})"
    )
    return 0
