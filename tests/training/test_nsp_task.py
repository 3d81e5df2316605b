"""NSP training: pairs and splits, bad input, learning a known rule, checkpoints, exact resume,
the command line and data parallelism."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import pytest

from synthetic_tokens import synthetic_tokens, write_synthetic_tokens
from vqturb import checkpoint as ck
from vqturb.cli import main
from vqturb.data.splits import VAL, SplitRule
from vqturb.data.tokens_file import TokensFile
from vqturb.errors import InputError
from vqturb.models.nsp_config import NSPConfig
from vqturb.training.loop import RunConfig
from vqturb.training.nsp_task import NSPTrainConfig, train_nsp
from vqturb.training.optim import OptimConfig
from vqturb.utils.fileio import atomic_save_npz, file_sha256
from vqturb.utils.records import read_metrics

# one tiny trunk for every run in this file: the compiled step is shared between tests
TRUNK = {"n_layer": 2, "n_head": 2, "n_embd": 32}


def arrays_of(model):
    return [np.asarray(x) for x in jax.tree.leaves(eqx.filter(model, eqx.is_array))]


def config(tokens_path, run_dir, **kw):
    """A tiny run: keyword arguments go to RunConfig, OptimConfig or NSPTrainConfig by name."""
    base = dict(
        vqvae_checkpoint=str(Path(tokens_path).parent / "vqvae.eqx"),
        batch_size=4, lr=1e-3, log_every=2, save_every=3, val_every=100, progress=False,
    )  # fmt: skip
    base.update(kw)
    run_kw = {k: base.pop(k) for k in list(base) if k in RunConfig.__dataclass_fields__}
    optim_kw = {k: base.pop(k) for k in list(base) if k in OptimConfig.__dataclass_fields__}
    return NSPTrainConfig(
        tokens_path=str(tokens_path),
        run=RunConfig(checkpoint_dir=str(run_dir), **run_kw),
        optim=OptimConfig(**{"optimizer": "lion", **optim_kw}),
        **base,
    )


def model_config(tokens_path):
    return NSPConfig.from_tokens(TokensFile.read(tokens_path).fields, **TRUNK)


def test_pairs_stay_in_trajectory_and_split_is_by_trajectory(tmp_path):
    arrays = synthetic_tokens(n_traj=5, n_steps=6).arrays()
    # drop one snapshot: time index 3 of trajectory 1 (a gap: pairs across it must not exist)
    keep = ~((arrays["trajectory_id"] == 1) & (arrays["time_index"] == 3))
    for f in ("indices_flat", "vectors_flat", "trajectory_id", "time_index"):
        arrays[f] = arrays[f][keep]
    atomic_save_npz(tmp_path / "t.npz", **arrays)
    tok = TokensFile.read(tmp_path / "t.npz")
    rule = SplitRule(val_fraction=0.2, test_fraction=0.2, seed=0)
    _, want_val, want_test = rule.trajectory_ids(5)
    for dt in (1, 2):
        pairs = tok.pairs(dt)
        tr, ti = tok.trajectory_id, tok.time_index
        assert (tr[pairs[:, 0]] == tr[pairs[:, 1]]).all()
        assert (ti[pairs[:, 1]] - ti[pairs[:, 0]] == dt).all()
        # 5 trajectories x (6 - dt) pairs, minus those touching the gap
        assert len(pairs) == 5 * (6 - dt) - 2
        train, val, test = tok.split_pairs(dt, rule)
        assert len(train) + len(val) + len(test) == len(pairs)  # whole trajectories
        assert set(tr[val[:, 0]]) == set(want_val.tolist())
        assert set(tr[test[:, 0]]) == set(want_test.tolist())
        assert not set(tr[train.ravel()]) & (set(want_val.tolist()) | set(want_test.tolist()))


def test_nsp_validates_on_the_datasets_validation_trajectories(tmp_path):
    """The split recorded in the tokens file (the VQ-VAE run's rule) decides what the NSP
    model validates on: the dataset's own validation trajectories, never its test ones."""
    from scipy.io import savemat

    from vqturb.data import open_dataset

    for i in range(8):
        d = tmp_path / "data" / f"traj_{i}"
        d.mkdir(parents=True)
        for t in range(4):
            savemat(d / f"{t}.mat", {"Omega": np.zeros((4, 4))})
    rule = SplitRule(val_fraction=0.25, test_fraction=0.25, seed=5)
    splits = open_dataset(tmp_path / "data").split(0.25, 0.25, seed=5)
    vq = tmp_path / "vqvae.eqx"
    vq.write_bytes(b"stand-in")
    path = write_synthetic_tokens(
        tmp_path / "tokens.npz", n_traj=8, n_steps=4, split_rule=rule,
        checkpoint_sha256=file_sha256(vq),
    )  # fmt: skip
    tok = TokensFile.read(path)
    assert sorted(set(tok.trajectory_id[tok.split_labels() == VAL])) == splits.val.trajectory_set
    run = tmp_path / "run"
    # a different --seed and --val_fraction do not move a recorded split
    cfg = config(path, run, max_steps=1, seed=3, val_fraction=0.5)
    train_nsp(NSPConfig.from_tokens(tok.fields, **TRUNK), cfg)
    meta = json.loads((run / "config.json").read_text())["meta"]
    assert meta["val_trajectories"] == splits.val.trajectory_set
    assert meta["split"] == rule.to_dict()


def test_bad_inputs_are_clear_input_errors(tmp_path, tokens_path):
    arrays = synthetic_tokens(n_traj=2, n_steps=3).arrays()
    missing = {k: v for k, v in arrays.items() if k not in ("codebook", "time_index")}
    atomic_save_npz(tmp_path / "missing.npz", **missing)
    with pytest.raises(InputError, match="missing codebook, time_index"):
        TokensFile.read(tmp_path / "missing.npz")
    bad = dict(arrays)
    bad["indices_flat"] = bad["indices_flat"].copy()
    bad["indices_flat"][0, 0] = 3  # scale 0 has the single id 0
    atomic_save_npz(tmp_path / "range.npz", **bad)
    with pytest.raises(InputError, match="scale 0"):
        TokensFile.read(tmp_path / "range.npz")
    tok = TokensFile.read(tokens_path)
    with pytest.raises(InputError, match="longer than --dt 12"):
        tok.pairs(12)
    other = tmp_path / "other.eqx"
    other.write_bytes(b"a different checkpoint")
    cfg = config(tokens_path, tmp_path / "run", vqvae_checkpoint=str(other))
    with pytest.raises(InputError, match="checkpoint_sha256"):
        train_nsp(model_config(tokens_path), cfg)
    # the command line prints one line and exits 2
    rc = main(["train-nsp", "--tokens_path", str(tokens_path), "--vqvae_checkpoint", str(other)])
    assert rc == 2


def test_learns_the_rule_logs_per_scale_and_leaves_final(tmp_path, tokens_path):
    run = tmp_path / "run"
    cfg = config(tokens_path, run, all_scales=True, max_steps=120, log_every=20, val_every=40)
    res = train_nsp(model_config(tokens_path), cfg)
    losses = [h["loss"] for h in res.history]
    assert losses[-1] < 0.75 * losses[0], losses
    records = read_metrics(run / "metrics.jsonl")
    train = [r for r in records if r["kind"] == "train"]
    assert {"loss_s1", "loss_s2", "acc_s1", "acc_s2", "tokens_per_s"} <= set(train[-1])
    val = [r for r in records if r["kind"] == "val"]
    assert [r["step"] for r in val] == [40, 80, 120]
    # best.eqx: the model of the validation with the lowest loss, its score in the header
    best = min(val, key=lambda r: r["loss"])
    header = ck.read_header(run / "best.eqx")
    assert header["meta"]["step"] == best["step"] and header["meta"]["best"] == {
        "loss": best["loss"]
    }
    model, header = ck.load_model(run / "final.eqx", kind="nsp")
    assert header["meta"]["step"] == 120 and header["config"] == model_config(tokens_path).to_dict()
    assert model.config == model_config(tokens_path)
    # the frozen codebook is the tokens file's, untouched by training
    np.testing.assert_array_equal(np.asarray(model.codebook), TokensFile.read(tokens_path).codebook)


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, tokens_path, caplog):
    mc = model_config(tokens_path)
    with caplog.at_level(logging.WARNING), jax.log_compiles(True):
        full = train_nsp(mc, config(tokens_path, tmp_path / "full", max_steps=6))
    # the step compiles at most once for the whole run (never per step or per drawn scale)
    assert sum("Compiling jit(train_step)" in r.getMessage() for r in caplog.records) <= 1
    train_nsp(mc, config(tokens_path, tmp_path / "part", max_steps=3))
    resumed = train_nsp(mc, config(tokens_path, tmp_path / "part", max_steps=6, resume="auto"))
    a, _ = ck.load_model(full.final_path, kind="nsp")
    b, _ = ck.load_model(resumed.final_path, kind="nsp")
    for x, y in zip(arrays_of(a), arrays_of(b), strict=True):
        np.testing.assert_array_equal(x, y)
    # the SPEC-mode run logged only the scale it drew: per-scale keys appear over the run
    assert any("loss_s2" in r for r in read_metrics(tmp_path / "full" / "metrics.jsonl"))


