"""The shipped default model gives the same trips for the same seed.

The values below were produced by the shipped ``weights/default`` on CPU before the package was
reorganised (issue 14); a refactor that changes them changed what users get, and must say so.
"""

from __future__ import annotations

import numpy as np
import pytest

from difforge.traj.data.hoser import read_trajectories
from difforge.traj.data.requests import sample_od_requests
from difforge.traj.model import TrajDLM, model_data_dir
from difforge.traj.sample import TrajectorySampler

# One line per trip: its segment ids.
PINNED_ROUTES = """
286 275 285 24 30 264 240 225
151 160 149 145 32 46 69 280 159 279
234 59 231 202 204 60 233 6 15 116 17 49 254 257 259 64 251 247 245 254 257 259 63 51 261 29 221 242 263 83 142
272 270 104 90 170 166 197 192 268 189 37 157 43 284 278 99 40 23 26 22 256 252 48 18
243 139 244 248 249 53 84 225 135 226 239 57 77 238
277 0 11 6 15 116 17 49 254 257 259 64 249 53 83
"""
ROUTES = [[int(x) for x in line.split()] for line in PINNED_ROUTES.strip().splitlines()]
PINNED_DEPARTURES = ["2019-04-16T04:13:16", "2019-04-16T02:44:01", "2019-04-16T05:17:28"]
PINNED_ARRIVALS = ["2019-04-16T04:15:15", "2019-04-16T02:46:43", "2019-04-16T05:24:11"]


@pytest.fixture(scope="module")
def default_trips():
    model = TrajDLM.from_pretrained("default")
    sampler = TrajectorySampler(model, model.sampling, "cpu")
    train = read_trajectories(model_data_dir(model.meta) / "train.csv", sampler.graph)
    requests = sample_od_requests(train, len(ROUTES), seed=0)
    return sampler.generate(requests, seed=0, show_progress=False)


def test_default_model_routes_are_pinned(default_trips):
    assert [r.tolist() for r in default_trips.rids] == ROUTES


def test_default_model_times_are_pinned(default_trips):
    first = default_trips.times[: len(PINNED_DEPARTURES)]
    assert [str(t[0]) for t in first] == PINNED_DEPARTURES
    arrivals = default_trips.end_times[: len(PINNED_ARRIVALS)]
    assert [str(t) for t in arrivals] == PINNED_ARRIVALS
    assert all(np.all(np.diff(t) >= np.timedelta64(0, "s")) for t in default_trips.times)
