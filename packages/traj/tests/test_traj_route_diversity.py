"""Route choice metrics: per-OD route entropy on equal trip counts, U-turns, detour ratios."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from difforge.traj.data.segments import SegmentGraph
from difforge.traj.od_grid import ODGrid
from difforge.traj.route_diversity import (
    detour_ratios,
    detour_report,
    per_od_route_entropy,
    route_entropy,
    uturn_counts,
)

# Junctions of a 2 x 3 ladder, about 1.1 km apart (one cell each on a 1 km grid):
#   3 - 4 - 5
#   |   |   |
#   0 - 1 - 2
BOTTOM = np.array([[24.90, 60.10], [24.92, 60.10], [24.94, 60.10]])
JUNCTIONS = np.concatenate([BOTTOM, BOTTOM + np.array([0.0, 0.01])])
ROADS = [(0, 1), (1, 2), (3, 4), (4, 5), (0, 3), (1, 4), (2, 5)]


def ladder() -> SegmentGraph:
    """Every road in both directions (segment 2k: u -> v, 2k + 1: v -> u); U-turns allowed."""
    ends = [pair for road in ROADS for pair in (road, road[::-1])]
    coords = [JUNCTIONS[[u, v]] for u, v in ends]
    successors = [[j for j, (u2, _) in enumerate(ends) if u2 == v] for _, v in ends]
    return SegmentGraph(
        coords=coords,
        length_m=np.array([1000.0] * len(ends)),
        highway=["residential"] * len(ends),
        succ_indptr=np.cumsum([0] + [len(s) for s in successors]),
        succ_indices=np.array([j for s in successors for j in s]),
        u=np.array([u for u, _ in ends]),
        v=np.array([v for _, v in ends]),
    )


def segment(u: int, v: int) -> int:
    road = ROADS.index((u, v)) if (u, v) in ROADS else ROADS.index((v, u))
    return 2 * road + (0 if (u, v) in ROADS else 1)


def path(*junctions: int) -> np.ndarray:
    return np.array([segment(a, b) for a, b in itertools.pairwise(junctions)])


def test_route_entropy_of_empirical_routes():
    assert route_entropy([(1, 2)] * 4) == 0.0
    assert route_entropy([(1,), (2,), (1,), (2,)]) == pytest.approx(math.log(2))


def test_per_od_route_entropy_compares_equal_counts_of_each_side():
    graph = ladder()
    grid = ODGrid.from_bbox(*graph.bbox(), cell_m=1000.0)
    low, high = path(0, 1, 4, 3), path(0, 1, 2, 5, 4, 3)  # same OD, different corridors
    real = [low, high, low, high]
    generated = [low] * 4 + [high] * 6  # only the first 4 (all low) are compared
    result = per_od_route_entropy(graph, real, generated, grid, min_trips=3)
    assert result["route_entropy_od_pairs"] == 1
    assert result["route_entropy_real"] == pytest.approx(math.log(2))
    assert result["route_entropy_generated"] == 0.0
    few = per_od_route_entropy(graph, real, generated[:3], grid, min_trips=3)
    assert few["route_entropy_od_pairs"] == 0 and few["route_entropy_real"] is None
    assert per_od_route_entropy(graph, real, generated, grid, 5)["route_entropy_od_pairs"] == 0


def test_uturns_and_detours():
    graph = ladder()
    reverse = graph.reverse_segments()
    assert reverse[segment(0, 1)] == segment(1, 0) and reverse[segment(1, 0)] == segment(0, 1)
    direct = path(0, 1, 2)
    back_and_forth = path(0, 1, 0, 1, 2)  # two U-turns
    around = path(0, 1, 4, 3, 0, 1, 2)  # a loop round the left square, no U-turn
    assert uturn_counts([direct, back_and_forth, around], reverse).tolist() == [0, 2, 0]
    np.testing.assert_allclose(detour_ratios(graph, [direct, back_and_forth, around]), [1, 2, 3])
    report = detour_report(graph, [direct] * 9 + [around], [direct] * 8 + [back_and_forth] * 2)
    assert report["uturn2_share_real"] == 0.0 and report["uturn2_share_generated"] == 0.2
    assert report["detour_ratio_p90_real"] == pytest.approx(1.0 + 0.1 * 2)  # linear between 1 and 3
    assert report["detour_ratio_p90_generated"] == pytest.approx(2.0)
