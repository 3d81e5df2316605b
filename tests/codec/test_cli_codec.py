"""End to end through the CLI: tokenizer info/save, compress → decompress, bench rd, errors."""

import json

import numpy as np
import pytest
import scipy.io

from codec.tiny_model import fields, make_checkpoint
from vqturb.cli import main
from vqturb.codec.vqz import decode_token_file
from vqturb.tokenizer import VQVAETokenizer


@pytest.fixture
def setup(tmp_path, stand_in_vqvae, rng):
    """3 trajectories x 6 snapshots of 16x16 float64 fields in the SPEC layout, a checkpoint."""
    data = tmp_path / "data"
    x = fields(rng, 18)
    for j in range(3):
        (data / f"run{j}").mkdir(parents=True)
        for t in range(6):
            scipy.io.savemat(
                data / f"run{j}" / f"{t + 1}.mat",  # numbered from 1, as vqturb generate does
                {"Omega": x[6 * j + t].astype(np.float64), "time": 0.5 * t},
            )
    ckpt, _ = make_checkpoint(tmp_path / "m.eqx", var_mode=True)
    return tmp_path, data, ckpt


def test_compress_decompress_round_trip(setup, capsys):
    tmp, data, ckpt = setup
    vqz = tmp / "d.vqz"
    args = ["--checkpoint", str(ckpt), "--data_dir", str(data), "--no_progress"]
    assert main(["compress", *args, "--output", str(vqz), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["file_bytes"] == vqz.stat().st_size
    assert report["bits_per_value"] == pytest.approx(8 * vqz.stat().st_size / (18 * 256))
    assert report["ratio_vs_float64"] == pytest.approx(2 * report["ratio_vs_float32"])
    out = tmp / "out"
    assert main(["decompress", str(vqz), "--checkpoint", str(ckpt), "--output", str(out),
                 "--no_progress"]) == 0  # fmt: skip
    files = sorted(out.rglob("*.mat"))
    assert len(files) == 18
    # the tokens round-trip losslessly and the fields equal the model's reconstruction
    tok = VQVAETokenizer(ckpt)
    assert sorted(p.name for p in (out / "run1").iterdir()) == sorted(
        f"{t}.mat" for t in range(1, 7)
    )
    m = scipy.io.loadmat(out / "run1" / "5.mat")  # the 5th snapshot keeps its name
    assert m["Omega"].dtype == np.float64 and m["Omega"].shape == (16, 16)
    assert float(m["time"].squeeze()) == 2.0
    src = scipy.io.loadmat(data / "run1" / "5.mat")["Omega"].astype(np.float32)
    xn = tok.normalization.apply(src[None])
    expect = tok.normalization.invert(np.asarray(tok.model(xn)[0]))[0]
    assert np.allclose(m["Omega"], expect, atol=1e-5)
    tf = decode_token_file(vqz.read_bytes())
    codes = tok.encode_codes(src[None])
    i = int(np.flatnonzero((tf.trajectory_id == 1) & (tf.time_index == 4))[0])
    assert all(np.array_equal(c[i], d[0]) for c, d in zip(tf.codes, codes, strict=True))


def test_corrupt_and_mismatched_files_are_clear_errors(setup, capsys, monkeypatch):
    tmp, data, ckpt = setup
    vqz = tmp / "d.vqz"
    main(["compress", "--checkpoint", str(ckpt), "--data_dir", str(data), "--output", str(vqz),
          "--no_progress"])  # fmt: skip
    bad = bytearray(vqz.read_bytes())
    bad[len(bad) // 2] ^= 0xFF
    (tmp / "bad.vqz").write_bytes(bytes(bad))
    rc = main(["decompress", str(tmp / "bad.vqz"), "--checkpoint", str(ckpt), "--output",
               str(tmp / "o")])  # fmt: skip
    assert rc == 2 and "CRC32" in capsys.readouterr().err
    other, _ = make_checkpoint(tmp / "other.eqx", var_mode=True, mean=0.7)
    rc = main(["decompress", str(vqz), "--checkpoint", str(other), "--output", str(tmp / "o")])
    assert rc == 2 and "checkpoint_sha256" in capsys.readouterr().err


def test_tokenizer_cli(setup, capsys):
    tmp, data, ckpt = setup
    args = ["--checkpoint", str(ckpt), "--data_dir", str(data), "--no_progress"]
    assert main(["tokenizer", "info", *args, "--var_mode"]) == 0
    out = capsys.readouterr().out
    assert "unified vocabulary size" in out and "perplexity" in out
    assert main(["tokenizer", "info", *args, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert len(info["scales"]) == 3
    assert main(["tokenizer", "save", *args, "--output", str(tmp / "t.npz")]) == 0
    z = np.load(tmp / "t.npz")
    assert z["indices_flat"].shape == (18, 1 + 4 + 16)
    assert set(z["trajectory_id"].tolist()) == {0, 1, 2}
    # (t, t+1) pairs inside one trajectory: time indices run 0..5 per trajectory
    assert z["time_index"].reshape(3, 6).tolist() == [list(range(6))] * 3


def test_var_mode_disagreement_exits_2(setup, capsys, tmp_path, monkeypatch):
    _, data, _ = setup
    std, _ = make_checkpoint(tmp_path / "std.eqx", var_mode=False)
    rc = main(["tokenizer", "info", "--checkpoint", str(std), "--data_dir", str(data),
               "--var_mode"])  # fmt: skip
    assert rc == 2 and "--var_mode" in capsys.readouterr().err


def test_bench_rd(setup, capsys):
    tmp, data, ckpt = setup
    out = tmp / "rd"
    rc = main(["bench", "rd", "--checkpoint", str(ckpt), "--data_dir", str(data), "--output_dir",
               str(out), "--bits_per_value", "0.5,2", "--no_progress"])  # fmt: skip
    assert rc == 0
    res = json.loads((out / "rd.json").read_text())
    methods = {r["method"] for r in res["rows"]}
    assert {"vqturb (entropy-coded)", "vqturb (raw bits)", "fourier", "zfp", "sz3"} <= methods
    assert res["throughput"]["tokenize_fields_per_s"] > 0
    # the curve: one point per number of scales decoded, more bytes and less error with more
    curve = sorted(
        (r for r in res["rows"] if r["method"] == "vqturb (entropy-coded)"),
        key=lambda r: r["params"]["scales_decoded"],
    )
    assert [r["params"]["scales_decoded"] for r in curve] == [1, 2, 3]
    assert np.all(np.diff([r["bytes_per_field"] for r in curve]) > 0)
    assert curve[-1]["rel_l2"] < curve[0]["rel_l2"]
    # the video codecs were measured at every point of the curve
    sizes = {round(r["bytes_per_field"], 3) for r in curve}
    for codec in ("h264 (libx264)", "h265 (libx265)", "av1 (libsvtav1)"):
        rows = [r for r in res["rows"] if r["method"] == codec]
        assert {r["target_bytes"] for r in rows} == sizes
        assert all(np.isfinite(r["rel_l2"]) for r in rows)
    assert (out / "rd.png").exists() and "At vqturb's own size" in (out / "rd.md").read_text()


def test_decompress_never_overwrites_raw_data_and_publishes_whole(setup, capsys, monkeypatch):
    import errno
    import shutil

    tmp, data, ckpt = setup
    vqz = tmp / "d.vqz"
    common = ["--checkpoint", str(ckpt), "--no_progress"]
    assert main(["compress", *common, "--data_dir", str(data), "--output", str(vqz)]) == 0
    # into a copy of the raw data: refused, one line, the raw files untouched
    dc = tmp / "dc"
    shutil.copytree(data, dc)
    raw = (dc / "run0" / "1.mat").read_bytes()
    capsys.readouterr()
    assert main(["decompress", str(vqz), *common, "--output", str(dc)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "did not write" in err and "--overwrite" in err
    assert (dc / "run0" / "1.mat").read_bytes() == raw
    # a new folder, then the same folder again (only its own files): fine; --overwrite: says so
    out = tmp / "out"
    assert main(["decompress", str(vqz), *common, "--output", str(out)]) == 0
    assert main(["decompress", str(vqz), *common, "--output", str(out)]) == 0
    assert len(json.loads((out / "decompressed.json").read_text())["files"]) == 18
    assert main(["decompress", str(vqz), *common, "--output", str(dc), "--overwrite"]) == 0
    assert (dc / "run0" / "1.mat").read_bytes() != raw
    # a full disk after 5 files: exit 2, nothing published, the staging folder gone
    real = scipy.io.savemat
    calls = []

    def full_disk(*a, **k):
        calls.append(1)
        if len(calls) > 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*a, **k)

    monkeypatch.setattr(scipy.io, "savemat", full_disk)
    full = tmp / "full"
    capsys.readouterr()
    assert main(["decompress", str(vqz), *common, "--output", str(full)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "No space left" in err
    assert not full.exists() and not (tmp / ".full.partial").exists()
