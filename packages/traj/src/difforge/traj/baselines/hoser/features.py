"""What HOSER computes from the road network and the trips before its model sees them.

- :func:`partition_zones`: KaHIP's ``kaffpa`` (strong preconfiguration, seed 0, 3 % imbalance, as
  HOSER's ``partition_road_network.py``) over the undirected ``roadmap.rel`` graph;
- :func:`zone_transitions`: counts of zone changes between consecutive segments of the training
  trips, and :func:`zone_graph`, the GCN's edges weighted by D^-1/2 A D^-1/2;
- :class:`GraphTensors`: per-segment tensors (features, successor table, geometry) on a device;
- :func:`trip_batch`: one padded batch of prefixes, candidates and labels, as HOSER's dataset and
  collate function build them (distance and time-gap matrices, candidate distance and angle).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from difforge.traj.data.segments import SegmentGraph

EARTH_RADIUS_M = 6371008.8  # the `haversine` package's mean radius, which HOSER's features use
KAHIP_STRONG = 2  # kahip.kaffpa mode of `kaffpa --preconfiguration=strong`
KAHIP_IMBALANCE = 0.03  # kaffpa's default


def partition_zones(graph: SegmentGraph, num_zones: int, seed: int = 0) -> np.ndarray:
    """Zone (0..num_zones-1) of every segment: a KaHIP partition of the undirected successor graph."""
    import kahip

    n = graph.num_segments
    src = np.repeat(np.arange(n), np.diff(graph.succ_indptr))
    pairs = np.stack([src, graph.succ_indices], 1)
    both = np.concatenate([pairs, pairs[:, ::-1]])
    both = np.unique(both[both[:, 0] != both[:, 1]], axis=0)  # sorted by (row, column)
    xadj = np.searchsorted(both[:, 0], np.arange(n + 1)).tolist()
    adjncy = both[:, 1].tolist()
    _, blocks = kahip.kaffpa(
        [1] * n,
        xadj,
        [1] * len(adjncy),
        adjncy,
        num_zones,
        KAHIP_IMBALANCE,
        True,
        seed,
        KAHIP_STRONG,
    )
    return np.asarray(blocks, dtype=np.int64)


def zone_transitions(zones: np.ndarray, trips: list[np.ndarray], num_zones: int) -> np.ndarray:
    """``(Z, Z)`` int64 counts of moves from one zone into another along the trips."""
    counts = np.zeros((num_zones, num_zones), dtype=np.int64)
    for rids in trips:
        z = zones[rids]
        change = z[:-1] != z[1:]
        np.add.at(counts, (z[:-1][change], z[1:][change]), 1)
    return counts


def zone_graph(transitions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges (2, E) of the non-zero transitions and their weights, symmetrically normalised."""
    counts = transitions.astype(np.float32)
    inv_sqrt = 1.0 / np.sqrt(np.maximum(counts.sum(axis=1), 1.0))
    normalised = counts * inv_sqrt[:, None] * inv_sqrt[None, :]
    edges = np.stack(np.nonzero(counts)).astype(np.int64)
    return edges, normalised[edges[0], edges[1]]


def _standardised(x: np.ndarray) -> np.ndarray:
    return ((x - x.mean()) / max(float(x.std()), 1e-12)).astype(np.float32)


def _hoser_angle(lon1: Tensor, lat1: Tensor, lon2: Tensor, lat2: Tensor) -> Tensor:
    """HOSER's candidate angle, in [0, 2π): its ``get_angle(lat1, lon1, lat2, lon2)`` is called with
    (lon, lat) points, so x is the latitude step scaled by cos(longitude) and y the longitude step.
    Kept as it is: the trained navigator's angle feature is this quantity."""
    dy = lon2 - lon1
    dx = torch.cos(torch.deg2rad(lon1)) * (lat2 - lat1)
    return torch.remainder(torch.atan2(dy, dx), 2 * np.pi)


