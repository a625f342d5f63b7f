"""The route-choice variant of the Helsinki car data (``helsinki_drive_dua``): habitual routes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from difforge.traj.baselines.routes import ModalRoute
from difforge.traj.data.build import shortest_path_share
from difforge.traj.data.datasets import available_datasets, dataset_dir
from difforge.traj.data.hoser import SPLITS, Trajectories, read_dataset, read_trajectories
from difforge.traj.data.requests import sample_od_requests
from difforge.traj.data.sumo import RouteCosts
from difforge.traj.evaluate import evaluate_trajectories

DATA = dataset_dir("helsinki_drive_dua")
NOISY = dataset_dir("helsinki_drive")


@pytest.fixture(scope="module")
def habitual():
    # on_invalid="error": every transition of every trip is in roadmap.rel
    return read_dataset(DATA, on_invalid="error")


def test_same_network_similar_splits_legal_timed_trips(habitual):
    _graph, splits = habitual
    assert "helsinki_drive_dua" in available_datasets()
    for name in ("roadmap.geo", "roadmap.rel"):
        assert (DATA / name).read_bytes() == (NOISY / name).read_bytes()
    noisy_stats = json.loads((NOISY / "meta.json").read_text())["statistics"]
    meta = json.loads((DATA / "meta.json").read_text())
    for split in SPLITS:
        assert len(splits[split]) == meta["statistics"][split]
        assert abs(len(splits[split]) - noisy_stats[split]) <= 0.02 * noisy_stats[split]
        assert splits[split].has_times
        for _rids, times in splits[split]:
            assert (np.diff(times.astype(np.int64)) >= 0).all()
    assert sum(p.stat().st_size for p in DATA.iterdir()) < 5 * 2**20
    assert "ODbL" in (DATA / "README.md").read_text()
    assert "--routing habitual" in meta["command"]


def test_most_trips_leave_the_shortest_path_on_habitual_routes(habitual):
    graph, splits = habitual
    stats = json.loads((DATA / "meta.json").read_text())["statistics"]
    assert stats["recorded"]["shortest_path_share"] < 0.5
    assert shortest_path_share(graph, splits["test"].rids) < 0.5
    # drivers between the same two segments mostly repeat one route, far more than in the noisy data
    noisy_train = read_trajectories(NOISY / "train.csv", graph)
    habitual_share = ModalRoute(graph, splits["train"]).repeat_share()
    assert habitual_share > ModalRoute(graph, noisy_train).repeat_share() + 0.1


def test_modal_training_route_beats_the_shortest_path(habitual):
    """The point of this variant: HOSER's pairwise metrics reward the data's habitual routes, so
    copying the most frequent training route per OD pair beats the length-shortest path."""
    graph, splits = habitual
    requests = sample_od_requests(splits["train"], n=600, seed=0)
    modal = ModalRoute(graph, splits["train"]).generate(requests)
    shortest = [
        np.asarray(graph.shortest_path(int(o), int(d)))
        for o, d in zip(requests.origins, requests.destinations)
    ]

    def score(rids: list[np.ndarray]) -> dict:
        trips = Trajectories(
            rids=rids, times=[None] * len(rids), traj_ids=list(map(str, range(len(rids))))
        )
        return evaluate_trajectories(
            graph, splits["test"], trips, requested_destinations=requests.destinations
        )

    modal_scores, shortest_scores = score(modal), score(shortest)
    for metric in ("dtw", "hausdorff_km", "edr"):
        assert modal_scores[metric] < shortest_scores[metric], metric


def test_route_costs_leave_default_routing_unchanged():
    # no extra duarouter options by default, so helsinki_drive's SUMO commands stay as they were
    assert RouteCosts().duarouter_args() == []
    assert RouteCosts(priority_factor=2.0, tls_penalty=20.0).duarouter_args() == [
        "--weights.priority-factor",
        "2.0",
        "--weights.tls-penalty",
        "20.0",
    ]
    meta = json.loads((DATA / "meta.json").read_text())
    assert meta["demand"]["route_costs"] == {"priority_factor": 2.0, "tls_penalty": 20.0}
    assert "route_costs" not in json.loads((NOISY / "meta.json").read_text())["demand"]
