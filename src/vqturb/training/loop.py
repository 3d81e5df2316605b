"""The training loop both trainers run: a :class:`TrainTask` says what is trained, this module how.

The loop owns everything that is not specific to a model: the run folder (``config.json``,
``metrics.jsonl``, ``ckpt_<step>.eqx`` + ``state_<step>.eqx``, ``final.eqx`` and ``best.eqx`` (the
model of the validation with the lowest ``TrainTask.best_metric``); docs/formats.md),
exact resume, the device mesh and the per-process slice of every batch, the key schedule, the
learning-rate schedule, metric windows, the finite check before every save, checkpoint and
validation cadence, the progress bar and the metric sinks (JSONL always, wandb when asked).

Exact resume: the global batch of step ``s`` is a pure function of ``(seed, s)`` (the task's
schedule), the step's key is ``fold_in(loop_key, s)``, and model, optimiser state (with its step
count, which drives the learning-rate schedule) and ``s`` are saved together; so an interrupted and
resumed run computes the same steps as one that was not interrupted.

Several processes (``jax.distributed.initialize``, see :mod:`vqturb.training.distributed`): every
process runs the same loop; each reads only its contiguous slice of the global batch and the
slices are assembled into one global array (``jax.make_array_from_process_local_data``). Parameters
are replicated. Process 0 alone writes files and runs validation.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.random as jr
import numpy as np
import optax

from vqturb import checkpoint as ck
from vqturb.data.sharding import make_mesh, replicate, shard_batch
from vqturb.errors import InputError, VqturbError
from vqturb.training.metrics import MetricLogger, NullLogger
from vqturb.training.optim import OptimConfig, learning_rate_schedule, make_optimizer
from vqturb.training.run_folder import claim_run_folder, truncate_metrics
from vqturb.utils.fileio import atomic_write_json
from vqturb.utils.progress import Progress


class TrainingDiverged(VqturbError):
    """The loss became NaN or Inf; the run stops and the last good checkpoint is kept."""


def _positive(name: str, value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or value < 1):
        raise InputError(None, f"--{name}", f"{value}", "a positive integer")


@dataclass(frozen=True)
class RunConfig:
    """How long, how often and where a training run goes (shared by both trainers)."""

    checkpoint_dir: str  # run folder: checkpoints, metrics.jsonl, figures, final.eqx
    epochs: int = 100  # passes over the training data (SPEC default)
    batch_size: int = 16  # global batch, split over devices and processes (SPEC default)
    seed: int = 0  # model init, data order, every random draw of the run
    max_steps: int | None = None  # stop after this many steps (overrides epochs when smaller)
    save_every: int = 500  # checkpoint period in steps
    val_every: int = 500  # validation period in steps (also at the end)
    log_every: int = 10  # metrics period in steps (records are means over the window)
    keep_checkpoints: int = 3  # step checkpoints kept on disk (final.eqx always kept)
    resume: str | None = None  # None, "auto" or a ckpt_*.eqx path
    overwrite: bool = False  # delete another run's files in checkpoint_dir first (else refused)
    wandb_project: str | None = None  # also log to this wandb project when wandb is installed
    wandb_name: str | None = None  # wandb run name
    progress: bool = True  # progress bar on stderr

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "max_steps", "save_every", "val_every", "log_every"):
            _positive(name, getattr(self, name))


@dataclass
class TrainResult:
    """What a finished run leaves behind."""

    final_path: Path
    steps: int
    last_metrics: dict
    val_metrics: dict
    history: list[dict] = field(default_factory=list)  # every logged training record


class Objective(eqx.Module):
    """What one training step computes, besides the optimiser update: the loss, and any update of
    the model that is not a gradient step (EMA codebooks). Hashable by value (static fields only),
    so equal settings reuse the compiled step across runs in one process."""

    @abc.abstractmethod
    def trainable(self, model: Any) -> Any:
        """A filter spec: True for the leaves the optimiser trains."""

    @abc.abstractmethod
    def loss(self, model: Any, batch: Any, key: jax.Array) -> tuple[jax.Array, Any]:
        """``(scalar loss, aux)`` of one global batch."""

    @abc.abstractmethod
    def after_update(self, model: Any, aux: Any, key: jax.Array) -> tuple[Any, dict]:
        """``(model, metrics)`` after the gradient step: non-gradient updates and step metrics."""


@functools.partial(eqx.filter_jit, donate="all-except-first")
def train_step(
    objective: Objective,
    model: Any,
    opt_state: Any,
    batch: Any,
    key: jax.Array,
    optimizer: optax.GradientTransformation,
) -> tuple[Any, Any, dict]:
    """One whole training step in one compiled program: loss, gradients, optax update, the
    objective's non-gradient update (EMA), metrics. Model, optimiser state, batch and key are
    donated (their buffers are reused for the outputs)."""
    loss_key, update_key = jr.split(key)
    params, frozen = eqx.partition(model, objective.trainable(model))

    def loss_fn(p):
        return objective.loss(eqx.combine(p, frozen), batch, loss_key)

    (loss, aux), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    model = eqx.combine(eqx.apply_updates(params, updates), frozen)
    model, metrics = objective.after_update(model, aux, update_key)
    return model, opt_state, {"loss": loss, "grad_norm": optax.tree.norm(grads), **metrics}


@functools.lru_cache(maxsize=16)
def cached_optimizer(cfg: OptimConfig, total_steps: int) -> optax.GradientTransformation:
    """:func:`make_optimizer`, memoised: the same object for the same settings (a static argument
    of :func:`train_step`, so equal settings hit the compilation cache)."""
    return make_optimizer(cfg, total_steps)


class TrainTask(abc.ABC):
    """What a trainer tells the loop. Subclasses set the attributes in ``__init__``."""

    kind: str  # checkpoint kind ("vqvae", "nsp")
    name: str  # progress-bar label
    objective: Objective  # the loss and non-gradient updates of the jitted step
    steps_per_epoch: int  # global steps in one pass over the training data

    @abc.abstractmethod
    def model_config(self) -> dict:
        """The model configuration stored in every checkpoint header (JSON-safe)."""

    @abc.abstractmethod
    def meta(self) -> dict:
        """Extra header fields (normalisation, data description, split) of every checkpoint."""

    @abc.abstractmethod
    def init_model(self, key: jax.Array) -> Any:
        """A freshly initialised model."""

    def prepare(self, model: Any, key: jax.Array) -> Any:
        """First-run initialisation beyond parameters (e.g. k-means codebooks); not on resume."""
        return model

    @abc.abstractmethod
    def batches(self, start: int, rows: slice) -> Iterator[Any]:
        """Rows ``rows`` of the global batches of steps ``start, start + 1, ...`` (NumPy; each a
        pytree of arrays with a leading batch axis). Batch ``s`` is a pure function of the seed
        and ``s``, so a resumed run continues with exactly the batches it would have seen."""

    @abc.abstractmethod
    def rates(self, steps_per_s: float) -> dict:
        """Throughput figures of the task for a step rate (images/s, tokens/s, ...)."""

    def summarize(self, window: list[dict]) -> dict:
        """One log record from the host metrics of the steps of a window (default: the mean of
        every metric over the window)."""
        return {
            k: np.mean([np.asarray(m[k], np.float64) for m in window], axis=0) for k in window[0]
        }

    @abc.abstractmethod
    def validate(self, model: Any, step: int, run_dir: Path) -> dict:
        """Validation metrics of ``model`` (a host copy) at ``step``; may write figures."""

    def run_info(self) -> dict:
        """Extra fields for ``config.json`` (sizes of the data, parameter counts, ...)."""
        return {}

    # The validation metric that picks ``best.eqx`` (lower is better); None: no best model.
    best_metric: str | None = None


def to_host(tree: Any) -> Any:
    """A NumPy copy of every array leaf. Replicated arrays spanning several processes are read
    from this process's first shard (every shard holds the whole value)."""

    def get(x: Any) -> Any:
        if isinstance(x, jax.Array):
            return np.asarray(x if x.is_fully_addressable else x.addressable_data(0))
        return x

    return jax.tree_util.tree_map(get, tree)


