"""Second benchmark city: Berlin-Adlershof car trips, simulated with SUMO on the net in its wheel.

    .venv/bin/pip install 'eclipse-sumo==1.28.0'          # or: pip install -e 'packages/traj[sumo]'
    .venv/bin/python data_scripts/traj_berlin_adlershof.py   # -> datasets/berlin_adlershof_drive

Input: ``sumo/tools/game/DRT/osm.net.xml`` from the eclipse-sumo 1.28.0 wheel, a SUMO network that
netconvert built from OpenStreetMap (© OpenStreetMap contributors, ODbL 1.0) with its own lanes,
turn rules and traffic lights. There is no OSM file beside it, so here the segment graph is read
from the SUMO net itself (``segment_graph_from_sumo_net``: edges open to cars, lon/lat from the
net's projection, successors = the net's connections) and SUMO simulates on that net unchanged;
the rest (demand, routing, split, files) is the Helsinki pipeline. Deterministic, like it.
"""

from __future__ import annotations

import sys
import time

from difforge.traj.data.build import DemandSettings, simulate_city_dataset, summary_lines
from difforge.traj.data.datasets import DATASETS_DIR
from difforge.traj.data.demand import ActivityCentre
from difforge.traj.data.sumo import segment_graph_from_sumo_net, sumo_home

NAME = "berlin_adlershof_drive"
SEED = 20230924
# Places that attract trips in the drivable part of the net (lon 13.518-13.546, lat 52.425-52.438).
ADLERSHOF_CENTRES = (
    ActivityCentre("S-Bahnhof Adlershof", 13.5414, 52.4348, 1.5, 220),
    ActivityCentre("Rudower Chaussee, WISTA science park", 13.5300, 52.4300, 1.2, 250),
    ActivityCentre("Humboldt University campus Adlershof", 13.5310, 52.4330, 1.0, 200),
    ActivityCentre("Doerpfeldstrasse shops", 13.5440, 52.4370, 0.8, 200),
)
# No GPS sample: the matching benchmark uses Helsinki's; this keeps the folder near 4 MB.
SETTINGS = DemandSettings(
    trips=6000, background=0.5, errand_share=0.3, random_factor=4.0, gps_sample_trips=0
)


def main() -> int:
    started = time.perf_counter()
    net = sumo_home() / "tools" / "game" / "DRT" / "osm.net.xml"
    graph, edge_ids, report = segment_graph_from_sumo_net(net, "drive", name=NAME)
    print("\n".join(report.lines()))
    print(f"segment graph: {graph.num_segments} segments, {graph.num_transitions} transitions")
    meta = {
        "name": NAME,
        "description": "Berlin-Adlershof, car trips simulated with SUMO on the OSM-derived SUMO net",
        "source": "eclipse-sumo 1.28.0 tools/game/DRT/osm.net.xml, from OpenStreetMap "
        "(c) OpenStreetMap contributors, ODbL 1.0",
        "command": "python data_scripts/traj_berlin_adlershof.py",
        "uturn_policy": "as the SUMO net's connections",
        "network": report.__dict__ | {"source": "DRT/osm.net.xml"},
    }
    out = DATASETS_DIR / NAME
    stats = simulate_city_dataset(
        graph, net, out, ADLERSHOF_CENTRES, SETTINGS, meta, SEED, "drive",
        "2023-09-26", "Europe/Berlin", edge_ids=edge_ids,
    )  # fmt: skip
    print("\n".join(summary_lines(out, stats)), f"\ndone in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