@dataclass
class GraphTensors:
    """The network as the model and the batch builder need it (all on one device)."""

    length: Tensor  # (N,) standardised log1p(length in m)
    road_type: Tensor  # (N,) int64
    lon: Tensor  # (N,) standardised centroid longitude
    lat: Tensor  # (N,) standardised centroid latitude
    edge_index: Tensor  # (2, E) segments sharing an end point
    edge_attr: Tensor  # (E, 2) |heading difference|/π, reachability
    successors: Tensor  # (N, K) int64, padded with -1
    centroid_rad: Tensor  # (N, 2) (lat, lon) of the centroids, radians
    end_lonlat: Tensor  # (N, 2) float64 last polyline point, degrees

    @classmethod
    def from_graph(cls, graph: SegmentGraph, device: str | torch.device = "cpu") -> GraphTensors:
        degree = np.diff(graph.succ_indptr)
        table = np.full((graph.num_segments, max(int(degree.max()), 1)), -1, dtype=np.int64)
        rows = np.repeat(np.arange(graph.num_segments), degree)
        table[rows, np.arange(len(rows)) - np.repeat(graph.succ_indptr[:-1], degree)] = (
            graph.succ_indices
        )
        edge_index, edge_attr = graph.road_adjacency()
        arrays = {
            "length": _standardised(np.log1p(graph.length_m)),
            "road_type": graph.road_type.astype(np.int64),
            "lon": _standardised(graph.centroid[:, 0]),
            "lat": _standardised(graph.centroid[:, 1]),
            "edge_index": edge_index,
            "edge_attr": edge_attr,
            "successors": table,
            "centroid_rad": np.deg2rad(graph.centroid[:, ::-1]).astype(np.float64),
            "end_lonlat": graph.end_lonlat.astype(np.float64),
        }
        return cls(
            **{k: torch.from_numpy(np.ascontiguousarray(v)).to(device) for k, v in arrays.items()}
        )

    def haversine_m(self, a: Tensor, b: Tensor) -> Tensor:
        """Great-circle metres between the centroids of segments ``a`` and ``b`` (broadcast)."""
        p, q = self.centroid_rad[a], self.centroid_rad[b]
        dlat, dlon = q[..., 0] - p[..., 0], q[..., 1] - p[..., 1]
        h = (
            torch.sin(dlat / 2) ** 2
            + torch.cos(p[..., 0]) * torch.cos(q[..., 0]) * torch.sin(dlon / 2) ** 2
        )
        return 2 * EARTH_RADIUS_M * torch.asin(torch.sqrt(h.clamp(0, 1)))

    def candidate_metrics(
        self, current: Tensor, candidates: Tensor, valid: Tensor, destination: Tensor
    ) -> tuple[Tensor, Tensor]:
        """HOSER's navigator inputs for ``candidates`` (..., K) of ``current`` (...):
        log1p((d(c, D) - min over candidates) / 100 m) and |angle(cur→c) - angle(cur→D)|/π."""
        safe = candidates.clamp(min=0)
        dist = self.haversine_m(safe, destination.unsqueeze(-1))
        best = dist.masked_fill(~valid, float("inf")).amin(dim=-1, keepdim=True)
        metric_distance = torch.log1p((dist - best).clamp(min=0) / 100.0).masked_fill(~valid, 0.0)
        here = self.end_lonlat[current].unsqueeze(-2)
        there = self.end_lonlat[safe]
        goal = self.end_lonlat[destination].unsqueeze(-2)
        to_candidate = _hoser_angle(here[..., 0], here[..., 1], there[..., 0], there[..., 1])
        to_goal = _hoser_angle(here[..., 0], here[..., 1], goal[..., 0], goal[..., 1])
        angle = (to_candidate - to_goal).abs()
        angle = torch.where(angle > np.pi, 2 * np.pi - angle, angle) / np.pi
        return metric_distance.float(), angle.masked_fill(~valid, 0.0).float()


