"""HOSER/LibCity files: trajectories round trip, invalid rows skipped or refused, foreign layouts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from difforge.core.errors import UserError
from difforge.traj.data.hoser import (
    read_dataset,
    read_roadmap,
    read_trajectories,
    write_roadmap,
    write_trajectories,
)
from difforge.traj.data.segments import SegmentGraph

# Three nodes A (24.94, 60.17), B 100 m east, C 100 m north of B; two two-way streets A-B, B-C.
A, B, C = (24.9400, 60.1700), (24.9418, 60.1700), (24.9418, 60.1709)


def small_graph() -> SegmentGraph:
    """Segments 0: A->B, 1: B->A, 2: B->C, 3: C->B; U-turns only at the dead ends A and C."""
    return SegmentGraph(
        coords=[[A, B], [B, A], [B, C], [C, B]],
        length_m=np.array([100.0, 100.0, 100.0, 100.0]),
        highway=["primary", "primary", "residential", "residential"],
        succ_indptr=np.array([0, 1, 2, 3, 4]),
        succ_indices=np.array([2, 0, 3, 1]),
        u=np.array([1, 2, 2, 3]),
        v=np.array([2, 1, 3, 2]),
    )


def test_trajectories_round_trip(tmp_path):
    graph = small_graph()
    write_roadmap(graph, tmp_path)
    t0 = np.datetime64("2019-04-16T05:00:00", "s")
    rids = [np.array([0, 2, 3, 1]), np.array([3, 1, 0])]
    times = [t0 + np.array([0, 12, 30, 41]).astype("timedelta64[s]"), None]
    write_trajectories(tmp_path / "train.csv", rids, times, traj_ids=["a", "b"])
    text = (tmp_path / "train.csv").read_text().splitlines()
    assert text[0] == "mm_id,user_id,traj_id,rid_list,time_list"
    assert text[1] == (
        '0,a,a,"0,2,3,1","2019-04-16T05:00:00Z,2019-04-16T05:00:12Z,2019-04-16T05:00:30Z,2019-04-16T05:00:41Z"'
    )
    back = read_trajectories(tmp_path / "train.csv", graph, on_invalid="error")
    assert back.traj_ids == ["a", "b"]
    assert [r.tolist() for r in back.rids] == [[0, 2, 3, 1], [3, 1, 0]]
    assert np.array_equal(back.times[0], times[0]) and back.times[1] is None
    assert not back.has_times and len(back) == 2
    g2, splits = read_dataset(tmp_path)
    assert list(splits) == ["train"] and g2.num_segments == 4


def test_invalid_rows_are_skipped_and_counted_or_refused(tmp_path):
    graph = small_graph()
    csv = tmp_path / "mixed.csv"
    pd.DataFrame(
        {
            "traj_id": list("abcdefg"),
            "rid_list": ["[0, 2, 3]", "0,2,9", "0,1", "x,y", "3,1", "0,2", "2,3"],
            "time_list": [
                "",
                "",
                "",
                "",
                "2019-04-16T05:00:00Z",  # one time for two segments
                "2019-04-16T05:00:10Z,2019-04-16T05:00:00Z",  # backwards
                "2019-04-16T05:00:00Z,yesterday",
            ],
        }
    ).to_csv(csv, index=False)
    got = read_trajectories(csv, graph)
    assert got.traj_ids == ["a"] and got.rids[0].tolist() == [0, 2, 3]
    assert dict(got.skipped) == {
        "unknown segment id": 1,
        "illegal transition": 1,  # 0 -> 1 is a U-turn mid-street
        "malformed rid_list": 1,
        "time_list length differs from rid_list": 1,
        "time_list goes backwards": 1,
        "malformed time_list": 1,
    }
    with pytest.raises(UserError, match=r"row 2: unknown segment id"):
        read_trajectories(csv, graph, on_invalid="error")
    # without a graph only the format is checked
    assert len(read_trajectories(csv, None)) == 3


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty file"),
        ("rid_list,time_list\n", "no trajectories"),
        ("traj_id\n1\n", "missing column"),
        ('rid_list\n"0,1"\n', "no valid trajectories"),
        ('rid_list\n"0,2\n', "malformed CSV|no valid"),
    ],
)
def test_bad_trajectory_files(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=message):
        read_trajectories(path, small_graph())


def test_porto_style_roadmap_without_u_v_length(tmp_path):
    """HOSER's Porto files carry integer road classes; files without u/v/length still load."""
    (tmp_path / "roadmap.geo").write_text(
        "geo_id,type,coordinates,highway\n"
        f'0,LineString,"[[{A[0]},{A[1]}],[{B[0]},{B[1]}]]",3\n'
        f'1,LineString,"[[{B[0]},{B[1]}],[{C[0]},{C[1]}]]",5\n'
        f'2,LineString,"[[{C[0]},{C[1]}],[{B[0]},{B[1]}]]",5\n',
        encoding="utf-8",
    )
    (tmp_path / "roadmap.rel").write_text(
        "rel_id,type,origin_id,destination_id\n0,geo,0,1\n1,geo,1,2\n2,geo,2,1\n2,geo,2,1\n",
        encoding="utf-8",
    )
    graph = read_roadmap(tmp_path)
    assert graph.highway == ["3", "5", "5"] and graph.road_type.tolist() == [0, 1, 1]
    assert graph.length_m == pytest.approx([100.0, 100.0, 100.0], rel=0.02)
    assert graph.v[0] == graph.u[1] == graph.v[2]  # shared end points became shared nodes
    assert graph.num_transitions == 3  # the duplicate relation counts once


