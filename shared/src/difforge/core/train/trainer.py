"""The generic training loop every difforge package uses (its settings and result: ``run.py``).

Built on accelerate, so the same script runs as ``python train.py`` on a CPU or one GPU and as
``accelerate launch --num_processes N train.py`` (or ``torchrun``) on N GPUs with DDP::

    def loss_fn(model, batch):
        x0 = batch["x"]
        noise = torch.randn_like(x0)
        t = torch.rand(x0.shape[0], device=x0.device)
        pred = model((1 - t[:, None, None]) * x0 + t[:, None, None] * noise, timestep=t).sample
        return F.mse_loss(pred, noise - x0)  # or (loss, {"mse": ...}) to log more values

    trainer = Trainer(model, loss_fn, dataset, TrainConfig(steps=10_000, out_dir="runs/traj"))
    trainer.train(resume="latest")

What it does: AdamW with linear warmup and cosine decay to ``min_lr``, gradient accumulation and
clipping, bf16 autocast, EMA (diffusers ``EMAModel``), optional ``torch.compile``, tensorboard
logs under ``out_dir/logs``, a tqdm bar, checkpoints under ``out_dir/checkpoints`` every
``ckpt_every`` steps, exact resume (model, optimizer, scheduler, EMA, step, data position and every
process's RNG states), and at the end a ``save_pretrained`` export of a diffusers ``ModelMixin``.

A wall-clock limit (``train(time_limit_s=...)``, for one-shot runs on borrowed machines) is checked
after every step: the run stops cleanly at that step, saves its checkpoint and exports the model,
and a later ``train(resume="latest")`` continues exactly as if it had never stopped (the LR
schedule still runs to ``config.steps``).

Exact resume holds for a dataset (the sampler's position is part of the state) and for a data
factory that honours ``start_batch``. With ``num_workers > 0``, randomness inside the dataset's
``__getitem__`` should derive from the index, because worker RNG states are not checkpointed.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, gather_object, send_to_device, set_seed
from diffusers import ModelMixin
from diffusers.training_utils import EMAModel
from torch import nn
from torch.utils.data import DataLoader

from difforge.core.cli import progress
from difforge.core.config import check_config, config_diff, save_config, to_dict
from difforge.core.errors import CheckpointError, UserError
from difforge.core.io import exclusive_lock
from difforge.core.train.checkpoint import (
    atomic_dir,
    capture_rng_state,
    check_model_config,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    remove_unfinished_checkpoints,
    restore_rng_state,
    save_checkpoint,
)
from difforge.core.train.run import (
    LossFn,
    StopReason,
    TrainConfig,
    TrainResult,
    warmup_cosine,
)
from difforge.core.train.sampler import ResumableBatchSampler

__all__ = ["Trainer"]

logger = logging.getLogger(__name__)

# Settings that may change between a checkpoint and its resume without changing the results.
_RESUME_SAFE_KEYS = {
    "log_every",
    "ckpt_every",
    "keep_checkpoints",
    "out_dir",
    "num_workers",
    "tensorboard",
    "progress",
    "compile",
}


class Trainer:
    """Trains ``model`` on ``train_data`` by minimising ``loss_fn(model, batch)``.

    Args:
        model: the module to train. Its state dict is what checkpoints hold; a diffusers
            ``ModelMixin`` is also exported with ``save_pretrained`` at the end.
        loss_fn: ``loss_fn(model, batch)`` -> scalar loss or ``(loss, logs)``. ``model`` is the
            wrapped training model (DDP / compiled): call it, don't read its attributes.
        train_data: a map-style dataset (``__len__`` + ``__getitem__``), read through a seeded
            :class:`ResumableBatchSampler`, or a :data:`DataFactory` for generated data.
        config: the run settings.
        model_config: the architecture config a resume must match; defaults to ``model.config``
            for a diffusers model (or any model whose ``config`` is a dataclass or mapping).
        collate_fn: batches a list of dataset items (torch's default collate when None).
        optimizer: replaces the default AdamW built from ``config``; the LR schedule multiplies
            each parameter group's initial learning rate.
        accelerator: a configured ``Accelerator`` (e.g. with DDP kwargs); by default one is made.
            Precision is set by ``config.mixed_precision``, not by the accelerator.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        train_data: Any,
        config: TrainConfig,
        *,
        model_config: Any = None,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        accelerator: Accelerator | None = None,
    ) -> None:
        self.config = config
        self.out_dir = Path(config.out_dir)
        self.checkpoint_dir = self.out_dir / "checkpoints"
        # mixed_precision stays "no" here: bf16 autocast is applied around loss_fn below, which
        # also covers loss code outside model.forward, and accelerate's process-wide state
        # cannot switch precision between two trainers in one process.
        self.accelerator = accelerator or Accelerator(
            cpu=not torch.cuda.is_available(),  # as process_state(): gloo processes on CPUs
            mixed_precision="no",
            log_with="tensorboard" if config.tensorboard else None,
            project_config=ProjectConfiguration(
                project_dir=str(self.out_dir), logging_dir=str(self.out_dir / "logs")
            ),
        )
        self.model = model
        self.model_config = _default_model_config(model) if model_config is None else model_config
        self.loss_fn = loss_fn
        self.train_data = train_data
        self.collate_fn = collate_fn
        if optimizer is None:
            optimizer = torch.optim.AdamW(
                model.parameters(),
                lr=config.lr,
                betas=config.betas,
                weight_decay=config.weight_decay,
                # One fused kernel instead of a dozen per step: faster on GPUs, same update rule.
                fused=self.accelerator.device.type == "cuda",
            )
        # Not passed to accelerator.prepare: its scheduler wrapper steps num_processes times per
        # step, which would shorten warmup and decay on several GPUs.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            functools.partial(
                warmup_cosine,
                warmup_steps=config.warmup_steps,
                total_steps=config.steps,
                min_ratio=config.min_lr / config.lr,
            ),
        )
        train_model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.train_model = torch.compile(train_model) if config.compile else train_model
        self.ema: EMAModel | None = None
        if config.ema_decay > 0:
            self.ema = EMAModel(
                model.parameters(),
                decay=config.ema_decay,
                foreach=True,
                model_cls=type(model) if isinstance(model, ModelMixin) else None,
                model_config=model.config if isinstance(model, ModelMixin) else None,
            )
        self.step = 0
        self.samples_seen = 0  # global position in the data stream (all processes together)
        self.batches_seen = 0  # micro-batches this process has read

    # ------------------------------------------------------------------------------------------
    # Training
    # ------------------------------------------------------------------------------------------

    def train(
        self,
        resume: str | Path | None = None,
        *,
        stop_at_step: int | None = None,
        time_limit_s: float = 0.0,
        started_at: float | None = None,
        on_log: Callable[[int, dict[str, float]], None] | None = None,
    ) -> TrainResult:
        """Run until ``config.steps``; see :meth:`_train` for the arguments.

        The main process holds ``out_dir/.lock`` for the whole run, so a second run on the same
        folder stops with one line instead of overwriting this one's checkpoints; checkpoint
        folders a killed run left half-written are removed first.
        """
        main = self.accelerator.is_main_process
        with exclusive_lock(self.out_dir, "training run") if main else contextlib.nullcontext():
            if main:
                remove_unfinished_checkpoints(self.checkpoint_dir)
            return self._train(
                resume,
                stop_at_step=stop_at_step,
                time_limit_s=time_limit_s,
                started_at=started_at,
                on_log=on_log,
            )

    def _train(
        self,
        resume: str | Path | None,
        *,
        stop_at_step: int | None,
        time_limit_s: float,
        started_at: float | None,
        on_log: Callable[[int, dict[str, float]], None] | None,
    ) -> TrainResult:
        """Run until ``config.steps`` (or ``stop_at_step``, for a run split in parts).

        ``resume``: None starts fresh (refused if ``out_dir`` already holds checkpoints);
        ``"latest"`` continues from the newest readable checkpoint in ``out_dir`` if there is one
        (a corrupt newest one is skipped with a warning); a path continues from that checkpoint.

        ``time_limit_s`` > 0 stops the run after the first step that ends ``time_limit_s`` seconds
        or more after ``started_at`` (a ``time.monotonic()`` value; default: now, so pass an
        earlier one to count preparation work into the limit). At least one step runs. The stop
        saves a checkpoint and exports the model like the end of the run does.

        ``on_log(step, logs)`` is called on the main process at every log step (e.g. to print
        progress lines where no progress bar shows, such as in a log file).
        """
        check_config(time_limit_s >= 0, "time_limit_s", ">= 0", time_limit_s)
        called_at = time.monotonic()
        deadline = (called_at if started_at is None else started_at) + time_limit_s
        cfg, acc = self.config, self.accelerator
        checkpoint = self._resume_path(resume)
        if checkpoint is not None:
            self.load_checkpoint(checkpoint)
        else:
            set_seed(cfg.seed, device_specific=True)
        end = cfg.steps if stop_at_step is None else min(stop_at_step, cfg.steps)
        if acc.is_main_process:
            save_config(
                {"train": cfg, "model": self.model_config}, self.out_dir / "train_config.json"
            )
        if cfg.tensorboard:
            acc.init_trackers("train", config=_hparams(cfg))

        autocast = torch.autocast(
            acc.device.type, dtype=torch.bfloat16, enabled=cfg.mixed_precision == "bf16"
        )
        batches = self._batches()
        self.train_model.train()  # dropout on, whatever mode the model was handed over in
        show_bar = cfg.progress and acc.is_main_process
        bar = progress(
            total=cfg.steps, initial=self.step, desc="train", disable=None if show_bar else True
        )
        window = _LogWindow(acc.device)
        logs: dict[str, float] = {}
        last_saved: Path | None = None
        stopped_by: StopReason = "steps" if end == cfg.steps else "stop_at_step"
        while self.step < end:
            for micro in range(cfg.grad_accum):
                batch = send_to_device(self._next_batch(batches), acc.device, non_blocking=True)
                # Gradients are all-reduced only on the last micro-batch of a step.
                sync = (
                    contextlib.nullcontext()
                    if micro == cfg.grad_accum - 1
                    else acc.no_sync(self.train_model)
                )
                with sync:
                    with autocast:
                        loss, extra = _split_loss(self.loss_fn(self.train_model, batch))
                    acc.backward(loss / cfg.grad_accum)
                window.add(loss, extra)
                self.batches_seen += 1
                self.samples_seen += cfg.batch_size * acc.num_processes
            if cfg.grad_clip > 0:
                window.grad_norm = acc.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            if self.ema is not None:
                self.ema.step(self.model.parameters())
            self.step += 1
            bar.update(1)
            out_of_time = time_limit_s > 0 and self.step < end and self._time_is_up(deadline)
            last = self.step == end or out_of_time
            if self.step % cfg.log_every == 0 or last:
                logs = window.flush(acc, self.scheduler.get_last_lr()[0], cfg.batch_size)
                acc.log(logs, step=self.step)
                if on_log is not None and acc.is_main_process:
                    on_log(self.step, logs)
                bar.set_postfix(loss=f"{logs['loss']:.4g}", lr=f"{logs['lr']:.3g}", refresh=False)
            if (cfg.ckpt_every and self.step % cfg.ckpt_every == 0) or last:
                last_saved = self.save_checkpoint()
            if out_of_time:
                stopped_by = "time_limit"
                logger.info(
                    "time limit of %.0f s reached: stopped at step %d of %d (checkpoint saved)",
                    time_limit_s,
                    self.step,
                    cfg.steps,
                )
                break
        bar.close()
        finished = self.step >= cfg.steps or stopped_by == "time_limit"
        export_dir = self.export_model() if finished else None
        for tracker in acc.trackers:  # not end_training(): it would also end the process group
            tracker.finish()
        return TrainResult(
            step=self.step,
            logs=logs,
            checkpoint=last_saved,
            export_dir=export_dir,
            planned_steps=cfg.steps,
            seconds=time.monotonic() - called_at,
            stopped_by=stopped_by,
        )

    def _time_is_up(self, deadline: float) -> bool:
        up = time.monotonic() >= deadline
        acc = self.accelerator
        if acc.num_processes == 1:
            return up
        # Every process must stop at the same step, or the others would wait forever in the next
        # gradient all-reduce: stop when any process is out of time (one tiny all-reduce a step).
        flag = torch.tensor([float(up)], device=acc.device)
        return bool(acc.reduce(flag, reduction="sum").item() > 0)

    def load_ema_weights(self) -> nn.Module:
        """Put the EMA weights into the model (no-op without EMA) and switch it to eval mode, for
        using or saving the model once training is over; returns the model."""
        if self.ema is not None:
            self.ema.copy_to(self.model.parameters())
        return self.model.eval()

    def _batches(self) -> Iterator[Any]:
        cfg, acc = self.config, self.accelerator
        data = self.train_data
        if hasattr(data, "__len__") and hasattr(data, "__getitem__"):
            sampler = ResumableBatchSampler(
                len(data),
                cfg.batch_size,
                seed=cfg.seed,
                shuffle=cfg.shuffle,
                rank=acc.process_index,
                world_size=acc.num_processes,
                start_sample=self.samples_seen,
            )
            loader = DataLoader(
                data,
                batch_sampler=sampler,
                num_workers=cfg.num_workers,
                collate_fn=self.collate_fn,
                pin_memory=acc.device.type == "cuda",
                # Its own generator: creating the iterator must not draw from the global RNG,
                # or a resumed run would diverge from an uninterrupted one.
                generator=torch.Generator().manual_seed(cfg.seed + self.batches_seen),
            )
            return iter(loader)
        if callable(data):
            return iter(data(self.batches_seen))
        raise TypeError(
            "train_data must be a map-style dataset or a callable start_batch -> batches"
        )

    def _next_batch(self, batches: Iterator[Any]) -> Any:
        try:
            return next(batches)
        except StopIteration:
            raise UserError(
                f"the training data ran out after {self.batches_seen} batches; a data factory "
                "must yield batches for the whole run"
            ) from None

    # ------------------------------------------------------------------------------------------
    # Checkpoints and export
    # ------------------------------------------------------------------------------------------

    def save_checkpoint(self) -> Path:
        """Save the full training state at the current step (call on every process)."""
        acc = self.accelerator
        rng_states = gather_object([capture_rng_state()])
        path = self.checkpoint_dir / f"step_{self.step:08d}"
        if acc.is_main_process:
            components: dict[str, Any] = {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": rng_states,
                "data": {"samples_seen": self.samples_seen, "batches_seen": self.batches_seen},
            }
            if self.ema is not None:
                components["ema"] = self.ema.state_dict()
            path = save_checkpoint(
                self.checkpoint_dir,
                self.step,
                components,
                config=self.config,
                model_config=self.model_config,
            )
            prune_checkpoints(self.checkpoint_dir, self.config.keep_checkpoints)
        acc.wait_for_everyone()
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore the full training state; everything is checked before anything is changed."""
        ckpt = load_checkpoint(path)
        check_model_config(ckpt, to_dict(self.model_config))
        model_state = ckpt.components.get("model")
        if model_state is None:
            raise CheckpointError(f"checkpoint {ckpt.path} holds no model weights")
        _check_state_matches(ckpt.path, self.model.state_dict(), model_state)
        if (self.ema is not None) != ("ema" in ckpt.components):
            saved = "with" if "ema" in ckpt.components else "without"
            raise CheckpointError(
                f"checkpoint {ckpt.path} was saved {saved} EMA; match ema_decay to resume it"
            )
        changed = [
            k for k in config_diff(ckpt.config or {}, self.config) if k not in _RESUME_SAFE_KEYS
        ]
        if changed:
            logger.warning(
                "resuming %s with changed training settings (%s): the run will differ from an "
                "uninterrupted one",
                ckpt.path,
                ", ".join(changed),
            )

        self.model.load_state_dict(model_state)
        try:
            self.optimizer.load_state_dict(ckpt.components["optimizer"])
        except (KeyError, ValueError) as exc:
            raise CheckpointError(
                f"checkpoint {ckpt.path} has an unusable optimizer state: {exc}"
            ) from None
        self.scheduler.load_state_dict(ckpt.components["scheduler"])
        if self.ema is not None:
            self.ema.load_state_dict(ckpt.components["ema"])
            self.ema.to(device=self.accelerator.device)
        self.step = ckpt.step
        self.samples_seen = int(ckpt.components["data"]["samples_seen"])
        self.batches_seen = int(ckpt.components["data"]["batches_seen"])
        rng_states = ckpt.components["rng"]
        rank = self.accelerator.process_index
        if len(rng_states) != self.accelerator.num_processes:
            logger.warning(
                "checkpoint was written by %d processes, now %d: RNG streams will differ",
                len(rng_states),
                self.accelerator.num_processes,
            )
        restore_rng_state(rng_states[rank % len(rng_states)])

    def export_model(self) -> Path | None:
        """``save_pretrained`` a diffusers model into ``out_dir/model`` (EMA weights when EMA is on;
        the raw weights then go to ``out_dir/model_raw``). Returns None for other models."""
        acc = self.accelerator
        if not isinstance(self.model, ModelMixin):
            return None
        export_dir = self.out_dir / "model"
        if acc.is_main_process:
            if self.ema is None:
                with atomic_dir(export_dir, overwrite=True) as tmp:
                    self.model.save_pretrained(tmp)
            else:
                with atomic_dir(self.out_dir / "model_raw", overwrite=True) as tmp:
                    self.model.save_pretrained(tmp)
                params = list(self.model.parameters())
                self.ema.store(params)
                self.ema.copy_to(params)
                try:
                    with atomic_dir(export_dir, overwrite=True) as tmp:
                        self.model.save_pretrained(tmp)
                finally:
                    self.ema.restore(params)
        acc.wait_for_everyone()
        return export_dir

    def _resume_path(self, resume: str | Path | None) -> Path | None:
        if resume is None:
            existing = latest_checkpoint(self.checkpoint_dir)
            if existing is not None:
                raise UserError(
                    f"{self.out_dir} already holds checkpoints ({existing.name}); continue it "
                    "with --resume (in Python: resume='latest') or choose another folder"
                )
            return None
        if str(resume) == "latest":
            first_error: CheckpointError | None = None
            for candidate in reversed(list_checkpoints(self.checkpoint_dir)):
                try:
                    load_checkpoint(candidate)
                except CheckpointError as exc:
                    logger.warning("skipping unusable checkpoint: %s", exc)
                    first_error = first_error or exc
                    continue
                return candidate
            if first_error is not None:  # checkpoints exist but none is usable: never start over
                raise first_error
            return None
        return Path(resume)


class _LogWindow:
    """Sums of the loss and extra logs since the last log line, kept on the device so that
    training never waits for a ``.item()`` between log steps."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.grad_norm: torch.Tensor | None = None
        self._reset()

    def _reset(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.micro_batches = 0
        self.started = time.perf_counter()

    def add(self, loss: torch.Tensor, extra: Mapping[str, Any]) -> None:
        for key, value in {"loss": loss, **extra}.items():
            value = torch.as_tensor(value, device=self.device).detach().float()
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.micro_batches += 1

    def flush(self, acc: Accelerator, lr: float, batch_size: int) -> dict[str, float]:
        keys = sorted(self.sums)
        means = torch.stack([self.sums[k] for k in keys]) / self.micro_batches
        means = acc.reduce(means, reduction="mean").tolist()
        elapsed = time.perf_counter() - self.started
        logs = dict(zip(keys, means))
        logs["lr"] = lr
        logs["samples_per_s"] = (
            self.micro_batches * batch_size * acc.num_processes / max(elapsed, 1e-9)
        )
        if self.grad_norm is not None:
            logs["grad_norm"] = float(self.grad_norm)
        self._reset()
        return logs


def _split_loss(out: Any) -> tuple[torch.Tensor, Mapping[str, Any]]:
    loss, extra = out if isinstance(out, tuple) else (out, {})
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
        raise TypeError("loss_fn must return a scalar tensor or (scalar tensor, logs dict)")
    return loss, extra


def _default_model_config(model: nn.Module) -> Any:
    config = getattr(model, "config", None)
    if isinstance(config, Mapping):
        # diffusers keeps bookkeeping such as _name_or_path beside the init arguments.
        return {k: v for k, v in config.items() if not k.startswith("_")}
    if config is not None and hasattr(config, "__dataclass_fields__"):
        return config
    return None


def _check_state_matches(
    path: Path, expected: Mapping[str, torch.Tensor], saved: Mapping[str, Any]
) -> None:
    missing = [k for k in expected if k not in saved]
    unexpected = [k for k in saved if k not in expected]
    mismatched = [
        k for k in expected if k in saved and tuple(saved[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    for label, keys in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("wrong shape", mismatched),
    ):
        if keys:
            problems.append(f"{label}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}")
    if problems:
        raise CheckpointError(f"checkpoint {path} does not fit the model ({'; '.join(problems)})")


def _hparams(config: TrainConfig) -> dict[str, Any]:
    # tensorboard's hparams take only scalars and strings.
    return {
        k: v if isinstance(v, (int, float, str, bool)) else str(v)
        for k, v in to_dict(config).items()
    }
