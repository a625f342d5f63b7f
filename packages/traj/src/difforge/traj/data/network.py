"""Road networks from OpenStreetMap XML, ``.osm.pbf`` or GraphML, filtered to one travel mode.

OSM files are read with pyosmium (XML, PBF and compressed XML alike), filtered to the ways of the
chosen mode, written to a temporary OSM XML file and handed to ``osmnx.graph_from_xml``, which
builds and simplifies the graph. We filter first because ``graph_from_xml`` keeps every way it is
given (a ``building=yes`` way becomes edges) and because osmnx drops the mode-specific access tags
(``motorcar``, ``bicycle``, ``foot``, ``oneway:bicycle``) that the filter needs. GraphML files (for
instance ones saved by osmnx) are loaded with ``osmnx.load_graphml`` and their edges filtered on the
attributes they carry.
"""

from __future__ import annotations

import ast
import itertools
import tempfile
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np

from difforge.core.errors import UserError

MODES = ("drive", "bike", "walk")

# Road classes in decreasing importance; also the order used to pick one class for an edge that
# osmnx merged from several ways with different `highway` values.
HIGHWAY_RANK = (
    "motorway",
    "trunk",
    "primary",
    "secondary",
    "tertiary",
    "motorway_link",
    "trunk_link",
    "primary_link",
    "secondary_link",
    "tertiary_link",
    "unclassified",
    "residential",
    "living_street",
    "road",
    "service",
    "cycleway",
    "track",
    "pedestrian",
    "footway",
    "path",
    "bridleway",
    "steps",
    "corridor",
)

_DRIVE = frozenset(
    {
        "motorway",
        "motorway_link",
        "trunk",
        "trunk_link",
        "primary",
        "primary_link",
        "secondary",
        "secondary_link",
        "tertiary",
        "tertiary_link",
        "unclassified",
        "residential",
        "living_street",
        "road",
    }
)
# Roads a bicycle may use by default; foot paths only where bicycles are signed as allowed.
_BIKE = frozenset(
    (_DRIVE - {"motorway", "motorway_link", "trunk", "trunk_link"})
    | {"cycleway", "service", "track", "path", "bridleway"}
)
_BIKE_IF_ALLOWED = frozenset({"footway", "pedestrian", "steps", "trunk", "trunk_link"})
_WALK = frozenset(
    (_DRIVE - {"motorway", "motorway_link", "trunk", "trunk_link"})
    | {"service", "track", "path", "footway", "pedestrian", "steps", "bridleway", "corridor"}
)
_WALK_IF_ALLOWED = frozenset({"cycleway", "trunk", "trunk_link"})
_YES = frozenset({"yes", "designated", "permissive", "destination", "official"})
_NO = frozenset({"no", "private", "agricultural", "forestry", "delivery"})
_NOT_BUILT = frozenset({"construction", "proposed", "planned", "abandoned", "razed", "disused"})
_DRIVE_SERVICE_EXCLUDED = frozenset(
    {"parking_aisle", "driveway", "private", "emergency_access", "parking"}
)
_MODE_ACCESS_KEYS = {
    "drive": ("motor_vehicle", "motorcar", "vehicle"),
    "bike": ("bicycle", "vehicle"),
    "walk": ("foot",),
}


def check_mode(mode: str) -> str:
    """Return ``mode`` if it is one of :data:`MODES`, else raise a one-line UserError."""
    if mode not in MODES:
        raise UserError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    return mode


def way_allowed(tags: dict[str, str], mode: str) -> bool:
    """Whether a way with these OSM tags is usable by ``mode`` (``drive``, ``bike``, ``walk``).

    The lists follow osmnx's network types (``drive`` has no service roads, as osmnx's ``drive``)
    with explicit mode access tags taking precedence over the general ``access`` tag.
    """
    highway = tags.get("highway")
    if highway is None or highway in _NOT_BUILT or tags.get("area") == "yes":
        return False
    mode_access = [tags[k] for k in _MODE_ACCESS_KEYS[mode] if k in tags]
    if mode_access and mode_access[0] in _NO:
        return False
    explicitly_allowed = bool(mode_access) and mode_access[0] in _YES
    if not explicitly_allowed and tags.get("access") in _NO:
        return False
    if mode == "drive":
        return highway in _DRIVE or (highway == "service" and explicitly_allowed)
    if mode == "bike":
        return highway in _BIKE or (highway in _BIKE_IF_ALLOWED and explicitly_allowed)
    return highway in _WALK or (highway in _WALK_IF_ALLOWED and explicitly_allowed)


