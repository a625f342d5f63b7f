"""The shipped default model gives the same trips for the same seed.

Greedy decoding (``temperature=0`` with the earlier ``max_detour=14`` and guidance 0.5, the
shipped sampling before issue 16) is pinned to the values the shipped ``weights/default`` produced
on CPU before the package was reorganised (issue 14). The shipped default sampling (stochastic,
chosen in issue 16, RESULTS.md) is pinned for seed 0 too. A change that moves either changed what
users get, and must say so.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from difforge.traj.data.hoser import read_trajectories
from difforge.traj.data.requests import ODRequests, sample_od_requests
from difforge.traj.model import TrajDLM, model_data_dir
from difforge.traj.sample import TrajectorySampler

GREEDY = {"temperature": 0.0, "max_detour": 14, "guidance_scale": 0.5}

# One line per trip: its segment ids.
PINNED_GREEDY_ROUTES = """
286 275 285 24 30 264 240 225
151 160 149 145 32 46 69 280 159 279
234 59 231 202 204 60 233 6 15 116 17 49 254 257 259 64 251 247 245 254 257 259 63 51 261 29 221 242 263 83 142
272 270 104 90 170 166 197 192 268 189 37 157 43 284 278 99 40 23 26 22 256 252 48 18
243 139 244 248 249 53 84 225 135 226 239 57 77 238
277 0 11 6 15 116 17 49 254 257 259 64 249 53 83
"""
PINNED_DEFAULT_ROUTES = """
286 275 285 24 30 264 241 237 239 57 77 238 240 225
151 160 149 145 32 46 69 280 159 279
234 59 231 202 204 60 233 6 15 116 17 49 254 257 259 64 249 53 83 142
272 270 104 90 170 164 149 145 32 46 69 281 288 43 284 278 99 40 23 26 22 256 252 48 18
243 139 244 248 249 53 83 142 85 264 241 237 239 57 77 238
277 0 11 6 15 116 17 49 254 257 259 64 249 53 83
"""
PINNED_DEPARTURES = ["2019-04-16T04:13:16", "2019-04-16T02:44:01", "2019-04-16T05:17:28"]
# Arrivals moved on purpose in issue 16 (from 04:15:15, 02:46:43, 05:24:11): the last segment,
# whose time the head never learns, is now driven at the trip's mean speed.
PINNED_GREEDY_ARRIVALS = ["2019-04-16T04:15:17", "2019-04-16T02:47:09", "2019-04-16T05:24:20"]


def routes(text: str) -> list[list[int]]:
    return [[int(x) for x in line.split()] for line in text.strip().splitlines()]


@pytest.fixture(scope="module")
def sampler():
    model = TrajDLM.from_pretrained("default")
    return TrajectorySampler(model, model.sampling, "cpu")


def generate(sampler, requests, **overrides):
    sampler.config = dataclasses.replace(sampler.model.sampling, **overrides)
    return sampler.generate(requests, seed=0, show_progress=False)


@pytest.fixture(scope="module")
def requests(sampler):
    train = read_trajectories(model_data_dir(sampler.model.meta) / "train.csv", sampler.graph)
    return sample_od_requests(train, len(routes(PINNED_GREEDY_ROUTES)), seed=0)


def test_greedy_routes_and_times_are_pinned(sampler, requests):
    trips = generate(sampler, requests, **GREEDY)
    assert [r.tolist() for r in trips.rids] == routes(PINNED_GREEDY_ROUTES)
    first = trips.times[: len(PINNED_DEPARTURES)]
    assert [str(t[0]) for t in first] == PINNED_DEPARTURES
    arrivals = trips.end_times[: len(PINNED_GREEDY_ARRIVALS)]
    assert [str(t) for t in arrivals] == PINNED_GREEDY_ARRIVALS
    assert all(np.all(np.diff(t) >= np.timedelta64(0, "s")) for t in trips.times)


def test_default_sampling_routes_are_pinned(sampler, requests):
    trips = generate(sampler, requests)
    assert [r.tolist() for r in trips.rids] == routes(PINNED_DEFAULT_ROUTES)
    assert [str(t[0]) for t in trips.times[: len(PINNED_DEPARTURES)]] == PINNED_DEPARTURES


def test_default_sampling_varies_the_route_of_one_request(sampler):
    # One OD pair at one departure time, 20 times: greedy gives one route, the default several.
    same = ODRequests(
        np.full(20, 234), np.full(20, 142), np.full(20, np.datetime64("2019-04-16T08:00:00"))
    )
    greedy = {tuple(r) for r in generate(sampler, same, **GREEDY).rids}
    sampled = {tuple(r) for r in generate(sampler, same).rids}
    assert len(greedy) == 1 and len(sampled) >= 3
