"""`vqturb train-vqvae`: train VQVAE2d or (``--var_mode``) VARVQVAE2d on a dataset.

Flag precedence: a flag given on the command line > ``--preset`` > the SPEC default.
"""

from __future__ import annotations

import argparse
import json

from vqturb.cli import train_flags as flags

# SPEC defaults (../shared/SPEC.md, "Key Hyperparameters" and "Training").
MODEL_DEFAULTS = {
    "hidden_dim": 512,
    "codebook_dim": 64,
    "vocab_size": 512,
    "commitment_weight": 0.25,
    "base_channels": 128,
    "channel_mult": (1, 2, 4, 4),
    "num_res_blocks": 2,
    "var_mode": False,
    "scales": (1, 2, 4, 8, 16),
    "decay": 0.99,
}
RUN_DEFAULTS = {"epochs": 100, "batch_size": 16, "save_every": 500, "val_every": 500}
OPTIM_DEFAULTS = {"optimizer": "adam", "lr": 1e-4}  # SPEC: Adam at 1e-4

# Training settings a preset changes besides the model (the model part is VQVAEConfig.preset).
TRAIN_PRESETS = {
    "cpu": {"batch_size": 8, "lr": 1e-3, "epochs": 20, "save_every": 200, "val_every": 200},
}


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def add_model_flags(p: argparse.ArgumentParser) -> None:
    """The SPEC's model flags (shared with `vqturb bench train`). Defaults are resolved later."""
    d = MODEL_DEFAULTS
    p.add_argument("--hidden_dim", type=int, help=f"bottleneck width (default {d['hidden_dim']})")
    p.add_argument(
        "--codebook_dim",
        type=int,
        help=f"codebook embedding dimension (default {d['codebook_dim']})",
    )
    p.add_argument(
        "--vocab_size", type=int, help=f"codebook vectors per codebook (default {d['vocab_size']})"
    )
    p.add_argument(
        "--commitment_weight",
        type=float,
        help=f"commitment loss weight β (default {d['commitment_weight']})",
    )
    p.add_argument(
        "--base_channels", type=int, help=f"base channel count (default {d['base_channels']})"
    )
    p.add_argument(
        "--channel_mult",
        type=_ints,
        help="channel multipliers per stage; each halves the resolution (default 1,2,4,4)",
    )
    p.add_argument(
        "--num_res_blocks", type=int, help=f"ResBlocks per stage (default {d['num_res_blocks']})"
    )
    p.add_argument(
        "--var_mode",
        action="store_true",
        default=None,
        help="VAR multi-scale residual quantization (VARVQVAE2d)",
    )
    p.add_argument(
        "--scales", type=_ints, help="scales for VAR mode, last = latent grid (default 1,2,4,8,16)"
    )
    p.add_argument("--decay", type=float, help=f"EMA decay of the codebook (default {d['decay']})")
    p.add_argument(
        "--per_scale_codebooks",
        action="store_true",
        default=None,
        help="VAR mode: one codebook per scale instead of one shared codebook",
    )
    p.add_argument(
        "--attention", action="store_true", default=None, help="self-attention at the bottleneck"
    )
    p.add_argument(
        "--preset",
        choices=["cpu"],
        help="a small configuration that trains in minutes on 2 CPU cores",
    )


def default_scales(latent: int) -> tuple[int, ...]:
    """VAR scales for a latent grid of side ``latent``: powers of two up to it (1,2,4,8,16 for the
    SPEC's 16x16 grid), ending exactly at ``latent``."""
    s, out = 1, []
    while s < latent:
        out.append(s)
        s *= 2
    return (*out, latent)


def _channel_mult(args: argparse.Namespace) -> tuple[int, ...]:
    from vqturb.models import PRESETS

    if args.channel_mult is not None:
        return args.channel_mult
    preset = PRESETS[args.preset] if args.preset else {}
    return tuple(preset.get("channel_mult", MODEL_DEFAULTS["channel_mult"]))


