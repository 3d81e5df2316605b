import json
from html.parser import HTMLParser

import numpy as np
import pytest

from tiny_vqvae import tiny_vqvae_config
from vqturb.data.splits import SplitRule
from vqturb.data.tokens_file import TokensFile
from vqturb.errors import InputError
from vqturb.evaluation import heldout as H
from vqturb.evaluation import rollout as RO
from vqturb.evaluation import rollout_eval as RE
from vqturb.evaluation import rollout_report as RR

SCALES = (1, 2, 4)
OFFSETS = (0, 1, 5)
VOCABS = (1, 4, 8)
T = 21
LAYOUT = {"scales": SCALES, "scale_offsets": OFFSETS, "scale_vocab_sizes": VOCABS}


def _rows(rng, n):
    rows = np.zeros((n, T), np.int32)
    rows[:, 1:5] = 1 + rng.integers(0, 4, (n, 4))
    rows[:, 5:] = 5 + rng.integers(0, 8, (n, 16))
    return rows


def _fake_decode(rows):
    """A stand-in decoder: scale-2 and scale-3 ids as smooth-ish 16x16 fields."""
    rows = np.asarray(rows)
    lead = rows.shape[:-1]
    r = rows.reshape(-1, T)
    c2 = (r[:, 1:5].reshape(-1, 2, 2) - 2.5).astype(np.float32)
    c3 = (r[:, 5:].reshape(-1, 4, 4) - 8.5).astype(np.float32) / 4
    f = np.kron(c2, np.ones((8, 8), np.float32)) + np.kron(c3, np.ones((4, 4), np.float32))
    return f.reshape(lead + (16, 16))


def _tokens_file(tmp_path, rng, n_traj=5, n_t=12, **extra):
    n = n_traj * n_t
    path = tmp_path / "tokens.npz"
    np.savez(
        path,
        indices_flat=_rows(rng, n),
        codebook=rng.standard_normal((13, 3)).astype(np.float32),
        scales=np.array(SCALES),
        scale_offsets=np.array(OFFSETS),
        scale_vocab_sizes=np.array(VOCABS),
        unified_to_original=np.r_[0, np.arange(4), np.arange(8)],
        trajectory_id=np.repeat(np.arange(n_traj), n_t),
        time_index=np.tile(np.arange(n_t), n_traj),
        norm_mean=np.float32(0.5),
        norm_std=np.float32(2.0),
        checkpoint_sha256="abc",
        **extra,
    )
    return path


def test_load_tokens_and_missing_fields(tmp_path, rng):
    ts = TokensFile.read(_tokens_file(tmp_path, rng))
    assert ts.indices.shape == (60, T) and ts.scales == SCALES
    assert ts.norm_std == 2.0 and ts.checkpoint_sha256 == "abc"
    bad = tmp_path / "bad.npz"
    np.savez(bad, indices_flat=np.zeros((2, T), np.int32), scales=np.array(SCALES))
    with pytest.raises(InputError, match="missing codebook, scale_offsets"):
        TokensFile.read(bad)
    with pytest.raises(InputError, match="no such"):
        TokensFile.read(tmp_path / "nope.npz")


def _tokens(traj, times):
    """A minimal in-memory tokens file with these trajectory ids and time indices."""
    traj = np.asarray(traj)
    return TokensFile(
        indices=np.zeros((traj.size, T), np.int32) + np.r_[0, [1] * 4, [5] * 16],
        codebook=np.zeros((13, 3), np.float32),
        unified_to_original=np.r_[0, np.arange(4), np.arange(8)],
        trajectory_id=traj,
        time_index=times,
        **LAYOUT,
    )