def test_beijing_style_list_highway(tmp_path):
    graph = small_graph()
    write_roadmap(graph, tmp_path)
    geo = pd.read_csv(tmp_path / "roadmap.geo")
    geo.loc[0, "highway"] = "['unclassified', 'primary']"
    geo.to_csv(tmp_path / "roadmap.geo", index=False)
    assert read_roadmap(tmp_path).highway[0] == "primary"


@pytest.mark.parametrize(
    ("geo_rows", "rel_rows", "message"),
    [
        ([(1, A, B)], [], "0..N-1 in row order"),
        ([(0, A, B), (1, B, A)], [(0, 5)], "outside 0..1"),
        ([(0, A, None)], [], "two or more finite"),
        ([(0, (200.0, 60.0), B)], [], "out of lon/lat range"),
    ],
)
def test_bad_roadmaps(tmp_path, geo_rows, rel_rows, message):
    lines = ["geo_id,type,coordinates"]
    for geo_id, p, q in geo_rows:
        points = (p,) if q is None else (p, q)
        coords = "[" + ",".join(f"[{pt[0]},{pt[1]}]" for pt in points) + "]"
        lines.append(f'{geo_id},LineString,"{coords}"')
    (tmp_path / "roadmap.geo").write_text("\n".join(lines) + "\n", encoding="utf-8")
    rel = ["rel_id,type,origin_id,destination_id"] + [
        f"{k},geo,{a},{b}" for k, (a, b) in enumerate(rel_rows)
    ]
    (tmp_path / "roadmap.rel").write_text("\n".join(rel) + "\n", encoding="utf-8")
    with pytest.raises(UserError, match=message):
        read_roadmap(tmp_path)


def test_graph_helpers():
    graph = small_graph()
    assert graph.transition_legal([0, 0, 2, 7], [2, 1, 3, 0]).tolist() == [True, False, True, False]
    assert graph.shortest_path(0, 1) == [0, 2, 3, 1]
    assert graph.shortest_path(1, 1) == [1]
    edge_index, edge_attr = graph.road_adjacency()
    # 0 and 2 share node B: heading east vs north -> 90 degrees -> 0.5; 0 -> 2 is a legal move
    pair = np.flatnonzero((edge_index[0] == 0) & (edge_index[1] == 2))[0]
    assert edge_attr[pair].tolist() == pytest.approx([0.5, 1.0], abs=1e-3)
    tensors = graph.to_torch()
    assert tensors["succ_indices"].tolist() == [2, 0, 3, 1]
    assert graph.centroid[0] == pytest.approx(((A[0] + B[0]) / 2, A[1]))
    assert graph.heading[0] == pytest.approx(np.pi / 2) and graph.heading[2] == pytest.approx(0.0)
    sub, old_to_new = graph.subgraph(np.array([0, 2, 3]))
    assert sub.num_segments == 3 and old_to_new.tolist() == [0, -1, 1, 2]
    assert sub.succ_indices.tolist() == [1, 2]  # 3 -> 1 is gone with segment 1
