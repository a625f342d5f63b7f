"""A city-like travel demand: activity centres, a time-of-day profile, and through traffic.

Each trip gets a departure time from a weekday profile (morning and evening peaks, a midday
plateau, quiet nights) and an (origin kind, destination kind) pair whose probabilities depend on
the hour: in the morning people drive from outside the area or from home streets to the activity
centres, in the evening back, and through traffic crosses the area all day. Segments are then
drawn within each kind:

- ``centre``: segments weighted by length x a Gaussian kernel around the activity centres;
- ``home``: segments weighted by length x a road-class factor (quiet streets first);
- ``external``: segments that enter (origins) or leave (destinations) the area at its border,
  weighted by road class (main roads carry most traffic in and out).

A share of trips (``errand_share``) also passes a stop on the way (a drop-off, a parcel, a
parking search): a ``via`` segment drawn near the straight line between origin and destination,
within a detour budget. Together with per-driver randomised route costs this keeps most routes
different from the length-shortest path, as real drivers' routes are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from difforge.traj.data.geo import LocalProjection
from difforge.traj.data.segments import SegmentGraph

KINDS = ("external", "home", "centre")

# Trip-purpose matrices (origin kind x destination kind, order of KINDS).
_MORNING = np.array([[0.15, 0.05, 0.35], [0.03, 0.05, 0.25], [0.02, 0.05, 0.05]])
_OFF_PEAK = np.array([[0.15, 0.075, 0.15], [0.075, 0.05, 0.10], [0.15, 0.10, 0.15]])
_HOME_CLASS_WEIGHT = {
    "residential": 1.0,
    "living_street": 1.0,
    "unclassified": 0.8,
    "service": 0.5,
    "tertiary": 0.5,
    "secondary": 0.25,
    "primary": 0.15,
}
_BORDER_CLASS_WEIGHT = {
    "motorway": 6.0,
    "trunk": 5.0,
    "primary": 4.0,
    "secondary": 3.0,
    "tertiary": 2.0,
    "primary_link": 1.5,
    "secondary_link": 1.5,
}


@dataclass(frozen=True)
class ActivityCentre:
    """A place that attracts trips: (lon, lat), relative weight, kernel radius in metres."""

    name: str
    lon: float
    lat: float
    weight: float = 1.0
    radius_m: float = 200.0


def departure_density(hours: np.ndarray) -> np.ndarray:
    """Unnormalised weekday departure density over the hour of day (local time)."""
    h = np.asarray(hours, dtype=np.float64)

    def bump(mu: float, sd: float) -> np.ndarray:
        return np.exp(-0.5 * ((h - mu) / sd) ** 2)

    density = 0.08 + 1.0 * bump(8.0, 1.0) + 1.1 * bump(16.8, 1.4) + 0.55 * bump(12.5, 2.5)
    night = (h < 5.5) | (h >= 22.5)
    return np.where(night, density * 0.3, density)


def purpose_matrix(hour: float) -> np.ndarray:
    """P(origin kind, destination kind) at ``hour``: a blend of morning, evening and off-peak."""
    morning = np.exp(-0.5 * ((hour - 8.0) / 1.2) ** 2)
    evening = np.exp(-0.5 * ((hour - 17.0) / 1.5) ** 2)
    mixed = morning * _MORNING + evening * _MORNING.T + 0.6 * _OFF_PEAK
    return mixed / mixed.sum()


def _border_segments(graph: SegmentGraph, margin_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Segments entering the area at its border (start near the edge, heading in) and leaving it."""
    min_lon, min_lat, max_lon, max_lat = graph.bbox()
    proj = LocalProjection(min_lon, min_lat)
    x_max, y_max = proj.to_xy(max_lon, max_lat)

    def border_distance(lonlat: np.ndarray) -> np.ndarray:
        x, y = proj.to_xy(lonlat[:, 0], lonlat[:, 1])
        return np.minimum.reduce([x, y, x_max - x, y_max - y])

    d_start = border_distance(graph.start_lonlat)
    d_end = border_distance(graph.end_lonlat)
    entering = np.flatnonzero((d_start < margin_m) & (d_end > d_start))
    leaving = np.flatnonzero((d_end < margin_m) & (d_start > d_end))
    return entering, leaving


