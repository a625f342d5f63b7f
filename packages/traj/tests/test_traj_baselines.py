"""Baselines on a hand-made 4 x 4 grid city: shortest path, modal route, Markov chain, times.

The HOSER baseline has its own tests (test_traj_hoser.py)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from difforge.traj.baselines.routes import (
    MarkovChain,
    ModalRoute,
    ShortestPath,
    toward_destinations,
)
from difforge.traj.baselines.travel_times import segment_travel_seconds, timed
from difforge.traj.data.geo import haversine_m
from difforge.traj.data.hoser import Trajectories, read_roadmap, write_roadmap
from difforge.traj.data.requests import ODRequests, sample_od_requests
from difforge.traj.data.segments import SegmentGraph

SIDE = 4
SPEED_MS = {"primary": 10.0, "residential": 5.0}
START = np.datetime64("2024-05-06T08:00:00", "s")


def grid_city(tmp_path) -> SegmentGraph:
    """A 4 x 4 grid of two-way streets (~220 m blocks), written as roadmap.geo/.rel and read back.

    The southern row is ``primary``, the rest ``residential``; a segment may be followed by every
    segment leaving its end node except its own reverse (U-turns only at dead ends: none here).
    """
    node_lonlat = {
        (i, j): (24.94 + 0.004 * j, 60.17 + 0.002 * i) for i in range(SIDE) for j in range(SIDE)
    }
    edges = []
    for (i, j), _ in node_lonlat.items():
        for di, dj in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            if (i + di, j + dj) in node_lonlat:
                edges.append(((i, j), (i + di, j + dj)))
    coords = [np.array([node_lonlat[u], node_lonlat[v]]) for u, v in edges]
    length = np.array([float(haversine_m(c[0, 0], c[0, 1], c[1, 0], c[1, 1])) for c in coords])
    highway = ["primary" if u[0] == 0 and v[0] == 0 else "residential" for u, v in edges]
    node_id = {n: k for k, n in enumerate(node_lonlat)}
    indptr, indices = [0], []
    for u, v in edges:
        nxt = [b for b, (ub, vb) in enumerate(edges) if ub == v and vb != u]
        indices.extend(sorted(nxt))
        indptr.append(len(indices))
    graph = SegmentGraph(
        coords=coords,
        length_m=length,
        highway=highway,
        succ_indptr=np.array(indptr),
        succ_indices=np.array(indices),
        u=np.array([node_id[u] for u, _ in edges]),
        v=np.array([node_id[v] for _, v in edges]),
    )
    write_roadmap(graph, tmp_path)
    return read_roadmap(tmp_path)


def trips(graph: SegmentGraph, n: int, seed: int) -> Trajectories:
    """Routes on randomly perturbed lengths (not all shortest), driven at the road-type speed."""
    rng = np.random.default_rng(seed)
    rids, times = [], []
    while len(rids) < n:
        o, d = rng.integers(0, graph.num_segments, size=2)
        path = graph.shortest_path(
            int(o), int(d), weight=graph.length_m * rng.uniform(0.5, 2.0, graph.num_segments)
        )
        if path is None or len(path) < 3:
            continue
        path = np.asarray(path)
        speed = np.array([SPEED_MS[graph.highway[s]] for s in path[:-1]])
        offsets = np.concatenate([[0], np.cumsum(graph.length_m[path[:-1]] / speed)])
        rids.append(path)
        times.append(START + rng.integers(0, 3600) + np.round(offsets).astype("timedelta64[s]"))
    return Trajectories(rids=rids, times=times, traj_ids=[str(k) for k in range(n)])


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    graph = grid_city(tmp_path_factory.mktemp("grid"))
    return graph, trips(graph, 300, seed=0)


def network_metres(graph: SegmentGraph, path: np.ndarray) -> float:
    return float(graph.length_m[path[1:]].sum())


def assert_legal_and_arrived(
    graph: SegmentGraph, requests: ODRequests, paths: list[np.ndarray]
) -> None:
    for o, d, path in zip(requests.origins, requests.destinations, paths):
        assert path[0] == o and path[-1] == d
        assert graph.transition_legal(path[:-1], path[1:]).all()


def test_segment_travel_seconds_uses_mean_speed_then_road_type_then_global(tmp_path):
    graph = grid_city(tmp_path)
    primary = [s for s in range(graph.num_segments) if graph.highway[s] == "primary"]
    residential = [s for s in range(graph.num_segments) if graph.highway[s] == "residential"]
    a = primary[0]
    b = int(graph.successors(a)[0])
    length = graph.length_m[a]
    # Segment a is driven twice, in 10 s and 30 s: mean speed 2 * length / 40 s, travel time 20 s.
    train = Trajectories(
        rids=[np.array([a, b]), np.array([a, b])],
        times=[START + np.array([0, 10]), START + np.array([0, 30])],
        traj_ids=["0", "1"],
    )
    seconds = segment_travel_seconds(graph, train)
    assert seconds[a] == pytest.approx(20.0)
    # Another primary segment takes the primary speed; residential ones (none observed) the global.
    other = primary[1]
    assert seconds[other] == pytest.approx(graph.length_m[other] / (2 * length / 40))
    assert seconds[residential[0]] == pytest.approx(
        graph.length_m[residential[0]] / (2 * length / 40)
    )


def test_timed_accumulates_travel_times():
    times = timed([np.array([0, 2, 1])], np.array([START]), np.array([10.0, 20.0, 5.4]))
    assert times[0].tolist() == (START + np.array([0, 10, 15])).tolist()
    assert timed(
        [np.array([0])], np.array([np.datetime64("NaT")], dtype="datetime64[s]"), np.ones(1)
    ) == [None]


def test_shortest_path_matches_networkx(city):
    graph, train = city
    requests = sample_od_requests(train, n=40, seed=1)
    paths = ShortestPath(graph).generate(requests)
    assert_legal_and_arrived(graph, requests, paths)
    weighted = nx.DiGraph()
    for a in range(graph.num_segments):
        for b in graph.successors(a):
            weighted.add_edge(a, int(b), weight=float(graph.length_m[b]))
    for o, d, path in zip(requests.origins, requests.destinations, paths):
        best = nx.dijkstra_path_length(weighted, int(o), int(d)) if o != d else 0.0
        assert network_metres(graph, path) == pytest.approx(best)


def test_modal_route_copies_the_most_frequent_training_route_else_the_shortest_path(city):
    graph, train = city
    shortest = ShortestPath(graph)

    def od(path):
        return ODRequests(path[:1], path[-1:], np.full(1, START))

    # a training trip that is not the shortest path between its ends, seen twice, beside the
    # shortest path seen once: the look-up must return the detour
    detour = next(r for r in train.rids if not np.array_equal(r, shortest.generate(od(r))[0]))
    direct = shortest.generate(od(detour))[0]
    modal = ModalRoute(graph, Trajectories([detour, direct, detour], [None] * 3, ["a", "b", "c"]))
    others = sample_od_requests(train, n=40, seed=1)
    asked = ODRequests(
        np.concatenate([detour[:1], others.origins]),
        np.concatenate([detour[-1:], others.destinations]),
        np.full(len(others) + 1, START),
    )
    paths = modal.generate(asked)
    np.testing.assert_array_equal(paths[0], detour)
    fallback = shortest.generate(asked)  # every other pair is unseen: the shortest path
    for k, (o, d) in enumerate(zip(asked.origins, asked.destinations)):
        if k and (o, d) != (detour[0], detour[-1]):
            np.testing.assert_array_equal(paths[k], fallback[k])
    assert_legal_and_arrived(graph, asked, paths)
    assert modal.repeat_share() == pytest.approx(2 / 3)


def test_markov_chain_descends_to_destination_and_follows_counts(city):
    graph, _ = city
    # Every training trip from segment `start` turns into `favourite`, never into the other option.
    start = 0
    options = graph.successors(start)
    dest_dist = {}
    for d in range(graph.num_segments):
        _ids, dist, _next = next(toward_destinations(graph, np.array([d])))
        dest_dist[d] = dist[0]
    # A destination for which both successors of `start` are strictly closer than `start` itself.
    dest = next(
        d
        for d in range(graph.num_segments)
        if all(dest_dist[d][o] < dest_dist[d][start] for o in options) and d not in options
    )
    favourite = int(options[0])
    train = Trajectories(
        rids=[np.array([start, favourite])] * 50,
        times=[None] * 50,
        traj_ids=[str(k) for k in range(50)],
    )
    requests = ODRequests(
        origins=np.full(200, start), destinations=np.full(200, dest), departures=np.full(200, START)
    )
    paths = MarkovChain(graph, train, alpha=1.0, seed=0).generate(requests)
    assert_legal_and_arrived(graph, requests, paths)
    for path in paths:  # network distance to the destination falls at every step
        assert (np.diff(dest_dist[dest][path]) < 0).all()
    share = np.mean([path[1] == favourite for path in paths])
    assert share > 0.9  # 51 / 52 with alpha = 1, against 1/2 without the counts