def test_copy_prior_starts_at_the_training_pairs_copy_rate(tokens_path):
    """A fresh run's copy logit is the log-odds of copying t0 on its own training pairs (and only
    those: validation and test rows do not leak into the initialisation)."""
    import dataclasses

    import jax.random as jr

    from vqturb.models.nsp import PRIOR_GAIN
    from vqturb.training.nsp_task import NSPTask, copy_accuracy

    mc = dataclasses.replace(model_config(tokens_path), copy_prior=True)
    task = NSPTask(mc, config(tokens_path, "unused", max_steps=1))
    model = task.prepare(task.init_model(jr.key(0)), jr.key(1))
    t, pairs = task.tokens.indices, task.train_pairs
    rate = copy_accuracy(mc, t[pairs[:, 0]], t[pairs[:, 1]])
    v = np.asarray([mc.scale_vocab_sizes[k] for k in mc.trainable_scales])
    r = np.clip(rate, 1 / v, 0.999)
    np.testing.assert_allclose(
        PRIOR_GAIN * np.asarray(model.copy_logit), np.log(r * (v - 1) / (1 - r)), rtol=1e-5
    )
    assert not np.asarray(model.near_gain).any()
    assert len(pairs) < len(task.tokens.pairs(1))  # validation pairs exist and were left out


