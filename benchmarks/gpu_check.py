"""One GPU check: every throughput figure the issues ask of a first GPU run, as one JSON object.

Usage (the wrapper ``benchmarks/gpu_check.sh`` installs the ``cuda12`` extra, then runs this)::

    python benchmarks/gpu_check.py [--dry] [--work DIR] [--budget_s 420] [--output FILE]

Stages, each a separate ``vqturb`` (or benchmark) process with its own time limit, so that a stage
that fails or hangs records its error and the next one still runs:

* ``device``: JAX version, backend and device kind, ``nvidia-smi`` name, the datasheet peaks;
* ``train_fp32``, ``train_bf16``: ``vqturb bench train`` at the SPEC default (VQVAE2d, 256²,
  batch 16): images/s, achieved TFLOP/s (XLA's cost analysis of the compiled step over the
  median step time) and the fraction of the device's dense peak (see :data:`PEAKS`);
* ``generate``: a 256² ``vqturb generate``, a few trajectories;
* ``train_vqvae``: a short real ``vqturb train-vqvae`` (SPEC default model) on those fields, with
  its loss curve from the run's ``metrics.jsonl``;
* ``rollout``: ``vqturb bench rollout`` at the SPEC sizes on that data, against the solver;
* ``nsp``: ``benchmarks/bench_nsp.py`` training and sampling at the SPEC trunk (and the cpu one).

``--dry`` runs the same stages at tiny sizes, for a CPU (the test suite does). The stages run
without the ``device`` process's JAX in this one: JAX takes most of a GPU's memory per process, so
this driver never imports it. The JSON goes to stdout (and ``--output``); each stage's output is
kept in ``<work>/logs/<stage>.log``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Dense peak TFLOP/s per GPU, from NVIDIA's datasheets ("NVIDIA H100 Tensor Core GPU" datasheet,
# "NVIDIA H200 Tensor Core GPU" datasheet / product page). Their Tensor Core figures are quoted
# "with sparsity"; the dense rate is half of that. Columns: fp32 (CUDA cores, no tensor cores),
# tf32 tensor core dense, bf16 tensor core dense. First matching name fragment wins.
PEAKS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H100 NVL", {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5}),
    ("H100 PCIe", {"fp32": 51.0, "tf32": 378.0, "bf16": 756.5}),
    ("H200 NVL", {"fp32": 60.0, "tf32": 417.5, "bf16": 835.5}),
    ("H100", {"fp32": 67.0, "tf32": 494.5, "bf16": 989.5}),  # SXM5
    ("H200", {"fp32": 67.0, "tf32": 494.5, "bf16": 989.5}),  # SXM: the H100's chip
)
# The peak each precision's run is divided by. XLA runs float32 convolutions and matmuls on the
# TF32 tensor cores at JAX's default precision, so the fp32 run is held to the TF32 dense peak
# (its fraction of the plain fp32 peak is reported too); bf16 to the bf16 dense peak.
PEAK_FOR = {"fp32": "tf32", "bf16": "bf16"}

# Sizes: the SPEC default on a GPU; tiny ones for --dry (a CPU, seconds per stage).
TINY_MODEL = ["--base_channels", "8", "--channel_mult", "1,2", "--num_res_blocks", "1",
              "--hidden_dim", "16", "--codebook_dim", "8", "--vocab_size", "16"]  # fmt: skip
SIZES = {
    "gpu": {
        "bench": ["--batch_size", "16", "--steps", "10"],
        "generate": ["--n_traj", "4", "--resolution", "256", "--n_save", "40", "--t_spinup", "5"],
        "train": ["--batch_size", "16", "--max_steps", "200", "--log_every", "10"],
        "rollout": ["--preset", "spec", "--resolution", "256", "--batch", "8", "--n_steps", "10"],
        "nsp": ["--parts", "train,sample", "--batch_size", "16", "--steps", "10"],
    },
    "dry": {
        "bench": [*TINY_MODEL, "--resolution", "16", "--batch_size", "2", "--steps", "2"],
        "generate": ["--n_traj", "3", "--resolution", "32", "--n_save", "8", "--t_spinup", "0.5"],
        "train": [*TINY_MODEL, "--batch_size", "4", "--max_steps", "6", "--log_every", "2"],
        "rollout": [
            "--preset",
            "cpu",
            "--resolution",
            "32",
            "--batch",
            "2",
            "--n_steps",
            "2",
            "--repeats",
            "1",
        ],
        "nsp": ["--parts", "train,sample", "--quick", "--trunks", "cpu"],
    },
}
# Seconds each stage may take at most on a GPU (also cut to what is left of --budget_s); a --dry
# run on a CPU, compiling as long as a GPU run but on a shared machine, gets DRY_SLACK times more.
BUDGET_S = {
    "device": 60,
    "train_fp32": 90,
    "train_bf16": 90,
    "generate": 60,
    "train_vqvae": 120,
    "rollout": 60,
    "nsp": 90,
}
DRY_SLACK = 10


class StageError(Exception):
    """A stage's process failed or ran out of time; the message is recorded in the JSON."""


