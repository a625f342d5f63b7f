"""Writing generated trips: HOSER CSV (plus the request), GeoJSON, GPX tracks and a PNG map.

Every writer goes through :mod:`difforge.core.io` (temporary file, then rename), so a failure never
leaves a partial file. Coordinates of a trip are its segments' polylines joined end to end (the
shared junction point kept once); GPX points get times interpolated by distance along the trip's
geometry between each segment's entry time and the next segment's (the last one ends at the trip's
end time), so a segment's time is spread over its own length. Times keep milliseconds: the CSV's
``time_list`` stays in HOSER's whole seconds and ``time_offsets_s`` carries the unrounded seconds
from departure to each segment's entry; GeoJSON and GPX times are ISO 8601 with milliseconds.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from difforge.core.io import atomic_open, atomic_path
from difforge.traj.data.geo import haversine_m
from difforge.traj.data.hoser import TRAJ_COLUMNS, format_rid_list, format_time_list
from difforge.traj.data.segments import SegmentGraph
from difforge.traj.sample import GeneratedTrips

REQUEST_COLUMNS = ("origin_id", "destination_id")
OFFSETS_COLUMN = "time_offsets_s"


def write_generated_csv(path: str | Path, trips: GeneratedTrips) -> None:
    """HOSER CSV (``mm_id,user_id,traj_id,rid_list,time_list``) plus the requested origin and
    destination (``evaluate`` reads ``destination_id`` for ``destination_reached_share``) and the
    unrounded seconds from departure to each segment's entry (``time_offsets_s``, millisecond
    precision; empty without times)."""
    with atomic_open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow((*TRAJ_COLUMNS, *REQUEST_COLUMNS, OFFSETS_COLUMN))
        for k, (rids, times) in enumerate(zip(trips.rids, trips.times)):
            offsets = trips.entry_offsets(k)
            writer.writerow(
                [
                    k,
                    k,
                    k,
                    format_rid_list(rids),
                    "" if times is None else format_time_list(times),
                    int(trips.origins[k]),
                    int(trips.destinations[k]),
                    "" if offsets is None else ",".join(f"{x:.3f}" for x in offsets[:-1]),
                ]
            )


def trip_polyline(graph: SegmentGraph, rids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(lon, lat) points of a trip and, per point, the index of the segment it belongs to."""
    points, owners = [], []
    for k, segment in enumerate(rids):
        line = graph.coords[int(segment)]
        if points and np.allclose(points[-1][-1], line[0]):
            line = line[1:]  # the junction shared with the previous segment
        points.append(line)
        owners.append(np.full(len(line), k))
    return np.concatenate(points), np.concatenate(owners)


def entry_times(trips: GeneratedTrips, k: int) -> np.ndarray | None:
    """Trip ``k``'s segment entry times and then its end time (``datetime64[ms]``), unrounded."""
    offsets = trips.entry_offsets(k)
    if offsets is None:
        return None
    start = np.datetime64(trips.times[k][0], "ms")
    return start + np.round(offsets * 1000).astype(np.int64).astype("timedelta64[ms]")


def _iso(t: np.datetime64) -> str:
    return str(np.datetime64(t, "ms")) + "Z"


def write_geojson(path: str | Path, graph: SegmentGraph, trips: GeneratedTrips) -> None:
    """A FeatureCollection with one LineString per trip; properties: ids, request, times, length."""
    features = []
    for k, rids in enumerate(trips.rids):
        points, _ = trip_polyline(graph, rids)
        times = entry_times(trips, k)
        features.append(
            {
                "type": "Feature",
                "geometry": {
                    "type": "LineString",
                    "coordinates": np.round(points, 7).tolist(),
                },
                "properties": {
                    "traj_id": k,
                    "origin_id": int(trips.origins[k]),
                    "destination_id": int(trips.destinations[k]),
                    "reached_destination": bool(rids[-1] == trips.destinations[k]),
                    "num_segments": len(rids),
                    "length_m": round(float(graph.length_m[rids].sum()), 1),
                    "departure_time": None if times is None else _iso(times[0]),
                    "arrival_time": None if times is None else _iso(times[-1]),
                    "rid_list": [int(r) for r in rids],
                    "time_list": None if times is None else [_iso(t) for t in times[:-1]],
                },
            }
        )
    with atomic_open(path, "w", encoding="utf-8") as fh:
        json.dump({"type": "FeatureCollection", "features": features}, fh, separators=(",", ":"))
        fh.write("\n")


