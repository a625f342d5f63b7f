"""A procedural grid-like city of any size, for tests and the speed/memory scaling benchmark.

``synthetic_city(n)`` lays an n x n grid of junctions (jittered, ``block_m`` apart) around a
reference point, with two-way arterials (``primary``) every ``arterial_every`` rows and columns,
``residential`` streets elsewhere (a share of them one-way, alternating direction like real
one-way grids) and a share of blocks merged (street pieces removed), then builds the segment graph
with the same code as real maps (largest strongly connected part, U-turn policy). n = 110 gives
about 40,000 segments, the size of HOSER's Beijing vocabulary.

``synthetic_trips`` draws trips between random segments along per-trip randomly weighted
cheapest paths (so routes vary like drivers' do), with entry times from the road speeds: enough
for tests on toy grids.

``activity_trips`` is the city-like demand for the scaling benchmark: activity centres scattered
over the city (about one per 4 km², log-normal attraction weights), trips from one centre to
another chosen by a gravity model (attraction x exp(-distance / ``decay_m``), so trips stay a
few kilometres long whatever the city's size, as real urban trips do), end segments drawn around
the centres, weekday departure profile (:func:`~difforge.traj.data.demand.departure_density`),
routes = cheapest paths under randomly perturbed travel times (one perturbation per origin, shared
by the few trips that leave it: one Dijkstra per origin keeps a 40,000-segment city at a few
seconds for thousands of trips), slower travel in the peaks. ``write_synthetic_dataset`` writes
such a city and its trips as a HOSER-layout folder (roadmap.geo/.rel, train/val/test.csv).
Everything is a pure function of the seed.
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from difforge.traj.data.demand import ActivityCentre, departure_density
from difforge.traj.data.geo import LocalProjection, haversine_m
from difforge.traj.data.hoser import SPLITS, write_roadmap, write_trajectories
from difforge.traj.data.segments import SegmentGraph, build_segment_graph

_SPEED_KMH = {"primary": 50.0, "residential": 30.0}
# Grid sizes (junctions per side) of the scaling benchmark's cities: 4,999 and 40,497 segments.
SCALING_GRIDS = {"synthetic_5k": 39, "synthetic_40k": 110}
_DAY_START = np.datetime64("2024-01-01T00:00:00", "s")


def _segment_seconds(graph: SegmentGraph) -> np.ndarray:
    """Free-flow seconds per segment: 50 km/h on primary roads, 30 km/h elsewhere."""
    speed = np.array([_SPEED_KMH.get(h, 30.0) for h in graph.highway]) / 3.6
    return graph.length_m / speed


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
    start = _DAY_START if start is None else start
    seconds = _segment_seconds(graph)
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


def scatter_centres(
    graph: SegmentGraph, seed: int = 0, km2_per_centre: float = 4.0, radius_m: float = 500.0
) -> list[ActivityCentre]:
    """Activity centres at random places of the city's bounding box: about one per
    ``km2_per_centre`` (at least 3), log-normal attraction weights, Gaussian radius ``radius_m``."""
    rng = np.random.default_rng(seed)
    min_lon, min_lat, max_lon, max_lat = graph.bbox()
    proj = LocalProjection(min_lon, min_lat)
    width, height = proj.to_xy(max_lon, max_lat)
    count = max(3, round(width * height / 1e6 / km2_per_centre))
    x = rng.uniform(0.1, 0.9, count) * width
    y = rng.uniform(0.1, 0.9, count) * height
    lon, lat = proj.to_lonlat(x, y)
    weight = rng.lognormal(0.0, 0.7, count)
    return [
        ActivityCentre(f"centre {k}", float(lon[k]), float(lat[k]), float(weight[k]), radius_m)
        for k in range(count)
    ]


def activity_trips(
    graph: SegmentGraph,
    n_trips: int,
    seed: int = 0,
    centres: list[ActivityCentre] | None = None,
    decay_m: float = 1000.0,
    min_distance_m: float = 300.0,
    trips_per_origin: int = 4,
    weight_noise: float = 0.35,
    start: np.datetime64 | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``n_trips`` city-like (segment ids, entry times) pairs on ``graph`` (module docstring).

    ``centres`` default to :func:`scatter_centres` of the same seed. Origin and destination are at
    least ``min_distance_m`` apart (straight line); departures fall on the day starting at
    ``start`` (default 2024-01-01T00:00:00 UTC).
    """
    rng = np.random.default_rng(seed)
    start = _DAY_START if start is None else start
    centres = scatter_centres(graph, seed) if centres is None else centres
    proj = LocalProjection(*graph.centroid.mean(axis=0))
    sx, sy = proj.to_xy(graph.centroid[:, 0], graph.centroid[:, 1])
    cx, cy = proj.to_xy(np.array([c.lon for c in centres]), np.array([c.lat for c in centres]))
    # P(segment | centre): length x Gaussian kernel, as cumulative sums for fast draws
    kernel = np.exp(
        -0.5
        * ((sx[None] - cx[:, None]) ** 2 + (sy[None] - cy[:, None]) ** 2)
        / np.array([c.radius_m for c in centres])[:, None] ** 2
    )
    cdf = np.cumsum(kernel * graph.length_m[None], axis=1)
    cdf /= cdf[:, -1:]
    attraction = np.array([c.weight for c in centres])
    gap = np.hypot(cx[:, None] - cx[None], cy[:, None] - cy[None])
    gravity = attraction[None] * np.exp(-gap / decay_m)
    gravity /= gravity.sum(axis=1, keepdims=True)

    seconds = _segment_seconds(graph)
    src = np.repeat(np.arange(graph.num_segments), np.diff(graph.succ_indptr))
    costs = csr_matrix(
        (seconds[graph.succ_indices], (src, graph.succ_indices)), shape=(graph.num_segments,) * 2
    )
    target = costs.indices.copy()  # csr_matrix sorted the entries: cost of entering `target`
    minutes = np.arange(24 * 60)
    profile = departure_density(minutes / 60.0)
    profile /= profile.sum()
    rids: list[np.ndarray] = []
    times: list[np.ndarray] = []
    while len(rids) < n_trips:
        a = rng.choice(len(centres), p=attraction / attraction.sum())
        origin = int(np.searchsorted(cdf[a], rng.random()))
        noisy = seconds * rng.lognormal(0.0, weight_noise, size=graph.num_segments)
        costs.data = np.maximum(noisy[target], 1e-6)
        _, pred = dijkstra(costs, indices=origin, return_predecessors=True)
        for _ in range(trips_per_origin):
            b = rng.choice(len(centres), p=gravity[a])
            dest = int(np.searchsorted(cdf[b], rng.random()))
            far = np.hypot(sx[origin] - sx[dest], sy[origin] - sy[dest]) >= min_distance_m
            if not far or pred[dest] < 0:
                continue
            path = [dest]
            while path[-1] != origin:
                path.append(int(pred[path[-1]]))
            path = np.asarray(path[::-1], dtype=np.int64)
            minute = rng.choice(minutes, p=profile)
            # peaks are slower: up to 1.6x the free-flow time at the busiest minute
            slow = 1.0 + 0.6 * profile[minute] / profile.max()
            travel = seconds[path[:-1]] * slow * rng.lognormal(0.0, 0.1, size=len(path) - 1)
            entry = np.concatenate([[0.0], np.cumsum(travel)])
            depart = start + np.timedelta64(int(minute * 60 + rng.integers(0, 60)), "s")
            rids.append(path)
            times.append(depart + np.round(entry).astype("timedelta64[s]"))
            if len(rids) == n_trips:
                break
    return rids, times


def write_synthetic_dataset(
    out_dir: str | Path,
    grid: int,
    n_trips: int,
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> SegmentGraph:
    """A ``grid`` x ``grid`` :func:`synthetic_city` with ``n_trips`` :func:`activity_trips`,
    written as a HOSER-layout folder (trips split train/val/test in ``fractions``, in the random
    order they were drawn). Returns the road network."""
    graph = synthetic_city(grid, seed=seed)
    rids, times = activity_trips(graph, n_trips, seed=seed)
    out = Path(out_dir)
    write_roadmap(graph, out)
    bounds = np.round(np.cumsum([0.0, *fractions]) / sum(fractions) * n_trips).astype(int)
    for split, lo, hi in zip(SPLITS, bounds[:-1], bounds[1:]):
        write_trajectories(out / f"{split}.csv", rids[lo:hi], times[lo:hi])
    return graph
