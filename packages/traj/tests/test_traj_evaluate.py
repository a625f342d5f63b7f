"""The HOSER protocol against hand-computed values, and `evaluate` end to end on a tiny network."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from difforge.core.errors import UserError
from difforge.traj.data.hoser import Trajectories, write_roadmap, write_trajectories
from difforge.traj.data.requests import sample_od_requests
from difforge.traj.data.segments import SegmentGraph
from difforge.traj.evaluate import METRIC_KEYS, evaluate, format_markdown_table, summarize_runs
from difforge.traj.od_grid import ODGrid, hoser_city, pair_by_od
from difforge.traj.trip_metrics import (
    central_angle,
    edr,
    fastdtw_km,
    hausdorff_km,
    histogram_jsd_or_none,
    radii_of_gyration_km,
    travel_distances_km,
)

KM_PER_DEG = 6378.0 * math.pi / 180  # along the equator or a meridian, R = 6378 km
M_PER_DEG_EDR = 6378137.0 * math.pi / 180


def equator(*lons: float) -> np.ndarray:
    """(lat, lon) points on the equator, where great-circle distance is R * |dlon|."""
    return np.array([[0.0, lon] for lon in lons])


def test_haversine_along_equator_and_meridian():
    assert central_angle([0.0, 0.0], [0.0, 2.0]) * 6378.0 == pytest.approx(2 * KM_PER_DEG)
    assert central_angle([10.0, 5.0], [11.0, 5.0]) * 6378.0 == pytest.approx(KM_PER_DEG)


def test_dtw_of_tiny_polylines():
    # Exact DTW (sequences shorter than radius + 2): a0-b0 = 0, a0|a1-b1 = 0.5 deg, a1-b2 = 0.
    assert fastdtw_km(equator(0, 1), equator(0, 0.5, 1)) == pytest.approx(0.5 * KM_PER_DEG)
    # Two parallel lines 0.01 deg apart: the diagonal, four cells of 0.01 deg, through FastDTW's
    # coarse level.
    a = equator(0, 1, 2, 3)
    b = a + np.array([0.01, 0.0])
    assert fastdtw_km(a, b) == pytest.approx(4 * 0.01 * KM_PER_DEG)


def test_fastdtw_window_matches_the_package_not_exact_dtw():
    # On this pair the fastdtw package (radius 1) returns 19 units of 0.01 deg while exact DTW is
    # 16: FastDTW's coarse path misses the optimum, and HOSER's numbers include that.
    a = equator(0.07, 0.05, 0.02, 0.06, 0.03, 0.05, 0.05, 0.03)
    b = equator(0.04, 0.04, 0.02, 0.09, 0.09, 0.01, 0.03)
    unit = 0.01 * KM_PER_DEG
    assert fastdtw_km(a, b) == pytest.approx(19 * unit)
    assert fastdtw_km(a, b, radius=len(a)) == pytest.approx(16 * unit)  # a full window is exact


def test_hausdorff_is_symmetric_max_of_directed_distances():
    # a -> b: 0 (a's only point lies on b); b -> a: 1 deg.
    assert hausdorff_km(equator(0), equator(0, 1)) == pytest.approx(KM_PER_DEG)
    assert hausdorff_km(equator(0, 1), equator(0)) == pytest.approx(KM_PER_DEG)


def test_edr_counts_edits_with_100_m_matching():
    a = equator(0, 0.01, 0.02, 0.03)
    b = a.copy()
    b[2, 0] += 500 / M_PER_DEG_EDR  # 500 m north: no longer matches -> one substitution
    b = np.vstack([b, [[0.0, 0.5]]])  # one extra point -> one insertion
    assert edr(a, b) == pytest.approx(2 / 5)
    near = np.array([[99 / M_PER_DEG_EDR, 0.0]])
    far = np.array([[101 / M_PER_DEG_EDR, 0.0]])
    assert edr(equator(0), near) == 0.0
    assert edr(equator(0), far) == 1.0
    assert edr(a, a[[0, 1, 3]]) == pytest.approx(1 / 4)  # one deletion
    assert edr(a, a[::-1]) == 1.0  # four substitutions beat any shift (six edits)


def test_distance_and_radius_of_gyration():
    centroids = equator(0, 1, 2)
    trajectories = [np.array([0, 1, 2]), np.array([1]), np.array([2, 0])]
    assert travel_distances_km(trajectories, centroids) == pytest.approx(
        [2 * KM_PER_DEG, 0.0, 2 * KM_PER_DEG]
    )
    # Mean point of 0, 1, 2 deg is 1 deg: distances 1, 0, 1 -> mean 2/3 deg (not RMS).
    assert radii_of_gyration_km(trajectories, centroids) == pytest.approx(
        [2 / 3 * KM_PER_DEG, 0.0, KM_PER_DEG]
    )


def test_jsd_identical_is_zero_and_disjoint_is_ln2():
    real = np.array([0.1, 0.2, 0.2, 0.9, 1.0])
    assert histogram_jsd_or_none(real.copy(), real) == pytest.approx(0.0, abs=1e-12)
    # Edges are np.linspace(0, max real, 100) + inf: 0.55 falls in a bin the real sample leaves
    # empty.
    assert histogram_jsd_or_none(np.full(7, 0.55), real) == pytest.approx(math.log(2))
    assert histogram_jsd_or_none(np.array([]), real) is None


def test_jsd_binning_follows_hosers_notebook():
    # HOSER's notebook: 99 regular bins of width max/99, and the real maximum itself (1.0) goes
    # with everything beyond it into the last bin [1.0, inf). 0.995 lies in the regular bin
    # [98/99, 1.0). Over (bin of 0.25, bin of 0.995, last bin): real (2/3, 0, 1/3), generated
    # (1/2, 1/2, 0). (Bins of width max/100 with the maximum inside the last one would put 0.995
    # and 1.0 together.)
    p, q = np.array([2 / 3, 0.0, 1 / 3]), np.array([1 / 2, 1 / 2, 0.0])
    m = (p + q) / 2
    kl_p = 2 / 3 * math.log((2 / 3) / m[0]) + 1 / 3 * math.log((1 / 3) / m[2])
    kl_q = 1 / 2 * math.log((1 / 2) / m[0]) + 1 / 2 * math.log((1 / 2) / m[1])
    expected = 0.5 * kl_p + 0.5 * kl_q
    jsd = histogram_jsd_or_none(np.array([0.25, 0.995]), np.array([0.25, 0.25, 1.0]))
    assert jsd == pytest.approx(expected)


def _wgs84_degrees_per_metre(lat: float) -> tuple[float, float]:
    """Degrees of longitude and latitude per metre at ``lat`` (WGS-84 radii of curvature)."""
    a, e2 = 6378137.0, 0.00669437999014
    s = math.sin(math.radians(lat)) ** 2
    prime_vertical = a / math.sqrt(1 - e2 * s)
    meridian = a * (1 - e2) / (1 - e2 * s) ** 1.5
    return 1 / (math.radians(1) * prime_vertical * math.cos(math.radians(lat))), 1 / (
        math.radians(1) * meridian
    )


def test_grid_counts_200_m_cells_from_the_south_west_corner():
    grid = ODGrid.from_bbox(24.9, 60.1, 25.0, 60.2)
    lon_per_m, lat_per_m = _wgs84_degrees_per_metre(60.1)
    east = np.array([150, 250, 590, 1010])
    x, y = grid.cells(24.9 + east * lon_per_m, np.full(4, 60.1))
    assert x.tolist() == [0, 1, 2, 5] and y.tolist() == [0, 0, 0, 0]
    x, y = grid.cells(np.full(2, 24.9), 60.1 + np.array([190, 410]) * lat_per_m)
    assert y.tolist() == [0, 2]
    # 0.1 deg of latitude is ~11.1 km: 56 cells cover it; the key is x * height + y.
    assert grid.height == 56
    assert grid.keys(
        np.array([24.9 + 250 * lon_per_m]), np.array([60.1 + 410 * lat_per_m])
    ).tolist() == [1 * 56 + 2]


def test_pairing_takes_the_ith_real_with_the_ith_generated_per_od_key():
    real = np.array([[1, 2], [1, 2], [3, 4], [7, 8]])
    generated = np.array([[1, 2], [3, 4], [3, 4], [5, 6]])
    real_idx, gen_idx = pair_by_od(real, generated)
    assert sorted(zip(real_idx.tolist(), gen_idx.tolist())) == [(0, 0), (2, 1)]


def test_sample_od_requests_draws_training_pairs_and_start_times():
    t0, t1 = np.datetime64("2024-01-01T08:00:00", "s"), np.datetime64("2024-01-01T17:30:00", "s")
    train = Trajectories(
        rids=[np.array([5, 6, 7]), np.array([8, 9])],
        times=[t0 + np.array([0, 60, 90]), t1 + np.array([0, 30])],
        traj_ids=["a", "b"],
    )
    requests = sample_od_requests(train, n=200, seed=4)
    pairs = set(zip(requests.origins.tolist(), requests.destinations.tolist()))
    assert pairs == {(5, 7), (8, 9)}
    assert set(requests.departures.tolist()) == {t0.item(), t1.item()}
    again = sample_od_requests(train, n=200, seed=4)
    assert np.array_equal(again.origins, requests.origins) and np.array_equal(
        again.departures, requests.departures
    )
    untimed = sample_od_requests(
        Trajectories(rids=train.rids, times=[None, None], traj_ids=["a", "b"]), n=3
    )
    assert np.isnat(untimed.departures).all()


def square_road(tmp_path) -> SegmentGraph:
    """Four one-way segments around a ~555 m square: 0 -> 1 -> 2 -> 3 -> 0."""
    corners = [(24.94, 60.17), (24.95, 60.17), (24.95, 60.175), (24.94, 60.175)]
    coords = [np.array([corners[k], corners[(k + 1) % 4]]) for k in range(4)]
    graph = SegmentGraph(
        coords=coords,
        length_m=np.full(4, 555.0),
        highway=["residential"] * 4,
        succ_indptr=np.array([0, 1, 2, 3, 4]),
        succ_indices=np.array([1, 2, 3, 0]),
        u=np.arange(4),
        v=(np.arange(4) + 1) % 4,
    )
    write_roadmap(graph, tmp_path)
    return graph


def test_evaluate_end_to_end_writes_every_metric(tmp_path):
    square_road(tmp_path)
    t0 = np.datetime64("2024-01-01T08:00:00", "s")
    minutes = np.array([0, 60, 120]).astype("timedelta64[s]")
    real = [[0, 1, 2], [1, 2, 3], [2, 3, 0]]
    write_trajectories(tmp_path / "test.csv", real, [t0 + minutes] * 3)
    generated = tmp_path / "generated.csv"
    write_trajectories(
        generated, [[0, 1, 2], [1, 3], [2, 3, 0]], [t0 + minutes, t0 + minutes[:2], t0 + minutes]
    )
    frame = pd.read_csv(generated)
    frame["destination_id"] = [2, 3, 1]
    frame.to_csv(generated, index=False)

    out = tmp_path / "metrics.json"
    result = evaluate(tmp_path, generated, out)
    assert json.loads(out.read_text()) == result
    assert set(METRIC_KEYS) <= set(result)
    assert result["legal_transition_share"] == pytest.approx(4 / 5)  # (1, 3) is not in roadmap.rel
    assert result["fully_legal_share"] == pytest.approx(2 / 3)
    assert result["destination_reached_share"] == pytest.approx(
        2 / 3
    )  # the third stops at 0, not 1
    assert result["jsd_duration"] == pytest.approx(0.0, abs=1e-12)  # every gap is one minute
    assert result["num_od_pairs"] == 3  # every OD cell pair is shared
    assert result["grid_box"] == "roadmap.geo bounding box"
    # Two identical pairs and [1, 2, 3] vs [1, 3]: only the middle point of the first is unmatched.
    latlon = np.array(
        [[60.1725, 24.95], [60.175, 24.945], [60.1725, 24.94]]
    )  # centroids of 1, 2, 3
    assert result["dtw"] == pytest.approx(fastdtw_km(latlon, latlon[[0, 2]]) / 3)
    assert result["edr"] == pytest.approx((1 / 3) / 3)
    assert result["hausdorff_km"] == pytest.approx(hausdorff_km(latlon, latlon[[0, 2]]) / 3)
    assert result["trajectories_per_second"] is None

    table = format_markdown_table({"copy": result})
    assert table.splitlines()[0].startswith("| method | jsd_distance |")
    assert "| copy |" in table


def test_evaluate_rejects_unknown_segments_and_cities_without_writing(tmp_path):
    square_road(tmp_path)
    write_trajectories(tmp_path / "test.csv", [[0, 1]])
    bad = tmp_path / "bad.csv"
    write_trajectories(bad, [[0, 9]])
    out = tmp_path / "metrics.json"
    with pytest.raises(UserError, match="segment id 9 is not in this road network"):
        evaluate(tmp_path, bad, out)
    other_city = tmp_path / "other_city.csv"  # ids that exist here, transitions that do not
    write_trajectories(other_city, [[0, 2, 1], [3, 1], [0, 1]])
    with pytest.raises(UserError, match=r"only 25\.0% of its transitions .* another network"):
        evaluate(tmp_path, other_city, out)
    good = tmp_path / "good.csv"
    write_trajectories(good, [[0, 1]])
    with pytest.raises(UserError, match="unknown HOSER city"):
        evaluate(tmp_path, good, out, city="Atlantis")
    assert not out.exists()
    assert hoser_city("San Francisco") == "san_francisco" and hoser_city("helsinki") is None
    assert evaluate(tmp_path, good, city="Porto")["grid_box"] == "HOSER porto"


def test_summaries_and_markdown_cells():
    summary = summarize_runs([{"dtw": 1.0, "edr": None}, {"dtw": 3.0, "edr": None}])
    assert summary["dtw"] == {"mean": 2.0, "std": 1.0} and summary["edr"] is None
    table = format_markdown_table({"markov": summary}, columns=("dtw", "edr"))
    assert table.splitlines()[2] == "| markov | 2.0000 ± 1.0000 | – |"