def state_path_for(model_path: str | Path) -> Path:
    """The training-state file saved beside a ``ckpt_<step>.eqx``."""
    p = Path(model_path)
    return p.with_name(p.name.replace("ckpt_", "state_", 1))


def resolve_resume(resume: str | None, run_dir: str | Path) -> Path | None:
    """``None`` -> fresh run; ``"auto"`` -> newest complete checkpoint in ``run_dir`` (or a fresh
    run if there is none); a path -> that checkpoint, which must exist with its state file."""
    if not resume:
        return None
    if resume == "auto":
        return ck.latest_checkpoint(run_dir)
    path = Path(resume)
    if not path.is_file():
        raise InputError(path, "--resume", "no such checkpoint", "a ckpt_*.eqx file or 'auto'")
    if not state_path_for(path).is_file():
        raise InputError(
            path, "--resume", "holds the model only (no training state beside it)",
            "a ckpt_*.eqx written during training, or 'auto' (final.eqx cannot be resumed)",
        )  # fmt: skip
    return path


def check_finite(losses: list[float], step: int, last_good: Path | None) -> None:
    """Raise :class:`TrainingDiverged` when a loss of the window ending at ``step`` is not finite."""
    bad = [x for x in losses if not math.isfinite(x)]
    if bad:
        where = (
            f"the last good checkpoint is {last_good}"
            if last_good
            else "no checkpoint was saved yet"
        )
        raise TrainingDiverged(
            f"loss became {bad[0]} by step {step}; stopping ({where}). Try a lower --lr, "
            "--precision fp32 (train-vqvae), or check the data with `vqturb inspect`."
        )