def test_cli_trains_and_writes_final(tmp_path, tokens_path):
    run = tmp_path / "cli"
    vq = Path(tokens_path).parent / "vqvae.eqx"
    args = ["train-nsp", "--tokens_path", str(tokens_path), "--vqvae_checkpoint", str(vq)]
    args += ["--checkpoint_dir", str(run), "--max_steps", "2", "--batch_size", "4", "--lr", "1e-3"]
    args += ["--n_layer", "2", "--n_head", "2", "--n_embd", "32", "--log_every", "2"]
    assert main([*args, "--copy_prior"]) == 0
    assert (run / "final.eqx").is_file()
    header = ck.read_header(run / "final.eqx")
    assert header["kind"] == "nsp" and header["config"]["n_embd"] == 32
    assert header["config"]["copy_prior"] is True
    assert json.loads((run / "config.json").read_text())["train"]["optim"]["optimizer"] == "lion"


SCRIPT = r"""
import json, sys
sys.path[:0] = [{tests!r}, {tests!r} + "/.."]  # test_nsp_task and the tests/ helpers
import jax
assert jax.device_count() == 4, jax.devices()
from test_nsp_task import config, model_config
from vqturb.training.nsp_task import train_nsp
train_nsp(model_config({tokens!r}), config({tokens!r}, {run!r}, max_steps=4, log_every=1))
"""


@pytest.mark.slow
def test_data_parallel_matches_single_device(tmp_path, tokens_path):
    """4 forced host devices give the same losses as one (reductions split differently over the
    devices may change the last bits, hence the tolerance)."""
    train_nsp(
        model_config(tokens_path), config(tokens_path, tmp_path / "one", max_steps=4, log_every=1)
    )
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        "JAX_PLATFORMS": "cpu",
    }
    code = SCRIPT.format(
        tests=str(Path(__file__).parent), tokens=str(tokens_path), run=str(tmp_path / "four")
    )
    r = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stderr[-3000:]
    losses = {
        n: [x["loss"] for x in read_metrics(tmp_path / n / "metrics.jsonl") if x["kind"] == "train"]
        for n in ("one", "four")
    }
    assert len(losses["one"]) == 4
    np.testing.assert_allclose(losses["four"], losses["one"], rtol=1e-5)


def test_cli_an_invalid_trunk_is_one_line_naming_the_flags(tmp_path, tokens_path, capsys):
    vq = Path(tokens_path).parent / "vqvae.eqx"
    rc = main(["train-nsp", "--tokens_path", str(tokens_path), "--vqvae_checkpoint", str(vq),
               "--checkpoint_dir", str(tmp_path / "r"), "--n_head", "3", "--n_embd", "32"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "--n_head" in err and "must divide" in err
    assert not (tmp_path / "r").exists()
