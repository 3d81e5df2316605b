"""NSP training (``vqturb train-nsp``): learn p(t1 | t0) on pairs (t, t + dt) of a tokens file.

One jitted step (forward, per-scale cross-entropy, gradients, optax update, metrics), data-parallel
over every local device (batch sharded over the mesh's ``data`` axis, parameters replicated),
resumable exactly: the batch of global step ``s`` is a pure function of ``(seed, s)`` and the step's
key is ``fold_in(loop_key, s)``; model, optimiser state and ``s`` are saved together.

Two modes (``vqturb.models.nsp``):

* SPEC mode (default): each step draws one trainable scale uniformly and predicts it.
* ``all_scales``: one forward pass predicts every trainable scale; the loss is the *mean over
  scales* of each scale's mean cross-entropy, i.e. the expectation of the SPEC-mode loss, so the
  two modes optimise the same objective and their curves are comparable.

Pairs never cross a trajectory; training and validation pairs lie inside the tokens file's train
and val rows (one split rule, :mod:`vqturb.data.splits`); its test rows are never trained on.
"""

from __future__ import annotations

import dataclasses
import functools
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
from vqturb.data.sharding import make_mesh, replicate, shard_batch
from vqturb.data.splits import SplitRule
from vqturb.data.tokens_file import TokensFile
from vqturb.errors import InputError
from vqturb.models.nsp import (
    NextScalePredictor,
    NSPConfig,
    build_nsp,
    count_parameters,
    trainable_spec,
)
from vqturb.training.common import (
    check_finite,
    make_optimizer,
    resolve_resume,
    save_final,
    save_step,
    state_path_for,
)
from vqturb.training.metrics import MetricLogger
from vqturb.utils.fileio import atomic_write_json
from vqturb.utils.progress import Progress

# --------------------------------------------------------------------------------------------
# Batches of pairs (the tokens file, its pairs and split: vqturb.data.tokens_file)
# --------------------------------------------------------------------------------------------


