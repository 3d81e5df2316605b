"""NSP training as a task of the one loop (:mod:`vqturb.training.loop`): learn p(t1 | t0) on
pairs (t, t + dt) of a tokens file.

Two modes (``vqturb.models.nsp``):

* SPEC mode (default): each step draws one trainable scale uniformly and predicts it.
* ``all_scales``: one forward pass predicts every trainable scale; the loss is the *mean over
  scales* of each scale's mean cross-entropy, i.e. the expectation of the SPEC-mode loss, so the
  two modes optimise the same objective and their curves are comparable.

Pairs never cross a trajectory; the validation split is by trajectory. Validation rows report,
per trainable scale k, the teacher-forced loss ``loss_s<k>`` and accuracy ``acc_s<k>`` beside
``copy_acc_s<k>``: how often copying t0's token at the same position is right on the same pairs,
the persistence baseline a forecaster has to beat.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax

from vqturb.data.loader import BatchSchedule
from vqturb.data.splits import SplitRule
from vqturb.data.tokens_file import TokensFile
from vqturb.errors import InputError
from vqturb.models.nsp import (
    NextScalePredictor,
    build_nsp,
    count_parameters,
    trainable_spec,
    with_copy_rates,
)
from vqturb.models.nsp_config import NSPConfig
from vqturb.training import loop
from vqturb.training.optim import OptimConfig

# --------------------------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------------------------


def scale_losses(
    cfg: NSPConfig, logits: tuple[jax.Array, ...], t1: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Mean cross-entropy and accuracy per trainable scale, each ``[K]``; ``logits`` per trainable
    scale ``[B, s_k**2, vocab_k]``, ``t1`` the unified ids ``[B, T]``."""
    ce, acc = [], []
    for lg, k in zip(logits, cfg.trainable_scales, strict=True):
        o = cfg.token_offsets[k]
        target = t1[:, o : o + cfg.scale_lengths[k]] - cfg.scale_offsets[k]
        ce.append(jnp.mean(optax.softmax_cross_entropy_with_integer_labels(lg, target)))
        acc.append(jnp.mean(jnp.argmax(lg, -1) == target))
    return jnp.stack(ce), jnp.stack(acc)


