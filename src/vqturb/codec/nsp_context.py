"""Lossless token coding with a trained next-scale predictor as the probability model.

The static tables of :mod:`vqturb.codec.entropy` code a fine-scale token with about as many bits as
its raw index: one previous-frame table per scale has too many contexts to estimate from one
dataset. A trained NSP model (:mod:`vqturb.models.nsp`) is a far better conditional model of the
same symbols: ``p(x_k | t0, t1 scales < k)``, with ``t0`` the previous frame's tokens. Its
teacher-forced cross-entropy is the code length an arithmetic coder reaches with it (Shannon
1948; the "learned entropy model" of neural compression, e.g. Ballé et al. 2018), so the forecaster
that `vqturb train-nsp` trains doubles as the compressor's context model.

How a file is coded (both sides run exactly these steps, so they derive identical tables):

* a field whose previous frame is not in the file (a trajectory's first frame) is coded with the
  static tables, as before;
* the others go generation by generation (fields whose previous frame is decoded), in chunks of
  :attr:`NSPContext.batch` fields (the last chunk padded by repeating its first row, so every call
  of the jitted model has the same shape), scale by scale: the model reads the previous frame's
  tokens and the field's coarser scales (finer scales are set to a fixed filler, so the inputs do
  not depend on what is not decoded yet), its softmax over the scale's NSP vocabulary is mapped to
  the file's alphabet (a code the NSP vocabulary lacks gets no mass of its own), turned into
  integer frequencies summing to ``2**precision`` with every symbol at least 1
  (:func:`~vqturb.codec.entropy.quantize_frequencies`, float64), and the scale's symbols are range
  coded with them (``constriction``).

The float arithmetic is the same program on the same inputs on both sides; a file decodes on the
machine type (backend, JAX version) that wrote it. Elsewhere the float32 logits may round
differently; the file stores a CRC-32 of the tokens, so such a decode fails with a clear message
instead of returning other tokens.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
from numpy.typing import ArrayLike

from vqturb import checkpoint as ck
from vqturb.codec.entropy import frame_depth, quantize_frequencies
from vqturb.errors import InputError
from vqturb.models.nsp import NextScalePredictor
from vqturb.utils.fileio import file_sha256

# Fixed-point precision of the per-symbol frequencies (constriction's range coder works at 24).
PRECISION = 20
# Fields per call of the model (one compiled shape for every call).
BATCH = 8


@eqx.filter_jit
def _scale_logits(model: NextScalePredictor, t0: jax.Array, t1: jax.Array, k: int) -> jax.Array:
    """Teacher-forced logits ``[B, s_k**2, V_k]`` of t1 scale ``k`` (static) given t0 and t1's
    coarser scales (SPEC mode: scale k's positions are queries)."""
    v0, v1 = model.embed_tokens(t0), model.embed_tokens(t1)
    logits = jax.vmap(lambda a, b: model.logits_spec(a, b, k))(v0, v1)
    return logits[model.config.trainable_scales.index(k)]


def tokens_crc32(local: Sequence[np.ndarray]) -> int:
    """CRC-32 of per-scale local ids (int32, little-endian, scale after scale)."""
    crc = 0
    for x in local:
        crc = zlib.crc32(np.ascontiguousarray(x, dtype="<i4").tobytes(), crc)
    return crc & 0xFFFFFFFF


@dataclass(frozen=True, eq=False)
class NSPContext:
    """A trained NSP model and the maps between the VQ-VAE's codebook codes and its vocabulary."""

    model: NextScalePredictor
    sha256: str  # of the NSP checkpoint file (the .vqz records it)
    path: str
    # per scale: codebook code -> the NSP unified id of that exact code, or -1
    exact: tuple[np.ndarray, ...]
    # per scale: codebook code -> the NSP unified id of the nearest code it has (model input)
    nearest: tuple[np.ndarray, ...]
    precision: int = PRECISION
    batch: int = BATCH

    @classmethod
    def load(
        cls, path: str | os.PathLike, codebooks: Sequence[ArrayLike], vqvae_sha256: str = ""
    ) -> NSPContext:
        """Load an NSP checkpoint for the VQ-VAE whose per-scale ``codebooks`` (``[K, D]`` each)
        made its tokens (and whose file has SHA-256 ``vqvae_sha256``, checked against the one the
        NSP's tokens were made with when both are known). Its vocabulary is matched to the
        codebook codes by their vectors."""
        model, header = ck.load_model(path, kind="nsp")
        made_with = str(header.get("meta", {}).get("checkpoint_sha256") or "")
        if made_with and vqvae_sha256 and made_with != vqvae_sha256:
            raise InputError(
                path, "checkpoint_sha256",
                f"trained on tokens of VQ-VAE {made_with[:16]}…, this one is {vqvae_sha256[:16]}…",
                "an NSP model trained on tokens of this VQ-VAE checkpoint",
            )  # fmt: skip
        cfg = model.config
        cbs = [np.asarray(c, dtype=np.float32) for c in codebooks]
        if len(cbs) != cfg.n_scales:
            raise InputError(
                path, "scales", f"{cfg.n_scales} scales", f"the VQ-VAE's {len(cbs)} scales"
            )
        vectors = np.asarray(model.codebook, dtype=np.float32)
        exact, nearest = [], []
        for k, cb in enumerate(cbs):
            off, v = cfg.scale_offsets[k], cfg.scale_vocab_sizes[k]
            own = vectors[off : off + v]
            d2 = ((cb[:, None, :] - own[None, :, :]) ** 2).sum(-1)  # [K, V_k]
            best = np.argmin(d2, axis=1)
            hit = d2[np.arange(len(cb)), best] == 0
            if not hit.any():
                raise InputError(
                    path, f"vocabulary at scale {k}", "matches none of the VQ-VAE's codes",
                    "an NSP model trained on tokens of this VQ-VAE checkpoint",
                )  # fmt: skip
            exact.append(np.where(hit, off + best, -1).astype(np.int64))
            nearest.append((off + best).astype(np.int64))
        return cls(model, file_sha256(path), str(Path(path)), tuple(exact), tuple(nearest))

    # ---------------------------------------------------------------- probabilities

    def _rows(self, codes: Sequence[np.ndarray], m: int) -> np.ndarray:
        """NSP input rows ``[m, T]`` from the codebook codes of the first ``len(codes)`` scales
        (nearest known ids); the later scales are the fixed filler (each scale's first id)."""
        cfg = self.model.config
        upto = len(codes)
        parts = []
        for j in range(cfg.n_scales):
            n = cfg.scale_lengths[j]
            if j < upto:
                parts.append(self.nearest[j][np.asarray(codes[j]).reshape(m, n)])
            else:
                parts.append(np.full((m, n), cfg.scale_offsets[j], np.int64))
        return np.concatenate(parts, axis=1).astype(np.int32)

    def _padded(self, rows: np.ndarray) -> np.ndarray:
        pad = self.batch - rows.shape[0]
        return rows if pad == 0 else np.concatenate([rows, np.repeat(rows[:1], pad, 0)])

    def frequencies(
        self, t0_rows: np.ndarray, t1_codes: Sequence[np.ndarray], k: int, used_k: np.ndarray
    ) -> np.ndarray:
        """Integer frequencies ``[m, s_k**2, n_k]`` over the file's alphabet ``used_k`` (sorted
        codebook codes) of scale ``k`` for ``m ≤ batch`` fields: t0 rows ``[m, T]`` and the
        fields' codes of scales ``< k``."""
        cfg = self.model.config
        m = t0_rows.shape[0]
        off, v = cfg.scale_offsets[k], cfg.scale_vocab_sizes[k]
        if k in cfg.trainable_scales:
            t1 = self._rows(list(t1_codes[:k]), m)
            lg = _scale_logits(self.model, self._padded(t0_rows), self._padded(t1), k)
            lg = np.asarray(jax.device_get(lg), dtype=np.float64)[:m]
            p = np.exp(lg - lg.max(axis=-1, keepdims=True))
            p /= p.sum(axis=-1, keepdims=True)
        else:  # a one-token scale of the NSP vocabulary: all its mass on that token
            p = np.ones((m, cfg.scale_lengths[k], v))
        ids = self.exact[k][np.asarray(used_k, dtype=np.int64)] - off  # [n_k], -1 - off if absent
        known = ids >= 0
        w = np.zeros(p.shape[:2] + (len(used_k),))
        w[..., known] = p[..., ids[known]]
        return quantize_frequencies(w, self.precision)

    # ---------------------------------------------------------------- coding

    def _chunks(self, prev: np.ndarray):
        depth = frame_depth(prev)
        for g in range(1, int(depth.max(initial=0)) + 1):
            fields = np.flatnonzero(depth == g)
            for i in range(0, fields.size, self.batch):
                yield fields[i : i + self.batch]

    def _schedule(self, codes: list[np.ndarray], used: Sequence[np.ndarray], prev: np.ndarray):
        """The coding order, shared by both sides: yields ``(fields, k, frequencies)`` for every
        chunk and coded scale. ``codes`` (codebook codes per scale ``[N, s, s]``) is read when
        each step is computed, so a decoder fills in ``codes[k][fields]`` before resuming."""
        for fields in self._chunks(prev):
            t0 = self._rows([c[prev[fields]] for c in codes], fields.size)
            for k in range(len(codes)):
                if len(used[k]) > 1:
                    f = self.frequencies(t0, [c[fields] for c in codes[:k]], k, used[k])
                    yield fields, k, f

    def encode(
        self, local: Sequence[np.ndarray], used: Sequence[np.ndarray], prev: np.ndarray
    ) -> bytes:
        """Code the fields with a previous frame (``prev >= 0``): ``local`` per-scale ids
        ``[N, s, s]`` of the file's alphabet ``used`` (sorted codebook codes per scale)."""
        import constriction

        family = constriction.stream.model.Categorical(perfect=False)
        codes = [np.asarray(u)[np.asarray(x)] for u, x in zip(used, local, strict=True)]
        enc = constriction.stream.queue.RangeEncoder()
        scale = 1.0 / float(1 << self.precision)
        for fields, k, f in self._schedule(codes, used, prev):
            sym = np.asarray(local[k])[fields].reshape(-1).astype(np.int32)
            enc.encode(sym, family, f.reshape(sym.size, -1).astype(np.float64) * scale)
        return enc.get_compressed().astype("<u4").tobytes()

    def decode(
        self,
        payload: bytes,
        first: Sequence[np.ndarray],
        used: Sequence[np.ndarray],
        prev: np.ndarray,
    ) -> list[np.ndarray]:
        """Inverse of :meth:`encode`: ``first`` holds every field's local ids already decoded
        (the fields without a previous frame; the others are overwritten)."""
        import constriction

        if len(payload) % 4:
            raise ValueError("NSP payload length is not a multiple of 4 bytes")
        family = constriction.stream.model.Categorical(perfect=False)
        words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
        dec = constriction.stream.queue.RangeDecoder(words)
        local = [np.array(x, dtype=np.int32) for x in first]
        for k, u in enumerate(used):
            if len(u) == 1:  # a one-code alphabet carries no bits
                local[k][prev >= 0] = 0
        codes = [np.asarray(u)[x] for u, x in zip(used, local, strict=True)]
        scale = 1.0 / float(1 << self.precision)
        for fields, k, f in self._schedule(codes, used, prev):
            s = local[k].shape[-1]
            probs = f.reshape(-1, f.shape[-1]).astype(np.float64) * scale
            sym = np.asarray(dec.decode(family, probs), dtype=np.int32)
            local[k][fields] = sym.reshape(fields.size, s, s)
            codes[k][fields] = np.asarray(used[k])[local[k][fields]]
        return local

    def code_bits(
        self, local: Sequence[np.ndarray], used: Sequence[np.ndarray], prev: np.ndarray
    ) -> list[float]:
        """Ideal code length in bits per scale of the fields with a previous frame."""
        codes = [np.asarray(u)[np.asarray(x)] for u, x in zip(used, local, strict=True)]
        bits = [0.0] * len(codes)
        for fields, k, f in self._schedule(codes, used, prev):
            sym = np.asarray(local[k])[fields].reshape(len(fields), -1)
            fs = np.take_along_axis(f, sym[..., None], -1)[..., 0]
            bits[k] += float(np.sum(self.precision - np.log2(fs.astype(np.float64))))
        return bits

    def descriptor(self, local: Sequence[np.ndarray]) -> dict:
        """The ``.vqz`` header entry: which model, how it was applied, the tokens' CRC-32."""
        return {
            "checkpoint_sha256": self.sha256,
            "precision": self.precision,
            "batch": self.batch,
            "tokens_crc32": tokens_crc32(local),
        }
