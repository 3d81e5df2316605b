"""`vqturb bench <what>`: benchmarks. Each ``<what>`` is one entry of :data:`BENCHES`.

To add a benchmark, add one line to ``BENCHES``: ``"name": "module:function"``, where the
function is ``register(subparsers) -> argparse.ArgumentParser`` exactly like a top-level command
(it adds its parser with ``subparsers.add_parser("name", ...)`` and sets ``func``). The module is
imported when the parser is built, so keep heavy imports inside the run function.
"""

from __future__ import annotations

import argparse
import importlib

# name -> "module:register function"
BENCHES: dict[str, str] = {
    "rd": "vqturb.cli.bench:register_rd",
    "train": "vqturb.cli.train_vqvae:register_bench",
    "rollout": "vqturb.cli.bench_rollout:register",
}


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "bench",
        help="benchmarks: " + ", ".join(BENCHES),
        description="Benchmarks; each writes its results and prints a summary.",
    )
    sub = p.add_subparsers(dest="bench", metavar="<what>", required=True)
    for target in BENCHES.values():
        mod, fn = target.split(":")
        getattr(importlib.import_module(mod), fn)(sub)
    return p


def register_rd(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "rd",
        help="rate–distortion: vqturb tokens vs Fourier, POD, SZ3, ZFP, H.264/H.265/AV1 at equal "
        "bytes per field",
        description=(
            "On the test split, compare vqturb (entropy-coded .vqz and raw index bits; one point "
            "per number of scales decoded, progressively) with Fourier truncation, POD fitted on "
            "the training split, SZ3, ZFP and the H.264/H.265/AV1 video codecs (ffmpeg) at equal "
            "bytes per field, plus the mean-only floor. Writes rd.json, rd.md and rd.png to "
            "--output_dir and reports tokenization and decoding throughput."
        ),
    )
    p.add_argument("--checkpoint", required=True, help="VQ-VAE checkpoint (.eqx)")
    p.add_argument("--data_dir", required=True, help="dataset folder or HDF5 file")
    p.add_argument("--output_dir", required=True, help="folder for rd.json, rd.md, rd.png")
    p.add_argument("--var", default="Omega", help="variable holding the field [Omega]")
    p.add_argument("--h5_key", default=None, help="HDF5 dataset path [search by --var]")
    p.add_argument(
        "--bits_per_value",
        default="0.02,0.05,0.1,0.2,0.5,1,2",
        help="baseline target sizes in bits per value [0.02,0.05,0.1,0.2,0.5,1,2]",
    )
    p.add_argument("--max_test", type=int, default=256, help="at most this many test fields [256]")
    p.add_argument(
        "--max_train", type=int, default=512, help="at most this many training fields for POD [512]"
    )
    p.add_argument("--batch_size", type=int, default=16, help="fields per model call [16]")
    p.add_argument(
        "--video",
        default="h264,h265,av1",
        help="video codecs measured at vqturb's sizes, comma-separated, or 'none' [h264,h265,av1]",
    )
    p.add_argument(
        "--nsp_checkpoint",
        default=None,
        help="an NSP model trained on this VQ-VAE's tokens: vqturb's curve is coded with it as "
        "the context of every field after its previous frame (compress --nsp_checkpoint) "
        "[static tables]",
    )
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_rd)
    return p


def run_rd(args: argparse.Namespace) -> int:
    from vqturb.codec.baselines import VIDEO_FORMATS
    from vqturb.codec.bench import run_rd_benchmark
    from vqturb.errors import InputError

    video = () if args.video == "none" else tuple(v for v in args.video.split(",") if v)
    for v in video:
        if v not in VIDEO_FORMATS:
            raise InputError(None, "--video", repr(v), ", ".join(VIDEO_FORMATS) + " or none")

    try:
        bpv = tuple(float(x) for x in args.bits_per_value.split(","))
    except ValueError:
        raise InputError(
            None, "--bits_per_value", args.bits_per_value, "comma-separated numbers"
        ) from None
    res, paths = run_rd_benchmark(
        args.checkpoint,
        args.data_dir,
        args.output_dir,
        var=args.var,
        h5_key=args.h5_key,
        bits_per_value=bpv,
        max_test=args.max_test,
        max_train=args.max_train,
        batch_size=args.batch_size,
        video=video,
        nsp_checkpoint=args.nsp_checkpoint,
        progress=not args.no_progress,
    )
    print(paths["md"].read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0
