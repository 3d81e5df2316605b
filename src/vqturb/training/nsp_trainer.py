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

Pairs never cross a trajectory; the validation split is by trajectory.
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

from vqturb.data.sharding import make_mesh, replicate, shard_batch
from vqturb.data.tokens_file import read_tokens_file
from vqturb.errors import InputError
from vqturb.models.nsp import (
    NextScalePredictor,
    NSPConfig,
    build_nsp,
    count_parameters,
    trainable_spec,
)
from vqturb.training import checkpoint as ck
from vqturb.training.common import (
    check_finite,
    make_optimizer,
    resolve_resume,
    save_final,
    save_step,
    state_path_for,
)
from vqturb.training.metrics import MetricLogger
from vqturb.utils.fileio import atomic_save_npz, atomic_write_json, file_sha256
from vqturb.utils.progress import Progress

# Tokens-file fields NSP training needs (CONTRACTS.md, "Tokens file").
REQUIRED_FIELDS = (
    "indices_flat",
    "codebook",
    "scales",
    "scale_offsets",
    "scale_vocab_sizes",
    "trajectory_id",
    "time_index",
    "checkpoint_sha256",
)


# --------------------------------------------------------------------------------------------
# Tokens file and pairs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NSPTokens:
    """The parts of a tokens file that NSP training uses (validated by :func:`load_nsp_tokens`)."""

    path: str  # where it was read from (for error messages)
    indices: np.ndarray  # [N, T] int32 unified token ids, scale by scale, row-major in a scale
    codebook: np.ndarray  # [V, D] float32 unified codebook (frozen embedding of the model)
    scales: tuple[int, ...]  # side length of each scale
    scale_offsets: tuple[int, ...]  # first unified id of each scale
    scale_vocab_sizes: tuple[int, ...]  # ids per scale (1 = deterministic scale)
    trajectory_id: np.ndarray  # [N] trajectory of each row
    time_index: np.ndarray  # [N] time index of each row inside its trajectory
    checkpoint_sha256: str  # SHA-256 of the VQ-VAE checkpoint that made the tokens

    @property
    def fields(self) -> dict[str, Any]:
        """What :meth:`NSPConfig.from_tokens` reads."""
        return {
            "scales": self.scales,
            "scale_offsets": self.scale_offsets,
            "scale_vocab_sizes": self.scale_vocab_sizes,
            "codebook": self.codebook,
        }


def load_nsp_tokens(path: str | Path) -> NSPTokens:
    """Read and check a tokens file; every problem is an :class:`InputError` naming the field."""
    path = Path(path)
    a = read_tokens_file(path, REQUIRED_FIELDS)
    scales = tuple(int(s) for s in a["scales"].ravel())
    offsets = tuple(int(s) for s in a["scale_offsets"].ravel())
    sizes = tuple(int(s) for s in a["scale_vocab_sizes"].ravel())
    if not (len(scales) == len(offsets) == len(sizes)) or not scales:
        raise InputError(
            path, "scales/scale_offsets/scale_vocab_sizes", f"lengths {len(scales)}, {len(offsets)}, {len(sizes)}",
            "one entry per scale in each",
        )  # fmt: skip
    idx, cb = a["indices_flat"], a["codebook"]
    n_tok = sum(s * s for s in scales)
    if idx.ndim != 2 or idx.shape[1] != n_tok:
        raise InputError(
            path, "indices_flat", f"shape {idx.shape}", f"[N, {n_tok}] for scales {scales}"
        )
    vocab = max(o + v for o, v in zip(offsets, sizes, strict=True))
    if cb.ndim != 2 or cb.shape[0] < vocab:
        raise InputError(
            path, "codebook", f"shape {cb.shape}", f"[>= {vocab}, D] (the unified vocabulary)"
        )
    if not (idx.shape[0] == a["trajectory_id"].size == a["time_index"].size):
        raise InputError(
            path, "trajectory_id/time_index", f"{a['trajectory_id'].size}/{a['time_index'].size} entries",
            f"one per row of indices_flat ({idx.shape[0]})",
        )  # fmt: skip
    off = 0
    for j, (s, o, v) in enumerate(zip(scales, offsets, sizes, strict=True)):
        block = idx[:, off : off + s * s]
        off += s * s
        if block.size and (block.min() < o or block.max() >= o + v):
            raise InputError(
                path, f"indices_flat scale {j}", f"ids in [{block.min()}, {block.max()}]",
                f"ids in scale {j}'s range [{o}, {o + v})",
            )  # fmt: skip
    return NSPTokens(
        path=str(path),
        indices=idx.astype(np.int32),
        codebook=cb[:vocab].astype(np.float32),
        scales=scales,
        scale_offsets=offsets,
        scale_vocab_sizes=sizes,
        trajectory_id=a["trajectory_id"].astype(np.int64).ravel(),
        time_index=a["time_index"].astype(np.int64).ravel(),
        checkpoint_sha256=str(a["checkpoint_sha256"]),
    )


