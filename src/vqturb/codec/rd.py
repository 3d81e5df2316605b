"""Rate–distortion sweep: vqturb's token codec against Fourier, POD, SZ3, ZFP, the H.264, H.265
and AV1 video codecs and the mean floor.

Every method is measured on the same test fields at the same target sizes (bytes per field), with
the same metrics (:func:`field_metrics`). vqturb's own sizes are added to the targets, so each
baseline is also measured at exactly vqturb's bytes. The video codecs (tens of ffmpeg runs per
target) are measured at the sizes of vqturb's curve only (:data:`CURVE`, one point per number of
scales decoded), which is where the comparison is made. Results go to ``rd.json`` (everything),
``rd.md`` (a table and the equal-bytes comparison) and ``rd.png`` (relative L2 and spectrum error
against bits per value), written atomically.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vqturb.codec import baselines as B
from vqturb.metrics import psnr, relative_l2, spectrum_log_error
from vqturb.physics import stats
from vqturb.utils.fileio import atomic_open, atomic_write_json, atomic_write_text

DEFAULT_BPV: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
# the method name of vqturb's rate–distortion curve (its points differ in the scales decoded)
CURVE = "vqturb (entropy-coded)"
VIDEO_CODECS: tuple[str, ...] = ("h264", "h265", "av1")


@dataclass(frozen=True, eq=False)
class Point:
    """One method at one size, already decoded."""

    # method name, e.g. "vqturb (entropy-coded)"
    method: str
    # mean bytes per field, every per-field and per-file byte included
    bytes_per_field: float
    # [N, H, W] reconstruction in physical units
    recon: np.ndarray = field(repr=False)
    # what the encoder chose (JSON-safe)
    params: dict = field(default_factory=dict)


def field_metrics(recon: np.ndarray, ref: np.ndarray, value_range: float) -> dict[str, float]:
    """Distortion metrics of ``recon`` against ``ref`` (``[N, H, W]``), averaged over fields.

    Relative L2 ‖a−b‖/‖b‖; PSNR with one ``value_range`` for the whole dataset; max absolute
    error over all fields; energy-spectrum log error (mean over 1 ≤ k ≤ N/2, below Nyquist, of
    |log10 E_a − log10 E_b|, DESIGN.md "Physics"); enstrophy ratio ⟨½ω_a²⟩ / ⟨½ω_b²⟩.
    """
    recon = np.asarray(recon, dtype=np.float32)
    ref = np.asarray(ref, dtype=np.float32)
    kmax = min(ref.shape[-2:]) // 2
    e_a = stats.energy_spectrum(recon)
    e_b = stats.energy_spectrum(ref)
    return {
        "rel_l2": float(np.mean(relative_l2(recon, ref))),
        "psnr_db": float(np.mean(psnr(recon, ref, value_range))),
        "max_abs_err": float(np.max(np.abs(recon - ref))),
        "spectrum_log_err": float(np.mean(spectrum_log_error(e_a, e_b, kmax=kmax))),
        "enstrophy_ratio": float(
            np.mean(stats.enstrophy(recon)) / max(float(np.mean(stats.enstrophy(ref))), 1e-30)
        ),
    }


def rate_fields(bytes_per_field: float, shape: tuple[int, int]) -> dict[str, float]:
    """Bytes/field, bits/value and ratios against float32 and float64 storage."""
    n_values = shape[0] * shape[1]
    b = max(bytes_per_field, 1e-12)
    return {
        "bytes_per_field": float(bytes_per_field),
        "bits_per_value": float(8 * bytes_per_field / n_values),
        "ratio_vs_float32": float(4 * n_values / b),
        "ratio_vs_float64": float(8 * n_values / b),
    }


def baseline_methods(train: np.ndarray | None) -> dict[str, Callable[[np.ndarray, float], B.Coded]]:
    methods: dict[str, Callable[[np.ndarray, float], B.Coded]] = {
        "fourier": B.fourier,
        "zfp": B.zfp,
        "sz3": B.sz3,
        "sz3 (3-D stack)": B.sz3_stack,
    }
    if train is not None and len(train) > 1:
        methods["pod"] = B.POD(train)
    return methods


def video_methods(names: Sequence[str]) -> dict[str, B.VideoCodec]:
    """The video codecs ``names`` (keys of :data:`baselines.VIDEO_FORMATS`), labelled by codec
    and encoder, e.g. ``"h264 (libx264)"``; an ffmpeg without one raises InputError."""
    out = {}
    for name in names:
        v = B.VideoCodec(name)
        out[f"{name} ({v.fmt.encoder})"] = v
    return out


def rd_sweep(
    test: np.ndarray,
    *,
    train: np.ndarray | None = None,
    vqturb_points: Sequence[Point] = (),
    bits_per_value: Sequence[float] = DEFAULT_BPV,
    value_range: float | None = None,
    video: Sequence[str] = VIDEO_CODECS,
    extra: Mapping | None = None,
    progress: bool = True,
) -> dict:
    """Measure every baseline at every target and vqturb's points; returns the ``rd.json`` dict.

    Args:
        test: ``[N, H, W]`` reference fields (physical units).
        train: training fields for POD (omitted: no POD).
        vqturb_points: decoded vqturb results; their sizes are added to the targets.
        bits_per_value: target sizes for the baselines.
        value_range: PSNR range (default: max − min over ``test``).
        video: video codecs, measured at the sizes of vqturb's :data:`CURVE` points (or, without
            them, at the targets) over ``test`` as the frames of one video in their order.
        extra: more JSON-safe entries (throughput, model description) stored as is.
    """
    from vqturb.utils.progress import Progress

    test = np.asarray(test, dtype=np.float64)
    n, h, w = test.shape
    vr = float(value_range if value_range is not None else test.max() - test.min())
    targets = sorted({round(b * h * w / 8, 3) for b in bits_per_value})
    own = sorted({round(p.bytes_per_field, 3) for p in vqturb_points})
    curve = sorted({round(p.bytes_per_field, 3) for p in vqturb_points if p.method == CURVE})
    methods = baseline_methods(train)
    videos = video_methods(video)
    rows = []

    def add(method: str, target: float | None, coded_bytes: float, recon, params, seconds):
        rows.append(
            {
                "method": method,
                "target_bytes": target,
                "at_vqturb_size": target in own,
                **rate_fields(coded_bytes, (h, w)),
                **field_metrics(recon, test, vr),
                "params": params,
                "seconds": seconds,
            }
        )

    for p in vqturb_points:
        add(p.method, None, p.bytes_per_field, p.recon, p.params, None)
    floor = B.mean_only(test)
    add("mean-only", None, floor.n_bytes, floor.recon, floor.params, 0.0)
    all_targets = sorted(set(targets) | set(own))
    jobs = [(name, fn, t) for name, fn in methods.items() for t in all_targets]
    jobs += [(name, fn, t) for name, fn in videos.items() for t in (curve or all_targets)]
    with Progress(len(jobs), "rd sweep", "point", disable=not progress) as bar:
        for name, fn, t in jobs:
            t0 = time.perf_counter()
            c = fn(test, t)
            add(name, t, c.n_bytes, c.recon, c.params, time.perf_counter() - t0)
            bar.update(1, method=name)
    return {
        "n_fields": n,
        "field_shape": [h, w],
        "value_range": vr,
        "targets_bytes": all_targets,
        "vqturb_bytes": own,
        "rows": rows,
        "pod_basis_note": "POD basis bytes (float32 mean + modes) are shared, not per field: "
        "see params.basis_bytes",
        **(dict(extra) if extra else {}),
    }


# ------------------------------------------------------------------ reports


def _fmt(x, nd=3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if math.isinf(x) or math.isnan(x):
            return str(x)
        return f"{x:.{nd}g}"
    return str(x)


def equal_bytes_summary(result: Mapping) -> list[str]:
    """Lines comparing every baseline at each vqturb size with vqturb there."""
    lines = []
    rows = result["rows"]
    for vq in (r for r in rows if r["method"].startswith("vqturb")):
        size = round(vq["bytes_per_field"], 3)
        lines.append(f"- **{vq['method']}** at {size:g} bytes/field:")
        for r in rows:
            if r["target_bytes"] != size:
                continue
            over = (
                " (over target: the smallest it can reach)"
                if r["params"].get("over_target")
                else ""
            )
            d_l2 = r["rel_l2"] / max(vq["rel_l2"], 1e-30)
            d_sp = r["spectrum_log_err"] - vq["spectrum_log_err"]
            verdict = "vqturb better" if (d_l2 > 1 and d_sp > 0) else "baseline better on ≥1 metric"
            lines.append(
                f"  - {r['method']}: {r['bytes_per_field']:.4g} B, rel L2 {r['rel_l2']:.4g} "
                f"(×{d_l2:.3g} of vqturb's), spectrum err {r['spectrum_log_err']:.4g} "
                f"({d_sp:+.3g}) → {verdict}{over}"
            )
    return lines


def curve_table(result: Mapping) -> str:
    """Markdown table of vqturb's curve against every method at each point's bytes: relative L2
    / spectrum error / enstrophy ratio, the best classical method (lowest relative L2 among those
    within the size) and whether vqturb meets the target there (relative L2 no higher, spectrum
    error at most a third of that method's). Empty when there is no curve."""
    rows = result["rows"]
    curve = sorted((r for r in rows if r["method"] == CURVE), key=lambda r: r["bytes_per_field"])
    if not curve:
        return ""
    names = sorted({r["method"] for r in rows if r["target_bytes"] is not None})
    head = ["scales", "B/field", "vqturb", *names, "best classical", "target met"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def cell(r):
        flag = " (over)" if r["params"].get("over_target") else ""
        return f"{r['rel_l2']:.3f} / {r['spectrum_log_err']:.2f} / {r['enstrophy_ratio']:.2f}{flag}"

    for vq in curve:
        size = round(vq["bytes_per_field"], 3)
        at = {r["method"]: r for r in rows if r["target_bytes"] == size}
        fits = [r for r in at.values() if not r["params"].get("over_target")]
        best = min(fits, key=lambda r: r["rel_l2"], default=None)
        met = "-"
        if best is not None:
            ok = (
                vq["rel_l2"] <= best["rel_l2"]
                and vq["spectrum_log_err"] <= best["spectrum_log_err"] / 3
            )
            met = "yes" if ok else "no"
        cells = [str(vq["params"].get("scales_decoded", "")), f"{size:.4g}", cell(vq)]
        cells += [cell(at[n]) if n in at else "-" for n in names]
        cells += [best["method"] if best else "-", met]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def rd_markdown(result: Mapping) -> str:
    h, w = result["field_shape"]
    out = io.StringIO()
    out.write(f"# Rate–distortion: {result['n_fields']} test fields of {h}×{w}\n\n")
    if "description" in result:
        out.write(f"{result['description']}\n\n")
    out.write(
        f"PSNR uses one value range for the whole dataset: {result['value_range']:.6g}. "
        "Ratios are against float32 and float64 storage of the same fields.\n\n"
    )
    cols = [
        ("method", "method"),
        ("target B", "target_bytes"),
        ("B/field", "bytes_per_field"),
        ("bits/value", "bits_per_value"),
        ("ratio f32", "ratio_vs_float32"),
        ("ratio f64", "ratio_vs_float64"),
        ("rel L2", "rel_l2"),
        ("PSNR dB", "psnr_db"),
        ("max abs err", "max_abs_err"),
        ("spectrum err", "spectrum_log_err"),
        ("enstrophy ratio", "enstrophy_ratio"),
        ("params", "params"),
    ]
    out.write("| " + " | ".join(c for c, _ in cols) + " |\n")
    out.write("|" + "---|" * len(cols) + "\n")
    rows = sorted(result["rows"], key=lambda r: (r["method"], r["bytes_per_field"]))
    for r in rows:
        cells = []
        for _, key in cols:
            v = r.get(key)
            if key == "params":
                v = ", ".join(f"{k}={_fmt(x)}" for k, x in sorted(v.items())) if v else ""
            cells.append(_fmt(v, 4))
        out.write("| " + " | ".join(cells) + " |\n")
    table = curve_table(result)
    if table:
        out.write(
            "\n## vqturb's curve at equal bytes\n\nEach cell: relative L2 / spectrum error / "
            "enstrophy ratio; (over): the method cannot get that small and is shown at its "
            "smallest. Target: relative L2 no higher than the best classical method's, spectrum "
            "error at most a third of its.\n\n" + table
        )
    summary = equal_bytes_summary(result)
    if summary:
        out.write("\n## At vqturb's own size\n\n" + "\n".join(summary) + "\n")
    if "throughput" in result:
        out.write("\n## Throughput\n\n")
        for k, v in result["throughput"].items():
            out.write(f"- {k}: {_fmt(v, 4)}\n")
    if "notes" in result:
        out.write("\n## Notes\n\n" + "\n".join(f"- {n}" for n in result["notes"]) + "\n")
    return out.getvalue()


def rd_plot(result: Mapping, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    by_method: dict[str, list[dict]] = {}
    for r in result["rows"]:
        by_method.setdefault(r["method"], []).append(r)
    keys = ("rel_l2", "spectrum_log_err", "enstrophy_ratio")
    for name, rs in sorted(by_method.items()):
        rs = sorted(rs, key=lambda r: r["bits_per_value"])
        x = [r["bits_per_value"] for r in rs]
        style = dict(marker="o")
        if name == CURVE:  # one model, several numbers of scales decoded
            style = dict(marker="*", ms=12, lw=2.5, color="k")
        elif name.startswith("vqturb"):
            style = dict(marker="*", ms=12, ls="none")
        elif name == "mean-only":
            style = dict(marker="x", ms=9, ls="none", color="0.5")
        for ax, key in zip(axes, keys, strict=True):
            ax.plot(x, [r[key] for r in rs], label=name, **style)
    labels = ["relative L2", "energy-spectrum log10 error", "enstrophy ratio (1: exact)"]
    for ax, lab in zip(axes, labels, strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log" if ax is not axes[2] else "linear")
        ax.set_xlabel("bits per value")
        ax.set_ylabel(lab)
        ax.grid(True, which="both", alpha=0.3)
    axes[2].axhline(1.0, color="0.6", lw=1)
    axes[0].legend(fontsize=8)
    h, w = result["field_shape"]
    fig.suptitle(f"rate–distortion, {result['n_fields']} fields {h}×{w}")
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


def write_rd(out_dir: str | Path, result: Mapping) -> dict[str, Path]:
    """Write ``rd.json``, ``rd.md`` and ``rd.png`` into ``out_dir`` (each atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "rd.json", "md": out / "rd.md", "png": out / "rd.png"}
    atomic_write_json(paths["json"], result)
    atomic_write_text(paths["md"], rd_markdown(result))
    rd_plot(result, paths["png"])
    return paths