def point_times(points: np.ndarray, owners: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Times (``datetime64[ms]``) of a trip's polyline points, linear in the distance travelled.

    ``times``: each segment's entry time, then the trip's end time. A segment starts at the
    junction it shares with the previous one (the last point before its own points), so its time
    is spread over its whole length and no two points of a moving trip share a time.
    """
    step = np.concatenate([[0.0], haversine_m(*points[:-1].T, *points[1:].T)])
    along = np.cumsum(step)
    first = np.searchsorted(owners, np.arange(len(times) - 1))
    knots = np.append(along[np.maximum(first - 1, 0)], along[-1])
    knots[0] = 0.0
    times = times.astype("datetime64[ms]")
    elapsed = (times - times[0]).astype(np.float64)  # milliseconds
    return times[0] + np.round(np.interp(along, knots, elapsed)).astype("timedelta64[ms]")


def write_gpx(path: str | Path, graph: SegmentGraph, trips: GeneratedTrips) -> None:
    """One GPX track per trip; points carry times when the trip has them."""
    import gpxpy
    import gpxpy.gpx

    gpx = gpxpy.gpx.GPX()
    gpx.creator = "difforge-traj"
    for k, rids in enumerate(trips.rids):
        points, owners = trip_polyline(graph, rids)
        entries = entry_times(trips, k)
        times = None if entries is None else point_times(points, owners, entries)
        track = gpxpy.gpx.GPXTrack(name=f"trip {k}")
        track.description = (
            f"origin {int(trips.origins[k])} destination {int(trips.destinations[k])}"
        )
        segment = gpxpy.gpx.GPXTrackSegment()
        for i, (lon, lat) in enumerate(points):
            stamp = (
                None
                if times is None
                else times[i].astype("M8[us]").astype(object).replace(tzinfo=dt.UTC)
            )
            segment.points.append(gpxpy.gpx.GPXTrackPoint(float(lat), float(lon), time=stamp))
        track.segments.append(segment)
        gpx.tracks.append(track)
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(gpx.to_xml())


def draw_map(
    path: str | Path,
    graph: SegmentGraph,
    trips: GeneratedTrips,
    *,
    title: str | None = None,
    highlighted: int = 6,
) -> None:
    """PNG: the road network in grey, every trip as a faint blue line (so that line density shows
    route popularity), and the first ``highlighted`` trips in colour with their origin (circle)
    and destination (square); local equal-area aspect."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(9, 8))
    ax.add_collection(LineCollection(graph.coords, colors="#c8c8c8", linewidths=1.0, zorder=1))
    lines = [trip_polyline(graph, rids)[0] for rids in trips.rids]
    alpha = float(np.clip(12.0 / max(len(lines), 1), 0.02, 0.5))
    ax.add_collection(
        LineCollection(lines, colors="#1f5fbf", linewidths=1.6, alpha=alpha, zorder=2)
    )
    colours = plt.get_cmap("tab10").colors
    for k, line in enumerate(lines[:highlighted]):
        colour = colours[k % len(colours)]
        ax.plot(*line.T, color=colour, linewidth=2.2, zorder=3)
        ax.plot(*line[0], marker="o", color=colour, markersize=7, markeredgecolor="k", zorder=4)
        ax.plot(*line[-1], marker="s", color=colour, markersize=7, markeredgecolor="k", zorder=4)
    lon_min, lat_min, lon_max, lat_max = graph.bbox()
    ax.set_xlim(lon_min, lon_max)
    ax.set_ylim(lat_min, lat_max)
    ax.set_aspect(1.0 / np.cos(np.radians((lat_min + lat_max) / 2)))
    ax.xaxis.set_major_locator(MaxNLocator(4))
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title(
        title or f"{len(trips)} generated trips on {graph.name}",
        fontsize=11,
    )
    ax.text(
        0.01,
        0.01,
        f"blue: all {len(lines)} trips; colour: {min(highlighted, len(lines))} examples "
        "(circle origin, square destination)",
        transform=ax.transAxes,
        fontsize=8,
        color="#333333",
    )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
