"""Every rollout metric on arrays (decoded fields in, JSON-safe dict out, no files written)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vqturb.evaluation import metrics as M


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
    members: int = 1,
) -> dict:
    """Every rollout metric, on arrays (no files written).

    Args:
        generated_tokens: ``[S·M, n + 1, T]`` rollouts, t0 first: ``M = members`` ensemble
            members per start, member ``m`` of start ``i`` in row ``i·M + m``.
        gt_tokens: ``[S, T_gt, T]`` ground-truth tokens.
        gen: decoded rollouts ``[S·M, n + 1, H, W]`` (physical units).
        rec: decoded ground truth ``[S, T_gt, H, W]``.
        raw_gt: raw ground truth ``[S, T_gt, H, W]`` or ``None`` (then ``rec`` is the reference).
        layout, value_range, skill_steps, n_bins: as in
            :func:`~vqturb.evaluation.rollout_report.evaluate_rollouts`.
        members: ensemble members per start.

    Returns:
        JSON-safe dict: ``tokens``, ``pixels``, ``spectra``, ``time_series``, ``vorticity_pdf``,
        ``skill`` (see :mod:`vqturb.evaluation.metrics`), with raw GT also
        ``spectra_reconstruction`` and ``spectra_vs_reconstructed``, ``physics`` (the long-rollout
        checks: enstrophy range kept, spectrum errors against the reconstructed truth and of the
        VQ-VAE itself), ``seed_metrics`` (the seed's definitions on every frame, t0 included:
        :func:`~vqturb.evaluation.metrics.seed_token_metrics` and ``spectra`` from
        :func:`~vqturb.evaluation.metrics.seed_spectra`), and a flat ``summary``.
    """
    n_rows, n1, _ = generated_tokens.shape
    s = gt_tokens.shape[0]
    if members < 1 or n_rows != s * members:
        raise ValueError(
            f"{n_rows} rollouts for {s} starts and {members} members (expected starts x members)"
        )
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
        "n_members": members,
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
            gen.reshape(s, members, *gen.shape[1:]),
            truth,
            skill_steps,
            reconstructed=rec if raw_gt is not None else None,
        ),
        "enstrophy_range": M.enstrophy_range_kept(gen, rec),
        # the seed's definitions, on every frame (t0 included) as the seed computes them
        "seed_metrics": {
            **M.seed_token_metrics(generated_tokens, gt_tokens, scales, offs, vocs),
            "spectra": M.seed_spectra(
                gen, truth, reconstructed=rec if raw_gt is not None else None
            ),
        },
    }
    if raw_gt is not None:
        m["spectra_reconstruction"] = M.time_averaged_spectra(rec, raw_gt)
        # generated vs the autoencoder's own rendering of the truth: the token model's share
        m["spectra_vs_reconstructed"] = M.time_averaged_spectra(gen, rec)
    ts = m["time_series"]
    sk = m["skill"]
    m["physics"] = {
        "enstrophy_in_range_fraction": m["enstrophy_range"]["fraction_in_range"],
        "spectrum_error_vs_reconstructed_gt": m.get("spectra_vs_reconstructed", m["spectra"])[
            "spectrum_error"
        ],
        "vqvae_spectrum_error_vs_raw_gt": (
            m["spectra_reconstruction"]["spectrum_error"] if raw_gt is not None else None
        ),
    }

    def at(key: str, step: int) -> float | None:
        return sk[key][step - 1] if len(sk[key]) >= step else None

    m["summary"] = {
        "token_js_bits_overall": m["tokens"]["overall"]["js"],
        "token_tv_overall": m["tokens"]["overall"]["tv"],
        "token_js_bits_mean_trainable": m["tokens"]["mean_trainable"]["js"],
        "seed_token_js_nats": m["seed_metrics"]["token_js_nats"],
        "seed_token_kl_nats": m["seed_metrics"]["token_kl_nats"],
        "seed_token_tv": m["seed_metrics"]["token_tv"],
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
        "skill_rel_l2_step1": at("rel_l2_generated", 1),
        "persistence_rel_l2_step1": at("rel_l2_persistence", 1),
        **{
            f"{key}_step{k}": at(key, k)
            for k in (1, 5)
            for key in (
                "rel_l2_ensemble_mean",
                "rel_l2_generated_recon",
                "rel_l2_ensemble_mean_recon",
                "rel_l2_persistence_recon",
            )
        },
        "steps_ensemble_beats_persistence_recon": sk[
            "steps_better_than_persistence_ensemble_recon"
        ],
        "enstrophy_in_range_fraction": m["physics"]["enstrophy_in_range_fraction"],
        "steps_better_than_persistence": m["skill"]["steps_better_than_persistence"],
        "n_steps_better_than_persistence": m["skill"]["n_steps_better_than_persistence"],
        "out_of_range_tokens": float(
            max(e["out_of_range_generated"] for e in m["tokens"]["per_scale"])
        ),
    }

    return m
