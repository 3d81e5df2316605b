import json

import numpy as np
import pytest

from vqturb.data.tokens_file import scale_positions
from vqturb.evaluation import metrics

SCALES = (1, 2, 4)
OFFSETS = (0, 1, 5)
VOCABS = (1, 4, 8)
T = 1 + 4 + 16


def _tokens(rng, n, vocab_shift=0):
    rows = np.zeros((n, T), np.int32)
    for (a, b), off, v in zip(scale_positions(SCALES), OFFSETS, VOCABS, strict=True):
        rows[:, a:b] = off + (rng.integers(0, v, size=(n, b - a)) + vocab_shift) % v
    return rows


def test_scale_positions_cover_the_row():
    pos = scale_positions(SCALES)
    assert pos == [(0, 1), (1, 5), (5, 21)]


def test_token_histograms_are_per_scale_distributions(rng):
    tok = _tokens(rng, 50)
    hists = metrics.token_histograms(tok, SCALES, OFFSETS, VOCABS)
    assert [h.shape[0] for h in hists] == list(VOCABS)
    for h in hists:
        assert h.sum() == pytest.approx(1.0)
    assert hists[0][0] == 1.0  # deterministic scale has one id


def test_token_metrics_identical_and_disjoint(rng):
    tok = _tokens(rng, 40)
    same = metrics.token_metrics(tok, tok, SCALES, OFFSETS, VOCABS)
    assert same["overall"]["js"] == pytest.approx(0.0, abs=1e-6)
    assert all(e["tv"] == pytest.approx(0.0, abs=1e-6) for e in same["per_scale"])
    # generated uses only id 0 of the last scale, reference only id 1: disjoint there
    gen, ref = tok.copy(), tok.copy()
    gen[:, 5:] = OFFSETS[2]
    ref[:, 5:] = OFFSETS[2] + 1
    d = metrics.token_metrics(gen, ref, SCALES, OFFSETS, VOCABS)
    last = d["per_scale"][2]
    assert last["js"] == pytest.approx(1.0, abs=1e-5)
    assert last["tv"] == pytest.approx(1.0, abs=1e-6)
    assert d["per_scale"][0]["deterministic"] and not last["deterministic"]
    assert d["mean_trainable"]["tv"] == pytest.approx(np.mean([d["per_scale"][1]["tv"], 1.0]))
    json.dumps(d)  # JSON-safe


def test_token_metrics_counts_out_of_range_ids(rng):
    tok = _tokens(rng, 10)
    gen = tok.copy()
    gen[:, 1] = OFFSETS[2]  # a scale-2 id at a scale-1 position
    d = metrics.token_metrics(gen, tok, SCALES, OFFSETS, VOCABS)
    assert d["per_scale"][1]["out_of_range_generated"] == pytest.approx(0.25)
    assert d["per_scale"][2]["out_of_range_generated"] == 0.0


def test_token_metrics_rejects_wrong_row_length(rng):
    with pytest.raises(ValueError, match="scales"):
        metrics.token_metrics(
            np.zeros((2, 7), np.int32), np.zeros((2, 7), np.int32), SCALES, OFFSETS, VOCABS
        )


def test_pixel_metrics_pairs_and_ranges(rng):
    x = rng.standard_normal((4, 16, 16)).astype(np.float32)
    lo, hi = metrics.value_range(x, None)
    assert lo == -hi and hi >= np.abs(x).max()
    edges = metrics.pixel_bins(lo, hi, 21)
    d = metrics.pixel_metrics({"generated": x, "reconstructed_gt": x, "raw_gt": 3 * x + 10}, edges)
    assert set(d["pairs"]) == {
        "generated_vs_reconstructed_gt",
        "generated_vs_raw_gt",
        "reconstructed_gt_vs_raw_gt",
    }
    assert d["pairs"]["generated_vs_reconstructed_gt"]["js"] == pytest.approx(0.0, abs=1e-6)
    assert d["pairs"]["generated_vs_raw_gt"]["tv"] > 0.5
    assert len(d["edges"]) == 22 and all(len(h) == 21 for h in d["hist"].values())
    d2 = metrics.pixel_metrics({"generated": x, "raw_gt": None}, edges)
    assert d2["pairs"] == {} and set(d2["hist"]) == {"generated"}
    json.dumps(d)


def test_vorticity_pdf_integrates_to_one(rng):
    x = rng.standard_normal(5000)
    edges = metrics.pixel_bins(-5, 5, 50)
    d = metrics.vorticity_pdf(x, x * 1.5, edges)
    assert np.sum(np.array(d["pdf_generated"]) * np.diff(edges)) == pytest.approx(1.0)
    assert 0.0 < d["js"] < 1.0


def _modes(n, t, amp):
    x = np.arange(n) * 2 * np.pi / n
    base = np.cos(3 * x)[None, :] + np.sin(5 * x)[:, None]
    return np.stack([[amp * base * (1 + 0.01 * i) for i in range(t)]] * 2).astype(np.float32)


