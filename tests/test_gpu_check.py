"""`bash benchmarks/gpu_check.sh --dry` runs every stage at tiny sizes and prints one complete JSON."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What the GPU run must report (issue 10 item 7): stage -> numeric figures.
REQUIRED = {
    "train_fp32": ["images_per_s", "achieved_tflops", "peak_tflops", "fraction_of_peak"],
    "train_bf16": ["images_per_s", "achieved_tflops", "peak_tflops", "fraction_of_peak"],
    "generate": ["resolution", "frames_per_s"],
    "train_vqvae": ["steps", "first_loss", "final_loss"],
    "rollout": [
        "token_frames_per_s",
        "decoded_frames_per_s",
        "solver_frames_per_s",
        "speedup_decoded",
    ],
}


@pytest.mark.slow
def test_dry_run_prints_one_complete_json(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, WORK=str(tmp_path / "work"), OUT=str(tmp_path))
    env["VQTURB_COMPILE_CACHE"] = str(tmp_path / "jax_cache")  # the run's own, not the user's
    p = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry"],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        cwd=tmp_path,
    )
    result = json.loads(p.stdout)
    assert result == json.loads((tmp_path / "gpu_check.json").read_text())
    assert result["dry"] is True and result["errors"] == [], (result, p.stderr[-2000:])
    assert p.returncode == 0
    for stage, keys in REQUIRED.items():
        for k in keys:
            v = result[stage][k]
            assert isinstance(v, (int, float)) and math.isfinite(v) and v > 0, (stage, k, v)
    curve = result["train_vqvae"]["loss_curve"]
    assert [s for s, _ in curve] == sorted(s for s, _ in curve) and len(curve) >= 2
    assert all(math.isfinite(loss) for _, loss in curve)
    assert 0 < result["train_fp32"]["fraction_of_peak"]
    nsp = [v for k, v in result["nsp"].items() if k.startswith(("train_", "sample_"))]
    assert nsp and all(isinstance(v, (int, float)) and math.isfinite(v) and v > 0 for v in nsp)
    assert result["device"]["backend"] == "cpu" and result["device"]["device_kind"]
