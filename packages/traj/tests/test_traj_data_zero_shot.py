"""helsinki_bike_on_drive: bicycle trips in the car network's vocabulary, with a train split."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from difforge.traj.data.datasets import dataset_dir
from difforge.traj.data.hoser import SPLITS, read_dataset

FOLDER = dataset_dir("helsinki_bike_on_drive")


def test_every_split_is_legal_on_the_car_graph_and_keeps_its_bicycle_split():
    graph, splits = read_dataset(FOLDER, on_invalid="error")  # every transition in roadmap.rel
    car = dataset_dir("helsinki_drive")
    for name in ("roadmap.geo", "roadmap.rel"):
        assert (FOLDER / name).read_bytes() == (car / name).read_bytes()
    meta = json.loads((FOLDER / "meta.json").read_text())
    matching = meta["statistics"]["matching"]
    assert set(splits) == set(SPLITS) == set(matching)
    for split, trips in splits.items():
        assert len(trips) == matching[split]["matched"]
        assert trips.has_times and all(len(r) >= 2 for r in trips.rids)
        # a trip keeps the split it has in helsinki_bike
        bike_ids = set(
            pd.read_csv(dataset_dir("helsinki_bike") / f"{split}.csv", usecols=["traj_id"])
            .traj_id.astype(str)
            .tolist()
        )
        assert set(trips.traj_ids) <= bike_ids
    assert len(splits["train"]) > 1500
    assert not set(splits["train"].traj_ids) & set(splits["test"].traj_ids)
    assert meta["statistics"]["recorded"]["trips"] == sum(len(t) for t in splits.values())
    # small enough to ship
    assert sum(p.stat().st_size for p in FOLDER.iterdir()) < 5 * 2**20

    # the training trips look like the test trips (same matching), not like the car trips
    def mean_speed_kmh(trips) -> float:
        metres = sum(graph.length_m[r[:-1]].sum() for r in trips.rids)
        seconds = sum(int((t[-1] - t[0]).astype(np.int64)) for t in trips.times)
        return metres / seconds * 3.6

    bike_train, bike_test = mean_speed_kmh(splits["train"]), mean_speed_kmh(splits["test"])
    _, car_splits = read_dataset(car)
    assert abs(bike_train - bike_test) < 0.15 * bike_test
    assert bike_train < 0.9 * mean_speed_kmh(car_splits["test"])
