"""NSP rollout evaluation: roll out t0 -> t_n in token space, decode, measure, draw, report.

Pipeline of :func:`evaluate_nsp` (the library function behind ``vqturb eval-nsp``):

``vqturb eval-nsp --reanalyze DIR`` is :func:`reanalyze_nsp`: steps 4-5 again from the token
trajectories a previous run saved, without generating.

1. load the tokens file, the NSP model and the VQ-VAE (checked against each other);
2. pick ``n_samples`` starting frames from the tokens file's *test* rows, by trajectory (the one
   split rule of :mod:`vqturb.data.splits`, the same the VQ-VAE and NSP runs used, so neither
   model saw these trajectories in training), and score the model teacher-forced on the held-out
   pairs against copying t0;
3. roll out ``n_ensemble`` members from every start, all at once, each frame generated from the
   previous one (batched, jitted,
   ``lax.scan`` in chunks so that a progress bar can show frames done);
4. decode generated and ground-truth tokens through the VQ-VAE (jitted, batched) and read the raw
   fields when ``data_dir`` is given;
5. compute every metric of :mod:`vqturb.evaluation.metrics`, write figures, side-by-side videos,
   the token trajectories (``tokens_rollout.npz``), ``metrics.json`` and ``report.html``.

:func:`vqturb.evaluation.rollout_report.evaluate_rollouts` is step 5 alone, on token arrays, for
callers that roll out themselves; :func:`vqturb.evaluation.rollout_metrics.rollout_metrics` is its
numbers only. Steps 1-2 live in :mod:`vqturb.evaluation.heldout`, 3-4 in
:mod:`vqturb.evaluation.rollout`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vqturb.data.tokens_file import TokensFile
from vqturb.errors import InputError
from vqturb.evaluation.heldout import choose_starts, ground_truth_windows, heldout_frames
from vqturb.evaluation.metrics import SEED_VALUE_RANGE
from vqturb.evaluation.rollout import rollout_tokens, vqvae_decoder
from vqturb.evaluation.rollout_report import evaluate_rollouts
from vqturb.evaluation.teacher_forced import heldout_pairs, teacher_forced_accuracy


def evaluate_nsp(
    nsp_checkpoint: str | os.PathLike,
    vqvae_checkpoint: str | os.PathLike,
    tokens_path: str | os.PathLike,
    output_dir: str | os.PathLike = "eval_nsp",
    *,
    n_samples: int = 4,
    n_ensemble: int = 4,
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
    value_range: tuple[float, float] | str | None = None,
    progress: bool = True,
) -> dict:
    """Roll out the NSP model from held-out frames, decode, and write every evaluation output.

    Args:
        nsp_checkpoint: ``vqturb train-nsp`` checkpoint (kind ``"nsp"``).
        vqvae_checkpoint: the VQ-VAE that made the tokens (its hash must match the tokens file).
        tokens_path: ``vqturb tokenizer save`` output.
        output_dir: folder for videos, figures, ``tokens_rollout.npz``, ``metrics.json``,
            ``report.html``.
        n_samples: starting frames (dealt over held-out trajectories).
        n_ensemble: rollouts from each starting frame (different sampling keys); their mean is
            the ensemble-mean forecast of the skill.
        n_steps: frames generated after t0.
        temperature, top_k, top_p: sampling (temperature 0 = greedy).
        seed: PRNG seed of the sampling.
        data_dir: raw dataset the tokens were made from: adds raw-GT comparisons.
        var: variable name in the raw files.
        chunk: frames per jitted scan chunk (progress granularity).
        skill_steps: steps scored against persistence.
        fps: video frame rate.
        decode_batch: VQ-VAE decoding batch.
        value_range: fixed value range of the dataset for pixel bins and colours, ``(lo, hi)``
            or ``"seed"`` (the seed's fixed ±10, :data:`SEED_VALUE_RANGE`); default (``None`` or
            ``"auto"``): from the ground truth of these rollouts.
        progress: progress bars on stderr.

    Returns:
        the metrics dict (also in ``output_dir/metrics.json``).
    """
    import jax.random as jr

    from vqturb import checkpoint

    if n_samples < 1 or n_steps < 1 or n_ensemble < 1:
        raise InputError(
            None,
            "--n_samples/--n_ensemble/--n_steps",
            f"{n_samples}/{n_ensemble}/{n_steps}",
            "positive integers",
        )
    if not temperature >= 0 or temperature == float("inf"):  # NaN fails both comparisons
        raise InputError(None, "--temperature", f"{temperature}", "a finite number >= 0")
    if chunk < 1:
        raise InputError(None, "--chunk", f"{chunk}", "a positive number of frames per scan")
    if top_k is not None and top_k < 1:
        raise InputError(None, "--top_k", f"{top_k}", "a positive integer")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise InputError(None, "--top_p", f"{top_p}", "a number in (0, 1]")
    value_range = resolve_value_range(value_range)
    tokens = TokensFile.read(tokens_path)
    tokens.check_checkpoint(vqvae_checkpoint)
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

    nsp_meta = nsp_header.get("meta", {})
    trained_on = nsp_meta.get("tokens_path")
    if trained_on and Path(trained_on).resolve() != Path(tokens_path).resolve():
        # tokens of another dataset (tokenizer save --vocab_from): the model saw none of it
        split = f"all frames (a dataset the NSP model never trained on; it trained on {trained_on})"
        frames = {
            int(i): np.sort(tokens.time_index[tokens.trajectory_id == i])
            for i in np.unique(tokens.trajectory_id)
        }
    else:
        split, frames = heldout_frames(tokens, nsp_meta)
    starts = choose_starts(frames, n_samples, n_steps)
    if len(set(starts)) < len(starts):
        print(
            f"eval-nsp: note: {n_samples} samples from {len(set(starts))} distinct starting frames "
            "(the test trajectories hold no more): some start from the same frame with "
            "different random draws",
            file=sys.stderr,
        )
    gt_tokens = ground_truth_windows(tokens, starts, n_steps)
    rows = tokens.row_of()
    t0 = np.repeat(np.stack([tokens.indices[rows[st]] for st in starts]), n_ensemble, axis=0)

    gen_tokens, timing = rollout_tokens(
        nsp, t0, n_steps, key=jr.key(seed), temperature=temperature, top_k=top_k, top_p=top_p,
        chunk=chunk, progress=progress,
    )  # fmt: skip

    teacher = teacher_forced_accuracy(nsp, *heldout_pairs(tokens, frames))

    raw = None if data_dir is None else _read_raw(data_dir, var, starts, gt_tokens.shape[1])

    settings = {
        "command": "vqturb eval-nsp",
        "nsp_checkpoint": str(nsp_checkpoint),
        "vqvae_checkpoint": str(vqvae_checkpoint),
        "tokens_path": str(tokens_path),
        "data_dir": None if data_dir is None else str(data_dir),
        "n_samples": n_samples,
        "n_ensemble": n_ensemble,
        "n_steps": n_steps,
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
        "seed": seed,
        "var": var,
        "value_range": None if value_range is None else [float(v) for v in value_range],
        "skill_steps": skill_steps,
        "fps": fps,
        "split": split,
        "nsp_step": nsp_header.get("meta", {}).get("step"),
    }
    return evaluate_rollouts(
        gen_tokens, gt_tokens, decode, output_dir, layout=tokens.layout, raw_gt=raw,
        starts=starts, settings=settings, timing=timing, skill_steps=skill_steps, fps=fps,
        value_range=value_range, progress=progress, members=n_ensemble, teacher_forced=teacher,
    )  # fmt: skip


def _read_raw(
    data_dir: str | os.PathLike, var: str, starts: list[tuple[int, int]], n_frames: int
) -> np.ndarray:
    """Raw fields ``[S, n_frames, H, W]`` (float32) of each start's trajectory from its t0 on."""
    from vqturb.data import open_dataset

    with open_dataset(data_dir, var=var) as ds:
        return np.stack(
            [np.stack([ds.get(tr, t_0 + k) for k in range(n_frames)]) for tr, t_0 in starts]
        ).astype(np.float32)


