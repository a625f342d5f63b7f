"""HOSER's network (Cao et al., AAAI 2025), rebuilt after its paper and public code's design.

- :class:`RoadNetworkEncoder`: segment embeddings (id 64, log length 16, road type 16, centroid lon
  16 and lat 16) through a 2-layer GATv2 over segments sharing an end point (edge features:
  heading difference, reachability); zone embeddings through a 2-layer GCN over the zone graph
  weighted by the training trips' zone transitions;
- :class:`TrajectoryEncoder`: segment embedding plus a sigmoid-gated zone embedding, concatenated
  with a Fourier time embedding, through a causal transformer whose attention adds a learned
  relation term of pairwise centroid distance and entry-time gap to the keys and the values;
- :class:`Navigator`: additive attention of [trajectory state, destination zone] over the
  candidates [segment embedding, distance-to-destination, angle-to-destination]; a small head
  predicts the travel time to each candidate.

Saved as ``model.safetensors`` + ``config.json`` (sizes, zone assignment and zone transitions,
the travel-time normalisation): the road network itself is not stored, it is attached at load.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.nn import functional as F
from torch_geometric.nn.models import GAT, GCN

from difforge.core.errors import CheckpointError
from difforge.core.io import atomic_path, write_json
from difforge.traj.baselines.hoser.features import GraphTensors, TripBatch, zone_graph
from difforge.traj.data.segments import SegmentGraph

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"


@dataclass
class HoserConfig:
    """HOSER's default sizes; the zone assignment and transitions belong to the trained model."""

    num_segments: int
    num_road_types: int
    zones: list[int]  # zone of every segment (KaHIP)
    zone_transitions: list[list[int]]  # (Z, Z) training counts
    gap_log_mean: float = 0.0  # mean and std of log1p(seconds between entries), training set
    gap_log_std: float = 1.0
    road_id_dim: int = 64
    length_dim: int = 16
    type_dim: int = 16
    lon_dim: int = 16
    lat_dim: int = 16
    num_heads: int = 2
    num_layers: int = 2
    dropout: float = 0.0

    @property
    def hidden_dim(self) -> int:
        return self.road_id_dim + self.length_dim + self.type_dim + self.lon_dim + self.lat_dim

    @property
    def num_zones(self) -> int:
        return len(self.zone_transitions)


class RoadNetworkEncoder(nn.Module):
    def __init__(self, config: HoserConfig) -> None:
        super().__init__()
        h = config.hidden_dim
        self.road_id = nn.Embedding(config.num_segments, config.road_id_dim)
        self.length = nn.Linear(1, config.length_dim)
        self.road_type = nn.Embedding(config.num_road_types, config.type_dim)
        self.lon = nn.Linear(1, config.lon_dim)
        self.lat = nn.Linear(1, config.lat_dim)
        self.road_gnn = GAT(h, h, num_layers=2, out_channels=h, v2=True, edge_dim=2)
        self.zone_id = nn.Embedding(config.num_zones, h)
        self.zone_gnn = GCN(h, h, num_layers=2, out_channels=h)
        edges, weights = zone_graph(np.asarray(config.zone_transitions, dtype=np.int64))
        self.register_buffer("zone_edges", torch.from_numpy(edges), persistent=False)
        self.register_buffer("zone_weights", torch.from_numpy(weights), persistent=False)

    def segments(self, g: GraphTensors) -> Tensor:
        features = torch.cat(
            [
                self.road_id.weight,
                self.length(g.length[:, None]),
                self.road_type(g.road_type),
                self.lon(g.lon[:, None]),
                self.lat(g.lat[:, None]),
            ],
            dim=1,
        )
        return self.road_gnn(features, g.edge_index, edge_attr=g.edge_attr)

    def zones(self) -> Tensor:
        return self.zone_gnn(self.zone_id.weight, self.zone_edges, edge_weight=self.zone_weights)


class RelationalCausalAttention(nn.Module):
    """Causal self-attention with a per-pair (distance, time gap) term on keys and values."""

    def __init__(self, width: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.head_dim = num_heads, width // num_heads
        self.qkv = nn.Linear(width, 3 * width)
        self.relation_k = nn.Linear(2, self.head_dim)
        self.relation_v = nn.Linear(2, self.head_dim)
        self.out = nn.Linear(width, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, relation: Tensor, mask: Tensor) -> Tensor:
        b, t, w = x.shape
        q, k, v = (
            part.view(b, t, self.heads, self.head_dim).transpose(1, 2)
            for part in self.qkv(x).split(w, dim=2)
        )
        rel_k, rel_v = self.relation_k(relation), self.relation_v(relation)  # (B, T, T, d)
        scores = q @ k.transpose(-2, -1) + torch.einsum("bhid,bijd->bhij", q, rel_k)
        scores = (scores / math.sqrt(self.head_dim)).masked_fill(mask, float("-inf"))
        attn = F.softmax(scores, dim=-1)
        y = attn @ v + torch.einsum("bhij,bijd->bhid", attn, rel_v)
        return self.drop(self.out(y.transpose(1, 2).reshape(b, t, w)))


class Block(nn.Module):
    def __init__(self, width: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = RelationalCausalAttention(width, num_heads, dropout)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width), nn.Dropout(dropout)
        )

    def forward(self, x: Tensor, relation: Tensor, mask: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x), relation, mask)
        return x + self.mlp(self.norm2(x))


