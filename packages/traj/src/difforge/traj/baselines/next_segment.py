"""A HOSER-style autoregressive next-segment model, its training, and its beam and A* search.

:class:`NextSegmentModel` is a GRU over the prefix with additive attention over the reachable
candidates, with destination-aware features (log distance to the destination and its excess over
the best candidate's in units of 100 m, as HOSER's navigator, and the angle between the move and
the direction to the destination); :func:`search` decodes it by beam search or A* best-first
search.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from difforge.core.errors import CheckpointError, UserError
from difforge.core.io import atomic_path, write_json
from difforge.traj.baselines.routes import strongly_connected, toward_destinations
from difforge.traj.data.geo import LocalProjection
from difforge.traj.data.hoser import Trajectories
from difforge.traj.data.requests import ODRequests
from difforge.traj.data.segments import SegmentGraph


@dataclass
class NextSegmentConfig:
    """Sizes of :class:`NextSegmentModel` (saved as ``config.json`` beside the weights)."""

    num_segments: int
    num_road_types: int
    embed_dim: int = 64
    type_dim: int = 16
    hidden_dim: int = 128


class NextSegmentModel(nn.Module):
    """Scores the legal successors of the current segment given the prefix and the destination.

    Prefix: a GRU over [segment embedding, road-type embedding, standardised centroid]. Each
    candidate c gets a key from [embedding(c), type(c), log1p(d(c, D)/1 km),
    log1p((d(c, D) - min over candidates)/100 m), |angle(cur→c, cur→D)|/π]; the query is
    [GRU state, embedding(D), centroid(D)]; the logit is vᵀ tanh(W_q q + W_k k) (additive
    attention, as HOSER's navigator). The road graph is attached with :meth:`attach_graph`
    (non-persistent buffers), so saved weights do not carry the network.
    """

    def __init__(self, config: NextSegmentConfig) -> None:
        super().__init__()
        self.config = config
        e, t, h = config.embed_dim, config.type_dim, config.hidden_dim
        self.segment = nn.Embedding(config.num_segments, e)
        self.road_type = nn.Embedding(config.num_road_types, t)
        self.gru = nn.GRU(e + t + 2, h, batch_first=True)
        self.query = nn.Linear(h + e + 2, h)
        self.key = nn.Linear(e + t + 3, h)
        self.score = nn.Linear(h, 1)

    def attach_graph(self, graph: SegmentGraph) -> NextSegmentModel:
        """Attach successor table, road types and centroids of ``graph`` (must match the config)."""
        if graph.num_segments != self.config.num_segments:
            raise CheckpointError(
                f"model was trained on {self.config.num_segments} segments, the network has {graph.num_segments}"
            )
        if int(graph.road_type.max()) >= self.config.num_road_types:
            raise CheckpointError("the network has more road types than the model was trained with")
        degree = np.diff(graph.succ_indptr)
        table = np.full((graph.num_segments, max(int(degree.max()), 1)), -1, dtype=np.int64)
        rows = np.repeat(np.arange(graph.num_segments), degree)
        cols = np.arange(len(graph.succ_indices)) - np.repeat(graph.succ_indptr[:-1], degree)
        table[rows, cols] = graph.succ_indices
        lon0, lat0 = graph.centroid.mean(axis=0)
        x, y = LocalProjection(lon0, lat0).to_xy(graph.centroid[:, 0], graph.centroid[:, 1])
        xy = np.stack([x, y], axis=1)
        device = self.segment.weight.device
        self.register_buffer("successors", torch.from_numpy(table).to(device), persistent=False)
        self.register_buffer(
            "types", torch.from_numpy(graph.road_type.copy()).to(device), persistent=False
        )
        self.register_buffer("xy", torch.from_numpy(xy).float().to(device), persistent=False)
        scale = float(np.maximum(xy.std(axis=0), 1.0).mean())
        self.register_buffer("xy_std", (self.xy - self.xy.mean(0)) / scale, persistent=False)
        return self

    def _inputs(self, segments: Tensor) -> Tensor:
        return torch.cat(
            [self.segment(segments), self.road_type(self.types[segments]), self.xy_std[segments]],
            dim=-1,
        )

    def encode(self, segments: Tensor, hidden: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """GRU over ``segments`` ``(B, T)``; returns per-step states ``(B, T, H)`` and the last state."""
        out, last = self.gru(
            self._inputs(segments), None if hidden is None else hidden.unsqueeze(0)
        )
        return out, last.squeeze(0)

    def candidate_logits(
        self, state: Tensor, current: Tensor, destination: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Logits ``(..., K)`` over the successors of ``current`` (``-inf`` on padding) and their ids."""
        candidates = self.successors[current]
        valid = candidates >= 0
        safe = candidates.clamp(min=0)
        to_dest = self.xy[destination].unsqueeze(-2) - self.xy[safe]
        dist = to_dest.norm(dim=-1)
        best = dist.masked_fill(~valid, math.inf).min(dim=-1, keepdim=True).values
        move = self.xy[safe] - self.xy[current].unsqueeze(-2)
        heading = self.xy[destination] - self.xy[current]
        angle = torch.atan2(move[..., 1], move[..., 0]) - torch.atan2(
            heading[..., 1], heading[..., 0]
        ).unsqueeze(-1)
        angle = torch.remainder(angle + math.pi, 2 * math.pi) - math.pi
        features = torch.stack(
            [
                torch.log1p(dist / 1000.0),
                torch.log1p((dist - best).clamp(min=0) / 100.0),
                angle.abs() / math.pi,
            ],
            dim=-1,
        )
        key = self.key(
            torch.cat([self.segment(safe), self.road_type(self.types[safe]), features], dim=-1)
        )
        query = self.query(
            torch.cat([state, self.segment(destination), self.xy_std[destination]], dim=-1)
        ).unsqueeze(-2)
        logits = self.score(torch.tanh(query + key)).squeeze(-1)
        return logits.masked_fill(~valid, -math.inf), candidates

    def save_pretrained(self, out_dir: str | Path) -> None:
        """``model.safetensors`` + ``config.json`` in ``out_dir`` (each written atomically)."""
        from safetensors.torch import save_file

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        with atomic_path(out / "model.safetensors") as tmp:
            save_file(state, str(tmp))
        write_json(out / "config.json", {"model": "next_segment", **asdict(self.config)})

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, graph: SegmentGraph) -> NextSegmentModel:
        """Load weights saved by :meth:`save_pretrained` and attach ``graph``."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        model_dir = Path(model_dir)
        try:
            raw = json.loads((model_dir / "config.json").read_text())
            raw.pop("model", None)
            config = NextSegmentConfig(**raw)
            model = cls(config)
            model.load_state_dict(load_file(str(model_dir / "model.safetensors")))
        except (OSError, json.JSONDecodeError, TypeError, RuntimeError, SafetensorError) as exc:
            raise CheckpointError(f"{model_dir}: not a next-segment model ({exc})") from exc
        return model.attach_graph(graph)


def _batches(
    trajectories: Trajectories, batch_size: int, rng: np.random.Generator | None
) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """Batches of (segments ``(B, T)``, destination ``(B,)``, length ``(B,)``), lengths bucketed.

    Batch order is shuffled with ``rng`` (kept in length order when ``rng`` is None).
    """
    usable = [r for r in trajectories.rids if len(r) >= 2]
    order = np.argsort([len(r) for r in usable], kind="stable")
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(batches)
    for batch in batches:
        lengths = torch.tensor([len(usable[i]) for i in batch])
        segments = torch.zeros(len(batch), int(lengths.max()), dtype=torch.long)
        for row, i in enumerate(batch):
            segments[row, : len(usable[i])] = torch.from_numpy(usable[i])
        destinations = segments[torch.arange(len(batch)), lengths - 1]
        yield segments, destinations, lengths


def next_segment_loss(
    model: NextSegmentModel, segments: Tensor, destinations: Tensor, lengths: Tensor
) -> tuple[Tensor, int, int]:
    """Cross-entropy over legal candidates at every step, correct next-step picks, steps scored.

    Steps whose true next segment is not a legal successor (bad data) are left out.
    """
    inputs, targets = segments[:, :-1], segments[:, 1:]
    states, _ = model.encode(inputs)
    dest = destinations.unsqueeze(1).expand_as(inputs)
    logits, candidates = model.candidate_logits(states, inputs, dest)
    hit = candidates == targets.unsqueeze(-1)
    steps = torch.arange(inputs.shape[1], device=segments.device).unsqueeze(0)
    valid = (steps < (lengths.unsqueeze(1) - 1)) & hit.any(-1)
    target_index = hit.float().argmax(-1)
    loss = nn.functional.cross_entropy(logits[valid], target_index[valid])
    correct = int((logits[valid].argmax(-1) == target_index[valid]).sum())
    return loss, correct, int(valid.sum())


@torch.no_grad()
def next_segment_accuracy(
    model: NextSegmentModel, trajectories: Trajectories, batch_size: int = 256
) -> float:
    """Share of steps where the model's top candidate is the true next segment."""
    device = model.segment.weight.device
    was_training = model.training
    model.eval()
    correct = total = 0
    for segments, destinations, lengths in _batches(trajectories, batch_size, None):
        _, c, t = next_segment_loss(
            model, segments.to(device), destinations.to(device), lengths.to(device)
        )
        correct, total = correct + c, total + t
    model.train(was_training)
    return correct / max(total, 1)


