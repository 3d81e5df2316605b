"""NSP rollout evaluation: roll out t0 -> t_n in token space, decode, measure, draw, report.

Pipeline of :func:`evaluate_nsp` (the library function behind ``vqturb eval-nsp``):

1. load the tokens file, the NSP model and the VQ-VAE (checked against each other);
2. pick ``n_samples`` starting frames from the *test* split, by trajectory (the same seeded split
   as ``Dataset.split``, so the model never saw these trajectories in training);
3. roll out all samples at once, each frame generated from the previous one (batched, jitted,
   ``lax.scan`` in chunks so that a progress bar can show frames done);
4. decode generated and ground-truth tokens through the VQ-VAE (jitted, batched) and read the raw
   fields when ``data_dir`` is given;
5. compute every metric of :mod:`vqturb.evaluation.metrics`, write figures, side-by-side videos,
   the token trajectories (``tokens_rollout.npz``), ``metrics.json`` and ``report.html``.

:func:`evaluate_rollouts` is step 5 alone, on token arrays, for callers that roll out themselves;
:func:`rollout_metrics` is its numbers only (decoded fields in, JSON-safe dict out, no files).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vqturb.errors import InputError
from vqturb.evaluation import metrics as M
from vqturb.evaluation import plots as P
from vqturb.evaluation import report as R
from vqturb.evaluation import video as V
from vqturb.utils.fileio import atomic_save_npz, atomic_write_json, file_sha256
from vqturb.utils.progress import Progress

# Tokens-file fields this module needs (CONTRACTS.md, "Tokens file").
REQUIRED_TOKEN_FIELDS = (
    "indices_flat",
    "scales",
    "scale_offsets",
    "scale_vocab_sizes",
    "unified_to_original",
    "trajectory_id",
    "time_index",
)


@dataclass(frozen=True)
class TokenSet:
    """The parts of a tokens file that evaluation uses."""

    path: str  # where it was read from (for error messages)
    indices: np.ndarray  # [N, T] int32 unified token ids, scale by scale
    scales: tuple[int, ...]  # side length of each scale
    scale_offsets: tuple[int, ...]  # first unified id of each scale
    scale_vocab_sizes: tuple[int, ...]  # ids per scale
    unified_to_original: np.ndarray  # [V] unified id -> code index in the VQ-VAE's codebook
    trajectory_id: np.ndarray  # [N] trajectory of each row
    time_index: np.ndarray  # [N] time index of each row inside its trajectory
    norm_mean: float  # normalisation the VQ-VAE saw: physical = mean + std * normalised
    norm_std: float  # (1.0 when the file has no statistics)
    checkpoint_sha256: str | None  # hash of the VQ-VAE checkpoint that made the tokens

    @property
    def layout(self) -> dict[str, tuple[int, ...]]:
        return {
            "scales": self.scales,
            "scale_offsets": self.scale_offsets,
            "scale_vocab_sizes": self.scale_vocab_sizes,
        }

    def row_of(self) -> dict[tuple[int, int], int]:
        """(trajectory, time index) -> row."""
        return {
            (int(a), int(b)): i
            for i, (a, b) in enumerate(zip(self.trajectory_id, self.time_index, strict=True))
        }


def load_tokens(path: str | os.PathLike) -> TokenSet:
    """Read and check a tokens file (``vqturb tokenizer save``); InputError names what is wrong."""
    from vqturb.data.tokens_file import read_tokens_file

    path = Path(path)
    z = read_tokens_file(
        path, REQUIRED_TOKEN_FIELDS, optional=("norm_mean", "norm_std", "checkpoint_sha256")
    )
    idx = np.asarray(z["indices_flat"])
    scales = tuple(int(s) for s in np.ravel(z["scales"]))
    ts = TokenSet(
        path=str(path),
        indices=idx.astype(np.int32),
        scales=scales,
        scale_offsets=tuple(int(s) for s in np.ravel(z["scale_offsets"])),
        scale_vocab_sizes=tuple(int(s) for s in np.ravel(z["scale_vocab_sizes"])),
        unified_to_original=np.asarray(z["unified_to_original"]).astype(np.int32),
        trajectory_id=np.asarray(z["trajectory_id"]).astype(np.int64),
        time_index=np.asarray(z["time_index"]).astype(np.int64),
        norm_mean=float(z["norm_mean"]) if "norm_mean" in z else 0.0,
        norm_std=float(z["norm_std"]) if "norm_std" in z else 1.0,
        checkpoint_sha256=str(z["checkpoint_sha256"]) if "checkpoint_sha256" in z else None,
    )
    n_tok = sum(s * s for s in scales)
    if idx.ndim != 2 or idx.shape[1] != n_tok:
        raise InputError(
            path, "indices_flat", f"shape {idx.shape}", f"[N, {n_tok}] for scales {scales}"
        )
    if not (idx.shape[0] == ts.trajectory_id.shape[0] == ts.time_index.shape[0]):
        raise InputError(
            path,
            "trajectory_id/time_index",
            "lengths differ from indices_flat rows",
            "one entry per row",
        )
    return ts


# ----------------------------------------------------------------------------- starting frames


def split_trajectories(
    trajectory_id: np.ndarray,
    time_index: np.ndarray,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> tuple[str, dict[int, np.ndarray]]:
    """The held-out frames of a tokens file, as ``Dataset.split`` makes them.

    Several trajectories: the same seeded permutation of trajectory ids ``0 … max id`` as
    ``Dataset.split`` (tokens files index the dataset's trajectories), test first. One trajectory:
    the last contiguous time block. Falls back to the validation split when the test split is
    empty (e.g. two trajectories), and to everything when both are.

    Returns:
        ``(split name used, {trajectory: sorted time indices})``.
    """
    from vqturb.data.dataset import split_time_blocks, split_trajectory_ids

    traj = np.asarray(trajectory_id)
    tidx = np.asarray(time_index)
    present = np.unique(traj)
    by_traj = {int(i): np.sort(tidx[traj == i]) for i in present}
    if present.size > 1:
        _, val_ids, test_ids = split_trajectory_ids(
            int(present.max()) + 1, val_fraction, test_fraction, seed
        )
        for name, ids in (("test", test_ids), ("val", val_ids)):
            chosen = {int(i): by_traj[int(i)] for i in ids if int(i) in by_traj}
            if chosen:
                return name, chosen
        return "all", by_traj
    (only,) = by_traj
    times = by_traj[only]
    _, val_t, test_t = split_time_blocks(times.size, val_fraction, test_fraction)
    if test_t.size:
        return "test", {only: times[test_t]}
    if val_t.size:
        return "val", {only: times[val_t]}
    return "all", by_traj


def heldout_frames(
    tokens: TokenSet, nsp_meta: Mapping[str, Any]
) -> tuple[str, dict[int, np.ndarray]]:
    """Frames the NSP model never trained on, preferring its own record.

    ``vqturb train-nsp`` stores the trajectories it held out in its checkpoint
    (``meta["val_trajectories"]``); those are used when present in the tokens file. Otherwise
    :func:`split_trajectories` (the ``Dataset.split`` test split). When the checkpoint says it
    held nothing out (one trajectory), the split name ends in ``"(in-sample for NSP)"``.
    """
    held = nsp_meta.get("val_trajectories")
    present = set(np.unique(tokens.trajectory_id).tolist())
    if held:
        ids = [int(i) for i in held if int(i) in present]
        if ids:
            by = {i: np.sort(tokens.time_index[tokens.trajectory_id == i]) for i in ids}
            return "NSP validation trajectories (held out from NSP training)", by
    name, frames = split_trajectories(tokens.trajectory_id, tokens.time_index)
    if held is not None and not held:
        name += " (in-sample for NSP: it held out no trajectory)"
    return name, frames


def choose_starts(
    frames: Mapping[int, np.ndarray], n_samples: int, n_steps: int
) -> list[tuple[int, int]]:
    """Starting frames ``(trajectory, time index)``: samples dealt round-robin over trajectories;
    inside a trajectory, starts spread evenly over the times that leave ``n_steps`` of ground
    truth after them (all at its first frame when it is shorter)."""
    trajs = sorted(frames)
    if not trajs:
        raise InputError(None, "tokens file", "no frames to start from", "at least one trajectory")
    per = {t: [] for t in trajs}
    for i in range(n_samples):
        per[trajs[i % len(trajs)]].append(i)
    starts: list[tuple[int, int]] = [(-1, -1)] * n_samples
    for t, samples in per.items():
        times = frames[t]
        last = max(0, times.size - 1 - n_steps)
        pos = np.linspace(0, last, len(samples)).round().astype(int) if samples else []
        for s, p in zip(samples, pos, strict=True):
            starts[s] = (t, int(times[p]))
    return starts


def ground_truth_windows(
    tokens: TokenSet, starts: Sequence[tuple[int, int]], n_steps: int
) -> np.ndarray:
    """Ground-truth token rows ``[S, T_gt, T]`` for t0, t0 + 1, … (consecutive time indices),
    ``T_gt`` = the longest window every sample has, at most ``n_steps + 1``."""
    rows = tokens.row_of()
    windows = []
    for traj, t0 in starts:
        w = []
        for k in range(n_steps + 1):
            r = rows.get((traj, t0 + k))
            if r is None:
                break
            w.append(r)
        windows.append(w)
    n_gt = min(len(w) for w in windows)
    if n_gt < 1:
        raise InputError(
            tokens.path, "time_index", "a starting frame is missing", "rows for every start"
        )
    return np.stack([tokens.indices[w[:n_gt]] for w in windows])


# ----------------------------------------------------------------------------- rollouts and decoding


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
    vqvae: Any, tokens: TokenSet, *, batch_size: int = 16
) -> Callable[[np.ndarray], np.ndarray]:
    """``decode(rows [N, T]) -> fields [N, H, W]`` in physical units, through ``vqvae``.

    Unified ids are mapped back to codebook indices per scale (``unified_to_original``), reshaped
    to each scale's ``s × s`` grid and decoded with ``vqvae.decode_indices`` (jitted, in batches of
    ``batch_size``; the last batch is padded so that one compiled shape serves every call), then
    de-normalised with the tokens file's statistics.
    """
    import equinox as eqx
    import jax.numpy as jnp

    u2o = np.asarray(tokens.unified_to_original)
    pos = M.scale_positions(tokens.scales)

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
            orig = u2o[b]
            idx = tuple(
                jnp.asarray(orig[:, a:e].reshape(batch_size, s, s))
                for (a, e), s in zip(pos, tokens.scales, strict=True)
            )
            outs.append(np.asarray(_dec(vqvae, idx), np.float32)[:n])
        x = np.concatenate(outs) if outs else np.zeros((0, 1, 1), np.float32)
        x = x * np.float32(tokens.norm_std) + np.float32(tokens.norm_mean)
        return x.reshape(lead + x.shape[-2:])

    return decode


# ----------------------------------------------------------------------------- metrics + outputs


def grid_times(n_steps: int, n_gt: int | None = None) -> list[int]:
    """Steps shown in the comparison grids: t0, the first steps, and a spread up to the end."""
    cand = {0, 1, 2, 5, 10, n_steps // 4, n_steps // 2, n_steps}
    if n_gt is not None and 0 < n_gt - 1 < n_steps:
        cand.add(n_gt - 1)
    return sorted(t for t in cand if 0 <= t <= n_steps)


def _pad_time(x: np.ndarray, t: int) -> np.ndarray:
    """Pad ``[S, T', H, W]`` to ``T`` frames with NaN (no ground truth there)."""
    if x.shape[1] >= t:
        return x[:, :t]
    pad = np.full((x.shape[0], t - x.shape[1]) + x.shape[2:], np.nan, x.dtype)
    return np.concatenate([x, pad], axis=1)


def rollout_metrics(
    generated_tokens: np.ndarray,
    gt_tokens: np.ndarray,
    gen: np.ndarray,
    rec: np.ndarray,
    raw_gt: np.ndarray | None,
    *,
    layout: Mapping[str, Sequence[int]],
    value_range: tuple[float, float] | None = None,
    skill_steps: int = 10,
    n_bins: int = 101,
) -> dict:
    """Every rollout metric, on arrays (no files written).

    Args:
        generated_tokens: ``[S, n + 1, T]`` rollouts, t0 first.
        gt_tokens: ``[S, T_gt, T]`` ground-truth tokens.
        gen: decoded rollouts ``[S, n + 1, H, W]`` (physical units).
        rec: decoded ground truth ``[S, T_gt, H, W]``.
        raw_gt: raw ground truth ``[S, T_gt, H, W]`` or ``None`` (then ``rec`` is the reference).
        layout, value_range, skill_steps, n_bins: as in :func:`evaluate_rollouts`.

    Returns:
        JSON-safe dict: ``tokens``, ``pixels``, ``spectra``, ``time_series``, ``vorticity_pdf``,
        ``skill`` (see :mod:`vqturb.evaluation.metrics`), with raw GT also
        ``spectra_reconstruction`` and ``spectra_vs_reconstructed``, and a flat ``summary``.
    """
    s, n1, _ = generated_tokens.shape
    n_steps = n1 - 1
    n_gt = gt_tokens.shape[1]
    scales = [int(v) for v in layout["scales"]]
    offs = [int(v) for v in layout["scale_offsets"]]
    vocs = [int(v) for v in layout["scale_vocab_sizes"]]
    truth = raw_gt if raw_gt is not None else rec
    truth_name = "raw GT" if raw_gt is not None else "reconstructed GT"
    lo, hi = M.value_range(truth) if value_range is None else map(float, value_range)
    edges = M.pixel_bins(lo, hi, n_bins)
    gen_after = gen[:, 1:] if n1 > 1 else gen
    m: dict[str, Any] = {
        "n_samples": s,
        "n_steps": n_steps,
        "n_gt_frames": n_gt,
        "field_shape": list(gen.shape[-2:]),
        "reference": truth_name,
        "value_range": [lo, hi],
        "tokens": M.token_metrics(
            generated_tokens[:, 1:] if n1 > 1 else generated_tokens,
            gt_tokens[:, 1:] if n_gt > 1 else gt_tokens,
            scales,
            offs,
            vocs,
        ),
        "pixels": M.pixel_metrics(
            {
                "generated": gen_after,
                "reconstructed_gt": rec[:, 1:] if n_gt > 1 else rec,
                "raw_gt": None if raw_gt is None else (raw_gt[:, 1:] if n_gt > 1 else raw_gt),
            },
            edges,
        ),
        "spectra": M.time_averaged_spectra(gen, truth),
        "time_series": M.time_series(gen, truth, reconstructed=rec if raw_gt is not None else None),
        "vorticity_pdf": M.vorticity_pdf(gen_after, truth[:, 1:] if n_gt > 1 else truth, edges),
        "skill": M.short_term_skill(
            gen, truth, skill_steps, floor=rec if raw_gt is not None else None
        ),
    }
    if raw_gt is not None:
        m["spectra_reconstruction"] = M.time_averaged_spectra(rec, raw_gt)
        # generated vs the autoencoder's own rendering of the truth: the token model's share
        m["spectra_vs_reconstructed"] = M.time_averaged_spectra(gen, rec)
    ts = m["time_series"]
    m["summary"] = {
        "token_js_overall": m["tokens"]["overall"]["js"],
        "token_tv_overall": m["tokens"]["overall"]["tv"],
        "token_js_mean_trainable": m["tokens"]["mean_trainable"]["js"],
        "pixel_js_generated_vs_reference": m["pixels"]["pairs"]
        .get("generated_vs_raw_gt", m["pixels"]["pairs"].get("generated_vs_reconstructed_gt", {}))
        .get("js"),
        "spectrum_error_time_averaged": m["spectra"]["spectrum_error"],
        "spectrum_error_generated_vs_reconstructed_gt": m.get(
            "spectra_vs_reconstructed", m["spectra"]
        )["spectrum_error"],
        "spectrum_error_reconstructed_vs_raw_gt": (
            m["spectra_reconstruction"]["spectrum_error"] if raw_gt is not None else None
        ),
        "spectrum_error_last_step_vs_climatology": ts["spectrum_error_vs_climatology"][-1],
        "enstrophy_ratio_last_step": ts["enstrophy_generated"][-1]
        / max(float(np.mean(ts["enstrophy_reference"])), 1e-30),
        "vorticity_pdf_js": m["vorticity_pdf"]["js"],
        "skill_rel_l2_step1": (m["skill"]["rel_l2_generated"] or [None])[0],
        "persistence_rel_l2_step1": (m["skill"]["rel_l2_persistence"] or [None])[0],
        "steps_better_than_persistence": m["skill"]["steps_better_than_persistence"],
        "n_steps_better_than_persistence": m["skill"]["n_steps_better_than_persistence"],
        "out_of_range_tokens": float(
            max(e["out_of_range_generated"] for e in m["tokens"]["per_scale"])
        ),
    }

    return m


def evaluate_rollouts(
    generated_tokens: np.ndarray,
    gt_tokens: np.ndarray,
    decode: Callable[[np.ndarray], np.ndarray],
    output_dir: str | os.PathLike,
    *,
    layout: Mapping[str, Sequence[int]],
    raw_gt: np.ndarray | None = None,
    starts: Sequence[tuple[int, int]] | None = None,
    settings: Mapping[str, Any] | None = None,
    timing: Mapping[str, float] | None = None,
    skill_steps: int = 10,
    fps: float = 10.0,
    n_bins: int = 101,
    value_range: tuple[float, float] | None = None,
    progress: bool = True,
    title: str = "NSP rollout evaluation",
) -> dict:
    """Metrics, figures, videos, token trajectories, ``metrics.json`` and ``report.html``.

    Args:
        generated_tokens: ``[S, n + 1, T]`` rollouts, t0 first (t0 = the ground truth's t0).
        gt_tokens: ``[S, T_gt, T]`` ground-truth tokens from the same starts.
        decode: rows ``[N, T]`` -> fields ``[N, H, W]`` in physical units.
        output_dir: folder for every output (created).
        layout: ``scales``, ``scale_offsets``, ``scale_vocab_sizes``.
        raw_gt: optional raw fields ``[S, T_gt, H, W]`` (physical units) of the same frames.
        starts: ``(trajectory, time index)`` of each sample (recorded).
        settings: run settings recorded in ``metrics.json`` and the report.
        timing: rollout timings recorded in ``metrics.json``.
        skill_steps: steps scored by the short-term skill.
        fps: video frame rate.
        n_bins: pixel-histogram bins.
        value_range: the dataset's fixed value range ``(lo, hi)`` for the pixel bins and the
            colour scale; default symmetric, from max |ground truth| of these rollouts (+5 %).
        progress: show a progress bar while decoding.

    Returns:
        the metrics dict written to ``metrics.json``.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig_dir = out / "figures"
    vid_dir = out / "videos"
    s, n1, t = generated_tokens.shape
    n_steps = n1 - 1
    n_gt = gt_tokens.shape[1]
    scales = [int(v) for v in layout["scales"]]
    offs = [int(v) for v in layout["scale_offsets"]]
    vocs = [int(v) for v in layout["scale_vocab_sizes"]]

    # decode everything (generated and ground truth) in one pass of batches
    t_dec = time.perf_counter()
    rows = np.concatenate([generated_tokens.reshape(-1, t), gt_tokens.reshape(-1, t)])
    chunks = []
    step = 64
    with Progress(total=rows.shape[0], desc="decode", unit="frame", disable=not progress) as bar:
        for i in range(0, rows.shape[0], step):
            chunks.append(decode(rows[i : i + step]))
            bar.update(min(step, rows.shape[0] - i))
    fields = np.concatenate(chunks).astype(np.float32)
    decode_s = time.perf_counter() - t_dec
    gen = fields[: s * n1].reshape(s, n1, *fields.shape[-2:])
    rec = fields[s * n1 :].reshape(s, n_gt, *fields.shape[-2:])
    if raw_gt is not None:
        raw_gt = np.asarray(raw_gt, np.float32)
        if raw_gt.shape != rec.shape:
            raise InputError(
                None, "raw ground truth", f"shape {raw_gt.shape}", f"{rec.shape} (decoded fields)"
            )
    # ---- numbers
    m: dict[str, Any] = {
        "settings": dict(settings or {}),
        "starts": [list(map(int, st)) for st in starts] if starts is not None else None,
    }
    m.update(
        rollout_metrics(
            generated_tokens, gt_tokens, gen, rec, raw_gt, layout=layout,
            value_range=value_range, skill_steps=skill_steps, n_bins=n_bins,
        )
    )  # fmt: skip
    m["timing"] = {**dict(timing or {}), "decode_s": decode_s, "decoded_frames": int(rows.shape[0])}
    if timing and "steady_frames_per_s" in timing:
        m["summary"]["rollout_token_frames_per_s"] = float(timing["steady_frames_per_s"])
    m["summary"]["decode_frames_per_s_incl_compile"] = float(rows.shape[0] / max(decode_s, 1e-9))
    lo, hi = m["value_range"]
    truth = raw_gt if raw_gt is not None else rec
    truth_name = m["reference"]

    # ---- files
    atomic_save_npz(
        out / "tokens_rollout.npz",
        generated=generated_tokens.astype(np.int32),
        ground_truth=gt_tokens.astype(np.int32),
        starts=np.asarray(starts if starts is not None else np.zeros((s, 2)), np.int64),
        scales=np.asarray(scales),
        scale_offsets=np.asarray(offs),
        scale_vocab_sizes=np.asarray(vocs),
    )
    figs: dict[str, Path] = {}
    figs["tokens"] = P.plot_token_histograms(m["tokens"], fig_dir / "token_histograms.png")
    figs["pixels"] = P.plot_pixel_histograms(m["pixels"], fig_dir / "pixel_histograms.png")
    k = np.asarray(m["spectra"]["k"])
    curves = {
        f"ground truth ({truth_name})": m["spectra"]["reference"],
        "generated": m["spectra"]["generated"],
    }
    if raw_gt is not None:
        curves["reconstructed GT"] = m["spectra_reconstruction"]["generated"]
    figs["spectra"] = P.plot_spectra(
        k, curves, fig_dir / "spectra.png", kmax=m["spectra"]["kmax"],
        title=f"time-averaged energy spectra (error {m['spectra']['spectrum_error']:.3f})",
    )  # fmt: skip
    figs["time_series"] = P.plot_time_series(m["time_series"], fig_dir / "time_series.png")
    figs["pdf"] = P.plot_vorticity_pdf(m["vorticity_pdf"], fig_dir / "vorticity_pdf.png")
    if m["skill"]["step"]:
        figs["skill"] = P.plot_skill(m["skill"], fig_dir / "skill.png")
    times = grid_times(n_steps, n_gt)
    vlim = max(abs(lo), abs(hi))
    grids = []
    for i in range(s):
        grid_rows = {
            "raw_gt": None if raw_gt is None else _pad_time(raw_gt[i : i + 1], n1)[0][times],
            "reconstructed_gt": _pad_time(rec[i : i + 1], n1)[0][times],
            "generated": gen[i][times],
        }
        st = f" from trajectory {starts[i][0]}, t0 = {starts[i][1]}" if starts is not None else ""
        grids.append(
            P.plot_comparison_grid(
                grid_rows,
                times,
                fig_dir / f"grid_sample{i}.png",
                vlim=vlim,
                title=f"sample {i}{st}",
            )
        )
    videos = []
    for i in range(s):
        videos.append(
            V.write_side_by_side(
                vid_dir / f"rollout_sample{i}.mp4",
                gen[i],
                truth[i],
                fps=fps,
                vlim=vlim,
                labels=("generated", f"ground truth ({truth_name})"),
            )
        )
    m["files"] = {
        "figures": {k2: str(v.relative_to(out)) for k2, v in figs.items()},
        "grids": [str(g.relative_to(out)) for g in grids],
        "videos": [str(v.relative_to(out)) for v in videos],
        "tokens": "tokens_rollout.npz",
        "report": "report.html",
    }
    atomic_write_json(out / "metrics.json", m)
    _write_report(out, m, figs, grids, videos, title=title)
    return m


def _write_report(
    out: Path, m: dict, figs: dict[str, Path], grids: list[Path], videos: list[Path], *, title: str
) -> Path:
    sm = m["summary"]
    set_rows = [(k, v) for k, v in m["settings"].items()]
    sections = [
        R.Section(
            "Summary",
            [
                R.Text(
                    f"{m['n_samples']} rollouts of {m['n_steps']} steps; starting frames from: "
                    f"{m['settings'].get('split', 'test split')}; ground truth for "
                    f"{m['n_gt_frames']} frames per sample; reference for physics and skill: "
                    f"{m['reference']}. Field size {m['field_shape'][0]}×{m['field_shape'][1]}."
                ),
                R.Table.from_metrics(sm, "key numbers"),
                R.Table(set_rows, ("setting", "value"), "run settings"),
            ],
        ),
        R.Section(
            "Videos (generated | ground truth)",
            [R.Video(v, f"sample {i}") for i, v in enumerate(videos)],
        ),
        R.Section(
            "Comparison grids",
            [R.Text("Same colour scale (RdBu_r, symmetric) in every panel; grey: no ground truth.")]
            + [R.Image(g, f"sample {i}") for i, g in enumerate(grids)],
        ),
        R.Section(
            "Token statistics",
            [
                R.Image(figs["tokens"], "per-scale token histograms, generated vs ground truth"),
                R.Table(
                    [
                        (
                            e["scale"],
                            e["side"],
                            e["vocab_size"],
                            e["js"],
                            e["tv"],
                            e["out_of_range_generated"],
                        )
                        for e in m["tokens"]["per_scale"]
                    ],
                    ("scale", "side", "vocab", "JS", "TV", "out of range"),
                    "per scale",
                ),
            ],
        ),
        R.Section(
            "Pixel statistics",
            [
                R.Image(figs["pixels"], "pixel-value histograms on fixed bins"),
                R.Table(
                    [(k, v["js"], v["tv"]) for k, v in m["pixels"]["pairs"].items()],
                    ("pair", "JS", "TV"),
                ),
                R.Image(figs["pdf"], "vorticity PDF"),
            ],
        ),
        R.Section(
            "Physics",
            [
                R.Image(figs["spectra"], "energy spectra averaged over samples and time"),
                R.Image(figs["time_series"], "enstrophy and spectrum error against rollout step"),
            ],
        ),
    ]
    if "skill" in figs:
        sections.append(
            R.Section(
                "Short-term skill",
                [
                    R.Image(figs["skill"], "relative L2 to the ground truth vs persistence"),
                    R.Table(
                        list(
                            zip(
                                m["skill"]["step"],
                                m["skill"]["rel_l2_generated"],
                                m["skill"]["rel_l2_persistence"],
                                strict=True,
                            )
                        ),
                        ("step", "NSP rel L2", "persistence rel L2"),
                    ),
                ],
            )
        )
    sections.append(
        R.Section(
            "All metrics",
            [
                R.Table.from_metrics(
                    {k: v for k, v in m.items() if k not in ("files", "settings")}, max_list=0
                ),
                R.Links(
                    [
                        ("metrics.json", out / "metrics.json"),
                        ("token trajectories", out / "tokens_rollout.npz"),
                    ]
                ),
            ],
        )
    )
    return R.build_report(
        out / "report.html", title, sections, subtitle=m["settings"].get("command", "")
    )


# ----------------------------------------------------------------------------- the whole thing


def evaluate_nsp(
    nsp_checkpoint: str | os.PathLike,
    vqvae_checkpoint: str | os.PathLike,
    tokens_path: str | os.PathLike,
    output_dir: str | os.PathLike = "eval_nsp",
    *,
    n_samples: int = 4,
    n_steps: int = 100,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
    var: str = "Omega",
    chunk: int = 10,
    skill_steps: int = 10,
    fps: float = 10.0,
    decode_batch: int = 16,
    value_range: tuple[float, float] | None = None,
    progress: bool = True,
) -> dict:
    """Roll out the NSP model from held-out frames, decode, and write every evaluation output.

    Args:
        nsp_checkpoint: ``vqturb train-nsp`` checkpoint (kind ``"nsp"``).
        vqvae_checkpoint: the VQ-VAE that made the tokens (its hash must match the tokens file).
        tokens_path: ``vqturb tokenizer save`` output.
        output_dir: folder for videos, figures, ``tokens_rollout.npz``, ``metrics.json``,
            ``report.html``.
        n_samples: rollouts (starting frames dealt over held-out trajectories).
        n_steps: frames generated after t0.
        temperature, top_k, top_p: sampling (temperature 0 = greedy).
        seed: PRNG seed of the sampling.
        data_dir: raw dataset the tokens were made from: adds raw-GT comparisons.
        var: variable name in the raw files.
        chunk: frames per jitted scan chunk (progress granularity).
        skill_steps: steps scored against persistence.
        fps: video frame rate.
        decode_batch: VQ-VAE decoding batch.
        value_range: fixed value range of the dataset for pixel bins and colours (default: from
            the ground truth of these rollouts).
        progress: progress bars on stderr.

    Returns:
        the metrics dict (also in ``output_dir/metrics.json``).
    """
    import jax.random as jr

    from vqturb.training import checkpoint

    if n_samples < 1 or n_steps < 1:
        raise InputError(
            None, "--n_samples/--n_steps", f"{n_samples}/{n_steps}", "positive integers"
        )
    if temperature < 0:
        raise InputError(None, "--temperature", f"{temperature}", "a number >= 0")
    if top_k is not None and top_k < 1:
        raise InputError(None, "--top_k", f"{top_k}", "a positive integer")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise InputError(None, "--top_p", f"{top_p}", "a number in (0, 1]")
    tokens = load_tokens(tokens_path)
    vq_sha = file_sha256(vqvae_checkpoint) if Path(vqvae_checkpoint).is_file() else None
    if tokens.checkpoint_sha256 and vq_sha and tokens.checkpoint_sha256 != vq_sha:
        raise InputError(
            tokens_path,
            "checkpoint_sha256",
            f"tokens were made by a checkpoint with sha256 {tokens.checkpoint_sha256[:12]}…, "
            f"{vqvae_checkpoint} has {vq_sha[:12]}…",
            "the VQ-VAE checkpoint that produced the tokens file",
        )
    nsp, nsp_header = checkpoint.load_model(nsp_checkpoint, kind="nsp")
    cfg = nsp.config
    for name in ("scales", "scale_offsets", "scale_vocab_sizes"):
        a, b = tuple(getattr(cfg, name)), getattr(tokens, name)
        if a != b:
            raise InputError(
                nsp_checkpoint, f"NSP config '{name}'", f"{a}", f"{b} as in {tokens_path}"
            )
    vqvae, _ = checkpoint.load_model(vqvae_checkpoint, kind="vqvae")
    decode = vqvae_decoder(vqvae, tokens, batch_size=decode_batch)

    split, frames = heldout_frames(tokens, nsp_header.get("meta", {}))
    starts = choose_starts(frames, n_samples, n_steps)
    gt_tokens = ground_truth_windows(tokens, starts, n_steps)
    rows = tokens.row_of()
    t0 = np.stack([tokens.indices[rows[st]] for st in starts])

    gen_tokens, timing = rollout_tokens(
        nsp, t0, n_steps, key=jr.key(seed), temperature=temperature, top_k=top_k, top_p=top_p,
        chunk=chunk, progress=progress,
    )  # fmt: skip

    raw = None
    if data_dir is not None:
        from vqturb.data import open_dataset

        with open_dataset(data_dir, var=var) as ds:
            raw = np.stack(
                [
                    np.stack([ds.get(tr, t_0 + k) for k in range(gt_tokens.shape[1])])
                    for tr, t_0 in starts
                ]
            ).astype(np.float32)

    settings = {
        "command": "vqturb eval-nsp",
        "nsp_checkpoint": str(nsp_checkpoint),
        "vqvae_checkpoint": str(vqvae_checkpoint),
        "tokens_path": str(tokens_path),
        "data_dir": None if data_dir is None else str(data_dir),
        "n_samples": n_samples,
        "n_steps": n_steps,
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
        "seed": seed,
        "value_range": None if value_range is None else [float(v) for v in value_range],
        "split": split,
        "nsp_step": nsp_header.get("meta", {}).get("step"),
    }
    return evaluate_rollouts(
        gen_tokens, gt_tokens, decode, output_dir, layout=tokens.layout, raw_gt=raw,
        starts=starts, settings=settings, timing=timing, skill_steps=skill_steps, fps=fps,
        value_range=value_range, progress=progress,
    )  # fmt: skip
