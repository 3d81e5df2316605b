"""`vqturb bench rollout`: NSP rollout frames/s (tokens, decoded) against the generator's solver.

Registered in :data:`vqturb.cli.bench.BENCHES`; library function
:func:`vqturb.evaluation.bench_rollout.benchmark_rollout`.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "rollout",
        help="rollout frames/s in token space and decoded, vs the solver at the same resolution",
        description=(
            "Measure, in one run on one device: NSP rollout frames/s in token space, VQ-VAE "
            "decoding frames/s, both together, and the pseudo-spectral solver producing the same "
            "saved interval (t_save) at the same resolution for the same number of "
            "trajectories; print one JSON line with the ratios (emulator / solver). Without "
            "checkpoints, untrained models of --preset are timed (weights do not change the cost)."
        ),
    )
    p.add_argument("--nsp_checkpoint", default=None, help="NSP checkpoint [untrained --preset]")
    p.add_argument("--vqvae_checkpoint", default=None, help="VQ-VAE checkpoint [untrained]")
    p.add_argument("--tokens_path", default=None, help="tokens file (starting frames, layout)")
    p.add_argument(
        "--data_dir",
        default=None,
        help="generated dataset: generate.json gives Re, forcing, t_save, dt; snapshots set the "
        "velocity scale of the solver's stable time step",
    )
    p.add_argument("--preset", choices=["cpu", "spec"], default="cpu", help="untrained sizes [cpu]")
    p.add_argument("--resolution", type=int, default=None, help="untrained VQ-VAE field size")
    p.add_argument("--batch", type=int, default=4, help="trajectories advanced together [4]")
    p.add_argument("--n_steps", type=int, default=10, help="frames per timed rollout [10]")
    p.add_argument("--repeats", type=int, default=3, help="timed calls after warm-up [3]")
    p.add_argument("--t_save", type=float, default=None, help="saved interval [generate.json|0.1]")
    p.add_argument("--re", type=float, default=None, help="Reynolds number [generate.json|1000]")
    p.add_argument("--dt", type=float, default=None, help="solver step [stable step of the flow]")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed [0]")
    p.add_argument("--output", default=None, help="also write the JSON result to this file")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import json

    from vqturb.evaluation.bench_rollout import benchmark_rollout
    from vqturb.utils.fileio import atomic_write_json

    res = benchmark_rollout(
        nsp_checkpoint=args.nsp_checkpoint,
        vqvae_checkpoint=args.vqvae_checkpoint,
        tokens_path=args.tokens_path,
        data_dir=args.data_dir,
        preset=args.preset,
        resolution=args.resolution,
        batch=args.batch,
        n_steps=args.n_steps,
        repeats=args.repeats,
        t_save=args.t_save,
        re=args.re,
        dt=args.dt,
        seed=args.seed,
    )
    if args.output:
        atomic_write_json(args.output, res)
    short = {k: v for k, v in res.items() if k != "model_config"}
    print(json.dumps(short, sort_keys=True, default=str))
    return 0
