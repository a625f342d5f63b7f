"""The rebuilt HOSER baseline on the toy city: zones, model shapes, training, search, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from difforge.core.errors import CheckpointError
from difforge.traj.baselines.hoser import HoserModel, hoser_requests, search, train_hoser
from difforge.traj.baselines.hoser.features import (
    partition_zones,
    trip_batch,
    zone_graph,
    zone_transitions,
)
from difforge.traj.baselines.hoser.model import HoserConfig
from difforge.traj.data.hoser import Trajectories, read_dataset


@pytest.fixture(scope="module")
def city(dataset):
    return read_dataset(dataset)


@pytest.fixture(scope="module")
def trained(city):
    graph, splits = city
    return train_hoser(
        graph, splits["train"], val=splits["val"], epochs=3, batch_size=50, lr=3e-3, num_zones=4
    )


def _untrained(graph, train, num_zones=4) -> HoserModel:
    zones = partition_zones(graph, num_zones)
    config = HoserConfig(
        graph.num_segments,
        int(graph.road_type.max()) + 1,
        zones.tolist(),
        zone_transitions(zones, train.rids, num_zones).tolist(),
    )
    torch.manual_seed(0)
    return HoserModel(config).attach_graph(graph).eval()


def test_partition_covers_every_segment_and_is_deterministic(city):
    graph, splits = city
    zones = partition_zones(graph, 4)
    assert zones.shape == (graph.num_segments,)
    assert set(zones.tolist()) == {0, 1, 2, 3}  # every zone used, every segment in one zone
    assert np.array_equal(zones, partition_zones(graph, 4))
    counts = zone_transitions(zones, splits["train"].rids, 4)
    assert np.trace(counts) == 0 and counts.sum() > 0  # only moves between different zones
    edges, weights = zone_graph(counts)
    assert edges.shape[1] == np.count_nonzero(counts) and (weights > 0).all()


def test_forward_shapes_and_candidate_masking(city):
    graph, splits = city
    model = _untrained(graph, splits["train"])
    trips = [(r, t) for r, t in splits["train"]][:5]
    batch = trip_batch(model.graph, trips, "cpu")
    with torch.no_grad():
        logits, time = model(batch)
    longest = max(len(r) for r, _ in trips) - 1
    width = model.graph.successors.shape[1]
    assert logits.shape == time.shape == (5, longest, width)
    # a candidate slot is scored exactly when it holds a successor of a real prefix position
    assert torch.equal(torch.isfinite(logits), batch.valid)
    rids = trips[0][0]
    assert batch.label[0, 0] == model.graph.successors[rids[0]].tolist().index(rids[1])


def test_training_lowers_the_loss_and_keeps_the_best_epoch(trained, city):
    _model, history = trained
    assert history[-1]["loss"] < history[0]["loss"]
    assert max(h["val_accuracy"] for h in history) > 0.5  # 2-3 candidates a step: chance ~0.4


def test_search_returns_legal_trips_that_reach_the_destination(trained, city):
    graph, splits = city
    model, _ = trained
    requests = hoser_requests(splits["train"], 8, seed=1)
    trips = search(model, requests)
    for rids, times, o, d in zip(trips.rids, trips.times, requests.origins, requests.destinations):
        assert rids[0] == o and rids[-1] == d
        assert graph.transition_legal(rids[:-1], rids[1:]).all()
        assert len(times) == len(rids) and (np.diff(times).astype(int) >= 0).all()


def test_requests_draw_departures_without_replacement(city):
    train = city[1]["train"]
    requests = hoser_requests(train, len(train), seed=0)
    starts = sorted(t[0] for t in train.times)
    assert sorted(requests.departures.tolist()) == [s.item() for s in starts]


def test_save_load_round_trip_gives_equal_outputs(trained, city, tmp_path):
    graph, splits = city
    model, _ = trained
    model.save_pretrained(tmp_path / "hoser")
    assert "/" not in (tmp_path / "hoser" / "config.json").read_text().replace("\\/", "")
    loaded = HoserModel.from_pretrained(tmp_path / "hoser", graph)
    batch = trip_batch(model.graph, [(r, t) for r, t in splits["test"]][:6], "cpu")
    with torch.no_grad():
        want, got = model(batch), loaded(batch)
    assert torch.equal(want[0], got[0]) and torch.equal(want[1], got[1])
    smaller, _ = graph.subgraph(np.arange(graph.num_segments - 1))
    with pytest.raises(CheckpointError):
        HoserModel.from_pretrained(tmp_path / "hoser", smaller)


def test_training_needs_entry_times(city):
    graph, splits = city
    train = splits["train"]
    untimed = Trajectories(train.rids, [None] * len(train), train.traj_ids)
    with pytest.raises(ValueError, match="entry times"):
        train_hoser(graph, untimed, epochs=1)
