import numpy as np
import pytest
from PIL import Image

from vqturb.evaluation import video


def _fields(rng, t=6, n=16):
    return rng.standard_normal((t, n, n)).astype(np.float32)


def test_render_frames_layout_and_colours(rng):
    g = _fields(rng)
    frames = video.render_frames({"generated": g, "ground truth": g[:4]}, min_panel=64)
    t, h, w, c = frames.shape
    assert (t, c) == (6, 3) and frames.dtype == np.uint8
    assert h % 16 == 0 and w % 16 == 0 and w >= 2 * 64
    # frames differ over time (the fields and the counter change)
    assert np.any(frames[0] != frames[1])
    # after its end the shorter panel is grey
    x0 = (w - (2 * 64 + video.GAP)) // 2
    right = frames[
        5, video.HEADER : video.HEADER + 64, x0 + 64 + video.GAP : x0 + 2 * 64 + video.GAP
    ]
    assert np.all(right == 128)


def test_render_frames_zero_is_white_and_colour_limits_are_shared():
    f = np.zeros((1, 8, 8), np.float32)
    f[0, 0, 0] = 1.0
    frames = video.render_frames({"a": f, "b": -f}, min_panel=8, vlim=1.0)
    x0 = (frames.shape[2] - (16 + video.GAP)) // 2
    a = frames[0, video.HEADER : video.HEADER + 8, x0 : x0 + 8].astype(int)
    b = frames[0, video.HEADER : video.HEADER + 8, x0 + 8 + video.GAP : x0 + 16 + video.GAP].astype(
        int
    )
    # zero maps to the middle of RdBu_r (near white); +1 red, -1 blue; origin lower flips rows
    assert a[0, 4].min() > 230
    assert a[7, 0, 0] > a[7, 0, 2] and b[7, 0, 2] > b[7, 0, 0]


def test_render_rejects_bad_panels(rng):
    with pytest.raises(ValueError):
        video.render_frames({"a": _fields(rng, n=16), "b": _fields(rng, n=8)})
    with pytest.raises(ValueError):
        video.render_frames({"a": None})


def test_mp4_written(tmp_path, rng):
    g = _fields(rng, t=5)
    out = video.write_side_by_side(tmp_path / "roll.mp4", g, g + 0.1, fps=5)
    assert out.suffix in (".mp4", ".gif")
    assert out.exists() and out.stat().st_size > 100
    if out.suffix == ".mp4":
        import imageio_ffmpeg

        n, secs = imageio_ffmpeg.count_frames_and_secs(str(out))
        assert n == 5 and secs == pytest.approx(1.0, abs=0.05)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_gif_fallback(tmp_path, rng):
    g = _fields(rng, t=3)
    out = video.write_side_by_side(tmp_path / "roll.mp4", g, None, codecs=())
    assert out == tmp_path / "roll.gif"
    with Image.open(out) as im:
        assert im.n_frames == 3


def test_bad_encoder_falls_back(tmp_path, rng):
    out = video.write_side_by_side(
        tmp_path / "r.mp4", _fields(rng, t=2), None, codecs=("no_such_codec",)
    )
    assert out.suffix == ".gif" and out.exists()
    assert not (tmp_path / "r.mp4").exists()