def test_heldout_trajectories_are_the_datasets_test_split(tmp_path):
    from scipy.io import savemat

    from vqturb.data import open_dataset

    for i in range(7):
        for t in range(1, 4):
            d = tmp_path / "data" / f"traj_{i:03d}"
            d.mkdir(parents=True, exist_ok=True)
            savemat(d / f"{t}.mat", {"Omega": np.zeros((4, 4))})
    ds = open_dataset(tmp_path / "data")
    traj, times = np.repeat(np.arange(7), 3), np.tile(np.arange(3), 7)
    # a file without a recorded split, an NSP run with the default rule
    name, frames = H.heldout_frames(_tokens(traj, times), {"split": SplitRule().to_dict()})
    assert name == "test" and sorted(frames) == ds.split().test.trajectory_set
    # a recorded split (the VQ-VAE run's rule) wins over the NSP run's
    rule = SplitRule(0.3, 0.3, seed=4)
    rec = _tokens(traj, times)
    rec = TokensFile(**{**_fields(rec), "split": rule.labels(traj, times), "split_rule": rule})
    name, frames = H.heldout_frames(rec, {"split": SplitRule().to_dict()})
    assert sorted(frames) == ds.split(0.3, 0.3, seed=4).test.trajectory_set


def _fields(tokens):
    return {k: v for k, v in tokens.__dict__.items() if not k.startswith("_")}


def test_split_single_trajectory_and_fallbacks():
    name, fr = H.heldout_frames(_tokens(np.zeros(20, int), np.arange(20)), {})
    assert name == "test" and list(fr[0]) == [18, 19]
    name, fr = H.heldout_frames(_tokens(np.repeat([0, 1], 3), np.tile(np.arange(3), 2)), {})
    assert name == "val" and len(fr) == 1  # two trajectories: no test split, use val


def test_heldout_frames_of_an_nsp_run_before_the_shared_split(tmp_path, rng):
    ts = TokensFile.read(_tokens_file(tmp_path, rng))
    # its own validation trajectories (it trained on the test split)
    name, fr = H.heldout_frames(ts, {"val_trajectories": [3, 99]})
    assert "NSP" in name and list(fr) == [3] and list(fr[3]) == list(range(12))
    name, fr = H.heldout_frames(ts, {})
    assert name == "test"
    name, _ = H.heldout_frames(ts, {"val_trajectories": []})
    assert "in-sample" in name


def test_choose_starts_and_windows(tmp_path, rng):
    ts = TokensFile.read(_tokens_file(tmp_path, rng))
    frames = {1: np.arange(12), 3: np.arange(12)}
    starts = H.choose_starts(frames, 4, 5)
    assert sorted(starts) == [(1, 0), (1, 6), (3, 0), (3, 6)]
    gt = H.ground_truth_windows(ts, starts, 5)
    assert gt.shape == (4, 6, T)
    row = ts.row_of()[(starts[1][0], starts[1][1] + 2)]
    np.testing.assert_array_equal(gt[1, 2], ts.indices[row])
    # a longer rollout than the trajectory holds: ground truth is cut to what every sample has
    assert H.ground_truth_windows(ts, [(0, 0), (0, 4)], 20).shape[1] == 8


def test_grid_times():
    assert RR.grid_times(100) == [0, 1, 2, 5, 10, 25, 50, 100]
    assert RR.grid_times(3, n_gt=3) == [0, 1, 2, 3]


def _tiny_nsp():
    import jax.random as jr

    from vqturb.models.nsp import build_nsp
    from vqturb.models.nsp_config import NSPConfig

    cfg = NSPConfig(
        scales=SCALES,
        scale_offsets=OFFSETS,
        scale_vocab_sizes=VOCABS,
        codebook_dim=4,
        n_layer=1,
        n_head=2,
        n_embd=16,
    )
    cb = np.random.default_rng(1).standard_normal((13, 4)).astype(np.float32)
    return build_nsp(cfg, cb, key=jr.key(0))


