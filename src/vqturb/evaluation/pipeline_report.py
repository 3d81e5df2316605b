"""The demo's top-level ``report.html``: one page linking the VQ-VAE, codec and rollout results.

It reads what the stages left on disk (``vqvae/metrics.jsonl`` and ``vqvae/figures``,
``rd/rd.json`` and ``rd/rd.png``, ``eval/metrics.json`` and ``eval/report.html``), so it can be
rebuilt at any time from a finished output folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from vqturb.evaluation.report import Image, Links, Section, Table, Text, build_report
from vqturb.utils.records import read_metrics


def _newest(folder: Path, pattern: str) -> Path | None:
    found = sorted(folder.glob(pattern))
    return found[-1] if found else None


def plot_training_curves(metrics_path: Path, out: Path, keys: tuple[str, ...]) -> Path | None:
    """Loss curves against step from a ``metrics.jsonl``; ``None`` when there is nothing to plot."""
    from vqturb.plots import new_figure, save_figure

    recs = [r for r in read_metrics(metrics_path) if r.get("kind", "train") == "train"]
    if not recs:
        return None
    fig = new_figure(6.0, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    for key in keys:
        pts = [(r["step"], r[key]) for r in recs if isinstance(r.get(key), (int, float))]
        if pts:
            s, v = np.array(pts).T
            ax.plot(s, v, label=key)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.legend()
    ax.grid(True, alpha=0.3)
    return save_figure(fig, out)


def write_pipeline_report(out: str | os.PathLike, timings: dict | None = None) -> Path:
    """Build ``<out>/report.html`` from the demo's stage outputs; returns its path."""
    out = Path(out)
    sections: list[Section] = []
    vq = out / "vqvae"
    if (vq / "metrics.jsonl").is_file():
        blocks: list = []
        curve = plot_training_curves(
            vq / "metrics.jsonl",
            vq / "figures" / "training_curves.png",
            ("loss", "recon_mse", "commit_loss"),
        )
        if curve:
            blocks.append(Image(curve, "VQ-VAE training losses (normalised units)"))
        val = [r for r in read_metrics(vq / "metrics.jsonl") if r.get("kind") == "val"]
        if val:
            blocks.append(
                Table.from_metrics(
                    {k: v for k, v in val[-1].items() if k.startswith("val_")},
                    f"validation at step {val[-1]['step']}",
                )
            )
        for pattern, caption in (
            ("reconstructions_*.png", "validation fields: input, reconstruction, error"),
            ("spectra_*.png", "energy spectra: true vs reconstructed"),
            ("codebook_usage_*.png", "codebook usage per scale"),
        ):
            p = _newest(vq / "figures", pattern)
            if p:
                blocks.append(Image(p, caption))
        sections.append(Section("VQ-VAE", blocks))
    rd = out / "rd"
    if (rd / "rd.json").is_file():
        blocks = (
            [Image(rd / "rd.png", "rate–distortion on the test split")]
            if (rd / "rd.png").is_file()
            else []
        )
        if (rd / "rd.md").is_file():
            blocks.append(
                Links(
                    [
                        ("rate–distortion table (markdown)", rd / "rd.md"),
                        ("rd.json", rd / "rd.json"),
                    ]
                )
            )
        sections.append(Section("Compression", blocks))
    ev = out / "eval"
    if (ev / "report.html").is_file():
        blocks = [Links([("full rollout report", ev / "report.html")])]
        if (ev / "metrics.json").is_file():
            m = json.loads((ev / "metrics.json").read_text())
            summary = m.get("summary", {})
            if summary:
                blocks.append(Table.from_metrics(summary, "rollout summary"))
            tf = m.get("teacher_forced")
            if tf:
                blocks.append(
                    Table(
                        list(zip(tf["side"], tf["accuracy"], tf["copy_rate"], strict=True)),
                        ("scale side", "NSP accuracy", "copy-t0 rate"),
                        f"teacher-forced accuracy vs copying t0 ({tf['n_pairs']} held-out pairs)",
                    )
                )
        for name, caption in (
            ("spectra.png", "time-averaged energy spectra"),
            ("skill.png", "forecast skill vs persistence, against the raw fields"),
            ("skill_recon.png", "forecast skill vs persistence, in the decoder's space"),
        ):
            if (ev / "figures" / name).is_file():
                blocks.append(Image(ev / "figures" / name, caption))
        sections.append(Section("Next-scale prediction rollouts", blocks))
    if timings:
        sections.append(
            Section(
                "Timings",
                [Table([(k, f"{v} s") for k, v in timings.items()], ("stage", "wall time"))],
            )
        )
    if not sections:
        sections.append(Section("Nothing yet", [Text(f"No stage outputs found under {out}.")]))
    return build_report(
        out / "report.html",
        "vqturb pipeline report",
        sections,
        subtitle=f"outputs in {out.resolve()}",
    )
