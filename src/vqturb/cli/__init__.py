"""`vqturb <command>`: a thin layer that parses arguments and calls the library.

Each command lives in its own module under ``vqturb.cli`` and exposes
``register(subparsers) -> argparse.ArgumentParser`` which sets ``func=run`` on its parser. Command
modules import heavy libraries (JAX, ...) inside ``run`` so that ``vqturb --help`` stays fast.

Every command runs with JAX's persistent compilation cache (:mod:`vqturb.utils.compile_cache`)
unless ``--no_compile_cache`` or ``VQTURB_COMPILE_CACHE=0`` turns it off.

Errors caused by input (``VqturbError``) print one line to stderr and exit with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from vqturb import __version__
from vqturb.errors import VqturbError
from vqturb.utils.compile_cache import ENV, configure_compile_cache

# Module names under vqturb.cli, in the order they appear in `vqturb --help`.
COMMANDS: tuple[str, ...] = (
    "demo",
    "generate",
    "inspect",
    "train_vqvae",
    "tokenizer",
    "compress",
    "decompress",
    "train_nsp",
    "eval_nsp",
    "bench",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vqturb",
        description="VQ-VAE tokens and next-scale prediction for 2D turbulence.",
    )
    parser.add_argument("--version", action="version", version=f"vqturb {__version__}")
    parser.add_argument(
        "--no_compile_cache",
        action="store_true",
        help=f"do not read or write JAX's compilation cache (same as {ENV}=0; "
        f"{ENV}=DIR moves it) [on, in $XDG_CACHE_HOME/vqturb/jax]",
    )
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name in COMMANDS:
        importlib.import_module(f"vqturb.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.no_compile_cache:  # through the environment, so that nested commands see it too
        os.environ[ENV] = "0"
    try:
        configure_compile_cache()
        rc = args.func(args)
    except VqturbError as e:
        print(f"vqturb {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vqturb {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


def run_main() -> None:  # pragma: no cover - console entry point
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
