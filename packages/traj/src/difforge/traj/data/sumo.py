"""Drive the SUMO traffic simulator (the optional ``eclipse-sumo`` wheel) on OUR segment graph.

We do not let netconvert build its own network from the OSM file. Instead our segment graph is
written as SUMO plain XML (one SUMO edge per segment, **edge id = segment id**, node ids = our
node ids, lon/lat shapes projected with ``--proj.utm``) and netconvert only adds lanes, junction
logic, turn connections and traffic lights. netconvert's own OSM import splits and joins ways and
junctions differently from osmnx (``origId`` maps one OSM way to several edges and back), so a
mapping from its edges to our segments would be fuzzy; built this way every simulated route is a
sequence of our segment ids by construction. Connections are a subset of our successor relation
(the same end-node rule, with netconvert's turnaround switch matching our U-turn policy), and
every converted trip is still checked against ``roadmap.rel``.

Pipeline: ``build_sumo_network`` -> ``write_trips`` -> ``route_trips`` (duarouter, per-vehicle
randomised edge weights, optionally with congested travel times from a previous run) ->
``simulate`` (sumo: vehroute output with exit times, edge travel times, FCD for chosen vehicles)
-> ``read_vehroutes`` / ``read_fcd``.

For a city that comes only as a SUMO network (Berlin-Adlershof in the eclipse-sumo wheel),
``segment_graph_from_sumo_net`` reads our graph from the net itself (successors = its
connections) and the simulation runs on that net unchanged, with a segment -> edge id table.
"""

from __future__ import annotations

import os
import re
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np
import pandas as pd

from difforge.core.errors import UserError
from difforge.traj.data.geo import LocalProjection
from difforge.traj.data.network import NetworkReport
from difforge.traj.data.segments import SegmentGraph, largest_strongly_connected

# Default speed limits (km/h) where OSM has no maxspeed; urban values.
_DEFAULT_SPEED_KMH = {
    "motorway": 100.0,
    "motorway_link": 60.0,
    "trunk": 80.0,
    "trunk_link": 50.0,
    "primary": 50.0,
    "primary_link": 40.0,
    "secondary": 50.0,
    "secondary_link": 40.0,
    "tertiary": 40.0,
    "tertiary_link": 30.0,
    "unclassified": 30.0,
    "residential": 30.0,
    "living_street": 10.0,
    "service": 20.0,
    "road": 30.0,
}
_PRIORITY = {
    "motorway": 13,
    "trunk": 12,
    "primary": 11,
    "secondary": 10,
    "tertiary": 9,
    "unclassified": 7,
    "residential": 6,
    "living_street": 5,
    "service": 4,
}
MESO_OPTIONS = {
    "tls_penalty": ["--meso-tls-penalty", "1"],
    "junction_control": ["--meso-junction-control"],
}
_VCLASS = {"drive": "passenger", "bike": "bicycle", "walk": "pedestrian"}
_UTURN_OPTION = {
    "dead_end": ["--no-turnarounds.except-deadend"],
    "forbid": ["--no-turnarounds"],
    "allow": [],
}


def sumo_home() -> Path:
    """The SUMO installation of the ``eclipse-sumo`` wheel; UserError when it is not installed."""
    try:
        import sumo
    except ImportError as exc:
        raise UserError("SUMO is not installed: pip install 'difforge-traj[sumo]'") from exc
    return Path(sumo.SUMO_HOME)


def sumo_version() -> str:
    """Version of the installed ``eclipse-sumo`` wheel."""
    from importlib.metadata import version

    sumo_home()
    return version("eclipse-sumo")


