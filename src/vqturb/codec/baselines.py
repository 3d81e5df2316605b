"""Classical lossy compressors at a target size in bytes per field, for the rate–distortion table.

Every baseline takes fields ``[N, H, W]`` (physical units) and a target ``bytes per field`` and
returns a :class:`Coded` ``(n_bytes, recon, params)``: the mean number of bytes per field it really
produced (all per-field side information included: scales, stream headers), the reconstruction and
the parameters it chose. Encoder-side searches (bits per coefficient, error bound, downsampling
factor) pick the lowest relative L2 among the settings that fit the target, as a user of that
compressor could.

- :func:`fourier`: the lowest-|k| Fourier modes, uniformly quantised (mode count from the bytes).
- :class:`POD`: proper orthogonal decomposition (PCA) fitted on a training split; the basis cost
  (``basis_bytes``, float32) is stated separately, as it is shared by every field.
- :func:`sz3`: SZ3 (``pysz``) with an absolute error bound searched for the size (SZ3 has no
  fixed-rate mode; its size is not monotonic in the bound at large bounds, so the search scans a
  grid and refines, keeping the best setting that fits rather than assuming monotonicity).
- :func:`zfp`: ZFP (``zfpy``) fixed-rate. Rates below 0.5625 bits/value crash ``zfpy``, so the
  rate is clamped and smaller sizes are reached by spectral downsampling first.
- :class:`VideoCodec`: H.264 (libx264), H.265 (libx265) or AV1 (SVT-AV1) through the ``ffmpeg``
  that ``imageio-ffmpeg`` ships, over all fields as the frames of one gray video in their order
  (time order within a trajectory): the stack's float32 min/max (8 bytes, counted) map the values
  to the codec's bit depth, the constant rate factor is searched for the size, and the
  quantisation to integers is part of the error.
- :func:`mean_only`: each field replaced by its mean (4 bytes): the floor every method must beat.

References: Lindstrom (2014) ZFP, IEEE TVCG 20(12); Liang et al. (2023) SZ3, IEEE TBD;
Holmes, Lumley & Berkooz (1996) POD; Wiegand et al. (2003) H.264/AVC, IEEE TCSVT 13(7);
Sullivan et al. (2012) HEVC, IEEE TCSVT 22(12); Han et al. (2021) AV1, Proc. IEEE 109(9).
"""

from __future__ import annotations

import functools
import hashlib
import math
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from vqturb.errors import InputError

ZFP_MIN_RATE = 0.5625  # bits/value; zfpy crashes below (fixed-rate, 2-D blocks of 4×4)
FLOAT_BYTES = 4  # a per-field float32 scale or mean
BITS_CHOICES: tuple[int, ...] = (3, 4, 6, 8, 12)


class Coded(NamedTuple):
    """One baseline at one target size."""

    n_bytes: float  # mean bytes per field actually produced
    recon: np.ndarray  # [N, H, W] float64 reconstruction
    params: dict  # what the encoder chose (JSON-safe)


def _rel_l2(recon: np.ndarray, ref: np.ndarray) -> float:
    num = np.sqrt(np.sum((recon - ref) ** 2, axis=(-2, -1)))
    den = np.maximum(np.sqrt(np.sum(ref**2, axis=(-2, -1))), 1e-300)
    return float(np.mean(num / den))


def _best(candidates: Sequence[Coded], target: float, ref: np.ndarray) -> Coded:
    """Lowest error among candidates within the target; the smallest one if none fits."""
    fits = [c for c in candidates if c.n_bytes <= target + 1e-9]
    if not fits:
        c = min(candidates, key=lambda c: c.n_bytes)
        return Coded(c.n_bytes, c.recon, {**c.params, "over_target": True})
    return min(fits, key=lambda c: _rel_l2(c.recon, ref))


# ------------------------------------------------------------------ uniform quantiser


def quantize_uniform(x: np.ndarray, bits: int, axis: tuple[int, ...]) -> np.ndarray:
    """Mid-tread uniform quantisation to ``bits`` signed bits with a per-field max-abs scale
    (the scale, rounded to float32, is what a decoder would read); returns dequantised values."""
    levels = (1 << (bits - 1)) - 1
    scale = np.max(np.abs(x), axis=axis, keepdims=True).astype(np.float32).astype(np.float64)
    safe = np.where(scale > 0, scale, 1.0)
    return np.round(x / safe * levels) / levels * safe


