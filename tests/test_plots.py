import numpy as np
import pytest
from matplotlib import _pylab_helpers
from PIL import Image

from vqturb import plots
from vqturb.evaluation import metrics


def _check_png(path):
    assert path.exists()
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        w, h = im.size
        arr = np.asarray(im.convert("L"))
    assert w > 50 and h > 50
    assert arr.std() > 0  # not a blank image
    # atomic writes leave no temporary files behind
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]
    # figures never enter pyplot's registry, so none stays open
    assert _pylab_helpers.Gcf.get_num_fig_managers() == 0


def test_trainer_figures(tmp_path, rng):
    x = rng.standard_normal((5, 16, 16)).astype(np.float32)
    _check_png(plots.plot_reconstructions(x, x + 0.1, tmp_path / "rec.png", title="step 3"))
    usage = [np.array([5.0]), rng.integers(0, 10, 16), np.r_[np.zeros(8), np.ones(8)]]
    _check_png(plots.plot_codebook_usage(usage, tmp_path / "usage.png"))
    _check_png(plots.plot_codebook_usage({"shared": np.arange(8)}, tmp_path / "usage2.png"))
    k = np.arange(12)
    e = 1.0 / (1 + k.astype(float)) ** 3
    _check_png(
        plots.plot_spectra(
            k, {"true": e, "recon": np.stack([e, 2 * e])}, tmp_path / "spec.png", kmax=8
        )
    )


def test_rollout_figures(tmp_path, rng):
    scales, offs, vocs = (1, 2, 4), (0, 1, 5), (1, 4, 8)
    tok = np.concatenate(
        [np.zeros((6, 1)), 1 + rng.integers(0, 4, (6, 4)), 5 + rng.integers(0, 8, (6, 16))], axis=1
    ).astype(np.int32)
    tm = metrics.token_metrics(tok, tok[::-1], scales, offs, vocs)
    _check_png(plots.plot_token_histograms(tm, tmp_path / "tok.png"))

    gen = rng.standard_normal((2, 6, 16, 16)).astype(np.float32)
    ref = 1.2 * rng.standard_normal((2, 6, 16, 16)).astype(np.float32)
    edges = metrics.pixel_bins(*metrics.value_range(ref, gen), 31)
    pm = metrics.pixel_metrics({"generated": gen, "reconstructed_gt": ref, "raw_gt": ref}, edges)
    _check_png(plots.plot_pixel_histograms(pm, tmp_path / "pix.png"))
    _check_png(
        plots.plot_vorticity_pdf(metrics.vorticity_pdf(gen, ref, edges), tmp_path / "pdf.png")
    )
    _check_png(
        plots.plot_comparison_grid(
            {
                "raw_gt": ref[0, :3],
                "reconstructed_gt": ref[0, :3],
                "generated": gen[0, :3],
                "none": None,
            },
            [0, 2, 5],
            tmp_path / "grid.png",
        )
    )
    _check_png(plots.plot_time_series(metrics.time_series(gen, ref), tmp_path / "ts.png"))
    sk = metrics.short_term_skill(gen[:, None], ref, 4, reconstructed=ref)
    _check_png(plots.plot_skill(sk, tmp_path / "skill.png", title="raw"))


def test_comparison_grid_rejects_mismatched_times(tmp_path, rng):
    with pytest.raises(ValueError, match="times"):
        plots.plot_comparison_grid(
            {"a": rng.standard_normal((2, 8, 8))}, [0, 1, 2], tmp_path / "g.png"
        )
    assert not list(tmp_path.iterdir())


def test_symmetric_limit():
    assert plots.symmetric_limit(np.array([-3.0, 1.0]), None) == 3.0
    assert plots.symmetric_limit(np.zeros(3)) == 1.0


def test_token_histograms_of_a_large_vocabulary(tmp_path, rng):
    # more ids than SORT_TOKENS_ABOVE: drawn as a rank plot
    tok = np.concatenate([np.zeros((30, 1)), 1 + rng.integers(0, 100, (30, 4))], axis=1)
    tm = metrics.token_metrics(
        tok.astype(np.int32), tok[::-1].astype(np.int32), (1, 2), (0, 1), (1, 100)
    )
    _check_png(plots.plot_token_histograms(tm, tmp_path / "tok.png"))
