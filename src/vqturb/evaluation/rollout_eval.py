"""NSP rollout evaluation: roll out t0 -> t_n in token space, decode, measure, draw, report.

Pipeline of :func:`evaluate_nsp` (the library function behind ``vqturb eval-nsp``):

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

import os
from pathlib import Path

import numpy as np

from vqturb.data.tokens_file import TokensFile
from vqturb.errors import InputError
from vqturb.evaluation.heldout import choose_starts, ground_truth_windows, heldout_frames
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
        value_range: fixed value range of the dataset for pixel bins and colours (default: from
            the ground truth of these rollouts).
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
    if temperature < 0:
        raise InputError(None, "--temperature", f"{temperature}", "a number >= 0")
    if top_k is not None and top_k < 1:
        raise InputError(None, "--top_k", f"{top_k}", "a positive integer")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise InputError(None, "--top_p", f"{top_p}", "a number in (0, 1]")
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
    gt_tokens = ground_truth_windows(tokens, starts, n_steps)
    rows = tokens.row_of()
    t0 = np.repeat(np.stack([tokens.indices[rows[st]] for st in starts]), n_ensemble, axis=0)

    gen_tokens, timing = rollout_tokens(
        nsp, t0, n_steps, key=jr.key(seed), temperature=temperature, top_k=top_k, top_p=top_p,
        chunk=chunk, progress=progress,
    )  # fmt: skip

    teacher = teacher_forced_accuracy(nsp, *heldout_pairs(tokens, frames))

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
        "n_ensemble": n_ensemble,
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
        value_range=value_range, progress=progress, members=n_ensemble, teacher_forced=teacher,
    )  # fmt: skip
