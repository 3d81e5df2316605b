"""NSP rollouts in token space (batched, jitted scan chunks with progress) and the decoder that turns
token rows back into physical fields through the VQ-VAE."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from vqturb.data.tokens_file import TokensFile
from vqturb.utils.progress import Progress

if TYPE_CHECKING:
    from vqturb.models import AbstractVQVAE


def rollout_tokens(
    model: Any,
    t0_tokens: np.ndarray,
    n_steps: int,
    *,
    key: Any,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    chunk: int = 10,
    progress: bool = True,
    rollout_fn: Callable[..., Any] | None = None,
) -> tuple[np.ndarray, dict[str, float]]:
    """Roll out every sample at once; returns tokens ``[S, n_steps + 1, T]`` (t0 first) and timings.

    The steps run as jitted ``lax.scan`` chunks of ``chunk`` frames (one compilation, plus one for
    a shorter last chunk), so the progress bar advances between chunks.

    Timings: ``wall_s`` (all, compilation included), ``steady_frames_per_s`` (frames of all
    samples per second after the first chunk, when there is more than one).
    """
    import jax
    import jax.random as jr

    if rollout_fn is None:
        from vqturb.models.nsp_sampling import rollout as rollout_fn
    s = t0_tokens.shape[0]
    out = [np.asarray(t0_tokens, np.int32)[:, None]]
    cur = jax.numpy.asarray(t0_tokens, jax.numpy.int32)
    done = 0
    t_start = time.perf_counter()
    t_first = None
    with Progress(total=s * n_steps, desc="rollout", unit="frame", disable=not progress) as bar:
        while done < n_steps:
            n = min(chunk, n_steps - done)
            key, sub = jr.split(key)
            frames = rollout_fn(
                model, cur, n, key=sub, temperature=temperature, top_k=top_k, top_p=top_p
            )
            frames = jax.block_until_ready(frames)
            cur = frames[:, -1]
            out.append(np.asarray(frames))
            done += n
            if t_first is None:
                t_first = time.perf_counter()
                n_first = n
            bar.update(s * n, step=f"{done}/{n_steps}")
    t_end = time.perf_counter()
    timing = {"wall_s": t_end - t_start, "frames": s * n_steps}
    if done > n_first:
        timing["steady_frames_per_s"] = s * (done - n_first) / max(t_end - t_first, 1e-9)
    else:
        timing["steady_frames_per_s"] = s * done / max(t_end - t_start, 1e-9)
    return np.concatenate(out, axis=1), timing


def vqvae_decoder(
    vqvae: AbstractVQVAE, tokens: TokensFile, *, batch_size: int = 16
) -> Callable[[np.ndarray], np.ndarray]:
    """``decode(rows [N, T]) -> fields [N, H, W]`` in physical units, through ``vqvae``.

    Unified ids are mapped back to codebook indices per scale (:meth:`TokensFile.codes`) and
    decoded with ``vqvae.decode_indices`` (jitted, in batches of ``batch_size``; the last batch is
    padded so that one compiled shape serves every call), then de-normalised with the tokens
    file's statistics.
    """
    import equinox as eqx
    import jax.numpy as jnp

    @eqx.filter_jit
    def _dec(model, idx):
        return model.decode_indices(idx)

    def decode(rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows)
        lead = rows.shape[:-1]
        flat = rows.reshape(-1, rows.shape[-1])
        outs = []
        for i in range(0, flat.shape[0], batch_size):
            b = flat[i : i + batch_size]
            n = b.shape[0]
            if n < batch_size:
                b = np.concatenate([b, np.repeat(b[-1:], batch_size - n, axis=0)])
            idx = tuple(jnp.asarray(c) for c in tokens.codes(b))
            outs.append(np.asarray(_dec(vqvae, idx), np.float32)[:n])
        x = np.concatenate(outs) if outs else np.zeros((0, 1, 1), np.float32)
        x = x * np.float32(tokens.norm_std) + np.float32(tokens.norm_mean)
        return x.reshape(lead + x.shape[-2:])

    return decode
