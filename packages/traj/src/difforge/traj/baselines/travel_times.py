"""Entry times for baseline paths: the training set's mean speed on each segment."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from difforge.traj.baselines.routes import MIN_SEGMENT_COST_M
from difforge.traj.data.hoser import Trajectories
from difforge.traj.data.requests import ODRequests
from difforge.traj.data.segments import SegmentGraph
from difforge.traj.evaluate import Throughput

DEFAULT_SPEED_KMH = 30.0  # used only when the training set carries no times at all


def segment_travel_seconds(graph: SegmentGraph, train: Trajectories) -> np.ndarray:
    """Mean travel time (s) of every segment from the training set's entry times.

    The time on segment ``rids[i]`` is ``times[i+1] - times[i]`` (the last segment of a trajectory
    has no exit time and is not observed). A segment's speed is its total observed length over its
    total observed time; segments never observed (or with zero total time) take the speed of
    their road type, then the speed of the whole training set, then :data:`DEFAULT_SPEED_KMH`.
    """
    n = graph.num_segments
    seconds = np.zeros(n)
    visits = np.zeros(n)
    for rids, times in train:
        if times is None or len(rids) < 2:
            continue
        dwell = np.diff(times.astype("datetime64[s]").astype(np.int64)).astype(np.float64)
        np.add.at(seconds, rids[:-1], dwell)
        np.add.at(visits, rids[:-1], 1.0)
    length = np.maximum(graph.length_m, MIN_SEGMENT_COST_M)
    observed = seconds > 0
    speed = np.zeros(n)
    speed[observed] = visits[observed] * length[observed] / seconds[observed]
    total_time = seconds.sum()
    fallback = visits @ length / total_time if total_time > 0 else DEFAULT_SPEED_KMH / 3.6
    for road_type in np.unique(graph.road_type):
        members = graph.road_type == road_type
        time_of_type = seconds[members].sum()
        type_speed = (
            visits[members] @ length[members] / time_of_type if time_of_type > 0 else fallback
        )
        speed[members & ~observed] = type_speed
    return length / speed


def timed(
    paths: list[np.ndarray], departures: np.ndarray, travel_seconds: np.ndarray
) -> list[np.ndarray | None]:
    """Entry time of every segment: departure plus the travel times of the segments before it."""
    out: list[np.ndarray | None] = []
    for path, start in zip(paths, np.asarray(departures, dtype="datetime64[s]")):
        if np.isnat(start):
            out.append(None)
            continue
        offsets = np.concatenate([[0.0], np.cumsum(travel_seconds[path[:-1]])])
        out.append(start + np.round(offsets).astype("timedelta64[s]"))
    return out


def generate_timed(
    generate: Callable[[ODRequests], list[np.ndarray]],
    requests: ODRequests,
    travel_seconds: np.ndarray,
    *,
    batch_size: int | None = None,
    device: str | None = "cpu",
) -> tuple[Trajectories, Throughput]:
    """Run a generator on ``requests``, time it, and add entry times from ``travel_seconds``.

    ``generate`` is e.g. ``ShortestPath(graph).generate`` or
    ``functools.partial(search, model, graph, method="beam")``; the wall time covers path
    generation only (not the time assignment), which is what :class:`Throughput` reports.
    """
    start = time.perf_counter()
    paths = generate(requests)
    seconds = time.perf_counter() - start
    trajectories = Trajectories(
        rids=paths,
        times=timed(paths, requests.departures, travel_seconds),
        traj_ids=[str(k) for k in range(len(paths))],
    )
    return trajectories, Throughput(len(paths), seconds, batch_size=batch_size, device=device)
