"""HOSER's training: next-step cross-entropy over the candidates plus its travel-time loss.

Settings of HOSER's ``train.py`` and default config: AdamW (lr 1e-3, weight decay 0.1), batch 256,
linear warm-up over the first 10 % of the steps then cosine decay to 0, gradient clipping at 1.0,
25 epochs, the epoch with the best validation next-step accuracy kept. The time loss is
|predicted - true| / max(true, 1) on log1p(seconds to the next entry), HOSER's MAPE-like form.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional as F

from difforge.traj.baselines.hoser.features import (
    TripBatch,
    partition_zones,
    trip_batch,
    zone_transitions,
)
from difforge.traj.baselines.hoser.model import HoserConfig, HoserModel
from difforge.traj.data.hoser import Trajectories
from difforge.traj.data.segments import SegmentGraph

NUM_ZONES = 30  # HOSER used 300 for its 10-40k-segment cities; Helsinki's run used 30


def _timed_trips(trips: Trajectories) -> list[tuple[np.ndarray, np.ndarray]]:
    if not trips.has_times:
        raise ValueError("HOSER trains on trips with entry times (time_list)")
    return [(r, t) for r, t in trips if len(r) >= 2]


def losses(
    model: HoserModel, batch: TripBatch, embeddings: tuple | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed next-step cross-entropy, summed time loss and correct-prediction count over the
    batch's prefix positions (divide by ``batch.lengths.sum()`` for HOSER's means)."""
    logits, time = model(batch, embeddings)
    inside = torch.arange(logits.shape[1], device=logits.device)[None] < batch.lengths[:, None]
    picked, label = logits[inside], batch.label[inside]
    next_step = F.cross_entropy(picked, label, reduction="sum")
    mean, std = model.config.gap_log_mean, model.config.gap_log_std
    predicted = time[inside].gather(1, label[:, None]).squeeze(1) * std + mean
    true = torch.log1p(batch.gap_seconds[inside].clamp(min=0))
    time_loss = ((predicted - true).abs() / true.clamp(min=1.0)).sum()
    return next_step, time_loss, (picked.argmax(dim=1) == label).sum()


def _length_chunks(
    trips: list[tuple[np.ndarray, np.ndarray]], chunk: int
) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """The batch cut into chunks of similar length: each is padded only to its own longest trip,
    and the summed losses over the chunks equal those of the whole batch."""
    ordered = sorted(trips, key=lambda trip: len(trip[0]))
    return [ordered[i : i + chunk] for i in range(0, len(ordered), chunk)]


@torch.no_grad()
def next_step_accuracy(model: HoserModel, trips: Trajectories, batch_size: int = 256) -> float:
    """Share of prefix positions whose most likely candidate is the true next segment."""
    model.eval()
    embeddings = model.embeddings()
    device = model.zone_of.device
    timed = _timed_trips(trips)
    correct = total = 0
    for start in range(0, len(timed), batch_size):
        batch = trip_batch(model.graph, timed[start : start + batch_size], device)
        correct += int(losses(model, batch, embeddings)[2])
        total += int(batch.lengths.sum())
    return correct / max(total, 1)


def train_hoser(
    graph: SegmentGraph,
    train: Trajectories,
    *,
    val: Trajectories | None = None,
    epochs: int = 25,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 0.1,
    warmup: float = 0.1,
    num_zones: int = NUM_ZONES,
    device: str | torch.device = "cpu",
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> tuple[HoserModel, list[dict[str, float]]]:
    """Partition, train and return the model (eval mode, best validation epoch when ``val`` is
    given) and per-epoch losses and accuracies."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    timed = _timed_trips(train)
    zones = partition_zones(graph, min(num_zones, graph.num_segments), seed=0)
    gaps = np.log1p(np.concatenate([np.diff(t).astype(np.float64) for _, t in timed]).clip(0))
    config = HoserConfig(
        num_segments=graph.num_segments,
        num_road_types=int(graph.road_type.max()) + 1,
        zones=zones.tolist(),
        zone_transitions=zone_transitions(
            zones, [r for r, _ in timed], int(zones.max()) + 1
        ).tolist(),
        gap_log_mean=float(gaps.mean()),
        gap_log_std=float(max(gaps.std(), 1e-6)),
    )
    model = HoserModel(config).to(device).attach_graph(graph)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(timed) / batch_size)
    total, warm = epochs * steps_per_epoch, epochs * steps_per_epoch * warmup

    def lr_at(step: int) -> float:
        if step < warm:
            return lr * step / warm
        return lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(total - warm, 1)))

    history: list[dict[str, float]] = []
    best_state, best_accuracy, step = None, -1.0, 0
    for epoch in range(epochs):
        model.train()
        sums = np.zeros(4)
        order = rng.permutation(len(timed))
        for start in range(0, len(timed), batch_size):
            trips = [timed[i] for i in order[start : start + batch_size]]
            step += 1
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            embeddings = model.embeddings()
            parts = [
                losses(model, trip_batch(model.graph, part, device), embeddings)
                for part in _length_chunks(trips, chunk=64)
            ]
            n = sum(len(r) - 1 for r, _ in trips)
            next_step, time_loss, correct = (sum(p[k] for p in parts) for k in range(3))
            optimizer.zero_grad()
            ((next_step + time_loss) / n).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            sums += [next_step.item(), time_loss.item(), int(correct), n]
        record = {
            "epoch": epoch + 1,
            "loss": sums[0] / sums[3],
            "time_loss": sums[1] / sums[3],
            "accuracy": sums[2] / sums[3],
        }
        if val is not None and len(val):
            record["val_accuracy"] = next_step_accuracy(model, val, batch_size)
        history.append(record)
        if log is not None:
            log(
                ", ".join(
                    f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in record.items()
                )
            )
        score = record.get("val_accuracy", record["accuracy"])
        if score > best_accuracy:
            best_accuracy = score
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval(), history
