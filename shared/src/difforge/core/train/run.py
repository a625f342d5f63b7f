"""What a training run is told and what it reports: the settings (:class:`TrainConfig`), the
result (:class:`TrainResult`), the learning-rate schedule, the loss and data-factory signatures,
and this process's place in a multi-process launch (:func:`process_state`)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from accelerate import PartialState
from torch import nn

from difforge.core.config import check_config

__all__ = [
    "DataFactory",
    "LossFn",
    "StopReason",
    "TrainConfig",
    "TrainResult",
    "process_state",
    "warmup_cosine",
]

LossFn = Callable[[nn.Module, Any], "torch.Tensor | tuple[torch.Tensor, Mapping[str, Any]]"]
"""``loss_fn(model, batch) -> loss`` or ``(loss, logs)``; ``logs`` values are averaged and logged."""

DataFactory = Callable[[int], Iterable[Any]]
"""``factory(start_batch) -> batches``: this process's batches from micro-batch ``start_batch`` on.
Every process of a multi-GPU launch calls it: draw per-process data from
``process_state().process_index`` (and ``num_processes``), or all processes train on the same
batches."""


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run. ``batch_size`` is per process and per micro-batch: one
    optimizer step sees ``batch_size * grad_accum * num_processes`` samples."""

    steps: int = 10_000
    batch_size: int = 32
    lr: float = 1e-4
    min_lr: float = 0.0
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    grad_accum: int = 1
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping
    mixed_precision: Literal["no", "bf16"] = "no"
    ema_decay: float = 0.0  # 0 disables EMA
    log_every: int = 50
    ckpt_every: int = 1000  # 0: only the final checkpoint
    keep_checkpoints: int = 3  # keep the newest K checkpoints; 0 keeps all
    seed: int = 0
    out_dir: str = "runs/train"
    compile: bool = False
    num_workers: int = 0
    shuffle: bool = True
    tensorboard: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        for key in ("steps", "batch_size", "grad_accum", "log_every"):
            check_config(getattr(self, key) >= 1, key, ">= 1", getattr(self, key))
        for key in (
            "warmup_steps",
            "ckpt_every",
            "keep_checkpoints",
            "num_workers",
            "weight_decay",
            "grad_clip",
        ):
            check_config(getattr(self, key) >= 0, key, ">= 0", getattr(self, key))
        check_config(self.lr > 0, "lr", "> 0", self.lr)
        check_config(
            0 <= self.min_lr <= self.lr, "min_lr", f"between 0 and lr={self.lr}", self.min_lr
        )
        check_config(0 <= self.ema_decay < 1, "ema_decay", "in [0, 1)", self.ema_decay)
        check_config(
            all(0 <= b < 1 for b in self.betas), "betas", "two values in [0, 1)", self.betas
        )


StopReason = Literal["steps", "stop_at_step", "time_limit"]


@dataclass
class TrainResult:
    """What :meth:`Trainer.train` did: the step reached, the last logged values, where it wrote,
    the planned number of steps, the seconds this call took and why it stopped (``steps``: the run
    is complete; ``stop_at_step``; ``time_limit``: the wall-clock limit ended it early)."""

    step: int
    logs: dict[str, float]
    checkpoint: Path | None
    export_dir: Path | None
    planned_steps: int
    seconds: float
    stopped_by: StopReason

    def summary(self) -> dict[str, Any]:
        """JSON-ready record of the run for metrics files."""
        return {
            "steps": self.step,
            "planned_steps": self.planned_steps,
            "stopped_by": self.stopped_by,
            "seconds": round(self.seconds, 2),
            "final_logs": self.logs,
        }


def process_state() -> PartialState:
    """This process's place in the launch, as the :class:`Trainer` sees it: one process, or one
    of ``torchrun``/``accelerate launch``'s (one per GPU; gloo processes where there is no GPU,
    which accelerate only allows when asked to stay on the CPU). Its ``process_index``,
    ``num_processes``, ``device`` and ``main_process_first()`` let code around a Trainer (data
    factories, preprocessing, exports) share the work between the processes."""
    return PartialState(cpu=not torch.cuda.is_available())


def warmup_cosine(step: int, *, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """LR multiplier: linear warmup over ``warmup_steps``, then cosine decay to ``min_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    done = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * done))