def test_rollout_tokens_with_the_nsp_model(rng):
    import jax.random as jr

    pytest.importorskip("vqturb.models.nsp_sampling")
    model = _tiny_nsp()
    t0 = _rows(rng, 3)
    toks, timing = RO.rollout_tokens(model, t0, 6, key=jr.key(0), chunk=3, progress=False)
    assert toks.shape == (3, 7, T)
    np.testing.assert_array_equal(toks[:, 0], t0)
    for (a, b), off, v in zip(((0, 1), (1, 5), (5, 21)), OFFSETS, VOCABS, strict=True):
        assert toks[:, :, a:b].min() >= off and toks[:, :, a:b].max() < off + v
    assert timing["frames"] == 18 and timing["steady_frames_per_s"] > 0
    again, _ = RO.rollout_tokens(model, t0, 6, key=jr.key(0), chunk=3, progress=False)
    np.testing.assert_array_equal(toks, again)  # same seed, same rollout


def test_rollout_tokens_chains_chunks():
    """Each chunk starts from the last frame of the previous one; sampling flags pass through."""
    import jax.numpy as jnp

    calls = []

    def fake(model, cur, n, *, key, temperature, top_k, top_p):
        calls.append((n, temperature, top_k, top_p))
        return jnp.stack([cur + k + 1 for k in range(n)], axis=1)

    t0 = np.zeros((2, T), np.int32)
    import jax.random as jr

    toks, _ = RO.rollout_tokens(
        None,
        t0,
        7,
        key=jr.key(0),
        temperature=0.5,
        top_k=3,
        top_p=0.9,
        chunk=3,
        progress=False,
        rollout_fn=fake,
    )
    assert [c[0] for c in calls] == [3, 3, 1] and calls[0][1:] == (0.5, 3, 0.9)
    np.testing.assert_array_equal(toks[0, :, 0], np.arange(8))


def test_evaluate_rollouts_writes_everything(tmp_path, rng):
    s, n = 2, 6
    gt = _rows(rng, s * 5).reshape(s, 5, T)  # shorter ground truth than the rollout
    gen = np.concatenate([gt[:, :1], _rows(rng, s * n).reshape(s, n, T)], axis=1)
    raw = _fake_decode(gt) + 0.05 * rng.standard_normal((s, 5, 16, 16)).astype(np.float32)
    stale = [
        tmp_path / "out" / "figures" / "grid_sample9.png",
        tmp_path / "out" / "videos" / "rollout_sample9.mp4",
    ]
    for p in stale:  # an earlier evaluation with more samples
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"old")
    (tmp_path / "out" / "figures" / "notes.txt").write_text("the user's")
    m = RR.evaluate_rollouts(
        gen,
        gt,
        _fake_decode,
        tmp_path / "out",
        layout=LAYOUT,
        raw_gt=raw,
        starts=[(1, 0), (3, 2)],
        settings={"seed": 0},
        skill_steps=3,
        fps=4,
        value_range=(-6.0, 6.0),
        progress=False,
    )
    out = tmp_path / "out"
    assert not any(p.exists() for p in stale) and (out / "figures" / "notes.txt").exists()
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["summary"] == pytest.approx(m["summary"])
    assert saved["n_steps"] == n and saved["n_gt_frames"] == 5
    assert saved["value_range"] == [-6.0, 6.0] and saved["pixels"]["edges"][0] == -6.0
    assert len(saved["tokens"]["per_scale"]) == 3
    assert set(saved["pixels"]["pairs"]) == {
        "generated_vs_reconstructed_gt",
        "generated_vs_raw_gt",
        "reconstructed_gt_vs_raw_gt",
    }
    assert saved["skill"]["step"] == [1, 2, 3] and "rel_l2_floor" in saved["skill"]
    for key in (
        "rel_l2_generated",
        "rel_l2_ensemble_mean",
        "rel_l2_persistence",
        "rel_l2_generated_recon",
        "rel_l2_ensemble_mean_recon",
        "rel_l2_persistence_recon",
    ):
        assert len(saved["skill"][key]) == 3, key
    # one member per start: the ensemble mean is the rollout itself
    assert saved["skill"]["rel_l2_ensemble_mean"] == pytest.approx(
        saved["skill"]["rel_l2_generated"]
    )
    assert 0.0 <= saved["physics"]["enstrophy_in_range_fraction"] <= 1.0
    assert saved["physics"]["vqvae_spectrum_error_vs_raw_gt"] > 0
    assert {"skill", "skill_recon"} <= set(saved["files"]["figures"])
    assert len(saved["time_series"]["enstrophy_generated"]) == n + 1
    for rel in (
        list(saved["files"]["figures"].values())
        + saved["files"]["grids"]
        + saved["files"]["videos"]
    ):
        assert (out / rel).stat().st_size > 0
    z = np.load(out / "tokens_rollout.npz")
    np.testing.assert_array_equal(z["generated"], gen)
    np.testing.assert_array_equal(z["starts"], [[1, 0], [3, 2]])

    class Imgs(HTMLParser):
        n = 0

        def handle_starttag(self, tag, attrs):
            if tag == "img":
                assert dict(attrs)["src"].startswith("data:image/")
                self.n += 1

    p = Imgs()
    p.feed((out / "report.html").read_text())
    assert p.n >= 6 + s  # six figures and one grid per sample
    assert not [f for f in out.rglob(".*")]  # no temporary files left


