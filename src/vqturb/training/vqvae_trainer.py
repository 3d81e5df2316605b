"""VQ-VAE training: one jitted step (forward, losses, gradients, optax update, EMA codebook update,
dead-code restart, metrics), data-parallel over every local device, resumable exactly.

Exact resume: the batch of global step ``s`` is a pure function of ``(seed, s)`` (the loader's
per-epoch permutation) and the step's RNG key is ``fold_in(loop_key, s)``; model, optimiser state
and ``s`` are saved together, so an interrupted and resumed run computes the same steps as one that
was not interrupted.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

from vqturb import checkpoint as ck
from vqturb.data import BatchLoader, Normalization, compute_normalization, open_dataset
from vqturb.data.sharding import make_mesh, replicate, shard_batch
from vqturb.errors import InputError
from vqturb.metrics import psnr, relative_l2, spectrum_log_error
from vqturb.models import VQVAEConfig, build_model, ema_update, trainable_spec
from vqturb.physics import stats
from vqturb.training.common import (
    check_finite,
    compute_dtype,
    make_optimizer,
    resolve_resume,
    save_final,
    save_step,
    state_path_for,
)
from vqturb.training.metrics import MetricLogger
from vqturb.utils.fileio import atomic_write_json
from vqturb.utils.progress import Progress


@dataclass(frozen=True)
class VQVAETrainConfig:
    """How to train (the model itself is described by :class:`vqturb.models.VQVAEConfig`)."""

    data_dir: str  # dataset path: .mat folder(s) or HDF5 file(s)
    checkpoint_dir: str = "runs/vqvae"  # run folder: checkpoints, metrics.jsonl, figures
    epochs: int = 100  # passes over the training split (SPEC default)
    batch_size: int = 16  # global batch, split over devices (SPEC default)
    lr: float = 1e-4  # Adam learning rate (SPEC default)
    seed: int = 0  # model init, data order, dead-code restarts
    var: str = "Omega"  # variable name inside .mat files
    h5_key: str | None = None  # dataset path inside HDF5 files (None: The Well layout)
    val_fraction: float = 0.1  # share of trajectories for validation
    test_fraction: float = 0.1  # share of trajectories held out for testing (never trained on)
    max_steps: int | None = None  # stop after this many steps (overrides epochs when smaller)
    save_every: int = 500  # checkpoint period in steps
    val_every: int = 500  # validation period in steps (also at the end)
    log_every: int = 10  # metrics period in steps
    keep_checkpoints: int = 3  # step checkpoints kept on disk (final.eqx always kept)
    resume: str | None = None  # None, "auto" or a ckpt_*.eqx path
    precision: str = "fp32"  # "fp32" or "bf16" compute (parameters stay fp32)
    warmup_steps: int = 0  # linear learning-rate warm-up
    grad_clip: float | None = 1.0  # global gradient-norm clip
    kmeans_init: bool = True  # initialise codebooks by k-means on the first batch
    val_fields: int = 64  # validation fields evaluated (from the validation split)
    wandb_project: str | None = None  # also log to this wandb project when wandb is installed
    wandb_name: str | None = None  # wandb run name
    progress: bool = True  # show a progress bar on stderr


@dataclass
class TrainResult:
    """What a finished run leaves behind."""

    final_path: Path
    steps: int
    last_metrics: dict
    val_metrics: dict


def vqvae_loss(model, batch, *, beta: float, dtype=jnp.float32):
    """Reconstruction MSE + β·commitment loss on normalised fields; returns (loss, aux).

    Mixed precision: the input is cast to ``dtype``; the convolutions cast their fp32 weights to
    the input's dtype and the quantizer works in fp32, so parameters, codebooks and the EMA
    statistics stay fp32 while the conv trunk runs in bf16.
    """
    recon, out = model(batch.astype(dtype))
    recon = recon.astype(jnp.float32)
    mse = jnp.mean((recon - batch) ** 2)
    commit = out.commit_loss.astype(jnp.float32)
    loss = mse + beta * commit
    return loss, (recon, out, mse, commit)


def make_train_step(
    optimizer: optax.GradientTransformation, *, beta: float, precision: str = "fp32"
):
    """Build the jitted training step ``(model, opt_state, batch, key) -> (model, opt_state, metrics)``.

    The codebooks and their EMA statistics are outside the optimiser (``trainable_spec``); they are
    replaced by ``ema_update`` after the gradient step, inside the same compiled program.
    """
    dtype = compute_dtype(precision)

    @eqx.filter_jit
    def step(model, opt_state, batch, key):
        spec = trainable_spec(model)
        params, frozen = eqx.partition(model, spec)

        def loss_fn(p):
            return vqvae_loss(eqx.combine(p, frozen), batch, beta=beta, dtype=dtype)

        (loss, (recon, out, mse, commit)), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(
            params
        )
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = eqx.apply_updates(params, updates)
        model = eqx.combine(params, frozen)
        model, qstats = ema_update(model, out, key=key)
        metrics = {
            "loss": loss,
            "recon_mse": mse,
            "commit_loss": commit,
            "rel_l2": jnp.mean(relative_l2(recon, batch)),
            "grad_norm": optax.tree.norm(grads),
            **qstats,
        }
        return model, opt_state, metrics

    return step


@eqx.filter_jit
def _forward(model, x):
    """The model's forward pass, compiled once per model and batch shape (a jit built inside
    ``validate`` would be a new function, and recompile, at every validation)."""
    return model(x)


def _eval_batches(subset, norm: Normalization, n_fields: int, batch_size: int):
    n = min(len(subset), n_fields)
    for start in range(0, n, batch_size):
        idx = range(start, min(n, start + batch_size))
        yield np.stack([norm.apply(subset.get(i)) for i in idx]).astype(np.float32)


def validate(
    model,
    subset,
    norm: Normalization,
    *,
    n_fields: int,
    batch_size: int,
    value_range: float | None = None,
) -> tuple[dict, dict]:
    """Relative L2, PSNR and energy-spectrum error on (up to) ``n_fields`` fields of ``subset``,
    in physical units. Returns ``(metrics, arrays)``; arrays hold what the figures need."""
    inputs, recons, codes = [], [], None
    for batch in _eval_batches(subset, norm, n_fields, batch_size):
        recon, out = _forward(model, jnp.asarray(batch))
        inputs.append(norm.invert(batch))
        recons.append(norm.invert(np.asarray(recon)))
        idx = [np.asarray(i).ravel() for i in out.indices]
        codes = (
            idx
            if codes is None
            else [np.concatenate([a, b]) for a, b in zip(codes, idx, strict=True)]
        )
    x = np.concatenate(inputs)
    y = np.concatenate(recons)
    if value_range is None:
        value_range = float(x.max() - x.min())
    n = x.shape[-1]
    e_true = np.asarray(stats.energy_spectrum(x))
    e_rec = np.asarray(stats.energy_spectrum(y))
    metrics = {
        "val_rel_l2": float(np.mean(relative_l2(y, x))),
        "val_psnr": float(np.mean(psnr(y, x, value_range))),
        "val_spectrum_error": float(np.mean(spectrum_log_error(e_rec, e_true, kmax=n // 2))),
        "val_enstrophy_ratio": float(np.mean(stats.enstrophy(y)) / np.mean(stats.enstrophy(x))),
        "val_fields": int(x.shape[0]),
    }
    return metrics, {"inputs": x, "recons": y, "codes": codes, "e_true": e_true, "e_rec": e_rec}


def write_validation_figures(
    run_dir: Path, step: int, arrays: dict, vocab_sizes: list[int]
) -> list[Path]:
    """Inputs vs reconstructions, codebook usage per scale, true vs reconstructed spectra."""
    from vqturb import plots

    fig_dir = run_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    paths = [
        fig_dir / f"reconstructions_{step:09d}.png",
        fig_dir / f"codebook_usage_{step:09d}.png",
        fig_dir / f"spectra_{step:09d}.png",
    ]
    plots.plot_reconstructions(arrays["inputs"][:4], arrays["recons"][:4], paths[0])
    usage = [
        np.bincount(c, minlength=v).astype(np.float64)
        for c, v in zip(arrays["codes"], vocab_sizes, strict=True)
    ]
    plots.plot_codebook_usage(usage, paths[1])
    n = arrays["inputs"].shape[-1]
    k = np.arange(n // 2 + 1)
    plots.plot_spectra(
        k,
        {
            "true": arrays["e_true"].mean(0)[: n // 2 + 1],
            "reconstructed": arrays["e_rec"].mean(0)[: n // 2 + 1],
        },
        paths[2],
    )
    return paths


def _codebook_sizes(cfg: VQVAEConfig) -> list[int]:
    n_scales = len(cfg.scales) if cfg.var_mode else 1
    return [cfg.vocab_size] * n_scales


def train_vqvae(model_cfg: VQVAEConfig, cfg: VQVAETrainConfig) -> TrainResult:
    """Train a VQ-VAE on ``cfg.data_dir``; returns where the final model is and the last metrics.

    The run folder ``cfg.checkpoint_dir`` receives ``config.json``, ``metrics.jsonl``,
    ``ckpt_<step>.eqx`` + ``state_<step>.eqx`` (newest ``keep_checkpoints``), ``figures/`` and
    ``final.eqx``.
    """
    run_dir = Path(cfg.checkpoint_dir)
    ds = open_dataset(cfg.data_dir, var=cfg.var, h5_key=cfg.h5_key)
    ds.check_divisible(model_cfg.downsample_factor)
    if ds.shape != (model_cfg.resolution, model_cfg.resolution):
        raise InputError(
            cfg.data_dir,
            "field shape",
            f"{ds.shape}",
            f"square {model_cfg.resolution}x{model_cfg.resolution} fields, the resolution the model is built for",
        )
    splits = ds.split(val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, seed=cfg.seed)
    if len(splits.train) < cfg.batch_size:
        raise InputError(
            cfg.data_dir,
            "--batch_size",
            f"{cfg.batch_size} but the training split has {len(splits.train)} fields",
            "a batch no larger than the training split",
        )

    resume_path = resolve_resume(cfg.resume, run_dir)
    if resume_path is not None:
        header = ck.read_header(resume_path)
        saved_cfg = VQVAEConfig.from_dict(header["config"])
        if saved_cfg != model_cfg:
            raise InputError(
                resume_path,
                "model configuration",
                f"the checkpoint was trained with {saved_cfg}",
                f"the same model flags as the run being resumed (given {model_cfg})",
            )
        norm = Normalization.from_dict(header["meta"]["normalization"])
    else:
        norm = compute_normalization(splits.train)

    loader = BatchLoader(splits.train, cfg.batch_size, seed=cfg.seed, normalization=norm)
    total_steps = cfg.epochs * loader.steps_per_epoch
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)

    init_key, kmeans_key, loop_key = jr.split(jr.PRNGKey(cfg.seed), 3)
    model = build_model(model_cfg, key=init_key)
    optimizer = make_optimizer(
        "adam", cfg.lr, warmup_steps=cfg.warmup_steps, grad_clip=cfg.grad_clip
    )
    opt_state = optimizer.init(eqx.filter(model, trainable_spec(model)))
    start_step = 0
    if resume_path is not None:
        model, header = ck.load_model(resume_path, kind="vqvae")
        opt_state, _ = ck.load_state(state_path_for(resume_path), opt_state)
        start_step = int(header["meta"]["step"])
    elif cfg.kmeans_init:
        from vqturb.models import kmeans_init

        model = kmeans_init(model, jnp.asarray(loader.batch_at(0)), key=kmeans_key)

    mesh = make_mesh()
    n_dev = mesh.devices.size
    if cfg.batch_size % n_dev:
        raise InputError(
            None,
            "--batch_size",
            f"{cfg.batch_size} is not divisible by the {n_dev} devices",
            "a multiple of the device count",
        )
    model = replicate(model, mesh)
    opt_state = replicate(opt_state, mesh)
    step_fn = make_train_step(optimizer, beta=model_cfg.commitment_weight, precision=cfg.precision)

    meta = {
        "normalization": norm.to_dict(),
        "data_dir": str(cfg.data_dir),
        "var": cfg.var,
        "field_shape": list(ds.shape),
        "split_seed": cfg.seed,
        "val_fraction": cfg.val_fraction,
        "test_fraction": cfg.test_fraction,
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        run_dir / "config.json",
        {
            "model": model_cfg.to_dict(),
            "train": dataclasses.asdict(cfg),
            "meta": meta,
            "devices": n_dev,
        },
    )
    logger = MetricLogger(
        run_dir,
        wandb_project=cfg.wandb_project,
        wandb_name=cfg.wandb_name,
        config={"model": model_cfg.to_dict(), "train": dataclasses.asdict(cfg)},
        resume=resume_path is not None,
    )
    val_range = None
    last_good = resume_path
    last_metrics: dict = {}
    val_metrics: dict = {}
    vocab_sizes = _codebook_sizes(model_cfg)

    def run_validation(step: int) -> dict:
        nonlocal val_range
        if len(splits.val) == 0:
            return {}
        if val_range is None:
            x = np.stack([splits.val.get(i) for i in range(min(len(splits.val), cfg.val_fields))])
            val_range = float(x.max() - x.min())
        m, arrays = validate(
            model,
            splits.val,
            norm,
            n_fields=cfg.val_fields,
            batch_size=cfg.batch_size,
            value_range=val_range,
        )
        try:
            write_validation_figures(run_dir, step, arrays, vocab_sizes)
        except ImportError:
            pass  # plotting module not installed in a minimal environment
        logger.log(step, m, kind="val")
        return m

    bar = Progress(total=total_steps, desc="train-vqvae", unit="step", disable=not cfg.progress)
    bar.set(start_step)
    t_window, n_window = time.perf_counter(), 0
    try:
        batches = loader.iterate(start_step)
        for step in range(start_step, total_steps):
            batch = shard_batch(next(batches), mesh)
            model, opt_state, metrics = step_fn(model, opt_state, batch, jr.fold_in(loop_key, step))
            n_window += 1
            done = step + 1
            if done % cfg.log_every == 0 or done == total_steps:
                metrics = jax.device_get(metrics)
                check_finite(metrics, done, last_good)
                now = time.perf_counter()
                metrics["images_per_s"] = n_window * cfg.batch_size / (now - t_window)
                t_window, n_window = now, 0
                last_metrics = logger.log(done, metrics, kind="train")
                bar.update(
                    0,
                    loss=f"{float(metrics['loss']):.4g}",
                    rel_l2=f"{float(metrics['rel_l2']):.3f}",
                )
            if done % cfg.save_every == 0 or done == total_steps:
                metrics = jax.device_get(metrics)
                check_finite(metrics, done, last_good)
                last_good = save_step(
                    run_dir,
                    done,
                    model,
                    opt_state,
                    kind="vqvae",
                    config=model_cfg.to_dict(),
                    meta=meta,
                    keep=cfg.keep_checkpoints,
                )
            if done % cfg.val_every == 0 or done == total_steps:
                val_metrics = run_validation(done)
            bar.update(1)
    finally:
        bar.close()
        logger.close()
    final = save_final(
        run_dir, total_steps, model, kind="vqvae", config=model_cfg.to_dict(), meta=meta
    )
    return TrainResult(
        final_path=final, steps=total_steps, last_metrics=last_metrics, val_metrics=val_metrics
    )


def model_state_arrays(model: Any) -> list[np.ndarray]:
    """All array leaves of a model as NumPy (for comparing runs in tests)."""
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(model, eqx.is_array))]
