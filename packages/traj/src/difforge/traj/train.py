"""Training TrajDLM on a HOSER-layout dataset folder through the core :class:`Trainer`.

``train(data_dir, model_dir, config)`` reads ``roadmap.geo``/``roadmap.rel`` and ``train.csv``,
fills the data-dependent model sizes (:func:`~difforge.traj.model.resolve_config`: vocabulary,
block size from the trip lengths, canvas length), and trains with:

- the BD3-LM objective (:class:`~difforge.core.diffusion.BlockDiffusionLoss`: per-block noise
  levels, the vectorised ``x_t ⊕ x_0`` pass) on ``[origin, s1, ..., destination, EOS...]`` padded
  with ``[EOS]`` to a multiple of the block size (dLLM's BD3LM collator); the origin is never
  masked. Block size 1 uses the linear schedule with every token masked, i.e. exactly the
  autoregressive next-token loss (the AR baseline of the same backbone);
- condition dropout (:class:`~difforge.core.diffusion.guidance.ConditionDropout`, p = 0.1): origin,
  destination and time bucket are dropped together, so guidance works at sampling time;
- the travel-time head's Gaussian negative log-likelihood on ``log1p(seconds)`` of every segment
  whose exit time is known (all but the last), weighted by ``duration_weight``;
- AdamW (TrajDLM: weight decay 0.01), warmup + cosine, gradient clipping, EMA, bf16 autocast on CUDA
  (fp32 on CPU), tensorboard logs, checkpoints and exact resume (``model_dir/train/``).

Batches are drawn length-bucketed (pools of 64 batches sorted by length, batch order shuffled;
a pure function of (seed, epoch), so resume is exact) and padded only to their own longest trip.
At the end the EMA weights are saved to ``model_dir`` (:meth:`TrajDLM.save_pretrained`).
``time_limit_s`` > 0 stops training after the step that passes that many seconds of training
(checked every step by the core Trainer); the model is saved all the same, and ``--resume``
continues the run exactly.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from difforge.core.config import check_config, to_dict
from difforge.core.diffusion import BlockDiffusionLoss, MaskSchedule
from difforge.core.diffusion.guidance import ConditionDropout
from difforge.core.errors import UserError
from difforge.core.nn import num_parameters
from difforge.core.train import TrainConfig, Trainer, process_state
from difforge.traj.constraint import HopDistances
from difforge.traj.data.hoser import Trajectories, read_roadmap, read_trajectories
from difforge.traj.data.segments import SegmentGraph
from difforge.traj.model import (
    SamplingConfig,
    TrajDLM,
    TrajDLMConfig,
    resolve_config,
    round_up,
    time_bucket,
)
from difforge.traj.sample import departure_minutes

POOL_BATCHES = 64  # batches sorted by length together


def _default_train() -> TrainConfig:
    return TrainConfig(
        steps=20_000,
        batch_size=128,
        lr=1e-3,
        min_lr=1e-4,
        weight_decay=0.01,
        warmup_steps=500,
        mixed_precision="bf16",
        ema_decay=0.999,
        log_every=100,
        ckpt_every=2000,
        keep_checkpoints=2,
    )


@dataclass(frozen=True)
class TrajTrainConfig:
    """A training run: model architecture, core trainer settings, sampling defaults, loss options.

    ``train.mixed_precision: bf16`` applies on CUDA only; CPU runs train in fp32. ``train.out_dir``
    is set by :func:`train` (``model_dir/train``).
    """

    model: TrajDLMConfig = field(default_factory=TrajDLMConfig)
    train: TrainConfig = field(default_factory=_default_train)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    cond_dropout: float = 0.1
    duration_weight: float = 0.1
    weighting: Literal["schedule", "effective"] = "effective"
    # sampling.max_detour, when not set, becomes this quantile of the training trips' detours
    # (segments beyond the fewest-hop route between their ends).
    detour_quantile: float = 0.99
    time_limit_s: float = 0.0  # stop training after the step passing this (0: no limit)

    def __post_init__(self) -> None:
        check_config(0 <= self.cond_dropout < 1, "cond_dropout", "in [0, 1)", self.cond_dropout)
        check_config(
            0 < self.detour_quantile <= 1, "detour_quantile", "in (0, 1]", self.detour_quantile
        )
        check_config(self.duration_weight >= 0, "duration_weight", ">= 0", self.duration_weight)
        check_config(self.time_limit_s >= 0, "time_limit_s", ">= 0", self.time_limit_s)


################################################################################
#                                    Data                                      #
################################################################################


class TripDataset:
    """Training trips as token sequences with their condition and per-segment durations.

    Trips are stored pre-padded (``[EOS]`` tokens, NaN durations) in two arrays, so that a batch
    is a slice of them rather than a Python loop over its rows.
    """

    def __init__(
        self, trips: Trajectories, config: TrajDLMConfig, skipped: Counter | None = None
    ) -> None:
        self.config = config
        self.skipped = Counter(skipped or {})
        kept = []
        for k, rids in enumerate(trips.rids):
            if len(rids) < 2:
                self.skipped["shorter than 2 segments"] += 1
            elif len(rids) > config.max_len:
                self.skipped[f"longer than max_len={config.max_len}"] += 1
            else:
                kept.append(k)
        if not kept:
            raise UserError("no usable training trips (need 2 or more segments within max_len)")
        self.lengths = np.array([len(trips.rids[k]) for k in kept])
        width = round_up(int(self.lengths.max()), config.block_size)
        self.tokens = np.full((len(kept), width), config.eos_id, dtype=np.int64)
        self.log_seconds = np.full((len(kept), width), np.nan, dtype=np.float32)
        starts = np.full(len(kept), np.datetime64("NaT"), dtype="datetime64[s]")
        for row, k in enumerate(kept):
            rids, times = trips.rids[k], trips.times[k]
            self.tokens[row, : len(rids)] = rids
            if times is not None:
                seconds = np.diff(times.astype("datetime64[s]").astype(np.int64))
                self.log_seconds[row, : len(rids) - 1] = np.log1p(seconds)
                starts[row] = times[0]
        self.minutes = departure_minutes(starts)
        self.destinations = self.tokens[np.arange(len(kept)), self.lengths - 1]

    def __len__(self) -> int:
        return len(self.lengths)

    def collate(self, indices: np.ndarray) -> dict[str, Tensor]:
        """A padded batch: tokens ``(B, L)`` with ``L`` a multiple of the block size, the maskable
        positions (1 up to each trip's own padded end), condition ids and duration targets."""
        mc = self.config
        block = mc.block_size
        lengths = self.lengths[indices]
        width = round_up(int(lengths.max()), block)
        tokens = torch.from_numpy(self.tokens[indices, :width])
        columns = np.arange(width)
        ends = -(-lengths // block) * block  # each trip's own end, rounded up to the block
        maskable = (columns >= 1) & (columns < ends[:, None])
        minute = torch.from_numpy(self.minutes[indices])
        return {
            "tokens": tokens,
            "maskable": torch.from_numpy(maskable),
            "origin": tokens[:, 0].clone(),
            "destination": torch.from_numpy(self.destinations[indices]),
            "time_bucket": time_bucket(minute, mc.time_buckets),
            "minute": minute.clamp(min=0),
            "log_seconds": torch.from_numpy(self.log_seconds[indices, :width]),
        }


class LengthBucketedBatches:
    """Data factory for the core Trainer: endless batches, a pure function of (seed, position).

    Each epoch is a seeded permutation cut into pools of :data:`POOL_BATCHES` batches; a pool is
    sorted by trip length and cut into batches, and the epoch's batches are shuffled. Called with
    ``start_batch`` it resumes exactly at that batch. Under a multi-process launch each process
    takes every ``num_processes``-th batch of an epoch (its own share, not copies of the others').
    """

    def __init__(
        self,
        dataset: TripDataset,
        batch_size: int,
        seed: int,
        process_index: int = 0,
        num_processes: int = 1,
    ) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.process_index = process_index
        self.num_processes = num_processes

    def epoch(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.dataset))
        pool = POOL_BATCHES * self.batch_size
        batches = []
        for lo in range(0, len(order), pool):
            members = order[lo : lo + pool]
            members = members[np.argsort(self.dataset.lengths[members], kind="stable")]
            batches.extend(
                members[i : i + self.batch_size] for i in range(0, len(members), self.batch_size)
            )
        rng.shuffle(batches)
        return batches

    def share(self, epoch: int) -> list[np.ndarray]:
        """This process's batches of ``epoch``."""
        return self.epoch(epoch)[self.process_index :: self.num_processes]

    def __call__(self, start_batch: int) -> Iterator[dict[str, Tensor]]:
        per_epoch = len(self.share(0))
        if per_epoch == 0:
            raise UserError(
                f"{len(self.dataset)} training trips make fewer batches than the "
                f"{self.num_processes} processes of this launch; use fewer processes"
            )
        epoch, skip = divmod(start_batch, per_epoch)
        while True:
            for indices in self.share(epoch)[skip:]:
                yield self.dataset.collate(indices)
            epoch, skip = epoch + 1, 0


################################################################################
#                                    Loss                                      #
################################################################################


def make_loss(config: TrajTrainConfig, model_config: TrajDLMConfig):
    """``loss_fn(model, batch) -> (loss, logs)``: block diffusion + weighted travel-time NLL."""
    mc = model_config
    if mc.block_size == 1:
        # Every token masked, linear schedule: exactly the next-token cross-entropy.
        schedule = MaskSchedule(kind="linear", t_min=1.0, t_max=1.0)
        weighting = "schedule"
    else:
        schedule, weighting = MaskSchedule(), config.weighting
    diffusion = BlockDiffusionLoss(
        mc.mask_id, mc.block_size, schedule=schedule, weighting=weighting
    )
    dropout = ConditionDropout(
        config.cond_dropout,
        null_values={
            "origin": mc.num_segments,
            "destination": mc.num_segments,
            "time_bucket": mc.time_buckets,
        },
    )

    def loss_fn(model: torch.nn.Module, batch: dict[str, Tensor]) -> tuple[Tensor, dict]:
        condition = dropout({k: batch[k] for k in ("origin", "destination", "time_bucket")})
        denoise = diffusion(model, batch["tokens"], maskable=batch["maskable"], **condition)
        mean, log_std = (
            model(batch["tokens"], task="duration", departure_minute=batch["minute"])
            .sample.float()
            .unbind(-1)
        )
        target = batch["log_seconds"]
        known = torch.isfinite(target)
        # NaN targets must not enter the graph at all: 0 * NaN gradients would still be NaN.
        z = (target.nan_to_num(0.0) - mean) / log_std.exp()
        nll = (0.5 * z.square() + log_std)[known].mean() if bool(known.any()) else mean.sum() * 0
        loss = denoise + config.duration_weight * nll
        return loss, {"diffusion": denoise.detach(), "duration_nll": nll.detach()}

    return loss_fn


################################################################################
#                                  Training                                    #
################################################################################


@dataclass
class TrainSummary:
    model_dir: Path
    steps: int
    planned_steps: int
    stopped_by: str
    logs: dict[str, float]
    parameters: int
    train_trips: int
    skipped: dict[str, int]
    config: TrajDLMConfig


def detour_limit(graph: SegmentGraph, trips: Trajectories, quantile: float) -> int:
    """The ``quantile`` of the trips' detours: segments beyond the fewest-hop route."""
    origins = np.array([r[0] for r in trips.rids])
    destinations = np.array([r[-1] for r in trips.rids])
    fewest = HopDistances(graph).between(origins, destinations)
    detours = np.array([len(r) - 1 for r in trips.rids]) - fewest
    return int(np.ceil(np.quantile(detours, quantile)))


def _tensorboard_available() -> bool:
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def read_training_data(data_dir: Path) -> tuple[SegmentGraph, Trajectories]:
    graph = read_roadmap(data_dir)
    trips = read_trajectories(data_dir / "train.csv", graph, on_invalid="skip")
    return graph, trips


def train(
    data_dir: str | Path,
    model_dir: str | Path,
    config: TrajTrainConfig,
    *,
    resume: bool = False,
    show_progress: bool | None = None,
) -> TrainSummary:
    """Train on ``data_dir/train.csv`` and save the model to ``model_dir`` (module docstring)."""
    data_dir, model_dir = Path(data_dir), Path(model_dir)
    if (model_dir / "config.json").exists() and not resume:
        raise UserError(f"{model_dir} already holds a trained model; choose another --out")
    graph, trips = read_training_data(data_dir)
    lengths = np.array([len(r) for r in trips.rids])
    model_config = resolve_config(config.model, graph, lengths[lengths >= 2])
    dataset = TripDataset(trips, model_config, trips.skipped)

    train_cfg = dataclasses.replace(
        config.train,
        out_dir=str(model_dir / "train"),
        progress=config.train.progress if show_progress is None else show_progress,
    )
    if not torch.cuda.is_available() and train_cfg.mixed_precision == "bf16":
        train_cfg = dataclasses.replace(train_cfg, mixed_precision="no")  # bf16 only on CUDA
    if train_cfg.tensorboard and not _tensorboard_available():
        print("note: tensorboard is not installed; training without tensorboard logs")
        train_cfg = dataclasses.replace(train_cfg, tensorboard=False)
    sampling = config.sampling
    if sampling.max_detour is None:
        sampling = dataclasses.replace(
            sampling, max_detour=detour_limit(graph, trips, config.detour_quantile)
        )
    config = dataclasses.replace(config, model=model_config, train=train_cfg, sampling=sampling)

    torch.manual_seed(train_cfg.seed)
    model = TrajDLM(model_config).attach_graph(graph)
    state = process_state()
    trainer = Trainer(
        model,
        make_loss(config, model_config),
        LengthBucketedBatches(
            dataset,
            train_cfg.batch_size,
            train_cfg.seed,
            process_index=state.process_index,
            num_processes=state.num_processes,
        ),
        train_cfg,
        model_config=model_config,
    )
    result = trainer.train(resume="latest" if resume else None, time_limit_s=config.time_limit_s)
    summary = TrainSummary(
        model_dir=model_dir,
        steps=result.step,
        planned_steps=result.planned_steps,
        stopped_by=result.stopped_by,
        logs=result.logs,
        parameters=num_parameters(model),
        train_trips=len(dataset),
        skipped=dict(dataset.skipped),
        config=model_config,
    )
    if not state.is_main_process:  # one writer of the model folder
        state.wait_for_everyone()
        return summary

    params = list(model.parameters())
    if trainer.ema is not None:  # export the EMA weights, keep the raw ones in the trainer
        trainer.ema.store(params)
        trainer.ema.copy_to(params)
    try:
        model.sampling = config.sampling
        model.save_pretrained(
            model_dir,
            data_dir=data_dir,
            info={
                "dataset": {
                    "name": data_dir.resolve().name,
                    # relative to the model folder: no path of this machine in the folder
                    "path": os.path.relpath(data_dir.resolve(), Path(model_dir).resolve()),
                    "train_trips": len(dataset),
                    "skipped": dict(dataset.skipped),
                },
                "training": {
                    **result.summary(),
                    "batch_size": train_cfg.batch_size,
                    "ema": trainer.ema is not None,
                    "parameters": num_parameters(model),
                    # out_dir is always model_dir/train: recorded relative to the model folder
                    "config": to_dict(
                        dataclasses.replace(
                            config, train=dataclasses.replace(config.train, out_dir="train")
                        )
                    ),
                },
            },
        )
    finally:
        if trainer.ema is not None:
            trainer.ema.restore(params)
    state.wait_for_everyone()
    return summary


def describe(summary: TrainSummary) -> list[str]:
    """Lines for the command line after training."""
    mc = summary.config
    lines = [
        f"trained {summary.steps} steps on {summary.train_trips} trips "
        f"({summary.parameters / 1e6:.2f} M parameters, block size {mc.block_size}, "
        f"max length {mc.max_len})",
        f"model saved to {summary.model_dir}",
    ]
    if summary.stopped_by == "time_limit":
        lines.append(
            f"stopped by time_limit_s at step {summary.steps} of {summary.planned_steps}; "
            "--resume continues the run"
        )
    if summary.skipped:
        lines.append(
            "skipped trips: " + ", ".join(f"{n} {why}" for why, n in summary.skipped.items())
        )
    if summary.logs:
        lines.append(
            "last logs: "
            + ", ".join(f"{k}={v:.4g}" for k, v in summary.logs.items() if isinstance(v, float))
        )
    return lines