def test_evaluate_rollouts_rejects_mismatched_raw(tmp_path, rng):
    gt = _rows(rng, 4).reshape(2, 2, T)
    with pytest.raises(InputError, match="raw ground truth"):
        RR.evaluate_rollouts(
            gt,
            gt,
            _fake_decode,
            tmp_path,
            layout=LAYOUT,
            raw_gt=np.zeros((2, 3, 16, 16), np.float32),
            progress=False,
        )


def _tiny_vqvae():
    import jax.random as jr

    from vqturb.models import build_model

    cfg = tiny_vqvae_config(base_channels=8, vocab_size=8, var_mode=True, scales=SCALES)
    return build_model(cfg, key=jr.key(0)), cfg


def test_vqvae_decoder_maps_unified_ids_and_denormalises(tmp_path, rng):
    import jax.numpy as jnp

    model, _ = _tiny_vqvae()
    ts = TokensFile.read(_tokens_file(tmp_path, rng))
    # a non-trivial unified -> original map: scale 2's ids reversed
    u2o = np.r_[0, np.arange(4), np.arange(8)[::-1]].astype(np.int32)
    ts = TokensFile(**{**_fields(ts), "unified_to_original": u2o})
    decode = RO.vqvae_decoder(model, ts, batch_size=4)
    rows = _rows(rng, 5)  # not a multiple of the batch: the last batch is padded
    got = decode(rows)
    assert got.shape == (5, 16, 16)
    orig = u2o[rows]
    idx = (
        jnp.asarray(orig[:, :1].reshape(5, 1, 1)),
        jnp.asarray(orig[:, 1:5].reshape(5, 2, 2)),
        jnp.asarray(orig[:, 5:].reshape(5, 4, 4)),
    )
    want = np.asarray(model.decode_indices(idx)) * 2.0 + 0.5
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert decode(rows.reshape(5, 1, T)).shape == (5, 1, 16, 16)  # leading dims kept


def _checkpoints(tmp_path, rng):
    from vqturb import checkpoint
    from vqturb.utils.fileio import file_sha256

    vq, vq_cfg = _tiny_vqvae()
    nsp = _tiny_nsp()
    vq_path = tmp_path / "vq.eqx"
    nsp_path = tmp_path / "nsp.eqx"
    checkpoint.save_model(vq_path, vq, kind="vqvae", config=vq_cfg.to_dict())
    checkpoint.save_model(nsp_path, nsp, kind="nsp", config=nsp.config.to_dict(), meta={"step": 7})
    tok = _tokens_file(tmp_path, rng)
    z = dict(np.load(tok))
    z["checkpoint_sha256"] = file_sha256(vq_path)
    np.savez(tok, **z)
    return nsp_path, vq_path, tok