def check_tokens_checkpoint(tokens: NSPTokens, vqvae_checkpoint: str | Path) -> str:
    """The tokens must come from ``vqvae_checkpoint`` (SHA-256 match); returns the hash."""
    p = Path(vqvae_checkpoint)
    if not p.is_file():
        raise InputError(
            p, "--vqvae_checkpoint", "no such file", "the VQ-VAE checkpoint that made the tokens"
        )
    sha = file_sha256(p)
    if tokens.checkpoint_sha256 != sha:
        raise InputError(
            tokens.path, "checkpoint_sha256",
            f"tokens were made by a checkpoint with sha256 {tokens.checkpoint_sha256[:12]}..., "
            f"{p} has {sha[:12]}...",
            "the VQ-VAE checkpoint given by --vqvae_checkpoint",
        )  # fmt: skip
    return sha


def make_pairs(tokens: NSPTokens, dt: int) -> np.ndarray:
    """Row pairs ``[P, 2]`` (row of t, row of t + dt) inside each trajectory, by ``time_index``.

    Raises:
        InputError: ``dt < 1``, or a trajectory spanning no more than ``dt`` time steps (it would
            give no pair).
    """
    if dt < 1:
        raise InputError(None, "--dt", f"{dt}", "a pair spacing of at least 1")
    out = []
    for tr in np.unique(tokens.trajectory_id):
        rows = np.flatnonzero(tokens.trajectory_id == tr)
        times = tokens.time_index[rows]
        if times.size <= dt or times.max() - times.min() < dt:
            raise InputError(
                tokens.path, f"trajectory {tr}", f"{times.size} snapshots (time indices {times.min()}..{times.max()})",
                f"trajectories longer than --dt {dt}",
            )  # fmt: skip
        row_of = dict(zip(times.tolist(), rows.tolist(), strict=True))
        for t, r in sorted(row_of.items()):
            if t + dt in row_of:
                out.append((r, row_of[t + dt]))
    return np.asarray(out, np.int64).reshape(-1, 2)


