"""Generation stands apart from evaluation: it imports no evaluation code, and draws its requests
from the ends of the training trips without reading the trips themselves."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from difforge.traj.data.datasets import dataset_dir
from difforge.traj.data.hoser import read_roadmap, read_trajectories
from difforge.traj.data.requests import read_trip_ends, sample_od_requests

GENERATE_AND_LIST_MODULES = """
import sys
from difforge.traj.cli import main

code = main(["generate", "--model", "default", "--n", "2", "--out", sys.argv[1], "--device", "cpu"])
assert code == 0, code
print(",".join(sorted(m for m in sys.modules if m.startswith("difforge.traj"))))
"""


def test_generate_never_imports_evaluation(tmp_path):
    run = subprocess.run(
        [sys.executable, "-c", GENERATE_AND_LIST_MODULES, str(tmp_path / "trips.csv")],
        capture_output=True,
        text=True,
        check=True,
    )
    modules = run.stdout.strip().splitlines()[-1].split(",")
    assert "difforge.traj.sample" in modules  # the listing saw the generation path
    for evaluation in (
        "difforge.traj.evaluate",
        "difforge.traj.trip_metrics",
        "difforge.traj.od_grid",
    ):
        assert evaluation not in modules
    assert not any(m.startswith("difforge.traj.baselines") for m in modules)


def test_trip_ends_draw_the_same_requests_as_whole_trips():
    data = dataset_dir("helsinki_drive_dua")
    graph = read_roadmap(data)
    ends = read_trip_ends(data / "train.csv", graph.num_segments)
    trips = read_trajectories(data / "train.csv", graph)
    assert len(ends) == len(trips)
    a, b = sample_od_requests(ends, 300, seed=7), sample_od_requests(trips, 300, seed=7)
    for field in ("origins", "destinations", "departures", "trip_index"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field


def test_trip_ends_leave_out_rows_off_the_network(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text(
        "rid_list,time_list\n"
        '"1,2,3","2024-01-01T08:00:00Z,2024-01-01T08:01:00Z,2024-01-01T08:02:00Z"\n'
        '"4,5,99","2024-01-01T09:00:00Z,2024-01-01T09:01:00Z,2024-01-01T09:02:00Z"\n'
        '"[6, 7]",""\n'
    )
    ends = read_trip_ends(path, num_segments=10)
    assert ends.origins.tolist() == [1, 6] and ends.destinations.tolist() == [3, 7]
    assert str(ends.starts[0]) == "2024-01-01T08:00:00" and np.isnat(ends.starts[1])
