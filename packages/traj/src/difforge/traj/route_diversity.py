"""Route choice beyond the HOSER protocol: per-OD route entropy, U-turns and detour ratios.

Per-OD route entropy (real vs generated). Trips are grouped by the HOSER OD key (origin and
destination segment centroids in cells of a ``cell_m`` grid, :class:`~difforge.traj.od_grid.ODGrid`).
A trip's *route* is the sequence of grid cells its segment centroids pass through, consecutive
repeats collapsed, so that two trips starting on different segments of the same cell but following
the same corridor count as one route. For every OD key with at least ``min_trips`` real (test) trips
and at least as many generated ones, both sides take the same number ``m`` of trips (the real count;
the first ``m`` generated trips of that key in file order), so that both entropies carry the same
small-sample bias; the entropy of a side is the Shannon entropy (natural log) of its empirical
route distribution over those ``m`` trips (0: one route; ``ln m``: all routes distinct). Reported:
the mean over OD keys of each side's entropy and the number of keys.

Detours: a U-turn is a transition onto the reverse of the current segment (the same polyline
driven backwards); ``uturn2_share`` is the share of trips with two or more. The detour ratio of a
trip is its length (summed segment lengths, origin and destination included) over the length of
the shortest legal path between its origin and destination segments (the same sum);
``detour_ratio_p90`` is its 90th percentile.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np
from scipy.sparse.csgraph import dijkstra

from difforge.traj.data.segments import SegmentGraph
from difforge.traj.od_grid import ODGrid

DEFAULT_MIN_TRIPS = 3
DIJKSTRA_CHUNK = 512
DIVERSITY_KEYS = (
    "route_entropy_real",
    "route_entropy_generated",
    "route_entropy_od_pairs",
    "uturn2_share_real",
    "uturn2_share_generated",
    "detour_ratio_p90_real",
    "detour_ratio_p90_generated",
)


def route_cells(rids: np.ndarray, cells: np.ndarray) -> tuple[int, ...]:
    """The grid cells a trip passes through (``cells``: cell key per segment), repeats collapsed."""
    keys = cells[np.asarray(rids, dtype=np.int64)]
    keep = np.concatenate([[True], keys[1:] != keys[:-1]])
    return tuple(int(k) for k in keys[keep])


def route_entropy(routes: Sequence[tuple[int, ...]]) -> float:
    """Shannon entropy (nats) of the empirical distribution of ``routes``."""
    counts = np.array(list(Counter(routes).values()), dtype=np.float64)
    share = counts / counts.sum()
    return float(-(share * np.log(share)).sum())


def per_od_route_entropy(
    graph: SegmentGraph,
    real: Sequence[np.ndarray],
    generated: Sequence[np.ndarray],
    grid: ODGrid,
    min_trips: int = DEFAULT_MIN_TRIPS,
) -> dict[str, float | int | None]:
    """Mean per-OD route entropy of ``real`` and ``generated`` trips (module docstring)."""
    cells = grid.keys(graph.centroid[:, 0], graph.centroid[:, 1])

    def by_od(trips: Sequence[np.ndarray]) -> dict[tuple[int, int], list[tuple[int, ...]]]:
        groups: dict[tuple[int, int], list[tuple[int, ...]]] = defaultdict(list)
        for rids in trips:
            groups[int(cells[rids[0]]), int(cells[rids[-1]])].append(route_cells(rids, cells))
        return groups

    real_groups, generated_groups = by_od(real), by_od(generated)
    entropies = [
        (route_entropy(routes), route_entropy(generated_groups[key][: len(routes)]))
        for key, routes in real_groups.items()
        if len(routes) >= min_trips and len(generated_groups.get(key, ())) >= len(routes)
    ]
    mean_real, mean_generated = np.mean(entropies, axis=0) if entropies else (None, None)
    return {
        "route_entropy_real": None if mean_real is None else float(mean_real),
        "route_entropy_generated": None if mean_generated is None else float(mean_generated),
        "route_entropy_od_pairs": len(entropies),
    }


def uturn_counts(trips: Sequence[np.ndarray], reverse: np.ndarray) -> np.ndarray:
    """Number of U-turns (transitions onto the reverse segment) in each trip."""
    return np.array([int((reverse[rids[:-1]] == rids[1:]).sum()) for rids in trips], dtype=np.int64)


def detour_ratios(graph: SegmentGraph, trips: Sequence[np.ndarray]) -> np.ndarray:
    """Trip length over the shortest legal path's length, both with origin and destination."""
    origins = np.array([rids[0] for rids in trips], dtype=np.int64)
    destinations = np.array([rids[-1] for rids in trips], dtype=np.int64)
    matrix = graph.cost_matrix()
    shortest = np.empty(len(trips))
    for lo in range(0, len(trips), DIJKSTRA_CHUNK):  # bounds the (origins, N) distance table
        part = slice(lo, lo + DIJKSTRA_CHUNK)
        unique, row = np.unique(origins[part], return_inverse=True)
        shortest[part] = dijkstra(matrix, indices=unique)[row, destinations[part]]
    shortest += graph.length_m[origins]
    lengths = np.array([graph.length_m[rids].sum() for rids in trips])
    return lengths / np.maximum(shortest, 1e-9)


def detour_report(
    graph: SegmentGraph, real: Sequence[np.ndarray], generated: Sequence[np.ndarray]
) -> dict[str, float]:
    """``uturn2_share`` and ``detour_ratio_p90`` of both sides (module docstring)."""
    reverse = graph.reverse_segments()
    result: dict[str, float] = {}
    for side, trips in (("real", real), ("generated", generated)):
        result[f"uturn2_share_{side}"] = float((uturn_counts(trips, reverse) >= 2).mean())
        result[f"detour_ratio_p90_{side}"] = float(np.percentile(detour_ratios(graph, trips), 90))
    return result