def nsp_loss(
    model: NextScalePredictor,
    t0: jax.Array,
    t1: jax.Array,
    key: jax.Array,
    *,
    all_scales: bool,
    train: bool = True,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Loss of one batch; returns ``(loss, aux)`` with per-scale ``ce``, ``acc`` and ``weight``
    (which scales the loss covered: one-hot in SPEC mode, all ones in all-scales mode).

    Args:
        t0, t1: unified ids ``[B, T]``.
        key: draws the SPEC-mode scale and the dropout masks.
        all_scales: one pass over every trainable scale (else one uniformly drawn scale).
        train: dropout on (needs ``model.config.dropout > 0`` to matter).
    """
    cfg = model.config
    n_k = len(cfg.trainable_scales)
    scale_key, drop_key = jr.split(key)
    drop_keys = jr.split(drop_key, t0.shape[0]) if train and cfg.dropout > 0 else None
    v0, v1 = model.embed_tokens(t0), model.embed_tokens(t1)
    if all_scales:
        weight = jnp.ones(n_k)
        fn = lambda a, b, k: model.logits_all(a, b, key=k)  # noqa: E731
    else:
        which = jr.randint(scale_key, (), 0, n_k)
        weight = jax.nn.one_hot(which, n_k)
        scale = jnp.asarray(cfg.trainable_scales)[which]
        fn = lambda a, b, k: model.logits_spec(a, b, scale, key=k)  # noqa: E731
    if drop_keys is not None:
        logits = jax.vmap(fn)(v0, v1, drop_keys)
    else:
        logits = jax.vmap(lambda a, b: fn(a, b, None))(v0, v1)
    ce, acc = scale_losses(cfg, logits, t1)
    loss = jnp.sum(weight * ce) / jnp.sum(weight)
    return loss, {"ce": ce, "acc": acc, "weight": weight}


class NSPObjective(loop.Objective):
    """Next-scale cross-entropy; no non-gradient update (the codebook is frozen)."""

    all_scales: bool = eqx.field(static=True)  # every trainable scale per step, or one drawn

    def trainable(self, model: Any) -> Any:
        return trainable_spec(model)

    def loss(self, model: Any, batch: Any, key: jax.Array) -> tuple[jax.Array, Any]:
        t0, t1 = batch
        return nsp_loss(model, t0, t1, key, all_scales=self.all_scales)

    def after_update(self, model: Any, aux: Any, key: jax.Array) -> tuple[Any, dict]:
        return model, aux


@eqx.filter_jit
def eval_step(model: NextScalePredictor, t0: jax.Array, t1: jax.Array) -> dict[str, jax.Array]:
    """Per-scale cross-entropy and accuracy with every trainable scale predicted (all-scales
    form: the same function SPEC mode computes for the scale it predicts), no dropout."""
    _, aux = nsp_loss(model, t0, t1, jr.key(0), all_scales=True, train=False)
    return aux


def copy_accuracy(cfg: NSPConfig, t0: np.ndarray, t1: np.ndarray) -> np.ndarray:
    """``[K]``: per trainable scale, the fraction of t1's tokens equal to t0's token at the same
    position (the accuracy of persistence in token space)."""
    out = []
    for k in cfg.trainable_scales:
        o, n = cfg.token_offsets[k], cfg.scale_lengths[k]
        out.append(float(np.mean(t0[:, o : o + n] == t1[:, o : o + n])))
    return np.asarray(out)


def _per_scale(
    cfg: NSPConfig, prefix: str, values: np.ndarray, weights: np.ndarray | None = None
) -> dict:
    out = {}
    for i, k in enumerate(cfg.trainable_scales):
        if weights is None:
            out[f"{prefix}_s{k}"] = float(values[i])
        elif weights[i] > 0:
            out[f"{prefix}_s{k}"] = float(values[i] / weights[i])
    return out


def evaluate(
    model: NextScalePredictor, tokens: TokensFile, pairs: np.ndarray, batch_size: int
) -> dict:
    """Per-scale validation cross-entropy, accuracy and copy-t0 accuracy over every pair of
    ``pairs`` (batches of ``batch_size``, the last one smaller), on this process's first device."""
    cfg = model.config
    n = len(pairs)
    if n == 0:
        return {}
    ce = np.zeros(len(cfg.trainable_scales))
    acc = np.zeros_like(ce)
    for i in range(0, n, batch_size):
        sel = pairs[i : i + batch_size]
        aux = jax.device_get(eval_step(model, tokens.indices[sel[:, 0]], tokens.indices[sel[:, 1]]))
        ce += len(sel) * aux["ce"]
        acc += len(sel) * aux["acc"]
    ce, acc = ce / n, acc / n
    copy = copy_accuracy(cfg, tokens.indices[pairs[:, 0]], tokens.indices[pairs[:, 1]])
    uniform = np.log([cfg.scale_vocab_sizes[k] for k in cfg.trainable_scales])
    m = {
        "loss": float(np.mean(ce)),
        "acc": float(np.mean(acc)),
        "copy_acc": float(np.mean(copy)),
    }
    m.update(_per_scale(cfg, "loss", ce))
    m.update(_per_scale(cfg, "acc", acc))
    m.update(_per_scale(cfg, "copy_acc", copy))
    m.update(_per_scale(cfg, "uniform_loss", uniform))
    return m


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NSPTrainConfig:
    """How to train the NSP model (the model is a :class:`vqturb.models.nsp.NSPConfig`)."""

    tokens_path: str  # tokens.npz from `vqturb tokenizer save`
    vqvae_checkpoint: str | None  # the VQ-VAE checkpoint that made the tokens (hash checked)
    run: loop.RunConfig  # run folder, length, cadence, resume, logging
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(optimizer="lion"))  # SPEC: Lion
    dt: int = 1  # pair spacing in time_index units: (t, t + dt)
    all_scales: bool = False  # train every trainable scale per step (else one drawn scale)
    val_fraction: float = 0.1  # validation share, for tokens files that record no split
    val_pairs: int = 256  # validation pairs evaluated (from the validation trajectories)


