"""Users' own data sets of any size: HOSER CSVs read in chunks or gzipped, LibCity atomic files."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest

from difforge.core.errors import UserError
from difforge.traj.cli import main
from difforge.traj.data.hoser import (
    iter_trajectories,
    read_dataset,
    read_roadmap,
    read_trajectories,
    write_roadmap,
    write_trajectories,
)
from difforge.traj.data.libcity import iter_libcity_trajectories, read_libcity
from difforge.traj.data.synthetic import synthetic_city, synthetic_trips


def gzip_file(path):
    with open(path, "rb") as src, gzip.open(f"{path}.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    path.unlink()


def same_trajectories(a, b) -> bool:
    return (
        a.traj_ids == b.traj_ids
        and all(np.array_equal(x, y) for x, y in zip(a.rids, b.rids, strict=True))
        and all(np.array_equal(x, y) for x, y in zip(a.times, b.times, strict=True))
        and a.skipped == b.skipped
    )


@pytest.fixture
def hoser_folder(tmp_path):
    """A 4 x 4 synthetic city with 25 trips in train.csv, rows 12 and 20 made invalid."""
    city = synthetic_city(4, seed=0)
    write_roadmap(city, tmp_path)
    rids, times = synthetic_trips(city, 25, seed=1)
    rids[12][1] = rids[12][0]  # a segment does not follow itself here
    rids[20][-1] = city.num_segments + 5
    write_trajectories(tmp_path / "train.csv", rids, times)
    return tmp_path


def test_hoser_csv_read_in_chunks_equals_read_at_once(hoser_folder):
    graph = read_roadmap(hoser_folder)
    whole = read_trajectories(hoser_folder / "train.csv", graph, chunk_rows=None)
    batches = list(iter_trajectories(hoser_folder / "train.csv", graph, chunk_rows=4))
    assert [len(b) + sum(b.skipped.values()) for b in batches] == [4] * 6 + [1]
    assert len(whole) == 23
    assert dict(whole.skipped) == {"illegal transition": 1, "unknown segment id": 1}
    chunked = read_trajectories(hoser_folder / "train.csv", graph, chunk_rows=4)
    assert same_trajectories(whole, chunked)
    # the first bad row is numbered in the whole file, not in its chunk
    with pytest.raises(UserError, match=r"train.csv: row 13: illegal transition$"):
        read_trajectories(hoser_folder / "train.csv", graph, on_invalid="error", chunk_rows=5)


def test_gzipped_hoser_folder_reads_like_the_plain_one(hoser_folder, tmp_path_factory):
    plain_graph, plain = read_dataset(hoser_folder)
    for name in ("roadmap.geo", "roadmap.rel", "train.csv"):
        gzip_file(hoser_folder / name)
    graph, splits = read_dataset(hoser_folder)
    assert graph.num_segments == plain_graph.num_segments
    assert np.array_equal(graph.succ_indices, plain_graph.succ_indices)
    assert same_trajectories(splits["train"], plain["train"])
    # asking for train.csv finds train.csv.gz
    assert len(read_trajectories(hoser_folder / "train.csv", graph, chunk_rows=7)) == 23


# --- LibCity atomic files -------------------------------------------------------------------------
# Three roads with LibCity ids 101 (A->B), 205 (B->C), 37 (C->B), listed out of id order.
GEO = """geo_id,type,coordinates,highway,length,lanes
205,LineString,"[[24.9418,60.17],[24.9418,60.1709]]",residential,100.0,1
101,LineString,"[[24.94,60.17],[24.9418,60.17]]",primary,100.0,2
37,LineString,"[[24.9418,60.1709],[24.9418,60.17]]",residential,100.0,1
"""
REL = """rel_id,type,origin_id,destination_id
0,geo,101,205
1,geo,205,37
"""
# Trajectory (7, 1): 101 observed three times then 205 twice then 37; (7, 2): 101, 205;
# (8, 1): 205 -> 101 is not a legal transition; (9, 1): road 999 is unknown.
DYNA = """dyna_id,type,time,entity_id,traj_id,location
0,trajectory,2015-11-01T08:00:00Z,7,1,101
1,trajectory,2015-11-01T08:00:05Z,7,1,101
2,trajectory,2015-11-01T08:00:10Z,7,1,101
3,trajectory,2015-11-01T08:00:15Z,7,1,205
4,trajectory,2015-11-01T08:00:20Z,7,1,205
5,trajectory,2015-11-01T08:00:25Z,7,1,37
6,trajectory,2015-11-01T09:00:00Z,7,2,101
7,trajectory,2015-11-01T09:00:30Z,7,2,205
8,trajectory,2015-11-01T10:00:00Z,8,1,205
9,trajectory,2015-11-01T10:00:09Z,8,1,101
10,trajectory,2015-11-01T11:00:00Z,9,1,999
11,trajectory,2015-11-01T11:00:10Z,9,1,101
"""


@pytest.fixture
def libcity_folder(tmp_path):
    folder = tmp_path / "toy"
    folder.mkdir()
    for ext, text in (("geo", GEO), ("rel", REL), ("dyna", DYNA)):
        (folder / f"toy.{ext}").write_text(text, encoding="utf-8")
    return folder


def test_libcity_atomic_files_give_segment_sequences_with_entry_times(libcity_folder):
    graph, geo_ids, trips = read_libcity(libcity_folder)
    assert geo_ids.tolist() == [205, 101, 37] and graph.num_segments == 3
    assert graph.successors(1).tolist() == [0] and graph.successors(0).tolist() == [2]
    assert graph.highway == ["residential", "primary", "residential"]
    assert trips.traj_ids == ["7_1", "7_2"]
    assert [r.tolist() for r in trips.rids] == [[1, 0, 2], [1, 0]]
    t = np.datetime64("2015-11-01T08:00:00", "s")
    assert trips.times[0].tolist() == (t + np.array([0, 15, 25], "timedelta64[s]")).tolist()
    assert dict(trips.skipped) == {"illegal transition": 1, "unknown segment id": 1}
    with pytest.raises(UserError, match=r"toy.dyna: trajectory 3: illegal transition$"):
        read_libcity(libcity_folder, on_invalid="error")


def test_libcity_dyna_streamed_in_chunks_equals_read_at_once(libcity_folder):
    _, _, whole = read_libcity(libcity_folder, chunk_rows=None)
    # chunks of 2 rows split trajectories (7, 1) and (9, 1): batches must still hold whole ones
    batches = list(iter_libcity_trajectories(libcity_folder, chunk_rows=2))
    assert len(batches) > 2
    _, _, chunked = read_libcity(libcity_folder, chunk_rows=2)
    assert same_trajectories(whole, chunked)
    gzip_file(libcity_folder / "toy.dyna")
    _, _, gzipped = read_libcity(libcity_folder, chunk_rows=3)
    assert same_trajectories(whole, gzipped)


def test_libcity_gps_dyna_without_roads_is_a_one_line_error(libcity_folder):
    (libcity_folder / "toy.dyna").write_text(
        'dyna_id,type,time,entity_id,coordinates\n0,trajectory,2015-11-01T08:00:00Z,7,"[24.94,60.17]"\n'
    )
    with pytest.raises(UserError, match="no location column"):
        read_libcity(libcity_folder)


def test_convert_libcity_writes_a_hoser_folder_every_command_reads(libcity_folder, tmp_path):
    # The fixture's two usable trips, repeated by five more vehicles: 12 trips to split.
    dyna = libcity_folder / "toy.dyna"
    rows = dyna.read_text(encoding="utf-8").splitlines()[1:7]
    extra = [
        ",".join([str(100 + 6 * v + i), "trajectory", time, str(20 + v), *rest])
        for v in range(5)
        for i, (_, _, time, _, *rest) in enumerate(row.split(",") for row in rows)
    ]
    dyna.write_text(dyna.read_text(encoding="utf-8") + "\n".join(extra) + "\n", encoding="utf-8")
    out = tmp_path / "hoser"
    assert main(["convert-libcity", "--libcity", str(libcity_folder), "--out", str(out)]) == 0
    graph, _geo_ids, trips = read_libcity(libcity_folder)
    converted, splits = read_dataset(out)
    assert converted.num_segments == graph.num_segments
    assert converted.num_transitions == graph.num_transitions
    assert sorted(splits) == ["test", "train", "val"]
    assert all(len(split) >= 1 for split in splits.values())
    written = {
        str(traj_id): rids.tolist()
        for split in splits.values()
        for traj_id, rids in zip(split.traj_ids, split.rids, strict=True)
    }
    assert written == {str(k): r.tolist() for k, r in zip(trips.traj_ids, trips.rids, strict=True)}
    # An existing folder is refused without --overwrite: exit 2, nothing changed.
    before = sorted(p.name for p in out.iterdir())
    assert main(["convert-libcity", "--libcity", str(libcity_folder), "--out", str(out)]) == 2
    assert sorted(p.name for p in out.iterdir()) == before
