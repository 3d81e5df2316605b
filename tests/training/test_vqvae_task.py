import json
import os
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vqturb import checkpoint as ck
from vqturb.cli import main
from vqturb.models import VQVAEConfig
from vqturb.training import vqvae_task as vt
from vqturb.training.loop import RunConfig, TrainingDiverged
from vqturb.training.optim import OptimConfig
from vqturb.utils.records import read_metrics

# 16x16 fields, two stages (4x down), so the latent grid is 4x4.
TINY = dict(
    hidden_dim=16,
    codebook_dim=8,
    vocab_size=16,
    base_channels=8,
    channel_mult=(1, 2),
    num_res_blocks=1,
)


def tiny_cfg(var_mode=True):
    return VQVAEConfig(**TINY, var_mode=var_mode, scales=(1, 2, 4), resolution=16, norm_groups=4)


RUN_FIELDS = {f for f in RunConfig.__dataclass_fields__}
OPTIM_FIELDS = {f for f in OptimConfig.__dataclass_fields__}


def train_cfg(data, run, **kw):
    """A tiny run: keyword arguments go to RunConfig, OptimConfig or VQVAETrainConfig by name."""
    base = dict(
        batch_size=4, lr=1e-3, val_fraction=0.34, test_fraction=0.0, log_every=1, save_every=3,
        val_every=1000, val_fields=4, progress=False,
    )  # fmt: skip
    base.update(kw)
    run_kw = {k: base.pop(k) for k in list(base) if k in RUN_FIELDS}
    optim_kw = {k: base.pop(k) for k in list(base) if k in OPTIM_FIELDS}
    return vt.VQVAETrainConfig(
        data_dir=str(data),
        run=RunConfig(checkpoint_dir=str(run), **run_kw),
        optim=OptimConfig(**optim_kw),
        **base,
    )


def model_state_arrays(model):
    """All array leaves of a model as NumPy (for comparing runs)."""
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array))]