def _mode_tags(tags: dict[str, str], mode: str) -> dict[str, str]:
    """Rewrite tags so osmnx's oneway rule gives the direction rules of ``mode``."""
    out = dict(tags)
    if mode == "bike" and (
        tags.get("oneway:bicycle") == "no" or tags.get("cycleway", "").startswith("opposite")
    ):
        out["oneway"] = "no"
    return out


def primary_highway(value: object) -> str:
    """One road class for an edge: osmnx merges ways into lists, and GraphML stores them as text."""
    if isinstance(value, str) and value.startswith("["):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    if isinstance(value, (list, tuple)):
        values = [str(v) for v in value]
        ranked = [v for v in HIGHWAY_RANK if v in values]
        return ranked[0] if ranked else sorted(values)[0]
    return "unknown" if value is None else str(value)


@dataclass
class NetworkReport:
    """What loading kept and dropped (shown by ``prepare``; SCC numbers are added later)."""

    source: str
    mode: str
    highway_ways: int = 0
    other_ways: int = 0
    ways_kept: int = 0
    nodes: int = 0
    edges: int = 0
    segments_dropped_scc: int = 0
    length_dropped_scc_km: float = 0.0
    components: int = 0

    def lines(self) -> list[str]:
        return [
            f"source {self.source} (mode {self.mode})",
            f"ways: {self.ways_kept} kept of {self.highway_ways} highway ways; "
            f"{self.other_ways} non-road ways dropped",
            f"graph: {self.nodes} nodes, {self.edges} directed edges",
            f"largest strongly connected component: dropped {self.segments_dropped_scc} segments "
            f"({self.length_dropped_scc_km:.2f} km) in {max(self.components - 1, 0)} smaller components",
        ]


def _osm_file(path: Path):
    import osmium

    name = path.name.lower()
    if name.endswith((".pbf", ".osm.pbf")):
        fmt = "pbf"
    elif name.endswith((".osm", ".xml")):
        fmt = "osm"
    elif name.endswith((".osm.bz2", ".osm.gz", ".xml.bz2", ".xml.gz")):
        fmt = "osm." + name.rsplit(".", 1)[1]
    else:
        raise UserError(f"{path}: unknown road network format (use .osm, .osm.pbf or .graphml)")
    return osmium.io.File(str(path), fmt)


def _filter_osm(path: Path, mode: str, out_xml: Path, report: NetworkReport) -> None:
    """Write the ways of ``mode`` (and their nodes) from ``path`` to ``out_xml`` as OSM XML."""
    import osmium

    ways: list[tuple[int, list[int], dict[str, str]]] = []
    wanted_nodes: set[int] = set()
    try:
        for way in osmium.FileProcessor(_osm_file(path), osmium.osm.WAY):
            tags = {t.k: t.v for t in way.tags}
            if "highway" not in tags:
                report.other_ways += 1
                continue
            report.highway_ways += 1
            if way_allowed(tags, mode):
                refs = [n.ref for n in way.nodes]
                if len(refs) >= 2:
                    ways.append((way.id, refs, _mode_tags(tags, mode)))
                    wanted_nodes.update(refs)
        if not ways:
            raise UserError(
                f"{path}: no {mode} roads ({report.highway_ways} highway ways, none usable by {mode})"
            )
        locations: dict[int, tuple[float, float, dict[str, str]]] = {}
        for node in osmium.FileProcessor(_osm_file(path), osmium.osm.NODE):
            if node.id in wanted_nodes and node.location.valid():
                tags = {t.k: t.v for t in node.tags}
                locations[node.id] = (node.location.lon, node.location.lat, tags)
    except RuntimeError as exc:  # pyosmium reports unreadable files as RuntimeError
        raise UserError(f"{path}: cannot read OSM data ({str(exc).splitlines()[0]})") from exc
    # Extracts clip ways at their border: keep each run of nodes that the file has, as its own way.
    pieces: list[tuple[int, list[int], dict[str, str]]] = []
    piece_ids = itertools.count(-1, -1)  # fresh (negative) ids for the second and later pieces
    for way_id, refs, tags in ways:
        run: list[int] = []
        first = True
        for ref in [*refs, None]:
            if ref is not None and ref in locations:
                run.append(ref)
                continue
            if len(run) >= 2:
                pieces.append((way_id if first else next(piece_ids), run, tags))
                first = False
            run = []
    if not pieces:
        raise UserError(f"{path}: the {mode} ways have no node locations in the file")
    used = {ref for _w, refs, _t in pieces for ref in refs}
    with osmium.SimpleWriter(str(out_xml)) as writer:
        for node_id in sorted(used):
            lon, lat, tags = locations[node_id]
            writer.add_node(osmium.osm.mutable.Node(id=node_id, location=(lon, lat), tags=tags))
        for way_id, refs, tags in pieces:
            writer.add_way(osmium.osm.mutable.Way(id=way_id, nodes=refs, tags=tags))
    report.ways_kept = len(ways)