@pytest.mark.slow
def test_eval_nsp_command_end_to_end(tmp_path, rng):
    from scipy.io import savemat

    from vqturb.cli import main

    nsp_path, vq_path, tok = _checkpoints(tmp_path, rng)
    # raw fields for the tokens file's 5 trajectories x 12 steps (traj_XXX/<k>.mat, k = 1..12)
    for i in range(5):
        d = tmp_path / "data" / f"traj_{i:03d}"
        d.mkdir(parents=True)
        for t in range(12):
            savemat(d / f"{t + 1}.mat", {"Omega": np.full((16, 16), 100 * i + t, np.float64)})
    out = tmp_path / "eval"
    rc = main(
        [
            "eval-nsp",
            "--data_dir",
            str(tmp_path / "data"),
            "--nsp_checkpoint",
            str(nsp_path),
            "--vqvae_checkpoint",
            str(vq_path),
            "--tokens_path",
            str(tok),
            "--n_samples",
            "2",
            "--n_ensemble",
            "2",
            "--n_steps",
            "4",
            "--chunk",
            "2",
            "--top_k",
            "3",
            "--output_dir",
            str(out),
            "--no_progress",
        ]
    )
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["settings"]["split"] == "test" and m["settings"]["nsp_step"] == 7
    assert {st[0] for st in m["starts"]} <= {
        int(i) for i in np.unique(np.load(tok)["trajectory_id"])
    }
    assert m["n_steps"] == 4 and len(m["starts"]) == 2 and m["n_members"] == 2
    tf = m["teacher_forced"]
    assert tf["n_pairs"] > 0 and len(tf["accuracy"]) == len(tf["copy_rate"]) == 2
    assert m["reference"] == "raw GT" and "generated_vs_raw_gt" in m["pixels"]["pairs"]
    # the raw fields read are those of each start's trajectory and time
    want = np.mean([0.5 * (100 * tr + t) ** 2 for tr, t in m["starts"]])
    assert m["time_series"]["enstrophy_reference"][0] == pytest.approx(want, rel=1e-5)
    assert (out / "report.html").stat().st_size > 10_000
    z = np.load(out / "tokens_rollout.npz")
    assert z["generated"].shape == (4, 5, T)
    # a tokens file from another VQ-VAE checkpoint is refused with exit code 2
    z2 = dict(np.load(tok))
    z2["checkpoint_sha256"] = "0" * 64
    bad = tmp_path / "other.npz"
    np.savez(bad, **z2)
    rc = main(
        [
            "eval-nsp",
            "--nsp_checkpoint",
            str(nsp_path),
            "--vqvae_checkpoint",
            str(vq_path),
            "--tokens_path",
            str(bad),
            "--output_dir",
            str(out),
            "--no_progress",
        ]
    )
    assert rc == 2


def test_eval_nsp_rejects_bad_flags(tmp_path):
    with pytest.raises(InputError, match="--top_p"):
        RE.evaluate_nsp("a", "b", "c", tmp_path, top_p=1.5)
    with pytest.raises(InputError, match="--n_samples"):
        RE.evaluate_nsp("a", "b", "c", tmp_path, n_samples=0)


def test_evaluate_rollouts_degenerate_inputs(tmp_path):
    """All-zero fields and ground truth for t0 only: no warning (pytest turns them into errors),
    no skill steps, finite numbers."""
    rows = np.zeros((4, T), np.int32)
    rows[:, 1:5] = 1
    rows[:, 5:] = 5
    zero = lambda r: np.zeros(np.asarray(r).shape[:-1] + (16, 16), np.float32)  # noqa: E731
    m = RR.evaluate_rollouts(
        rows.reshape(2, 2, T),
        rows[:2].reshape(2, 1, T),
        zero,
        tmp_path,
        layout=LAYOUT,
        progress=False,
    )
    assert m["skill"]["step"] == [] and m["summary"]["skill_rel_l2_step1"] is None
    assert m["summary"]["token_js_bits_overall"] == 0.0
    assert m["summary"]["seed_token_js_nats"] == pytest.approx(0.0, abs=1e-12)
    assert (tmp_path / "report.html").exists()