def test_train_writes_final_checkpoint_metrics_and_figures(mat_dataset, tmp_path):
    run = tmp_path / "run"
    res = vt.train_vqvae(tiny_cfg(), train_cfg(mat_dataset, run, max_steps=4))
    assert res.final_path == run / "final.eqx" and res.final_path.is_file()
    model, header = ck.load_model(res.final_path)
    assert VQVAEConfig.from_dict(header["config"]) == tiny_cfg()
    norm = header["meta"]["normalization"]
    assert np.isfinite(norm["mean"]) and norm["std"] > 0
    recs = read_metrics(run / "metrics.jsonl")
    train = [r for r in recs if r["kind"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    for key in ("loss", "recon_mse", "commit_loss", "rel_l2", "images_per_s"):
        assert all(np.isfinite(r[key]) for r in train), key
    val = [r for r in recs if r["kind"] == "val"]
    assert val and 0 < val[-1]["val_rel_l2"] < 10 and np.isfinite(val[-1]["val_spectrum_error"])
    best = ck.read_header(run / "best.eqx")["meta"]
    assert best["step"] == 4 and best["best"] == {"val_rel_l2": val[-1]["val_rel_l2"]}
    figs = sorted(p.name for p in (run / "figures").iterdir())
    assert any(f.startswith("reconstructions_") for f in figs)
    assert any(f.startswith("spectra_") for f in figs)
    assert any(f.startswith("codebook_usage_") for f in figs)
    recon, _ = model(jnp.zeros((2, 16, 16)))
    assert recon.shape == (2, 16, 16)


def test_loss_goes_down(mat_dataset, tmp_path):
    res = vt.train_vqvae(
        tiny_cfg(var_mode=False),
        train_cfg(mat_dataset, tmp_path / "r", max_steps=30, save_every=100),
    )
    train = [r for r in read_metrics(tmp_path / "r" / "metrics.jsonl") if r["kind"] == "train"]
    first = np.mean([r["recon_mse"] for r in train[:3]])
    last = np.mean([r["recon_mse"] for r in train[-3:]])
    assert last < 0.7 * first, (first, last)
    assert res.steps == 30


def test_resumed_run_equals_uninterrupted(mat_dataset, tmp_path):
    full = vt.train_vqvae(tiny_cfg(), train_cfg(mat_dataset, tmp_path / "a", max_steps=6))
    vt.train_vqvae(tiny_cfg(), train_cfg(mat_dataset, tmp_path / "b", max_steps=3))
    assert ck.list_checkpoints(tmp_path / "b") == [3]
    resumed = vt.train_vqvae(
        tiny_cfg(), train_cfg(mat_dataset, tmp_path / "b", max_steps=6, resume="auto")
    )
    a, _ = ck.load_model(full.final_path)
    b, _ = ck.load_model(resumed.final_path)
    for x, y in zip(model_state_arrays(a), model_state_arrays(b), strict=True):
        np.testing.assert_array_equal(x, y)
    steps_b = [
        r["step"] for r in read_metrics(tmp_path / "b" / "metrics.jsonl") if r["kind"] == "train"
    ]
    assert steps_b == [1, 2, 3, 4, 5, 6]


def test_augmented_run_resumes_exactly_and_trains_on_other_fields(mat_dataset, tmp_path):
    """The symmetries are drawn from the step's key: a resumed augmented run equals an
    uninterrupted one, and it differs from the same run without augmentation."""
    aug = dict(augment=("roll", "rot90", "mirror"))
    full = vt.train_vqvae(tiny_cfg(), train_cfg(mat_dataset, tmp_path / "a", max_steps=4, **aug))
    vt.train_vqvae(tiny_cfg(), train_cfg(mat_dataset, tmp_path / "b", max_steps=3, **aug))
    resumed = vt.train_vqvae(
        tiny_cfg(), train_cfg(mat_dataset, tmp_path / "b", max_steps=4, resume="auto", **aug)
    )
    plain = vt.train_vqvae(tiny_cfg(), train_cfg(mat_dataset, tmp_path / "c", max_steps=4))
    a, b, c = (ck.load_model(r.final_path)[0] for r in (full, resumed, plain))
    for x, y in zip(model_state_arrays(a), model_state_arrays(b), strict=True):
        np.testing.assert_array_equal(x, y)
    assert any(
        not np.array_equal(x, y)
        for x, y in zip(model_state_arrays(a), model_state_arrays(c), strict=True)
    )


def test_resume_with_other_model_flags_is_refused(mat_dataset, tmp_path):
    vt.train_vqvae(tiny_cfg(), train_cfg(mat_dataset, tmp_path / "r", max_steps=3))
    other = tiny_cfg().replace(vocab_size=32)
    with pytest.raises(Exception, match="model configuration"):
        vt.train_vqvae(other, train_cfg(mat_dataset, tmp_path / "r", max_steps=6, resume="auto"))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(mat_dataset, tmp_path, monkeypatch):
    run = tmp_path / "r"
    vt.train_vqvae(tiny_cfg(), train_cfg(mat_dataset, run, max_steps=3))
    good = ck.checkpoint_paths(run, 3)[0].read_bytes()
    (run / "final.eqx").unlink()
    orig = vt.vqvae_loss

    def poisoned(model, batch, **kw):
        loss, aux = orig(model, batch, **kw)
        return loss * jnp.nan, aux

    monkeypatch.setattr(vt, "vqvae_loss", poisoned)
    eqx.clear_caches()  # the step compiled by the first run would not see the patched loss
    jax.clear_caches()
    with pytest.raises(TrainingDiverged, match="ckpt_000000003"):
        vt.train_vqvae(tiny_cfg(), train_cfg(mat_dataset, run, max_steps=6, resume="auto"))
    assert ck.list_checkpoints(run) == [3]
    assert ck.checkpoint_paths(run, 3)[0].read_bytes() == good
    assert not (run / "final.eqx").exists()
    monkeypatch.undo()
    eqx.clear_caches()
    jax.clear_caches()


def test_cli_train_vqvae_and_errors(mat_dataset, tmp_path, capsys):
    run = tmp_path / "cli"
    argv = [
        "train-vqvae",
        "--data_dir",
        str(mat_dataset),
        "--checkpoint_dir",
        str(run),
        "--hidden_dim",
        "16",
        "--codebook_dim",
        "8",
        "--vocab_size",
        "16",
        "--base_channels",
        "8",
        "--channel_mult",
        "1,2",
        "--num_res_blocks",
        "1",
        "--var_mode",
        "--scales",
        "1,2,4",
        "--batch_size",
        "4",
        "--max_steps",
        "2",
        "--log_every",
        "1",
        "--augment",
        "mirror,roll",
    ]
    assert main(argv) == 0
    assert (run / "final.eqx").is_file()
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train"]["augment"] == ["roll", "mirror"] and cfg["train"]["mirror_sign"] == -1
    assert main([*argv[:-1], "flip", "--checkpoint_dir", str(tmp_path / "flip")]) == 2
    assert "--augment" in capsys.readouterr().err
    assert cfg["model"]["vocab_size"] == 16 and cfg["model"]["var_mode"] is True
    assert cfg["train"]["optim"]["lr"] == 1e-4  # SPEC default when not given
    assert cfg["train"]["optim"]["optimizer"] == "adam"
    assert main(["train-vqvae", "--data_dir", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "missing" in err and "Traceback" not in err
    # six stages downsample 64x: 16x16 fields are not divisible
    bad = [
        "train-vqvae",
        "--data_dir",
        str(mat_dataset),
        "--checkpoint_dir",
        str(tmp_path / "bad"),
        "--channel_mult",
        "1,1,1,1,1,1",
        "--base_channels",
        "8",
        "--max_steps",
        "1",
    ]
    assert main(bad) == 2
    assert "divisible" in capsys.readouterr().err


SCRIPT = r"""
import json, sys
sys.path.insert(0, {tests!r})
from vqturb.models import VQVAEConfig
from vqturb.training import vqvae_task as vt
from test_vqvae_task import tiny_cfg, train_cfg
import jax
assert jax.device_count() == {n}, jax.devices()
vt.train_vqvae(tiny_cfg(), train_cfg({data!r}, {run!r}, max_steps=3, kmeans_init=False))
"""


def test_data_parallel_matches_single_device(mat_dataset, tmp_path):
    """4 forced host devices give the same losses as 1 device (tolerance 1e-5 relative: the
    reductions are split differently over devices, so the last bits may differ)."""
    runs = {}
    n = 4
    for devices in (1, n):
        run = tmp_path / f"dev{devices}"
        env = {
            **os.environ,
            "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
            "JAX_PLATFORMS": "cpu",
        }
        code = SCRIPT.format(
            tests=str(Path(__file__).parent), n=devices, data=str(mat_dataset), run=str(run)
        )
        r = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
        )
        assert r.returncode == 0, r.stderr[-3000:]
        runs[devices] = [
            x["loss"] for x in read_metrics(run / "metrics.jsonl") if x["kind"] == "train"
        ]
    np.testing.assert_allclose(runs[n], runs[1], rtol=1e-5)


def test_bench_train_reports_throughput_and_flops():
    from vqturb.training.bench import bench_train

    out = bench_train(tiny_cfg(), resolution=16, batch_size=2, steps=2)
    assert out["images_per_s"] > 0 and out["ms_per_step"] > 0
    assert out["gflop_per_step"] is None or out["gflop_per_step"] > 0
    assert out["matmul_gflops"] > 0
    assert json.loads(json.dumps(out)) == out


def test_bf16_training_keeps_fp32_parameters_and_codebooks(mat_dataset, tmp_path):
    res = vt.train_vqvae(
        tiny_cfg(), train_cfg(mat_dataset, tmp_path / "bf16", max_steps=2, precision="bf16")
    )
    model, _ = ck.load_model(res.final_path)
    assert all(x.dtype == np.float32 for x in model_state_arrays(model) if x.dtype.kind == "f")
    train = [r for r in read_metrics(tmp_path / "bf16" / "metrics.jsonl") if r["kind"] == "train"]
    assert all(np.isfinite(r["loss"]) for r in train)
