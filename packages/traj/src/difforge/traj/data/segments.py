"""The directed segment graph: one token per directed road segment, successors by shared node."""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

from difforge.core.errors import UserError
from difforge.traj.data.geo import bearing_rad
from difforge.traj.data.network import NetworkReport, primary_highway

UTURN_POLICIES = ("dead_end", "forbid", "allow")

# roadmap.geo property columns after `highway` (HOSER's layout); all written as numbers.
PROPERTY_COLUMNS = ("lanes", "tunnel", "bridge", "roundabout", "oneway", "maxspeed")


@dataclass(eq=False)
class SegmentGraph:
    """Directed road segments (tokens ``0..N-1``) and the legal transitions between them.

    A segment is one directed edge of the road graph (a two-way street gives two segments). Segment
    ``b`` may follow segment ``a`` when ``b`` leaves the node where ``a`` ends (``roadmap.rel``),
    minus U-turns according to the U-turn policy the graph was built with.

    Constructor fields (what ``roadmap.geo``/``roadmap.rel`` hold):

    - ``coords``: list of N float64 arrays of shape (k_i, 2), the polyline of each segment as
      (lon, lat) in degrees, ordered in the driving direction (k_i >= 2).
    - ``length_m``: float64 (N,), segment length in metres (from the source data; osmnx great-circle).
    - ``highway``: list of N OSM road-class strings (``"primary"``, ``"residential"``, ...); integer
      codes from a HOSER Porto file are kept as their string form.
    - ``succ_indptr``, ``succ_indices``: the successor relation in CSR form, int64:
      ``succ_indices[succ_indptr[a]:succ_indptr[a+1]]`` are the segments that may follow ``a``,
      sorted ascending.
    - ``u``, ``v``: int64 (N,), start and end node ids (OSM node ids where known).
    - ``properties``: DataFrame with N rows and the numeric columns ``lanes``, ``tunnel``, ``bridge``,
      ``roundabout``, ``oneway`` (0/1) and ``maxspeed`` (km/h, 0 = unknown).
    - ``name``: a label for messages.

    Derived attributes (computed once, read-only by convention):

    - ``num_segments`` (N) and ``num_transitions`` (number of legal (a, b) pairs).
    - ``road_type``: int64 (N,), index of ``highway[i]`` in ``road_type_names`` (sorted unique
      classes), for an embedding table.
    - ``centroid``: float64 (N, 2), (lon, lat) centroid of each polyline, computed like HOSER's
      shapely ``LineString.centroid`` (length-weighted midpoints of the pieces).
    - ``start_lonlat``, ``end_lonlat``: float64 (N, 2), first and last polyline point.
    - ``heading``: float64 (N,), bearing from the first to the last point in radians, clockwise
      from north, in (-pi, pi] (what HOSER's intersection angle uses); ``heading_in`` and
      ``heading_out`` are the bearings of the first and the last polyline piece.
    - ``coord_indptr``, ``coord_lonlat``: all polylines in CSR form (points of segment i are
      ``coord_lonlat[coord_indptr[i]:coord_indptr[i+1]]``), for vectorised geometry work.

    Model-facing helpers: :meth:`road_adjacency` (HOSER's GATv2 graph: segments sharing an end
    point, with edge features |heading difference|/pi and reachability), :meth:`to_torch`,
    :meth:`transition_legal` (vectorised legality check), :meth:`shortest_path`.
    """

    coords: list[np.ndarray]
    length_m: np.ndarray
    highway: list[str]
    succ_indptr: np.ndarray
    succ_indices: np.ndarray
    u: np.ndarray
    v: np.ndarray
    properties: pd.DataFrame = field(default_factory=pd.DataFrame)
    name: str = "roadmap"

    def __post_init__(self) -> None:
        n = len(self.coords)
        self.coords = [np.asarray(c, dtype=np.float64).reshape(-1, 2) for c in self.coords]
        self.length_m = np.asarray(self.length_m, dtype=np.float64)
        self.highway = [str(h) for h in self.highway]
        self.succ_indptr = np.asarray(self.succ_indptr, dtype=np.int64)
        self.succ_indices = np.asarray(self.succ_indices, dtype=np.int64)
        self.u = np.asarray(self.u, dtype=np.int64)
        self.v = np.asarray(self.v, dtype=np.int64)
        if n == 0:
            raise UserError(f"{self.name}: the road network has no segments")
        sizes = {len(self.length_m), len(self.highway), len(self.u), len(self.v)}
        if sizes != {n} or len(self.succ_indptr) != n + 1:
            raise UserError(f"{self.name}: segment attribute arrays disagree in length")
        if any(len(c) < 2 for c in self.coords):
            raise UserError(f"{self.name}: every segment needs at least two coordinates")
        if len(self.succ_indices) and (self.succ_indices.min() < 0 or self.succ_indices.max() >= n):
            raise UserError(f"{self.name}: a transition names a segment id outside 0..{n - 1}")
        if self.properties.empty:
            self.properties = pd.DataFrame({c: np.zeros(n) for c in PROPERTY_COLUMNS})
        self.properties = self.properties.reset_index(drop=True)

        self.num_segments = n
        self.num_transitions = len(self.succ_indices)
        self.coord_indptr = np.concatenate([[0], np.cumsum([len(c) for c in self.coords])]).astype(
            np.int64
        )
        self.coord_lonlat = np.concatenate(self.coords, axis=0)
        self.start_lonlat = np.stack([c[0] for c in self.coords])
        self.end_lonlat = np.stack([c[-1] for c in self.coords])
        self.centroid = np.stack([_polyline_centroid(c) for c in self.coords])
        self.heading = bearing_rad(*self.start_lonlat.T, *self.end_lonlat.T)
        self.heading_in = bearing_rad(
            *np.stack([c[0] for c in self.coords]).T, *np.stack([c[1] for c in self.coords]).T
        )
        self.heading_out = bearing_rad(
            *np.stack([c[-2] for c in self.coords]).T, *self.end_lonlat.T
        )
        self.road_type_names = sorted(set(self.highway))
        lookup = {name: i for i, name in enumerate(self.road_type_names)}
        self.road_type = np.array([lookup[h] for h in self.highway], dtype=np.int64)
        src = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.succ_indptr))
        self._transition_keys = np.sort(src * n + self.succ_indices)

    # --- topology -------------------------------------------------------------------------------
    def successors(self, segment: int) -> np.ndarray:
        """Segments that may follow ``segment`` (sorted int64 array)."""
        return self.succ_indices[self.succ_indptr[segment] : self.succ_indptr[segment + 1]]

    def transition_legal(self, a, b) -> np.ndarray:
        """Elementwise: may segment ``b`` follow segment ``a``? (numpy arrays of equal shape)."""
        a = np.asarray(a, dtype=np.int64)
        b = np.asarray(b, dtype=np.int64)
        inside = (a >= 0) & (a < self.num_segments) & (b >= 0) & (b < self.num_segments)
        keys = np.where(inside, a * self.num_segments + b, -1)
        pos = np.searchsorted(self._transition_keys, keys)
        pos = np.minimum(pos, len(self._transition_keys) - 1)
        return inside & (self._transition_keys[pos] == keys)

    def successor_matrix(self) -> csr_matrix:
        """N x N sparse boolean matrix, ``[a, b]`` true when ``b`` may follow ``a``."""
        data = np.ones(self.num_transitions, dtype=bool)
        return csr_matrix(
            (data, self.succ_indices, self.succ_indptr), shape=(self.num_segments,) * 2
        )

    def reverse_segments(self) -> np.ndarray:
        """Per segment, the id of the segment whose polyline is its own reversed (-1 if none)."""
        by_shape = {np.round(line, 7).tobytes(): k for k, line in enumerate(self.coords)}
        return np.array(
            [by_shape.get(np.round(line[::-1], 7).tobytes(), -1) for line in self.coords],
            dtype=np.int64,
        )

    def cost_matrix(self, weight: np.ndarray | None = None) -> csr_matrix:
        """N x N sparse matrix for scipy's ``dijkstra``: ``[a, b]`` is the cost of moving from
        ``a`` onto ``b``, ``weight[b]`` (default: ``length_m``), where ``b`` may follow ``a``."""
        weight = self.length_m if weight is None else np.asarray(weight, dtype=np.float64)
        src = np.repeat(np.arange(self.num_segments), np.diff(self.succ_indptr))
        # dijkstra ignores explicit zeros: keep zero-weight segments reachable with a tiny cost
        costs = np.maximum(weight[self.succ_indices], 1e-9)
        return csr_matrix((costs, (src, self.succ_indices)), shape=(self.num_segments,) * 2)

    def shortest_path(
        self, origin: int, destination: int, weight: np.ndarray | None = None
    ) -> list[int] | None:
        """Cheapest legal segment sequence from ``origin`` to ``destination`` (both included).

        The cost of a path is the summed ``weight`` (default: ``length_m``) of every segment after
        the origin, so the origin's own length does not matter. Returns None when no path exists.
        """
        if origin == destination:
            return [int(origin)]
        dist, pred = dijkstra(self.cost_matrix(weight), indices=origin, return_predecessors=True)
        if not np.isfinite(dist[destination]):
            return None
        path = [int(destination)]
        while path[-1] != origin:
            path.append(int(pred[path[-1]]))
        return path[::-1]

    def to_networkx(self) -> nx.DiGraph:
        """The successor relation as a ``networkx.DiGraph`` on segment ids (length as attribute)."""
        graph = nx.DiGraph()
        graph.add_nodes_from(
            (i, {"length": float(self.length_m[i])}) for i in range(self.num_segments)
        )
        src = np.repeat(np.arange(self.num_segments), np.diff(self.succ_indptr))
        graph.add_edges_from(zip(src.tolist(), self.succ_indices.tolist()))
        return graph

    # --- model features -------------------------------------------------------------------------
    def road_adjacency(self) -> tuple[np.ndarray, np.ndarray]:
        """HOSER's road-encoder graph: (edge_index int64 (2, E), edge_attr float32 (E, 2)).

        Two segments are adjacent when they share an end point (start or end node), in both
        directions, self-pairs excluded; this is broader than ``roadmap.rel``. Edge features per
        (i, j): |heading_i - heading_j| folded to [0, pi] and divided by pi, and 1.0 when j may
        follow i (reachability) else 0.0.
        """
        ends = pd.DataFrame(
            {
                "seg": np.concatenate([np.arange(self.num_segments)] * 2),
                "node": np.concatenate([self.u, self.v]),
            }
        ).drop_duplicates()
        pairs = ends.merge(ends, on="node", suffixes=("_i", "_j"))
        pairs = pairs[pairs.seg_i != pairs.seg_j][["seg_i", "seg_j"]].drop_duplicates()
        pairs = pairs.sort_values(["seg_i", "seg_j"], kind="stable")
        i = pairs.seg_i.to_numpy(dtype=np.int64)
        j = pairs.seg_j.to_numpy(dtype=np.int64)
        diff = np.abs(self.heading[i] - self.heading[j])
        diff = np.where(diff > np.pi, 2 * np.pi - diff, diff) / np.pi
        reach = self.transition_legal(i, j).astype(np.float32)
        return np.stack([i, j]), np.stack([diff.astype(np.float32), reach], axis=1)

    def to_torch(self) -> dict:
        """Tensors for a model: successor CSR, lengths, road types, centroids, headings."""
        import torch

        return {
            "succ_indptr": torch.from_numpy(self.succ_indptr.copy()),
            "succ_indices": torch.from_numpy(self.succ_indices.copy()),
            "length_m": torch.from_numpy(self.length_m.astype(np.float32)),
            "road_type": torch.from_numpy(self.road_type.copy()),
            "centroid": torch.from_numpy(self.centroid.astype(np.float32)),
            "heading": torch.from_numpy(self.heading.astype(np.float32)),
        }

    def bbox(self) -> tuple[float, float, float, float]:
        """(min_lon, min_lat, max_lon, max_lat) over every coordinate."""
        lo = self.coord_lonlat.min(axis=0)
        hi = self.coord_lonlat.max(axis=0)
        return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])

    def subgraph(self, keep: np.ndarray) -> tuple[SegmentGraph, np.ndarray]:
        """The graph restricted to segment ids ``keep`` (renumbered in ascending order).

        Returns the new graph and ``old_to_new`` (int64 (N,), -1 for dropped segments).
        """
        keep = np.unique(np.asarray(keep, dtype=np.int64))
        old_to_new = np.full(self.num_segments, -1, dtype=np.int64)
        old_to_new[keep] = np.arange(len(keep))
        indptr = [0]
        indices: list[np.ndarray] = []
        for a in keep:
            nxt = old_to_new[self.successors(a)]
            nxt = np.sort(nxt[nxt >= 0])
            indices.append(nxt)
            indptr.append(indptr[-1] + len(nxt))
        sub = SegmentGraph(
            coords=[self.coords[i] for i in keep],
            length_m=self.length_m[keep],
            highway=[self.highway[i] for i in keep],
            succ_indptr=np.asarray(indptr),
            succ_indices=np.concatenate(indices) if indices else np.zeros(0, np.int64),
            u=self.u[keep],
            v=self.v[keep],
            properties=self.properties.iloc[keep].reset_index(drop=True),
            name=self.name,
        )
        return sub, old_to_new


