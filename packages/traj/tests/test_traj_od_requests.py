"""Users' own requests: ``generate --od FILE.csv`` and ``TrajPipeline(od_file=...)`` with segment
ids or points snapped to the nearest segment, and one-line errors for bad files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from difforge.core.errors import UserError
from difforge.traj.cli import main
from difforge.traj.data.hoser import read_roadmap
from difforge.traj.pipeline import TrajPipeline, read_od_csv, snap_to_segments


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_points_snap_to_the_segment_under_them(dataset):
    graph = read_roadmap(dataset)
    middle = [line[len(line) // 2 - 1 : len(line) // 2 + 1].mean(0) for line in graph.coords]
    lon, lat = np.array(middle).T
    ids, gaps = snap_to_segments(graph, lon, lat)
    assert np.all(gaps < 1.0)
    # Each point lies on its own segment's road (the reverse direction shares the geometry).
    same_road = [
        np.allclose(graph.coords[i], graph.coords[k][::-1]) or i == k for k, i in enumerate(ids)
    ]
    assert all(same_road)


def test_read_od_csv_ids_points_and_departures(dataset, tmp_path):
    graph = read_roadmap(dataset)
    ids = tmp_path / "ids.csv"
    ids.write_text("origin_id,destination_id,departure_time\n3,17,2024-05-01T08:30:00Z\n5,20,\n")
    requests = read_od_csv(ids, graph)
    assert requests.origins.tolist() == [3, 5] and requests.destinations.tolist() == [17, 20]
    assert str(requests.departures[0]) == "2024-05-01T08:30:00" and np.isnat(requests.departures[1])

    lon, lat = graph.centroid[[3, 17]].T
    points = tmp_path / "points.csv"
    pd.DataFrame(
        {
            "origin_lon": [lon[0]],
            "origin_lat": [lat[0]],
            "destination_lon": [lon[1]],
            "destination_lat": [lat[1]],
        }
    ).to_csv(points, index=False)
    snapped = read_od_csv(points, graph)
    for got, want in ((snapped.origins[0], 3), (snapped.destinations[0], 17)):
        assert got == want or np.allclose(graph.coords[got], graph.coords[want][::-1])
    assert np.isnat(snapped.departures).all()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("from,to\n1,2\n", "needs columns origin_id, destination_id"),
        ("origin_id,destination_id\n1,4200\n", "row 1: destination_id '4200' is not a segment"),
        ("origin_id,destination_id\n1,x\n", "row 1: destination_id 'x' is not a number"),
        ("origin_id,destination_id\n", "no requests"),
        (
            "origin_lon,origin_lat,destination_lon,destination_lat\n13.40,52.52,13.41,52.52\n",
            r"row 1: origin .* km from the nearest road",
        ),
        (
            "origin_id,destination_id,departure_time\n1,2,yesterday\n",
            "departure_time 'yesterday' is not an ISO 8601 time",
        ),
    ],
)
def test_read_od_csv_one_line_errors(dataset, tmp_path, text, message):
    path = tmp_path / "od.csv"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        read_od_csv(path, read_roadmap(dataset))


def test_generate_od_cli_and_pipeline_agree(trained, tmp_path, capsys):
    od = tmp_path / "od.csv"
    od.write_text("origin_id,destination_id,departure_time\n3,17,2024-05-01T08:30:00Z\n5,20,\n")
    out = tmp_path / "trips.csv"
    args = ["generate", "--model", str(trained), "--device", "cpu", "--seed", "1"]
    assert main([*args, "--od", str(od), "--out", str(out)]) == 0
    assert f"requests from {od}" in capsys.readouterr().out
    frame = pd.read_csv(out, keep_default_na=False)
    assert frame["origin_id"].tolist() == [3, 5] and frame["destination_id"].tolist() == [17, 20]
    assert frame["time_list"][0].startswith("2024-05-01T08:30:00Z") and frame["time_list"][1] == ""

    pipe = TrajPipeline.from_pretrained(trained)
    api = pd.read_csv(pipe(od_file=od, seed=1).save(tmp_path / "api.csv"), keep_default_na=False)
    assert api.equals(frame)

    bad = tmp_path / "bad.csv"
    bad.write_text("origin,destination\n1,2\n")
    assert main([*args, "--od", str(bad), "--out", str(tmp_path / "no.csv")]) == 2
    assert "needs columns" in one_line_error(capsys)
    assert not (tmp_path / "no.csv").exists()
    assert main([*args, "--od", str(od), "--n", "3", "--out", str(tmp_path / "no.csv")]) == 2
    assert "give --n" in one_line_error(capsys)