def _run(tool: str, args: list[str], log_path: Path) -> None:
    """Run a SUMO binary; its output goes to ``log_path``; a failure raises RuntimeError with the tail."""
    home = sumo_home()
    env = dict(os.environ, SUMO_HOME=str(home))
    env.setdefault("PROJ_DATA", str(home / "data" / "proj"))
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.run(
            [str(home / "bin" / tool), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            check=False,
        )
    if proc.returncode != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(f"{tool} failed (exit {proc.returncode}): {' | '.join(tail)}")


def _lanes(graph: SegmentGraph, i: int) -> int:
    lanes = int(graph.properties.at[i, "lanes"])
    if lanes <= 0:
        return 1
    # OSM `lanes` counts both directions of a two-way street
    return max(1, lanes if graph.properties.at[i, "oneway"] else lanes // 2)


def speed_kmh(graph: SegmentGraph, i: int) -> float:
    """Speed limit of segment ``i`` in km/h: OSM maxspeed, else an urban default for its class."""
    limit = float(graph.properties.at[i, "maxspeed"])
    return limit if limit > 0 else _DEFAULT_SPEED_KMH.get(graph.highway[i], 30.0)


def signalised_nodes(
    graph: SegmentGraph, signals_lonlat: np.ndarray, radius_m: float = 25.0
) -> set[int]:
    """Graph nodes with a traffic signal within ``radius_m`` (OSM puts signals at stop lines,
    which are often a few metres before the junction node)."""
    if len(signals_lonlat) == 0:
        return set()
    ends = np.concatenate([graph.start_lonlat, graph.end_lonlat])
    node_ids = np.concatenate([graph.u, graph.v])
    proj = LocalProjection(*ends.mean(axis=0))
    nx_, ny_ = proj.to_xy(ends[:, 0], ends[:, 1])
    sx, sy = proj.to_xy(signals_lonlat[:, 0], signals_lonlat[:, 1])
    near = np.hypot(nx_[:, None] - sx[None, :], ny_[:, None] - sy[None, :]).min(axis=1) <= radius_m
    return {int(n) for n in node_ids[near]}


def build_sumo_network(
    graph: SegmentGraph,
    work_dir: Path,
    mode: str = "drive",
    uturn: str = "dead_end",
    traffic_lights: set[int] | None = None,
) -> Path:
    """Write ``graph`` as SUMO plain XML and netconvert it; returns the ``.net.xml`` path.

    ``traffic_lights``: node ids that get signals (e.g. from :func:`signalised_nodes`); without
    it netconvert guesses signals from road speeds. Self-loop segments (start node = end node)
    are left out: SUMO edges need two junctions.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    nodes: dict[int, tuple[float, float]] = {}
    for i in range(graph.num_segments):
        nodes.setdefault(int(graph.u[i]), tuple(graph.start_lonlat[i]))
        nodes.setdefault(int(graph.v[i]), tuple(graph.end_lonlat[i]))
    nod = work_dir / "plain.nod.xml"
    with open(nod, "w", encoding="utf-8") as fh:
        fh.write("<nodes>\n")
        for node_id, (lon, lat) in sorted(nodes.items()):
            kind = ' type="traffic_light"' if traffic_lights and node_id in traffic_lights else ""
            fh.write(f'  <node id="{node_id}" x="{lon:.7f}" y="{lat:.7f}"{kind}/>\n')
        fh.write("</nodes>\n")
    edg = work_dir / "plain.edg.xml"
    vclass = _VCLASS[mode]
    with open(edg, "w", encoding="utf-8") as fh:
        fh.write("<edges>\n")
        for i in range(graph.num_segments):
            if graph.u[i] == graph.v[i]:
                continue
            shape = " ".join(f"{lon:.7f},{lat:.7f}" for lon, lat in graph.coords[i])
            fh.write(
                f'  <edge id="{i}" from="{graph.u[i]}" to="{graph.v[i]}" numLanes="{_lanes(graph, i)}" '
                f'speed="{speed_kmh(graph, i) / 3.6:.2f}" priority="{_PRIORITY.get(graph.highway[i], 3)}" '
                f'allow="{vclass}" type={quoteattr(graph.highway[i])} shape="{shape}"/>\n'
            )
        fh.write("</edges>\n")
    net = work_dir / "city.net.xml"
    # Signals of nearby junctions (dual carriageways) run as one; actuated programs, as most urban
    # signals are, avoid the spill-back gridlocks that fixed 90 s cycles cause on short blocks.
    args = [
        "--node-files",
        str(nod),
        "--edge-files",
        str(edg),
        "--proj.utm",
        "--output-file",
        str(net),
    ]
    args += ["--tls.join", "--tls.default-type", "actuated"]
    if traffic_lights is None:
        args.append("--tls.guess")
    _run("netconvert", args + _UTURN_OPTION[uturn], work_dir / "netconvert.log")
    return net


def sumo_edge_ids(net_path: Path) -> set[int]:
    """Ids of the normal (non-internal) edges in a net built by :func:`build_sumo_network`."""
    ids = set()
    for _event, elem in ET.iterparse(net_path):
        if elem.tag == "edge" and elem.get("function") is None:
            ids.add(int(elem.get("id")))
        elem.clear()
    return ids


def write_trips(
    demand: pd.DataFrame, path: Path, mode: str = "drive", edge_ids: list[str] | None = None
) -> None:
    """Trips file for duarouter: one ``<trip>`` per demand row, id ``t<row>``, sorted by departure.

    ``edge_ids[segment]`` is the SUMO edge of each segment (default: the segment id itself).
    """
    vclass = _VCLASS[mode]

    def edge(segment: int) -> str:
        return quoteattr(edge_ids[segment] if edge_ids is not None else str(segment))

    with open(path, "w", encoding="utf-8") as fh:
        fh.write("<routes>\n")
        # speedFactor spread = different drivers; sigma = imperfect driving (Krauss default 0.5)
        fh.write(
            f'  <vType id="veh" vClass="{vclass}" speedFactor="normc(1,0.1,0.5,1.5)" sigma="0.5"/>\n'
        )
        for row in demand.itertuples():
            via = f" via={edge(row.via)}" if getattr(row, "via", -1) >= 0 else ""
            fh.write(
                f'  <trip id="t{row.Index}" type="veh" depart="{row.depart_s:.1f}" from={edge(row.origin)} '
                f'to={edge(row.destination)}{via} departLane="best" departSpeed="max"/>\n'
            )
        fh.write("</routes>\n")


@dataclass(frozen=True)
class RouteCosts:
    """What drivers add to the travel time when duarouter picks a route (0 = duarouter's default).

    ``priority_factor`` (duarouter ``--weights.priority-factor``) makes low-priority edges dearer
    (priority from the road class, see ``_PRIORITY``): a systematic preference for main roads, as
    real drivers show. ``tls_penalty`` (``--weights.tls-penalty``) adds seconds for every traffic
    light crossed. Both change every driver's costs the same way, unlike ``random_factor``.
    """

    priority_factor: float = 0.0
    tls_penalty: float = 0.0

    def duarouter_args(self) -> list[str]:
        args = []
        if self.priority_factor:
            args += ["--weights.priority-factor", str(self.priority_factor)]
        if self.tls_penalty:
            args += ["--weights.tls-penalty", str(self.tls_penalty)]
        return args


def route_trips(
    net: Path,
    trips: Path,
    out_routes: Path,
    seed: int,
    random_factor: float,
    weight_file: Path | None = None,
    costs: RouteCosts = RouteCosts(),
) -> None:
    """Route every trip with duarouter by travel time, each vehicle with its own random edge weights.

    ``random_factor`` F multiplies every edge weight of every routing query by a factor drawn
    uniformly from [1, F): different drivers pick different routes for the same OD pair.
    ``weight_file`` (edge travel times from a previous simulation) makes the routing congestion
    aware: one step of dynamic user assignment. ``costs`` adds the same systematic preferences
    to every driver's route costs.
    """
    args = [
        "--net-file", str(net),
        "--route-files", str(trips),
        "--output-file", str(out_routes),
        "--seed", str(seed),
        "--weights.random-factor", str(random_factor),
        "--ignore-errors",
        "--no-step-log",
        "--no-warnings",
    ]  # fmt: skip
    if weight_file is not None:
        args += ["--weight-files", str(weight_file)]
    _run("duarouter", args + costs.duarouter_args(), out_routes.with_suffix(".log"))


@dataclass
class SimulationOutput:
    vehroutes: Path
    edge_times: Path
    fcd: Path | None
    teleported: set[str]


def simulate(
    net: Path,
    routes: Path,
    work_dir: Path,
    seed: int,
    fcd_vehicles: list[str] | None = None,
    tag: str = "sim",
    mesoscopic: str | None = None,
) -> SimulationOutput:
    """Run sumo over the routes: per-vehicle routes with edge exit times, edge travel times per
    15 minutes (for re-routing) and, for ``fcd_vehicles``, 1 Hz floating-car data in lon/lat.

    ``mesoscopic`` runs SUMO's queue-based model (``--mesosim``) instead of car following: an
    order of magnitude faster, for city-scale demand. ``"tls_penalty"``: signals cost each vehicle
    the delay their green split implies (guessed signals of a dense grid gridlock at the peaks as
    blocking junctions); ``"junction_control"``: junctions and signals block queues as in car
    following (the OSM-derived Berlin net jams under the penalty model instead).
    """
    edge_times = work_dir / f"{tag}.edgedata.xml"
    additional = work_dir / f"{tag}.add.xml"
    additional.write_text(
        f'<additional><edgeData id="tt" period="900" file="{edge_times.name}" excludeEmpty="true"/></additional>\n',
        encoding="utf-8",
    )
    vehroutes = work_dir / f"{tag}.vehroutes.xml"
    log = work_dir / f"{tag}.log"
    args = [
        "--net-file", str(net),
        "--route-files", str(routes),
        "--additional-files", str(additional),
        "--vehroute-output", str(vehroutes),
        "--vehroute-output.exit-times",
        "--time-to-teleport", "300",
        "--seed", str(seed),
        "--no-step-log",
        "--duration-log.disable",
    ]  # fmt: skip
    if mesoscopic:
        args += ["--mesosim", *MESO_OPTIONS[mesoscopic]]
    fcd = None
    if fcd_vehicles:
        fcd = work_dir / f"{tag}.fcd.xml"
        args += [
            "--device.fcd.explicit",
            ",".join(fcd_vehicles),
            "--fcd-output",
            str(fcd),
            "--fcd-output.geo",
        ]
    _run("sumo", args, log)
    warnings = log.read_text(encoding="utf-8", errors="replace")
    teleported = set(re.findall(r"Teleporting vehicle '([^']+)'", warnings))
    return SimulationOutput(
        vehroutes=vehroutes, edge_times=edge_times, fcd=fcd, teleported=teleported
    )


def _segment_of(edge_index: dict[str, int] | None):
    """SUMO edge id -> segment id (-1 for an edge that is not a segment, e.g. a junction lane)."""
    if edge_index is not None:
        return lambda edge: edge_index.get(edge, -1)
    return lambda edge: int(edge) if edge.isdigit() else -1


def read_vehroutes(
    path: Path, skip: set[str] = frozenset(), edge_index: dict[str, int] | None = None
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(vehicle id, segment ids, entry time of each segment in seconds) for every finished vehicle.

    The entry time of the first segment is the actual departure; of every later one, the exit
    time of the segment before. Vehicles in ``skip`` (e.g. teleported ones) are left out.
    ``edge_index`` maps SUMO edge ids to segment ids (default: the edge id is the segment id);
    an edge outside it becomes -1, which no transition check accepts.
    """
    segment_of = _segment_of(edge_index)
    out = []
    for _event, elem in ET.iterparse(path):
        if elem.tag != "vehicle":
            continue
        veh = elem.get("id")
        route = elem.find("route")
        if veh not in skip and route is not None and route.get("exitTimes") and elem.get("arrival"):
            edges = np.array([segment_of(e) for e in route.get("edges").split()], dtype=np.int64)
            exits = np.array([float(t) for t in route.get("exitTimes").split()])
            entry = np.concatenate([[float(elem.get("depart"))], exits[:-1]])
            out.append((veh, edges, entry))
        elem.clear()
    return out


def read_fcd(path: Path, edge_index: dict[str, int] | None = None) -> pd.DataFrame:
    """Floating-car data as a frame: ``vehicle, time (s), lon, lat, segment`` (-1 inside junctions)."""
    segment_of = _segment_of(edge_index)
    rows = []
    time = 0.0
    for event, elem in ET.iterparse(path, events=("start", "end")):
        if event == "start":
            if elem.tag == "timestep":
                time = float(elem.get("time"))
            continue
        if elem.tag == "vehicle":
            edge = elem.get("lane", "").rsplit("_", 1)[0]
            rows.append(
                (elem.get("id"), time, float(elem.get("x")), float(elem.get("y")), segment_of(edge))
            )
        elif elem.tag == "timestep":
            elem.clear()
    return pd.DataFrame(rows, columns=["vehicle", "time", "lon", "lat", "segment"])


@dataclass
class SimulatedTrips:
    """Trips converted to our segment ids, plus counts of what was dropped and why."""

    demand_rows: np.ndarray  # int64, row of the demand frame each trip came from
    rids: list[np.ndarray]
    entry_s: list[np.ndarray]  # float seconds after local midnight, one per segment
    fcd: pd.DataFrame | None
    dropped: dict[str, int]


def simulate_trips(
    graph: SegmentGraph,
    demand: pd.DataFrame,
    net: Path,
    work_dir: Path,
    seed: int,
    mode: str = "drive",
    random_factor: float = 3.0,
    assignment_iterations: int = 1,
    fcd_rows: list[int] | None = None,
    edge_ids: list[str] | None = None,
    costs: RouteCosts = RouteCosts(),
    mesoscopic: str | None = None,
) -> SimulatedTrips:
    """Simulate ``demand`` (from :func:`~difforge.traj.data.demand.generate_demand`) on ``graph``,
    whose SUMO network ``net`` was built by :func:`build_sumo_network`.

    Routing is repeated ``assignment_iterations`` times after a free-flow pass, each time with the
    edge travel times of the previous simulation (congestion-aware dynamic user assignment) and
    per-vehicle random edge weights (plus the shared ``costs``). The last simulation's routes are read back as segment
    sequences with entry times; trips that teleported (SUMO's jam resolution), did not finish or
    contain a transition missing from ``roadmap.rel`` are dropped and counted. ``fcd_rows`` picks
    demand rows whose 1 Hz positions are recorded (ground truth for map matching).
    ``edge_ids[segment]`` names the SUMO edge of each segment when ``net`` is not one built by
    :func:`build_sumo_network` (see :func:`segment_graph_from_sumo_net`). ``mesoscopic``: see
    :func:`simulate`.
    """
    edge_index = None if edge_ids is None else {e: i for i, e in enumerate(edge_ids)}
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    trips = work_dir / "trips.xml"
    write_trips(demand, trips, mode=mode, edge_ids=edge_ids)
    weights = None
    fcd_ids = [f"t{r}" for r in (fcd_rows or [])]
    for it in range(assignment_iterations + 1):
        routes = work_dir / f"routes{it}.rou.xml"
        route_trips(net, trips, routes, seed + it, random_factor, weights, costs)
        last = it == assignment_iterations
        fcd_vehicles = fcd_ids if last else None
        sim = simulate(net, routes, work_dir, seed + it, fcd_vehicles, f"sim{it}", mesoscopic)
        weights = sim.edge_times
    finished = read_vehroutes(sim.vehroutes, edge_index=edge_index)
    dropped = {
        "not routed or not finished": len(demand) - len(finished),
        "teleported": 0,
        "illegal transition": 0,
    }
    rows, rids, entries = [], [], []
    for veh, edges, entry in finished:
        if veh in sim.teleported:
            dropped["teleported"] += 1
            continue
        if (edges < 0).any() or (
            len(edges) > 1 and not graph.transition_legal(edges[:-1], edges[1:]).all()
        ):
            dropped["illegal transition"] += 1
            continue
        rows.append(int(veh[1:]))
        rids.append(edges)
        entries.append(entry)
    fcd = None
    if sim.fcd is not None:
        fcd = read_fcd(sim.fcd, edge_index)
        fcd = fcd[~fcd.vehicle.isin(sim.teleported)]
    return SimulatedTrips(np.asarray(rows, dtype=np.int64), rids, entries, fcd, dropped)


def segment_graph_from_sumo_net(
    net_path: str | Path, mode: str = "drive", name: str | None = None
) -> tuple[SegmentGraph, list[str], NetworkReport]:
    """Our segment graph from a SUMO ``.net.xml`` that carries a geo projection (e.g. one that
    netconvert made from OSM), for simulating on that net as it is.

    Segments = the normal edges the mode's vehicle class may use, shapes converted back to
    lon/lat; road class from the edge type (``highway.primary`` -> ``primary``); speed limit and
    lanes from the net; successors = the net's own connections (its turn rules, U-turns
    included). The largest strongly connected part is kept. Returns the graph, the SUMO edge id of
    every segment, and the report.
    """
    import sys

    tools = str(sumo_home() / "tools")
    if tools not in sys.path:
        sys.path.append(tools)
    import sumolib

    net_path = Path(net_path)
    if not net_path.is_file():
        raise UserError(f"{net_path}: no such file")
    net = sumolib.net.readNet(str(net_path), withInternal=False)
    if not net.hasGeoProj():
        raise UserError(f"{net_path}: the SUMO network has no geo projection (lon/lat unknown)")
    report = NetworkReport(source=str(net_path), mode=mode)
    vclass = _VCLASS[mode]
    edges = sorted((e for e in net.getEdges() if e.getFunction() == ""), key=lambda e: e.getID())
    report.highway_ways = sum(e.getType().startswith("highway.") for e in edges)
    report.other_ways = len(edges) - report.highway_ways
    edges = [e for e in edges if e.allows(vclass)]
    if not edges:
        raise UserError(f"{net_path}: no edges open to {vclass}")
    report.ways_kept = report.edges = len(edges)
    index = {e.getID(): i for i, e in enumerate(edges)}
    junctions = sorted(
        {e.getFromNode().getID() for e in edges} | {e.getToNode().getID() for e in edges}
    )
    report.nodes = len(junctions)
    node_no = {j: k for k, j in enumerate(junctions)}
    pairs = {(e.getFromNode().getID(), e.getToNode().getID()) for e in edges}
    coords, indptr, indices, props = [], [0], [], []
    for e in edges:
        coords.append(np.round([net.convertXY2LonLat(x, y) for x, y in e.getShape()], 7))
        nxt = sorted({index[o.getID()] for o in e.getOutgoing() if o.getID() in index})
        indices.extend(nxt)
        indptr.append(len(indices))
        props.append(
            {
                "lanes": e.getLaneNumber(),
                "tunnel": 0,
                "bridge": 0,
                "roundabout": 0,
                "oneway": int((e.getToNode().getID(), e.getFromNode().getID()) not in pairs),
                "maxspeed": round(e.getSpeed() * 3.6, 1),
            }
        )
    full = SegmentGraph(
        coords=coords,
        length_m=np.array([e.getLength() for e in edges]),
        highway=[e.getType().removeprefix("highway.") or "unknown" for e in edges],
        succ_indptr=np.asarray(indptr),
        succ_indices=np.asarray(indices, dtype=np.int64),
        u=np.array([node_no[e.getFromNode().getID()] for e in edges]),
        v=np.array([node_no[e.getToNode().getID()] for e in edges]),
        properties=pd.DataFrame(props),
        name=name or net_path.name,
    )
    graph, old_to_new = largest_strongly_connected(full, report)
    edge_ids = [edges[i].getID() for i in np.flatnonzero(old_to_new >= 0)]
    return graph, edge_ids, report