def _process_rows(batch_size: int, n_devices: int) -> slice:
    n_proc, pid = jax.process_count(), jax.process_index()
    if batch_size % n_devices:
        raise InputError(
            None, "--batch_size", f"{batch_size} is not divisible by the {n_devices} devices",
            "a multiple of the device count",
        )  # fmt: skip
    per = batch_size // n_proc
    return slice(pid * per, (pid + 1) * per)


def run_training(task: TrainTask, run: RunConfig, optim: OptimConfig, config: dict) -> TrainResult:
    """Train ``task`` with ``run`` and ``optim``; ``config`` is the whole run configuration written
    to ``config.json`` (and wandb). Returns where the final model is and the last metrics.

    The run holds its folder's lock throughout, and refuses a folder holding another run unless
    it resumes it or ``run.overwrite`` (:mod:`vqturb.training.run_folder`)."""
    writer = jax.process_index() == 0
    lock = (
        claim_run_folder(run.checkpoint_dir, resume=bool(run.resume), overwrite=run.overwrite)
        if writer
        else None
    )
    try:
        return _train(task, run, optim, config, writer)
    finally:
        if lock is not None:
            lock.release()


def _train(
    task: TrainTask, run: RunConfig, optim: OptimConfig, config: dict, writer: bool
) -> TrainResult:
    run_dir = Path(run.checkpoint_dir)
    total = run.epochs * task.steps_per_epoch
    if run.max_steps is not None:
        total = min(total, run.max_steps)

    mesh = make_mesh()
    rows = _process_rows(run.batch_size, mesh.devices.size)
    optimizer = cached_optimizer(optim, total)
    schedule = learning_rate_schedule(optim, total)
    init_key, prep_key, loop_key = jr.split(jr.key(run.seed), 3)

    resume_path = resolve_resume(run.resume, run_dir)
    model = task.init_model(init_key)
    opt_state = optimizer.init(eqx.filter(model, task.objective.trainable(model)))
    start = 0
    if resume_path is not None:
        header = ck.read_header(resume_path)
        if header.get("kind") != task.kind:
            raise InputError(
                resume_path, "--resume", f"a {header.get('kind')!r} checkpoint",
                f"a {task.kind!r} checkpoint of this run",
            )  # fmt: skip
        saved = header["config"]
        mine = task.model_config()
        diff = sorted(k for k in set(saved) | set(mine) if saved.get(k) != mine.get(k))
        if diff:
            k = diff[0]
            raise InputError(
                resume_path, f"model configuration field {k!r}",
                f"the checkpoint was trained with {saved.get(k)!r}, this run asks for {mine.get(k)!r}"
                + (f" ({len(diff) - 1} more fields differ: {', '.join(diff[1:4])})" if len(diff) > 1 else ""),
                "the same model flags as the run being resumed",
            )  # fmt: skip
        saved_fp = header.get("meta", {}).get("data_fingerprint")
        now_fp = task.meta().get("data_fingerprint")
        if saved_fp and now_fp and saved_fp != now_fp:
            raise InputError(
                resume_path, "data_fingerprint",
                f"the run trained on other data (fingerprint {saved_fp}, the data now gives "
                f"{now_fp}: files, trajectories or the split changed)",
                "the same data to resume on, or a new run (--overwrite or another folder)",
            )  # fmt: skip
        model, header = ck.load_model(resume_path, kind=task.kind)
        opt_state, _ = ck.load_state(state_path_for(resume_path), opt_state)
        start = int(header["meta"]["step"])
        if writer:  # the records after the checkpoint are written again from here
            truncate_metrics(run_dir / "metrics.jsonl", start)
    else:
        model = task.prepare(model, prep_key)
    model = replicate(model, mesh)
    opt_state = replicate(opt_state, mesh)

    meta = task.meta()
    if writer:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            run_dir / "config.json",
            {**config, "meta": meta, "devices": int(mesh.devices.size), "processes": jax.process_count(),
             "total_steps": total, **task.run_info()},
        )  # fmt: skip
        logger = MetricLogger(
            run_dir, wandb_project=run.wandb_project, wandb_name=run.wandb_name,
            config=config, resume=resume_path is not None,
        )  # fmt: skip
    else:
        logger = NullLogger()

    def save(step: int) -> Path:
        mp, sp = ck.checkpoint_paths(run_dir, step)
        if writer:
            # state first: a model file alone is incomplete, so an interruption between the two
            # writes never leaves a checkpoint that `--resume auto` would pick
            ck.save_state(sp, to_host(opt_state), meta={"step": step})
            ck.save_model(mp, to_host(model), kind=task.kind, config=task.model_config(),
                          meta={**meta, "step": step})  # fmt: skip
            ck.prune_checkpoints(run_dir, run.keep_checkpoints)
        return mp

    best_path = run_dir / "best.eqx"
    best = _best_score(best_path, task.best_metric) if resume_path is not None else math.inf
    last_good, last_metrics, val_metrics = resume_path, {}, {}
    history: list[dict] = []
    pending: list[dict] = []  # device metrics of the current window, fetched at log time
    bar = Progress(total=total, desc=task.name, unit="step", disable=not (run.progress and writer))
    bar.set(start)
    t_window = t_start = time.perf_counter()
    try:
        batches = task.batches(start, rows)
        for step in range(start, total):
            batch = shard_batch(next(batches), mesh)
            model, opt_state, metrics = train_step(
                task.objective, model, opt_state, batch, jr.fold_in(loop_key, step), optimizer
            )
            pending.append(metrics)
            done = step + 1
            if done % run.log_every == 0 or done == total:
                window = [to_host(m) for m in pending]
                pending.clear()
                check_finite([float(m["loss"]) for m in window], done, last_good)
                now = time.perf_counter()
                record = task.summarize(window)
                record.update(lr=float(schedule(step)), wall_s=now - t_start,
                              **task.rates(len(window) / (now - t_window)))  # fmt: skip
                t_window = now
                last_metrics = logger.log(done, record, kind="train")
                history.append(last_metrics)
                bar.update(0, loss=f"{float(record['loss']):.4g}")
            if done % run.save_every == 0 or done == total:
                if pending:
                    check_finite([float(to_host(m["loss"])) for m in pending], done, last_good)
                last_good = save(done)
            if (done % run.val_every == 0 or done == total) and writer:
                host_model = to_host(model)
                val_metrics = task.validate(host_model, done, run_dir)
                if val_metrics:
                    logger.log(done, val_metrics, kind="val")
                score = val_metrics.get(task.best_metric) if task.best_metric else None
                if score is not None and math.isfinite(score) and score < best:
                    best = float(score)
                    ck.save_model(best_path, host_model, kind=task.kind,
                                  config=task.model_config(),
                                  meta={**meta, "step": done, "best": {task.best_metric: best}})  # fmt: skip
            bar.update(1)
    finally:
        bar.close()
        logger.close()
    final = run_dir / "final.eqx"
    if writer:
        ck.save_model(final, to_host(model), kind=task.kind, config=task.model_config(),
                      meta={**meta, "step": total})  # fmt: skip
    return TrainResult(final, total, last_metrics, val_metrics, history)


def _best_score(path: Path, metric: str | None) -> float:
    """The score ``best.eqx`` was kept for (a resumed run keeps improving on it), else inf."""
    if metric is None or not path.is_file():
        return math.inf
    return float(ck.read_header(path).get("meta", {}).get("best", {}).get(metric, math.inf))


def run_config_dict(**parts: Any) -> dict:
    """``config.json`` content from dataclasses and dicts (``model=..., train=..., ...``)."""
    return {
        k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in parts.items()
    }
