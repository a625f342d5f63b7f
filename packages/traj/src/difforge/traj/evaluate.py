"""The HOSER evaluation protocol (Cao et al., AAAI 2025), as TrajDLM reports it, plus sanity checks.

Every segment is represented by the centroid of its ``roadmap.geo`` LineString. Given generated
trajectories (usually 5,000, their OD pairs and departure times drawn from the training set by
:func:`~difforge.traj.data.requests.sample_od_requests`) and the real test set:

Global metrics (Jensen–Shannon divergence, natural log, so in [0, ln 2]; HOSER's notebook binning:
edges ``np.linspace(0, max over the real test set, 100)`` plus infinity, i.e. 99 regular bins and
one last bin holding the real maximum and everything above it:
:func:`difforge.core.metrics.histogram_jsd`; histograms are
normalised exactly where HOSER adds 1e-14 to the denominator; the great-circle radius, 6378 km,
cancels out of these JSDs):

- ``jsd_distance``: per-trajectory travel distance, the sum of great-circle km between consecutive
  centroids;
- ``jsd_radius``: per-trajectory radius of gyration, the *mean* (not RMS) great-circle distance of
  the centroids from their mean (lon, lat);
- ``jsd_duration``: every consecutive time gap (minutes) of every trajectory, where both sides carry
  times (``None`` otherwise: TrajDLM makes no timestamps).

Local metrics, on trajectories paired by origin and destination: the origin and destination
centroids fall into cells of a 200 m × 200 m grid; for every (origin cell, destination cell) key
present in both sets, the i-th real trajectory is paired with the i-th generated one (file order)
for i < min(count real, count generated). Means over pairs:

- ``hausdorff_km``: symmetric Hausdorff distance, haversine km on (lat, lon) with R = 6378 km (the
  ``hausdorff`` package's haversine, as HOSER's notebook calls it);
- ``dtw``: FastDTW (radius 1) total cost with the same haversine km point cost, not normalised by
  length (the ``fastdtw`` package, as HOSER's notebook calls it; re-implemented here, see
  :func:`~difforge.traj.trip_metrics.fastdtw_km`);
- ``edr``: edit distance on point sequences, points match when their great-circle distance
  (R = 6378137 m) is at most 100 m; substitution 0 if matched else 1, insertion and deletion 1;
  divided by max(n0, n1). HOSER's notebook builds (lat, lon) arrays and hands them to an EDR
  function that reads (lon, lat), so there latitude and longitude are swapped inside EDR; we use
  the intended order. Swapping the axes moves the cosine factor of the haversine onto the wrong
  coordinate, so HOSER's EDR matches points on a distorted distance and its numbers can differ
  slightly from ours.

The grid origin is the south-west corner of HOSER's fixed box for its three cities
(:data:`~difforge.traj.od_grid.HOSER_BOUNDING_BOXES`) and otherwise the south-west corner of the bounding box of all
coordinates in ``roadmap.geo``. Cells are counted in geodesic metres (WGS-84, pyproj) east and north
of that corner; the OD key of a point is ``x * height + y`` as in HOSER's ``MapManager``
(``height`` = cells covering the box from south to north). Points west or south of a HOSER box get
negative cell numbers rather than folding onto cells inside it.

Sanity checks beyond HOSER's table: ``legal_transition_share`` (consecutive pairs that are
``roadmap.rel`` transitions), ``fully_legal_share`` (trajectories whose every transition is legal),
``destination_reached_share`` (trajectories ending on the requested destination segment, when the
generated file says which one was requested).

Route choice (:mod:`difforge.traj.route_diversity`, keys :data:`DIVERSITY_KEYS`): the mean per-OD
route entropy of real and generated trips on OD keys (the same 200 m grid) with at least
``min_trips`` test trips, compared on equal trip counts; the share of trips with two or more
U-turns and the 90th percentile of the detour ratio (trip length / shortest legal path length),
real and generated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from difforge.core.errors import UserError
from difforge.core.io import write_json
from difforge.traj.data.hoser import Trajectories, read_roadmap, read_trajectories
from difforge.traj.data.segments import SegmentGraph
from difforge.traj.od_grid import HOSER_BOUNDING_BOXES, ODGrid, hoser_city, pair_by_od
from difforge.traj.route_diversity import (
    DEFAULT_MIN_TRIPS,
    detour_report,
    per_od_route_entropy,
)
from difforge.traj.trip_metrics import (
    histogram_jsd_or_none,
    legality_metrics,
    local_metrics,
    radii_of_gyration_km,
    time_gaps_minutes,
    travel_distances_km,
)

METRIC_KEYS = (
    "jsd_distance",
    "jsd_radius",
    "jsd_duration",
    "hausdorff_km",
    "dtw",
    "edr",
    "legal_transition_share",
    "fully_legal_share",
    "destination_reached_share",
)
THROUGHPUT_KEYS = ("generation_seconds", "trajectories_per_second", "batch_size", "device")


@dataclass
class Throughput:
    """How fast the evaluated trajectories were generated (reported beside the metrics)."""

    num_trajectories: int
    seconds: float
    batch_size: int | None = None
    device: str | None = None

    def fields(self) -> dict[str, object]:
        per_second = self.num_trajectories / self.seconds if self.seconds > 0 else None
        return dict(zip(THROUGHPUT_KEYS, (self.seconds, per_second, self.batch_size, self.device)))


def evaluate_trajectories(
    graph: SegmentGraph,
    real: Trajectories,
    generated: Trajectories,
    *,
    requested_destinations: np.ndarray | None = None,
    grid: ODGrid | None = None,
    throughput: Throughput | None = None,
    progress: bool = False,
    min_trips: int = DEFAULT_MIN_TRIPS,
) -> dict[str, object]:
    """Every metric of the protocol for ``generated`` against ``real`` (the test set).

    ``requested_destinations`` (one segment id per generated trajectory) enables
    ``destination_reached_share``. ``grid`` defaults to the bounding box of every coordinate of the
    road network. Returns the metric keys of :data:`METRIC_KEYS` and :data:`DIVERSITY_KEYS`
    (``min_trips``: the fewest test trips of an OD key whose route entropy counts), counts, the
    grid and the throughput fields (``None`` when ``throughput`` is not given).
    """
    if len(real) == 0 or len(generated) == 0:
        raise ValueError("both the real and the generated set need at least one trajectory")
    latlon = np.ascontiguousarray(graph.centroid[:, ::-1])
    grid = grid or ODGrid.from_bbox(*graph.bbox())
    result: dict[str, object] = {
        "jsd_distance": histogram_jsd_or_none(
            travel_distances_km(generated.rids, latlon), travel_distances_km(real.rids, latlon)
        ),
        "jsd_radius": histogram_jsd_or_none(
            radii_of_gyration_km(generated.rids, latlon), radii_of_gyration_km(real.rids, latlon)
        ),
        "jsd_duration": histogram_jsd_or_none(
            time_gaps_minutes(generated.times), time_gaps_minutes(real.times)
        ),
    }

    def od_keys(trajectories: Sequence[np.ndarray]) -> np.ndarray:
        ends = np.array([[t[0], t[-1]] for t in trajectories], dtype=np.int64)
        return grid.keys(graph.centroid[ends, 0], graph.centroid[ends, 1])

    real_idx, gen_idx = pair_by_od(od_keys(real.rids), od_keys(generated.rids))
    result.update(
        local_metrics(
            [latlon[real.rids[i]] for i in real_idx],
            [latlon[generated.rids[i]] for i in gen_idx],
            progress,
        )
    )
    result.update(legality_metrics(generated.rids, graph.transition_legal, requested_destinations))
    result.update(per_od_route_entropy(graph, real.rids, generated.rids, grid, min_trips))
    result.update(detour_report(graph, real.rids, generated.rids))
    result.update(
        {
            "num_generated": len(generated),
            "num_real": len(real),
            "num_od_pairs": len(real_idx),
            "grid_origin_lonlat": [grid.lon0, grid.lat0],
            "grid_cell_m": grid.cell_m,
        }
    )
    result.update(throughput.fields() if throughput else dict.fromkeys(THROUGHPUT_KEYS))
    return result


# Below this share of legal transitions a generated file is taken to come from another road
# network (ids that happen to exist here): unconstrained models still stay far above it.
MIN_LEGAL_SHARE = 0.5


def check_same_network(trips: Trajectories, graph: SegmentGraph, source: str | Path) -> None:
    """UserError when ``trips`` use segment ids this network lacks or mostly drive transitions it
    does not have (trips of another city whose ids fall in range)."""
    for row, rids in enumerate(trips.rids, start=1):
        unknown = rids[(rids < 0) | (rids >= graph.num_segments)]
        if len(unknown):
            raise UserError(
                f"{source}: row {row}: segment id {int(unknown[0])} is not in this road network "
                f"({graph.num_segments} segments): trips of another network?"
            )
    pairs = [(rids[:-1], rids[1:]) for rids in trips.rids if len(rids) > 1]
    if not pairs:
        return
    legal = graph.transition_legal(
        np.concatenate([a for a, _ in pairs]), np.concatenate([b for _, b in pairs])
    ).mean()
    if legal < MIN_LEGAL_SHARE:
        raise UserError(
            f"{source}: only {legal:.1%} of its transitions are roads of this network "
            f"({graph.name}): trips of another network?"
        )


def read_requested_destinations(generated_csv: str | Path) -> np.ndarray | None:
    """The optional ``destination_id`` column of a generated CSV (the requested destinations)."""
    header = pd.read_csv(generated_csv, nrows=0).columns
    if "destination_id" not in header:
        return None
    column = pd.read_csv(generated_csv, usecols=["destination_id"])["destination_id"]
    values = pd.to_numeric(column, errors="coerce")
    if values.isna().any():
        raise UserError(f"{generated_csv}: destination_id must be integer segment ids")
    return values.to_numpy(dtype=np.int64)


def evaluate(
    data_dir: str | Path,
    generated_csv: str | Path,
    out_json: str | Path | None = None,
    *,
    city: str | None = None,
    throughput: Throughput | None = None,
    progress: bool = False,
) -> dict[str, object]:
    """Evaluate a generated HOSER CSV against ``data_dir/test.csv``; write JSON if ``out_json``.

    The grid origin is HOSER's box when ``city`` (or, if ``city`` is None, the name of
    ``data_dir``) is Beijing, Porto or San Francisco, else the road network's bounding box. Test
    trajectories that are invalid on the road network are skipped and counted; a generated file
    with malformed rows or unknown segment ids is a UserError (illegal transitions are measured,
    not rejected). An optional ``destination_id`` column gives the requested destinations.
    """
    data_dir = Path(data_dir)
    graph = read_roadmap(data_dir)
    real = read_trajectories(data_dir / "test.csv", graph)
    generated = read_trajectories(generated_csv, None, on_invalid="error")
    check_same_network(generated, graph, generated_csv)
    destinations = read_requested_destinations(generated_csv)
    if destinations is not None and len(destinations) != len(generated):
        raise UserError(
            f"{generated_csv}: destination_id has {len(destinations)} values for {len(generated)} rows"
        )
    hoser_key = hoser_city(city or data_dir.name)
    if city is not None and hoser_key is None:
        raise UserError(
            f"unknown HOSER city {city!r}: use one of {', '.join(HOSER_BOUNDING_BOXES)}"
        )
    grid = (
        ODGrid.from_bbox(*HOSER_BOUNDING_BOXES[hoser_key])
        if hoser_key
        else ODGrid.from_bbox(*graph.bbox())
    )
    result = evaluate_trajectories(
        graph,
        real,
        generated,
        requested_destinations=destinations,
        grid=grid,
        throughput=throughput,
        progress=progress,
    )
    result["grid_box"] = f"HOSER {hoser_key}" if hoser_key else "roadmap.geo bounding box"
    result["num_real_skipped"] = int(sum(real.skipped.values()))
    if out_json is not None:
        write_json(out_json, result)
    return result


# ----------------------------------------------------------------------------------------------
# Reporting.


def summarize_runs(results: Sequence[Mapping[str, object]]) -> dict[str, dict[str, float] | None]:
    """Mean and (population) standard deviation of each metric over runs (generated files)."""
    summary: dict[str, dict[str, float] | None] = {}
    for key in METRIC_KEYS:
        values = [float(r[key]) for r in results if r.get(key) is not None]
        summary[key] = (
            {"mean": float(np.mean(values)), "std": float(np.std(values))} if values else None
        )
    return summary


def _cell(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, Mapping):
        return f"{_cell(value['mean'])} ± {_cell(value['std'])}"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def format_markdown_table(
    rows: Mapping[str, Mapping[str, object]],
    columns: Sequence[str] = (*METRIC_KEYS, "trajectories_per_second"),
) -> str:
    """A markdown table, one row per method; cells are numbers, ``None`` or ``{mean, std}``."""
    lines = [
        "| method | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for name, metrics in rows.items():
        lines.append(f"| {name} | " + " | ".join(_cell(metrics.get(c)) for c in columns) + " |")
    return "\n".join(lines)
