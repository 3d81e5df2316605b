"""Synthetic tokens files with known dynamics, for tests and benchmarks that need no VQ-VAE.

Benchmarks import this module with ``tests/`` on ``sys.path`` (one generator for both).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vqturb.data.splits import SplitRule
from vqturb.data.tokens_file import TokensFile


def synthetic_tokens(
    *,
    scales: tuple[int, ...] = (1, 2, 4),
    scale_vocab_sizes: tuple[int, ...] = (1, 4, 8),
    codebook_dim: int = 8,
    n_traj: int = 4,
    n_steps: int = 12,
    checkpoint_sha256: str = "0" * 64,
    split_rule: SplitRule | None = None,
    seed: int = 0,
) -> TokensFile:
    """A tokens file whose rule is learnable: the local id of position p of scale k at time t is
    ``(phase + t + pattern_k[p]) mod vocab_k``, a fixed random spatial pattern shifted by a
    random per-trajectory phase that advances by one every step. So ``local(t+1) = local(t) + 1``:
    p(t1 | t0) is deterministic, and a small model learns it in a few hundred steps (it needs the
    phase, readable from any t0 token, plus the pattern, a function of position).

    ``split_rule``: record the split of every row under this rule, as ``vqturb tokenizer save``
    does (default: record none, like files written before the split was recorded).
    """
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(scale_vocab_sizes)[:-1]]).astype(np.int64)
    vocab = int(np.sum(scale_vocab_sizes))
    rows, traj, tim = [], [], []
    pattern = [rng.integers(0, v, s * s) for s, v in zip(scales, scale_vocab_sizes, strict=True)]
    for tr in range(n_traj):
        phase = rng.integers(0, max(scale_vocab_sizes))
        local = [phase + pat for pat in pattern]
        for t in range(n_steps):
            rows.append(
                np.concatenate(
                    [
                        o + (loc + t) % v
                        for loc, o, v in zip(local, offsets, scale_vocab_sizes, strict=True)
                    ]
                )
            )
            traj.append(tr)
            tim.append(t)
    codebook = rng.standard_normal((vocab, codebook_dim)).astype(np.float32)
    unified_to_scale = np.repeat(np.arange(len(scales)), scale_vocab_sizes)
    traj_a, tim_a = np.asarray(traj, np.int64), np.asarray(tim, np.int64)
    return TokensFile(
        indices=np.stack(rows).astype(np.int32),
        codebook=codebook,
        scales=scales,
        scale_offsets=offsets,
        scale_vocab_sizes=scale_vocab_sizes,
        unified_to_original=np.arange(vocab) - offsets[unified_to_scale],
        trajectory_id=traj_a,
        time_index=tim_a,
        checkpoint_sha256=checkpoint_sha256,
        split=None if split_rule is None else split_rule.labels(traj_a, tim_a),
        split_rule=split_rule,
    )


def write_synthetic_tokens(path: str | Path, **kwargs: Any) -> Path:
    """Write :func:`synthetic_tokens` to ``path`` (atomically); returns the path."""
    return synthetic_tokens(**kwargs).write(path)
