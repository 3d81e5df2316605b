"""Token coding with an NSP model as the context (compress/decompress --nsp_checkpoint)."""

import json

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
import scipy.io

from codec.tiny_model import fields, make_checkpoint
from vqturb import checkpoint as ck
from vqturb.cli import main
from vqturb.codec.container import pack_vqz, unpack_vqz
from vqturb.codec.entropy import previous_frames
from vqturb.codec.nsp_context import NSPContext
from vqturb.codec.vqz import decode_token_file
from vqturb.data.tokens_file import TokensFile
from vqturb.errors import InputError
from vqturb.models.nsp import build_nsp
from vqturb.models.nsp_config import NSPConfig
from vqturb.tokenizer import VQVAETokenizer


def _nsp_checkpoint(path, tokens_path, seed=0):
    """An (untrained) NSP model on the vocabulary of ``tokens_path``, saved as train-nsp does."""
    z = TokensFile.read(tokens_path)
    cfg = NSPConfig.from_tokens(
        {"scales": z.scales, "scale_offsets": z.scale_offsets,
         "scale_vocab_sizes": z.scale_vocab_sizes, "codebook": z.codebook},
        n_layer=1, n_head=2, n_embd=16,
    )  # fmt: skip
    model = build_nsp(cfg, z.codebook, key=jr.key(seed))
    ck.save_model(path, model, kind="nsp", config=cfg.to_dict(),
                  meta={"checkpoint_sha256": z.checkpoint_sha256})  # fmt: skip
    return path


@pytest.fixture
def setup(tmp_path, stand_in_vqvae, rng):
    """3 trajectories x 6 snapshots of 16x16 fields, a VQ-VAE, and an NSP model whose vocabulary
    comes from the first trajectory only (so the other trajectories hold codes it lacks)."""
    data = tmp_path / "data"
    x = fields(rng, 18)
    for j in range(3):
        (data / f"run{j}").mkdir(parents=True)
        for t in range(6):
            scipy.io.savemat(data / f"run{j}" / f"{t + 1}.mat",
                             {"Omega": x[6 * j + t].astype(np.float64), "time": 0.5 * t})  # fmt: skip
    ckpt, _ = make_checkpoint(tmp_path / "m.eqx", var_mode=True)
    first = tmp_path / "first"
    (first / "run0").mkdir(parents=True)
    for t in range(6):
        (first / "run0" / f"{t + 1}.mat").write_bytes((data / "run0" / f"{t + 1}.mat").read_bytes())
    assert main(["tokenizer", "save", "--checkpoint", str(ckpt), "--data_dir", str(first),
                 "--output", str(tmp_path / "t.npz"), "--no_progress"]) == 0  # fmt: skip
    nsp = _nsp_checkpoint(tmp_path / "nsp.eqx", tmp_path / "t.npz")
    return tmp_path, data, ckpt, nsp


def test_round_trip_with_codes_the_nsp_lacks(setup, capsys):
    tmp, data, ckpt, nsp = setup
    common = ["--checkpoint", str(ckpt), "--no_progress"]
    static, coded = tmp / "s.vqz", tmp / "n.vqz"
    assert main(["compress", *common, "--data_dir", str(data), "--output", str(static)]) == 0
    capsys.readouterr()
    assert main(["compress", *common, "--data_dir", str(data), "--output", str(coded),
                 "--nsp_checkpoint", str(nsp), "--json"]) == 0  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert report["nsp_checkpoint"] == str(nsp)
    ctx = NSPContext.load(nsp, VQVAETokenizer(ckpt).model.codebooks())
    a = decode_token_file(static.read_bytes())
    b = decode_token_file(coded.read_bytes(), nsp=ctx)
    # the NSP's vocabulary misses some of the file's codes, and they still round-trip exactly
    missing = [
        np.setdiff1d(u, np.flatnonzero(e >= 0)) for u, e in zip(b.vocab, ctx.exact, strict=True)
    ]
    assert sum(m.size for m in missing) > 0
    assert all(np.array_equal(c, d) for c, d in zip(a.codes, b.codes, strict=True))
    assert "nsp" in b.header and "payload_nsp" in unpack_vqz(coded.read_bytes())[1]
    # decompress needs the same NSP checkpoint; with it the fields are the static file's
    out_s, out_n = tmp / "out_s", tmp / "out_n"
    assert main(["decompress", str(static), *common, "--output", str(out_s)]) == 0
    assert main(["decompress", str(coded), *common, "--output", str(out_n)]) == 2
    assert "--nsp_checkpoint" in capsys.readouterr().err
    other = _nsp_checkpoint(tmp / "other.eqx", tmp / "t.npz", seed=1)
    assert main(["decompress", str(coded), *common, "--output", str(out_n),
                 "--nsp_checkpoint", str(other)]) == 2  # fmt: skip
    assert "same NSP checkpoint" in capsys.readouterr().err
    assert main(["decompress", str(coded), *common, "--output", str(out_n),
                 "--nsp_checkpoint", str(nsp)]) == 0  # fmt: skip
    for f in sorted(out_s.rglob("*.mat")):
        g = out_n / f.relative_to(out_s)
        assert np.array_equal(scipy.io.loadmat(f)["Omega"], scipy.io.loadmat(g)["Omega"])


