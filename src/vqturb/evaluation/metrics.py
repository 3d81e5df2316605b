"""Rollout metrics: token statistics per scale, pixel-value histograms, physics and short-term skill.

Every function takes plain arrays and returns plain, JSON-safe Python (dicts of floats, ints and
lists), so the results go straight into ``metrics.json`` and the report.

Array conventions:
- token rows ``[..., T]`` hold unified token ids, scale by scale, row-major inside a scale
  (:mod:`vqturb.data.tokens_file`): scale ``k`` of side ``s_k`` owns the positions
  ``[Σ_{j<k} s_j², Σ_{j≤k} s_j²)`` and the unified id range ``[offset_k, offset_k + vocab_k)``;
- rollout fields ``[samples, time, H, W]`` in physical units (de-normalised vorticity), with
  ``time = 0`` the starting frame t0.

Distances between distributions are the Jensen–Shannon divergence in bits (in [0, 1]) and the
total-variation distance (in [0, 1]) of :mod:`vqturb.metrics`; physics diagnostics follow
DESIGN.md ("Physics": energy spectrum, enstrophy, spectrum error, vorticity PDF on fixed bins).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from jaxtyping import ArrayLike, Float, Int

from vqturb.data.tokens_file import scale_positions
from vqturb.metrics import (
    histogram,
    js_divergence,
    kl_divergence,
    relative_l2,
    spectrum_log_error,
    tv_distance,
)
from vqturb.physics import stats


def _f(x) -> float:
    return float(np.asarray(x))


def _list(x) -> list:
    return np.asarray(x, dtype=np.float64).tolist()


# ----------------------------------------------------------------------------- tokens


def token_histograms(
    tokens: Int[ArrayLike, "*batch t"],
    scales: Sequence[int],
    scale_offsets: Sequence[int],
    scale_vocab_sizes: Sequence[int],
) -> list[np.ndarray]:
    """Per-scale token histograms over each scale's own vocabulary range.

    Args:
        tokens: unified token ids ``[..., T]`` with ``T = Σ s²``.
        scales: side length of each scale.
        scale_offsets: first unified id of each scale.
        scale_vocab_sizes: number of ids of each scale.

    Returns:
        one probability vector per scale, of length ``scale_vocab_sizes[k]`` (sums to 1; ids
        outside the scale's range are not counted, see :func:`token_metrics`).
    """
    tokens = np.asarray(tokens)
    _check_token_layout(tokens, scales, scale_offsets, scale_vocab_sizes)
    flat = tokens.reshape(-1, tokens.shape[-1])
    hists = []
    for (a, b), off, v in zip(
        scale_positions(scales), scale_offsets, scale_vocab_sizes, strict=True
    ):
        local = flat[:, a:b].ravel().astype(np.int64) - int(off)
        local = local[(local >= 0) & (local < int(v))]
        counts = np.bincount(local, minlength=int(v)).astype(np.float64)
        hists.append(counts / max(counts.sum(), 1.0))
    return hists


def _check_token_layout(tokens, scales, scale_offsets, scale_vocab_sizes) -> None:
    n_tok = sum(int(s) ** 2 for s in scales)
    if tokens.shape[-1] != n_tok:
        raise ValueError(
            f"token rows have {tokens.shape[-1]} tokens, scales {tuple(scales)} need {n_tok}"
        )
    if not (len(scales) == len(scale_offsets) == len(scale_vocab_sizes)):
        raise ValueError("scales, scale_offsets and scale_vocab_sizes differ in length")


def token_metrics(
    generated: Int[ArrayLike, "*batch t"],
    reference: Int[ArrayLike, "*batch2 t"],
    scales: Sequence[int],
    scale_offsets: Sequence[int],
    scale_vocab_sizes: Sequence[int],
) -> dict:
    """Compare the token distributions of generated and reference rows, scale by scale.

    Returns a dict with
    - ``per_scale``: one entry per scale: ``scale`` (index), ``side``, ``vocab_size``,
      ``deterministic`` (vocab of one id), ``js``, ``tv``, ``hist_generated``, ``hist_reference``,
      ``out_of_range_generated`` (fraction of generated ids at that scale's positions that are not
      in its range: should be 0 for a model whose heads cover only their scale's range);
    - ``overall``: JS and TV of the histograms over the whole unified vocabulary;
    - ``mean_trainable``: the mean of the per-scale JS and TV over scales with more than one id.
    """
    generated = np.asarray(generated)
    reference = np.asarray(reference)
    _check_token_layout(generated, scales, scale_offsets, scale_vocab_sizes)
    _check_token_layout(reference, scales, scale_offsets, scale_vocab_sizes)
    hg = token_histograms(generated, scales, scale_offsets, scale_vocab_sizes)
    hr = token_histograms(reference, scales, scale_offsets, scale_vocab_sizes)
    flat_g = generated.reshape(-1, generated.shape[-1])
    per_scale = []
    for k, ((a, b), off, v) in enumerate(
        zip(scale_positions(scales), scale_offsets, scale_vocab_sizes, strict=True)
    ):
        ids = flat_g[:, a:b].astype(np.int64)
        oor = float(np.mean((ids < int(off)) | (ids >= int(off) + int(v)))) if ids.size else 0.0
        per_scale.append(
            {
                "scale": k,
                "side": int(scales[k]),
                "vocab_size": int(v),
                "deterministic": int(v) == 1,
                "js": _f(js_divergence(hg[k], hr[k])),
                "tv": _f(tv_distance(hg[k], hr[k])),
                "hist_generated": _list(hg[k]),
                "hist_reference": _list(hr[k]),
                "out_of_range_generated": oor,
            }
        )
    cg, cr = unified_histograms(generated, reference, scale_offsets, scale_vocab_sizes)
    trainable = [e for e in per_scale if not e["deterministic"]] or per_scale
    return {
        "per_scale": per_scale,
        "overall": {
            "js": _f(js_divergence(cg, cr)),
            "tv": _f(tv_distance(cg, cr)),
        },
        "mean_trainable": {
            "js": float(np.mean([e["js"] for e in trainable])),
            "tv": float(np.mean([e["tv"] for e in trainable])),
        },
    }


def unified_histograms(
    generated: Int[ArrayLike, "*batch t"],
    reference: Int[ArrayLike, "*batch2 t"],
    scale_offsets: Sequence[int],
    scale_vocab_sizes: Sequence[int],
) -> tuple[np.ndarray, np.ndarray]:
    """Token counts of every position of every row over the whole unified vocabulary.

    Returns:
        ``(counts_generated, counts_reference)``, each ``[V]`` with ``V = max(offset + vocab)``
        (widened to hold any larger id that occurs), float64 counts (not normalised).
    """
    generated = np.asarray(generated)
    reference = np.asarray(reference)
    v_total = int(
        max(int(o) + int(v) for o, v in zip(scale_offsets, scale_vocab_sizes, strict=True))
    )
    v_total = max(v_total, int(max(generated.max(initial=0), reference.max(initial=0))) + 1)
    cg = np.bincount(generated.ravel().astype(np.int64), minlength=v_total).astype(np.float64)
    cr = np.bincount(reference.ravel().astype(np.int64), minlength=v_total).astype(np.float64)
    return cg, cr


# The seed's smoothing of histograms before its JS, KL and TV (eval_nsp.py of the seed code)
SEED_EPS = 1e-10
KL_DIRECTION = "KL(ground truth || generated)"


def seed_token_metrics(
    generated: Int[ArrayLike, "*batch t"],
    reference: Int[ArrayLike, "*batch2 t"],
    scales: Sequence[int],
    scale_offsets: Sequence[int],
    scale_vocab_sizes: Sequence[int],
    *,
    eps: float = SEED_EPS,
) -> dict:
    """The seed's token-distribution metrics, per scale and overall.

    Definitions (the seed's ``compute_histogram_metrics``): the histograms of the ids at each
    scale's positions over that scale's id range (:func:`token_histograms`) and of every id over
    the unified vocabulary (:func:`unified_histograms`) are normalised, ε = ``eps`` is added to
    every bin of both, and they are normalised again; then

    - ``js_nats``: Jensen–Shannon divergence with natural logarithms (in [0, ln 2]);
    - ``kl_nats``: KL(ground truth ‖ generated) = Σ p_true log(p_true / p_gen), the direction the
      seed computes (the SPEC names no KL; its seed code is the definition): it is large where
      the truth has mass that the rollouts never produce;
    - ``tv``: ½ Σ |p_gen − p_true| of the smoothed histograms;
    - ``js_bits``: vqturb's JS (base 2, no smoothing, :func:`vqturb.metrics.js_divergence`) on the
      same histograms, for comparison with ``tokens`` in ``metrics.json``.

    Pass every frame as the seed does: the whole rollouts and ground-truth windows, t0 included
    (vqturb's own ``token_metrics`` leaves t0 out). Rows need not be paired: the histograms are
    of all tokens of each side.

    Returns:
        JSON-safe dict: ``token_js_nats``, ``token_kl_nats``, ``token_tv``, ``token_js_bits``
        (overall) and the same names with ``_per_scale`` (lists over scales, deterministic scales
        included, as the seed), plus ``eps`` and ``kl_direction``.
    """
    generated = np.asarray(generated)
    reference = np.asarray(reference)
    _check_token_layout(generated, scales, scale_offsets, scale_vocab_sizes)
    _check_token_layout(reference, scales, scale_offsets, scale_vocab_sizes)
    hg = token_histograms(generated, scales, scale_offsets, scale_vocab_sizes)
    hr = token_histograms(reference, scales, scale_offsets, scale_vocab_sizes)
    cg, cr = unified_histograms(generated, reference, scale_offsets, scale_vocab_sizes)

    def four(g, r) -> dict[str, float]:
        return {
            "token_js_nats": _f(js_divergence(g, r, base=np.e, eps=eps)),
            "token_kl_nats": _f(kl_divergence(r, g, eps=eps)),
            "token_tv": _f(tv_distance(g, r, eps=eps)),
            "token_js_bits": _f(js_divergence(g, r)),
        }

    out: dict = dict(four(cg, cr))
    per = [four(g, r) for g, r in zip(hg, hr, strict=True)]
    for name in list(out):
        out[f"{name}_per_scale"] = [e[name] for e in per]
    out["eps"] = float(eps)
    out["kl_direction"] = KL_DIRECTION
    return out


# ----------------------------------------------------------------------------- pixel values


# The seed's fixed colour range for vorticity (its videos use vmin, vmax = -10, 10)
SEED_VALUE_RANGE = (-10.0, 10.0)


def value_range(
    *fields: Float[ArrayLike, "..."] | None, margin: float = 0.05
) -> tuple[float, float]:
    """One symmetric value range ``(-a, a)`` for a dataset: ``a`` = max |value| (+ ``margin``).

    Pass the reference fields first; ``None`` entries are skipped. Vorticity is signed and roughly
    symmetric, so a symmetric range also gives the symmetric colour limits of the plots.
    """
    a = 0.0
    for f in fields:
        if f is not None and np.size(f):
            a = max(a, float(np.max(np.abs(f))))
    a = a * (1.0 + margin) if a > 0 else 1.0
    return (-a, a)


def pixel_bins(lo: float, hi: float, n_bins: int = 101) -> np.ndarray:
    """``n_bins + 1`` fixed, equally spaced bin edges on ``[lo, hi]``."""
    if not hi > lo:
        raise ValueError(f"empty value range [{lo}, {hi}]")
    return np.linspace(lo, hi, n_bins + 1)


def pixel_metrics(
    fields: Mapping[str, Float[ArrayLike, "..."] | None],
    edges: Float[ArrayLike, " nedges"],
) -> dict:
    """Pixel-value histograms on fixed bins and JS/TV between every pair of them.

    Args:
        fields: named arrays of any shape, e.g. ``{"generated": g, "reconstructed_gt": r,
            "raw_gt": x}``; ``None`` entries (raw GT not given) are skipped.
        edges: fixed bin edges (:func:`pixel_bins`); values outside go to the end bins.

    Returns:
        ``{"edges": [...], "hist": {name: probs}, "pairs": {"a_vs_b": {"js", "tv"}}}``.
    """
    hists = {
        name: np.asarray(histogram(np.asarray(x, dtype=np.float32), edges))
        for name, x in fields.items()
        if x is not None
    }
    names = list(hists)
    pairs = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            pairs[f"{a}_vs_{b}"] = {
                "js": _f(js_divergence(hists[a], hists[b])),
                "tv": _f(tv_distance(hists[a], hists[b])),
            }
    return {
        "edges": _list(edges),
        "hist": {k: _list(v) for k, v in hists.items()},
        "pairs": pairs,
    }


def vorticity_pdf(
    generated: Float[ArrayLike, "..."],
    reference: Float[ArrayLike, "..."],
    edges: Float[ArrayLike, " nedges"],
) -> dict:
    """Vorticity PDFs (probability density, integrates to 1 over the bins) and their JS divergence.

    Unlike :func:`pixel_metrics` this reports densities at bin centres, for a log-scale PDF plot
    whose tails show intermittency.
    """
    edges = np.asarray(edges, dtype=np.float64)
    width = np.diff(edges)
    pg = np.asarray(histogram(np.asarray(generated, np.float32), edges), np.float64)
    pr = np.asarray(histogram(np.asarray(reference, np.float32), edges), np.float64)
    return {
        "centers": _list(0.5 * (edges[1:] + edges[:-1])),
        "pdf_generated": _list(pg / width),
        "pdf_reference": _list(pr / width),
        "js": _f(js_divergence(pg, pr)),
        "tv": _f(tv_distance(pg, pr)),
    }


# ----------------------------------------------------------------------------- physics


def _kmax(h: int, w: int) -> int:
    # below Nyquist: shells beyond N/2 are only partly represented on the grid
    return min(h, w) // 2


def time_averaged_spectra(
    generated: Float[ArrayLike, "s t h w"],
    reference: Float[ArrayLike, "s2 t2 h w"],
    *,
    skip_first: bool = True,
) -> dict:
    """Energy spectra averaged over samples and rollout time, and their log error.

    Args:
        generated: generated fields ``[S, T, H, W]``.
        reference: ground-truth fields ``[S', T', H, W]``.
        skip_first: leave out ``t = 0`` (the shared starting frame) from both averages.

    Returns:
        ``{"k": [...], "generated": E_g(k), "reference": E_r(k), "spectrum_error": float,
        "kmax": int}``; the error is the mean over k = 1 … min(H, W)/2 of
        |log10 E_g − log10 E_r| (DESIGN.md).
    """
    generated = np.asarray(generated)
    reference = np.asarray(reference)
    g = generated[:, 1:] if skip_first and generated.shape[1] > 1 else generated
    r = reference[:, 1:] if skip_first and reference.shape[1] > 1 else reference
    eg = np.asarray(stats.energy_spectrum(g), np.float64).mean(axis=(0, 1))
    er = np.asarray(stats.energy_spectrum(r), np.float64).mean(axis=(0, 1))
    kmax = _kmax(*generated.shape[-2:])
    return {
        "k": list(range(eg.shape[-1])),
        "generated": _list(eg),
        "reference": _list(er),
        "spectrum_error": _f(spectrum_log_error(eg, er, kmax=kmax)),
        "kmax": kmax,
    }


SEED_MILESTONE_STEPS = (0, 1, 4, 9, 99, 499, 999)


def milestone_steps(n_steps: int) -> list[int]:
    """Rollout steps at which the seed shows its fields: 0, 1, 4, 9, 99, 499, 999 (its frames
    t = 1, 2, 5, 10, 100, 500, 1000, counted from 1), continued as 4999, 9999, 49999, …, those up
    to ``n_steps``, and ``n_steps`` itself so that the end of every rollout is shown."""
    steps = list(SEED_MILESTONE_STEPS)
    while steps[-1] < n_steps:
        steps.append(5 * (steps[-1] + 1) - 1 if len(steps) % 2 else 2 * (steps[-1] + 1) - 1)
    out = sorted({t for t in steps if t <= n_steps} | {int(n_steps)})
    return [t for t in out if t >= 0]


def _spectra_of(fields: np.ndarray) -> dict[str, np.ndarray]:
    """Per-step spectra averaged over samples, ``[T, nk]``, in both conventions."""
    return {
        "annulus_mean/kinetic_energy": np.asarray(
            stats.energy_spectrum_annulus_mean(fields), np.float64
        ).mean(axis=0),
        "annulus_mean/enstrophy": np.asarray(
            stats.enstrophy_spectrum_annulus_mean(fields), np.float64
        ).mean(axis=0),
        "shell_sum/kinetic_energy": np.asarray(stats.energy_spectrum(fields), np.float64).mean(
            axis=0
        ),
        "shell_sum/enstrophy": np.asarray(stats.enstrophy_spectrum(fields), np.float64).mean(
            axis=0
        ),
    }


def seed_spectra(
    generated: Float[ArrayLike, "n t h w"],
    reference: Float[ArrayLike, "s t2 h w"],
    *,
    reconstructed: Float[ArrayLike, "s t3 h w"] | None = None,
    steps: Sequence[int] | None = None,
) -> dict:
    """Kinetic-energy and enstrophy spectra in the seed's convention and in vqturb's, averaged over
    every frame (t0 included, as the seed's time average) and at milestone steps.

    Conventions (:mod:`vqturb.physics.stats`):

    - ``annulus_mean``: the seed's: the mean of ½|û|²+½|v̂|² (resp. ½|ω̂|²) over each annulus of
      wavenumbers in radians/pixel (K = 2π k / N), unnormalised FFT; ``k_radians_per_pixel`` holds
      the annulus centres (:func:`~vqturb.physics.stats.energy_spectrum_annulus_mean`);
    - ``shell_sum``: vqturb's: the sum over the shells k − ½ ≤ |k| < k + ½ of integer wavenumbers,
      ω̂ = fft2(ω)/(H W), adding up to ½⟨u²+v²⟩ (resp. ½⟨ω²⟩); ``k`` = 0, 1, ….

    Each spectrum is computed per frame, then averaged over samples (and, for ``time_averaged``,
    over steps), as the seed accumulates per-frame spectra.

    Args:
        generated: rollouts ``[N, T, H, W]``, t0 first (every start and member).
        reference: ground truth ``[S, T', H, W]`` (raw when given, else reconstructed).
        reconstructed: the decoded ground truth, when ``reference`` is the raw field.
        steps: milestone steps (default :func:`milestone_steps` of ``T − 1``).

    Returns:
        ``{"milestone_steps": [...], "annulus_mean": {"k_radians_per_pixel": [...],
        "kinetic_energy": Q, "enstrophy": Q}, "shell_sum": {"k": [...], "kinetic_energy": Q,
        "enstrophy": Q}}`` with ``Q = {"time_averaged": {name: [nk]}, "at_steps": {name: [one
        [nk] list or None per milestone step]}}`` for the names ``generated``, ``reference``
        (and ``reconstructed``); ``None`` where the ground truth has no frame at that step.
    """
    generated = np.asarray(generated)
    reference = np.asarray(reference)
    n_steps = generated.shape[1] - 1
    steps = milestone_steps(n_steps) if steps is None else [int(t) for t in steps]
    sources = {"generated": generated, "reference": reference}
    if reconstructed is not None:
        sources["reconstructed"] = np.asarray(reconstructed)
    spec = {name: _spectra_of(x) for name, x in sources.items()}
    centres, _ = stats.annulus_wavenumbers(*generated.shape[-2:])
    out: dict = {
        "milestone_steps": steps,
        "annulus_mean": {"k_radians_per_pixel": _list(centres)},
        "shell_sum": {"k": list(range(spec["generated"]["shell_sum/enstrophy"].shape[-1]))},
    }
    for conv in ("annulus_mean", "shell_sum"):
        for qty in ("kinetic_energy", "enstrophy"):
            key = f"{conv}/{qty}"
            out[conv][qty] = {
                "time_averaged": {n: _list(v[key].mean(axis=0)) for n, v in spec.items()},
                "at_steps": {
                    n: [_list(v[key][t]) if 0 <= t < v[key].shape[0] else None for t in steps]
                    for n, v in spec.items()
                },
            }
    return out


def time_series(
    generated: Float[ArrayLike, "n t h w"],
    reference: Float[ArrayLike, "s t2 h w"],
    *,
    reconstructed: Float[ArrayLike, "s t3 h w"] | None = None,
) -> dict:
    """Enstrophy and spectrum error against rollout step: does the rollout stay on the attractor?

    At each step the energy spectrum of the generated fields (averaged over samples) is compared
    with the reference spectrum averaged over samples *and all steps* (the attractor's
    climatology, which does not depend on the phase of one trajectory) and with the reference at
    the same step (where it exists).

    Returns:
        ``{"step": [...], "enstrophy_generated": [...], "enstrophy_reference": [...] (length T'),
        "enstrophy_generated_std": [...], "spectrum_error_vs_climatology": [...],
        "spectrum_error_vs_same_step": [...] (length min(T, T'))}``. With ``reconstructed`` (the
        ground truth passed through the autoencoder, when ``reference`` is the raw field) also
        ``"enstrophy_reconstructed"`` and ``"spectrum_error_reconstructed_vs_climatology"``: the
        level a perfect token model would reach, which separates the autoencoder's error from the
        rollout's drift.
    """
    generated = np.asarray(generated)
    reference = np.asarray(reference)
    zg = np.asarray(stats.enstrophy(generated), np.float64)  # [S, T]
    zr = np.asarray(stats.enstrophy(reference), np.float64)
    eg = np.asarray(stats.energy_spectrum(generated), np.float64).mean(axis=0)  # [T, nk]
    er_t = np.asarray(stats.energy_spectrum(reference), np.float64).mean(axis=0)  # [T', nk]
    er_clim = er_t.mean(axis=0)
    kmax = _kmax(*generated.shape[-2:])
    n = min(eg.shape[0], er_t.shape[0])
    out = {
        "step": list(range(generated.shape[1])),
        "enstrophy_generated": _list(zg.mean(axis=0)),
        "enstrophy_generated_std": _list(zg.std(axis=0)),
        "enstrophy_reference": _list(zr.mean(axis=0)),
        "spectrum_error_vs_climatology": _list(spectrum_log_error(eg, er_clim[None], kmax=kmax)),
        "spectrum_error_vs_same_step": _list(spectrum_log_error(eg[:n], er_t[:n], kmax=kmax)),
    }
    if reconstructed is not None:
        rec = np.asarray(reconstructed)
        out["enstrophy_reconstructed"] = _list(
            np.asarray(stats.enstrophy(rec), np.float64).mean(axis=0)
        )
        ec = np.asarray(stats.energy_spectrum(rec), np.float64).mean(axis=0)
        out["spectrum_error_reconstructed_vs_climatology"] = _list(
            spectrum_log_error(ec, er_clim[None], kmax=kmax)
        )
    return out


def _rel_l2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(relative_l2(a, b), np.float64)


def short_term_skill(
    generated: Float[ArrayLike, "s m t h w"],
    reference: Float[ArrayLike, "s t2 h w"],
    n_steps: int = 10,
    *,
    reconstructed: Float[ArrayLike, "s t3 h w"] | None = None,
) -> dict:
    """Forecast skill for the first steps: relative L2 of single rollouts and of the ensemble mean,
    against persistence (t0 held fixed), in two spaces.

    * against ``reference`` (the raw fields when given, else the reconstructed ones): keys
      ``rel_l2_generated``, ``rel_l2_ensemble_mean``, ``rel_l2_persistence``;
    * in the decoder's own space (truth = the decoded true tokens of t + k, persistence = the
      decoded tokens of t0; ``reconstructed``, or ``reference`` when it is absent): the same keys
      with ``_recon`` appended. No decoded forecast can beat raw persistence by more than the
      decoder's own error allows; this space scores the token model alone.

    Args:
        generated: rollouts ``[S, M, T, H, W]``: ``M`` ensemble members per start, each started
            from ``reference[:, 0]``'s tokens.
        reference: ground truth ``[S, T', H, W]``.
        n_steps: how many steps after t0 to score (clipped to what the arrays hold).
        reconstructed: the ground truth decoded from its tokens ``[S, T'', H, W]``, when
            ``reference`` is the raw field; also gives ``rel_l2_floor`` (its error against the
            raw field: the best a decoder-limited model can do).

    Returns:
        JSON-safe dict: ``step`` ``[1..K]``, the lists above (means over starts and members),
        ``rel_l2_generated_per_sample`` (``[S·M][K]``), ``steps_better_than_persistence`` /
        ``n_steps_better_than_persistence`` (leading / all steps where single rollouts beat
        persistence against ``reference``) and the same for the ensemble mean in the decoder's
        space (``..._ensemble_recon``).
    """
    generated = np.asarray(generated)
    reference = np.asarray(reference)
    rec = reference if reconstructed is None else np.asarray(reconstructed)
    k = min(n_steps, generated.shape[2] - 1, reference.shape[1] - 1, rec.shape[1] - 1)
    keys = ("rel_l2_generated", "rel_l2_ensemble_mean", "rel_l2_persistence")
    if k < 1:
        out: dict = {"step": [], "rel_l2_generated_per_sample": []}
        out.update({n: [] for n in keys})
        out.update({n + "_recon": [] for n in keys})
        for n in ("steps_better_than_persistence", "steps_better_than_persistence_ensemble_recon"):
            out[n] = 0
            out["n_" + n] = 0
        return out
    gen = generated[:, :, 1 : k + 1]

    def space(truth_all: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        truth = truth_all[:, 1 : k + 1]
        eg = _rel_l2(gen, truth[:, None])  # [S, M, K]
        ee = _rel_l2(gen.mean(axis=1), truth)  # [S, K]
        ep = _rel_l2(np.broadcast_to(truth_all[:, :1], truth.shape), truth)  # [S, K]
        return eg, ee, ep

    def lead(better: np.ndarray) -> int:
        return int(np.argmin(better)) if not better.all() else int(better.size)

    eg, ee, ep = space(reference)
    rg, re_, rp = space(rec)
    better = eg.mean((0, 1)) < ep.mean(0)
    better_ens = re_.mean(0) < rp.mean(0)
    out = {
        "step": list(range(1, k + 1)),
        "rel_l2_generated": _list(eg.mean((0, 1))),
        "rel_l2_ensemble_mean": _list(ee.mean(0)),
        "rel_l2_persistence": _list(ep.mean(0)),
        "rel_l2_generated_recon": _list(rg.mean((0, 1))),
        "rel_l2_ensemble_mean_recon": _list(re_.mean(0)),
        "rel_l2_persistence_recon": _list(rp.mean(0)),
        "rel_l2_generated_per_sample": eg.reshape(-1, k).tolist(),
        "n_members": int(generated.shape[1]),
        "steps_better_than_persistence": lead(better),
        "n_steps_better_than_persistence": int(better.sum()),
        "steps_better_than_persistence_ensemble_recon": lead(better_ens),
        "n_steps_better_than_persistence_ensemble_recon": int(better_ens.sum()),
    }
    if reconstructed is not None:
        out["rel_l2_floor"] = _list(_rel_l2(rec[:, 1 : k + 1], reference[:, 1 : k + 1]).mean(0))
    return out


def enstrophy_range_kept(
    generated: Float[ArrayLike, "n t h w"],
    reconstructed: Float[ArrayLike, "s t2 h w"],
    *,
    margin: float = 0.1,
) -> dict:
    """Does the rollout stay physical? The fraction of steps (after t0) at which the mean enstrophy
    of all rollouts lies inside the reconstructed ground truth's range (min–max over its frames,
    widened by ``margin``: ``[(1 − margin)·min, (1 + margin)·max]``).

    Args:
        generated: rollouts ``[N, T, H, W]`` (every start and member), t0 first.
        reconstructed: decoded ground-truth frames ``[S, T', H, W]`` (the held-out frames).
        margin: relative widening of the range.

    Returns:
        ``{"range": [lo, hi], "fraction_in_range": float, "n_steps": int,
        "first_step_outside": int | None}``.
    """
    zg = np.asarray(stats.enstrophy(np.asarray(generated)), np.float64).mean(axis=0)[1:]
    zr = np.asarray(stats.enstrophy(np.asarray(reconstructed)), np.float64).ravel()
    lo, hi = (1.0 - margin) * float(zr.min()), (1.0 + margin) * float(zr.max())
    inside = (zg >= lo) & (zg <= hi)
    outside = np.flatnonzero(~inside)
    return {
        "range": [lo, hi],
        "margin": float(margin),
        "fraction_in_range": float(inside.mean()) if inside.size else 1.0,
        "n_steps": int(inside.size),
        "first_step_outside": int(outside[0]) + 1 if outside.size else None,
    }
