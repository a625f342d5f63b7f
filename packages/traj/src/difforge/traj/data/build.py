"""Simulate a city's trips and assemble a HOSER-layout dataset folder (used by ``data_scripts/``)."""

from __future__ import annotations

import datetime as dt
import gzip
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from scipy.sparse.csgraph import dijkstra

from difforge.core.io import atomic_open, write_json
from difforge.traj.data.demand import ActivityCentre, generate_demand
from difforge.traj.data.hoser import SPLITS, write_roadmap, write_trajectories
from difforge.traj.data.segments import SegmentGraph
from difforge.traj.data.sumo import (
    RouteCosts,
    SimulatedTrips,
    simulate_trips,
    sumo_edge_ids,
    sumo_version,
)

GPS_SAMPLE_NAME = "gps_sample.csv.gz"


def assign_splits(
    n: int, n_recorded: int, seed: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
) -> np.ndarray:
    """Label each of ``n`` demand rows ``train``/``val``/``test`` or ``background``.

    ``n_recorded`` random rows are recorded and split in the given proportions; the others are
    background traffic: simulated (they load the roads) but not written.
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)[:n_recorded]
    n_train = round(fractions[0] * n_recorded)
    n_val = round(fractions[1] * n_recorded)
    labels = np.full(n, "background", dtype=object)
    labels[order[:n_train]] = "train"
    labels[order[n_train : n_train + n_val]] = "val"
    labels[order[n_train + n_val :]] = "test"
    return labels


def local_day_start_utc(date: str, timezone: str) -> np.datetime64:
    """UTC instant of local midnight on ``date`` (``YYYY-MM-DD``) in ``timezone``."""
    midnight = dt.datetime.fromisoformat(date).replace(tzinfo=ZoneInfo(timezone))
    return np.datetime64(midnight.astimezone(dt.UTC).replace(tzinfo=None), "s")


def shortest_path_share(graph: SegmentGraph, rids: list[np.ndarray]) -> float:
    """Share of trips whose segment sequence is the length-shortest path between its end segments.

    The same paths as :meth:`SegmentGraph.shortest_path`, with one Dijkstra per distinct origin
    (city-scale sets have 10^5 trips from a few thousand origins).
    """
    if not rids:
        return float("nan")
    matrix = graph.cost_matrix()
    by_origin: dict[int, list[np.ndarray]] = {}
    for r in rids:
        by_origin.setdefault(int(r[0]), []).append(r)
    same = 0
    for origin, trips in by_origin.items():
        _, pred = dijkstra(matrix, indices=origin, return_predecessors=True)
        for r in trips:
            path = [int(r[-1])]
            while path[-1] != origin and path[-1] >= 0:
                path.append(int(pred[path[-1]]))
            same += path[::-1] == r.tolist()
    return same / len(rids)


def trip_statistics(graph: SegmentGraph, rids: list[np.ndarray], entry_s: list[np.ndarray]) -> dict:
    """Counts and means that describe a set of trips (for ``meta.json`` and the report)."""
    seg_counts = np.array([len(r) for r in rids])
    lengths_km = np.array([graph.length_m[r].sum() / 1000 for r in rids])
    durations_min = np.array([(e[-1] - e[0]) / 60 for e in entry_s])
    hours = np.array([e[0] / 3600 for e in entry_s]) % 24
    return {
        "trips": len(rids),
        "segments_per_trip_mean": round(float(seg_counts.mean()), 2),
        "segments_per_trip_p50_p95_max": [int(np.percentile(seg_counts, q)) for q in (50, 95, 100)],
        "length_km_mean": round(float(lengths_km.mean()), 3),
        "duration_min_mean": round(float(durations_min.mean()), 2),
        "departures_per_hour": np.bincount(hours.astype(int), minlength=24).tolist(),
        "shortest_path_share": round(shortest_path_share(graph, rids), 4),
    }


def write_simulated_dataset(
    graph: SegmentGraph,
    sim: SimulatedTrips,
    splits: np.ndarray,
    out_dir: str | Path,
    day_start_utc: np.datetime64,
    meta: dict,
    gps_rows: list[int] | None = None,
) -> dict:
    """Write ``roadmap.geo/.rel``, ``train/val/test.csv``, the GPS sample, ``meta.json`` and a README.

    ``splits[row]`` labels demand rows (see :func:`assign_splits`; ``background`` rows are not
    written); trips keep the order of their departure. Entry times are
    rounded to whole seconds (HOSER's time format has no fractions). ``gps_rows`` demand rows
    whose SUMO floating-car positions go to ``gps_sample.csv.gz`` (``traj_id,time,lon,lat,segment``:
    a raw-GPS example with the true segment of every fix). Returns the statistics written.
    """
    out = Path(out_dir)
    write_roadmap(graph, out)
    stats: dict = {"segments": graph.num_segments, "transitions": graph.num_transitions}
    recorded = [k for k, row in enumerate(sim.demand_rows) if splits[row] in SPLITS]
    stats["recorded"] = trip_statistics(
        graph, [sim.rids[k] for k in recorded], [sim.entry_s[k] for k in recorded]
    )
    stats["simulated_vehicles"] = len(sim.demand_rows)
    stats["dropped_all_vehicles"] = sim.dropped
    for split in SPLITS:
        keep = [k for k, row in enumerate(sim.demand_rows) if splits[row] == split]
        times = [day_start_utc + np.round(sim.entry_s[k]).astype("timedelta64[s]") for k in keep]
        write_trajectories(
            out / f"{split}.csv",
            [sim.rids[k] for k in keep],
            times,
            traj_ids=[f"t{sim.demand_rows[k]}" for k in keep],
        )
        stats[split] = len(keep)
    if sim.fcd is not None and gps_rows:
        wanted = {f"t{r}" for r in gps_rows}
        fcd = sim.fcd[sim.fcd.vehicle.isin(wanted)]
        stamp = day_start_utc + np.round(fcd.time.to_numpy()).astype("timedelta64[s]")
        sample = pd.DataFrame(
            {
                "traj_id": fcd.vehicle.to_numpy(),
                "time": pd.to_datetime(stamp).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "lon": fcd.lon.round(7).to_numpy(),
                "lat": fcd.lat.round(7).to_numpy(),
                "segment": fcd.segment.to_numpy(),
            }
        )
        # no file name and mtime=0 in the header keep the gzip bytes identical from run to run
        with (
            atomic_open(out / GPS_SAMPLE_NAME, "wb") as raw,
            gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as fh,
        ):
            fh.write(sample.to_csv(index=False).encode("utf-8"))
        stats["gps_sample_trips"] = int(sample.traj_id.nunique())
        stats["gps_sample_fixes"] = len(sample)
    write_json(out / "meta.json", {**meta, "statistics": stats})
    with atomic_open(out / "README.md", "w", encoding="utf-8") as fh:
        fh.write(dataset_readme(meta, stats))
    return stats


def dataset_readme(meta: dict, stats: dict) -> str:
    """The README.md written beside a generated dataset: what it is, licence, files, numbers,
    and ``meta["notes"]`` (a paragraph, when the data script gives one)."""
    rec = stats["recorded"]
    gps_row = ""
    if stats.get("gps_sample_trips"):
        gps_row = (
            f"| `{GPS_SAMPLE_NAME}` | 1 Hz simulated GPS (`traj_id,time,lon,lat,segment`) of "
            f"{stats['gps_sample_trips']} test trips, with the true segment of each fix |\n"
        )
    return f"""# {meta["name"]}

{meta["description"]}. Generated by `{meta["command"]}` (SUMO: {meta["simulator"]}).

Road data: {meta["source"]}. This folder is a derived database and is distributed under the
Open Database License (ODbL) 1.0: © OpenStreetMap contributors, https://www.openstreetmap.org/copyright.
The trips are simulated (SUMO car-following on this network), not recorded from real vehicles.

| file | content |
|---|---|
| `roadmap.geo` | {stats["segments"]} directed road segments (`geo_id` = token), LineString lon/lat, OSM class, length (m) |
| `roadmap.rel` | {stats["transitions"]} legal transitions segment -> next segment (U-turns: {meta["uturn_policy"]}) |
| `train.csv`, `val.csv`, `test.csv` | {stats["train"]} / {stats["val"]} / {stats["test"]} trips: `rid_list` and `time_list` (UTC entry time of each segment) |
{gps_row}| `meta.json` | generation settings and statistics |

Trips: {rec["trips"]} recorded, {rec["segments_per_trip_mean"]} segments and {rec["length_km_mean"]} km on
average, {rec["duration_min_mean"]} min; {100 * rec["shortest_path_share"]:.1f} % follow the length-shortest path
between their first and last segment. Simulated local day: {meta["simulated_date_local"]} ({meta["timezone"]}).
""" + (f"\n{meta['notes']}\n" if meta.get("notes") else "")


@dataclass
class DemandSettings:
    """How many trips a city dataset gets and how drivers choose routes (see ``data_scripts/``)."""

    trips: int
    background: float = 0.5  # unrecorded vehicles per recorded trip (load on the roads)
    errand_share: float = 0.3  # trips with a stop on the way
    random_factor: float = 4.0  # per-driver route-cost noise, factor drawn from [1, F)
    assignment_iterations: int = 1  # congestion-aware re-routing rounds
    gps_sample_trips: int = 150  # test trips whose 1 Hz positions are kept
    route_costs: RouteCosts | None = None  # shared route preferences (None: travel time only)
    mesoscopic: str | None = None  # SUMO's queue model, sumo.MESO_OPTIONS (None: car following)


def simulate_city_dataset(
    graph: SegmentGraph,
    net: Path,
    out_dir: str | Path,
    centres: Sequence[ActivityCentre],
    settings: DemandSettings,
    meta: dict,
    seed: int,
    mode: str = "drive",
    date: str = "2019-04-16",
    timezone: str = "UTC",
    edge_ids: list[str] | None = None,
    work_dir: Path | None = None,
) -> dict:
    """Demand -> SUMO -> HOSER dataset folder, for a graph and its SUMO network ``net``.

    ``edge_ids`` maps segments to the edges of a net not built from the graph (see
    :func:`~difforge.traj.data.sumo.segment_graph_from_sumo_net`). Every random choice derives
    from ``seed``. Returns the statistics written to ``meta.json``.
    """
    with tempfile.TemporaryDirectory(prefix="difforge-sumo-") as tmp:
        work = Path(work_dir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        usable = np.zeros(graph.num_segments, dtype=bool)
        if edge_ids is None:  # only segments that became SUMO edges can start or end a trip
            usable[sorted(sumo_edge_ids(net))] = True
        else:
            usable[:] = True
        n_total = round(settings.trips * (1 + settings.background))
        demand = generate_demand(
            graph, centres, n_total, seed=seed, usable=usable, errand_share=settings.errand_share
        )
        splits = assign_splits(len(demand), settings.trips, seed=seed + 1)
        test_rows = np.flatnonzero(splits == "test")
        rng = np.random.default_rng(seed + 2)
        gps_rows = sorted(rng.choice(test_rows, settings.gps_sample_trips, replace=False).tolist())
        sim = simulate_trips(
            graph,
            demand,
            net,
            work,
            seed=seed,
            mode=mode,
            random_factor=settings.random_factor,
            assignment_iterations=settings.assignment_iterations,
            fcd_rows=gps_rows,
            edge_ids=edge_ids,
            costs=settings.route_costs or RouteCosts(),
            mesoscopic=settings.mesoscopic,
        )
    meta = {
        **meta,
        "mode": mode,
        "seed": seed,
        "simulator": f"eclipse-sumo {sumo_version()}",
        "simulated_date_local": date,
        "timezone": timezone,
        "time_list": "UTC entry time of each segment, %Y-%m-%dT%H:%M:%SZ",
        # unset options are not recorded, so older datasets' meta.json stays byte-identical
        "demand": {
            "activity_centres": [asdict(c) for c in centres],
            **{k: v for k, v in asdict(settings).items() if v is not None},
        },
    }
    return write_simulated_dataset(
        graph, sim, splits, out_dir, local_day_start_utc(date, timezone), meta, gps_rows=gps_rows
    )


def summary_lines(out: Path, stats: dict) -> list[str]:
    """What a data script prints after writing a dataset."""
    rec = stats["recorded"]
    return [
        f"wrote {out}: train {stats['train']}, val {stats['val']}, test {stats['test']} trips",
        f"simulated {stats['simulated_vehicles']} vehicles; dropped {stats['dropped_all_vehicles']}",
        f"shortest-path share {rec['shortest_path_share']:.3f}; {rec}",
    ]