class TrajectoryEncoder(nn.Module):
    def __init__(self, config: HoserConfig) -> None:
        super().__init__()
        h = config.hidden_dim
        self.zone_gate = nn.Sequential(nn.Linear(2 * h, 64), nn.GELU(), nn.Linear(64, 1))
        self.frequencies = nn.Parameter(torch.randn(h // 2))
        self.time_scale = math.sqrt(1.0 / (2 * h))
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            Block(2 * h, config.num_heads, config.dropout) for _ in range(config.num_layers)
        )

    def forward(
        self, road: Tensor, zone: Tensor, temporal: Tensor, relation: Tensor, lengths: Tensor
    ) -> Tensor:
        spatial = road + torch.sigmoid(self.zone_gate(torch.cat([road, zone], dim=-1))) * zone
        phase = temporal[..., None] * self.frequencies
        time = torch.cat([torch.cos(phase), torch.sin(phase)], dim=-1) * self.time_scale
        x = self.drop(torch.cat([spatial, time], dim=-1))
        t = x.shape[1]
        steps = torch.arange(t, device=x.device)
        future = steps[None, :] > steps[:, None]
        padding = steps[None, :] >= lengths[:, None]  # (B, T) keys beyond the prefix
        mask = (future[None] | padding[:, None, :])[:, None]
        for block in self.blocks:
            x = block(x, relation, mask)
        return x


class Navigator(nn.Module):
    def __init__(self, config: HoserConfig) -> None:
        super().__init__()
        h = config.hidden_dim
        self.distance = nn.Linear(1, h)
        self.angle = nn.Linear(1, h)
        self.query = nn.Linear(3 * h, h, bias=False)
        self.key = nn.Linear(3 * h, h, bias=False)
        self.score = nn.Linear(h, 1, bias=False)
        self.time_state = nn.Linear(2 * h, 64)
        self.time_candidate = nn.Linear(h, 64)
        self.time_out = nn.Linear(128, 1)

    def forward(
        self, state: Tensor, goal_zone: Tensor, candidates: Tensor, distance: Tensor, angle: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``state`` (..., 2h), ``goal_zone`` (..., h), ``candidates`` (..., K, h): logits and
        normalised log travel times, both (..., K)."""
        q = self.query(torch.cat([state, goal_zone], dim=-1)).unsqueeze(-2)
        k = self.key(
            torch.cat(
                [candidates, self.distance(distance[..., None]), self.angle(angle[..., None])], -1
            )
        )
        logits = self.score(torch.tanh(q + k)).squeeze(-1)
        per_state = self.time_state(state).unsqueeze(-2).expand(*candidates.shape[:-1], -1)
        time = self.time_out(F.gelu(torch.cat([per_state, self.time_candidate(candidates)], -1)))
        return logits, time.squeeze(-1)


class HoserModel(nn.Module):
    """HOSER: scores the reachable successors of each prefix position and their travel times."""

    def __init__(self, config: HoserConfig) -> None:
        super().__init__()
        self.config = config
        self.road_encoder = RoadNetworkEncoder(config)
        self.trajectory_encoder = TrajectoryEncoder(config)
        self.navigator = Navigator(config)
        self.register_buffer(
            "zone_of", torch.tensor(config.zones, dtype=torch.int64), persistent=False
        )

    @property
    def graph(self) -> GraphTensors:
        """The attached network's tensors (non-persistent buffers, so they follow ``.to``)."""
        if not hasattr(self, "graph_successors"):
            raise RuntimeError("attach_graph first")
        return GraphTensors(
            **{f.name: getattr(self, f"graph_{f.name}") for f in fields(GraphTensors)}
        )

    def attach_graph(self, graph: SegmentGraph) -> HoserModel:
        """Attach the network's tensors (``graph`` must be the one the model was trained on)."""
        if graph.num_segments != self.config.num_segments:
            raise CheckpointError(
                f"model was trained on {self.config.num_segments} segments, "
                f"the network has {graph.num_segments}"
            )
        if int(graph.road_type.max()) >= self.config.num_road_types:
            raise CheckpointError("the network has more road types than the model was trained with")
        tensors = GraphTensors.from_graph(graph, self.zone_of.device)
        for f in fields(GraphTensors):
            self.register_buffer(f"graph_{f.name}", getattr(tensors, f.name), persistent=False)
        return self

    def embeddings(self) -> tuple[Tensor, Tensor]:
        """Segment (N, h) and zone (Z, h) embeddings after their graph networks."""
        return self.road_encoder.segments(self.graph), self.road_encoder.zones()

    def forward(
        self, batch: TripBatch, embeddings: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """Logits (B, T, K) (``-inf`` on invalid candidates) and normalised log travel times."""
        roads, zones = embeddings if embeddings is not None else self.embeddings()
        relation = torch.stack([batch.distance, batch.time_gap], dim=-1)
        state = self.trajectory_encoder(
            roads[batch.segments],
            zones[self.zone_of[batch.segments]],
            batch.temporal,
            relation,
            batch.lengths,
        )
        goal = zones[self.zone_of[batch.destination]][:, None].expand(-1, state.shape[1], -1)
        logits, time = self.navigator(
            state, goal, roads[batch.candidates], batch.metric_distance, batch.metric_angle
        )
        return logits.masked_fill(~batch.valid, float("-inf")), time

    # --- save / load ----------------------------------------------------------------------------
    def save_pretrained(self, out_dir: str | Path) -> None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        with atomic_path(out_dir / WEIGHTS_FILE) as tmp:
            save_file(state, str(tmp))
        write_json(out_dir / CONFIG_FILE, asdict(self.config))

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, graph: SegmentGraph) -> HoserModel:
        model_dir = Path(model_dir)
        try:
            config = HoserConfig(**json.loads((model_dir / CONFIG_FILE).read_text()))
            model = cls(config)
            model.load_state_dict(load_file(str(model_dir / WEIGHTS_FILE)))
        except (OSError, TypeError, ValueError, RuntimeError, SafetensorError) as exc:
            raise CheckpointError(f"{model_dir}: not a HOSER model folder ({exc})") from exc
        return model.attach_graph(graph).eval()
