"""City-scale trajectory datasets (HOSER layout, gzip-compressed) simulated with SUMO.

    .venv/bin/pip install 'eclipse-sumo==1.28.0'          # or: pip install -e 'packages/traj[sumo]'
    .venv/bin/python data_scripts/traj_city_scale.py synthetic   # -> runs/traj_datasets/synthetic_city_5k
    .venv/bin/python data_scripts/traj_city_scale.py berlin      # -> runs/traj_datasets/berlin_adlershof_drive_30k

``synthetic``: a procedural grid city (``synthetic_city``, 40 x 40 junctions: 5,000+ segments,
about 6 x 6 km) built from ``--seed``, converted to a SUMO network (signals guessed by
netconvert), with the Helsinki demand model (activity centres scattered over the city, weekday
profile, through traffic, errands) and SUMO routing/simulation, 100,000 recorded trips by
default. ``berlin``: the shipped Berlin-Adlershof set's network, centres and seed with more trips
(30,000 by default, 5x the shipped set). Route choice in both: drivers share a preference for
main roads and a cost per traffic light (as ``helsinki_drive_dua``) plus per-driver noise
(random factor 2) and a share of errands: heterogeneous routes per OD pair. To keep 10^5 trips
within minutes on a laptop core, SUMO runs its mesoscopic (queue) model for the synthetic city
(Berlin with blocking junctions), and routes are chosen once on free-flow costs (no
congestion-aware re-routing round, unlike the shipped sets).

These sets are too large for git: they are written under the git-ignored ``runs/`` and every text
file is gzip-compressed (``roadmap.geo.gz``, ``train.csv.gz``, ...; the readers in
``difforge.traj.data.hoser`` accept both). Same seed and package versions -> byte-identical files
(demand, duarouter and sumo are seeded and single-threaded; gzip headers carry no name or time).
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from difforge.traj.data.build import DemandSettings, simulate_city_dataset, summary_lines
from difforge.traj.data.sumo import (
    RouteCosts,
    build_sumo_network,
    segment_graph_from_sumo_net,
    sumo_home,
)
from difforge.traj.data.synthetic import scatter_centres, synthetic_city

REPO = Path(__file__).resolve().parent.parent
OUT_ROOT = REPO / "runs" / "traj_datasets"
COMPRESSED = ("roadmap.geo", "roadmap.rel", "train.csv", "val.csv", "test.csv")
ROUTE_CHOICE = DemandSettings(
    trips=101_000,  # 1 % over 100,000: a few vehicles may not finish
    background=0.3,
    errand_share=0.2,
    random_factor=2.0,
    assignment_iterations=0,
    gps_sample_trips=0,
    route_costs=RouteCosts(priority_factor=2.0, tls_penalty=20.0),
    mesoscopic="tls_penalty",
)
SYNTHETIC_GRID = 40  # junctions per side: 5,000+ segments (39 gives 4,999)
SYNTHETIC_SEED = 20261208
BERLIN_TRIPS = 30_000


def gzip_in_place(folder: Path, names: tuple[str, ...] = COMPRESSED) -> None:
    """Replace each ``folder/name`` by ``name.gz``; no file name or time in the gzip header, so the
    bytes depend on the content only."""
    for name in names:
        plain = folder / name
        with (
            open(plain, "rb") as src,
            open(folder / f"{name}.gz", "wb") as raw,
            gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as dst,
        ):
            shutil.copyfileobj(src, dst)
        plain.unlink()


def build_synthetic(out: Path, grid: int, trips: int, seed: int) -> dict:
    """A ``grid`` x ``grid`` synthetic city with SUMO demand, written (uncompressed) to ``out``."""
    name = out.name
    graph = synthetic_city(grid, seed=seed)
    graph.name = name
    print(f"segment graph: {graph.num_segments} segments, {graph.num_transitions} transitions")
    centres = scatter_centres(graph, seed=seed)
    command = (
        f"python data_scripts/traj_city_scale.py synthetic --grid {grid} --trips {trips} "
        f"--seed {seed}"
    )
    meta = {
        "name": name,
        "description": f"Synthetic {grid}x{grid}-junction grid city, car trips simulated with SUMO",
        "source": f"difforge.traj.data.synthetic.synthetic_city({grid}, seed={seed})",
        "command": command,
        "uturn_policy": "dead_end",
    }
    with tempfile.TemporaryDirectory(prefix="difforge-net-") as tmp:
        net = build_sumo_network(graph, Path(tmp), "drive", "dead_end")
        return simulate_city_dataset(
            graph, net, out, centres, replace(ROUTE_CHOICE, trips=trips), meta, seed, "drive",
            "2024-01-09", "UTC", work_dir=Path(tmp) / "sim",
        )  # fmt: skip


def build_berlin(out: Path, trips: int) -> dict:
    """Berlin-Adlershof (the shipped set's net, centres and seed) with ``trips`` recorded trips."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from traj_berlin_adlershof import ADLERSHOF_CENTRES, SEED

    net = sumo_home() / "tools" / "game" / "DRT" / "osm.net.xml"
    graph, edge_ids, report = segment_graph_from_sumo_net(net, "drive", name=out.name)
    print(f"segment graph: {graph.num_segments} segments, {graph.num_transitions} transitions")
    meta = {
        "name": out.name,
        "description": "Berlin-Adlershof, car trips simulated with SUMO on the OSM-derived SUMO net",
        "source": "eclipse-sumo 1.28.0 tools/game/DRT/osm.net.xml, from OpenStreetMap "
        "(c) OpenStreetMap contributors, ODbL 1.0",
        "command": f"python data_scripts/traj_city_scale.py berlin --trips {trips}",
        "uturn_policy": "as the SUMO net's connections",
        "network": report.__dict__ | {"source": "DRT/osm.net.xml"},
    }
    # signals' green-split penalty and car following both jam this net at 39,000 vehicles a day
    settings = replace(ROUTE_CHOICE, trips=trips, mesoscopic="junction_control")
    return simulate_city_dataset(
        graph, net, out, ADLERSHOF_CENTRES, settings, meta, SEED,
        "drive", "2023-09-26", "Europe/Berlin", edge_ids=edge_ids,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("city", choices=("synthetic", "berlin"))
    parser.add_argument("--trips", type=int, default=None, help="recorded trips")
    parser.add_argument(
        "--grid", type=int, default=SYNTHETIC_GRID, help="synthetic: junctions/side"
    )
    parser.add_argument("--seed", type=int, default=SYNTHETIC_SEED, help="synthetic: city + demand")
    parser.add_argument("--out", type=Path, default=None, help="dataset folder")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.city == "synthetic":
        trips = args.trips or ROUTE_CHOICE.trips
        out = args.out or OUT_ROOT / f"synthetic_city_{args.grid}x{args.grid}_{trips // 1000}k"
        stats = build_synthetic(out, args.grid, trips, args.seed)
    else:
        trips = args.trips or BERLIN_TRIPS
        out = args.out or OUT_ROOT / f"berlin_adlershof_drive_{trips // 1000}k"
        stats = build_berlin(out, trips)
    gzip_in_place(out)
    size_mb = sum(p.stat().st_size for p in out.iterdir()) / 2**20
    print("\n".join(summary_lines(out, stats)))
    print(f"folder size {size_mb:.1f} MiB; done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