def test_evaluate_rollouts_with_ensemble_members(tmp_path, rng):
    """Two members per start: rows start-major; the ensemble mean is scored against each start's
    own ground truth, and one grid and video per start are written."""
    s, m_, n = 2, 2, 3
    gt = _rows(rng, s * (n + 1)).reshape(s, n + 1, T)
    members = np.repeat(gt, m_, axis=0).copy()  # every member = its start's truth ...
    members[1::2, 1:] = _rows(rng, s * n).reshape(s, n, T)  # ... but the second is random
    m = RR.evaluate_rollouts(
        members, gt, _fake_decode, tmp_path, layout=LAYOUT, members=m_, progress=False
    )
    sk = m["skill"]
    assert m["n_members"] == 2 and len(sk["rel_l2_generated_per_sample"]) == 4
    per = np.asarray(sk["rel_l2_generated_per_sample"])
    np.testing.assert_allclose(per[0::2], 0, atol=1e-6)  # exact members, their own truth
    assert len(m["files"]["grids"]) == len(m["files"]["videos"]) == s
    with pytest.raises(ValueError, match="starts x members"):
        RR.evaluate_rollouts(
            members[:3], gt, _fake_decode, tmp_path, layout=LAYOUT, members=m_, progress=False
        )


def test_seed_metrics_include_t0_where_vqturbs_leave_it_out(rng):
    """Rollouts equal to the truth after t0 but not at t0: vqturb's token JS (t0 left out) is 0,
    the seed's (every frame) is not; the seed's spectra average every frame and show the
    milestone steps."""
    from vqturb.evaluation.rollout_metrics import rollout_metrics

    gt = _rows(rng, 2 * 4).reshape(2, 4, T)
    gen = gt.copy()
    gen[:, 0, 5:] = 5  # t0 differs at the last scale only
    m = rollout_metrics(
        gen, gt, _fake_decode(gen), _fake_decode(gt), None, layout=LAYOUT, skill_steps=2
    )
    assert m["tokens"]["overall"]["js"] == pytest.approx(0.0, abs=1e-12)
    sm = m["seed_metrics"]
    assert sm["token_js_nats"] > 1e-3 and sm["token_js_nats_per_scale"][2] > 1e-3
    assert sm["token_js_nats_per_scale"][:2] == pytest.approx([0.0, 0.0], abs=1e-12)
    assert sm["spectra"]["milestone_steps"] == [0, 1, 3]
    assert m["summary"]["seed_token_kl_nats"] == sm["token_kl_nats"]
    json.dumps(m)


def _without_run_specifics(m: dict) -> dict:
    m = {k: v for k, v in m.items() if k not in ("settings", "timing", "files")}
    m["summary"] = {
        k: v for k, v in m["summary"].items() if k != "decode_frames_per_s_incl_compile"
    }
    return m


TEACHER = {
    "n_pairs": 3,
    "scale": [2],
    "side": [4],
    "accuracy": [0.5],
    "copy_rate": [0.25],
    "loss": [1.0],
    "uniform_loss": [2.0],
}


