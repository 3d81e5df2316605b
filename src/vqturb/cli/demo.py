"""`vqturb demo`: the whole pipeline on generated data, on a CPU, in one command.

generate → inspect → train-vqvae (VAR, --preset cpu) → tokenizer save → train-nsp (--preset cpu) →
compress / decompress and bench rd (the NSP as the entropy model) → eval-nsp → one report.html
linking every result.

Each stage runs the same command a user would type (printed before it runs), so the demo doubles
as a worked example. Every stage writes into one output folder.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

from vqturb.errors import VqturbError

# Demo sizes. The flow is simulated at 128² (64² is under-resolved at Re 1000: energy piles up
# at the cutoff) and saved spectrally truncated to 64², which keeps every later stage within a few
# minutes on 2 CPU cores. Frames 0.1 apart correlate at about 0.9: close enough to forecast,
# different enough to be worth forecasting. The flow is statistically steady from t ≈ 12.
DEMO = {
    "resolution": 128,
    "save_resolution": 64,
    "n_traj": 6,
    "n_save": 100,
    "t_save": 0.1,
    "t_spinup": 20.0,
    # 1500 VQ-VAE steps (30 epochs of the 400 training fields; the preset's 20 epochs would stop
    # at 1000): held-out rel. L2 0.434 against 0.443 after 1000 (README, "Tokens and compression")
    "vqvae_steps": 1500,
    "vqvae_epochs": 30,
    # validation loss at the finest scale 2.936 nats after 1400 steps, 2.920 after 2000
    "nsp_steps": 1600,
    "rollout_steps": 100,
    "ensemble": 16,
}


def stages(out: Path, quick: bool) -> list[tuple[str, list[str]]]:
    d = dict(DEMO)
    if quick:  # smoke-test sizes for the test suite
        d.update(
            resolution=64,
            n_traj=4,  # the default split keeps 2 for training: 22 NSP pairs >= one batch of 16
            n_save=12,
            t_spinup=1.0,
            vqvae_steps=4,
            nsp_steps=4,
            rollout_steps=3,
            ensemble=2,
        )
    data = out / "data"
    vq = out / "vqvae"
    nsp = out / "nsp"
    tokens = out / "tokens.npz"
    ckpt = vq / "final.eqx"
    return [
        (
            "generate",
            [
                "generate",
                "--out",
                str(data),
                "--n_traj",
                str(d["n_traj"]),
                "--resolution",
                str(d["resolution"]),
                "--save_resolution",
                str(d["save_resolution"]),
                "--n_save",
                str(d["n_save"]),
                "--t_save",
                str(d["t_save"]),
                "--t_spinup",
                str(d["t_spinup"]),
                "--overwrite",
            ],
        ),
        ("inspect", ["inspect", str(data), "--divisible_by", "8"]),
        (
            "train-vqvae",
            [
                "train-vqvae",
                "--data_dir",
                str(data),
                "--preset",
                "cpu",
                "--var_mode",
                "--checkpoint_dir",
                str(vq),
                "--overwrite",  # a rerun of the demo replaces its own earlier run
                "--max_steps",
                str(d["vqvae_steps"]),
                "--epochs",
                str(d["vqvae_epochs"]),
                # the demo's fields are periodic vorticity: shifts, rotations and mirror images
                # (negated) are flows too; with a cosine schedule, held-out rel. L2 0.454 against
                # 0.518 without either (README, "Training the VQ-VAE")
                "--augment",
                "roll,rot90,mirror",
                "--lr_schedule",
                "cosine",
                "--warmup_steps",
                "50",
            ],
        ),
        (
            "tokenize",
            [
                "tokenizer",
                "save",
                "--checkpoint",
                str(ckpt),
                "--data_dir",
                str(data),
                "--output",
                str(tokens),
                "--var_mode",
                # quarter turns are exact symmetries of the demo's forced flow (k_x = k_y): 4x
                # the NSP's training pairs (held-out loss 2.93 vs 3.01 at 8², README)
                "--augment",
                "rot90",
            ],
        ),
        (
            "train-nsp",
            [
                "train-nsp",
                "--tokens_path",
                str(tokens),
                "--vqvae_checkpoint",
                str(ckpt),
                "--preset",
                "cpu",
                "--checkpoint_dir",
                str(nsp),
                "--overwrite",
                "--max_steps",
                str(d["nsp_steps"]),
            ],
        ),
        (
            "compress",
            [
                "compress",
                "--checkpoint",
                str(ckpt),
                "--data_dir",
                str(data),
                "--output",
                str(out / "data.vqz"),
                # the forecaster is the entropy model of every frame after the first: about
                # half the bytes of the static tables (README, "Compressing a dataset")
                "--nsp_checkpoint",
                str(nsp / "best.eqx"),
            ],
        ),
        (
            "decompress",
            [
                "decompress",
                str(out / "data.vqz"),
                "--checkpoint",
                str(ckpt),
                "--output",
                str(out / "decompressed"),
                "--nsp_checkpoint",
                str(nsp / "best.eqx"),
            ],
        ),
        (
            "bench-rd",
            [
                "bench",
                "rd",
                "--checkpoint",
                str(ckpt),
                "--data_dir",
                str(data),
                "--output_dir",
                str(out / "rd"),
                "--nsp_checkpoint",
                str(nsp / "best.eqx"),
            ],
        ),
        (
            "eval-nsp",
            [
                "eval-nsp",
                "--nsp_checkpoint",
                str(nsp / "best.eqx"),  # the lowest validation loss (it rises late in the run)
                "--vqvae_checkpoint",
                str(ckpt),
                "--tokens_path",
                str(tokens),
                "--data_dir",
                str(data),
                "--n_steps",
                str(d["rollout_steps"]),
                # held-out decoder-space error of the ensemble mean at steps 1..5: 16 members at
                # T 0.7 beat persistence at every step, 4 members at T 1 at none (README,
                # "Forecasting flows the model never saw")
                "--temperature",
                "0.7",
                "--n_ensemble",
                str(d["ensemble"]),
                "--output_dir",
                str(out / "eval"),
            ],
        ),
    ]


def run_demo(out: str | Path, *, quick: bool = False) -> Path:
    """Run every stage; returns the path of the top-level report."""
    from vqturb.cli import main

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    plan = stages(out, quick)
    for i, (name, argv) in enumerate(plan, 1):
        print(f"\n=== [{i}/{len(plan)}] {name}: vqturb {shlex.join(argv)}", flush=True)
        t = time.perf_counter()
        rc = main(argv)
        timings[name] = round(time.perf_counter() - t, 1)
        if rc != 0:
            raise VqturbError(f"demo stage {name!r} failed with exit code {rc}")
        print(f"=== {name} done in {timings[name]} s", flush=True)
    timings["total"] = round(time.perf_counter() - t_all, 1)
    (out / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    from vqturb.evaluation.pipeline_report import write_pipeline_report

    report = write_pipeline_report(out, timings=timings)
    print(f"\nDemo finished in {timings['total']} s. Open the report: {report}")
    return report


def register(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "demo",
        help="run the whole pipeline on generated data (CPU-sized)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    p.add_argument(
        "--quick", action="store_true", help="tiny sizes: a smoke test of every stage in ~1 minute"
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    run_demo(args.out, quick=args.quick)
    return 0