def train_next_segment_model(
    graph: SegmentGraph,
    train: Trajectories,
    *,
    val: Trajectories | None = None,
    config: NextSegmentConfig | None = None,
    epochs: int = 25,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 0.1,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> tuple[NextSegmentModel, list[dict[str, float]]]:
    """Train with HOSER's settings (AdamW, lr 1e-3, wd 0.1, 10 % warm-up then cosine, gradient
    clipping at 1.0, the epoch with the best validation next-step accuracy kept when ``val`` is
    given); returns the model (in eval mode) and per-epoch loss, accuracy and val_accuracy."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    config = config or NextSegmentConfig(graph.num_segments, len(graph.road_type_names))
    model = NextSegmentModel(config).to(device).attach_graph(graph)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(sum(len(r) >= 2 for r in train.rids) / batch_size)
    if steps_per_epoch == 0:
        raise UserError("the training set has no trajectory with two or more segments")
    total = epochs * steps_per_epoch
    warmup = max(1, total // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: (
            (step + 1) / warmup
            if step < warmup
            else 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
        ),
    )
    history: list[dict[str, float]] = []
    best_accuracy, best_state = -1.0, None
    model.train()
    for epoch in range(epochs):
        losses, correct, scored = [], 0, 0
        for segments, destinations, lengths in _batches(train, batch_size, rng):
            loss, c, t = next_segment_loss(
                model, segments.to(device), destinations.to(device), lengths.to(device)
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            correct, scored = correct + c, scored + t
        record = {
            "epoch": epoch,
            "loss": float(np.mean(losses)),
            "accuracy": correct / max(scored, 1),
        }
        if val is not None:
            record["val_accuracy"] = next_segment_accuracy(model, val, batch_size)
            if record["val_accuracy"] > best_accuracy:
                best_accuracy = record["val_accuracy"]
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        history.append(record)
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval(), history


@torch.no_grad()
def search(
    model: NextSegmentModel,
    graph: SegmentGraph,
    requests: ODRequests,
    *,
    method: str = "beam",
    beam_width: int = 4,
    max_steps: int | None = None,
    max_search_steps: int = 5000,
    heuristic_weight: float = 0.0,
    batch_size: int = 256,
) -> list[np.ndarray]:
    """Decode one path per request with the model, over legal candidates that can reach D.

    ``method="beam"``: beam search of width ``beam_width`` on summed log-probabilities, all
    requests of a batch advanced together, no beam revisiting a segment; a request stops when one
    of its beams reaches the destination, or after ``max_steps`` segments (default: the number of
    segments in the network, capped at 1,000), when the beam ending closest to the destination is
    returned.

    ``method="astar"``: best-first search as HOSER's ``gene.py``: a priority queue of partial
    paths ordered by f = -log p(path) + ``heuristic_weight`` · straight-line km to D (0 gives
    pure best-first on probability), each (previous, next) transition expanded at most once, at
    most ``max_search_steps`` expansions per request; on running out it returns the expanded path
    that came closest to the destination. The requests of a batch pop one node each per step, so
    the model runs batched.
    """
    if method not in ("beam", "astar"):
        raise UserError(f"unknown search {method!r}: use beam or astar")
    requests.check(graph.num_segments)
    device = model.segment.weight.device
    whole_network_reachable = strongly_connected(graph)
    paths: list[np.ndarray | None] = [None] * len(requests)
    limit = max_steps or min(graph.num_segments, 1000)
    for start in range(0, len(requests), batch_size):
        index = np.arange(start, min(start + batch_size, len(requests)))
        if whole_network_reachable:
            reach = torch.ones(len(index), graph.num_segments, dtype=torch.bool, device=device)
        else:
            unique, inverse = np.unique(requests.destinations[index], return_inverse=True)
            rows = np.vstack(
                [np.isfinite(dist) for _ids, dist, _next in toward_destinations(graph, unique)]
            )
            reach = torch.from_numpy(rows[inverse]).to(device)
        origins = torch.from_numpy(requests.origins[index]).to(device)
        dests = torch.from_numpy(requests.destinations[index]).to(device)
        if method == "beam":
            found = _beam(model, origins, dests, reach, beam_width, limit)
        else:
            found = _astar(model, origins, dests, reach, max_search_steps, heuristic_weight)
        for row, (k, path) in enumerate(zip(index, found)):
            # An origin that cannot reach its destination yields just the origin.
            paths[k] = path if bool(reach[row, origins[row]]) else path[:1]
    return paths  # type: ignore[return-value]


def _closest_live(model: NextSegmentModel, current: Tensor, score: Tensor, dests: Tensor) -> Tensor:
    """Per request, the index of the live (finite-score) beam ending closest to the destination."""
    distance = (model.xy[current] - model.xy[dests].unsqueeze(1)).norm(dim=-1)
    return distance.masked_fill(~torch.isfinite(score), math.inf).argmin(-1)


def _beam(
    model: NextSegmentModel, origins: Tensor, dests: Tensor, reach: Tensor, width: int, limit: int
) -> list[np.ndarray]:
    r = len(origins)
    rows = torch.arange(r, device=origins.device)
    _, state = model.encode(origins.unsqueeze(1))
    state = state.unsqueeze(1).expand(r, width, -1).contiguous()
    current = origins.unsqueeze(1).expand(r, width).contiguous()
    score = torch.full((r, width), -math.inf, device=origins.device)
    score[:, 0] = 0.0  # one live beam to start with
    history = [current]
    parents: list[Tensor] = []
    done = origins == dests
    winner = torch.zeros(r, dtype=torch.long, device=origins.device)
    # Segments on each beam's path: a beam never revisits one (a loop cannot help reach D).
    visited = torch.zeros(r, width, reach.shape[1], dtype=torch.bool, device=origins.device)
    visited[rows, :, origins] = True
    for _ in range(limit - 1):
        if bool(done.all()):
            break
        logits, candidates = model.candidate_logits(
            state, current, dests.unsqueeze(1).expand(r, width)
        )
        safe = candidates.clamp(min=0)
        allowed = (
            (candidates >= 0)
            & reach[rows.unsqueeze(1).unsqueeze(2), safe]
            & ~visited.gather(2, safe)
        )
        logp = torch.log_softmax(logits.masked_fill(~allowed, -math.inf), dim=-1)
        total = (score.unsqueeze(-1) + logp).flatten(1)
        total = torch.where(torch.isnan(total), -math.inf, total)
        top, flat = total.topk(width, dim=-1)
        parent = torch.div(flat, candidates.shape[-1], rounding_mode="floor")
        chosen = candidates.flatten(1).gather(1, flat).clamp(min=0)
        # Requests already finished, or whose every beam is stuck (all legal moves revisit a
        # segment), keep their beams unchanged; a stuck one ends at its closest beam.
        stuck = ~done & ~torch.isfinite(top).any(-1)
        winner = torch.where(stuck, _closest_live(model, current, score, dests), winner)
        done = done | stuck
        keep = done.unsqueeze(1)
        parent = torch.where(
            keep, torch.arange(width, device=origins.device).expand(r, width), parent
        )
        chosen = torch.where(keep, current, chosen)
        score = torch.where(keep, score, top)
        _, new_state = model.encode(
            chosen.reshape(-1, 1),
            state.gather(1, parent.unsqueeze(-1).expand_as(state)).reshape(r * width, -1),
        )
        state = torch.where(keep.unsqueeze(-1), state, new_state.view(r, width, -1))
        visited = visited.gather(1, parent.unsqueeze(-1).expand_as(visited))
        visited.scatter_(2, chosen.unsqueeze(-1), True)
        current = chosen
        parents.append(parent)
        history.append(current)
        arrived = (current == dests.unsqueeze(1)) & torch.isfinite(score) & ~keep
        first = arrived.float().argmax(-1)  # beams are sorted by score: the best arrival
        winner = torch.where(arrived.any(-1), first, winner)
        done = done | arrived.any(-1)
    # Requests still open after `limit` steps: the live beam ending closest to the destination.
    winner = torch.where(done, winner, _closest_live(model, current, score, dests))
    return _backtrack(history, parents, winner)


def _backtrack(history: list[Tensor], parents: list[Tensor], winner: Tensor) -> list[np.ndarray]:
    segs = torch.stack(history).cpu().numpy()  # (T, R, W)
    par = (
        torch.stack(parents).cpu().numpy() if parents else np.zeros((0, *segs.shape[1:]), np.int64)
    )
    out = []
    for r, beam in enumerate(winner.cpu().numpy()):
        path = [segs[-1, r, beam]]
        for t in range(len(par) - 1, -1, -1):
            beam = par[t, r, beam]
            path.append(segs[t, r, beam])
        path = np.asarray(path[::-1], dtype=np.int64)
        # Finished and stuck requests were padded with their last segment, which no path visits
        # twice: cut at its first occurrence.
        out.append(path[: np.flatnonzero(path == path[-1])[0] + 1])
    return out


def _astar(
    model: NextSegmentModel,
    origins: Tensor,
    dests: Tensor,
    reach: Tensor,
    max_expansions: int,
    heuristic_weight: float,
) -> list[np.ndarray]:
    device = origins.device
    r = len(origins)
    counter = itertools.count()
    # A node is (f, tie, log_prob, path, parent_state): its own state is computed when it is popped.
    queues: list[list] = [[(0.0, next(counter), 0.0, (int(origins[k]),), None)] for k in range(r)]
    seen: list[set] = [set() for _ in range(r)]
    result: list[np.ndarray | None] = [None] * r
    best: list[tuple[float, tuple[int, ...]]] = [(math.inf, (int(origins[k]),)) for k in range(r)]
    expansions = [0] * r
    dest_xy = model.xy[dests]
    while True:
        active = [
            k
            for k in range(r)
            if result[k] is None and queues[k] and expansions[k] < max_expansions
        ]
        if not active:
            break
        popped = [heapq.heappop(queues[k]) for k in active]
        finished = []
        for k, (_f, _t, _lp, path, _s) in zip(active, popped):
            if path[-1] == int(dests[k]):
                result[k] = np.asarray(path, dtype=np.int64)
                finished.append(k)
        rest = [(k, node) for k, node in zip(active, popped) if k not in finished]
        if not rest:
            continue
        ks = torch.tensor([k for k, _ in rest], device=device)
        last = torch.tensor([node[3][-1] for _, node in rest], device=device)
        hidden = torch.stack(
            [
                node[4]
                if node[4] is not None
                else torch.zeros(model.config.hidden_dim, device=device)
                for _, node in rest
            ]
        )
        _, state = model.encode(last.unsqueeze(1), hidden)
        logits, candidates = model.candidate_logits(state, last, dests[ks])
        allowed = (candidates >= 0) & reach[ks.unsqueeze(1), candidates.clamp(min=0)]
        logp = torch.log_softmax(logits.masked_fill(~allowed, -math.inf), dim=-1)
        km = (model.xy[candidates.clamp(min=0)] - dest_xy[ks].unsqueeze(1)).norm(dim=-1) / 1000.0
        last_km = (model.xy[last] - dest_xy[ks]).norm(dim=-1) / 1000.0
        logp, candidates, km, last_km = (
            logp.cpu().numpy(),
            candidates.cpu().numpy(),
            km.cpu().numpy(),
            last_km.cpu().numpy(),
        )
        for row, (k, (_f, _t, log_prob, path, _s)) in enumerate(rest):
            expansions[k] += 1
            if last_km[row] < best[k][0]:
                best[k] = (float(last_km[row]), path)
            for c, lp, dist_km in zip(candidates[row], logp[row], km[row]):
                if c < 0 or not np.isfinite(lp) or (path[-1], c) in seen[k]:
                    continue
                seen[k].add((path[-1], int(c)))
                total = log_prob + float(lp)
                heapq.heappush(
                    queues[k],
                    (
                        -total + heuristic_weight * float(dist_km),
                        next(counter),
                        total,
                        (*path, int(c)),
                        state[row],
                    ),
                )
    return [
        res if res is not None else np.asarray(best[k][1], dtype=np.int64)
        for k, res in enumerate(result)
    ]
