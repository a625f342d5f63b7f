"""The topology constraint of TrajDLM sampling: every generated trip is legal and reaches its
destination.

:class:`TopologyConstraint` is the core's logits-constraint callback, run before every commit
decision of :mod:`difforge.traj.sample`. Logits of tokens that would break the trip are set
to -inf (``masked_fill``, never multiplied by a 0/1 mask). Rules at a masked position p:

1. *left*: a segment must be a legal successor (``roadmap.rel``) of the token at p-1; after the
   destination, or after ``[EOS]``, only ``[EOS]`` may follow; ``[EOS]`` may follow nothing else;
2. *destination budget*: a segment s needs ``hops(s → destination) <= deadline - 1 - p`` where
   the deadline is the first committed ``[EOS]`` right of p, else the row's length limit: the
   canvas end, or with ``max_detour`` ``hops(origin → destination) + 1 + max_detour`` (trips
   longer than the training data's detours are not allowed to start), so the destination can
   still be reached in time;
3. *right*: if a segment is already committed further right in the block (commits go by
   confidence, not left to right), the tokens in between must connect to it in exactly the number
   of steps available (a right-to-left sweep over the predecessor relation).

Several tokens are committed per step, so the token "at p-1" of rule 1 is, when p-1 is still
masked, the candidate the constraint itself picked there: the candidates of a block form one legal
chain, built left to right, and whatever subset the core commits is consistent with it. Each rule
keeps at least one token allowed, so every trip is legal and reaches its destination (rule 2 sizes
the canvas so that ``hops(origin → destination)`` fits). Legality is re-derived from the committed
tokens at every step, and checked again on the finished trips.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import shortest_path
from torch import Tensor

from difforge.traj.data.segments import SegmentGraph

UNREACHABLE = np.iinfo(np.int32).max // 2
ALL_PAIRS_LIMIT = 4096  # all-pairs hop table up to this many segments (64 MB of int32)


def successor_table(graph: SegmentGraph, rows: int) -> Tensor:
    """``(rows, K)`` successor ids (K = the largest out-degree), padded with ``rows``.

    Row ``a < N`` lists the segments that may follow ``a``; row ``N`` (``[EOS]``) holds only
    ``[EOS]``; rows of other special tokens are all padding. The padding id ``rows`` is one past
    the vocabulary: callers give it a column that is always False / -inf.
    """
    n = graph.num_segments
    degree = np.diff(graph.succ_indptr)
    table = np.full((rows, max(int(degree.max()), 1)), rows, dtype=np.int64)
    owner = np.repeat(np.arange(n), degree)
    column = np.arange(len(graph.succ_indices)) - np.repeat(graph.succ_indptr[:-1], degree)
    table[owner, column] = graph.succ_indices
    table[n, 0] = n
    return torch.from_numpy(table)


def sparse_successors(successors: csr_matrix) -> Tensor:
    """The scipy successor matrix as the torch sparse 0/1 float matrix :func:`frontier_hops` takes."""
    coo = successors.tocoo()
    index = torch.from_numpy(np.stack([coo.row, coo.col]).astype(np.int64))
    values = torch.ones(coo.nnz, dtype=torch.float32)
    return torch.sparse_coo_tensor(index, values, coo.shape, check_invariants=True).coalesce()


def frontier_hops(successors: Tensor, destinations: Tensor) -> Tensor:
    """``(len(destinations), N)`` fewest transitions to each destination, on ``successors``' device.

    ``successors`` is the ``(N, N)`` sparse 0/1 float matrix with ``[a, b] = 1`` when ``b`` may
    follow ``a``. All destinations walk backwards together, one sparse product per hop, so on a GPU
    a batch's table costs a few kernels per hop instead of a CPU search per destination.
    """
    n, u = successors.shape[0], len(destinations)
    columns = torch.arange(u, device=destinations.device)
    hops = torch.full((n, u), UNREACHABLE, dtype=torch.int32, device=destinations.device)
    hops[destinations, columns] = 0
    frontier = torch.zeros((n, u), dtype=torch.float32, device=destinations.device)
    frontier[destinations, columns] = 1.0
    depth = 0
    while True:
        depth += 1
        # Row a of the product is > 0 when some successor of a is in the frontier.
        new = (torch.sparse.mm(successors, frontier) > 0) & (hops == UNREACHABLE)
        if not bool(new.any()):
            return hops.T.contiguous()
        hops[new] = depth
        frontier = new.to(torch.float32)


class HopDistances:
    """Fewest transitions from every segment to a destination (BFS on the reversed relation).

    Up to :data:`ALL_PAIRS_LIMIT` segments the whole table is built once; above it each batch's
    rows are searched: with scipy on the CPU, or with :func:`frontier_hops` on a GPU
    (:meth:`on_device`).
    """

    def __init__(self, graph: SegmentGraph) -> None:
        self.successors = graph.successor_matrix()
        self.reverse = self.successors.T.tocsr()
        self.all_pairs = (
            self._bfs(np.arange(graph.num_segments))
            if graph.num_segments <= ALL_PAIRS_LIMIT
            else None
        )
        self._device_successors: dict[torch.device, Tensor] = {}

    def _bfs(self, destinations: np.ndarray) -> np.ndarray:
        hops = shortest_path(self.reverse, unweighted=True, indices=destinations)
        hops = np.atleast_2d(hops)
        return np.where(np.isfinite(hops), hops, UNREACHABLE).astype(np.int32)

    def to(self, destinations: np.ndarray) -> np.ndarray:
        """``(len(destinations), N)`` hop counts, :data:`UNREACHABLE` where there is no path."""
        if self.all_pairs is not None:
            return self.all_pairs[destinations]
        unique, inverse = np.unique(destinations, return_inverse=True)
        return self._bfs(unique)[inverse]

    def on_device(self, destinations: np.ndarray, device: torch.device) -> Tensor:
        """:meth:`to` as an int32 tensor on ``device``, searched there when it is a GPU."""
        if self.all_pairs is not None or device.type == "cpu":
            return torch.from_numpy(self.to(destinations)).to(device)
        if device not in self._device_successors:
            self._device_successors[device] = sparse_successors(self.successors).to(device)
        unique, inverse = torch.unique(
            torch.from_numpy(destinations).to(device), return_inverse=True
        )
        return frontier_hops(self._device_successors[device], unique)[inverse]

    def between(
        self, origins: np.ndarray, destinations: np.ndarray, chunk: int = 1024
    ) -> np.ndarray:
        """Hop count of each (origin, destination) pair."""
        out = np.empty(len(origins), dtype=np.int32)
        for lo in range(0, len(origins), chunk):
            rows = self.to(destinations[lo : lo + chunk])
            out[lo : lo + chunk] = rows[np.arange(len(rows)), origins[lo : lo + chunk]]
        return out


class TopologyConstraint:
    """Logits constraint for one batch of requests (rules in the module docstring).

    ``successors``: :func:`successor_table` over the whole vocabulary (``N + 2`` rows);
    ``destinations`` ``(B,)``; ``hops`` ``(B, N)`` hop counts to each row's destination;
    ``limits`` ``(B,)`` the most tokens a row may use (default: the whole canvas). With
    ``temperature > 0`` the logits are Gumbel-perturbed here (and the core decodes greedily), so
    the chain of candidates is the sampled one. ``static=True`` computes the same result without
    any host synchronisation or data-dependent shortcut (every position of the block is visited),
    so that it can be captured as a CUDA graph
    (:class:`~difforge.traj.constraint_graphs.ConstraintGraphs`).
    """

    def __init__(
        self,
        successors: Tensor,
        destinations: Tensor,
        hops: Tensor,
        *,
        eos_id: int,
        mask_id: int,
        limits: Tensor | None = None,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
        static: bool = False,
    ) -> None:
        self.static = static
        self.successors = successors
        self.destinations = destinations
        self.hops = hops
        self.limits = limits
        self.eos_id = eos_id
        self.mask_id = mask_id
        self.num_segments = eos_id
        self.pad_id = successors.shape[0]  # one past the vocabulary
        self.temperature = temperature
        self.generator = generator

    def candidates(self, previous: Tensor) -> Tensor:
        """``(..., K)`` tokens that may follow ``previous`` ``(B, ...)`` by rule 1 (padded); the
        destination is looked up as ``[EOS]``, whose only successor is ``[EOS]``."""
        destination = self.destinations.view(-1, *[1] * (previous.ndim - 1))
        return self.successors[torch.where(previous == destination, self.eos_id, previous)]

    def __call__(self, logits: Tensor, tokens: Tensor, positions: Tensor) -> Tensor:
        batch, width, vocab = logits.shape
        n, eos = self.num_segments, self.eos_id
        limit = (
            self.limits
            if self.limits is not None
            else torch.full_like(self.destinations, tokens.shape[1])
        )
        block = tokens[:, positions]
        committed = block != self.mask_id
        if self.static:
            lo, hi = 0, width - 1
        else:
            masked_span = (~committed).any(0).nonzero().flatten().tolist()
            if not masked_span:
                return logits
            lo, hi = masked_span[0], masked_span[-1]
        if self.temperature > 0:
            uniform = torch.rand(logits.shape, generator=self.generator, device=logits.device)
            logits = logits / self.temperature - torch.log(-torch.log(uniform.clamp(min=1e-20)))

        # Rule 2: the deadline is the first committed [EOS] right of each position, or the limit.
        eos_at = torch.where(committed & (block == eos), positions, limit[:, None])
        after = torch.cat([eos_at[:, 1:], limit[:, None]], 1)
        deadline = after.flip(1).cummin(1).values.flip(1).minimum(limit[:, None])
        budget = deadline - 1 - positions
        segment_ok = self.hops[:, None, :] <= budget[:, :, None]  # (B, width, N)
        # Rule 3: a committed segment right of a masked position constrains the gap before it.
        anchored = committed & (block < n)
        if self.static or bool((anchored[:, 1:] & ~committed[:, :-1]).any()):
            segment_ok &= self._right_sets(block, anchored, segment_ok, lo)

        # Every token's score as a candidate: segments within rules 2-3, [EOS] (a candidate only
        # after the destination), -inf for [MASK] and for the padding column.
        scores = torch.cat(
            [
                logits[..., :n].masked_fill(~segment_ok, -math.inf),
                logits[..., n : n + 1],
                logits.new_full((batch, width, self.pad_id + 1 - n - 1), -math.inf),
            ],
            -1,
        )
        # Rule 1 along the chain: each position's candidate follows the committed token or the
        # candidate on its left, so any subset of candidates can be committed together.
        initial = tokens.gather(1, (positions[:1] - 1).clamp(min=0).expand(batch, 1))[:, 0]
        previous = block[:, lo - 1] if lo > 0 else initial
        lefts = []
        for j in range(lo, hi + 1):
            lefts.append(previous)
            options = self.candidates(previous)
            pick = scores[:, j].gather(1, options).argmax(1, keepdim=True)
            previous = torch.where(committed[:, j], block[:, j], options.gather(1, pick)[:, 0])
        left = torch.cat([initial[:, None], block[:, :-1]], 1)
        left[:, lo : hi + 1] = torch.stack(lefts, 1)
        allowed = torch.zeros(batch, width, self.pad_id + 1, dtype=torch.bool, device=logits.device)
        allowed.scatter_(2, self.candidates(left), True)
        constrained = scores[..., :vocab].masked_fill(~allowed[..., :vocab], -math.inf)
        return torch.where(committed[..., None], logits, constrained)

    def _right_sets(self, block: Tensor, anchored: Tensor, segment_ok: Tensor, lo: int) -> Tensor:
        """Rule 3: ``(B, width, N)`` segments from which the committed tokens to the right can
        still be reached in exactly the steps between (all True where nothing is anchored)."""
        batch, width = block.shape
        n = self.num_segments
        # Comparisons rather than index_put/one_hot: no host synchronisation (graph capture).
        segments = torch.arange(n, device=block.device)
        is_dest = segments == self.destinations[:, None]
        one_hot = block[..., None] == segments
        # A segment committed at or right of j: nothing else is free there, and [EOS] cannot be
        # at j (in a consistent canvas [EOS] never precedes a segment).
        pinned = anchored.flip(1).cummax(1).values.flip(1)
        # The destination may stand right before position j only if [EOS] may stand at j.
        dest_before = is_dest[:, None, :] & ~pinned[:, :, None]
        sets = torch.ones(batch, width, n, dtype=torch.bool, device=block.device)
        padded = torch.zeros(batch, self.pad_id + 1, dtype=torch.bool, device=block.device)
        last = width - 1 if self.static else int(anchored.any(0).nonzero().max())
        right = sets[:, last]  # nothing is anchored right of the last anchor
        for j in range(last, lo, -1):
            # What position j - 1 may hold, given position j and the tokens right of it.
            padded[:, :n] = torch.where(
                anchored[:, j, None], one_hot[:, j], right & segment_ok[:, j]
            )
            before = padded[:, self.successors[:n]].any(-1) & ~is_dest | dest_before[:, j]
            right = torch.where(pinned[:, j, None], before, sets[:, j - 1])
            sets[:, j - 1] = right
        return sets


def stop_at_destination(destinations: Tensor, eos_id: int):
    """Stop condition: a row is finished once it holds its destination or ``[EOS]``."""

    def stop(tokens: Tensor) -> Tensor:
        return ((tokens == destinations[:, None]) | (tokens == eos_id)).any(1)

    return stop