def test_reanalyze_reproduces_a_run_without_sampling(tmp_path, rng, monkeypatch):
    """A run's saved tokens, decoded again through its VQ-VAE, give the same metrics.json numbers;
    the sampler is never called; carried-over parts (teacher-forced, rollout timing) are kept."""
    from vqturb import checkpoint
    from vqturb.models import nsp_sampling

    _, vq_path, tok = _checkpoints(tmp_path, rng)
    vq, _ = checkpoint.load_model(vq_path, kind="vqvae")
    decode = RO.vqvae_decoder(vq, TokensFile.read(tok), batch_size=4)
    gt = _rows(rng, 2 * 4).reshape(2, 4, T)
    gen = np.repeat(gt, 2, axis=0)
    gen[:, 1:] = _rows(rng, 4 * 3).reshape(4, 3, T)
    run = tmp_path / "run"
    settings = {
        "command": "vqturb eval-nsp",
        "vqvae_checkpoint": str(vq_path),
        "tokens_path": str(tok),
        "data_dir": None,
        "value_range": [-3.0, 3.0],
    }
    RR.evaluate_rollouts(
        gen, gt, decode, run, layout=LAYOUT, starts=[(0, 0), (1, 2)], settings=settings,
        timing={"wall_s": 1.5, "steady_frames_per_s": 7.0}, skill_steps=2, members=2,
        value_range=(-3.0, 3.0), teacher_forced=TEACHER, progress=False,
    )  # fmt: skip
    before = json.loads((run / "metrics.json").read_text())

    def no_sampling(*a, **k):
        raise AssertionError("reanalyze must not generate")

    for name in ("rollout", "generate"):
        monkeypatch.setattr(nsp_sampling, name, no_sampling)
    monkeypatch.setattr(RE, "rollout_tokens", no_sampling)
    out = tmp_path / "again"
    RE.reanalyze_nsp(run, out, skill_steps=2, decode_batch=4, progress=False)
    after = json.loads((out / "metrics.json").read_text())
    assert _without_run_specifics(after) == _without_run_specifics(before)  # bit for bit
    assert after["seed_metrics"] == before["seed_metrics"]
    assert after["value_range"] == [-3.0, 3.0]  # the run's own range
    assert after["teacher_forced"] == TEACHER
    assert after["timing"]["wall_s"] == 1.5 and after["summary"]["rollout_token_frames_per_s"] == 7
    assert after["settings"]["reanalyzed_from"] == str(run)
    assert (out / "report.html").is_file() and (
        out / "figures" / "seed_energy_spectra.png"
    ).is_file()
    z0, z1 = np.load(run / "tokens_rollout.npz"), np.load(out / "tokens_rollout.npz")
    np.testing.assert_array_equal(z0["generated"], z1["generated"])
    # in place, with the seed's fixed range: the run's folder is rewritten
    m = RE.reanalyze_nsp(run, value_range="seed", skill_steps=2, progress=False)
    assert m["value_range"] == [-10.0, 10.0] and m["settings"]["value_range"] == [-10.0, 10.0]
    assert json.loads((run / "metrics.json").read_text())["pixels"]["edges"][0] == -10.0
    assert m["tokens"] == before["tokens"]
    with pytest.raises(InputError, match="tokens_rollout.npz"):
        RE.reanalyze_nsp(tmp_path, progress=False)


def test_value_range_names():
    assert RE.resolve_value_range("seed") == (-10.0, 10.0)
    assert RE.resolve_value_range("auto") is None and RE.resolve_value_range(None) is None
    assert RE.resolve_value_range([-2, 3]) == (-2.0, 3.0)
    with pytest.raises(InputError, match="LO < HI"):
        RE.resolve_value_range((1.0, 1.0))
    with pytest.raises(InputError, match="seed or auto"):
        RE.resolve_value_range("sed")


def test_eval_nsp_command_checks_reanalyze_and_required_flags(tmp_path, capsys):
    from vqturb.cli import main

    assert main(["eval-nsp", "--reanalyze", str(tmp_path), "--no_progress"]) == 2
    assert "tokens_rollout.npz" in capsys.readouterr().err
    assert main(["eval-nsp", "--vqvae_checkpoint", "a", "--tokens_path", "b"]) == 2
    assert "--nsp_checkpoint" in capsys.readouterr().err
    assert main(["eval-nsp", "--reanalyze", str(tmp_path), "--value_range", "foo"]) == 2
    assert "seed or auto" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs, flag",
    [({"temperature": float("nan")}, "--temperature"), ({"temperature": -1.0}, "--temperature"),
     ({"chunk": 0}, "--chunk"), ({"n_samples": 0}, "--n_samples")],
)  # fmt: skip
def test_meaningless_sampling_settings_are_refused_before_any_work(tmp_path, kwargs, flag):
    from vqturb.errors import InputError
    from vqturb.evaluation.rollout_eval import evaluate_nsp

    with pytest.raises(InputError, match=flag):
        evaluate_nsp("missing_nsp.eqx", "missing_vq.eqx", "missing.npz", tmp_path / "e", **kwargs)
    assert not (tmp_path / "e").exists()