def split_pairs(
    tokens: NSPTokens, pairs: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Split pairs by trajectory: ``round(val_fraction * n_traj)`` whole trajectories (at least one
    when there are two or more and ``val_fraction > 0``) go to validation."""
    trajs = np.unique(tokens.trajectory_id)
    n_val = int(round(val_fraction * len(trajs)))
    if val_fraction > 0 and len(trajs) >= 2:
        n_val = min(max(n_val, 1), len(trajs) - 1)
    else:
        n_val = 0
    val_trajs = sorted(np.random.default_rng(seed).permutation(trajs)[:n_val].tolist())
    is_val = np.isin(tokens.trajectory_id[pairs[:, 0]], val_trajs)
    return pairs[~is_val], pairs[is_val], [int(t) for t in val_trajs]


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
    seed: int = 0  # model init, split, batch order, scale draws
    dt: int = 1  # pair spacing in time_index units: (t, t + dt)
    all_scales: bool = False  # train every trainable scale per step (else one drawn scale)
    val_fraction: float = 0.1  # share of trajectories held out for validation
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
    model: NextScalePredictor, tokens: NSPTokens, pairs: np.ndarray, batch_size: int, mesh
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
    model_cfg: NSPConfig, cfg: NSPTrainConfig, tokens: NSPTokens | None = None
) -> NSPTrainResult:
    """Train a next-scale predictor on the pairs of ``cfg.tokens_path``.

    The run folder receives ``config.json``, ``metrics.jsonl`` (``kind`` "train" records with
    ``loss``, ``loss_s<k>``/``acc_s<k>`` per trainable scale k averaged over the log window, and
    throughput; ``kind`` "val" records), ``ckpt_<step>.eqx`` + ``state_<step>.eqx`` and
    ``final.eqx`` (kind ``"nsp"``, loadable by ``checkpoint.load_model``).
    """
    run_dir = Path(cfg.checkpoint_dir)
    tokens = load_nsp_tokens(cfg.tokens_path) if tokens is None else tokens
    vq_sha = check_tokens_checkpoint(tokens, cfg.vqvae_checkpoint) if cfg.vqvae_checkpoint else None
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
    pairs = make_pairs(tokens, cfg.dt)
    train_pairs, val_pairs, val_trajs = split_pairs(tokens, pairs, cfg.val_fraction, cfg.seed)
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
        "split_seed": cfg.seed,
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


# --------------------------------------------------------------------------------------------
# Synthetic tokens (tests, benchmarks, demos without a VQ-VAE)
# --------------------------------------------------------------------------------------------


def synthetic_tokens(
    *,
    scales: tuple[int, ...] = (1, 2, 4),
    scale_vocab_sizes: tuple[int, ...] = (1, 4, 8),
    codebook_dim: int = 8,
    n_traj: int = 4,
    n_steps: int = 12,
    checkpoint_sha256: str = "0" * 64,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Arrays of a tokens file with known dynamics: the local id of position p of scale k at time t
    is ``(phase + t + pattern_k[p]) mod vocab_k``, a fixed random spatial pattern shifted by a
    random per-trajectory phase that advances by one every step. So ``local(t+1) = local(t) + 1``:
    p(t1 | t0) is deterministic, and a small model learns it in a few hundred steps (it needs the
    phase, readable from any t0 token, plus the pattern, a function of position)."""
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(scale_vocab_sizes)[:-1]]).astype(np.int64)
    vocab = int(np.sum(scale_vocab_sizes))
    rows, traj, tim = [], [], []
    pattern = [rng.integers(0, v, s * s) for s, v in zip(scales, scale_vocab_sizes, strict=True)]
    for tr in range(n_traj):
        phase = rng.integers(0, max(scale_vocab_sizes))
        local = [phase + pat for pat in pattern]
        for t in range(n_steps):
            rows.append(
                np.concatenate(
                    [
                        o + (loc + t) % v
                        for loc, o, v in zip(local, offsets, scale_vocab_sizes, strict=True)
                    ]
                )
            )
            traj.append(tr)
            tim.append(t)
    idx = np.stack(rows).astype(np.int32)
    codebook = rng.standard_normal((vocab, codebook_dim)).astype(np.float32)
    unified_to_scale = np.repeat(np.arange(len(scales)), scale_vocab_sizes)
    return {
        "indices_flat": idx,
        "vectors_flat": codebook[idx],
        "codebook": codebook,
        "scale_offsets": offsets,
        "scale_vocab_sizes": np.asarray(scale_vocab_sizes, np.int64),
        "unified_to_scale": unified_to_scale,
        "unified_to_original": np.arange(vocab) - offsets[unified_to_scale],
        "scales": np.asarray(scales, np.int64),
        "trajectory_id": np.asarray(traj, np.int64),
        "time_index": np.asarray(tim, np.int64),
        "norm_mean": np.float64(0.0),
        "norm_std": np.float64(1.0),
        "checkpoint_sha256": np.str_(checkpoint_sha256),
    }


def write_synthetic_tokens(path: str | Path, **kwargs: Any) -> Path:
    """Write :func:`synthetic_tokens` to ``path`` (atomically); returns the path."""
    atomic_save_npz(path, **synthetic_tokens(**kwargs))
    return Path(path)