def test_code_length_is_the_models_cross_entropy(setup):
    """The coder's ideal length is −log2 of the model's teacher-forced probabilities (computed
    here from ``logits_spec`` directly), up to the fixed-point floor of each symbol."""
    tmp, data, ckpt, nsp = setup
    tok = VQVAETokenizer(ckpt)
    z = TokensFile.read(tmp / "t.npz")  # trajectory 0 only: every code is in the NSP vocabulary
    tok.set_vocabulary(
        z.scales, np.split(z.unified_to_original, np.cumsum(z.scale_vocab_sizes)[:-1])
    )
    local = tok.codes_to_local(tok.unified_to_codes(z.indices))
    prev = previous_frames(z.trajectory_id, z.time_index)
    ctx = NSPContext.load(nsp, tok.model.codebooks())
    bits = ctx.code_bits(local, tok.used, prev)
    model = ctx.model
    cfg = model.config
    expect = np.zeros(cfg.n_scales)
    for i in np.flatnonzero(prev >= 0):
        v0 = model.embed_tokens(jnp.asarray(z.indices[prev[i]]))
        for k in cfg.trainable_scales:
            t1 = z.indices[i].copy()
            for j in range(k, cfg.n_scales):  # the coder's filler for scales not decoded yet
                o = cfg.token_offsets[j]
                t1[o : o + cfg.scale_lengths[j]] = cfg.scale_offsets[j]
            lg = np.asarray(model.logits_spec(v0, model.embed_tokens(jnp.asarray(t1)), k)
                            [cfg.trainable_scales.index(k)], np.float64)  # fmt: skip
            o = cfg.token_offsets[k]
            target = z.indices[i, o : o + cfg.scale_lengths[k]] - cfg.scale_offsets[k]
            logp = lg - lg.max(-1, keepdims=True)
            logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
            expect[k] -= np.sum(logp[np.arange(target.size), target]) / np.log(2)
    for k in cfg.trainable_scales:
        assert bits[k] == pytest.approx(expect[k], rel=0.02, abs=0.5)
    assert bits[0] == 0.0 or cfg.scale_vocab_sizes[0] > 1


def test_checksum_mismatch_is_a_clear_error(setup, capsys):
    tmp, data, ckpt, nsp = setup
    coded = tmp / "n.vqz"
    assert main(["compress", "--checkpoint", str(ckpt), "--data_dir", str(data), "--output",
                 str(coded), "--nsp_checkpoint", str(nsp), "--no_progress"]) == 0  # fmt: skip
    header, sections = unpack_vqz(coded.read_bytes())
    header["nsp"]["tokens_crc32"] ^= 1
    ctx = NSPContext.load(nsp, VQVAETokenizer(ckpt).model.codebooks())
    with pytest.raises(InputError, match="tokens_crc32"):
        decode_token_file(pack_vqz(header, sections), nsp=ctx)


def test_bench_rd_curve_uses_the_nsp(setup):
    tmp, data, ckpt, nsp = setup
    out = tmp / "rd"
    assert main(["bench", "rd", "--checkpoint", str(ckpt), "--data_dir", str(data),
                 "--output_dir", str(out), "--bits_per_value", "2", "--video", "none",
                 "--nsp_checkpoint", str(nsp), "--no_progress"]) == 0  # fmt: skip
    rows = json.loads((out / "rd.json").read_text())["rows"]
    full = [r for r in rows if r["method"] == "vqturb (entropy-coded)"
            and r["params"]["scales_decoded"] == 3]  # fmt: skip
    static = [r for r in rows if r["method"] == "vqturb (entropy-coded, static tables)"]
    assert len(full) == 1 and full[0]["params"]["coder"] == "nsp" and len(static) == 1
    assert full[0]["rel_l2"] == pytest.approx(static[0]["rel_l2"])  # same tokens, same fields