class NSPTask(loop.TrainTask):
    """The NSP transformer on the training pairs of a tokens file."""

    best_metric = "loss"  # best.eqx: the lowest validation cross-entropy (mean over scales)

    def __init__(self, model_cfg: NSPConfig, cfg: NSPTrainConfig, tokens: TokensFile | None = None):
        self.kind, self.name = "nsp", "train-nsp"
        self.model_cfg, self.cfg = model_cfg, cfg
        tokens = TokensFile.read(cfg.tokens_path) if tokens is None else tokens
        self.tokens = tokens
        self.vq_sha = (
            tokens.check_checkpoint(cfg.vqvae_checkpoint) if cfg.vqvae_checkpoint else None
        )
        for f in ("scales", "scale_offsets", "scale_vocab_sizes"):
            if getattr(model_cfg, f) != getattr(tokens, f):
                raise InputError(
                    tokens.path,
                    f,
                    f"{getattr(tokens, f)}",
                    f"{getattr(model_cfg, f)} as in the model configuration",
                )
        if not model_cfg.trainable_scales:
            raise InputError(
                tokens.path, "scale_vocab_sizes", f"{tokens.scale_vocab_sizes}",
                "at least one scale with more than one token",
            )  # fmt: skip
        # the tokens file's split (the VQ-VAE run's); files without one: the same rule over their
        # trajectory ids with --val_fraction and --seed. Test rows are never trained on (eval-nsp
        # starts its rollouts there).
        self.split_rule = tokens.effective_split_rule(
            SplitRule(val_fraction=cfg.val_fraction, seed=cfg.run.seed)
        )
        self.train_pairs, val_pairs, _ = tokens.split_pairs(cfg.dt, self.split_rule)
        self.val_trajs = sorted({int(t) for t in tokens.trajectory_id[val_pairs[:, 0]]})
        self.val_pairs = val_pairs[: cfg.val_pairs]
        if len(self.train_pairs) < cfg.run.batch_size:
            raise InputError(
                tokens.path, "--batch_size", f"{cfg.run.batch_size} but there are {len(self.train_pairs)} training pairs",
                "a batch no larger than the training pairs",
            )  # fmt: skip
        self.schedule = BatchSchedule(
            len(self.train_pairs), cfg.run.batch_size, cfg.run.seed, True, True
        )
        self.steps_per_epoch = self.schedule.steps_per_epoch
        self.objective = NSPObjective(all_scales=cfg.all_scales)
        m = model_cfg
        self.seq_len = 2 * m.tokens_per_frame
        if cfg.all_scales:
            self.seq_len = m.tokens_per_frame + sum(m.scale_lengths[j] for j in m.content_scales)
            self.seq_len += sum(m.scale_lengths[k] for k in m.trainable_scales)

    def model_config(self) -> dict:
        return self.model_cfg.to_dict()

    def meta(self) -> dict:
        return {
            "tokens_path": str(self.cfg.tokens_path),
            "checkpoint_sha256": self.tokens.checkpoint_sha256,
            "dt": self.cfg.dt,
            "all_scales": self.cfg.all_scales,
            "val_trajectories": self.val_trajs,
            "split": self.split_rule.to_dict(),
            # the training pairs' tokens: resuming on changed tokens is refused (training.loop)
            "data_fingerprint": self.data_fingerprint,
        }

    @functools.cached_property
    def data_fingerprint(self) -> str:
        h = hashlib.sha256(np.ascontiguousarray(self.train_pairs, dtype="<i8").tobytes())
        h.update(np.ascontiguousarray(self.tokens.indices, dtype="<i4").tobytes())
        return h.hexdigest()[:16]

    def run_info(self) -> dict:
        return {
            "n_parameters": count_parameters(
                build_nsp(self.model_cfg, self.tokens.codebook, key=jr.key(0))
            ),
            "n_train_pairs": len(self.train_pairs),
            "n_val_pairs": len(self.val_pairs),
            "vqvae_sha256": self.vq_sha,
        }

    def init_model(self, key: jax.Array) -> Any:
        return build_nsp(self.model_cfg, self.tokens.codebook, key=key)

    def prepare(self, model: Any, key: jax.Array) -> Any:
        """A fresh model's copy prior starts at the training pairs' copy rate per scale."""
        t = self.tokens.indices
        rates = copy_accuracy(self.model_cfg, t[self.train_pairs[:, 0]], t[self.train_pairs[:, 1]])
        return with_copy_rates(model, rates)

    def batches(self, start: int, rows: slice) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        step = start
        while True:
            sel = self.train_pairs[self.schedule.indices_at(step)[rows]]
            yield self.tokens.indices[sel[:, 0]], self.tokens.indices[sel[:, 1]]
            step += 1

    def rates(self, steps_per_s: float) -> dict:
        b = self.cfg.run.batch_size
        return {
            "steps_per_s": steps_per_s,
            "pairs_per_s": steps_per_s * b,
            "tokens_per_s": steps_per_s * b * self.seq_len,
        }

    def summarize(self, window: list[dict]) -> dict:
        """Window means; per-scale loss and accuracy over the steps that trained each scale."""
        w = np.sum([m["weight"] for m in window], axis=0)
        ce = np.sum([m["weight"] * m["ce"] for m in window], axis=0)
        acc = np.sum([m["weight"] * m["acc"] for m in window], axis=0)
        record = {
            "loss": float(np.mean([m["loss"] for m in window])),
            "grad_norm": float(np.mean([m["grad_norm"] for m in window])),
        }
        record.update(_per_scale(self.model_cfg, "loss", ce, w))
        record.update(_per_scale(self.model_cfg, "acc", acc, w))
        return record

    def validate(self, model: Any, step: int, run_dir: Path) -> dict:
        return evaluate(model, self.tokens, self.val_pairs, self.cfg.run.batch_size)


def train_nsp(
    model_cfg: NSPConfig, cfg: NSPTrainConfig, tokens: TokensFile | None = None
) -> loop.TrainResult:
    """Train a next-scale predictor on the pairs of ``cfg.tokens_path``.

    The run folder receives ``config.json``, ``metrics.jsonl`` (``kind`` "train" records with
    ``loss``, ``loss_s<k>``/``acc_s<k>`` per trainable scale k averaged over the log window, the
    learning rate and throughput; ``kind`` "val" records with ``copy_acc_s<k>`` beside them),
    ``ckpt_<step>.eqx`` + ``state_<step>.eqx`` and ``final.eqx`` (kind ``"nsp"``).
    """
    task = NSPTask(model_cfg, cfg, tokens)
    config = loop.run_config_dict(model=model_cfg.to_dict(), train=cfg)
    return loop.run_training(task, cfg.run, cfg.optim, config)