def _polyline_centroid(points: np.ndarray) -> np.ndarray:
    """Length-weighted centroid of a polyline in its own (lon, lat) plane, as shapely computes it."""
    seg = np.diff(points, axis=0)
    w = np.hypot(seg[:, 0], seg[:, 1])
    if w.sum() == 0:
        return points.mean(axis=0)
    mids = (points[:-1] + points[1:]) / 2
    return (mids * w[:, None]).sum(axis=0) / w.sum()


def _is_uturn(graph_edges: list, a: int, b: int) -> bool:
    """Segment ``b`` drives back along ``a``: it returns to a's start over the same road."""
    ua, va, la, coords_a = graph_edges[a]
    ub, vb, lb, coords_b = graph_edges[b]
    if not (ub == va and vb == ua) or ua == va:
        return False
    if abs(la - lb) > max(1.0, 0.01 * la):
        return False
    return (
        np.allclose(coords_a[::-1], coords_b, atol=1e-6)
        if len(coords_a) == len(coords_b)
        else False
    )


def _number(value: object, default: float = 0.0) -> float:
    """The number in an OSM value such as ``"50"``, ``"2;3"`` (first) or ``"30 mph"`` (in km/h).

    osmnx merges the values of joined ways into a list in set order, which changes from run to
    run: for a list the smallest number is used, so the result is deterministic (and cautious).
    """
    if isinstance(value, (list, tuple)):
        numbers = [_number(v, np.nan) for v in value]
        numbers = [x for x in numbers if not np.isnan(x)]
        return min(numbers) if numbers else default
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return default
    text = str(value).strip().strip("[]'\"")
    digits = ""
    for ch in text:
        if ch.isdigit() or (ch == "." and digits):
            digits += ch
        elif digits:
            break
    if not digits:
        return default
    number = float(digits)
    return number * 1.609344 if "mph" in text else number


