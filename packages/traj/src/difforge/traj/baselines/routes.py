"""Route baselines on the segment graph: shortest path, habitual routes, a Markov chain.

- :class:`ShortestPath`: Dijkstra on segment length (scipy ``csgraph``).
- :class:`ModalRoute`: the most frequent training route per origin-destination pair (a
  reference: how far copying habitual routes goes).
- :class:`MarkovChain`: first-order transition counts from the training set, walked from the
  origin. To reach the destination soundly the walk only moves to successors that are strictly
  closer to the destination in network distance (metres along the road, one reverse Dijkstra per
  destination), picking among them with the chain's (add-alpha smoothed) transition
  probabilities. Network distance falls with every step, so the walk always ends at the
  destination after finitely many steps, with no cap and no fallback; the constraint restricts
  the chain to "descending" routes (no loops, no moves away from the destination).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

from difforge.traj.data.hoser import Trajectories
from difforge.traj.data.requests import ODRequests
from difforge.traj.data.segments import SegmentGraph

# Zero-length segments: csgraph drops explicit zeros, and descent needs > 0.
MIN_SEGMENT_COST_M = 0.01


def _cost_matrix(graph: SegmentGraph, reverse: bool) -> csr_matrix:
    """Moving a -> b costs the length of b (the origin's own length never counts)."""
    src = np.repeat(np.arange(graph.num_segments), np.diff(graph.succ_indptr))
    dst = graph.succ_indices
    cost = np.maximum(graph.length_m[dst], MIN_SEGMENT_COST_M)
    rows, cols = (dst, src) if reverse else (src, dst)
    return csr_matrix((cost, (rows, cols)), shape=(graph.num_segments,) * 2)


def toward_destinations(
    graph: SegmentGraph, destinations: np.ndarray, chunk: int = 256
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """For chunks of destinations: (ids, metres to each from every segment, next hop toward it).

    One reverse Dijkstra per destination; ``next_hop[k, s]`` is the segment after ``s`` on a
    shortest path from ``s`` to ``ids[k]`` (-9999 where none, scipy's convention).
    """
    reverse = _cost_matrix(graph, reverse=True)
    for start in range(0, len(destinations), chunk):
        ids = destinations[start : start + chunk]
        dist, pred = dijkstra(reverse, indices=ids, return_predecessors=True)
        yield ids, np.atleast_2d(dist), np.atleast_2d(pred)


def strongly_connected(graph: SegmentGraph) -> bool:
    count, _ = connected_components(graph.successor_matrix(), directed=True, connection="strong")
    return count == 1


def _per_request(
    graph: SegmentGraph, requests: ODRequests
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Each request index with its destination's rows of :func:`toward_destinations`."""
    unique, inverse = np.unique(requests.destinations, return_inverse=True)
    base = 0
    for ids, dist, next_hop in toward_destinations(graph, unique):
        for request in np.flatnonzero((inverse >= base) & (inverse < base + len(ids))):
            row = inverse[request] - base
            yield int(request), dist[row], next_hop[row]
        base += len(ids)


class ShortestPath:
    """Length-shortest legal path from origin to destination (Dijkstra, scipy ``csgraph``)."""

    def __init__(self, graph: SegmentGraph) -> None:
        self.graph = graph

    def generate(self, requests: ODRequests) -> list[np.ndarray]:
        """One path per request; a request with no path gives ``[origin]`` (destination missed)."""
        requests.check(self.graph.num_segments)
        paths: list[np.ndarray | None] = [None] * len(requests)
        for request, _dist, next_hop in _per_request(self.graph, requests):
            node, dest = int(requests.origins[request]), int(requests.destinations[request])
            path = [node]
            while node != dest and next_hop[node] >= 0:
                node = int(next_hop[node])
                path.append(node)
            paths[request] = np.asarray(path, dtype=np.int64)
        return paths  # type: ignore[return-value]


class ModalRoute:
    """The most frequent training route between the request's origin and destination segments
    (a historical route look-up; ties go to the route seen first), the shortest path for pairs
    never seen in training. On HOSER's pairwise metrics it shows how far habitual routes go."""

    def __init__(self, graph: SegmentGraph, train: Trajectories) -> None:
        self.graph = graph
        self.routes: dict[tuple[int, int], Counter] = defaultdict(Counter)
        for rids in train.rids:
            self.routes[int(rids[0]), int(rids[-1])][tuple(rids.tolist())] += 1
        self.fallback = ShortestPath(graph)

    def generate(self, requests: ODRequests) -> list[np.ndarray]:
        requests.check(self.graph.num_segments)
        unseen = [
            k
            for k, (o, d) in enumerate(zip(requests.origins, requests.destinations))
            if (int(o), int(d)) not in self.routes
        ]
        paths = self.fallback.generate(
            ODRequests(
                requests.origins[unseen], requests.destinations[unseen], requests.departures[unseen]
            )
        )
        fallback = dict(zip(unseen, paths))
        return [
            fallback[k]
            if k in fallback
            else np.asarray(self.routes[int(o), int(d)].most_common(1)[0][0], dtype=np.int64)
            for k, (o, d) in enumerate(zip(requests.origins, requests.destinations))
        ]

    def repeat_share(self) -> float:
        """Share of the trips between repeated (origin, destination) pairs that take the pair's
        most frequent route."""
        repeated = [c for c in self.routes.values() if c.total() >= 2]
        return sum(c.most_common(1)[0][1] for c in repeated) / sum(c.total() for c in repeated)


class MarkovChain:
    """First-order transition counts walked from origin to destination (module docstring).

    ``alpha`` is added to the count of every legal transition, so a legal move never seen in
    training stays possible when the walk needs it.
    """

    def __init__(
        self, graph: SegmentGraph, train: Trajectories, alpha: float = 1.0, seed: int = 0
    ) -> None:
        self.graph = graph
        self.alpha = alpha
        self.seed = seed
        # Successor slices are sorted and rows ascend, so CSR edge order is the order of the keys
        # a * N + b: an observed transition's edge index is a binary search away.
        n = graph.num_segments
        edge_keys = np.repeat(np.arange(n), np.diff(graph.succ_indptr)) * n + graph.succ_indices
        pairs = [np.stack([r[:-1], r[1:]]) for r in train.rids if len(r) >= 2]
        a, b = np.concatenate(pairs, axis=1) if pairs else np.zeros((2, 0), dtype=np.int64)
        legal = graph.transition_legal(a, b)
        edges = np.searchsorted(edge_keys, a[legal] * n + b[legal])
        self.counts = np.bincount(edges, minlength=graph.num_transitions).astype(np.float64)

    def generate(self, requests: ODRequests) -> list[np.ndarray]:
        """One walk per request; an origin that cannot reach its destination gives ``[origin]``."""
        requests.check(self.graph.num_segments)
        graph = self.graph
        rng = np.random.default_rng(self.seed)
        paths: list[np.ndarray | None] = [None] * len(requests)
        for request, to_dest, _next in _per_request(graph, requests):
            node, dest = int(requests.origins[request]), int(requests.destinations[request])
            path = [node]
            while node != dest and np.isfinite(to_dest[node]):
                lo, hi = graph.succ_indptr[node], graph.succ_indptr[node + 1]
                candidates = graph.succ_indices[lo:hi]
                descending = to_dest[candidates] < to_dest[node]
                weights = (self.counts[lo:hi] + self.alpha) * descending
                if weights.sum() == 0:  # alpha = 0 and no observed descending move
                    weights = descending.astype(np.float64)
                node = int(candidates[rng.choice(len(candidates), p=weights / weights.sum())])
                path.append(node)
            paths[request] = np.asarray(path, dtype=np.int64)
        return paths  # type: ignore[return-value]
