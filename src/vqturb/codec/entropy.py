"""Lossless entropy coding of multi-scale token grids with static, per-scale categorical models.

Each scale ``k`` (an ``s_k × s_k`` grid of symbols in ``[0, n_k)``) is coded with one of:

- ``"none"``: one categorical table per scale (the marginal);
- ``"parent"``: one table per value of the co-located token at scale ``k−1`` (the *parent*, at
  ``(⌊i s_{k−1}/s_k⌋, ⌊j s_{k−1}/s_k⌋)``), smoothed towards the marginal by a Dirichlet prior of
  strength ``alpha``: ``p(x | c) = (n(c, x) + α q(x)) / (n(c) + α)``;
- ``"west"``: the same with the left neighbour ``(i, j−1)`` in the same scale as context (a
  separate "no neighbour" context for column 0) — the only choice with context for a
  single-scale VQ-VAE;
- ``"prev"``: the token at the same position in the previous frame of the same trajectory (a
  separate context for a trajectory's first frame): consecutive snapshots share most tokens.

The choice (and ``alpha``) is made per scale by the measured code length on held-out fields *plus*
the bytes of the stored table, so conditioning is used only where it pays for its table.

Tables are stored as the integer *counts* they were estimated from; the fixed-point frequencies
(``2**precision`` in total, every symbol at least 1, so unseen-but-valid symbols stay codable) are
derived from them by the same deterministic float64 arithmetic on both sides. Coding uses
``constriction``'s range coder (a queue: symbols decode in the order they were encoded), with one
concrete ``Categorical`` per (scale, context). Symbols are ordered scale by scale; inside a scale they
are grouped by context value (ascending), each group in raster order — for ``"west"`` column by
column, for ``"prev"`` one frame generation at a time, so the decoder always knows a symbol's context before it decodes the symbol and rebuilds
the same order.

References: Witten, Neal & Cleary (1987) arithmetic coding; Duda (2013) ANS / range variants;
Bamler (2022) ``constriction``.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vqturb.errors import InputError

# Pseudo-counts tried for the parent-conditioned tables (the best one, measured, is kept).
ALPHAS: tuple[int, ...] = (1, 4, 16, 64)
CONTEXTS: tuple[str, ...] = ("none", "parent", "west", "prev")


# --------------------------------------------------------------------------------------------
# varints: compact, byte-exact serialisation of the count tables


def varint_encode(values: np.ndarray) -> bytes:
    """Unsigned LEB128 encoding of a 1-D array of non-negative integers (< 2**63)."""
    v = np.asarray(values, dtype=np.uint64).ravel()
    if v.size == 0:
        return b""
    nb = np.ones(v.shape, dtype=np.int64)
    for k in range(1, 10):
        nb += v >= np.uint64(1) << np.uint64(7 * k)
    starts = np.cumsum(nb) - nb
    total = int(nb.sum())
    owner = np.repeat(np.arange(v.size), nb)
    pos = np.arange(total) - starts[owner]
    byte = (v[owner] >> (np.uint64(7) * pos.astype(np.uint64))) & np.uint64(0x7F)
    cont = pos < (nb[owner] - 1)
    return (byte | (cont.astype(np.uint64) << np.uint64(7))).astype(np.uint8).tobytes()


def varint_decode(data: bytes, count: int) -> np.ndarray:
    """Inverse of :func:`varint_encode`; raises ``ValueError`` unless exactly ``count`` values."""
    b = np.frombuffer(data, dtype=np.uint8)
    if count == 0:
        if b.size:
            raise ValueError("trailing bytes after varints")
        return np.zeros(0, dtype=np.int64)
    ends = np.flatnonzero((b & 0x80) == 0)
    if ends.size != count or (b.size and ends[-1] != b.size - 1):
        raise ValueError(f"expected {count} varints, found {ends.size}")
    starts = np.concatenate([[0], ends[:-1] + 1])
    owner = np.repeat(np.arange(count), ends - starts + 1)
    pos = np.arange(b.size) - starts[owner]
    if pos.max() >= 9:
        raise ValueError("varint too long")
    parts = (b & 0x7F).astype(np.uint64) << (np.uint64(7) * pos.astype(np.uint64))
    return np.add.reduceat(parts, starts).astype(np.int64)


def pack_ints(values: np.ndarray) -> bytes:
    """Varints, deflated (zlib level 9)."""
    return zlib.compress(varint_encode(values), 9)


def unpack_ints(data: bytes, count: int) -> np.ndarray:
    return varint_decode(zlib.decompress(data), count)


def pack_counts(counts: np.ndarray) -> bytes:
    """A ``[rows, cols]`` non-negative integer matrix as CSR varints (row nnz, column gaps,
    values), deflated. Sparse joint-count tables shrink by orders of magnitude this way."""
    counts = np.asarray(counts, dtype=np.int64)
    rows, cols = np.nonzero(counts)
    nnz = np.bincount(rows, minlength=counts.shape[0])
    row_start = np.cumsum(nnz) - nnz
    gaps = cols.copy()
    # column gaps inside a row (first column of a row is absolute)
    inner = np.ones(cols.size, dtype=bool)
    inner[row_start[nnz > 0]] = False
    gaps[inner] = cols[inner] - cols[np.flatnonzero(inner) - 1]
    return pack_ints(np.concatenate([nnz, gaps, counts[rows, cols]]))


def unpack_counts(data: bytes, shape: tuple[int, int]) -> np.ndarray:
    n_rows, n_cols = shape
    raw = zlib.decompress(data)
    b = np.frombuffer(raw, dtype=np.uint8)
    n_vals = int(np.count_nonzero((b & 0x80) == 0))
    vals = varint_decode(raw, n_vals)
    nnz = vals[:n_rows]
    total = int(nnz.sum())
    if vals.size != n_rows + 2 * total:
        raise ValueError("count table has the wrong length")
    gaps = vals[n_rows : n_rows + total]
    values = vals[n_rows + total :]
    rows = np.repeat(np.arange(n_rows), nnz)
    row_start = np.cumsum(nnz) - nnz
    # undo gap coding: cumulative sum restarted at each row start
    cs = np.cumsum(gaps)
    base = np.repeat(cs[row_start[nnz > 0]] - gaps[row_start[nnz > 0]], nnz[nnz > 0])
    cols = cs - base
    if total and (cols.max() >= n_cols or cols.min() < 0):
        raise ValueError("count table column out of range")
    out = np.zeros((n_rows, n_cols), dtype=np.int64)
    out[rows, cols] = values
    return out


# --------------------------------------------------------------------------------------------
# fixed-point probability tables


def quantize_frequencies(weights: np.ndarray, precision: int) -> np.ndarray:
    """Integer frequencies along the last axis summing to ``2**precision``, each ≥ 1.

    ``f = 1 + ⌊w (T − n) / W⌋`` and the rounding remainder goes to the first largest weight.
    float64 with plain IEEE operations, so encoder and decoder derive identical tables.
    """
    w = np.asarray(weights, dtype=np.float64)
    n = w.shape[-1]
    total = 1 << precision
    if n > total // 2:
        raise ValueError(f"alphabet of {n} symbols needs precision > {precision}")
    wsum = w.sum(axis=-1, keepdims=True)
    # an all-zero row (cannot happen with smoothing) falls back to uniform
    w = np.where(wsum > 0, w, 1.0)
    wsum = w.sum(axis=-1, keepdims=True)
    f = 1 + np.floor(w * float(total - n) / wsum).astype(np.int64)
    rem = total - f.sum(axis=-1)
    top = np.argmax(w, axis=-1)
    np.put_along_axis(
        f, top[..., None], np.take_along_axis(f, top[..., None], -1) + rem[..., None], -1
    )
    return f


def marginal_frequencies(counts: np.ndarray, precision: int) -> np.ndarray:
    """Add-½ (Krichevsky–Trofimov-like total mass) smoothing: p ∝ m(x) + 1/(2n)."""
    counts = np.asarray(counts, dtype=np.float64)
    n = counts.shape[-1]
    return quantize_frequencies(2.0 * n * counts + 1.0, precision)


def conditional_frequencies(joint: np.ndarray, alpha: int, precision: int) -> np.ndarray:
    """``p(x | c) ∝ n(c, x) + α q(x)`` with ``q`` the smoothed marginal of ``joint``."""
    joint = np.asarray(joint, dtype=np.float64)
    fm = marginal_frequencies(joint.sum(axis=0), precision).astype(np.float64)
    return quantize_frequencies(joint * float(1 << precision) + float(alpha) * fm, precision)


def _code_bits(freqs: np.ndarray, ctx: np.ndarray, sym: np.ndarray, precision: int) -> float:
    """Ideal code length in bits of ``sym`` under rows ``ctx`` of ``freqs``."""
    if sym.size == 0:
        return 0.0
    return float(np.sum(precision - np.log2(freqs[ctx, sym].astype(np.float64))))


# --------------------------------------------------------------------------------------------
# the codec


def parent_index(s_parent: int, s_child: int) -> np.ndarray:
    """Flat index into the parent grid of every child cell (raster order), ``[s_child**2]``."""
    i = np.arange(s_child) * s_parent // s_child
    return (i[:, None] * s_parent + i[None, :]).ravel()


@dataclass(frozen=True, eq=False)
class ScaleModel:
    """The static entropy model of one scale."""

    # "none" (one marginal table) or "parent" (one table per co-located parent token)
    context: str
    # Dirichlet pseudo-count pulling parent-conditioned tables to the marginal (0 for "none")
    alpha: int
    # integer counts the tables derive from: [1, n_k] for "none", [n_{k-1}, n_k] for "parent"
    counts: np.ndarray = field(repr=False)

    @property
    def n_contexts(self) -> int:
        return int(self.counts.shape[0])

    def frequencies(self, precision: int) -> np.ndarray:
        if self.context == "none":
            return marginal_frequencies(self.counts, precision)
        return conditional_frequencies(self.counts, self.alpha, precision)


@dataclass(frozen=True, eq=False)
class EntropyCodec:
    """Static per-scale entropy models for token grids ``[N, s_k, s_k]`` with symbols in
    ``[0, n_k)``; see the module docstring. Build one with :meth:`fit`."""

    # side length of each scale's token grid, coarse to fine
    scales: tuple[int, ...]
    # alphabet size of each scale (local ids 0 … n_k − 1)
    n_symbols: tuple[int, ...]
    # one model per scale
    models: tuple[ScaleModel, ...]
    # fixed-point precision of the frequency tables (they sum to 2**precision)
    precision: int = 16

    def __post_init__(self):
        if not (len(self.scales) == len(self.n_symbols) == len(self.models)):
            raise ValueError("scales, n_symbols and models must have one entry per scale")
        for k, m in enumerate(self.models):
            if m.context not in CONTEXTS:
                raise ValueError(f"unknown context {m.context!r}")
            if m.context == "parent" and k == 0:
                raise ValueError("scale 0 has no parent")
            rows = _n_rows(m.context, k, self.n_symbols)
            if m.counts.shape != (rows, self.n_symbols[k]):
                raise ValueError(f"scale {k}: counts shape {m.counts.shape}")

    # ---- fitting -------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        train: Sequence[np.ndarray],
        n_symbols: Sequence[int],
        *,
        prev: np.ndarray | None = None,
        heldout: Sequence[np.ndarray] | None = None,
        heldout_prev: np.ndarray | None = None,
        n_fields: int | None = None,
        contexts: Sequence[str] = CONTEXTS,
        precision: int = 16,
        seed: int = 0,
    ) -> EntropyCodec:
        """Estimate per-scale tables on ``train`` and choose each scale's context.

        Args:
            train: one int array ``[N, s_k, s_k]`` per scale.
            n_symbols: alphabet size per scale.
            prev: ``[N]`` index of each field's previous frame in ``train`` (``-1``: none; see
                :func:`previous_frames`); without it the ``"prev"`` context is not considered.
            heldout: fields to measure code lengths on; default: a random fifth of ``train``
                (the final tables are then refitted on all of ``train``).
            heldout_prev: ``prev`` of ``heldout`` (indices into ``heldout``).
            n_fields: how many fields the code will be used for, to weigh table bytes against
                per-field savings (default: the number of held-out fields).
            contexts: candidate context kinds.
            precision: fixed-point bits of the tables.
        """
        train = [np.asarray(t) for t in train]
        scales = tuple(int(t.shape[-1]) for t in train)
        n_symbols = tuple(int(n) for n in n_symbols)
        _check_tokens(train, scales, n_symbols)
        n = train[0].shape[0]
        prev = _check_prev(prev, n)
        if prev is None or (heldout is not None and heldout_prev is None):
            contexts = tuple(c for c in contexts if c != "prev")
        if heldout is not None:
            heldout = [np.asarray(t) for t in heldout]
            _check_tokens(heldout, scales, n_symbols)
            heldout_prev = _check_prev(heldout_prev, heldout[0].shape[0])
            n_ho = heldout[0].shape[0]
            tr_idx, ho_idx = np.arange(n), None
        else:
            perm = np.random.default_rng(seed).permutation(n)
            n_ho = max(1, n // 5) if n > 1 else 0
            ho_idx, tr_idx = perm[:n_ho], perm[n_ho:]
            if n_ho == 0:
                ho_idx, n_ho = tr_idx, n
        weight = (n_fields if n_fields is not None else n_ho) / max(n_ho, 1)

        models = []
        for k in range(len(scales)):
            best = None
            for kind, alpha in _candidates(k, contexts):
                # (context, symbol) per field: a held-out field's context may come from a
                # training field (its previous frame), which the decoder has by then
                ctx, sym = _contexts_and_symbols(train, k, kind, n_symbols, prev)
                ctx, sym = ctx.reshape(n, -1), sym.reshape(n, -1)
                model = _count(ctx[tr_idx], sym[tr_idx], kind, alpha, k, n_symbols)
                if ho_idx is None:
                    hc, hs = _contexts_and_symbols(heldout, k, kind, n_symbols, heldout_prev)
                else:
                    hc, hs = ctx[ho_idx].ravel(), sym[ho_idx].ravel()
                bits = weight * _code_bits(model.frequencies(precision), hc, hs, precision)
                bits += 8 * len(pack_counts(model.counts))
                if best is None or bits < best[0]:
                    best = (bits, kind, alpha)
            _, kind, alpha = best
            ctx, sym = _contexts_and_symbols(train, k, kind, n_symbols, prev)
            models.append(_count(ctx, sym, kind, alpha, k, n_symbols))
        return cls(scales, n_symbols, tuple(models), precision)

    # ---- coding --------------------------------------------------------------------------

    def _needs_prev(self) -> bool:
        return any(m.context == "prev" for m in self.models)

    def encode(self, tokens: Sequence[np.ndarray], prev: np.ndarray | None = None) -> bytes:
        """Losslessly code ``tokens`` (one ``[N, s_k, s_k]`` int array per scale) to bytes.

        ``prev`` (``[N]``, see :func:`previous_frames`) is required when a scale uses the
        ``"prev"`` context; the decoder must be given the same array.
        """
        import constriction

        tokens = [np.asarray(t) for t in tokens]
        _check_tokens(tokens, self.scales, self.n_symbols)
        n = tokens[0].shape[0]
        prev = self._prev_for(prev, n)
        enc = constriction.stream.queue.RangeEncoder()
        for k, model in enumerate(self.models):
            if self.n_symbols[k] == 1:
                continue  # a one-symbol alphabet carries no information: zero bits
            cat = _model_cache(model, self.precision)
            s = self.scales[k]
            flat = tokens[k].reshape(n, s * s)
            parent = tokens[k - 1] if k else None
            for fields, pos in _steps(model.context, s, n, prev):
                ctx = _step_contexts(
                    model.context, flat, parent, fields, pos, s, self.n_symbols[k], prev
                )
                sym = flat[np.ix_(fields, pos)].ravel()
                for c, idx in _groups(ctx):
                    enc.encode(sym[idx].astype(np.int32), cat(c))
        return enc.get_compressed().astype("<u4").tobytes()

    def decode(
        self, payload: bytes, n_fields: int, prev: np.ndarray | None = None
    ) -> list[np.ndarray]:
        """Inverse of :meth:`encode`: one ``[n_fields, s_k, s_k]`` int32 array per scale."""
        import constriction

        if len(payload) % 4:
            raise ValueError("payload length is not a multiple of 4 bytes")
        prev = self._prev_for(prev, n_fields)
        words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
        dec = constriction.stream.queue.RangeDecoder(words)
        out: list[np.ndarray] = []
        for k, (s, model) in enumerate(zip(self.scales, self.models, strict=True)):
            if self.n_symbols[k] == 1:
                out.append(np.zeros((n_fields, s, s), dtype=np.int32))
                continue
            cat = _model_cache(model, self.precision)
            flat = np.zeros((n_fields, s * s), dtype=np.int32)
            parent = out[k - 1] if k else None
            for fields, pos in _steps(model.context, s, n_fields, prev):
                ctx = _step_contexts(
                    model.context, flat, parent, fields, pos, s, self.n_symbols[k], prev
                )
                sym = np.empty(ctx.size, dtype=np.int32)
                for c, idx in _groups(ctx):
                    sym[idx] = dec.decode(cat(c), idx.size)
                flat[np.ix_(fields, pos)] = sym.reshape(fields.size, pos.size)
            out.append(flat.reshape(n_fields, s, s))
        return out

    def _prev_for(self, prev: np.ndarray | None, n: int) -> np.ndarray | None:
        if prev is None and self._needs_prev():
            raise ValueError("this codec uses the 'prev' context: pass prev=previous_frames(...)")
        return _check_prev(prev, n)

    def code_bits(
        self, tokens: Sequence[np.ndarray], prev: np.ndarray | None = None
    ) -> list[float]:
        """Ideal code length (bits) per scale of ``tokens`` under this codec's tables."""
        tokens = [np.asarray(t) for t in tokens]
        _check_tokens(tokens, self.scales, self.n_symbols)
        prev = self._prev_for(prev, tokens[0].shape[0])
        bits = []
        for k, model in enumerate(self.models):
            ctx, sym = _contexts_and_symbols(tokens, k, model.context, self.n_symbols, prev)
            bits.append(_code_bits(model.frequencies(self.precision), ctx, sym, self.precision))
        return bits

    # ---- serialisation (the container stores these) ----------------------------------------

    def descriptor(self) -> dict:
        """JSON-safe description (everything but the count tables)."""
        return {
            "scales": list(self.scales),
            "n_symbols": list(self.n_symbols),
            "precision": self.precision,
            "models": [{"context": m.context, "alpha": m.alpha} for m in self.models],
        }

    def tables(self) -> list[bytes]:
        """The packed count table of each scale."""
        return [pack_counts(m.counts) for m in self.models]

    @classmethod
    def from_parts(cls, descriptor: dict, tables: Sequence[bytes]) -> EntropyCodec:
        """Rebuild from :meth:`descriptor` and :meth:`tables`; ``ValueError`` when inconsistent."""
        scales = tuple(int(s) for s in descriptor["scales"])
        n_symbols = tuple(int(n) for n in descriptor["n_symbols"])
        models = []
        for k, (md, blob) in enumerate(zip(descriptor["models"], tables, strict=True)):
            rows = _n_rows(str(md["context"]), k, n_symbols)
            counts = unpack_counts(blob, (rows, n_symbols[k]))
            models.append(ScaleModel(str(md["context"]), int(md["alpha"]), counts))
        return cls(scales, n_symbols, tuple(models), int(descriptor["precision"]))


