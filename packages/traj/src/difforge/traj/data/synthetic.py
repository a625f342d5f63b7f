"""A procedural grid-like city of any size, for tests and the speed/memory scaling benchmark.

``synthetic_city(n)`` lays an n x n grid of junctions (jittered, ``block_m`` apart) around a
reference point, with two-way arterials (``primary``) every ``arterial_every`` rows and columns,
``residential`` streets elsewhere (a share of them one-way, alternating direction like real
one-way grids) and a share of blocks merged (street pieces removed), then builds the segment graph
with the same code as real maps (largest strongly connected part, U-turn policy). n = 110 gives
about 40,000 segments, the size of HOSER's Beijing vocabulary.

``synthetic_trips`` draws trips between random segments along per-trip randomly weighted
cheapest paths (so routes vary like drivers' do), with entry times from the road speeds.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from difforge.traj.data.geo import LocalProjection, haversine_m
from difforge.traj.data.segments import SegmentGraph, build_segment_graph

_SPEED_KMH = {"primary": 50.0, "residential": 30.0}


def synthetic_city(
    n: int,
    seed: int = 0,
    block_m: float = 150.0,
    arterial_every: int = 5,
    one_way_share: float = 0.3,
    removed_share: float = 0.05,
    lon0: float = 24.94,
    lat0: float = 60.17,
) -> SegmentGraph:
    """An n x n junction grid city as a :class:`SegmentGraph` (see the module docstring)."""
    if n < 2:
        raise ValueError("a grid city needs n >= 2")
    rng = np.random.default_rng(seed)
    proj = LocalProjection(lon0, lat0)
    jitter = rng.normal(0.0, 0.08 * block_m, size=(n, n, 2))
    graph = nx.MultiDiGraph(crs="epsg:4326")
    for i in range(n):
        for j in range(n):
            lon, lat = proj.to_lonlat(j * block_m + jitter[i, j, 0], i * block_m + jitter[i, j, 1])
            graph.add_node(i * n + j, x=float(np.round(lon, 7)), y=float(np.round(lat, 7)))

    def add_street(a: int, b: int, arterial: bool, one_way_forward: bool | None) -> None:
        highway = "primary" if arterial else "residential"
        xa, ya = graph.nodes[a]["x"], graph.nodes[a]["y"]
        xb, yb = graph.nodes[b]["x"], graph.nodes[b]["y"]
        length = float(haversine_m(xa, ya, xb, yb))
        attrs = {
            "highway": highway,
            "length": round(length, 3),
            "lanes": "4" if arterial else "2",
            "maxspeed": str(int(_SPEED_KMH[highway])),
            "oneway": one_way_forward is not None,
        }
        if one_way_forward in (None, True):
            graph.add_edge(a, b, **attrs)
        if one_way_forward in (None, False):
            graph.add_edge(b, a, **attrs)

    for i in range(n):
        for j in range(n):
            for di, dj in ((0, 1), (1, 0)):
                i2, j2 = i + di, j + dj
                if i2 >= n or j2 >= n:
                    continue
                line = i if di == 0 else j  # the row (east-west) or column (north-south) index
                arterial = line % arterial_every == 0
                if not arterial and rng.random() < removed_share:
                    continue
                one_way = None
                if not arterial and rng.random() < one_way_share:
                    one_way = line % 2 == 0  # alternate directions on neighbouring streets
                add_street(i * n + j, i2 * n + j2, arterial, one_way)
    return build_segment_graph(graph, uturn="dead_end", name=f"synthetic_{n}x{n}")


def synthetic_trips(
    graph: SegmentGraph,
    n_trips: int,
    seed: int = 0,
    weight_noise: float = 0.3,
    start: np.datetime64 | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``n_trips`` (segment ids, entry times) pairs on ``graph``.

    Each trip joins two random segments by the cheapest path under travel times multiplied by a
    per-trip log-normal noise (sigma ``weight_noise``); departures are spread over one day from
    ``start`` (default 2024-01-01T00:00:00). Travel times use 50 km/h on primary roads, 30 km/h
    elsewhere.
    """
    rng = np.random.default_rng(seed)
    start = np.datetime64("2024-01-01T00:00:00", "s") if start is None else start
    speed = np.array([_SPEED_KMH.get(h, 30.0) for h in graph.highway]) / 3.6
    seconds = graph.length_m / speed
    rids, times = [], []
    while len(rids) < n_trips:
        o, d = rng.integers(0, graph.num_segments, size=2)
        if o == d:
            continue
        noisy = seconds * rng.lognormal(0.0, weight_noise, size=graph.num_segments)
        path = graph.shortest_path(int(o), int(d), weight=noisy)
        if path is None or len(path) < 2:
            continue
        path = np.asarray(path, dtype=np.int64)
        depart = start + np.timedelta64(int(rng.integers(0, 86400)), "s")
        entry = np.concatenate([[0.0], np.cumsum(seconds[path[:-1]])])
        rids.append(path)
        times.append(depart + np.round(entry).astype("timedelta64[s]"))
    return rids, times
