"""`vqturb eval-nsp`: autoregressive rollouts t0 -> t_n, decoded, judged, drawn and reported.

Library function: :func:`vqturb.evaluation.rollout_eval.evaluate_nsp`.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "eval-nsp",
        help="roll out the NSP model from held-out frames, decode, and write metrics, figures, "
        "videos and report.html",
        description=(
            "Generate autoregressive rollouts (t0 -> t_n, each frame from the previous one) from "
            "test-split starting frames, decode them through the VQ-VAE, and write into "
            "--output_dir: side-by-side videos (generated | ground truth), the token "
            "trajectories (tokens_rollout.npz), per-scale token histograms with JS divergence "
            "and TV distance, pixel histograms, comparison grids, energy spectra, enstrophy and "
            "spectrum error against time, vorticity PDFs, forecast skill of single rollouts and of "
            "the ensemble mean against persistence (against the raw fields and in the decoder's "
            "space), the long-rollout physics checks, teacher-forced accuracy against copying t0 "
            "per scale, metrics.json and a self-contained report.html."
        ),
    )
    p.add_argument(
        "--nsp_checkpoint",
        default=None,
        help="NSP checkpoint from train-nsp (.eqx) [required unless --reanalyze]",
    )
    p.add_argument(
        "--vqvae_checkpoint",
        default=None,
        help="VQ-VAE checkpoint that made the tokens [required unless --reanalyze: the run's]",
    )
    p.add_argument(
        "--tokens_path",
        default=None,
        help="tokens file from `vqturb tokenizer save` [required unless --reanalyze: the run's]",
    )
    p.add_argument(
        "--reanalyze",
        default=None,
        metavar="DIR",
        help="recompute every metric, figure, video and report.html of a previous eval-nsp "
        "output folder from its tokens_rollout.npz, without generating (the VQ-VAE, tokens "
        "file, --data_dir and --value_range default to the run's; sampling flags are ignored)",
    )
    p.add_argument(
        "--n_samples",
        type=int,
        default=4,
        help="starting frames, dealt over the held-out trajectories [4]",
    )
    p.add_argument(
        "--n_ensemble",
        type=int,
        default=4,
        help="rollouts from each starting frame (n_samples x n_ensemble in all); the skill "
        "scores single rollouts and their mean, the ensemble-mean forecast [4]",
    )
    p.add_argument("--n_steps", type=int, default=100, help="frames generated after t0 [100]")
    p.add_argument(
        "--temperature", type=float, default=1.0, help="sampling temperature, 0 = greedy [1.0]"
    )
    p.add_argument("--top_k", type=int, default=None, help="keep the k most likely tokens [all]")
    p.add_argument("--top_p", type=float, default=None, help="nucleus sampling mass [1.0: off]")
    p.add_argument("--seed", type=int, default=0, help="sampling seed [0]")
    p.add_argument(
        "--data_dir",
        default=None,
        help="raw dataset the tokens came from: adds raw ground-truth comparisons",
    )
    p.add_argument("--var", default="Omega", help="variable in the raw files [Omega]")
    p.add_argument(
        "--output_dir", default=None, help="output folder [eval_nsp; with --reanalyze: DIR]"
    )
    p.add_argument(
        "--chunk", type=int, default=10, help="frames per jitted scan between progress updates [10]"
    )
    p.add_argument(
        "--skill_steps", type=int, default=10, help="steps scored against persistence [10]"
    )
    p.add_argument(
        "--value_range",
        default=None,
        help="LO,HI: the dataset's fixed vorticity range for pixel bins and colours; 'seed': "
        "the seed's fixed -10,10; 'auto': symmetric, from max |ground truth| of the rollouts "
        "[auto; with --reanalyze: the run's]",
    )
    p.add_argument("--fps", type=float, default=10.0, help="video frames per second [10]")
    p.add_argument("--no_progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from vqturb.errors import InputError
    from vqturb.evaluation.rollout_eval import evaluate_nsp, reanalyze_nsp

    value_range = args.value_range
    if value_range is not None and value_range not in ("seed", "auto"):
        try:
            lo, hi = (float(v) for v in args.value_range.split(","))
        except ValueError:
            raise InputError(
                None, "--value_range", args.value_range, "LO,HI, seed or auto"
            ) from None
        value_range = (lo, hi)  # LO < HI is checked by the library
    if args.reanalyze is not None:
        m = reanalyze_nsp(
            args.reanalyze,
            args.output_dir,
            vqvae_checkpoint=args.vqvae_checkpoint,
            tokens_path=args.tokens_path,
            data_dir=args.data_dir,
            var=args.var if args.data_dir is not None else None,
            value_range=value_range,
            skill_steps=args.skill_steps,
            fps=args.fps,
            progress=not args.no_progress,
        )
        _print_summary(m, Path(args.output_dir or args.reanalyze))
        return 0
    for flag in ("nsp_checkpoint", "vqvae_checkpoint", "tokens_path"):
        if getattr(args, flag) is None:
            raise InputError(None, f"--{flag}", "missing", "a path (required unless --reanalyze)")
    args.output_dir = args.output_dir or "eval_nsp"
    m = evaluate_nsp(
        args.nsp_checkpoint,
        args.vqvae_checkpoint,
        args.tokens_path,
        args.output_dir,
        n_samples=args.n_samples,
        n_ensemble=args.n_ensemble,
        n_steps=args.n_steps,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        data_dir=args.data_dir,
        var=args.var,
        chunk=args.chunk,
        skill_steps=args.skill_steps,
        fps=args.fps,
        value_range=value_range,
        progress=not args.no_progress,
    )
    _print_summary(m, Path(args.output_dir))
    return 0


def _print_summary(m: dict, out) -> None:
    width = max(len(k) for k in m["summary"])
    for k, v in m["summary"].items():
        print(f"{k:<{width}}  {v:.4g}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    print(f"wrote {out / 'metrics.json'} and {out / 'report.html'}")
