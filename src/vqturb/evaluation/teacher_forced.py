"""Teacher-forced next-frame accuracy of an NSP model on held-out pairs, beside copying t0.

For a pair (t0, t1) of consecutive frames the model predicts each scale of t1 from t0 and the true
coarser scales of t1 (teacher forcing, the training objective). Copying t0's token at the same
position is the trivial forecast ("nothing moved"); a model that uses t0 is at least as accurate
at every scale, and its loss stays below the uniform log-vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vqturb.data.tokens_file import TokensFile


def heldout_pairs(
    tokens: TokensFile, frames: Mapping[int, np.ndarray], *, max_pairs: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Consecutive held-out frames ``(t0 rows [P, T], t1 rows [P, T])``, at most ``max_pairs``
    spread evenly over all such pairs (sorted by trajectory and time)."""
    rows = tokens.row_of()
    pairs = [
        (rows[(tr, int(t))], rows[(tr, int(t) + 1)])
        for tr in sorted(frames)
        for t in frames[tr]
        if (tr, int(t) + 1) in rows
    ]
    if len(pairs) > max_pairs:
        pick = np.linspace(0, len(pairs) - 1, max_pairs).round().astype(int)
        pairs = [pairs[i] for i in pick]
    idx = np.asarray(pairs, np.int64).reshape(-1, 2)
    return tokens.indices[idx[:, 0]], tokens.indices[idx[:, 1]]


def teacher_forced_accuracy(
    model: Any, t0: np.ndarray, t1: np.ndarray, *, batch_size: int = 32
) -> dict[str, Any]:
    """Per predicted scale: argmax accuracy, copy-t0 rate, cross-entropy and the uniform loss.

    Args:
        model: a :class:`~vqturb.models.nsp.NextScalePredictor`.
        t0, t1: token rows ``[P, T]`` of the conditioning and the target frames.
        batch_size: pairs per jitted call (the last batch is padded).

    Returns:
        JSON-safe ``{"n_pairs", "scale", "side", "accuracy", "copy_rate", "loss",
        "uniform_loss"}`` (lists over the model's trainable scales; loss in nats).
    """
    import jax
    import jax.numpy as jnp

    from vqturb.models.nsp_sampling import scale_logits

    cfg = model.config
    n = t0.shape[0]
    trainable = cfg.trainable_scales
    hits = np.zeros(len(trainable))
    nll = np.zeros(len(trainable))
    for i in range(0, n, batch_size):
        a, b = t0[i : i + batch_size], t1[i : i + batch_size]
        m = a.shape[0]
        if m < batch_size:  # one compiled shape
            a = np.concatenate([a, np.repeat(a[-1:], batch_size - m, 0)])
            b = np.concatenate([b, np.repeat(b[-1:], batch_size - m, 0)])
        logits = scale_logits(model, a, b)
        for j, k in enumerate(trainable):
            off, size = cfg.token_offsets[k], cfg.scale_lengths[k]
            target = jnp.asarray(b[:, off : off + size] - cfg.scale_offsets[k])
            lg = logits[j]
            logp = jax.nn.log_softmax(lg, axis=-1)
            ce = -jnp.take_along_axis(logp, target[..., None], axis=-1)[..., 0]
            hits[j] += float(jnp.sum((jnp.argmax(lg, -1) == target)[:m]))
            nll[j] += float(jnp.sum(ce[:m]))
    per = np.asarray([cfg.scale_lengths[k] for k in trainable], np.float64) * max(n, 1)
    copy = [
        float(
            np.mean(
                t0[:, cfg.token_offsets[k] : cfg.token_offsets[k] + cfg.scale_lengths[k]]
                == t1[:, cfg.token_offsets[k] : cfg.token_offsets[k] + cfg.scale_lengths[k]]
            )
        )
        if n
        else 0.0
        for k in trainable
    ]
    return {
        "n_pairs": int(n),
        "scale": [int(k) for k in trainable],
        "side": [int(cfg.scales[k]) for k in trainable],
        "accuracy": (hits / per).tolist(),
        "copy_rate": copy,
        "loss": (nll / per).tolist(),
        "uniform_loss": [float(np.log(cfg.scale_vocab_sizes[k])) for k in trainable],
    }
