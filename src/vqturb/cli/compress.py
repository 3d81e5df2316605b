"""`vqturb compress`: a dataset → one entropy-coded .vqz token file."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "compress",
        help="tokenize a dataset with a VQ-VAE and entropy-code the tokens into a .vqz file",
        description=(
            "Encode every snapshot with the VQ-VAE, entropy-code the tokens (per-scale tables "
            "estimated on the training split, conditioned on the coarser scale where that pays) "
            "and write one .vqz file. Prints bytes per field, bits per value, the compression "
            "ratio against float32 and float64 storage and the reconstruction's relative L2."
        ),
    )
    p.add_argument("--checkpoint", required=True, help="VQ-VAE checkpoint (.eqx)")
    p.add_argument("--data_dir", required=True, help="dataset folder or HDF5 file")
    p.add_argument("--output", required=True, help=".vqz file to write")
    p.add_argument("--var", default="Omega", help="variable holding the field [Omega]")
    p.add_argument("--h5_key", default=None, help="HDF5 dataset path [search by --var]")
    p.add_argument("--batch_size", type=int, default=16, help="fields per encoder call [16]")
    p.add_argument(
        "--nsp_checkpoint",
        default=None,
        help="a trained NSP model (train-nsp, on tokens of this VQ-VAE) as the probability model "
        "of every field that follows its previous frame: about half the bytes of the static "
        "tables; decompress needs the same file [static tables only]",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from vqturb.codec.vqz import compress

    r = compress(
        args.checkpoint,
        args.data_dir,
        args.output,
        var=args.var,
        h5_key=args.h5_key,
        batch_size=args.batch_size,
        nsp_checkpoint=args.nsp_checkpoint,
        progress=not args.no_progress,
    )
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    h, w = r["field_shape"]
    print(f"wrote {r['output']}: {r['file_bytes']} bytes for {r['n_fields']} fields of {h}x{w}")
    print(f"  bytes/field      {r['bytes_per_field']:.2f}")
    print(f"  bits/value       {r['bits_per_value']:.4f}")
    print(f"  ratio vs float32 {r['ratio_vs_float32']:.1f}x")
    print(f"  ratio vs float64 {r['ratio_vs_float64']:.1f}x")
    if r["ratio_vs_input_files"]:
        print(
            f"  ratio vs input files on disk ({r['input_bytes']} B) {r['ratio_vs_input_files']:.1f}x"
        )
    print(f"  relative L2      mean {r['rel_l2_mean']:.4f}, max {r['rel_l2_max']:.4f}")
    s = r["sizes"]
    print(
        f"  bytes: payload {s['payload']}, tables {s['tables']}, vocab {s['vocab']}, "
        f"index/times {s['index_and_times']}, header+framing {s['header_and_framing']}"
    )
    print(f"  contexts per scale: {', '.join(r['contexts'])}")
    if r["nsp_checkpoint"]:
        print(
            f"  fields after their previous frame: coded with the NSP model {r['nsp_checkpoint']}"
        )
    return 0
