"""Flags both trainers share: run length and cadence, optimiser and schedule, processes.

Each trainer passes its own defaults (the SPEC's: Adam 1e-4 for the VQ-VAE, Lion 1e-4 for the
NSP); a flag given on the command line wins over ``--preset``, which wins over the default.
The defaults are written once, in the config dataclasses and the trainers' default tables.
"""

from __future__ import annotations

import argparse

from vqturb.training.optim import OPTIMIZERS, SCHEDULES, OptimConfig

# Run settings every trainer resolves the same way: SPEC default < preset < flag.
RUN_FIELDS = ("epochs", "batch_size", "save_every", "val_every")
OPTIM_FIELDS = (
    "optimizer",
    "lr",
    "weight_decay",
    "warmup_steps",
    "lr_schedule",
    "lr_min_ratio",
    "grad_clip",
)


def add_run_flags(p: argparse.ArgumentParser, defaults: dict, name: str) -> None:
    """``--checkpoint_dir --epochs --batch_size --seed --save_every --val_every --log_every
    --resume --overwrite --max_steps --keep_checkpoints --wandb_project --wandb_name --no_progress``."""
    p.add_argument(
        "--checkpoint_dir", default=f"runs/{name}", help=f"run folder (default runs/{name})"
    )
    p.add_argument(
        "--epochs", type=int, help=f"passes over the training data (default {defaults['epochs']})"
    )
    p.add_argument(
        "--batch_size",
        type=int,
        help=f"global batch, split over devices and processes (default {defaults['batch_size']})",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--save_every",
        type=int,
        help=f"checkpoint period in steps (default {defaults['save_every']})",
    )
    p.add_argument(
        "--val_every",
        type=int,
        help=f"validation period in steps (default {defaults['val_every']})",
    )
    p.add_argument(
        "--log_every",
        type=int,
        default=10,
        help="metrics period in steps; records are window means (default 10)",
    )
    p.add_argument(
        "--resume",
        default=None,
        help="'auto' (newest checkpoint in --checkpoint_dir) or a ckpt_*.eqx path",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the run files another run left in --checkpoint_dir and start afresh "
        "(without it, or --resume, such a folder is refused)",
    )
    p.add_argument("--max_steps", type=int, default=None, help="stop after this many steps")
    p.add_argument(
        "--keep_checkpoints", type=int, default=3, help="step checkpoints kept (default 3)"
    )
    p.add_argument(
        "--wandb_project",
        default=None,
        help="also log to this wandb project (if wandb is installed)",
    )
    p.add_argument("--wandb_name", default=None, help="wandb run name")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")


def add_optim_flags(p: argparse.ArgumentParser, defaults: dict) -> None:
    """``--optimizer --lr --weight_decay --warmup_steps --lr_schedule --lr_min_ratio --grad_clip``."""
    d = {**OptimConfig().__dict__, **defaults}
    p.add_argument("--optimizer", choices=OPTIMIZERS, help=f"optimiser (default {d['optimizer']})")
    p.add_argument("--lr", type=float, help=f"peak learning rate (default {d['lr']:g})")
    p.add_argument(
        "--weight_decay",
        type=float,
        help=f"decoupled weight decay, adamw/lion (default {d['weight_decay']:g})",
    )
    p.add_argument(
        "--warmup_steps",
        type=int,
        help=f"linear learning-rate warm-up from 0 (default {d['warmup_steps']})",
    )
    p.add_argument(
        "--lr_schedule", choices=SCHEDULES,
        help=f"after warm-up: constant, or cosine decay to lr_min_ratio x lr over the run (default {d['lr_schedule']})",
    )  # fmt: skip
    p.add_argument(
        "--lr_min_ratio",
        type=float,
        help=f"cosine floor as a fraction of --lr (default {d['lr_min_ratio']:g})",
    )
    p.add_argument(
        "--grad_clip",
        type=float,
        help=f"global gradient-norm clip, 0 = none (default {d['grad_clip']:g})",
    )


def add_mirror_sign_flag(p: argparse.ArgumentParser) -> None:
    """``--mirror_sign`` of the symmetry augmentations (train-vqvae, tokenizer save)."""
    p.add_argument(
        "--mirror_sign",
        type=float,
        choices=[-1.0, 1.0],
        default=-1.0,
        help="sign of a mirrored field: -1 for a pseudo-scalar such as vorticity, 1 for a scalar "
        "(default -1)",
    )


def add_distributed_flags(p: argparse.ArgumentParser) -> None:
    """``--coordinator_address --num_processes --process_id`` (JAX's cluster detection without)."""
    p.add_argument(
        "--coordinator_address",
        default=None,
        help="HOST:PORT of process 0, for a multi-process run",
    )
    p.add_argument(
        "--num_processes", type=int, default=None, help="processes in a multi-process run"
    )
    p.add_argument(
        "--process_id", type=int, default=None, help="this process's index, 0 .. num_processes-1"
    )


def resolve(args: argparse.Namespace, fields: tuple[str, ...], *tables: dict) -> dict:
    """For each of ``fields``: the flag if given, else the last table that has it."""
    out: dict = {}
    for table in tables:
        out.update({k: v for k, v in table.items() if k in fields})
    out.update({k: getattr(args, k) for k in fields if getattr(args, k, None) is not None})
    return out


def optim_config(args: argparse.Namespace, *tables: dict) -> OptimConfig:
    """The :class:`OptimConfig` of the flags over the defaults and preset tables given."""
    kw = resolve(args, OPTIM_FIELDS, *tables)
    if kw.get("grad_clip") == 0:
        kw["grad_clip"] = None
    return OptimConfig(**kw)


def run_config(args: argparse.Namespace, *tables: dict):
    """The :class:`RunConfig` of the flags over the defaults and preset tables given."""
    from vqturb.training.loop import RunConfig

    return RunConfig(
        checkpoint_dir=args.checkpoint_dir, seed=args.seed, log_every=args.log_every, resume=args.resume,
        overwrite=args.overwrite,
        max_steps=args.max_steps, keep_checkpoints=args.keep_checkpoints, wandb_project=args.wandb_project,
        wandb_name=args.wandb_name, progress=not args.no_progress, **resolve(args, RUN_FIELDS, *tables),
    )  # fmt: skip


def start_processes(args: argparse.Namespace) -> None:
    """Start JAX's distributed runtime when the flags (or the cluster) ask for it."""
    from vqturb.training.distributed import DistributedConfig, initialize

    initialize(DistributedConfig(args.coordinator_address, args.num_processes, args.process_id))