def test_spectra_and_time_series():
    ref = _modes(32, 5, 1.0)
    gen = _modes(32, 5, 10.0)  # energy 100×: log10 error exactly 2 where the spectrum is nonzero
    d = metrics.time_averaged_spectra(ref, ref)
    assert d["spectrum_error"] == pytest.approx(0.0, abs=1e-6)
    assert d["kmax"] == 16 and len(d["k"]) == len(d["generated"])
    ts = metrics.time_series(gen, ref)
    assert len(ts["enstrophy_generated"]) == 5
    np.testing.assert_allclose(
        np.array(ts["enstrophy_generated"]) / np.array(ts["enstrophy_reference"]), 100, rtol=1e-4
    )
    ts_same = metrics.time_series(ref, ref, reconstructed=gen)
    np.testing.assert_allclose(ts_same["spectrum_error_vs_same_step"], 0, atol=1e-6)
    np.testing.assert_allclose(ts_same["enstrophy_reconstructed"], ts["enstrophy_generated"])
    assert len(ts_same["spectrum_error_reconstructed_vs_climatology"]) == 5
    json.dumps(ts)


def test_short_term_skill_against_persistence(rng):
    s, t = 3, 8
    base = rng.standard_normal((s, 1, 16, 16))
    drift = rng.standard_normal((s, 1, 16, 16))
    ref = (base + 0.5 * np.arange(t)[None, :, None, None] * drift).astype(np.float32)
    perfect = metrics.short_term_skill(ref[:, None], ref, n_steps=5)
    assert perfect["step"] == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(perfect["rel_l2_generated"], 0, atol=1e-6)
    np.testing.assert_allclose(perfect["rel_l2_ensemble_mean_recon"], 0, atol=1e-6)
    assert perfect["steps_better_than_persistence"] == 5
    assert perfect["steps_better_than_persistence_ensemble_recon"] == 5
    # persistence error grows with the drift
    assert np.all(np.diff(perfect["rel_l2_persistence"]) > 0)
    held = metrics.short_term_skill(
        np.repeat(ref[:, None, :1], t, axis=2), ref, n_steps=20, reconstructed=ref
    )
    assert len(held["step"]) == t - 1  # clipped to what the arrays hold
    np.testing.assert_allclose(held["rel_l2_generated"], held["rel_l2_persistence"], rtol=1e-6)
    assert held["steps_better_than_persistence"] == 0
    assert held["n_steps_better_than_persistence"] == 0
    assert perfect["n_steps_better_than_persistence"] == 5
    np.testing.assert_allclose(held["rel_l2_floor"], 0, atol=1e-6)


def test_skill_of_an_ensemble_and_in_the_decoder_space(rng):
    """Members = truth ± the same noise: each member is off, their mean is exact; the decoder's
    space scores against the reconstructed fields, not the raw ones."""
    s, t = 2, 4
    ref = rng.standard_normal((s, t, 16, 16)).astype(np.float32)
    noise = rng.standard_normal((s, t, 16, 16)).astype(np.float32)
    gen = np.stack([ref + noise, ref - noise], axis=1)  # [S, 2, T, H, W]
    rec = 0.5 * ref  # a decoder that halves every field
    sk = metrics.short_term_skill(gen, ref, 3, reconstructed=rec)
    assert sk["n_members"] == 2 and len(sk["rel_l2_generated_per_sample"]) == 4
    np.testing.assert_allclose(sk["rel_l2_ensemble_mean"], 0, atol=1e-6)
    assert min(sk["rel_l2_generated"]) > 0.5
    # persistence of the reconstructed fields against the reconstructed truth: scale-free
    np.testing.assert_allclose(sk["rel_l2_persistence_recon"], sk["rel_l2_persistence"], rtol=1e-5)
    # the exact (raw) ensemble mean is twice the decoded truth: relative L2 of 1 there
    np.testing.assert_allclose(sk["rel_l2_ensemble_mean_recon"], 1.0, rtol=1e-5)
    np.testing.assert_allclose(sk["rel_l2_floor"], 0.5, rtol=1e-5)


def test_enstrophy_range_kept():
    rec = np.ones((2, 5, 8, 8), np.float32)  # enstrophy 0.5 everywhere
    gen = np.ones((3, 11, 8, 8), np.float32)
    gen[:, 6:] *= 2.0  # enstrophy x4 from step 6 on
    r = metrics.enstrophy_range_kept(gen, rec, margin=0.1)
    assert r["n_steps"] == 10 and r["fraction_in_range"] == pytest.approx(0.5)
    assert r["first_step_outside"] == 6
    assert r["range"] == pytest.approx([0.45, 0.55])


