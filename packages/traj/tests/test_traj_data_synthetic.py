"""The procedural grid city used for tests and the ~40,000-segment scaling benchmark."""

from __future__ import annotations

import numpy as np
from scipy.sparse.csgraph import connected_components

from difforge.traj.data.hoser import read_trajectories, write_roadmap, write_trajectories
from difforge.traj.data.synthetic import synthetic_city, synthetic_trips


def test_synthetic_city_and_trips(tmp_path):
    city = synthetic_city(12, seed=1)
    again = synthetic_city(12, seed=1)
    assert np.array_equal(city.succ_indices, again.succ_indices)
    assert np.allclose(city.coord_lonlat, again.coord_lonlat)
    # two-way streets give ~4 segments per junction; one-way and removed streets fewer
    assert 300 < city.num_segments < 4 * 12 * 11
    assert set(city.highway) == {"primary", "residential"}
    assert connected_components(city.successor_matrix(), directed=True, connection="strong")[0] == 1
    assert city.properties["oneway"].sum() > 0
    assert 100 < np.median(city.length_m) < 200

    rids, times = synthetic_trips(city, 30, seed=2)
    assert len(rids) == 30
    for r, t in zip(rids, times):
        assert city.transition_legal(r[:-1], r[1:]).all()
        assert (np.diff(t.astype(np.int64)) > 0).all()
    # per-trip noisy weights: not every trip is the length-shortest path
    assert sum(city.shortest_path(int(r[0]), int(r[-1])) != r.tolist() for r in rids) > 5

    write_roadmap(city, tmp_path)
    write_trajectories(tmp_path / "train.csv", rids, times)
    assert len(read_trajectories(tmp_path / "train.csv", city, on_invalid="error")) == 30
