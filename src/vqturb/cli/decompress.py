"""`vqturb decompress`: a .vqz token file → .mat files (``Omega`` float64 and ``time``)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "decompress",
        help="decode a .vqz file with its VQ-VAE checkpoint into .mat files",
        description=(
            "Entropy-decode the tokens of a .vqz file and decode them with the VQ-VAE it was "
            "made with (checked by SHA-256) into OUTPUT/<trajectory>/<time index>.mat files "
            "holding Omega (float64) and time, the SPEC's data format."
        ),
    )
    p.add_argument("vqz", help=".vqz file written by vqturb compress")
    p.add_argument("--checkpoint", required=True, help="the VQ-VAE checkpoint (.eqx)")
    p.add_argument("--output", required=True, help="folder to write .mat files into")
    p.add_argument("--batch_size", type=int, default=16, help="fields per decoder call [16]")
    p.add_argument(
        "--nsp_checkpoint",
        default=None,
        help="the NSP model a file was compressed with (compress --nsp_checkpoint) [none]",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="write into --output even when it holds files decompress did not write (raw data "
        "there is replaced by the reconstruction where names match)",
    )
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from vqturb.codec.vqz import decompress

    r = decompress(
        args.vqz,
        args.checkpoint,
        args.output,
        batch_size=args.batch_size,
        nsp_checkpoint=args.nsp_checkpoint,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    print(
        f"wrote {r['files_written']} .mat files to {r['output']} "
        f"({r['file_bytes']} bytes in, {r['bits_per_value']:.4f} bits/value)"
    )
    return 0
