"""``difforge-traj train`` under a wall-clock limit: an early stop that still saves a loadable
model and says so, then ``--resume`` to the planned last step."""

from __future__ import annotations

import json

import numpy as np
import torch

from difforge.traj.cli import main
from difforge.traj.data.hoser import write_roadmap, write_trajectories
from difforge.traj.data.synthetic import synthetic_city, synthetic_trips
from difforge.traj.model import TrajDLM


def test_time_limit_stops_training_early_and_resume_finishes(tmp_path, capsys):
    data = tmp_path / "city"
    city = synthetic_city(3, seed=0)
    write_roadmap(city, data)
    write_trajectories(data / "train.csv", *synthetic_trips(city, 60, seed=1))
    out = tmp_path / "model"
    args = ["train", "--data", str(data), "--out", str(out), "--config", "tiny", "train.steps=5"]
    # Any step outlasts a nanosecond: the run stops after its first step whatever the machine.
    assert main([*args, "time_limit_s=1e-9"]) == 0
    assert "stopped by time_limit_s at step 1 of 5" in capsys.readouterr().out
    training = json.loads((out / "config.json").read_text())["training"]
    assert (training["steps"], training["stopped_by"]) == (1, "time_limit")
    TrajDLM.from_pretrained(out)  # the early stop saved a complete model

    assert main([*args, "--resume"]) == 0
    training = json.loads((out / "config.json").read_text())["training"]
    assert (training["steps"], training["planned_steps"], training["stopped_by"]) == (5, 5, "steps")


def test_each_process_of_a_launch_trains_on_its_own_share_of_the_batches(tmp_path):
    from difforge.traj.data.hoser import read_roadmap, read_trajectories
    from difforge.traj.model import TrajDLMConfig, resolve_config
    from difforge.traj.train import LengthBucketedBatches, TripDataset

    city = synthetic_city(3, seed=0)
    write_roadmap(city, tmp_path)
    write_trajectories(tmp_path / "train.csv", *synthetic_trips(city, 60, seed=1))
    graph = read_roadmap(tmp_path)
    trips = read_trajectories(tmp_path / "train.csv", graph)
    lengths = np.array([len(r) for r in trips.rids])
    dataset = TripDataset(trips, resolve_config(TrajDLMConfig(), graph, lengths[lengths >= 2]))
    whole = LengthBucketedBatches(dataset, 4, seed=3)
    shares = [
        LengthBucketedBatches(dataset, 4, 3, process_index=i, num_processes=2) for i in (0, 1)
    ]
    for epoch in range(2):
        batches = [tuple(b) for b in whole.epoch(epoch)]
        split = [[tuple(b) for b in share.share(epoch)] for share in shares]
        assert sorted(split[0] + split[1]) == sorted(batches)  # every batch, once
        assert not set(split[0]) & set(split[1])
    # resuming a process at its micro-batch k gives the k-th batch of its share
    per_epoch = len(shares[1].share(0))
    resumed = next(shares[1](per_epoch + 1))
    expected = dataset.collate(shares[1].share(1)[1])
    torch.testing.assert_close(resumed, expected, equal_nan=True, rtol=0, atol=0)
