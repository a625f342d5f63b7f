"""The shipped central-Helsinki dataset, the demand model behind it, and map matching on it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from difforge.core.errors import UserError
from difforge.traj.cli import main as cli_main
from difforge.traj.data.build import shortest_path_share
from difforge.traj.data.datasets import available_datasets, dataset_dir
from difforge.traj.data.demand import ActivityCentre, departure_density, generate_demand
from difforge.traj.data.geo import LocalProjection
from difforge.traj.data.gps import GpsTrace
from difforge.traj.data.hoser import read_dataset, read_roadmap, read_trajectories
from difforge.traj.data.matching import MapMatcher

DATA = dataset_dir("helsinki_drive")


@pytest.fixture(scope="module")
def helsinki():
    return read_dataset(DATA, on_invalid="error")


@pytest.fixture(scope="module")
def gps_sample():
    gps = pd.read_csv(DATA / "gps_sample.csv.gz")
    gps["time_s"] = (
        pd.to_datetime(gps.time, format="%Y-%m-%dT%H:%M:%SZ")
        .to_numpy()
        .astype("datetime64[s]")
        .astype(np.int64)
    )
    return gps


def test_shipped_dataset_is_complete_legal_and_small(helsinki):
    graph, splits = helsinki
    assert "helsinki_drive" in available_datasets()
    meta = json.loads((DATA / "meta.json").read_text())
    stats = meta["statistics"]
    assert graph.num_segments == stats["segments"] > 250
    assert {k: len(v) for k, v in splits.items()} == {s: stats[s] for s in ("train", "val", "test")}
    assert len(splits["train"]) > 4000 and len(splits["test"]) > 500
    for (
        trips
    ) in splits.values():  # read with on_invalid="error": every transition is in roadmap.rel
        assert trips.has_times
        for rids, times in trips:
            assert len(rids) >= 2
            assert (np.diff(times.astype(np.int64)) >= 0).all()
    size = sum(p.stat().st_size for p in DATA.iterdir())
    assert size < 5 * 2**20
    lon0, lat0, lon1, lat1 = graph.bbox()
    assert 24.93 < lon0 < lon1 < 24.96 and 60.16 < lat0 < lat1 < 60.18


@pytest.mark.parametrize("name", ["helsinki_drive", "helsinki_bike", "berlin_adlershof_drive"])
def test_every_shipped_dataset(name):
    folder = dataset_dir(name)
    graph = read_roadmap(folder)
    test = read_trajectories(folder / "test.csv", graph, on_invalid="error", require_times=True)
    stats = json.loads((folder / "meta.json").read_text())["statistics"]
    assert stats["segments"] == graph.num_segments and stats["test"] == len(test)
    rows = {s: len(pd.read_csv(folder / f"{s}.csv", usecols=["traj_id"])) for s in ("train", "val")}
    assert rows == {"train": stats["train"], "val": stats["val"]}
    assert stats["recorded"]["shortest_path_share"] < 0.5
    assert shortest_path_share(graph, test.rids[:200]) < 0.5
    assert sum(p.stat().st_size for p in folder.iterdir()) < 5 * 2**20
    assert "ODbL" in (folder / "README.md").read_text()


def test_bicycle_trips_on_the_car_graph(helsinki):
    """Zero-shot mode transfer data: bicycle trips matched onto the car graph's vocabulary."""
    graph, splits = helsinki
    folder = dataset_dir("helsinki_bike_on_drive")
    for name in ("roadmap.geo", "roadmap.rel"):
        assert (folder / name).read_bytes() == (DATA / name).read_bytes()
    bikes = read_trajectories(folder / "test.csv", graph, on_invalid="error", require_times=True)
    assert len(bikes) > 250

    # bicycles are slower than cars (their matched routes also run longer than the ridden paths)
    def speed(trips) -> float:
        metres = sum(graph.length_m[r[:-1]].sum() for r in trips.rids)
        seconds = sum(int((t[-1] - t[0]).astype(np.int64)) for t in trips.times)
        return metres / seconds * 3.6

    assert speed(bikes) < 0.9 * speed(splits["test"])


def test_shipped_trips_are_not_a_single_rule(helsinki):
    graph, splits = helsinki
    test = splits["test"]
    share = shortest_path_share(graph, test.rids)
    assert share < 0.5
    # departures follow a day: the peaks are several times busier than the night
    hours = np.array(
        [(t[0].astype("datetime64[h]").astype(np.int64) + 3) % 24 for t in splits["train"].times]
    )
    per_hour = np.bincount(hours, minlength=24)
    assert per_hour[7:9].mean() > 4 * per_hour[1:4].mean()
    assert per_hour[15:18].mean() > 4 * per_hour[1:4].mean()
    # trips between the same two end segments do not all take one route
    by_od: dict[tuple[int, int], set[tuple[int, ...]]] = {}
    for r in splits["train"].rids:
        by_od.setdefault((int(r[0]), int(r[-1])), set()).add(tuple(r.tolist()))
    repeated = [routes for routes in by_od.values() if len(routes) > 1]
    assert len(repeated) > 50


