"""Optimisers and learning-rate schedules shared by both trainers (``--optimizer``, ``--lr``,
``--weight_decay``, ``--warmup_steps``, ``--lr_schedule``, ``--lr_min_ratio``, ``--grad_clip``).

The schedule is a pure function of the global step, so a resumed run continues it exactly (the step
count lives in the optimiser state, saved with every checkpoint).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vqturb.errors import InputError

if TYPE_CHECKING:
    import optax

# optax and JAX are imported inside the functions: the command line reads the choices and
# defaults below when it builds its parser, and every command should start without them.

OPTIMIZERS = ("adam", "adamw", "lion", "adafactor", "sgd")
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class OptimConfig:
    """How parameters are updated; one of these sits in each trainer's run configuration."""

    optimizer: str = "adam"  # adam | adamw | lion | adafactor | sgd (momentum 0.9)
    lr: float = 1e-4  # peak learning rate
    weight_decay: float = 0.0  # decoupled weight decay (adamw, lion); 0 for adam/adafactor
    warmup_steps: int = 0  # linear warm-up from 0 to lr over these steps
    lr_schedule: str = "constant"  # after warm-up: constant, or cosine decay to lr_min_ratio * lr
    lr_min_ratio: float = 0.01  # cosine floor as a fraction of lr (the seed decays to 1%)
    grad_clip: float | None = 1.0  # global gradient-norm clip; None disables

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise InputError(
                None, "--optimizer", repr(self.optimizer), f"one of {', '.join(OPTIMIZERS)}"
            )
        if self.lr_schedule not in SCHEDULES:
            raise InputError(
                None, "--lr_schedule", repr(self.lr_schedule), f"one of {', '.join(SCHEDULES)}"
            )
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise InputError(None, "--lr", f"{self.lr}", "a finite learning rate > 0")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise InputError(None, "--weight_decay", f"{self.weight_decay}", "a finite value >= 0")
        if self.weight_decay > 0 and self.optimizer in ("adam", "adafactor", "sgd"):
            raise InputError(
                None, "--weight_decay", f"{self.weight_decay} with --optimizer {self.optimizer}",
                "--optimizer adamw or lion (adam, adafactor and sgd have no decoupled weight decay)",
            )  # fmt: skip
        if self.warmup_steps < 0:
            raise InputError(None, "--warmup_steps", f"{self.warmup_steps}", "an integer >= 0")
        if not (0.0 <= self.lr_min_ratio <= 1.0):
            raise InputError(None, "--lr_min_ratio", f"{self.lr_min_ratio}", "a value in [0, 1]")
        if self.grad_clip is not None and not (
            math.isfinite(self.grad_clip) and self.grad_clip > 0
        ):
            raise InputError(
                None, "--grad_clip", f"{self.grad_clip}", "a finite value > 0 (or 0 for none)"
            )


def learning_rate_schedule(cfg: OptimConfig, total_steps: int) -> optax.Schedule:
    """Learning rate as a function of the step: linear warm-up over ``warmup_steps`` (from 0), then
    constant or a half-cosine from ``lr`` to ``lr_min_ratio * lr`` at ``total_steps`` (Loshchilov &
    Hutter 2017, SGDR, without restarts). Steps past ``total_steps`` keep the final value."""
    import jax.numpy as jnp
    import optax

    warm = min(cfg.warmup_steps, max(total_steps - 1, 0))
    if cfg.lr_schedule == "constant":
        if warm == 0:
            return optax.constant_schedule(cfg.lr)
        return optax.linear_schedule(0.0, cfg.lr, warm)
    decay = max(total_steps - warm, 1)
    floor = cfg.lr * cfg.lr_min_ratio

    def warmup_cosine(step):
        t = jnp.clip((step - warm) / decay, 0.0, 1.0)
        cosine = floor + 0.5 * (cfg.lr - floor) * (1.0 + jnp.cos(jnp.pi * t))
        return jnp.where(step < warm, cfg.lr * step / max(warm, 1), cosine)

    return warmup_cosine


def make_optimizer(cfg: OptimConfig, total_steps: int) -> optax.GradientTransformation:
    """The optax transformation of ``cfg`` with its schedule over a run of ``total_steps``; the
    gradient clip comes first (it keeps early VQ training stable while codes move)."""
    import optax

    sched = learning_rate_schedule(cfg, total_steps)
    if cfg.optimizer == "adam":
        opt = optax.adam(sched)
    elif cfg.optimizer == "adamw":
        opt = optax.adamw(sched, weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "lion":
        opt = optax.lion(sched, weight_decay=cfg.weight_decay)
    elif cfg.optimizer == "adafactor":
        opt = optax.adafactor(sched)
    else:  # heavy-ball momentum; its update is linear in the gradient (no per-element scaling)
        opt = optax.sgd(sched, momentum=0.9)
    return optax.chain(optax.clip_by_global_norm(cfg.grad_clip), opt) if cfg.grad_clip else opt