def generate_demand(
    graph: SegmentGraph,
    centres: Sequence[ActivityCentre],
    n_trips: int,
    seed: int,
    usable: np.ndarray | None = None,
    min_distance_m: float = 350.0,
    border_margin_m: float = 80.0,
    errand_share: float = 0.25,
    errand_detour: float = 1.4,
) -> pd.DataFrame:
    """Draw ``n_trips`` trips; returns columns ``depart_s`` (seconds after local midnight, sorted),
    ``origin``, ``destination`` (segment ids), ``origin_kind``, ``destination_kind``.

    ``usable`` (bool mask over segments) restricts origins and destinations, e.g. to the edges a
    simulator kept. Origin and destination are at least ``min_distance_m`` apart (straight line).
    """
    rng = np.random.default_rng(seed)
    n = graph.num_segments
    usable = np.ones(n, dtype=bool) if usable is None else np.asarray(usable, dtype=bool)
    proj = LocalProjection(*graph.centroid.mean(axis=0))
    cx, cy = proj.to_xy(graph.centroid[:, 0], graph.centroid[:, 1])

    centre_w = np.zeros(n)
    for c in centres:
        x0, y0 = proj.to_xy(c.lon, c.lat)
        centre_w += c.weight * np.exp(-0.5 * ((cx - x0) ** 2 + (cy - y0) ** 2) / c.radius_m**2)
    centre_w *= graph.length_m
    home_w = graph.length_m * np.array([_HOME_CLASS_WEIGHT.get(h, 0.3) for h in graph.highway])
    border_w = np.array([_BORDER_CLASS_WEIGHT.get(h, 1.0) for h in graph.highway])
    entering, leaving = _border_segments(graph, border_margin_m)
    ext_origin_w = np.zeros(n)
    ext_origin_w[entering] = border_w[entering]
    ext_dest_w = np.zeros(n)
    ext_dest_w[leaving] = border_w[leaving]

    def normalised(w: np.ndarray) -> np.ndarray:
        w = np.where(usable, w, 0.0)
        return w / w.sum() if w.sum() > 0 else np.where(usable, 1.0, 0.0) / usable.sum()

    origin_p = {
        "external": normalised(ext_origin_w),
        "home": normalised(home_w),
        "centre": normalised(centre_w),
    }
    dest_p = {
        "external": normalised(ext_dest_w),
        "home": normalised(home_w),
        "centre": normalised(centre_w),
    }

    minutes = np.arange(24 * 60)
    profile = departure_density(minutes / 60.0)
    depart_min = rng.choice(minutes, size=n_trips, p=profile / profile.sum())
    depart_s = np.sort(depart_min * 60 + rng.integers(0, 60, size=n_trips))

    rows = []
    for t in depart_s:
        matrix = purpose_matrix(t / 3600.0).ravel()
        k = rng.choice(len(matrix), p=matrix)
        o_kind, d_kind = KINDS[k // 3], KINDS[k % 3]
        for _attempt in range(50):
            o = rng.choice(n, p=origin_p[o_kind])
            d = rng.choice(n, p=dest_p[d_kind])
            if o != d and np.hypot(cx[o] - cx[d], cy[o] - cy[d]) >= min_distance_m:
                break
        else:  # a kind pair that cannot give a long enough trip here: fall back to any pair
            while True:
                o, d = rng.choice(np.flatnonzero(usable), size=2, replace=False)
                if np.hypot(cx[o] - cx[d], cy[o] - cy[d]) >= min_distance_m:
                    break
        via = -1
        if rng.random() < errand_share:
            # a stop whose two straight legs together are at most errand_detour x the direct line
            direct = np.hypot(cx[o] - cx[d], cy[o] - cy[d])
            legs = np.hypot(cx - cx[o], cy - cy[o]) + np.hypot(cx - cx[d], cy - cy[d])
            near = np.flatnonzero(usable & (legs <= errand_detour * direct))
            near = near[(near != o) & (near != d)]
            if len(near):
                via = int(rng.choice(near))
        rows.append((int(t), int(o), int(d), via, o_kind, d_kind))
    columns = ["depart_s", "origin", "destination", "via", "origin_kind", "destination_kind"]
    return pd.DataFrame(rows, columns=columns)