# --------------------------------------------------------------------------------------------
# helpers


def _check_tokens(tokens: Sequence[np.ndarray], scales, n_symbols) -> None:
    if len(tokens) != len(scales):
        raise InputError(None, "tokens", f"{len(tokens)} scales", f"{len(scales)}")
    n = tokens[0].shape[0] if tokens else 0
    for k, (t, s, v) in enumerate(zip(tokens, scales, n_symbols, strict=True)):
        if t.ndim != 3 or t.shape[1:] != (s, s) or t.shape[0] != n:
            raise InputError(None, f"tokens at scale {k}", f"shape {t.shape}", f"({n}, {s}, {s})")
        if not np.issubdtype(t.dtype, np.integer):
            raise InputError(None, f"tokens at scale {k}", f"dtype {t.dtype}", "integers")
        if t.size and (t.min() < 0 or t.max() >= v):
            raise InputError(
                None, f"tokens at scale {k}", f"values in [{t.min()}, {t.max()}]", f"[0, {v})"
            )


def _candidates(k: int, contexts: Sequence[str]):
    """(kind, alpha) pairs to try; ("none", -1) is the uniform table, which stores no counts:
    the best choice when a table would cost more than it saves (few fields, flat usage)."""
    yield "none", -1
    if "none" in contexts or k == 0:
        yield "none", 0
    if k > 0 and "parent" in contexts:
        for a in ALPHAS:
            yield "parent", a
    for kind in ("west", "prev"):
        if kind in contexts:
            for a in ALPHAS:
                yield kind, a