def _filter_graphml(graph: nx.MultiDiGraph, mode: str, report: NetworkReport) -> nx.MultiDiGraph:
    keep = []
    for u, v, k, data in graph.edges(keys=True, data=True):
        if "highway" not in data:
            report.other_ways += 1
            continue
        report.highway_ways += 1
        tags = {key: str(val) for key, val in data.items() if isinstance(val, str)}
        tags["highway"] = primary_highway(data["highway"])
        if way_allowed(tags, mode):
            keep.append((u, v, k))
    if not keep:
        raise UserError(f"{report.source}: no {mode} roads among {report.highway_ways} edges")
    report.ways_kept = len(keep)
    sub = graph.edge_subgraph(keep).copy()
    if mode == "walk":  # walking ignores one-way rules: add the missing opposite directions
        for u, v, _k, data in list(sub.edges(keys=True, data=True)):
            if not sub.has_edge(v, u):
                twin = dict(data)
                if "geometry" in twin:
                    twin["geometry"] = twin["geometry"].reverse()
                sub.add_edge(v, u, **twin)
    return sub


def read_traffic_signals(path: str | Path) -> np.ndarray:
    """(lon, lat) of every ``highway=traffic_signals`` node in an OSM file, shape (K, 2)."""
    import osmium

    path = Path(path)
    points = []
    try:
        for node in osmium.FileProcessor(_osm_file(path), osmium.osm.NODE):
            if node.tags.get("highway") == "traffic_signals" and node.location.valid():
                points.append((node.location.lon, node.location.lat))
    except RuntimeError as exc:
        raise UserError(f"{path}: cannot read OSM data ({str(exc).splitlines()[0]})") from exc
    return np.asarray(points, dtype=np.float64).reshape(-1, 2)


def load_road_network(
    path: str | Path, mode: str = "drive"
) -> tuple[nx.MultiDiGraph, NetworkReport]:
    """Load an OSM XML, ``.osm.pbf`` or GraphML road network and keep the ways usable by ``mode``.

    Returns the simplified osmnx ``MultiDiGraph`` (nodes with ``x`` = lon, ``y`` = lat; edges with
    ``length`` in metres, ``highway`` and, where the way bends, ``geometry``) and a report of what
    was kept and dropped. Raises UserError for a missing or unreadable file or one with no roads of
    the mode.
    """
    import osmnx as ox

    check_mode(mode)
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    report = NetworkReport(source=str(path), mode=mode)
    if path.suffix.lower() == ".graphml":
        try:
            graph = ox.load_graphml(path)
        except Exception as exc:  # any parse failure means a bad user file
            raise UserError(f"{path}: not a readable GraphML road network ({exc})") from exc
        if not all("x" in d and "y" in d for _n, d in graph.nodes(data=True)):
            raise UserError(f"{path}: GraphML nodes need x and y coordinate attributes")
        if str(graph.graph.get("crs", "epsg:4326")).lower() not in ("epsg:4326", "wgs84"):
            graph = ox.project_graph(graph, to_latlong=True)
        graph = _filter_graphml(graph, mode, report)
        if not graph.graph.get("simplified", False):
            graph = ox.simplify_graph(graph)
    else:
        with tempfile.TemporaryDirectory(prefix="difforge-osm-") as tmp:
            xml = Path(tmp) / "filtered.osm"
            _filter_osm(path, mode, xml, report)
            graph = ox.graph_from_xml(
                xml, bidirectional=(mode == "walk"), simplify=True, retain_all=True
            )
    graph.graph["mode"] = mode
    report.nodes = graph.number_of_nodes()
    report.edges = graph.number_of_edges()
    return graph, report