def resolve_value_range(
    value_range: Sequence[float] | str | None,
) -> tuple[float, float] | None:
    """``(lo, hi)`` for a fixed range, ``None`` for the automatic one (``None`` or ``"auto"``);
    ``"seed"`` is the seed's fixed ±10 (:data:`SEED_VALUE_RANGE`)."""
    if value_range is None or value_range == "auto":
        return None
    if value_range == "seed":
        return SEED_VALUE_RANGE
    if isinstance(value_range, str):
        raise InputError(None, "--value_range", value_range, "LO,HI, seed or auto")
    lo, hi = (float(v) for v in value_range)
    if not hi > lo:
        raise InputError(None, "--value_range", f"{lo},{hi}", "LO < HI")
    return (lo, hi)


_ROLLOUT_KEYS = ("generated", "ground_truth", "starts", "scales", "scale_offsets")


def reanalyze_nsp(
    run_dir: str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    *,
    vqvae_checkpoint: str | os.PathLike | None = None,
    tokens_path: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    var: str | None = None,
    value_range: tuple[float, float] | str | None = None,
    skill_steps: int = 10,
    fps: float = 10.0,
    decode_batch: int = 16,
    progress: bool = True,
) -> dict:
    """Recompute every metric, figure, video and the report of a previous ``eval-nsp`` run from
    its saved token trajectories (``tokens_rollout.npz``), without generating again.

    The generated and ground-truth tokens, the starts and the members per start come from the
    run's ``tokens_rollout.npz``; the VQ-VAE, the tokens file (for decoding), the raw dataset and
    the value range from its ``metrics.json`` unless given here. Teacher-forced accuracy (a
    property of the NSP model, not of the rollouts) and the rollout timings are carried over
    from the old ``metrics.json``; everything else is computed afresh, so a run made before a
    metric existed gains it.

    Args:
        run_dir: output folder of the previous run.
        output_dir: where to write (default ``run_dir`` itself: its outputs are replaced).
        vqvae_checkpoint, tokens_path: override the run's (e.g. files that moved).
        data_dir, var: raw dataset for the raw-GT comparisons (default the run's).
        value_range: ``(lo, hi)``, ``"seed"`` (±10) or ``"auto"`` (from the ground truth);
            default ``None``: the run's own choice.
        skill_steps, fps, decode_batch, progress: as in :func:`evaluate_nsp`.

    Returns:
        the metrics dict (also in ``output_dir/metrics.json``).
    """
    from vqturb import checkpoint
    from vqturb.evaluation.rollout import vqvae_decoder

    run_dir = Path(run_dir)
    npz = run_dir / "tokens_rollout.npz"
    if not npz.is_file():
        raise InputError(run_dir, "--reanalyze", "no tokens_rollout.npz", "an eval-nsp output")
    with np.load(npz) as z:
        missing = [k for k in (*_ROLLOUT_KEYS, "scale_vocab_sizes") if k not in z.files]
        if missing:
            raise InputError(npz, "fields", f"{missing} missing", "an eval-nsp tokens_rollout.npz")
        saved = {k: np.asarray(z[k]) for k in z.files}  # read now: output_dir may be run_dir
    old: dict = {}
    if (run_dir / "metrics.json").is_file():
        old = json.loads((run_dir / "metrics.json").read_text())
    settings = dict(old.get("settings") or {})
    vqvae_checkpoint = vqvae_checkpoint or settings.get("vqvae_checkpoint")
    tokens_path = tokens_path or settings.get("tokens_path")
    if not vqvae_checkpoint or not tokens_path:
        raise InputError(
            run_dir / "metrics.json",
            "settings",
            "no vqvae_checkpoint/tokens_path recorded",
            "--vqvae_checkpoint and --tokens_path",
        )
    if data_dir is None:
        data_dir = settings.get("data_dir")
        var = var or settings.get("var", "Omega")
    var = var or "Omega"
    value_range = (
        resolve_value_range(settings.get("value_range"))
        if value_range is None
        else resolve_value_range(value_range)
    )

    gen, gt = saved["generated"], saved["ground_truth"]
    layout = {
        k: [int(v) for v in saved[k]] for k in ("scales", "scale_offsets", "scale_vocab_sizes")
    }
    if gen.ndim != 3 or gt.ndim != 3 or gt.shape[0] == 0 or gen.shape[0] % gt.shape[0]:
        raise InputError(
            npz, "generated/ground_truth", f"shapes {gen.shape}/{gt.shape}",
            "[starts·members, steps+1, T] and [starts, frames, T]",
        )  # fmt: skip
    tokens = TokensFile.read(tokens_path)
    tokens.check_checkpoint(vqvae_checkpoint)
    for name, a in layout.items():
        if tuple(a) != tuple(getattr(tokens, name)):
            raise InputError(
                npz, name, f"{a}", f"{tuple(getattr(tokens, name))} as in {tokens_path}"
            )
    vqvae, _ = checkpoint.load_model(vqvae_checkpoint, kind="vqvae")
    decode = vqvae_decoder(vqvae, tokens, batch_size=decode_batch)
    starts = [(int(a), int(b)) for a, b in saved["starts"]]
    raw = None if data_dir is None else _read_raw(data_dir, var, starts, gt.shape[1])

    settings.update(
        {
            "command": "vqturb eval-nsp --reanalyze",
            "reanalyzed_from": str(run_dir),
            "vqvae_checkpoint": str(vqvae_checkpoint),
            "tokens_path": str(tokens_path),
            "data_dir": None if data_dir is None else str(data_dir),
            "var": var,
            "value_range": None if value_range is None else [float(v) for v in value_range],
            "skill_steps": skill_steps,
            "fps": fps,
        }
    )
    timing = {
        k: v
        for k, v in (old.get("timing") or {}).items()
        if k not in ("decode_s", "decoded_frames")
    }
    return evaluate_rollouts(
        gen, gt, decode, run_dir if output_dir is None else output_dir, layout=layout,
        raw_gt=raw, starts=starts, settings=settings, timing=timing, skill_steps=skill_steps,
        fps=fps, value_range=value_range, progress=progress, members=gen.shape[0] // gt.shape[0],
        teacher_forced=old.get("teacher_forced"),
    )  # fmt: skip