def resolve_model_config(args: argparse.Namespace, resolution: int):
    """Build a VQVAEConfig for ``resolution``² fields from SPEC defaults, then the preset, then
    the flags given. Without ``--scales``, VAR scales follow the latent grid (SPEC: 1,2,4,8,16)."""
    from vqturb.models import PRESETS, VQVAEConfig

    base = dict(PRESETS[args.preset]) if args.preset else {}
    base.update({k: getattr(args, k) for k in MODEL_DEFAULTS if getattr(args, k, None) is not None})
    if getattr(args, "per_scale_codebooks", None):
        base["shared_codebook"] = False
    if getattr(args, "attention", None):
        base["attention"] = True
    base["resolution"] = resolution
    if getattr(args, "scales", None) is None:
        base["scales"] = default_scales(max(1, resolution // 2 ** len(_channel_mult(args))))
    return VQVAEConfig(**base)


def register(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train-vqvae",
        help="train a VQ-VAE (VQVAE2d or VARVQVAE2d) on turbulence fields",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--data_dir",
        required=True,
        help="folder of .mat files / trajectory folders, or HDF5 file(s)",
    )
    p.add_argument("--var", default="Omega", help="variable inside .mat files (default Omega)")
    p.add_argument(
        "--h5_key", default=None, help="dataset path inside HDF5 files (default: The Well layout)"
    )
    flags.add_run_flags(p, RUN_DEFAULTS, "vqvae")
    flags.add_optim_flags(p, OPTIM_DEFAULTS)
    p.add_argument(
        "--spectral_weight",
        type=float,
        default=0.0,
        help="weight of the energy-spectrum log-error loss term (default 0)",
    )
    p.add_argument(
        "--gradient_weight",
        type=float,
        default=0.0,
        help="weight of the relative gradient-error loss term (default 0)",
    )
    p.add_argument(
        "--augment",
        default="none",
        help="random symmetries per training field: none or a comma list of roll (periodic "
        "shift), rot90, mirror (default none; training/augment.py)",
    )
    flags.add_mirror_sign_flag(p)
    add_model_flags(p)
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="compute precision (default fp32)",
    )
    p.add_argument(
        "--no_kmeans_init", action="store_true", help="do not initialise codebooks by k-means"
    )
    flags.add_distributed_flags(p)
    p.set_defaults(func=run)
    return p


def resolve_train_config(args: argparse.Namespace):
    from vqturb.training.augment import parse_augment
    from vqturb.training.vqvae_task import VQVAETrainConfig

    preset = TRAIN_PRESETS.get(args.preset, {}) if args.preset else {}
    return VQVAETrainConfig(
        data_dir=args.data_dir,
        run=flags.run_config(args, RUN_DEFAULTS, preset),
        optim=flags.optim_config(args, OPTIM_DEFAULTS, preset),
        var=args.var,
        h5_key=args.h5_key,
        precision=args.precision,
        kmeans_init=not args.no_kmeans_init,
        spectral_weight=args.spectral_weight,
        gradient_weight=args.gradient_weight,
        augment=parse_augment(args.augment),
        mirror_sign=args.mirror_sign,
    )


def run(args: argparse.Namespace) -> int:
    from vqturb.data import open_dataset
    from vqturb.training.vqvae_task import train_vqvae

    flags.start_processes(args)
    ds = open_dataset(args.data_dir, var=args.var, h5_key=args.h5_key)
    # Check divisibility against the data first: that error names the offending file.
    ds.check_divisible(2 ** len(_channel_mult(args)))
    model_cfg = resolve_model_config(args, ds.shape[0])
    train_cfg = resolve_train_config(args)
    result = train_vqvae(model_cfg, train_cfg)
    print(f"final model: {result.final_path}")
    if result.val_metrics:
        print(
            "validation: "
            + json.dumps(
                {
                    k: round(v, 5) if isinstance(v, float) else v
                    for k, v in result.val_metrics.items()
                }
            )
        )
    return 0


def register_bench(sub) -> argparse.ArgumentParser:
    """`vqturb bench train`: training-step throughput for the model flags given."""
    p = sub.add_parser(
        "train",
        help="VQ-VAE training throughput: images/s, ms/step, GFLOP/step, fraction of matmul peak",
        description="Times the jitted VQ-VAE training step on random fields and prints one JSON line.",
    )
    add_model_flags(p)
    p.add_argument(
        "--resolution",
        type=int,
        default=None,
        help="field side length (default 256, or the preset's)",
    )
    p.add_argument("--batch_size", type=int, default=4, help="batch size (default 4)")
    p.add_argument(
        "--steps", type=int, default=10, help="timed steps after compilation (default 10)"
    )
    p.add_argument(
        "--precision", choices=["fp32", "bf16"], default="fp32", help="compute precision"
    )
    p.set_defaults(func=run_bench)
    return p


def run_bench(args: argparse.Namespace) -> int:
    from vqturb.models import PRESETS
    from vqturb.training.bench import bench_train

    resolution = args.resolution or PRESETS[args.preset or "default"].get("resolution", 256)
    cfg = resolve_model_config(args, resolution)
    print(
        json.dumps(
            bench_train(
                cfg,
                resolution=resolution,
                batch_size=args.batch_size,
                steps=args.steps,
                precision=args.precision,
            )
        )
    )
    return 0
