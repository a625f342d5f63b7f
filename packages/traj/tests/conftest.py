"""Fixtures shared by the command tests: a toy city dataset and a tiny model trained on it."""

from __future__ import annotations

import pytest

from difforge.traj.cli import main
from difforge.traj.data.hoser import write_roadmap, write_trajectories
from difforge.traj.data.synthetic import synthetic_city, synthetic_trips


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    """A 4 x 4 synthetic city with 200 train, 30 val and 30 test trips (HOSER layout)."""
    folder = tmp_path_factory.mktemp("toy_city")
    city = synthetic_city(4, seed=0)
    write_roadmap(city, folder)
    for split, seed, count in (("train", 1, 200), ("val", 2, 30), ("test", 3, 30)):
        rids, times = synthetic_trips(city, count, seed=seed)
        write_trajectories(folder / f"{split}.csv", rids, times)
    return folder


@pytest.fixture(scope="session")
def trained(dataset, tmp_path_factory):
    """A tiny model trained 15 steps on ``dataset``, with checkpoints at steps 10 and 15."""
    out = tmp_path_factory.mktemp("models") / "tiny"
    args = ["train", "--data", str(dataset), "--out", str(out), "--config", "tiny"]
    code = main([*args, "train.steps=15", "train.ckpt_every=10", "train.keep_checkpoints=2"])
    assert code == 0
    return out
