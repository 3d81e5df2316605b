"""Rollout outputs: decode, score (:func:`~vqturb.evaluation.rollout_metrics.rollout_metrics`), and
write figures, side-by-side videos, the token trajectories, ``metrics.json`` and ``report.html``."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vqturb import plots as P
from vqturb.errors import InputError
from vqturb.evaluation import report as R
from vqturb.evaluation import video as V
from vqturb.evaluation.rollout_metrics import rollout_metrics
from vqturb.utils.fileio import atomic_save_npz, atomic_write_json
from vqturb.utils.progress import Progress


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
    members: int = 1,
    teacher_forced: Mapping[str, Any] | None = None,
) -> dict:
    """Metrics, figures, videos, token trajectories, ``metrics.json`` and ``report.html``.

    Args:
        generated_tokens: ``[S·M, n + 1, T]`` rollouts, t0 first (t0 = the ground truth's t0):
            ``M = members`` ensemble members per start, member ``m`` of start ``i`` in row
            ``i·M + m``.
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
        title: the report's title.
        members: ensemble members per start.
        teacher_forced: per-scale teacher-forced accuracy and copy-t0 rate on held-out pairs
            (:func:`vqturb.evaluation.teacher_forced.teacher_forced_accuracy`), recorded and
            shown as a table.

    Returns:
        the metrics dict written to ``metrics.json``.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig_dir = out / "figures"
    vid_dir = out / "videos"
    # an earlier evaluation's figures and videos (more samples, other names) would outlive it
    for folder in (fig_dir, vid_dir):
        if folder.is_dir():
            for p in folder.iterdir():
                if p.is_file() and p.suffix in (".png", ".mp4", ".gif"):
                    p.unlink()
    n_rows, n1, t = generated_tokens.shape
    s = gt_tokens.shape[0]
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
    gen = fields[: n_rows * n1].reshape(n_rows, n1, *fields.shape[-2:])
    rec = fields[n_rows * n1 :].reshape(s, n_gt, *fields.shape[-2:])
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
            value_range=value_range, skill_steps=skill_steps, n_bins=n_bins, members=members,
        )
    )  # fmt: skip
    if teacher_forced is not None:
        m["teacher_forced"] = dict(teacher_forced)
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
    sp = m["seed_metrics"]["spectra"]
    for qty, ylabel, fname in (
        ("kinetic_energy", "E(K), annulus mean", "seed_energy_spectra.png"),
        ("enstrophy", "Z(K), annulus mean", "seed_enstrophy_spectra.png"),
    ):
        q = sp["annulus_mean"][qty]
        seed_curves = {
            f"{name if name != 'reference' else f'ground truth ({truth_name})'}, time-averaged": v
            for name, v in q["time_averaged"].items()
        }
        for t, v in zip(sp["milestone_steps"], q["at_steps"]["generated"], strict=True):
            seed_curves[f"generated, step {t}"] = v
        figs[f"seed_{qty}"] = P.plot_spectra(
            np.asarray(sp["annulus_mean"]["k_radians_per_pixel"]), seed_curves, fig_dir / fname,
            ylabel=ylabel, xlabel="|K| (radians/pixel)",
            title=f"seed's {qty.replace('_', ' ')} spectrum (t0 included)",
        )  # fmt: skip
    figs["time_series"] = P.plot_time_series(m["time_series"], fig_dir / "time_series.png")
    figs["pdf"] = P.plot_vorticity_pdf(m["vorticity_pdf"], fig_dir / "vorticity_pdf.png")
    if m["skill"]["step"]:
        sk = m["skill"]
        figs["skill"] = P.plot_skill(
            sk, fig_dir / "skill.png", title=f"against the {truth_name} fields"
        )
        recon_space = {
            "step": sk["step"],
            **{n: sk[n + "_recon"] for n in _SKILL_KEYS},
        }
        figs["skill_recon"] = P.plot_skill(
            recon_space,
            fig_dir / "skill_recon.png",
            title="decoder space: truth and persistence decoded from their tokens",
        )
    times = grid_times(n_steps, n_gt)
    vlim = max(abs(lo), abs(hi))
    grids = []
    for i in range(s):
        grid_rows = {
            "raw_gt": None if raw_gt is None else _pad_time(raw_gt[i : i + 1], n1)[0][times],
            "reconstructed_gt": _pad_time(rec[i : i + 1], n1)[0][times],
            "generated": gen[i * members][times],
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
                gen[i * members],
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


_SKILL_KEYS = ("rel_l2_generated", "rel_l2_ensemble_mean", "rel_l2_persistence")


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
    sm_seed = m["seed_metrics"]
    sections.append(
        R.Section(
            "The seed's metrics",
            [
                R.Text(
                    "The seed code's definitions, on every frame of the rollouts and of the "
                    "ground truth (t0 included): token histograms smoothed with "
                    f"ε = {sm_seed['eps']:g}, JS divergence in nats, "
                    f"{sm_seed['kl_direction']} in nats, TV distance; vqturb's JS in bits on "
                    "the same histograms beside them. Spectra: the mean over annuli of "
                    "wavenumbers in radians/pixel (the seed's), time-averaged and at steps "
                    f"{', '.join(map(str, sm_seed['spectra']['milestone_steps']))}."
                ),
                R.Table(
                    [
                        (
                            k,
                            sm_seed["token_js_nats_per_scale"][k],
                            sm_seed["token_kl_nats_per_scale"][k],
                            sm_seed["token_tv_per_scale"][k],
                            sm_seed["token_js_bits_per_scale"][k],
                        )
                        for k in range(len(sm_seed["token_js_nats_per_scale"]))
                    ]
                    + [
                        (
                            "overall",
                            sm_seed["token_js_nats"],
                            sm_seed["token_kl_nats"],
                            sm_seed["token_tv"],
                            sm_seed["token_js_bits"],
                        )
                    ],
                    ("scale", "JS (nats)", "KL true‖gen (nats)", "TV", "JS (bits, vqturb)"),
                    "token distributions",
                ),
                R.Image(figs["seed_kinetic_energy"], "kinetic energy, annulus mean"),
                R.Image(figs["seed_enstrophy"], "enstrophy, annulus mean"),
            ],
        )
    )
    phys = m["physics"]
    sections.append(
        R.Section(
            "Long rollout physics",
            [
                R.Table(
                    [
                        (
                            "steps with the mean enstrophy inside the reconstructed GT's "
                            "min-max ±10%",
                            phys["enstrophy_in_range_fraction"],
                        ),
                        (
                            "time-averaged spectrum error, rollout vs reconstructed GT",
                            phys["spectrum_error_vs_reconstructed_gt"],
                        ),
                        (
                            "time-averaged spectrum error, VQ-VAE (reconstructed GT) vs raw",
                            phys["vqvae_spectrum_error_vs_raw_gt"],
                        ),
                    ],
                    ("check", "value"),
                ),
            ],
        )
    )
    if "teacher_forced" in m:
        tf = m["teacher_forced"]
        sections.append(
            R.Section(
                "Accuracy against copying t0",
                [
                    R.Text(
                        f"Teacher-forced next-frame prediction on {tf['n_pairs']} held-out pairs "
                        "(t0, t1): the model's argmax accuracy at each predicted scale against "
                        "the rate at which copying t0's token at the same position is right, and "
                        "its loss against the uniform log-vocabulary."
                    ),
                    R.Table(
                        list(
                            zip(
                                tf["scale"],
                                tf["side"],
                                tf["accuracy"],
                                tf["copy_rate"],
                                tf["loss"],
                                tf["uniform_loss"],
                                strict=True,
                            )
                        ),
                        ("scale", "side", "accuracy", "copy-t0 rate", "loss", "log vocab"),
                    ),
                ],
            )
        )
    if "skill" in figs:
        sk = m["skill"]
        sections.append(
            R.Section(
                "Forecast skill",
                [
                    R.Text(
                        f"Relative L2 of single rollouts, of the mean of {sk['n_members']} "
                        f"rollouts per start (ensemble mean) and of persistence (t0 held "
                        f"fixed), against the {m['reference']} fields and in the decoder's own "
                        "space (truth = decoded true tokens of t+k, persistence = decoded tokens "
                        "of t0)."
                    ),
                    R.Image(figs["skill"], f"against the {m['reference']} fields"),
                    R.Image(figs["skill_recon"], "in the decoder's space"),
                    R.Table(
                        list(
                            zip(
                                sk["step"],
                                *(sk[n] for n in _SKILL_KEYS),
                                *(sk[n + "_recon"] for n in _SKILL_KEYS),
                                strict=True,
                            )
                        ),
                        (
                            "step",
                            "NSP",
                            "ensemble mean",
                            "persistence",
                            "NSP (decoder space)",
                            "ensemble mean (decoder space)",
                            "persistence (decoder space)",
                        ),
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