def previous_frames(trajectory_id: np.ndarray, time_index: np.ndarray) -> np.ndarray:
    """``[N]`` position of each field's previous frame (same trajectory, time index − 1) when it
    comes earlier in the list, else −1."""
    traj = np.asarray(trajectory_id, dtype=np.int64)
    tidx = np.asarray(time_index, dtype=np.int64)
    where = {(int(a), int(b)): i for i, (a, b) in enumerate(zip(traj, tidx, strict=True))}
    prev = np.array([where.get((int(a), int(b) - 1), -1) for a, b in zip(traj, tidx, strict=True)])
    prev = prev.astype(np.int64).reshape(-1)
    prev[prev >= np.arange(prev.size)] = -1
    return prev


def _check_prev(prev: np.ndarray | None, n: int) -> np.ndarray | None:
    if prev is None:
        return None
    prev = np.asarray(prev, dtype=np.int64).reshape(-1)
    if prev.size != n or np.any(prev >= np.arange(n)) or np.any(prev < -1):
        raise ValueError("prev must be [N] with -1 <= prev[i] < i")
    return prev


def frame_depth(prev: np.ndarray) -> np.ndarray:
    """Length of each field's chain of previous frames (prev[i] < i, so one pass suffices)."""
    d = np.zeros(prev.size, dtype=np.int64)
    for i, p in enumerate(prev):
        if p >= 0:
            d[i] = d[p] + 1
    return d


