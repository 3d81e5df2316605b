"""`vqturb train-nsp`: train the next-scale predictor p(t1 | t0) on a tokens file.

Flag precedence: a flag given on the command line > ``--preset`` > the SPEC default. The model's
scales and vocabularies come from the tokens file; the run leaves ``<checkpoint_dir>/final.eqx``.
"""

from __future__ import annotations

import argparse
import json

from vqturb.cli import train_flags as flags

# SPEC defaults (../shared/SPEC.md, "Next-Scale Prediction", "Key arguments").
MODEL_DEFAULTS = {"n_layer": 6, "n_head": 8, "n_embd": 256}
RUN_DEFAULTS = {"epochs": 100, "batch_size": 16, "save_every": 500, "val_every": 500}
OPTIM_DEFAULTS = {"optimizer": "lion", "lr": 1e-4}
# What --preset cpu changes: a small trunk that trains in minutes on 2 CPU cores (the model part
# is vqturb.models.nsp_config.PRESETS["cpu"]); Lion at 3e-4 is stable on it and learns in a few hundred
# steps (the SPEC's 1e-4 is tuned for long GPU runs).
TRAIN_PRESETS = {"cpu": {"lr": 3e-4, "batch_size": 16, "save_every": 200, "val_every": 200}}


def register(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train-nsp",
        help="train the next-scale prediction transformer on a tokens file",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--tokens_path", required=True, help="tokens.npz from `vqturb tokenizer save`")
    p.add_argument(
        "--vqvae_checkpoint",
        required=True,
        help="the VQ-VAE checkpoint that produced the tokens (its SHA-256 must match the tokens')",
    )
    p.add_argument("--n_layer", type=int, help="transformer blocks (default 6)")
    p.add_argument("--n_head", type=int, help="attention heads (default 8)")
    p.add_argument("--n_embd", type=int, help="embedding width (default 256)")
    p.add_argument("--dropout", type=float, default=0.0, help="dropout probability (default 0)")
    p.add_argument(
        "--t0_same_position",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add t0's token at the same position to every t1 position, so that copying t0 "
        "where nothing moved needs no attention (--no-t0_same_position: the seed's design, t0 "
        "through attention only) [NSPConfig default]",
    )
    p.add_argument(
        "--copy_prior",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add a learned copy-t0 prior to every scale's logits (t0's token at the same "
        "position, and its codebook neighbours), initialised at the training pairs' copy rate "
        "[NSPConfig default]",
    )
    p.add_argument(
        "--query_attention",
        choices=["self", "none"],
        default=None,
        help="what the positions of the t1 scale being predicted see besides t0 and the coarser "
        "scales: each other ('self') or nothing more ('none': strictly earlier scales, the "
        "SPEC's rule and the seed's) [NSPConfig default: self]",
    )
    p.add_argument(
        "--mlp",
        choices=["gelu", "swiglu"],
        default=None,
        help="the blocks' MLP: GPT-2's GELU or the seed's SwiGLU (same parameter count) "
        "[NSPConfig default: gelu]",
    )
    flags.add_run_flags(p, RUN_DEFAULTS, "nsp")
    flags.add_optim_flags(p, OPTIM_DEFAULTS)
    p.add_argument("--dt", type=int, default=1, help="pair spacing in time steps (default 1)")
    p.add_argument(
        "--all_scales",
        action="store_true",
        help="train every trainable scale in one forward pass (default: one drawn scale per step)",
    )
    p.add_argument(
        "--val_fraction",
        type=float,
        default=0.1,
        help="validation share, for tokens files that record no split (default 0.1)",
    )
    p.add_argument("--preset", choices=["cpu"], help="a small model that trains on 2 CPU cores")
    flags.add_distributed_flags(p)
    p.set_defaults(func=run)
    return p


def resolve_configs(args: argparse.Namespace, tokens):
    """(NSPConfig, NSPTrainConfig) from SPEC defaults, then the preset, then the flags given."""
    from vqturb.errors import InputError
    from vqturb.models.nsp_config import PRESETS, NSPConfig
    from vqturb.training.nsp_task import NSPTrainConfig

    model = dict(MODEL_DEFAULTS)
    preset = TRAIN_PRESETS[args.preset] if args.preset else {}
    if args.preset:
        model.update(PRESETS[args.preset])
    model.update({k: getattr(args, k) for k in MODEL_DEFAULTS if getattr(args, k) is not None})
    try:
        model_cfg = NSPConfig.from_tokens(
            tokens.fields,
            dropout=args.dropout,
            t0_same_position=args.t0_same_position,
            copy_prior=args.copy_prior,
            query_attention=args.query_attention,
            mlp=args.mlp,
            **model,
        )
    except ValueError as e:  # the configuration's own checks (n_head | n_embd, dropout range)
        raise InputError(
            None, "--n_layer/--n_head/--n_embd/--dropout", str(e), "a valid NSP configuration"
        ) from None
    train_cfg = NSPTrainConfig(
        tokens_path=args.tokens_path,
        vqvae_checkpoint=args.vqvae_checkpoint,
        run=flags.run_config(args, RUN_DEFAULTS, preset),
        optim=flags.optim_config(args, OPTIM_DEFAULTS, preset),
        dt=args.dt,
        all_scales=args.all_scales,
        val_fraction=args.val_fraction,
    )
    return model_cfg, train_cfg


def run(args: argparse.Namespace) -> int:
    from vqturb.data.tokens_file import TokensFile
    from vqturb.training.nsp_task import train_nsp

    flags.start_processes(args)
    tokens = TokensFile.read(args.tokens_path)
    model_cfg, train_cfg = resolve_configs(args, tokens)
    result = train_nsp(model_cfg, train_cfg, tokens)
    print(f"final model: {result.final_path}")
    if result.val_metrics:
        print("validation: " + json.dumps({k: round(v, 4) for k, v in result.val_metrics.items()}))
    return 0
