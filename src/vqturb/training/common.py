"""Pieces every trainer shares: optimisers, resume resolution, divergence guard, checkpointing
of a step, mixed precision, and throughput timing. The VQ-VAE and NSP trainers both use these."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import optax

from vqturb import checkpoint as ck
from vqturb.errors import InputError, VqturbError


class TrainingDiverged(VqturbError):
    """The loss became NaN or Inf; the run stops and the last good checkpoint is kept."""


OPTIMIZERS = ("adam", "adamw", "lion", "adafactor")


def make_optimizer(
    name: str,
    lr: float,
    *,
    warmup_steps: int = 0,
    weight_decay: float = 0.0,
    grad_clip: float | None = 1.0,
) -> optax.GradientTransformation:
    """An optax optimiser with optional linear warm-up, constant learning rate afterwards and
    global-norm gradient clipping (clipping keeps early VQ training stable when codes move).

    Args:
        name: one of ``adam``, ``adamw``, ``lion``, ``adafactor``.
        lr: peak learning rate.
        warmup_steps: linear warm-up from 0 to ``lr``.
        weight_decay: decoupled weight decay (adamw, lion).
        grad_clip: clip the global gradient norm to this value; ``None`` disables.
    """
    # linear_schedule holds its end value after the transition: warm-up, then constant.
    sched: Any = optax.linear_schedule(0.0, lr, warmup_steps) if warmup_steps > 0 else lr
    if name == "adam":
        opt = optax.adam(sched)
    elif name == "adamw":
        opt = optax.adamw(sched, weight_decay=weight_decay)
    elif name == "lion":
        opt = optax.lion(sched, weight_decay=weight_decay)
    elif name == "adafactor":
        opt = optax.adafactor(sched)
    else:
        raise InputError(None, "--optimizer", f"{name!r}", f"one of {', '.join(OPTIMIZERS)}")
    return optax.chain(optax.clip_by_global_norm(grad_clip), opt) if grad_clip else opt


def resolve_resume(resume: str | None, run_dir: str | os.PathLike) -> Path | None:
    """``None`` -> fresh run; ``"auto"`` -> newest complete checkpoint in ``run_dir`` (or a fresh
    run if there is none); a path -> that checkpoint, which must exist with its state file."""
    if not resume:
        return None
    if resume == "auto":
        return ck.latest_checkpoint(run_dir)
    path = Path(resume)
    if not path.is_file():
        raise InputError(path, "--resume", "no such checkpoint", "a ckpt_*.eqx file or 'auto'")
    state = state_path_for(path)
    if not state.is_file():
        raise InputError(
            path,
            "--resume",
            f"has no training state beside it ({state.name} missing)",
            "a checkpoint written during training (final.eqx holds the model only)",
        )
    return path


def state_path_for(model_path: str | os.PathLike) -> Path:
    p = Path(model_path)
    return p.with_name(p.name.replace("ckpt_", "state_", 1))


def check_finite(metrics: dict[str, Any], step: int, last_good: Path | None) -> None:
    """Raise :class:`TrainingDiverged` when the loss is not finite."""
    loss = float(metrics["loss"])
    if not math.isfinite(loss):
        where = (
            f"the last good checkpoint is {last_good}"
            if last_good
            else "no checkpoint was saved yet"
        )
        raise TrainingDiverged(
            f"loss became {loss} at step {step}; stopping ({where}). Try a lower --lr, "
            "--precision fp32, or check the data with `vqturb inspect`."
        )


def save_step(
    run_dir: str | os.PathLike,
    step: int,
    model: Any,
    state: Any,
    *,
    kind: str,
    config: dict,
    meta: dict,
    keep: int = 3,
) -> Path:
    """Save model + training state of ``step`` (state first: a model file alone is incomplete,
    so an interruption between the two writes never yields a checkpoint that cannot resume)."""
    mp, sp = ck.checkpoint_paths(run_dir, step)
    ck.save_state(sp, state, meta={"step": step})
    ck.save_model(mp, model, kind=kind, config=config, meta={**meta, "step": step})
    ck.prune_checkpoints(run_dir, keep)
    return mp


def save_final(
    run_dir: str | os.PathLike, step: int, model: Any, *, kind: str, config: dict, meta: dict
) -> Path:
    """Save the finished run's model as ``<run_dir>/final.eqx`` (no training state)."""
    final = Path(run_dir) / "final.eqx"
    ck.save_model(final, model, kind=kind, config=config, meta={**meta, "step": step})
    return final


def compute_dtype(precision: str):
    if precision == "fp32":
        return jnp.float32
    if precision == "bf16":
        return jnp.bfloat16
    raise InputError(None, "--precision", f"{precision!r}", "fp32 or bf16")