def test_seed_token_metrics_against_a_hand_computation():
    """One generated and one true row: scale 1 has local ids (0, 0, 1, 2) against (0, 1, 2, 3),
    the other scales agree. Scale 1 is then p = (2, 1, 1, 0)/4 against uniform."""
    import math

    gen = np.zeros((1, T), np.int32)
    ref = np.zeros((1, T), np.int32)
    gen[0, 1:5] = [1, 1, 2, 3]
    ref[0, 1:5] = [1, 2, 3, 4]
    gen[0, 5:] = ref[0, 5:] = 5
    d = metrics.seed_token_metrics(gen, ref, SCALES, OFFSETS, VOCABS)
    js1 = 0.25 * math.log(4 / 3) + 0.125 * math.log(2 / 3) + 0.125 * math.log(2)
    np.testing.assert_allclose(d["token_js_nats_per_scale"], [0.0, js1, 0.0], atol=1e-8)
    np.testing.assert_allclose(d["token_tv_per_scale"], [0.0, 0.25, 0.0], atol=1e-8)
    np.testing.assert_allclose(
        d["token_js_bits_per_scale"], [0.0, js1 / math.log(2), 0.0], atol=1e-8
    )
    # KL(true || generated): the true id 4 that the rollout never produced dominates
    kl1 = 0.25 * math.log(0.25 / 0.5) + 0.25 * math.log(0.25 / 1e-10)
    np.testing.assert_allclose(d["token_kl_nats_per_scale"], [0.0, kl1, 0.0], rtol=1e-6, atol=1e-8)
    assert d["kl_direction"] == "KL(ground truth || generated)" and d["eps"] == 1e-10
    # overall, on the 13 unified ids: 21 tokens each; they differ by one token (id 1 vs id 4)
    assert d["token_tv"] == pytest.approx(1 / 21, abs=1e-8)
    # p = (1, 2, 1, 1, 0, 16)/21, q = (1, 1, 1, 1, 1, 16)/21 on ids 0-5: m = (1, 1.5, 1, 1, .5, 16)/21
    js = 0.5 * (2 / 21) * math.log(2 / 1.5) + 0.5 * (
        (1 / 21) * math.log(1 / 1.5) + (1 / 21) * math.log(1 / 0.5)
    )
    assert d["token_js_nats"] == pytest.approx(js, abs=1e-8)
    json.dumps(d)


def test_milestone_steps_are_the_seeds_up_to_n_steps():
    assert metrics.milestone_steps(100) == [0, 1, 4, 9, 99, 100]
    assert metrics.milestone_steps(99) == [0, 1, 4, 9, 99]
    assert metrics.milestone_steps(3) == [0, 1, 3]
    assert metrics.milestone_steps(1000) == [0, 1, 4, 9, 99, 499, 999, 1000]
    assert metrics.milestone_steps(10_000)[-3:] == [4999, 9999, 10_000]


def test_seed_spectra_time_averaged_and_at_milestones():
    """Generated: ω = a_t cos(2x) on 8 × 8 with a_t = 1, 2, 3 (steps 0-2); truth: a = 1 for two
    steps. The seed's enstrophy annulus mean of amplitude a is a²·1024/36 in the second annulus
    (tests/physics/test_stats.py), vqturb's shell sum a²/4 at k = 2."""
    n = 8
    x = np.arange(n) * 2 * np.pi / n
    mode = np.cos(2 * x)[None, :] * np.ones((n, 1))
    gen = np.stack([a * mode for a in (1.0, 2.0, 3.0)])[None]  # [1, 3, 8, 8]
    ref = np.stack([mode, mode])[None]
    d = metrics.seed_spectra(gen, ref)
    assert d["milestone_steps"] == [0, 1, 2]
    z = d["annulus_mean"]["enstrophy"]
    unit = 1024 / 36
    # t0 included in the time average: (1 + 4 + 9)/3
    assert z["time_averaged"]["generated"][1] == pytest.approx(14 / 3 * unit, rel=1e-5)
    assert z["time_averaged"]["reference"][1] == pytest.approx(unit, rel=1e-5)
    assert [s[1] for s in z["at_steps"]["generated"]] == pytest.approx(
        [unit, 4 * unit, 9 * unit], rel=1e-5
    )
    assert z["at_steps"]["reference"][2] is None  # no truth at step 2
    e = d["annulus_mean"]["kinetic_energy"]
    assert e["time_averaged"]["reference"][1] == pytest.approx(
        1024 / (np.pi / 2) ** 2 / 36, rel=1e-5
    )
    assert len(d["annulus_mean"]["k_radians_per_pixel"]) == 3
    s = d["shell_sum"]
    assert s["enstrophy"]["time_averaged"]["generated"][2] == pytest.approx(14 / 12, rel=1e-5)
    assert s["kinetic_energy"]["at_steps"]["reference"][0][2] == pytest.approx(1 / 16, rel=1e-5)
    assert "reconstructed" not in s["enstrophy"]["time_averaged"]
    d2 = metrics.seed_spectra(gen, ref, reconstructed=ref, steps=[1])
    assert (
        d2["milestone_steps"] == [1] and "reconstructed" in d2["shell_sum"]["enstrophy"]["at_steps"]
    )
    json.dumps(d)