def _n_rows(kind: str, k: int, n_symbols) -> int:
    """Context rows of a table: 1, the parent's alphabet, or this alphabet + "none there"."""
    if kind == "none":
        return 1
    if kind == "parent":
        return int(n_symbols[k - 1])
    return int(n_symbols[k]) + 1


def _steps(
    kind: str, s: int, n: int, prev: np.ndarray | None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fields, flat grid positions) coded together, in order, such that every symbol's context
    is decoded before it: "west" goes column by column, "prev" frame generation by generation
    (fields whose previous frame is already decoded), the others in one step."""
    every_field, every_pos = np.arange(n), np.arange(s * s)
    if kind == "west":
        return [(every_field, np.arange(s) * s + j) for j in range(s)]
    if kind == "prev":
        d = frame_depth(prev)
        return [(np.flatnonzero(d == g), every_pos) for g in range(int(d.max()) + 1 if n else 0)]
    return [(every_field, every_pos)]


def _step_contexts(kind, flat, parent, fields, pos, s: int, n_sym: int, prev) -> np.ndarray:
    """Context of positions ``pos`` of ``fields``, ``[len(fields) * len(pos)]`` (field-major),
    from the tokens decoded so far (``flat`` ``[N, s*s]`` of this scale, ``parent``
    ``[N, sp, sp]`` the coarser scale, ``prev`` each field's previous frame or −1)."""
    m = fields.size
    if kind == "none":
        return np.zeros(m * pos.size, dtype=np.int64)
    if kind == "parent":
        sp = parent.shape[-1]
        pidx = parent_index(sp, s)[pos]
        return parent.reshape(-1, sp * sp)[np.ix_(fields, pidx)].ravel().astype(np.int64)
    if kind == "prev":
        pf = prev[fields]
        ctx = flat[np.ix_(np.maximum(pf, 0), pos)].astype(np.int64)
        ctx[pf < 0] = n_sym  # first frame of a run: the "no previous frame" context
        return ctx.ravel()
    col = pos % s
    left = np.where(col > 0, pos - 1, 0)
    ctx = flat[np.ix_(fields, left)].astype(np.int64)
    ctx[:, col == 0] = n_sym  # first column: the "no neighbour" context
    return ctx.ravel()


def _contexts_and_symbols(
    tokens, k: int, kind: str, n_symbols, prev=None
) -> tuple[np.ndarray, np.ndarray]:
    """(context, symbol) of every token of scale ``k``, field-major (for counting)."""
    t = np.asarray(tokens[k])
    n, s = t.shape[0], t.shape[-1]
    flat = t.reshape(n, s * s)
    parent = tokens[k - 1] if k else None
    ctx = _step_contexts(kind, flat, parent, np.arange(n), np.arange(s * s), s,
                         int(n_symbols[k]), prev)  # fmt: skip
    return ctx, flat.ravel().astype(np.int64)


def _count(ctx, sym, kind: str, alpha: int, k: int, n_symbols) -> ScaleModel:
    counts = np.zeros((_n_rows(kind, k, n_symbols), n_symbols[k]), dtype=np.int64)
    if alpha < 0:  # the uniform table: all-zero counts smooth to equal frequencies
        return ScaleModel(kind, 0, counts)
    np.add.at(counts, (np.ravel(ctx), np.ravel(sym)), 1)
    return ScaleModel(kind, alpha, counts)


def _groups(ctx: np.ndarray):
    """(context value, flat positions in raster order) for each context present, ascending."""
    order = np.argsort(ctx, kind="stable")
    values, starts = np.unique(ctx[order], return_index=True)
    bounds = np.append(starts, ctx.size)
    for j, c in enumerate(values):
        yield int(c), order[bounds[j] : bounds[j + 1]]


def _model_cache(model: ScaleModel, precision: int):
    """Lazily built ``constriction`` categorical per context row."""
    import constriction

    freqs = model.frequencies(precision)
    built: dict[int, object] = {}
    scale = 1.0 / float(1 << precision)

    def get(c: int):
        if c not in built:
            p = freqs[c].astype(np.float64) * scale
            built[c] = constriction.stream.model.Categorical(p, perfect=False)
        return built[c]

    return get
