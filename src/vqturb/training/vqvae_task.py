"""VQ-VAE training as a task of the one loop (:mod:`vqturb.training.loop`).

The step (in :func:`vqturb.training.loop.train_step`): forward, reconstruction MSE + β·commitment
loss, gradients, optax update of everything but the codebooks, then the EMA codebook update and
dead-code restarts (``ema_update``), metrics. Validation: relative L2, PSNR, energy-spectrum error
and enstrophy ratio in physical units, with figures.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from vqturb.data import BatchLoader, Normalization, compute_normalization, open_dataset
from vqturb.errors import InputError
from vqturb.metrics import psnr, relative_l2, spectrum_log_error
from vqturb.models import VQVAEConfig, build_model, ema_update, kmeans_init, trainable_spec
from vqturb.physics import stats
from vqturb.training import loop, losses
from vqturb.training.augment import augment_batch
from vqturb.training.optim import OptimConfig


@dataclass(frozen=True)
class VQVAETrainConfig:
    """How to train a VQ-VAE (the model itself is a :class:`vqturb.models.VQVAEConfig`)."""

    data_dir: str  # dataset path: .mat folder(s) or HDF5 file(s)
    run: loop.RunConfig  # run folder, length, cadence, resume, logging
    optim: OptimConfig = field(default_factory=OptimConfig)  # SPEC: Adam, lr 1e-4
    var: str = "Omega"  # variable name inside .mat files
    h5_key: str | None = None  # dataset path inside HDF5 files (None: The Well layout)
    val_fraction: float = 0.1  # share of trajectories for validation
    test_fraction: float = 0.1  # share of trajectories held out for testing (never trained on)
    precision: str = "fp32"  # "fp32" or "bf16" compute (parameters stay fp32)
    kmeans_init: bool = True  # initialise codebooks by k-means on the first batch
    val_fields: int = 64  # validation fields evaluated (from the validation split)
    spectral_weight: float = 0.0  # weight of losses.spectral_loss (0: MSE + commitment only)
    gradient_weight: float = 0.0  # weight of losses.gradient_loss
    augment: tuple[str, ...] = ()  # random symmetries per training field (training/augment.py)
    mirror_sign: float = -1.0  # sign of a mirrored field (-1: pseudo-scalar such as vorticity)

    def __post_init__(self) -> None:
        if self.precision not in ("fp32", "bf16"):
            raise InputError(None, "--precision", repr(self.precision), "fp32 or bf16")


def compute_dtype(precision: str):
    """The conv trunk's compute dtype for ``--precision``."""
    return jnp.bfloat16 if precision == "bf16" else jnp.float32


def vqvae_loss(
    model, batch, *, beta: float, dtype=jnp.float32, spectral_weight=0.0, gradient_weight=0.0
):
    """Reconstruction MSE + β·commitment loss on normalised fields, plus the optional spectral
    and gradient terms of :mod:`vqturb.training.losses` times their weights; returns (loss, aux).

    Mixed precision: the input is cast to ``dtype``; the convolutions cast their fp32 weights to
    the input's dtype and the quantizer works in fp32, so parameters, codebooks and the EMA
    statistics stay fp32 while the conv trunk runs in bf16.
    """
    recon, out = model(batch.astype(dtype))
    recon = recon.astype(jnp.float32)
    mse = jnp.mean((recon - batch) ** 2)
    commit = out.commit_loss.astype(jnp.float32)
    loss = mse + beta * commit
    if spectral_weight:
        loss = loss + spectral_weight * losses.spectral_loss(recon, batch)
    if gradient_weight:
        loss = loss + gradient_weight * losses.gradient_loss(recon, batch)
    return loss, (recon, out, mse, commit)


class VQVAEObjective(loop.Objective):
    """The VQ-VAE's loss and EMA codebook update (static settings only: hashable by value)."""

    beta: float = eqx.field(static=True)  # commitment weight
    precision: str = eqx.field(static=True)  # fp32 | bf16
    spectral_weight: float = eqx.field(static=True, default=0.0)
    gradient_weight: float = eqx.field(static=True, default=0.0)
    augment: tuple[str, ...] = eqx.field(static=True, default=())  # training/augment.py
    augment_zero: float = eqx.field(static=True, default=0.0)  # physical 0 in normalised units
    mirror_sign: float = eqx.field(static=True, default=-1.0)

    def trainable(self, model: Any) -> Any:
        return trainable_spec(model)

    def loss(self, model: Any, batch: jax.Array, key: jax.Array) -> tuple[jax.Array, Any]:
        batch = augment_batch(
            batch, key, self.augment, zero=self.augment_zero, mirror_sign=self.mirror_sign
        )
        loss, (recon, out, mse, commit) = vqvae_loss(
            model,
            batch,
            beta=self.beta,
            dtype=compute_dtype(self.precision),
            spectral_weight=self.spectral_weight,
            gradient_weight=self.gradient_weight,
        )
        return loss, (recon, out, mse, commit, batch)

    def after_update(self, model: Any, aux: Any, key: jax.Array) -> tuple[Any, dict]:
        recon, out, mse, commit, batch = aux
        model, qstats = ema_update(model, out, key=key)
        return model, {
            "recon_mse": mse,
            "commit_loss": commit,
            "rel_l2": jnp.mean(relative_l2(recon, batch)),
            **qstats,
        }


