"""``difforge-traj prepare``: a road network file -> ``roadmap.geo`` + ``roadmap.rel``."""

from __future__ import annotations

from pathlib import Path

from difforge.core.io import atomic_dir
from difforge.traj.data.hoser import write_roadmap
from difforge.traj.data.network import load_road_network
from difforge.traj.data.segments import SegmentGraph, build_segment_graph


def prepare_roadmap(
    osm_path: str | Path,
    out_dir: str | Path,
    mode: str = "drive",
    uturn: str = "dead_end",
    *,
    overwrite: bool = False,
) -> tuple[SegmentGraph, list[str]]:
    """Load an OSM XML / ``.osm.pbf`` / GraphML road network for ``mode`` (drive, bike, walk), keep
    its largest strongly connected part, and write ``roadmap.geo`` and ``roadmap.rel`` to
    ``out_dir``, a new folder. Returns the segment graph and report lines (what was kept and
    dropped).

    An existing non-empty ``out_dir`` is refused unless ``overwrite``, and then replaced whole:
    trip files beside an old network name its segment ids, which the new network renumbers.

    Raises UserError (writing nothing) for a missing/unreadable file or one without roads of the
    mode, or a network with no two mutually reachable segments.
    """
    graph_nx, report = load_road_network(osm_path, mode)
    graph = build_segment_graph(graph_nx, uturn=uturn, report=report, name=Path(out_dir).name)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        write_roadmap(graph, tmp)
    lines = [
        *report.lines(),
        f"segments: {graph.num_segments}, transitions: {graph.num_transitions} (U-turns: {uturn})",
        f"wrote {Path(out_dir) / 'roadmap.geo'} and {Path(out_dir) / 'roadmap.rel'}",
    ]
    return graph, lines