def test_demand_model_has_centres_peaks_and_through_traffic(helsinki):
    graph, _ = helsinki
    station = ActivityCentre("station", 24.9425, 60.1710, weight=1.0, radius_m=150)
    demand = generate_demand(graph, [station], n_trips=1500, seed=3)
    assert demand.depart_s.is_monotonic_increasing and demand.depart_s.between(0, 86399).all()
    hours = demand.depart_s // 3600
    assert (hours.isin([7, 8]).mean()) > 3 * hours.isin([2, 3]).mean()
    assert set(demand.origin_kind) == {"external", "home", "centre"}
    # morning trips go to the centre more often than evening trips do
    morning, evening = demand[hours.isin([7, 8])], demand[hours.isin([16, 17])]
    assert (morning.destination_kind == "centre").mean() > (
        evening.destination_kind == "centre"
    ).mean()
    proj = LocalProjection(*graph.centroid.mean(axis=0))
    x, y = proj.to_xy(graph.centroid[:, 0], graph.centroid[:, 1])
    o, d = demand.origin.to_numpy(), demand.destination.to_numpy()
    assert (np.hypot(x[o] - x[d], y[o] - y[d]) >= 350).all()
    assert 0.15 < (demand.via >= 0).mean() < 0.35
    sx, sy = proj.to_xy(station.lon, station.lat)
    to_centre = demand.destination[demand.destination_kind == "centre"].to_numpy()
    assert np.median(np.hypot(x[to_centre] - sx, y[to_centre] - sy)) < 250
    assert departure_density(np.array([8.0]))[0] > 5 * departure_density(np.array([3.0]))[0]
    # same seed, same demand
    assert generate_demand(graph, [station], n_trips=50, seed=3).equals(
        generate_demand(graph, [station], 50, 3)
    )


def degrade(fixes: pd.DataFrame, interval_s: int, noise_m: float, proj, rng) -> GpsTrace:
    t = fixes.time_s.to_numpy()
    keep = ((t - t[0]) % interval_s) == 0
    keep[[0, -1]] = True
    x, y = proj.to_xy(fixes.lon.to_numpy()[keep], fixes.lat.to_numpy()[keep])
    lon, lat = proj.to_lonlat(
        x + rng.normal(0, noise_m, len(x)), y + rng.normal(0, noise_m, len(y))
    )
    return GpsTrace(str(fixes.traj_id.iat[0]), lon, lat, t[keep].astype("datetime64[s]"))


def test_matching_recovers_simulated_routes(helsinki, gps_sample):
    graph, splits = helsinki
    truth = dict(zip(splits["test"].traj_ids, splits["test"].rids))
    matcher = MapMatcher(graph, gps_noise_m=10.0)
    proj = LocalProjection(*graph.centroid.mean(axis=0))
    rng = np.random.default_rng(0)
    hit = matched = true = 0
    for traj_id in pd.unique(gps_sample.traj_id)[:4]:
        trace = degrade(gps_sample[gps_sample.traj_id == traj_id], 5, 10.0, proj, rng)
        result = matcher.match(trace)
        assert graph.transition_legal(result.rids[:-1], result.rids[1:]).all()
        assert (np.diff(result.times.astype(np.int64)) >= 0).all()
        assert result.times[0] >= trace.time[0] and result.times[-1] <= trace.time[-1]
        got, want = set(result.rids.tolist()), set(truth[traj_id].tolist())
        hit, matched, true = hit + len(got & want), matched + len(got), true + len(want)
    assert hit / matched > 0.85 and hit / true > 0.85


def test_match_command_and_bad_gps(tmp_path, gps_sample, capsys):
    ids = pd.unique(gps_sample.traj_id)[:2]
    raw = gps_sample[gps_sample.traj_id.isin(ids)][["traj_id", "time", "lon", "lat"]]
    raw = raw[raw.groupby("traj_id").cumcount() % 3 == 0]
    raw.to_csv(tmp_path / "raw.csv", index=False)
    out = tmp_path / "matched.csv"
    assert (
        cli_main(
            ["match", "--gps", str(tmp_path / "raw.csv"), "--data", str(DATA), "--out", str(out)]
        )
        == 0
    )
    assert "matched 2 of 2 traces" in capsys.readouterr().out
    matched = read_trajectories(out, read_roadmap(DATA), on_invalid="error")
    assert matched.traj_ids == [str(i) for i in ids] and matched.has_times

    far = tmp_path / "denver.csv"
    far.write_text("latitude,longitude\n39.73,-104.99\n39.74,-104.98\n", encoding="utf-8")
    bad_out = tmp_path / "never.csv"
    assert cli_main(["match", "--gps", str(far), "--data", str(DATA), "--out", str(bad_out)]) == 2
    assert "within the road network's area" in capsys.readouterr().err
    nan = tmp_path / "nan.csv"
    nan.write_text("lon,lat\nnan,60.17\n24.94,999\n", encoding="utf-8")
    with pytest.raises(UserError, match="no trace with two or more usable GPS fixes"):
        from difforge.traj.data.matching import match_gps_file

        match_gps_file(nan, DATA, bad_out)
    assert not bad_out.exists()
