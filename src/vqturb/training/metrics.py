"""Metric sinks: a JSONL file in the run folder always, Weights & Biases when installed and asked.

Reading ``metrics.jsonl`` back is :func:`vqturb.utils.records.read_metrics` (reports use it without
importing training)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from vqturb.utils.records import to_python


class MetricLogger:
    """Append metrics to ``<run_dir>/metrics.jsonl`` (one JSON object per line) and to wandb.

    Args:
        run_dir: folder of the run; created if missing.
        wandb_project: if given and ``wandb`` imports, metrics also go to this project.
        wandb_name: wandb run name.
        config: run configuration, recorded by wandb.
        resume: append to an existing ``metrics.jsonl`` (a resumed run) instead of truncating it.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        *,
        wandb_project: str | None = None,
        wandb_name: str | None = None,
        config: dict | None = None,
        resume: bool = False,
    ):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / "metrics.jsonl"
        self._f = open(self.path, "a" if resume else "w", buffering=1)  # noqa: SIM115
        self._wandb = None
        self.wandb_status = "off"
        if wandb_project:
            try:
                import wandb  # optional dependency
            except ImportError:
                self.wandb_status = "wandb not installed; logging to metrics.jsonl only"
            else:
                self._wandb = wandb.init(
                    project=wandb_project, name=wandb_name, config=config, resume="allow"
                )
                self.wandb_status = "on"

    def log(self, step: int, metrics: dict[str, Any], **extra: Any) -> dict:
        """Write one record; returns it (JSON-safe)."""
        record = {"step": int(step), "time": time.time(), **to_python(metrics), **extra}
        self._f.write(json.dumps(record, sort_keys=True) + "\n")
        if self._wandb is not None:
            flat = {k: v for k, v in record.items() if isinstance(v, (int, float))}
            self._wandb.log(flat, step=int(step))
        return record

    def close(self) -> None:
        self._f.close()
        if self._wandb is not None:
            self._wandb.finish()

    def __enter__(self) -> MetricLogger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class NullLogger:
    """The sink of processes other than 0 in a multi-process run: records are returned, not written."""

    def log(self, step: int, metrics: dict[str, Any], **extra: Any) -> dict:
        return {"step": int(step), "time": time.time(), **to_python(metrics), **extra}

    def close(self) -> None:
        pass