class PairBatches:
    """Deterministic batches of pairs: batch ``s`` is a pure function of ``(seed, s)``.

    Epoch ``e = s // steps_per_epoch`` uses permutation ``default_rng((seed, e))`` of the pairs;
    the incomplete last batch of an epoch is dropped.
    """

    def __init__(self, indices: np.ndarray, pairs: np.ndarray, batch_size: int, seed: int):
        self.indices, self.pairs, self.batch_size, self.seed = indices, pairs, batch_size, seed
        self.steps_per_epoch = len(pairs) // batch_size

    def batch_at(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        epoch, i = divmod(step, self.steps_per_epoch)
        perm = np.random.default_rng((self.seed, epoch)).permutation(len(self.pairs))
        sel = self.pairs[perm[i * self.batch_size : (i + 1) * self.batch_size]]
        return self.indices[sel[:, 0]], self.indices[sel[:, 1]]


# --------------------------------------------------------------------------------------------
# Loss and step
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
    logits = (
        jax.vmap(fn)(v0, v1, drop_keys)
        if drop_keys is not None
        else jax.vmap(lambda a, b: fn(a, b, None))(v0, v1)
    )
    ce, acc = scale_losses(cfg, logits, t1)
    loss = jnp.sum(weight * ce) / jnp.sum(weight)
    return loss, {"ce": ce, "acc": acc, "weight": weight}


@eqx.filter_jit
def train_step(
    model: NextScalePredictor,
    opt_state: Any,
    t0: jax.Array,
    t1: jax.Array,
    key: jax.Array,
    optimizer: optax.GradientTransformation,
    all_scales: bool,
) -> tuple[NextScalePredictor, Any, dict[str, jax.Array]]:
    """One whole training step in one compiled program: loss, gradients, optax update, metrics.

    The frozen codebook is partitioned out (``trainable_spec``): no gradient, no optimiser state.
    ``optimizer`` and ``all_scales`` are static (the optimiser object is cached per settings by
    :func:`optimizer_for` so repeated runs in one process reuse the compiled step).
    """
    params, frozen = eqx.partition(model, trainable_spec(model))

    def loss_fn(p):
        return nsp_loss(eqx.combine(p, frozen), t0, t1, key, all_scales=all_scales)

    (loss, aux), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    model = eqx.combine(eqx.apply_updates(params, updates), frozen)
    return model, opt_state, {"loss": loss, "grad_norm": optax.tree.norm(grads), **aux}


@eqx.filter_jit
def eval_step(model: NextScalePredictor, t0: jax.Array, t1: jax.Array) -> dict[str, jax.Array]:
    """Per-scale cross-entropy and accuracy with every trainable scale predicted (all-scales
    form: the same function SPEC mode computes for the scale it predicts), no dropout."""
    _, aux = nsp_loss(model, t0, t1, jr.key(0), all_scales=True, train=False)
    return aux


@functools.lru_cache(maxsize=16)
def optimizer_for(
    name: str, lr: float, warmup_steps: int, weight_decay: float, grad_clip: float | None
) -> optax.GradientTransformation:
    """:func:`make_optimizer`, memoised: the same object for the same settings (a static argument
    of :func:`train_step`, so equal settings hit the compilation cache)."""
    return make_optimizer(
        name, lr, warmup_steps=warmup_steps, weight_decay=weight_decay, grad_clip=grad_clip
    )


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NSPTrainConfig:
    """How to train (the model is described by :class:`vqturb.models.nsp.NSPConfig`)."""

    tokens_path: str  # tokens.npz from `vqturb tokenizer save`
    vqvae_checkpoint: str | None  # the VQ-VAE checkpoint that made the tokens (hash checked)
    checkpoint_dir: str = "runs/nsp"  # run folder: checkpoints, metrics.jsonl, final.eqx
    epochs: int = 100  # passes over the training pairs (SPEC default)
    batch_size: int = 16  # global batch of pairs, split over devices
    optimizer: str = "lion"  # lion | adamw | adafactor (SPEC default lion)
    lr: float = 1e-4  # learning rate (SPEC default)
    weight_decay: float = 0.0  # decoupled weight decay (lion, adamw)
    warmup_steps: int = 0  # linear learning-rate warm-up
    grad_clip: float | None = 1.0  # global gradient-norm clip
    seed: int = 0  # model init, batch order, scale draws (and the split of files without one)
    dt: int = 1  # pair spacing in time_index units: (t, t + dt)
    all_scales: bool = False  # train every trainable scale per step (else one drawn scale)
    val_fraction: float = 0.1  # validation share, for tokens files that record no split
    val_pairs: int = 256  # validation pairs evaluated (from the validation trajectories)
    max_steps: int | None = None  # stop after this many steps (overrides epochs when smaller)
    save_every: int = 500  # checkpoint period in steps
    val_every: int = 500  # validation period in steps (also at the end)
    log_every: int = 10  # metrics period in steps
    keep_checkpoints: int = 3  # step checkpoints kept on disk (final.eqx always kept)
    resume: str | None = None  # None, "auto" or a ckpt_*.eqx path
    wandb_project: str | None = None  # also log to this wandb project when wandb is installed
    wandb_name: str | None = None  # wandb run name
    progress: bool = True  # progress bar on stderr


@dataclass
class NSPTrainResult:
    """What a finished run leaves behind."""

    final_path: Path
    steps: int
    last_metrics: dict
    val_metrics: dict
    history: list[dict]  # every logged training record (step, time, loss, per-scale metrics)


def _per_scale(cfg: NSPConfig, prefix: str, sums: np.ndarray, counts: np.ndarray) -> dict:
    out = {}
    for i, k in enumerate(cfg.trainable_scales):
        if counts[i] > 0:
            out[f"{prefix}_s{k}"] = float(sums[i] / counts[i])
    return out


def _shard(batch: tuple[np.ndarray, np.ndarray], mesh) -> tuple[jax.Array, jax.Array]:
    """Put a global batch on the mesh. Every process computes the same global batch (a pure
    function of seed and step); in a multi-process run each passes its own contiguous slice,
    which is what ``shard_batch`` expects there."""
    n_proc, pid = jax.process_count(), jax.process_index()
    if n_proc > 1:
        per = batch[0].shape[0] // n_proc
        batch = tuple(b[pid * per : (pid + 1) * per] for b in batch)
    return shard_batch(batch, mesh)


def evaluate(
    model: NextScalePredictor, tokens: TokensFile, pairs: np.ndarray, batch_size: int, mesh
) -> dict:
    """Per-scale validation cross-entropy/accuracy over ``pairs`` (whole batches, in order)."""
    cfg = model.config
    n = (len(pairs) // batch_size) * batch_size
    if n == 0:
        return {}
    ce = np.zeros(len(cfg.trainable_scales))
    acc = np.zeros_like(ce)
    for i in range(0, n, batch_size):
        sel = pairs[i : i + batch_size]
        t0, t1 = _shard((tokens.indices[sel[:, 0]], tokens.indices[sel[:, 1]]), mesh)
        aux = jax.device_get(eval_step(model, t0, t1))
        ce += aux["ce"]
        acc += aux["acc"]
    nb = n // batch_size
    ones = np.ones_like(ce)
    m = {"loss": float(np.mean(ce / nb)), "acc": float(np.mean(acc / nb))}
    m.update(_per_scale(cfg, "loss", ce / nb, ones))
    m.update(_per_scale(cfg, "acc", acc / nb, ones))
    return m


def train_nsp(
    model_cfg: NSPConfig, cfg: NSPTrainConfig, tokens: TokensFile | None = None
) -> NSPTrainResult:
    """Train a next-scale predictor on the pairs of ``cfg.tokens_path``.

    The run folder receives ``config.json``, ``metrics.jsonl`` (``kind`` "train" records with
    ``loss``, ``loss_s<k>``/``acc_s<k>`` per trainable scale k averaged over the log window, and
    throughput; ``kind`` "val" records), ``ckpt_<step>.eqx`` + ``state_<step>.eqx`` and
    ``final.eqx`` (kind ``"nsp"``, loadable by ``checkpoint.load_model``).
    """
    run_dir = Path(cfg.checkpoint_dir)
    tokens = TokensFile.read(cfg.tokens_path) if tokens is None else tokens
    vq_sha = tokens.check_checkpoint(cfg.vqvae_checkpoint) if cfg.vqvae_checkpoint else None
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
            tokens.path,
            "scale_vocab_sizes",
            f"{tokens.scale_vocab_sizes}",
            "at least one scale with more than one token",
        )
    # the tokens file's split (the VQ-VAE run's); files without one: the same rule over their
    # trajectory ids with --val_fraction and --seed. Test rows are never trained on (eval-nsp
    # starts its rollouts there).
    split_rule = tokens.effective_split_rule(
        SplitRule(val_fraction=cfg.val_fraction, seed=cfg.seed)
    )
    train_pairs, val_pairs, _ = tokens.split_pairs(cfg.dt, split_rule)
    val_trajs = sorted({int(t) for t in tokens.trajectory_id[val_pairs[:, 0]]})
    val_pairs = val_pairs[: cfg.val_pairs]
    if len(train_pairs) < cfg.batch_size:
        raise InputError(
            tokens.path, "--batch_size", f"{cfg.batch_size} but there are {len(train_pairs)} training pairs",
            "a batch no larger than the training pairs",
        )  # fmt: skip
    batches = PairBatches(tokens.indices, train_pairs, cfg.batch_size, cfg.seed)
    total_steps = cfg.epochs * batches.steps_per_epoch
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)

    mesh = make_mesh()
    n_dev = mesh.devices.size
    if cfg.batch_size % n_dev:
        raise InputError(
            None,
            "--batch_size",
            f"{cfg.batch_size} is not divisible by the {n_dev} devices",
            "a multiple of the device count",
        )

    resume_path = resolve_resume(cfg.resume, run_dir)
    init_key, loop_key = jr.split(jr.key(cfg.seed))
    optimizer = optimizer_for(
        cfg.optimizer, cfg.lr, cfg.warmup_steps, cfg.weight_decay, cfg.grad_clip
    )
    model = build_nsp(model_cfg, tokens.codebook, key=init_key)
    opt_state = optimizer.init(eqx.filter(model, trainable_spec(model)))
    start_step = 0
    if resume_path is not None:
        saved_cfg = NSPConfig.from_dict(ck.read_header(resume_path)["config"])
        if saved_cfg != model_cfg:
            raise InputError(
                resume_path, "model configuration", f"the checkpoint was trained with {saved_cfg}",
                f"the same model flags as the run being resumed (given {model_cfg})",
            )  # fmt: skip
        model, header = ck.load_model(resume_path, kind="nsp")
        opt_state, _ = ck.load_state(state_path_for(resume_path), opt_state)
        start_step = int(header["meta"]["step"])
    model = replicate(model, mesh)
    opt_state = replicate(opt_state, mesh)

    meta = {
        "tokens_path": str(cfg.tokens_path),
        "checkpoint_sha256": tokens.checkpoint_sha256,
        "dt": cfg.dt,
        "all_scales": cfg.all_scales,
        "val_trajectories": val_trajs,
        "split": split_rule.to_dict(),
    }
    n_params = count_parameters(model)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(
        run_dir / "config.json",
        {
            "model": model_cfg.to_dict(), "train": dataclasses.asdict(cfg), "meta": meta, "devices": n_dev,
            "n_parameters": n_params, "n_train_pairs": len(train_pairs), "n_val_pairs": len(val_pairs),
            "vqvae_sha256": vq_sha,
        },
    )  # fmt: skip
    logger = MetricLogger(
        run_dir,
        wandb_project=cfg.wandb_project,
        wandb_name=cfg.wandb_name,
        config={"model": model_cfg.to_dict(), "train": dataclasses.asdict(cfg)},
        resume=resume_path is not None,
    )
    seq_len = 2 * model_cfg.tokens_per_frame
    if cfg.all_scales:
        seq_len = model_cfg.tokens_per_frame + sum(
            model_cfg.scale_lengths[j] for j in model_cfg.content_scales
        )
        seq_len += sum(model_cfg.scale_lengths[k] for k in model_cfg.trainable_scales)

    n_k = len(model_cfg.trainable_scales)
    last_good = resume_path
    last_metrics: dict = {}
    val_metrics: dict = {}
    history: list[dict] = []
    win = {"loss": 0.0, "n": 0, "ce": np.zeros(n_k), "acc": np.zeros(n_k), "w": np.zeros(n_k)}
    pending: list[dict] = []  # device metrics of the window, fetched together at log time

    def run_validation(step: int) -> dict:
        m = evaluate(model, tokens, val_pairs, cfg.batch_size, mesh)
        if m:
            logger.log(step, m, kind="val")
        return m

    bar = Progress(total=total_steps, desc="train-nsp", unit="step", disable=not cfg.progress)
    bar.set(start_step)
    t_window = time.perf_counter()
    t_start = t_window
    try:
        for step in range(start_step, total_steps):
            t0, t1 = _shard(batches.batch_at(step), mesh)
            model, opt_state, metrics = train_step(
                model, opt_state, t0, t1, jr.fold_in(loop_key, step), optimizer, cfg.all_scales
            )
            pending.append(metrics)
            done = step + 1
            if done % cfg.log_every == 0 or done == total_steps:
                for m in jax.device_get(pending):
                    win["loss"] += float(m["loss"])
                    win["n"] += 1
                    win["ce"] += m["weight"] * m["ce"]
                    win["acc"] += m["weight"] * m["acc"]
                    win["w"] += m["weight"]
                grad_norm = float(jax.device_get(pending[-1]["grad_norm"]))
                pending.clear()
                now = time.perf_counter()
                record = {"loss": win["loss"] / win["n"], "grad_norm": grad_norm}
                check_finite(record, done, last_good)
                record.update(_per_scale(model_cfg, "loss", win["ce"], win["w"]))
                record.update(_per_scale(model_cfg, "acc", win["acc"], win["w"]))
                rate = win["n"] / (now - t_window)
                record.update(
                    steps_per_s=rate,
                    pairs_per_s=rate * cfg.batch_size,
                    tokens_per_s=rate * cfg.batch_size * seq_len,
                    wall_s=now - t_start,
                )
                last_metrics = logger.log(done, record, kind="train")
                history.append(last_metrics)
                bar.update(0, loss=f"{record['loss']:.4g}")
                t_window = now
                win = {
                    "loss": 0.0,
                    "n": 0,
                    "ce": np.zeros(n_k),
                    "acc": np.zeros(n_k),
                    "w": np.zeros(n_k),
                }
            if done % cfg.save_every == 0 or done == total_steps:
                last_good = save_step(
                    run_dir, done, model, opt_state, kind="nsp", config=model_cfg.to_dict(), meta=meta,
                    keep=cfg.keep_checkpoints,
                )  # fmt: skip
            if done % cfg.val_every == 0 or done == total_steps:
                val_metrics = run_validation(done)
            bar.update(1)
    finally:
        bar.close()
        logger.close()
    final = save_final(
        run_dir, total_steps, model, kind="nsp", config=model_cfg.to_dict(), meta=meta
    )
    return NSPTrainResult(final, total_steps, last_metrics, val_metrics, history)