# ------------------------------------------------------------------ Fourier truncation


def mode_order(h: int, w: int) -> np.ndarray:
    """Flat indices into an ``rfft2`` array ``[h, w//2+1]`` of the independent modes of a real
    field, by increasing |k| (ties: ky, then kx). Redundant conjugates (kx = 0 or Nyquist with
    ky < 0) are left out; they are restored by symmetry."""
    ky = np.fft.fftfreq(h, 1.0 / h)
    kx = np.arange(w // 2 + 1)
    KY, KX = np.meshgrid(ky, kx, indexing="ij")
    nyq_row = (h % 2 == 0) & (KY == -(h // 2))  # self-conjugate: kept
    keep = ~(((KX == 0) | ((w % 2 == 0) & (KX == w // 2))) & (KY < 0) & ~nyq_row)
    flat = np.flatnonzero(keep.ravel())
    k2 = (KY**2 + KX**2).ravel()[flat]
    order = np.lexsort((KX.ravel()[flat], KY.ravel()[flat], k2))
    return flat[order]


def _mode_bits(h: int, w: int) -> np.ndarray:
    """Real numbers each independent mode costs (1 for self-conjugate modes, else 2)."""
    order = mode_order(h, w)
    ky = np.fft.fftfreq(h, 1.0 / h)[order // (w // 2 + 1)]
    kx = order % (w // 2 + 1)
    self_conj = ((kx == 0) | ((w % 2 == 0) & (kx == w // 2))) & (
        (ky == 0) | ((h % 2 == 0) & (ky == -h // 2))
    )
    return np.where(self_conj, 1, 2)


def fourier_truncate(fields: np.ndarray, n_modes: int, bits: int | None) -> np.ndarray:
    """Keep the ``n_modes`` lowest-|k| independent modes, quantised to ``bits`` per real number
    (per-field max-abs scale; ``None``: exact), and invert."""
    fields = np.asarray(fields, dtype=np.float64)
    n, h, w = fields.shape
    spec = np.fft.rfft2(fields)
    order = mode_order(h, w)[:n_modes]
    coef = spec.reshape(n, -1)[:, order]
    if bits is not None:
        ri = quantize_uniform(np.stack([coef.real, coef.imag], -1), bits, axis=(1, 2))
        coef = ri[..., 0] + 1j * ri[..., 1]
    kept = np.zeros_like(spec).reshape(n, -1)
    kept[:, order] = coef
    kept = kept.reshape(spec.shape)
    # restore the conjugate half of the kx = 0 (and Nyquist) columns
    for col in {0, w // 2} if w % 2 == 0 else {0}:
        c = kept[:, :, col]
        sym = np.conj(c[:, (-np.arange(h)) % h])
        kept[:, :, col] = np.where(c != 0, c, sym)
    return np.fft.irfft2(kept, s=(h, w))


def fourier(fields: np.ndarray, target_bytes: float) -> Coded:
    """Fourier truncation at ``target_bytes`` per field; the bits per coefficient are searched."""
    fields = np.asarray(fields, dtype=np.float64)
    _, h, w = fields.shape
    cost = np.cumsum(_mode_bits(h, w))  # real numbers for the first m modes
    cands = []
    # whole bytes only: a fractional target must not be overshot by the final ceil
    budget_bytes = math.floor(target_bytes + 1e-9) - FLOAT_BYTES
    for bits in BITS_CHOICES:
        budget = budget_bytes * 8 / bits
        m = int(np.searchsorted(cost, budget, side="right"))
        if m < 1:
            continue
        nb = FLOAT_BYTES + math.ceil(int(cost[m - 1]) * bits / 8)
        cands.append(
            Coded(float(nb), fourier_truncate(fields, m, bits), {"modes": m, "bits": bits})
        )
    if not cands:
        m = 1
        nb = FLOAT_BYTES + 1
        cands.append(Coded(float(nb), fourier_truncate(fields, 1, 8), {"modes": 1, "bits": 8}))
    return _best(cands, target_bytes, fields)


# ------------------------------------------------------------------ POD / PCA


class POD:
    """POD basis fitted on training fields; coefficients quantised per field.

    Args:
        train: ``[N, H, W]`` training fields.
        max_modes: basis size kept (the basis cost grows with it).
    """

    def __init__(self, train: np.ndarray, max_modes: int = 256):
        train = np.asarray(train, dtype=np.float64)
        n, h, w = train.shape
        self.shape = (h, w)
        self.mean = train.mean(0).ravel()
        x = train.reshape(n, -1) - self.mean
        _, sv, vt = np.linalg.svd(x, full_matrices=False)
        r = int(min(max_modes, np.sum(sv > sv[0] * 1e-10))) if sv.size else 0
        self.basis = vt[:r]  # [r, H*W], orthonormal rows

    @property
    def n_modes(self) -> int:
        return int(self.basis.shape[0])

    def basis_bytes(self, n_modes: int) -> int:
        """float32 storage of the mean field and ``n_modes`` basis vectors (shared by all)."""
        return FLOAT_BYTES * (n_modes + 1) * self.shape[0] * self.shape[1]

    def reconstruct(self, fields: np.ndarray, n_modes: int, bits: int | None) -> np.ndarray:
        fields = np.asarray(fields, dtype=np.float64)
        x = fields.reshape(fields.shape[0], -1) - self.mean
        a = x @ self.basis[:n_modes].T
        if bits is not None and n_modes:
            a = quantize_uniform(a, bits, axis=(1,))
        return (a @ self.basis[:n_modes] + self.mean).reshape(fields.shape)

    def __call__(self, fields: np.ndarray, target_bytes: float) -> Coded:
        fields = np.asarray(fields, dtype=np.float64)
        cands = []
        budget_bytes = math.floor(target_bytes + 1e-9) - FLOAT_BYTES
        for bits in BITS_CHOICES:
            r = int(min(self.n_modes, budget_bytes * 8 // bits))
            if r < 1:
                continue
            nb = FLOAT_BYTES + math.ceil(r * bits / 8)
            p = {"modes": r, "bits": bits, "basis_bytes": self.basis_bytes(r)}
            cands.append(Coded(float(nb), self.reconstruct(fields, r, bits), p))
        if not cands:
            p = {"modes": 0, "bits": 0, "basis_bytes": self.basis_bytes(0)}
            cands.append(Coded(0.0, self.reconstruct(fields, 0, None), p))
        return _best(cands, target_bytes, fields)


# ------------------------------------------------------------------ spectral resampling


def spectral_resample(fields: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resample periodic fields ``[N, H, W]`` to ``shape`` by cropping or zero-padding the
    centred spectrum (values, not amplitudes, are preserved: a constant stays the same constant).
    The Nyquist row/column of an even-sized crop is dropped to keep the result real."""
    fields = np.asarray(fields, dtype=np.float64)
    n, h, w = fields.shape
    h2, w2 = shape
    if (h2, w2) == (h, w):
        return fields.copy()
    spec = np.fft.fftshift(np.fft.fft2(fields), axes=(-2, -1))
    out = np.zeros((n, h2, w2), dtype=complex)
    mh, mw = min(h, h2), min(w, w2)
    # keep |ky| < mh/2 symmetric so the result is real
    kh, kw = (mh - 1) // 2, (mw - 1) // 2
    ch, cw = h // 2, w // 2
    oh, ow = h2 // 2, w2 // 2
    out[:, oh - kh : oh + kh + 1, ow - kw : ow + kw + 1] = spec[
        :, ch - kh : ch + kh + 1, cw - kw : cw + kw + 1
    ]
    res = np.fft.ifft2(np.fft.ifftshift(out, axes=(-2, -1))).real
    return res * (h2 * w2) / (h * w)


def _downsample_factors(h: int, w: int, min_side: int = 4) -> list[int]:
    out, d = [], 1
    while h % d == 0 and w % d == 0 and min(h, w) // d >= min_side:
        out.append(d)
        d *= 2
    return out


# ------------------------------------------------------------------ ZFP


def _zfp_fixed_rate(small: np.ndarray, rate: float) -> tuple[int, np.ndarray]:
    import zfpy

    rate = max(rate, ZFP_MIN_RATE)
    total, out = 0, np.empty_like(small)
    for i, f in enumerate(small.astype(np.float32)):
        # headerless stream: shape, type and rate are shared metadata of the whole dataset
        buf = zfpy.compress_numpy(np.ascontiguousarray(f), rate=rate, write_header=False)
        total += len(buf)
        out[i] = zfpy._decompress(
            np.frombuffer(buf, np.uint8), zfpy.type_float, list(f.shape), rate=rate
        )
    return total, out


def zfp(fields: np.ndarray, target_bytes: float) -> Coded:
    """ZFP fixed-rate at ``target_bytes`` per field, on the field or a spectral downsample of it
    (the factor giving the lowest error within the target is kept)."""
    fields = np.asarray(fields, dtype=np.float64)
    n, h, w = fields.shape
    cands = []
    for d in _downsample_factors(h, w):
        hs, ws = h // d, w // d
        rate = target_bytes * 8 / (hs * ws)
        if rate < ZFP_MIN_RATE:
            continue
        small = spectral_resample(fields, (hs, ws))
        # fixed-rate streams round up to whole blocks/words: step the rate down until it fits
        for _ in range(8):
            nb, dec = _zfp_fixed_rate(small, rate)
            if nb / n <= target_bytes or rate <= ZFP_MIN_RATE:
                break
            rate = max(ZFP_MIN_RATE, rate * target_bytes / (nb / n) - 1 / 16)
        recon = spectral_resample(dec.astype(np.float64), (h, w))
        cands.append(Coded(nb / n, recon, {"downsample": d, "rate": rate}))
    if not cands:
        d = _downsample_factors(h, w)[-1]
        small = spectral_resample(fields, (h // d, w // d))
        nb, dec = _zfp_fixed_rate(small, ZFP_MIN_RATE)
        recon = spectral_resample(dec.astype(np.float64), (h, w))
        cands.append(Coded(nb / n, recon, {"downsample": d, "rate": ZFP_MIN_RATE}))
    return _best(cands, target_bytes, fields)


# ------------------------------------------------------------------ SZ3


def _sz3_abs(small: np.ndarray, bound: float, stack: bool = False) -> tuple[int, np.ndarray]:
    import pysz

    total, out = 0, np.empty_like(small)
    # stack: the fields as one 3-D array (one stream, one header; the predictor also uses the
    # neighbouring fields, i.e. time when the fields are consecutive snapshots)
    parts = [small.astype(np.float32)] if stack else list(small.astype(np.float32))
    for i, f in enumerate(parts):
        cfg = pysz.szConfig()
        cfg.errorBoundMode = pysz.szErrorBoundMode.ABS
        cfg.absErrorBound = float(bound)
        buf, _ = pysz.sz.compress(np.ascontiguousarray(f), cfg)
        total += int(buf.size)
        dec, _ = pysz.sz.decompress(buf, np.float32, f.shape)
        if stack:
            out[...] = dec
        else:
            out[i] = dec
    return total, out


def sz3(
    fields: np.ndarray,
    target_bytes: float,
    n_grid: int = 14,
    n_refine: int = 6,
    stack: bool = False,
) -> Coded:
    """SZ3 at ``target_bytes`` per field: one absolute error bound for all fields, searched.

    The bound is scanned on a log grid from 1e-6 to 1 times the value range; then, between the
    largest fitting bound and its neighbour, bisected ``n_refine`` times. Since size is not
    monotonic in the bound at large bounds, every evaluated setting is a candidate and the best
    fitting one wins. Spectral downsampling (as for ZFP) reaches sizes below SZ3's own floor.
    ``stack=True`` compresses all fields as one 3-D array (one ~100 B header for all, and
    prediction across fields): the fair counterpart of a token file that uses the previous frame.
    """
    fields = np.asarray(fields, dtype=np.float64)
    n, h, w = fields.shape
    vrange = float(fields.max() - fields.min()) or 1.0
    cands = []
    for d in _downsample_factors(h, w):
        small = spectral_resample(fields, (h // d, w // d))
        # cheap feasibility check: the loosest bound's size
        evals: dict[float, tuple[int, np.ndarray]] = {}

        def ev(b, small=small, evals=evals):
            if b not in evals:
                evals[b] = _sz3_abs(small, b, stack)
            return evals[b]

        grid = vrange * np.logspace(-6, 0, n_grid)
        if ev(grid[-1])[0] / n > target_bytes and d < _downsample_factors(h, w)[-1]:
            # the floor at this resolution is too big; a coarser one may fit
            nb, dec = ev(grid[-1])
            cands.append(Coded(nb / n, spectral_resample(dec, (h, w)), {"downsample": d}))
            continue
        for b in grid:
            ev(float(b))
        fit = [b for b in sorted(evals) if evals[b][0] / n <= target_bytes]
        if fit:
            lo = min(fit)
            above = [b for b in sorted(evals) if b < lo]
            hi = max(above) if above else None
            if hi is not None:
                a, c = hi, lo  # a: too big, c: fits
                for _ in range(n_refine):
                    mid = math.sqrt(a * c)
                    if ev(mid)[0] / n <= target_bytes:
                        c = mid
                    else:
                        a = mid
        for b, (nb, dec) in evals.items():
            recon = spectral_resample(dec.astype(np.float64), (h, w))
            cands.append(Coded(nb / n, recon, {"downsample": d, "abs_bound": b}))
    return _best(cands, target_bytes, fields)


def sz3_stack(fields: np.ndarray, target_bytes: float) -> Coded:
    """SZ3 on all fields as one 3-D array (see :func:`sz3`)."""
    return sz3(fields, target_bytes, stack=True)


# ------------------------------------------------------------------ video codecs (ffmpeg)


@dataclass(frozen=True)
class VideoFormat:
    """How one video codec is driven through ffmpeg."""

    encoder: str  # ffmpeg encoder name
    stream: str  # raw elementary-stream (de)muxer: no container bytes beyond the codec's own
    q_flag: str  # constant-quality option
    q_range: tuple[int, int]  # best (0: lossless or near) .. worst quality
    # (bit depth, pixel format) the encoder takes: gray*, or yuv420p* whose chroma planes are
    # filled with the mid level (a constant the codec spends next to nothing on)
    pix_fmts: tuple[tuple[int, str], ...]
    options: tuple[str, ...] = ()


VIDEO_FORMATS: dict[str, VideoFormat] = {
    "h264": VideoFormat(
        "libx264", "h264", "-crf", (0, 51), ((8, "gray"), (10, "gray10le")), ("-preset", "slow")
    ),
    # preset medium, not slow: slow is 5–10% lower error at equal bytes on the demo fields but
    # 3–6× the time per encode, and the search runs ~10 encodes per target
    "h265": VideoFormat(
        "libx265",
        "hevc",
        "-crf",
        (0, 51),
        ((8, "gray"), (10, "gray10le"), (12, "gray12le")),
        ("-preset", "medium", "-x265-params", "log-level=none:info=0"),
    ),
    # SVT-AV1 rather than libaom: the same error at equal bytes on the demo fields within a few
    # percent, at ~1/10 of libaom's time (cpu-used 8: 2–6 s per 100 frames of 64²)
    "av1": VideoFormat(
        "libsvtav1",
        "obu",
        "-crf",
        (1, 63),
        ((8, "yuv420p"), (10, "yuv420p10le")),
        ("-preset", "8", "-svtav1-params", "svt-log-level=0"),
    ),
}

# Bit depth used unless asked otherwise. 10 bits: on the demo's test trajectory (100 fields of
# 64²) 10-bit H.264/H.265 had 1–4% lower relative L2 than 8-bit at 30–300 B/field, 12-bit no
# better than 10; searching all depths triples the encodes.
VIDEO_BIT_DEPTH = 10


def ffmpeg_exe() -> str:
    """The ffmpeg binary that ``imageio-ffmpeg`` ships."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@functools.cache
def ffmpeg_encoders() -> frozenset[str]:
    """Names of the video encoders the ffmpeg binary has."""
    out = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-encoders"], capture_output=True, check=True, text=True
    ).stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] == "V":
            names.add(parts[1])
    return frozenset(names)


def _ffmpeg(args: Sequence[str], data: bytes) -> bytes:
    """Run ffmpeg with ``data`` on stdin; its stdout (pipes only: nothing is left on disk)."""
    p = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", *args], input=data, capture_output=True
    )
    if p.returncode:
        msg = p.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"ffmpeg {' '.join(args)} failed: {' / '.join(msg[-3:])}")
    return p.stdout


def strip_sei(stream: bytes, kind: str) -> bytes:
    """Drop the SEI NAL units (x264/x265 write their version and options there, ~0.5–2 kB per
    stream, which no decoder needs) from an Annex B H.264 (``kind="h264"``) or HEVC (``"hevc"``)
    stream; other kinds are returned as they are."""
    if kind not in ("h264", "hevc"):
        return stream
    b = np.frombuffer(stream, np.uint8)
    if b.size < 4:
        return stream
    # each NAL unit starts after 00 00 01; a 4-byte start code leaves one 00 on the unit before
    heads = np.flatnonzero((b[:-3] == 0) & (b[1:-2] == 0) & (b[2:-1] == 1)) + 3
    ends = np.append(heads[1:] - 3, b.size)
    keep = []
    for h, e in zip(heads, ends, strict=True):
        t = (b[h] & 0x1F) if kind == "h264" else ((b[h] >> 1) & 0x3F)
        if (kind == "h264" and t != 6) or (kind == "hevc" and t not in (39, 40)):
            keep.append(stream[h - 3 : e])
    return stream[: heads[0] - 3] + b"".join(keep) if heads.size else stream


def quantize_range(x: np.ndarray, bits: int) -> tuple[np.ndarray, float, float]:
    """Map ``x`` to integers ``[0, 2**bits − 1]`` with its float32 min and max (the 8 bytes a
    decoder reads); returns ``(levels, lo, hi)``."""
    lo = float(np.float32(x.min()))
    hi = float(np.float32(x.max()))
    span = hi - lo if hi > lo else 1.0
    top = (1 << bits) - 1
    return np.clip(np.round((x - lo) / span * top), 0, top).astype(np.uint16), lo, hi


def dequantize_range(q: np.ndarray, bits: int, lo: float, hi: float) -> np.ndarray:
    span = hi - lo if hi > lo else 1.0
    return lo + q.astype(np.float64) / ((1 << bits) - 1) * span


class VideoCodec:
    """A video codec at a target size in bytes per field, over the fields as one gray video.

    The frames are the fields in the order given (time order inside a trajectory; a new
    trajectory is a scene cut the encoder handles with a key frame). Per stack: float32 min and
    max (8 bytes), then the codec's elementary stream (SEI units dropped); both counted.
    Searched per target: bit depth (``bit_depths``), spectral downsampling (``downsample``; a
    codec's floor is a few bytes per frame, which downsampling lowers) and the constant rate
    factor, by bisection between the codec's best and worst quality. Every encode of a stack is
    cached, so the targets of one sweep share their searches. Size is not monotonic in the rate
    factor everywhere, so every setting tried is a candidate and the best fitting one wins.

    Args:
        name: a key of :data:`VIDEO_FORMATS` (``h264``, ``h265``, ``av1``).
        bit_depths: the bit depths searched (default :data:`VIDEO_BIT_DEPTH`).
        downsample: downsampling factors searched.
    """

    def __init__(
        self,
        name: str,
        *,
        bit_depths: Sequence[int] | None = None,
        downsample: Sequence[int] = (1, 2, 4),
    ):
        if name not in VIDEO_FORMATS:
            raise InputError(None, "video codec", repr(name), " or ".join(VIDEO_FORMATS))
        self.name = name
        self.fmt = VIDEO_FORMATS[name]
        if self.fmt.encoder not in ffmpeg_encoders():
            raise InputError(
                ffmpeg_exe(),
                "ffmpeg encoders",
                f"no {self.fmt.encoder}",
                f"an ffmpeg built with {self.fmt.encoder} for {name}",
            )
        depths = dict(self.fmt.pix_fmts)
        self.bit_depths = (VIDEO_BIT_DEPTH,) if bit_depths is None else tuple(bit_depths)
        for b in self.bit_depths:
            if b not in depths:
                raise InputError(None, f"{name} bit depth", str(b), " or ".join(map(str, depths)))
        self.downsample = tuple(downsample)
        self._cache: dict[tuple, tuple[int, bytes]] = {}

    def _pix_fmt(self, bits: int) -> tuple[str, bool]:
        pf = dict(self.fmt.pix_fmts)[bits]
        return pf, pf.startswith("yuv420p")

    def encode(self, frames: np.ndarray, bits: int, q: int) -> bytes:
        """Integer frames ``[N, H, W]`` (``< 2**bits``) → the codec's elementary stream."""
        n, h, w = frames.shape
        pf, chroma = self._pix_fmt(bits)
        dt = np.uint8 if bits == 8 else np.dtype("<u2")
        planes = frames.astype(dt).reshape(n, -1)
        if chroma:  # two (h/2)×(w/2) planes at the mid level after each luma plane
            mid = np.full((n, 2 * (h // 2) * (w // 2)), 1 << (bits - 1), dtype=dt)
            planes = np.concatenate([planes, mid], axis=1)
        args = ["-f", "rawvideo", "-pix_fmt", pf, "-s", f"{w}x{h}", "-r", "10", "-i", "pipe:0"]
        args += ["-c:v", self.fmt.encoder, self.fmt.q_flag, str(q), *self.fmt.options]
        args += ["-threads", "1", "-f", self.fmt.stream, "pipe:1"]
        return strip_sei(_ffmpeg(args, planes.tobytes()), self.fmt.stream)

    def decode(self, stream: bytes, shape: tuple[int, int, int], bits: int) -> np.ndarray:
        """Elementary stream → integer frames ``[N, H, W]`` (the luma plane)."""
        n, h, w = shape
        pf, chroma = self._pix_fmt(bits)
        args = ["-f", self.fmt.stream, "-i", "pipe:0", "-f", "rawvideo", "-pix_fmt", pf, "pipe:1"]
        out = np.frombuffer(_ffmpeg(args, stream), np.uint8 if bits == 8 else "<u2")
        per = h * w + (2 * (h // 2) * (w // 2) if chroma else 0)
        if out.size != n * per:
            raise RuntimeError(f"{self.name}: decoded {out.size} values, expected {n * per}")
        return out.reshape(n, per)[:, : h * w].reshape(n, h, w)

    def _stream(self, key: bytes, small: np.ndarray, d: int, bits: int, q: int) -> bytes:
        ck = (key, d, bits, q)
        if ck not in self._cache:
            levels, _, _ = quantize_range(small, bits)
            self._cache[ck] = self.encode(levels, bits, q)
        return self._cache[ck]

    def __call__(self, fields: np.ndarray, target_bytes: float) -> Coded:
        fields = np.asarray(fields, dtype=np.float64)
        n, h, w = fields.shape
        key = hashlib.sha256(fields.tobytes()).digest() + bytes(str(fields.shape), "ascii")
        q_best, q_worst = self.fmt.q_range
        tried: list[tuple[float, int, int, int]] = []  # (bytes/field, d, bits, q)
        for d in self.downsample:
            if h % d or w % d or min(h, w) // d < 16:
                continue
            small = spectral_resample(fields, (h // d, w // d))
            for bits in self.bit_depths:

                def size(q, small=small, d=d, bits=bits):
                    nb = (len(self._stream(key, small, d, bits, q)) + 2 * FLOAT_BYTES) / n
                    tried.append((nb, d, bits, q))
                    return nb

                if size(q_worst) > target_bytes:
                    continue  # even the coarsest setting is too big at this resolution
                a, c = q_best, q_worst  # a: better quality, too big; c: fits
                if size(q_best) <= target_bytes:
                    c = q_best
                while c - a > 1:
                    mid = (a + c) // 2
                    if size(mid) <= target_bytes:
                        c = mid
                    else:
                        a = mid
        # decode only what can win: per (downsampling, bit depth) the largest fitting setting
        # (the smaller ones are coarser), or the smallest setting of all when nothing fits
        best: dict[tuple[int, int], tuple[float, int, int, int]] = {}
        for t in tried:
            if t[0] <= target_bytes + 1e-9 and t > best.get(t[1:3], (-1.0,)):
                best[t[1:3]] = t
        chosen = list(best.values()) or [min(tried)]
        cands = []
        for nb, d, bits, q in chosen:
            small = spectral_resample(fields, (h // d, w // d))
            _, lo, hi = quantize_range(small, bits)
            stream = self._stream(key, small, d, bits, q)
            dec = dequantize_range(self.decode(stream, small.shape, bits), bits, lo, hi)
            recon = spectral_resample(dec, (h, w))
            p = {"encoder": self.fmt.encoder, "bit_depth": bits, "downsample": d, "q": q}
            cands.append(Coded(nb, recon, p))
        return _best(cands, target_bytes, fields)


def mean_only(fields: np.ndarray, target_bytes: float | None = None) -> Coded:
    """Each field replaced by its mean, stored as one float32 (4 bytes per field)."""
    fields = np.asarray(fields, dtype=np.float64)
    mean = fields.mean(axis=(-2, -1), keepdims=True).astype(np.float32).astype(np.float64)
    return Coded(float(FLOAT_BYTES), np.broadcast_to(mean, fields.shape).copy(), {})
