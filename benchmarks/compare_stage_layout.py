"""Reconstruction quality and speed of the two encoder/decoder stage layouts, side by side.

Trains the cpu-preset VARVQVAE2d twice on the same data, seed and steps: stages that downsample
first (the default) and stages that run their residual blocks before downsampling. Prints one
JSON line per layout: wall time, images/s of the last logging window, and validation metrics.

    .venv/bin/python benchmarks/compare_stage_layout.py --data_dir demo_out/data [--steps 300]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from vqturb.models import VQVAEConfig
from vqturb.training.loop import RunConfig
from vqturb.training.optim import OptimConfig
from vqturb.training.vqvae_task import VQVAETrainConfig, train_vqvae


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data_dir", required=True)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    args = p.parse_args()
    for downsample_first in (False, True):
        cfg = VQVAEConfig.preset("cpu", var_mode=True, downsample_first=downsample_first)
        with tempfile.TemporaryDirectory() as run:
            t = time.perf_counter()
            r = train_vqvae(
                cfg,
                VQVAETrainConfig(
                    data_dir=args.data_dir,
                    run=RunConfig(
                        checkpoint_dir=run,
                        batch_size=args.batch_size,
                        max_steps=args.steps,
                        save_every=10**9,
                        val_every=10**9,
                        progress=False,
                    ),  # fmt: skip
                    optim=OptimConfig(lr=args.lr),
                ),
            )
        print(
            json.dumps(
                {
                    "downsample_first": downsample_first,
                    "steps": args.steps,
                    "wall_s": round(time.perf_counter() - t, 1),
                    "images_per_s": round(r.last_metrics["images_per_s"], 2),
                    **{k: round(v, 4) for k, v in r.val_metrics.items()},
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
