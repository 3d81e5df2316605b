"""A trained NSP model applies to flows it never saw: tokens of a new dataset (another generator
seed), made with the training tokens' vocabulary (`tokenizer save --vocab_from`), evaluate with
`eval-nsp`."""

import json

import numpy as np
import pytest

from tiny_vqvae import tiny_vqvae_config
from vqturb.cli import main

# 16² fields of the forced flow (fixed dt: one compilation of the stepper for both datasets)
GEN = ["--resolution", "16", "--n_traj", "3", "--n_save", "8", "--t_spinup", "0.3", "--dt", "0.05"]
SCALES = (1, 2, 4)


def _vqvae_checkpoint(path, data_dir):
    """An untrained VAR VQ-VAE (its codes are as good as any for the plumbing), saved like
    train-vqvae does, with the normalisation of ``data_dir``."""
    import jax.random as jr

    from vqturb import checkpoint
    from vqturb.data import open_dataset
    from vqturb.models import build_model

    cfg = tiny_vqvae_config(base_channels=8, var_mode=True, scales=SCALES)
    with open_dataset(data_dir) as ds:
        x = np.stack([ds.get(0, t) for t in range(4)])
    norm = {"mean": float(x.mean()), "std": float(x.std())}
    model = build_model(cfg, key=jr.key(0))
    checkpoint.save_model(
        path, model, kind="vqvae", config=cfg.to_dict(), meta={"normalization": norm}
    )
    return path


@pytest.mark.slow
def test_nsp_trained_on_one_dataset_evaluates_on_another(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["generate", "--out", str(a), *GEN, "--seed", "0"]) == 0
    assert main(["generate", "--out", str(b), *GEN, "--seed", "1"]) == 0
    vq = _vqvae_checkpoint(tmp_path / "vq.eqx", a)
    tok = ["tokenizer", "save", "--checkpoint", str(vq), "--no_progress"]
    assert main([*tok, "--data_dir", str(a), "--output", str(tmp_path / "a.npz")]) == 0
    nsp = tmp_path / "nsp"
    assert (
        main(
            [
                "train-nsp",
                "--tokens_path",
                str(tmp_path / "a.npz"),
                "--vqvae_checkpoint",
                str(vq),
                "--preset",
                "cpu",
                "--n_layer",
                "1",
                "--n_embd",
                "16",
                "--n_head",
                "2",
                "--batch_size",
                "4",
                "--max_steps",
                "2",
                "--checkpoint_dir",
                str(nsp),
            ]
        )  # fmt: skip
        == 0
    )
    capsys.readouterr()
    out_b = tmp_path / "b.npz"
    rc = main(
        [
            *tok,
            "--data_dir",
            str(b),
            "--output",
            str(out_b),
            "--vocab_from",
            str(tmp_path / "a.npz"),
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    za, zb = np.load(tmp_path / "a.npz"), np.load(out_b)
    # the training vocabulary, unchanged: same ids, same codebook rows
    for f in ("scales", "scale_offsets", "scale_vocab_sizes", "unified_to_original", "codebook"):
        np.testing.assert_array_equal(zb[f], za[f], err_msg=f)
    assert zb["remapped_tokens"].shape == (len(SCALES),)
    assert f"{int(zb['remapped_tokens'].sum())} of" in printed
    rows = zb["indices_flat"]
    start = 0
    for k, s in enumerate(SCALES):
        part = rows[:, start : start + s * s]
        lo = za["scale_offsets"][k]
        assert part.min() >= lo and part.max() < lo + za["scale_vocab_sizes"][k]
        start += s * s
    ev = tmp_path / "eval"
    rc = main(
        [
            "eval-nsp", "--nsp_checkpoint", str(nsp / "final.eqx"), "--vqvae_checkpoint", str(vq),
            "--tokens_path", str(out_b), "--data_dir", str(b), "--n_samples", "2",
            "--n_ensemble", "2", "--n_steps", "3", "--skill_steps", "2", "--output_dir", str(ev),
            "--no_progress",
        ]
    )  # fmt: skip
    assert rc == 0
    m = json.loads((ev / "metrics.json").read_text())
    assert m["reference"] == "raw GT" and m["n_members"] == 2
    assert m["settings"]["split"].startswith("all frames")  # every flow of b is new to the model
    for key in ("rel_l2_generated", "rel_l2_ensemble_mean", "rel_l2_persistence"):
        for suffix in ("", "_recon"):
            v = m["skill"][key + suffix]
            assert len(v) == 2 and np.all(np.isfinite(v)), key + suffix
    assert m["teacher_forced"]["n_pairs"] > 0
