"""`vqturb <command>`: a thin layer that parses arguments and calls the library.

Each command lives in its own module under ``vqturb.cli`` and exposes
``register(subparsers) -> argparse.ArgumentParser`` which sets ``func=run`` on its parser. Command
modules import heavy libraries (JAX, ...) inside ``run`` so that ``vqturb --help`` stays fast.

Errors caused by input (``VqturbError``) print one line to stderr and exit with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from vqturb import __version__
from vqturb.errors import VqturbError

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
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name in COMMANDS:
        importlib.import_module(f"vqturb.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
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