@eqx.filter_jit
def _forward(model, x):
    """The model's forward pass, compiled once per model and batch shape."""
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
    half = {
        "true": arrays["e_true"].mean(0)[: n // 2 + 1],
        "reconstructed": arrays["e_rec"].mean(0)[: n // 2 + 1],
    }
    plots.plot_spectra(k, half, paths[2])
    return paths


class VQVAETask(loop.TrainTask):
    """A VQ-VAE on a dataset: batches from the training split, validation on the val split."""

    best_metric = "val_rel_l2"  # best.eqx: the lowest validation relative L2

    def __init__(self, model_cfg: VQVAEConfig, cfg: VQVAETrainConfig):
        self.kind, self.name = "vqvae", "train-vqvae"
        self.model_cfg, self.cfg = model_cfg, cfg
        ds = open_dataset(cfg.data_dir, var=cfg.var, h5_key=cfg.h5_key)
        ds.check_divisible(model_cfg.downsample_factor)
        if ds.shape != (model_cfg.resolution, model_cfg.resolution):
            raise InputError(
                cfg.data_dir, "field shape", f"{ds.shape}",
                f"square {model_cfg.resolution}x{model_cfg.resolution} fields, the resolution the model is built for",
            )  # fmt: skip
        self.dataset = ds
        self.splits = ds.split(
            val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction, seed=cfg.run.seed
        )
        if len(self.splits.train) < cfg.run.batch_size:
            raise InputError(
                cfg.data_dir, "--batch_size",
                f"{cfg.run.batch_size} but the training split has {len(self.splits.train)} fields",
                "a batch no larger than the training split",
            )  # fmt: skip
        self.norm = self._normalization()
        self.loader = BatchLoader(
            self.splits.train, cfg.run.batch_size, seed=cfg.run.seed, normalization=self.norm
        )
        self.steps_per_epoch = self.loader.steps_per_epoch
        self.objective = VQVAEObjective(
            beta=model_cfg.commitment_weight,
            precision=cfg.precision,
            spectral_weight=cfg.spectral_weight,
            gradient_weight=cfg.gradient_weight,
            augment=tuple(cfg.augment),
            augment_zero=float(self.norm.apply(0.0)),
            mirror_sign=float(cfg.mirror_sign),
        )
        self._val_range: float | None = None

    def _normalization(self) -> Normalization:
        """From the checkpoint being resumed (so a resumed run normalises as before), else from
        the training split."""
        from vqturb.training.loop import resolve_resume

        resume = resolve_resume(self.cfg.run.resume, self.cfg.run.checkpoint_dir)
        if resume is not None:
            from vqturb import checkpoint as ck

            meta = ck.read_header(resume).get("meta", {})
            if "normalization" in meta:
                return Normalization.from_dict(meta["normalization"])
        return compute_normalization(self.splits.train)

    def model_config(self) -> dict:
        return self.model_cfg.to_dict()

    def meta(self) -> dict:
        cfg = self.cfg
        return {
            "normalization": self.norm.to_dict(),
            "data_dir": str(cfg.data_dir),
            "var": cfg.var,
            "field_shape": list(self.dataset.shape),
            "split_seed": cfg.run.seed,
            "val_fraction": cfg.val_fraction,
            "test_fraction": cfg.test_fraction,
            "data_fingerprint": self.loader.fingerprint,
        }

    def init_model(self, key: jax.Array) -> Any:
        return build_model(self.model_cfg, key=key)

    def prepare(self, model: Any, key: jax.Array) -> Any:
        if not self.cfg.kmeans_init:
            return model
        return kmeans_init(model, jnp.asarray(self.loader.batch_at(0)), key=key)

    def batches(self, start: int, rows: slice) -> Iterator[np.ndarray]:
        return self.loader.iterate(start, rows=rows)

    def rates(self, steps_per_s: float) -> dict:
        return {"steps_per_s": steps_per_s, "images_per_s": steps_per_s * self.cfg.run.batch_size}

    def validate(self, model: Any, step: int, run_dir: Path) -> dict:
        val = self.splits.val
        if len(val) == 0:
            return {}
        if self._val_range is None:
            x = np.stack([val.get(i) for i in range(min(len(val), self.cfg.val_fields))])
            self._val_range = float(x.max() - x.min())
        m, arrays = validate(
            model, val, self.norm, n_fields=self.cfg.val_fields, batch_size=self.cfg.run.batch_size,
            value_range=self._val_range,
        )  # fmt: skip
        n_scales = len(self.model_cfg.scales) if self.model_cfg.var_mode else 1
        write_validation_figures(run_dir, step, arrays, [self.model_cfg.vocab_size] * n_scales)
        return m


def train_vqvae(model_cfg: VQVAEConfig, cfg: VQVAETrainConfig) -> loop.TrainResult:
    """Train a VQ-VAE on ``cfg.data_dir``; returns where the final model is and the last metrics.

    The run folder ``cfg.run.checkpoint_dir`` receives ``config.json``, ``metrics.jsonl``,
    ``ckpt_<step>.eqx`` + ``state_<step>.eqx`` (newest ``keep_checkpoints``), ``figures/`` and
    ``final.eqx`` (docs/formats.md, "Run folders").
    """
    task = VQVAETask(model_cfg, cfg)
    config = loop.run_config_dict(model=model_cfg.to_dict(), train=cfg)
    return loop.run_training(task, cfg.run, cfg.optim, config)
