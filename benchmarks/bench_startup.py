"""Start-up of `vqturb` commands with JAX's persistent compilation cache: off, cold, warm.

Usage::

    .venv/bin/python benchmarks/bench_startup.py [--work out_bench_startup]

On tiny generated data (32², 3 trajectories × 8 frames) and tiny models (so that a run is all
start-up: imports, data, compilation), the chain train-vqvae (VAR, 4 steps) → tokenizer save →
train-nsp (4 steps) → eval-nsp (4 rollout steps) runs three times, each command a fresh process timed by its
wall time: ``off`` with ``--no_compile_cache``, ``cold`` with an empty cache folder, ``warm`` with
the folder the cold round filled. Prints one JSON line: seconds per command and round, warm/cold
speed-up, the cache's size and entries, and the load average at each round.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY_DATA = ["--n_traj", "3", "--resolution", "32", "--n_save", "8", "--t_spinup", "0.5"]
# Tiny models: the commands are all start-up (imports, data, compilation), a few steps each.
TINY_VQVAE = ["--var_mode", "--base_channels", "8", "--channel_mult", "1,2", "--num_res_blocks", "1",
              "--hidden_dim", "16", "--codebook_dim", "8", "--vocab_size", "16"]  # fmt: skip
TINY_NSP = ["--n_layer", "1", "--n_head", "2", "--n_embd", "32"]
COMMANDS = ("train-vqvae", "tokenizer save", "train-nsp", "eval-nsp")


def chain(data: Path, out: Path) -> list[tuple[str, list[str]]]:
    """The timed commands of one round, writing into ``out``."""
    ckpt, tokens, nsp = out / "vqvae" / "final.eqx", out / "tokens.npz", out / "nsp"
    return [
        ("train-vqvae", ["train-vqvae", "--data_dir", str(data), *TINY_VQVAE, "--checkpoint_dir",
                         str(out / "vqvae"), "--max_steps", "4", "--batch_size", "4"]),
        ("tokenizer save", ["tokenizer", "save", "--checkpoint", str(ckpt), "--data_dir", str(data),
                            "--output", str(tokens), "--no_progress"]),
        ("train-nsp", ["train-nsp", "--tokens_path", str(tokens), "--vqvae_checkpoint", str(ckpt),
                       *TINY_NSP, "--batch_size", "4", "--checkpoint_dir", str(nsp), "--max_steps", "4"]),
        ("eval-nsp", ["eval-nsp", "--nsp_checkpoint", str(nsp / "final.eqx"), "--vqvae_checkpoint",
                      str(ckpt), "--tokens_path", str(tokens), "--n_samples", "2", "--n_steps", "4",
                      "--output_dir", str(out / "eval"), "--no_progress"]),
    ]  # fmt: skip


def vqturb(argv: list[str], env: dict[str, str]) -> float:
    """Run ``vqturb argv`` in a fresh process; its wall time in seconds."""
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "vqturb", *argv], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--work", default="out_bench_startup", help="scratch folder (emptied first)")
    args = p.parse_args()
    work = Path(args.work).resolve()
    shutil.rmtree(work, ignore_errors=True)
    cache = work / "jax_cache"
    env = dict(os.environ, VQTURB_COMPILE_CACHE=str(cache))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    data = work / "data"
    vqturb(["--no_compile_cache", "generate", "--out", str(data), *TINY_DATA], env)
    seconds: dict[str, dict[str, float]] = {c: {} for c in COMMANDS}
    load: dict[str, float] = {}
    for round_ in ("off", "cold", "warm"):
        load[round_] = round(os.getloadavg()[0], 2)
        flag = ["--no_compile_cache"] if round_ == "off" else []
        for name, argv in chain(data, work / round_):
            seconds[name][round_] = round(vqturb(flag + argv, env), 2)
            print(f"{round_:>4} {name:<15} {seconds[name][round_]:7.2f} s", file=sys.stderr)
    files = [f for f in cache.iterdir() if f.name.endswith("-cache")]
    result = {
        "bench": "startup",
        "command": "benchmarks/bench_startup.py",
        "data": "generate " + " ".join(TINY_DATA),
        "seconds": seconds,
        "warm_speedup": {c: round(s["cold"] / s["warm"], 2) for c, s in seconds.items()},
        "cache_entries": len(files),
        "cache_mib": round(sum(f.stat().st_size for f in files) / 2**20, 1),
        "load_avg_1min": load,
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