def peaks_for(name: str) -> dict[str, float] | None:
    """Datasheet dense peaks (TFLOP/s) of the GPU called ``name``, None when not in the table."""
    for fragment, peaks in PEAKS:
        if fragment.lower() in name.lower():
            return peaks
    return None


class Check:
    """Runs the stages in ``work`` within a total budget; collects their results."""

    def __init__(self, work: Path, dry: bool, budget_s: float):
        self.work, self.dry, self.sizes = work, dry, SIZES["dry" if dry else "gpu"]
        self.deadline = time.monotonic() + budget_s
        (work / "logs").mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ)
        src = str(ROOT / "src")
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, self.env.get("PYTHONPATH")]))
        self.env.setdefault("VQTURB_COMPILE_CACHE", str(work / "jax_cache"))
        if dry:
            self.env.setdefault("JAX_PLATFORMS", "cpu")
        self.results: dict[str, dict] = {}

    def run(self, stage: str, argv: list[str]) -> str:
        """Run ``argv`` from the repository root within ``stage``'s time limit; returns its stdout
        and keeps stdout and stderr in ``<work>/logs/<stage>.log``."""
        left = self.deadline - time.monotonic()
        timeout = min(BUDGET_S[stage] * (DRY_SLACK if self.dry else 1), left)
        if timeout < 5:
            raise StageError(f"skipped: {max(left, 0):.0f} s of the total budget left")
        log = self.work / "logs" / f"{stage}.log"
        try:
            p = subprocess.run(
                argv,
                env=self.env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as e:
            log.write_text(f"$ {' '.join(argv)}\n{_text(e.stdout)}\n{_text(e.stderr)}")
            raise StageError(f"timed out after {timeout:.0f} s") from None
        log.write_text(f"$ {' '.join(argv)}\n{p.stdout}\n{p.stderr}")
        if p.returncode != 0:
            lines = [x for x in p.stderr.splitlines() if x.strip()] or ["(no output)"]
            raise StageError(f"exit code {p.returncode}: {lines[-1][:300]}")
        return p.stdout

    def stage(self, name: str, fn: Callable[[], dict]) -> None:
        t = time.monotonic()
        try:
            res = fn()
        except StageError as e:
            res = {"error": str(e)}
        except Exception as e:  # a stage's output not being what the parser expects
            res = {"error": f"{type(e).__name__}: {e}"}
        res["wall_s"] = round(time.monotonic() - t, 1)
        self.results[name] = res
        print(f"gpu_check: {name}: {res.get('error', 'ok')} ({res['wall_s']} s)", file=sys.stderr)


def _text(b: bytes | str | None) -> str:
    return b.decode(errors="replace") if isinstance(b, bytes) else (b or "")


def vqturb(*args: str) -> list[str]:
    return [sys.executable, "-m", "vqturb", *args]


def sig(x: float, digits: int = 4) -> float:
    """``x`` to ``digits`` significant digits (tiny --dry figures stay non-zero)."""
    return float(f"{x:.{digits}g}")


def last_json(stdout: str) -> dict:
    """The last line of ``stdout`` that is a JSON object."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise StageError("no JSON line in the output")


def device_stage(c: Check) -> dict:
    probe = (
        "import json, jax; d = jax.devices()[0]; print(json.dumps({'jax': jax.__version__, "
        "'backend': jax.default_backend(), 'device_kind': d.device_kind, "
        "'n_devices': jax.device_count()}))"
    )
    out = last_json(c.run("device", [sys.executable, "-c", probe]))
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        out["nvidia_smi"] = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, IndexError):
        out["nvidia_smi"] = None
    peaks = peaks_for(out["nvidia_smi"] or out["device_kind"])
    out["peak_tflops"] = peaks
    out["peak_source"] = (
        "NVIDIA datasheet, dense"
        if peaks
        else "measured fp32 matmul of `bench train` (no datasheet entry)"
    )
    return out


def train_bench_stage(c: Check, precision: str) -> dict:
    r = last_json(
        c.run(
            f"train_{precision}",
            vqturb("bench", "train", "--precision", precision, *c.sizes["bench"]),
        )
    )
    peaks = c.results.get("device", {}).get("peak_tflops")
    achieved = r["achieved_gflops"] / 1e3
    peak = peaks[PEAK_FOR[precision]] if peaks else r["matmul_gflops"] / 1e3
    out = {
        "model": r["model"],
        "resolution": r["resolution"],
        "batch_size": r["batch_size"],
        "params": r["params"],
        "compile_s": r["compile_s"],
        "ms_per_step": r["ms_per_step"],
        "images_per_s": r["images_per_s"],
        "gflop_per_step": r["gflop_per_step"],
        "achieved_tflops": sig(achieved),
        "peak_tflops": sig(peak),
        "peak": f"{PEAK_FOR[precision]} dense" if peaks else "measured fp32 matmul",
        "fraction_of_peak": sig(achieved / peak),
        "matmul_tflops_measured": sig(r["matmul_gflops"] / 1e3),
    }
    if peaks and precision == "fp32":
        out["fraction_of_fp32_peak"] = sig(achieved / peaks["fp32"])
    return out


def generate_stage(c: Check) -> dict:
    data = c.work / "data"
    c.run("generate", vqturb("generate", "--out", str(data), "--overwrite", *c.sizes["generate"]))
    meta = json.loads((data / "generate.json").read_text())
    p = meta["parameters"]
    frames = p["n_traj"] * p["n_save"]
    return {
        "resolution": p["resolution"],
        "n_traj": p["n_traj"],
        "n_save": p["n_save"],
        "solver_wall_s": round(meta["wall_time_s"], 2),
        "frames_per_s": round(frames / meta["wall_time_s"], 2),
    }


def train_vqvae_stage(c: Check) -> dict:
    run_dir = c.work / "vqvae"
    t = time.monotonic()
    c.run(
        "train_vqvae",
        vqturb("train-vqvae", "--data_dir", str(c.work / "data"), "--checkpoint_dir", str(run_dir),
               "--save_every", "1000000", "--val_every", "1000000", *c.sizes["train"]),
    )  # fmt: skip
    wall = time.monotonic() - t
    recs = [
        json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()
    ]
    train = [r for r in recs if r.get("kind", "train") == "train" and "loss" in r]
    if not train:
        raise StageError("metrics.jsonl has no training records")
    curve = [[r["step"], round(r["loss"], 5)] for r in train]
    return {
        "steps": train[-1]["step"],
        "command_wall_s": round(wall, 1),
        "first_loss": curve[0][1],
        "final_loss": curve[-1][1],
        "loss_curve": curve,
    }


def rollout_stage(c: Check) -> dict:
    r = last_json(
        c.run(
            "rollout",
            vqturb("bench", "rollout", "--data_dir", str(c.work / "data"), *c.sizes["rollout"]),
        )
    )
    keep = (
        "token_frames_per_s",
        "decoded_frames_per_s",
        "solver_frames_per_s",
        "speedup_tokens",
        "speedup_decoded",
    )
    return {"resolution": r["resolution"], "batch": r["batch"], **{k: round(r[k], 3) for k in keep}}


def nsp_stage(c: Check) -> dict:
    argv = [sys.executable, str(ROOT / "benchmarks" / "bench_nsp.py"), "--out", str(c.work / "nsp")]
    r = last_json(c.run("nsp", argv + c.sizes["nsp"]))
    return {k: v for k, v in r.items() if k not in ("bench", "device")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dry", action="store_true", help="tiny sizes on the CPU (a smoke test)")
    p.add_argument("--work", default="gpu_check_work", help="folder for data, runs and logs")
    p.add_argument("--budget_s", type=float, default=420, help="total seconds for all stages [420]")
    p.add_argument("--output", default=None, help="also write the JSON here")
    p.add_argument("--install", default="not by this run", help="the wrapper's install outcome")
    args = p.parse_args(argv)
    t0 = time.monotonic()
    c = Check(Path(args.work).resolve(), args.dry, args.budget_s)
    c.stage("device", lambda: device_stage(c))
    c.stage("train_fp32", lambda: train_bench_stage(c, "fp32"))
    c.stage("train_bf16", lambda: train_bench_stage(c, "bf16"))
    c.stage("generate", lambda: generate_stage(c))
    c.stage("train_vqvae", lambda: train_vqvae_stage(c))
    c.stage("rollout", lambda: rollout_stage(c))
    c.stage("nsp", lambda: nsp_stage(c))
    result = {
        "check": "gpu_check",
        "dry": args.dry,
        "python": sys.executable,
        "install": args.install,
        "total_s": round(time.monotonic() - t0, 1),
        "errors": sorted(k for k, v in c.results.items() if "error" in v),
        **c.results,
    }
    text = json.dumps(result)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n")
    print(text)
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
