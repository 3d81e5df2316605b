"""Figures for the VQ-VAE trainer, the codec and NSP rollouts (PNG, written atomically).

Every function takes plain arrays or the dicts of :mod:`vqturb.evaluation.metrics`, writes one
PNG to ``path`` and returns the path. Figures are built with ``matplotlib.figure.Figure`` and the
Agg canvas directly, never through ``pyplot``: nothing is registered in pyplot's global figure
list, so no figure stays open, no GUI backend is touched, and the functions are safe to call from a
training loop or a worker thread.

Fields are drawn with ``RdBu_r`` on symmetric colour limits shared by every panel of a figure
(vorticity is signed: white is zero), ``origin="lower"`` (y upwards, as on [0, 2π)²).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from jaxtyping import ArrayLike, Float
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vqturb.utils.fileio import atomic_path

CMAP = "RdBu_r"
DPI = 100
SORT_TOKENS_ABOVE = 64  # token histograms over more ids than this are drawn as rank plots


def new_figure(w: float, h: float) -> Figure:
    """An empty ``w`` × ``h`` inch figure on an Agg canvas (not registered with pyplot)."""
    fig = Figure(figsize=(w, h), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically and release its memory."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    fig.clear()
    return path


def symmetric_limit(*fields: ArrayLike | None) -> float:
    """Largest |value| over the fields: the shared colour limit ``(-v, v)``."""
    v = max(
        (float(np.nanmax(np.abs(f))) for f in fields if f is not None and np.any(np.isfinite(f))),
        default=1.0,
    )
    return v if v > 0 else 1.0


def _cmap():
    from matplotlib import colormaps

    # NaN (no data, e.g. no ground truth beyond the end of a trajectory) shows as light grey
    return colormaps[CMAP].with_extremes(bad="0.85")


def _label(name: str) -> str:
    """``"reconstructed_gt"`` -> ``"reconstructed GT"``."""
    words = ["GT" if w == "gt" else w for w in name.split("_")]
    return " ".join(words)


def _as_stack(x: ArrayLike) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x[None] if x.ndim == 2 else x


# ----------------------------------------------------------------------------- trainer figures


def plot_reconstructions(
    inputs: Float[ArrayLike, "b h w"],
    recons: Float[ArrayLike, "b h w"],
    path: str | os.PathLike,
    *,
    max_images: int = 4,
    title: str | None = None,
) -> Path:
    """Inputs (top row), reconstructions (middle) and errors (bottom) for up to ``max_images`` fields.

    Args:
        inputs: ``[B, H, W]`` fields (any units; normalised is fine).
        recons: ``[B, H, W]`` reconstructions of ``inputs``, same units.
        path: output PNG.
        max_images: columns drawn (the first ones of the batch).
        title: optional suptitle (e.g. ``"step 1200"``).

    Inputs and reconstructions share one symmetric colour scale; the error row has its own,
    so that small errors stay visible. Each column title gives that field's relative L2.
    """
    x = _as_stack(inputs)[:max_images]
    y = _as_stack(recons)[:max_images]
    n = x.shape[0]
    vmax = symmetric_limit(x, y)
    err = y - x
    emax = symmetric_limit(err)
    fig = new_figure(2.2 * n + 0.8, 6.6)
    axes = fig.subplots(3, n, squeeze=False)
    for j in range(n):
        rel = np.linalg.norm(err[j]) / max(np.linalg.norm(x[j]), 1e-30)
        for i, (img, lim) in enumerate(((x[j], vmax), (y[j], vmax), (err[j], emax))):
            ax = axes[i, j]
            im = ax.imshow(img, cmap=CMAP, vmin=-lim, vmax=lim, origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 1:
                ax.set_title(f"rel L2 {rel:.3f}", fontsize=8)
            if j == 0:
                ax.set_ylabel(("input", "reconstruction", "error")[i])
            if j == n - 1:
                fig.colorbar(im, ax=axes[i, :].tolist(), shrink=0.85)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_codebook_usage(
    usage_per_scale: Sequence[ArrayLike] | Mapping[str, ArrayLike],
    path: str | os.PathLike,
    *,
    title: str | None = None,
) -> Path:
    """Codebook usage: one panel per scale with the count (or frequency) of every code, sorted.

    Args:
        usage_per_scale: per scale, a 1-D array of counts per code id (length = codebook size);
            a sequence (panels named "scale 0", ...) or a mapping name -> counts.
        path: output PNG.
        title: optional suptitle.

    Codes are sorted by usage (a rank plot), so dead codes show as the flat zero tail; each panel
    title gives the used fraction and the perplexity exp(H) of the usage distribution.
    """
    items = (
        list(usage_per_scale.items())
        if isinstance(usage_per_scale, Mapping)
        else [(f"scale {i}", u) for i, u in enumerate(usage_per_scale)]
    )
    n = len(items)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig = new_figure(3.6 * cols, 2.6 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, (name, u) in zip(axes, items, strict=False):
        u = np.asarray(u, dtype=np.float64).ravel()
        p = u / max(u.sum(), 1e-30)
        nz = p[p > 0]
        perplexity = float(np.exp(-(nz * np.log(nz)).sum())) if nz.size else 0.0
        ax.bar(np.arange(u.size), np.sort(u)[::-1], width=1.0, color="C0")
        ax.set_title(
            f"{name}: {np.count_nonzero(u)}/{u.size} used, ppl {perplexity:.1f}", fontsize=9
        )
        ax.set_xlabel("code rank")
        ax.set_ylabel("count")
    for ax in axes[n:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_spectra(
    k: ArrayLike | Sequence[int],
    curves: Mapping[str, ArrayLike | Sequence[float]],
    path: str | os.PathLike,
    *,
    title: str | None = None,
    ylabel: str = "E(k)",
    kmax: int | None = None,
    xlabel: str = "wavenumber k",
) -> Path:
    """Log-log spectra (e.g. ``{"true": E_true, "reconstructed": E_rec}``) against wavenumber.

    Args:
        k: integer wavenumbers, shape ``[nk]`` (``vqturb.physics.stats.energy_spectrum`` gives
            shells k = 0, 1, …, so ``np.arange(nk)``).
        curves: name -> spectrum ``[nk]`` (or ``[..., nk]``, averaged over leading axes).
        path: output PNG.
        title: optional title.
        ylabel: y-axis label.
        kmax: draw a dotted line at this wavenumber (e.g. Nyquist N/2).
        xlabel: x-axis label (e.g. for wavenumbers in radians/pixel).

    The k = 0 shell and non-positive values are left out (log axes).
    """
    k = np.asarray(k, dtype=np.float64)
    fig = new_figure(5.0, 3.8)
    ax = fig.subplots()
    for name, e in curves.items():
        e = np.asarray(e, dtype=np.float64)
        e = e.reshape(-1, e.shape[-1]).mean(0)
        m = (k > 0) & (e > 0)
        ax.loglog(k[m], e[m], label=name)
    if kmax is not None:
        ax.axvline(kmax, color="0.5", ls=":", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return save_figure(fig, path)


# ----------------------------------------------------------------------------- rollout figures


def plot_token_histograms(token_metrics: Mapping, path: str | os.PathLike) -> Path:
    """Per-scale token histograms, generated vs reference, from :func:`metrics.token_metrics`.

    One panel per scale with more than one id (deterministic scales have nothing to show); titles
    give the JS divergence and TV distance.
    """
    per = [e for e in token_metrics["per_scale"] if not e["deterministic"]] or list(
        token_metrics["per_scale"]
    )
    n = len(per)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig = new_figure(4.0 * cols, 2.8 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, e in zip(axes, per, strict=False):
        hg = np.asarray(e["hist_generated"])
        hr = np.asarray(e["hist_reference"])
        ids = np.arange(hg.size)
        xlabel = "token id within scale"
        if hg.size > SORT_TOKENS_ABOVE:
            # large vocabularies: order ids by ground-truth frequency, so the truth is a falling
            # curve and the generated frequencies scatter around it (an id-ordered overlay of
            # hundreds of spikes is unreadable)
            order = np.argsort(-hr, kind="stable")
            hg, hr = hg[order], hr[order]
            xlabel = "token rank (by ground-truth frequency)"
        ax.step(ids, hr, where="mid", label="ground truth", color="k", lw=1.2)
        ax.step(ids, hg, where="mid", label="generated", color="C3", lw=1.0, alpha=0.85)
        ax.set_title(
            f"scale {e['scale']} ({e['side']}×{e['side']}, {e['vocab_size']} ids): "
            f"JS {e['js']:.3f}, TV {e['tv']:.3f}",
            fontsize=8,
        )
        ax.set_xlabel(xlabel)
        ax.set_ylabel("frequency")
    for ax in axes[n:]:
        ax.set_visible(False)
    axes[0].legend(fontsize=8)
    o = token_metrics.get("overall")
    if o:
        fig.suptitle(f"token distributions; overall JS {o['js']:.3f}, TV {o['tv']:.3f}")
    return save_figure(fig, path)


def plot_pixel_histograms(pixel_metrics: Mapping, path: str | os.PathLike) -> Path:
    """Pixel-value histograms on the fixed bins of :func:`metrics.pixel_metrics` (log y-axis)."""
    edges = np.asarray(pixel_metrics["edges"])
    centers = 0.5 * (edges[1:] + edges[:-1])
    fig = new_figure(5.5, 3.8)
    ax = fig.subplots()
    styles = {"raw_gt": ("k", "-"), "reconstructed_gt": ("C0", "--"), "generated": ("C3", "-")}
    for name, h in pixel_metrics["hist"].items():
        h = np.asarray(h)
        color, ls = styles.get(name, (None, "-"))
        m = h > 0
        ax.semilogy(centers[m], h[m], label=_label(name), color=color, ls=ls)
    lines = [
        f"{_label(k.replace('_vs_', ' vs '))}: JS {v['js']:.3f}, TV {v['tv']:.3f}"
        for k, v in pixel_metrics["pairs"].items()
    ]
    if lines:
        ax.set_title("\n".join(lines), fontsize=7)
    ax.set_xlabel("vorticity ω")
    ax.set_ylabel("probability per bin")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_vorticity_pdf(pdf: Mapping, path: str | os.PathLike) -> Path:
    """Vorticity PDFs (log density) from :func:`metrics.vorticity_pdf`: the tails show extremes."""
    c = np.asarray(pdf["centers"])
    fig = new_figure(5.0, 3.8)
    ax = fig.subplots()
    for key, label, color in (
        ("pdf_reference", "ground truth", "k"),
        ("pdf_generated", "generated", "C3"),
    ):
        p = np.asarray(pdf[key])
        m = p > 0
        ax.semilogy(c[m], p[m], label=label, color=color)
    ax.set_title(f"vorticity PDF: JS {pdf['js']:.3f}, TV {pdf['tv']:.3f}", fontsize=9)
    ax.set_xlabel("vorticity ω")
    ax.set_ylabel("PDF")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def plot_comparison_grid(
    rows: Mapping[str, Float[ArrayLike, "t h w"] | None],
    times: Sequence[int],
    path: str | os.PathLike,
    *,
    vlim: float | None = None,
    title: str | None = None,
) -> Path:
    """Fields at chosen times: one row per source (raw GT, reconstructed GT, generated), one column
    per time, all on one symmetric ``RdBu_r`` colour scale.

    Args:
        rows: name -> fields ``[len(times), H, W]`` (``None`` rows are skipped).
        times: the step of each column (labels only).
        path: output PNG.
        vlim: colour limit; default max |value| over every panel.
        title: optional suptitle.
    """
    rows = {k: _as_stack(v) for k, v in rows.items() if v is not None}
    n_r, n_c = len(rows), len(times)
    for name, v in rows.items():
        if v.shape[0] != n_c:
            raise ValueError(f"row {name!r} has {v.shape[0]} fields for {n_c} times")
    vlim = symmetric_limit(*rows.values()) if vlim is None else vlim
    fig = new_figure(2.0 * n_c + 1.0, 2.0 * n_r + 0.4)
    axes = fig.subplots(n_r, n_c, squeeze=False)
    im = None
    for i, (name, v) in enumerate(rows.items()):
        for j, t in enumerate(times):
            ax = axes[i, j]
            im = ax.imshow(v[j], cmap=_cmap(), vmin=-vlim, vmax=vlim, origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"t = {t}", fontsize=9)
            if j == 0:
                ax.set_ylabel(_label(name), fontsize=9)
    if im is not None:
        fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8).set_label("ω", rotation=0)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_time_series(ts: Mapping, path: str | os.PathLike) -> Path:
    """Enstrophy (left) and spectrum error (right) against rollout step, from
    :func:`metrics.time_series`: a rollout that drifts off the attractor shows growing curves."""
    fig = new_figure(9.0, 3.6)
    ax1, ax2 = fig.subplots(1, 2)
    zg = np.asarray(ts["enstrophy_generated"])
    zs = np.asarray(ts.get("enstrophy_generated_std", np.zeros_like(zg)))
    zr = np.asarray(ts["enstrophy_reference"])
    sg = np.arange(zg.size)
    ax1.plot(np.arange(zr.size), zr, color="k", label="ground truth")
    ax1.plot(sg, zg, color="C3", label="generated (mean)")
    ax1.fill_between(sg, zg - zs, zg + zs, color="C3", alpha=0.2, lw=0)
    if "enstrophy_reconstructed" in ts:
        zc = np.asarray(ts["enstrophy_reconstructed"])
        ax1.plot(np.arange(zc.size), zc, color="C0", ls=":", label="reconstructed GT")
    ax1.set_xlabel("rollout step")
    ax1.set_ylabel("enstrophy ½⟨ω²⟩")
    ax1.legend(fontsize=8)
    ax1.grid(True, alpha=0.3)
    e_c = np.asarray(ts["spectrum_error_vs_climatology"])
    e_s = np.asarray(ts["spectrum_error_vs_same_step"])
    ax2.plot(np.arange(e_c.size), e_c, color="C3", label="vs GT climatology")
    ax2.plot(np.arange(e_s.size), e_s, color="C1", ls="--", label="vs GT at same step")
    if "spectrum_error_reconstructed_vs_climatology" in ts:
        e_r = np.asarray(ts["spectrum_error_reconstructed_vs_climatology"])
        ax2.plot(np.arange(e_r.size), e_r, color="C0", ls=":", label="reconstructed GT")
    ax2.set_xlabel("rollout step")
    ax2.set_ylabel("spectrum error (mean |Δlog10 E|)")
    ax2.legend(fontsize=8)
    ax2.grid(True, alpha=0.3)
    return save_figure(fig, path)


def plot_skill(skill: Mapping, path: str | os.PathLike, *, title: str | None = None) -> Path:
    """Relative L2 to the ground truth for the first steps: model (and its ensemble mean when
    present) vs persistence (t0 held fixed), and the reconstruction floor when present, from
    :func:`metrics.short_term_skill`."""
    fig = new_figure(5.0, 3.8)
    ax = fig.subplots()
    steps = np.asarray(skill["step"])
    ax.plot(steps, skill["rel_l2_generated"], "o-", color="C3", label="NSP rollout")
    for row in skill.get("rel_l2_generated_per_sample", []):
        ax.plot(steps, row, color="C3", alpha=0.25, lw=0.8)
    if skill.get("rel_l2_ensemble_mean"):
        ax.plot(steps, skill["rel_l2_ensemble_mean"], "D-", color="C2", label="ensemble mean")
    ax.plot(steps, skill["rel_l2_persistence"], "s--", color="k", label="persistence (t0)")
    if "rel_l2_floor" in skill:
        f = np.asarray(skill["rel_l2_floor"])
        ax.plot(steps[: f.size], f, ":", color="C0", label="reconstructed GT")
    ax.set_xlabel("rollout step")
    ax.set_ylabel("relative L2 to ground truth")
    if title:
        ax.set_title(title, fontsize=9)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
