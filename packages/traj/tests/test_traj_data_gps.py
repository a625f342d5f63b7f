"""GPS reading and cleaning: a real Denver logger trace (no times, repeated fixes), CSV, GPX."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from difforge.core.errors import UserError
from difforge.traj.data.gps import clean_trace, clean_traces, read_gps

DENVER = Path(__file__).parent / "data" / "mappymatch_denver_trace_2.csv"


def test_denver_trace_repeated_fixes_no_times():
    (trace,) = read_gps(DENVER)
    assert len(trace) == 799 and trace.time is None
    assert -105.1 < trace.lon.min() < trace.lon.max() < -104.9
    assert 39.6 < trace.lat.min() < trace.lat.max() < 39.8
    repeats = int(((np.diff(trace.lon) == 0) & (np.diff(trace.lat) == 0)).sum())
    (clean,), report = clean_traces([trace])
    assert report.removed["repeated fix"] == repeats > 100  # the logger stood still at stops
    assert len(clean) == 799 - repeats == report.points_out
    assert ((np.diff(clean.lon) != 0) | (np.diff(clean.lat) != 0)).all()
    assert "kept" in report.line()


def test_csv_columns_ids_times_and_invalid_points(tmp_path):
    csv = tmp_path / "gps.csv"
    csv.write_text(
        "Trip_ID,Timestamp,Latitude,Longitude\n"
        "a,2024-05-06T08:00:00Z,60.1700,24.9400\n"
        "a,2024-05-06T08:00:05Z,60.1701,24.9402\n"
        "a,2024-05-06T08:00:05Z,60.1702,24.9404\n"  # same time again
        "a,2024-05-06T08:00:10Z,nan,24.9406\n"
        "a,2024-05-06T08:00:15Z,91.0,24.9408\n"  # latitude out of range
        "a,2024-05-06T08:00:20Z,60.1900,24.9410\n"  # 2 km in 10 s: a jump
        "a,not a time,60.1704,24.9410\n"
        "a,2024-05-06T08:00:25Z,60.1704,24.9410\n"
        "b,2024-05-06T09:00:00+02:00,60.1710,24.9420\n",
        encoding="utf-8",
    )
    traces = read_gps(csv)
    assert [t.trace_id for t in traces] == ["a", "b"]
    assert traces[1].time[0] == np.datetime64("2024-05-06T07:00:00")  # offsets become UTC
    cleaned, report = clean_traces(traces)
    assert [len(t) for t in cleaned] == [3]  # "b" has one fix: skipped
    assert report.traces_skipped == 1
    assert report.removed == {
        "invalid coordinates": 2,
        "time not increasing": 1,
        "speed jump": 1,
        "unparsable time": 1,
    }
    assert (np.diff(cleaned[0].time.astype(np.int64)) > 0).all()


def test_unix_seconds_and_gpx(tmp_path):
    csv = tmp_path / "unix.csv"
    csv.write_text(
        "lon,lat,time\n24.94,60.17,1715000000\n24.941,60.1705,1715000010.4\n", encoding="utf-8"
    )
    (trace,) = read_gps(csv)
    assert trace.time[1] - trace.time[0] == np.timedelta64(10, "s")

    gpx = tmp_path / "drive.gpx"
    gpx.write_text(
        '<?xml version="1.0"?><gpx version="1.1" creator="test" xmlns="http://www.topografix.com/GPX/1/1">'
        "<trk><name>drive</name><trkseg>"
        '<trkpt lat="60.1700" lon="24.9400"><time>2024-05-06T08:00:00Z</time></trkpt>'
        '<trkpt lat="60.1702" lon="24.9404"><time>2024-05-06T08:00:05Z</time></trkpt>'
        "</trkseg><trkseg>"
        '<trkpt lat="60.1710" lon="24.9410"/><trkpt lat="60.1712" lon="24.9414"/>'
        "</trkseg></trk></gpx>",
        encoding="utf-8",
    )
    first, second = read_gps(gpx)
    assert first.trace_id == "drive/0" and len(first) == 2
    assert first.time[1] == np.datetime64("2024-05-06T08:00:05")
    assert second.time is None and second.lon[1] == pytest.approx(24.9414)
    # a trace object can be cleaned on its own too
    assert len(clean_trace(first)) == 2


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", "", "empty file"),
        ("header.csv", "lon,lat\n", "no GPS points"),
        ("cols.csv", "a,b\n1,2\n", "needs longitude and latitude"),
        ("bad.gpx", "<gpx><trk><trkseg><trkpt lat=", "not a readable GPX"),
        ("gps.kml", "<kml/>", "unknown GPS format"),
    ],
)
def test_bad_gps_files(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=message):
        read_gps(path)
