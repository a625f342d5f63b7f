"""HOSER's generation: OD requests drawn as its ``gene.py`` draws them, and its best-first search.

The search (HOSER's ``Searcher.search``) expands the partial route with the highest cumulative
log-probability first, each segment at most once, and pushes a successor only when it improves
that segment's best log-probability so far. It stops on popping the destination, or after
``max_search_steps`` expansions, returning then the expanded route that came closest (centroid
great-circle distance) to the destination. Entry times follow the model's predicted travel time to
each chosen successor, rounded to whole seconds as HOSER does.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

import numpy as np
import torch

from difforge.traj.baselines.hoser.features import trip_batch
from difforge.traj.baselines.hoser.model import HoserModel
from difforge.traj.data.hoser import Trajectories
from difforge.traj.data.requests import ODRequests

MAX_SEARCH_STEPS = 5000  # gene.py's max_search_step


def hoser_requests(train: Trajectories, n: int, seed: int = 0) -> ODRequests:
    """``n`` requests as ``gene.py`` draws them: OD pairs from the training set's empirical
    (first, last) segment distribution, with replacement; departure times from the training trips'
    start times without replacement (``random.sample``), with replacement only when ``n`` exceeds
    the number of trips."""
    rng = np.random.default_rng(seed)
    origins = np.array([r[0] for r in train.rids], dtype=np.int64)
    destinations = np.array([r[-1] for r in train.rids], dtype=np.int64)
    od_index = rng.integers(0, len(train), size=n)
    starts = np.array(
        [t[0] if t is not None else np.datetime64("NaT") for t in train.times],
        dtype="datetime64[s]",
    )
    start_index = rng.choice(len(starts), size=n, replace=n > len(starts))
    return ODRequests(
        origins=origins[od_index],
        destinations=destinations[od_index],
        departures=starts[start_index],
        trip_index=od_index,
    )


@torch.inference_mode()
def best_first(
    model: HoserModel,
    embeddings: tuple[torch.Tensor, torch.Tensor],
    origin: int,
    destination: int,
    departure: np.datetime64,
    max_search_steps: int = MAX_SEARCH_STEPS,
) -> tuple[np.ndarray, np.ndarray]:
    """One route (segment ids) and its entry times for one request."""
    graph, device = model.graph, model.zone_of.device
    successors = graph.successors.cpu().numpy()
    centroid = graph.centroid_rad.cpu().numpy()

    def gap_to(a: int) -> float:
        d = centroid[a] - centroid[destination]
        h = np.sin(d[0] / 2) ** 2 + np.cos(centroid[a, 0]) * np.cos(centroid[destination, 0]) * (
            np.sin(d[1] / 2) ** 2
        )
        return float(np.arcsin(np.sqrt(min(h, 1.0))))

    mean, std = model.config.gap_log_mean, model.config.gap_log_std
    tie = itertools.count()
    start = ([origin], [np.datetime64(departure, "s")])
    queue = [(0.0, next(tie), 0.0, start)]
    best_log_prob = {origin: 0.0}
    expanded: set[int] = set()
    closest, closest_gap = start, float("inf")
    for _ in range(max_search_steps):
        if not queue:
            break
        _, _, log_prob, (route, times) = heapq.heappop(queue)
        here = route[-1]
        if here in expanded:
            continue
        expanded.add(here)
        if here == destination:
            closest = (route, times)
            break
        gap = gap_to(here)
        if gap < closest_gap:
            closest, closest_gap = (route, times), gap
        # the destination rides as the trip's last segment, so the batch's prefix is the route
        batch = trip_batch(
            graph,
            [
                (
                    np.array([*route, destination]),
                    np.array(times + times[-1:], dtype="datetime64[s]"),
                )
            ],
            device,
        )
        logits, time = model(batch, embeddings)
        last = len(route) - 1
        valid = batch.valid[0, last]
        step_log_prob = torch.log_softmax(logits[0, last][valid], dim=-1).cpu().numpy()
        seconds = torch.expm1(time[0, last][valid] * std + mean).clamp(min=0).cpu().numpy()
        for candidate, lp, sec in zip(
            successors[here][valid.cpu().numpy()], step_log_prob, seconds
        ):
            total = log_prob + float(lp)
            candidate = int(candidate)
            if total > best_log_prob.get(candidate, -np.inf):
                best_log_prob[candidate] = total
                entry = times[-1] + np.timedelta64(round(float(sec)), "s")
                heapq.heappush(
                    queue, (-total, next(tie), total, ([*route, candidate], [*times, entry]))
                )
    route, times = closest
    return np.array(route, dtype=np.int64), np.array(times, dtype="datetime64[s]")


def search(
    model: HoserModel,
    requests: ODRequests,
    *,
    max_search_steps: int = MAX_SEARCH_STEPS,
    on_trip: Callable[[int], None] | None = None,
) -> Trajectories:
    """Best-first search for every request (departures that are NaT start at 1970-01-01 00:00)."""
    model.eval()
    with torch.inference_mode():
        embeddings = model.embeddings()
    departures = np.where(
        np.isnat(requests.departures), np.datetime64(0, "s"), requests.departures
    ).astype("datetime64[s]")
    rids, times = [], []
    for i, (o, d, t) in enumerate(zip(requests.origins, requests.destinations, departures)):
        route, entries = best_first(model, embeddings, int(o), int(d), t, max_search_steps)
        rids.append(route)
        times.append(entries)
        if on_trip is not None:
            on_trip(i)
    return Trajectories(rids=rids, times=times, traj_ids=[str(i) for i in range(len(rids))])