def temporal_info(times: np.ndarray) -> np.ndarray:
    """Minute of the day / 1440 for each entry time, negated when the trip starts on a weekend."""
    seconds = (times - times.astype("datetime64[D]")).astype(np.float64)
    info = (seconds / 60.0 / 1440.0).astype(np.float32)
    weekday = (times[0].astype("datetime64[D]").astype(np.int64) + 3) % 7  # 1970-01-01 was Thursday
    return -info if weekday >= 5 else info


@dataclass
class TripBatch:
    """A padded batch of trip prefixes (trip[:-1]) with their candidates and labels."""

    segments: Tensor  # (B, T) int64
    temporal: Tensor  # (B, T) float
    distance: Tensor  # (B, T, T) clipped centroid distance / 1 km
    time_gap: Tensor  # (B, T, T) clipped entry-time gap / 5 min
    lengths: Tensor  # (B,)
    destination: Tensor  # (B,)
    candidates: Tensor  # (B, T, K) int64, 0 on padding (as HOSER pads)
    valid: Tensor  # (B, T, K) bool
    metric_distance: Tensor  # (B, T, K)
    metric_angle: Tensor  # (B, T, K)
    label: Tensor  # (B, T) index of the true next segment among the candidates
    gap_seconds: Tensor  # (B, T) seconds to the next segment's entry


def trip_batch(
    tensors: GraphTensors, trips: list[tuple[np.ndarray, np.ndarray]], device: str | torch.device
) -> TripBatch:
    """Build a :class:`TripBatch` from (segment ids, entry times) pairs of at least two segments."""
    size = max(len(r) for r, _ in trips) - 1
    b = len(trips)
    segments = np.zeros((b, size), dtype=np.int64)
    temporal = np.zeros((b, size), dtype=np.float32)
    next_segment = np.full((b, size), -1, dtype=np.int64)
    gaps = np.zeros((b, size), dtype=np.float32)
    lengths = np.array([len(r) - 1 for r, _ in trips], dtype=np.int64)
    for i, (rids, times) in enumerate(trips):
        n = len(rids) - 1
        segments[i, :n] = rids[:-1]
        next_segment[i, :n] = rids[1:]
        info = temporal_info(times)
        temporal[i, :n] = info[:-1]
        gaps[i, :n] = np.diff(times).astype(np.float64)
    seg = torch.from_numpy(segments).to(device)
    temp = torch.from_numpy(temporal).to(device)
    lens = torch.from_numpy(lengths).to(device)
    dest = torch.from_numpy(np.array([r[-1] for r, _ in trips], dtype=np.int64)).to(device)
    inside = torch.arange(size, device=device)[None, :] < lens[:, None]
    pair = inside[:, :, None] & inside[:, None, :]
    distance = (tensors.haversine_m(seg[:, :, None], seg[:, None, :]).clamp(0, 1000) / 1000).float()
    minutes = temp.abs() * 1440.0
    time_gap = ((minutes[:, :, None] - minutes[:, None, :]).abs().clamp(0, 5) / 5).float()
    candidates = tensors.successors[seg]
    valid = (candidates >= 0) & inside[..., None]
    m_dist, m_angle = tensors.candidate_metrics(
        seg, candidates, valid, dest[:, None].expand_as(seg)
    )
    nxt = torch.from_numpy(next_segment).to(device)
    label = (candidates == nxt[..., None]).int().argmax(dim=-1)
    return TripBatch(
        segments=seg,
        temporal=temp,
        distance=distance * pair,
        time_gap=time_gap * pair,
        lengths=lens,
        destination=dest,
        candidates=candidates.clamp(min=0) * valid,
        valid=valid,
        metric_distance=m_dist,
        metric_angle=m_angle,
        label=label,
        gap_seconds=torch.from_numpy(gaps).to(device),
    )
