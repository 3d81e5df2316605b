"""Static layouts and attention masks of the next-scale predictor (NumPy, built at trace time: they
are constants of the program). The streams and the attention rule are described in
:mod:`vqturb.models.nsp`."""

from __future__ import annotations

import numpy as np

from vqturb.models.nsp_config import NSPConfig

# Stream of each position: the t0 frame, t1 content (true tokens), t1 query (mask token).
T0, CONTENT, QUERY = 0, 1, 2


def spec_mask(cfg: NSPConfig) -> np.ndarray:
    """Block-causal mask ``[2T, 2T]`` (True = may attend) of SPEC mode: group(key) <= group(query)
    with groups t0 -> 0 and t1 scale j -> 1 + j; with ``cfg.query_attention == "none"`` a t1
    scale sees t0 and strictly earlier t1 scales only (group(key) < group(query), t0 seeing t0)."""
    g0 = np.zeros(cfg.tokens_per_frame, np.int32)
    g1 = np.concatenate([np.full(n, 1 + j, np.int32) for j, n in enumerate(cfg.scale_lengths)])
    g = np.concatenate([g0, g1])
    if cfg.query_attention == "none":
        return (g[None, :] < g[:, None]) | (g[None, :] == 0)
    return g[None, :] <= g[:, None]


def all_scales_layout(cfg: NSPConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two-stream layout of all-scales mode: per position (stream, scale, index in frame).

    Order: t0 (every scale), t1 content (``cfg.content_scales``), t1 queries
    (``cfg.trainable_scales``).
    """
    segments = [(T0, j) for j in range(cfg.n_scales)]
    segments += [(CONTENT, j) for j in cfg.content_scales]
    segments += [(QUERY, k) for k in cfg.trainable_scales]
    streams, scales, index = [], [], []
    for stream, j in segments:
        n = cfg.scale_lengths[j]
        streams.append(np.full(n, stream))
        scales.append(np.full(n, j))
        index.append(cfg.token_offsets[j] + np.arange(n))
    return tuple(np.concatenate(a).astype(np.int32) for a in (streams, scales, index))


def layout_mask(streams: np.ndarray, scales: np.ndarray, see_self: bool = True) -> np.ndarray:
    """Attention rule of the module docstring for an arbitrary layout; ``[L, L]`` True = attend.
    ``see_self=False`` (``query_attention="none"``): no t1 position sees its own scale."""
    qs, qj = streams[:, None], scales[:, None]
    ks, kj = streams[None, :], scales[None, :]
    see_t0 = ks == T0
    own = (kj <= qj) if see_self else (kj < qj)
    see_content = (ks == CONTENT) & (((qs == CONTENT) & own) | ((qs == QUERY) & (kj < qj)))
    see_query = (ks == QUERY) & (qs == QUERY) & (kj == qj) & see_self
    return see_t0 | see_content | see_query


def key_prefix_blocks(mask: np.ndarray) -> tuple[tuple[int, int, int], ...]:
    """Split the rows of a static mask into runs ``(row_start, row_end, key_end)`` whose rows
    attend to no key at or after ``key_end`` (consecutive rows with the same last allowed key)."""
    if not mask.any(axis=1).all():
        raise ValueError("every row of an attention mask needs at least one allowed key")
    key_end = mask.shape[1] - np.argmax(mask[:, ::-1], axis=1)
    starts = np.flatnonzero(np.diff(key_end, prepend=-1))
    ends = np.append(starts[1:], mask.shape[0])
    return tuple((int(a), int(b), int(key_end[a])) for a, b in zip(starts, ends, strict=True))
