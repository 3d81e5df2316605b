"""Video-codec baselines through ffmpeg: round trips, sizes within the target, error with bytes."""

import numpy as np
import pytest

from codec.synth import synth_fields
from vqturb.codec import baselines as B
from vqturb.errors import InputError

CODECS = tuple(B.VIDEO_FORMATS)


@pytest.fixture
def frames(rng):
    # consecutive "snapshots": a slowly drifting field, as a trajectory's frames are
    base = synth_fields(rng, 2, 32)
    t = np.linspace(0, 1, 8)[:, None, None]
    return (1 - t) * base[0] + t * base[1]


@pytest.mark.parametrize("bits", [8, 10, 12])
def test_range_quantisation_error_is_at_most_half_a_step(frames, bits):
    q, lo, hi = B.quantize_range(frames, bits)
    assert q.min() == 0 and q.max() == (1 << bits) - 1
    back = B.dequantize_range(q, bits, lo, hi)
    step = (hi - lo) / ((1 << bits) - 1)
    # lo/hi are float32: allow their rounding on top of half a step
    assert np.max(np.abs(back - frames)) <= 0.5 * step + 1e-5 * (hi - lo)


@pytest.mark.parametrize("name", CODECS)
def test_round_trip_shape_and_near_lossless_at_best_quality(frames, name):
    v = B.VideoCodec(name)
    bits = v.bit_depths[0]
    q, _, _ = B.quantize_range(frames, bits)
    best = v.encode(q, bits, v.fmt.q_range[0])
    dec = v.decode(best, q.shape, bits)
    assert dec.shape == q.shape
    # within a few levels of the 2**bits: "lossless-range" quality
    err = np.abs(dec.astype(np.int64) - q.astype(np.int64))
    assert np.mean(err) < 0.01 * (1 << bits)
    # size falls (not necessarily strictly) from the best to the worst quality
    lo, hi = v.fmt.q_range
    sizes = [len(v.encode(q, bits, k)) for k in (lo, (lo + hi) // 2, hi)]
    assert sizes[0] > sizes[1] > sizes[2]


def test_sei_units_are_dropped_and_the_stream_still_decodes(frames):
    v = B.VideoCodec("h264")
    q, _, _ = B.quantize_range(frames, 10)
    import subprocess  # the unstripped stream, for comparison

    args = ["-f", "rawvideo", "-pix_fmt", "gray10le", "-s", "32x32", "-i", "pipe:0"]
    args += ["-c:v", "libx264", "-crf", "20", "-f", "h264", "pipe:1"]
    full = subprocess.run(
        [B.ffmpeg_exe(), "-loglevel", "error", *args],
        input=q.astype("<u2").tobytes(),
        capture_output=True,
        check=True,
    ).stdout
    stripped = B.strip_sei(full, "h264")
    assert len(stripped) < len(full) - 100  # x264's options string
    assert np.array_equal(v.decode(stripped, q.shape, 10), v.decode(full, q.shape, 10))
    assert B.strip_sei(b"\x00\x01", "h264") == b"\x00\x01"
    assert B.strip_sei(full, "obu") == full


@pytest.mark.parametrize("name", CODECS)
def test_sizes_fit_and_error_falls_with_bytes(frames, name):
    v = B.VideoCodec(name)
    errs = []
    for target in (40, 120, 400):
        c = v(frames, target)
        assert c.recon.shape == frames.shape
        assert np.all(np.isfinite(c.recon))
        assert c.n_bytes <= target and not c.params.get("over_target"), c.params
        errs.append(B._rel_l2(c.recon, frames))
    assert errs[0] > errs[-1]
    assert errs[-1] < 0.3


def test_a_target_below_the_codec_floor_returns_its_smallest_flagged(frames):
    c = B.VideoCodec("h264")(frames, 1.0)
    assert c.params["over_target"] and c.n_bytes > 1.0
    assert np.all(np.isfinite(c.recon))


def test_missing_encoder_and_unknown_names_are_input_errors(monkeypatch):
    with pytest.raises(InputError, match="video codec"):
        B.VideoCodec("mpeg2")
    with pytest.raises(InputError, match="bit depth"):
        B.VideoCodec("h264", bit_depths=(12,))
    monkeypatch.setattr(B, "ffmpeg_encoders", lambda: frozenset())
    with pytest.raises(InputError, match="libx265"):
        B.VideoCodec("h265")
