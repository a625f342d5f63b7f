"""Exported times: GPX points interpolated along the geometry with milliseconds (read back by
gpxpy), the CSV's unrounded offsets and the GeoJSON's millisecond times."""

from __future__ import annotations

import json

import gpxpy
import numpy as np
import pandas as pd
import pytest

from difforge.traj.data.geo import haversine_m
from difforge.traj.data.requests import read_trip_ends, sample_od_requests
from difforge.traj.export import (
    entry_times,
    point_times,
    trip_polyline,
    write_generated_csv,
    write_geojson,
    write_gpx,
)
from difforge.traj.model import TrajDLM
from difforge.traj.sample import TrajectorySampler


@pytest.fixture(scope="module")
def trips(trained, dataset):
    model = TrajDLM.from_pretrained(trained)
    sampler = TrajectorySampler(model, model.sampling, "cpu")
    ends = read_trip_ends(dataset / "train.csv", sampler.graph.num_segments)
    return sampler.graph, sampler.generate(sample_od_requests(ends, 12, 0), seed=0)


def test_point_times_follow_distance_without_zero_gaps():
    # Two straight segments along a meridian: 0 -> 100 m in 10 s, then 100 -> 300 m in 10 s.
    lat = np.array([0.0, 0.0005, 0.0009, 0.0018, 0.0027])
    points = np.stack([np.zeros_like(lat), lat], 1)
    owners = np.array([0, 0, 0, 1, 1])
    times = np.array(["2020-01-01T00:00:00", "2020-01-01T00:00:10", "2020-01-01T00:00:20"])
    stamps = point_times(points, owners, times.astype("datetime64[ms]"))
    seconds = (stamps - stamps[0]).astype(np.float64) / 1000
    np.testing.assert_allclose(seconds, [0, 5.556, 10, 15, 20], atol=2e-3)  # sub-second kept
    speed = np.diff(lat) / np.diff(seconds)
    np.testing.assert_allclose(speed[:2], speed[0], rtol=1e-3)  # constant within a segment
    np.testing.assert_allclose(speed[2:], speed[2], rtol=1e-3)


def test_gpx_read_by_gpxpy_has_consistent_speeds(trips, tmp_path):
    graph, generated = trips
    path = tmp_path / "trips.gpx"
    write_gpx(path, graph, generated)
    gpx = gpxpy.parse(path.read_text())
    assert len(gpx.tracks) == len(generated)
    sub_second = False
    for k, track in enumerate(gpx.tracks):
        pts = track.segments[0].points
        lat = np.array([p.latitude for p in pts])
        lon = np.array([p.longitude for p in pts])
        t = np.array([p.time.timestamp() for p in pts])
        sub_second |= bool(np.any(t % 1))
        metres = haversine_m(lon[:-1], lat[:-1], lon[1:], lat[1:])
        gaps = np.diff(t)
        assert np.all(gaps >= 0)
        moving = metres > 0.5
        # No point pair of a moving trip shares a time, except on a segment the trip crossed in 0 s.
        durations = generated.durations[k]
        _, owners = trip_polyline(graph, generated.rids[k])
        instant = durations[owners[1:]] < 1e-3
        assert np.all(gaps[moving & ~instant] > 0)
        speed = metres[moving & ~instant] / gaps[moving & ~instant]
        assert np.all(np.isfinite(speed))
        # Within one segment the speed is constant: it is that segment's length over its time.
        same = (owners[1:] == owners[:-1]) & moving & ~instant
        for segment in np.unique(owners[1:][same]):
            on = same & (owners[1:] == segment)
            np.testing.assert_allclose(metres[on] / gaps[on], (metres[on] / gaps[on])[0], rtol=0.05)
        assert abs(t[-1] - t[0] - durations.sum()) < 0.01
    assert sub_second


def test_csv_and_geojson_keep_milliseconds(trips, tmp_path):
    graph, generated = trips
    write_generated_csv(tmp_path / "trips.csv", generated)
    frame = pd.read_csv(tmp_path / "trips.csv")
    offsets = np.array(frame["time_offsets_s"][0].split(","), dtype=float)
    expected_offsets = np.concatenate([[0], np.cumsum(generated.durations[0])[:-1]])
    np.testing.assert_allclose(offsets, expected_offsets, atol=1e-3)
    write_geojson(tmp_path / "trips.geojson", graph, generated)
    props = json.loads((tmp_path / "trips.geojson").read_text())["features"][0]["properties"]
    expected = entry_times(generated, 0)
    assert props["arrival_time"] == str(expected[-1]) + "Z"
    assert len(props["time_list"]) == len(generated.rids[0])
    assert "." in props["arrival_time"]  # milliseconds
