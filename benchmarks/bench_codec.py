"""Codec throughput: entropy coder (fields/s, tokens/s) and the classical baselines (fields/s).

Prints one JSON line per measurement:

    .venv/bin/python benchmarks/bench_codec.py [--n 256] [--resolution 64] [--repeats 3]

- ``entropy_fit`` / ``entropy_encode`` / ``entropy_decode``: :class:`vqturb.codec.entropy.
  EntropyCodec` on synthetic SPEC-sized VAR token grids (scales 1, 2, 4, 8, 16; 512 codes per
  scale; each child token correlated with its parent, as a residual quantiser's are), so the
  parent-conditioned tables are exercised. Also reports bits per token against the 9 raw bits.
- ``baseline_<name>``: each baseline at 1 bit/value on ``--n`` synthetic ``--resolution``² fields
  with a k⁻⁴ spectrum (target search included: this is what ``vqturb bench rd`` pays per point).

Reference in the same run: ``numpy_zlib``, deflating the float32 fields (a lossless floor every
general-purpose tool reaches), in fields/s and bits/value.

Timings are the best of ``--repeats``; the machine is shared, so treat them as ±30 %.
"""

from __future__ import annotations

import argparse
import json
import time
import zlib

import numpy as np

from vqturb.codec import baselines as B
from vqturb.codec.entropy import EntropyCodec


def synth_tokens(rng, n, scales=(1, 2, 4, 8, 16), vocab=512, noise=3):
    toks = [rng.integers(0, vocab, (n, 1, 1))]
    for k in range(1, len(scales)):
        s, sp = scales[k], scales[k - 1]
        i = np.arange(s) * sp // s
        up = toks[-1][:, i][:, :, i]
        toks.append((up + rng.integers(-noise, noise + 1, (n, s, s))) % vocab)
    return toks


def synth_fields(rng, n, h):
    ky = np.fft.fftfreq(h, 1.0 / h)
    kx = np.fft.rfftfreq(h, 1.0 / h)
    k = np.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)
    amp = np.where(k > 0, np.maximum(k, 1) ** -2.0, 0)
    z = rng.standard_normal((n, h, h // 2 + 1)) + 1j * rng.standard_normal((n, h, h // 2 + 1))
    f = np.fft.irfft2(z * amp, s=(h, h))
    return f / f.std()


def best_of(fn, repeats):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256, help="fields [256]")
    ap.add_argument("--resolution", type=int, default=64, help="baseline field side [64]")
    ap.add_argument("--repeats", type=int, default=3, help="best of N [3]")
    args = ap.parse_args()
    rng = np.random.default_rng(0)

    toks = synth_tokens(rng, args.n)
    n_tok = sum(t.shape[1] * t.shape[2] for t in toks)
    t_fit, codec = best_of(lambda: EntropyCodec.fit(toks, [512] * 5), args.repeats)
    t_enc, payload = best_of(lambda: codec.encode(toks), args.repeats)
    t_dec, back = best_of(lambda: codec.decode(payload, args.n), args.repeats)
    assert all(np.array_equal(a, b) for a, b in zip(toks, back, strict=True))
    table_bytes = sum(len(t) for t in codec.tables())
    for name, t in (("entropy_fit", t_fit), ("entropy_encode", t_enc), ("entropy_decode", t_dec)):
        print(
            json.dumps(
                {
                    "what": name,
                    "fields": args.n,
                    "fields_per_s": args.n / t,
                    "tokens_per_s": args.n * n_tok / t,
                    "bits_per_token": 8 * len(payload) / (args.n * n_tok),
                    "raw_bits_per_token": 9,
                    "table_bytes": table_bytes,
                    "contexts": [m.context for m in codec.models],
                }
            )
        )

    x = synth_fields(rng, min(args.n, 64), args.resolution)
    n_val = args.resolution**2
    t_z, z = best_of(
        lambda: [zlib.compress(f.astype(np.float32).tobytes(), 6) for f in x], args.repeats
    )
    print(
        json.dumps(
            {
                "what": "numpy_zlib",
                "fields_per_s": len(x) / t_z,
                "bits_per_value": 8 * sum(map(len, z)) / (len(x) * n_val),
            }
        )
    )
    target = n_val / 8  # 1 bit per value
    methods = {"fourier": B.fourier, "zfp": B.zfp, "sz3": B.sz3, "pod": B.POD(x[: len(x) // 2])}
    for name, fn in methods.items():
        t, c = best_of(lambda fn=fn: fn(x, target), 1)
        print(
            json.dumps(
                {
                    "what": f"baseline_{name}",
                    "fields": len(x),
                    "fields_per_s": len(x) / t,
                    "bits_per_value": 8 * c.n_bytes / n_val,
                    "rel_l2": B._rel_l2(c.recon, x),
                    "params": {k: v for k, v in c.params.items() if k != "basis_bytes"},
                }
            )
        )


if __name__ == "__main__":
    main()
