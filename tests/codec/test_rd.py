"""The rate–distortion sweep writes rd.json / rd.md / rd.png with every method and metric."""

import json

import numpy as np

from codec.synth import synth_fields
from vqturb.codec import rd


def test_metrics_of_a_perfect_and_a_mean_reconstruction(fields):
    m = rd.field_metrics(fields, fields, value_range=10.0)
    assert m["rel_l2"] < 1e-6 and m["max_abs_err"] < 1e-5
    assert abs(m["enstrophy_ratio"] - 1) < 1e-5 and m["spectrum_log_err"] < 1e-5
    mean = np.broadcast_to(fields.mean(axis=(1, 2), keepdims=True), fields.shape)
    m2 = rd.field_metrics(mean, fields, value_range=10.0)
    assert m2["rel_l2"] > 0.5 and m2["psnr_db"] < m["psnr_db"]


def test_rate_fields():
    r = rd.rate_fields(128.0, (32, 32))
    assert r["bits_per_value"] == 1.0
    assert r["ratio_vs_float32"] == 32.0 and r["ratio_vs_float64"] == 64.0


def test_sweep_writes_all_outputs(tmp_path, rng):
    train = synth_fields(rng, 12, 16)
    test = synth_fields(rng, 3, 16)
    noisy = test + 0.1 * rng.standard_normal(test.shape)
    point = rd.Point("vqturb (entropy-coded)", 20.0, noisy, {"note": "fake"})
    res = rd.rd_sweep(
        test, train=train, vqturb_points=[point], bits_per_value=(0.5, 2.0), progress=False
    )
    paths = rd.write_rd(tmp_path, res)
    data = json.loads(paths["json"].read_text())
    methods = {r["method"] for r in data["rows"]}
    baselines = {"fourier", "zfp", "sz3", "sz3 (3-D stack)", "pod"}
    baselines |= {"h264 (libx264)", "h265 (libx265)", "av1 (libsvtav1)"}
    assert methods == {"vqturb (entropy-coded)", "mean-only"} | baselines
    # every baseline was measured at vqturb's own size too
    at_own = {r["method"] for r in data["rows"] if r["at_vqturb_size"]}
    assert at_own == baselines
    for r in data["rows"]:
        for key in ("bytes_per_field", "rel_l2", "psnr_db", "spectrum_log_err", "enstrophy_ratio"):
            assert np.isfinite(r[key]), (r["method"], key)
    # the video codecs are measured at vqturb's curve sizes only
    assert {r["target_bytes"] for r in data["rows"] if r["method"].startswith("h264")} == {20.0}
    md = paths["md"].read_text()
    assert "| method |" in md and "At vqturb's own size" in md
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
