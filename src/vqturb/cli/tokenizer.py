"""`vqturb tokenizer info|save`: vocabulary statistics and the tokens.npz for the NSP model."""

from __future__ import annotations

import argparse
import json

import numpy as np

from vqturb.cli.train_flags import add_mirror_sign_flag


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="VQ-VAE checkpoint (.eqx)")
    p.add_argument("--data_dir", required=True, help="dataset folder or HDF5 file")
    p.add_argument(
        "--var_mode",
        action="store_true",
        default=None,
        help="accepted for SPEC compatibility; must agree with the checkpoint [from checkpoint]",
    )
    p.add_argument("--var", default="Omega", help="variable holding the field [Omega]")
    p.add_argument("--h5_key", default=None, help="HDF5 dataset path [search by --var]")
    p.add_argument("--batch_size", type=int, default=16, help="fields per encoder call [16]")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "tokenizer",
        help="tokenizer statistics (info) or tokenize a dataset to tokens.npz (save)",
        description=(
            "Wrap a trained VQ-VAE: scan a dataset, collect the codes used, remap them to a "
            "compact vocabulary (VAR mode: one contiguous id range per scale)."
        ),
    )
    sub = p.add_subparsers(dest="action", metavar="<action>", required=True)
    info = sub.add_parser(
        "info",
        help="codes used and perplexity per scale, unified vocabulary size, recon rel. L2",
    )
    _common(info)
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=run)
    save = sub.add_parser("save", help="tokenize every snapshot and write tokens.npz")
    _common(save)
    save.add_argument("--output", required=True, help="tokens file to write (.npz)")
    save.add_argument(
        "--vocab_from",
        default=None,
        metavar="TOKENS.npz",
        help="reuse the unified vocabulary of this earlier tokens file (same VQ-VAE checkpoint), "
        "so that an NSP model trained on it applies to the new data; codes it lacks map to the "
        "nearest code it has at that scale (codebook distance), and their count is printed and "
        "stored as remapped_tokens [fit a new vocabulary]",
    )
    save.add_argument(
        "--augment",
        default="none",
        help="add the training rows' images under a symmetry group of the dynamics as new "
        "training trajectories (more NSP pairs): none or rot90 and/or mirror, comma-separated "
        "[none]; only exact symmetries of the flow belong here (README)",
    )
    add_mirror_sign_flag(save)
    save.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from vqturb.data import open_dataset
    from vqturb.tokenizer import VQVAETokenizer, save_tokens, tokenizer_info

    tok = VQVAETokenizer(args.checkpoint, var_mode=args.var_mode, batch_size=args.batch_size)
    ds = open_dataset(args.data_dir, var=args.var, h5_key=args.h5_key)
    progress = not args.no_progress
    if args.action == "info":
        info = tokenizer_info(tok, ds, progress=progress)
        if args.json:
            print(json.dumps(info, indent=2))
            return 0
        kind = "VAR (multi-scale)" if info["var_mode"] else "standard"
        print(f"checkpoint: {args.checkpoint} ({kind}, codebook {info['codebook_size']})")
        print(f"fields: {info['n_fields']}, tokens per field: {info['tokens_per_field']}")
        for k, s in enumerate(info["scales"]):
            print(
                f"  scale {k} ({s['scale']}x{s['scale']}): {s['codes_used']} codes used, "
                f"perplexity {s['perplexity']:.2f}"
            )
        print(f"unified vocabulary size: {info['unified_vocab_size']}")
        print(
            f"reconstruction relative L2: mean {info['recon_rel_l2_mean']:.4f}, "
            f"max {info['recon_rel_l2_max']:.4f}"
        )
        return 0
    from vqturb.training.augment import parse_augment

    augment = parse_augment(args.augment)
    tokens = save_tokens(
        tok, ds, args.output, vocab_from=args.vocab_from, augment=augment,
        mirror_sign=args.mirror_sign, progress=progress,
    )  # fmt: skip
    n, t = tokens.indices.shape
    print(
        f"wrote {args.output}: {n} fields x {t} tokens, unified vocabulary "
        f"{tokens.vocab_size}, scales {list(tokens.scales)}"
    )
    if augment:
        extra = int(np.count_nonzero(tokens.symmetry))
        print(
            f"symmetry images ({','.join(augment)}): {extra} rows added as training trajectories "
            f"({n - extra} rows of data)"
        )
    if args.vocab_from is not None:
        rem = tokens.remapped_tokens
        print(
            f"vocabulary from {args.vocab_from}: {int(rem.sum())} of {n * t} tokens "
            f"({100.0 * rem.sum() / max(n * t, 1):.2f}%) remapped to the nearest known code "
            f"(per scale {rem.tolist()})"
        )
    return 0