def _flag(value: object) -> int:
    if isinstance(value, (list, tuple)):
        return int(any(_flag(v) for v in value))
    return int(
        str(value).lower() in ("yes", "true", "1", "viaduct", "building_passage", "roundabout")
    )


def build_segment_graph(
    graph: nx.MultiDiGraph,
    uturn: str = "dead_end",
    report: NetworkReport | None = None,
    name: str = "roadmap",
) -> SegmentGraph:
    """Turn an osmnx road graph into a :class:`SegmentGraph` on its largest strongly connected part.

    ``uturn`` decides whether a segment may be followed by its own reverse: ``"dead_end"`` (only
    where nothing else leaves the end node, the default), ``"forbid"`` or ``"allow"``. Connectivity
    is computed on the segment graph itself, so U-turn rules and one-way streets are respected;
    segments outside the largest strongly connected component are dropped and counted in
    ``report``. Segment ids follow the sorted (u, v, key) order of the surviving edges.
    """
    if uturn not in UTURN_POLICIES:
        raise UserError(f"unknown U-turn policy {uturn!r}: use one of {', '.join(UTURN_POLICIES)}")
    edges = sorted(graph.edges(keys=True, data=True), key=lambda e: (e[0], e[1], e[2]))
    if not edges:
        raise UserError(f"{name}: the road network has no edges")
    coords, lengths, highways, us, vs, props = [], [], [], [], [], []
    for u, v, _k, data in edges:
        if "geometry" in data:
            line = np.asarray(data["geometry"].coords, dtype=np.float64)[:, :2]
        else:
            line = np.array(
                [
                    [graph.nodes[u]["x"], graph.nodes[u]["y"]],
                    [graph.nodes[v]["x"], graph.nodes[v]["y"]],
                ]
            )
        coords.append(np.round(line, 7))
        lengths.append(round(float(data.get("length", 0.0)), 3))
        highways.append(primary_highway(data.get("highway")))
        us.append(int(u))
        vs.append(int(v))
        props.append(
            {
                "lanes": int(_number(data.get("lanes"))),
                "tunnel": _flag(data.get("tunnel", "no")),
                "bridge": _flag(data.get("bridge", "no")),
                "roundabout": _flag(data.get("junction", "no")),
                "oneway": _flag(data.get("oneway", False)),
                "maxspeed": _number(data.get("maxspeed")),
            }
        )
    n = len(edges)
    by_start: dict[int, list[int]] = {}
    for i, u in enumerate(us):
        by_start.setdefault(u, []).append(i)
    info = [(us[i], vs[i], lengths[i], coords[i]) for i in range(n)]
    indptr = [0]
    indices: list[int] = []
    for a in range(n):
        nxt = by_start.get(vs[a], [])
        turns = [b for b in nxt if _is_uturn(info, a, b)]
        others = [b for b in nxt if b not in turns]
        if uturn == "allow" or (uturn == "dead_end" and not others):
            chosen = nxt
        else:
            chosen = others
        indices.extend(sorted(chosen))
        indptr.append(len(indices))
    full = SegmentGraph(
        coords=coords,
        length_m=np.asarray(lengths),
        highway=highways,
        succ_indptr=np.asarray(indptr),
        succ_indices=np.asarray(indices, dtype=np.int64),
        u=np.asarray(us),
        v=np.asarray(vs),
        properties=pd.DataFrame(props, columns=list(PROPERTY_COLUMNS)),
        name=name,
    )
    graph_out, _ = largest_strongly_connected(full, report)
    return graph_out


def largest_strongly_connected(
    graph: SegmentGraph, report: NetworkReport | None = None
) -> tuple[SegmentGraph, np.ndarray]:
    """Keep the largest set of mutually reachable segments; count what is dropped in ``report``.

    Returns the subgraph and ``old_to_new`` (-1 for dropped segments). UserError when fewer than
    two segments reach each other.
    """
    count, labels = connected_components(
        graph.successor_matrix(), directed=True, connection="strong"
    )
    largest = np.bincount(labels).argmax()
    keep = np.flatnonzero(labels == largest)
    if report is not None:
        dropped = np.flatnonzero(labels != largest)
        report.components = int(count)
        report.segments_dropped_scc = len(dropped)
        report.length_dropped_scc_km = float(graph.length_m[dropped].sum() / 1000)
    if len(keep) < 2:
        raise UserError(
            f"{graph.name}: no two segments are mutually reachable (network too fragmented)"
        )
    return graph.subgraph(keep)
