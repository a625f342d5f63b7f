"""Generating trajectories with TrajDLM: topology-constrained block-diffusion decoding.

Each OD request becomes a canvas ``[origin, MASK, MASK, ...]`` decoded block by block by the core's
KV-cached :func:`~difforge.core.diffusion.sample_block_diffusion` (or, as the baseline, one token at a
time by :func:`~difforge.core.diffusion.sample_autoregressive`), with classifier-free guidance
(``u + (w+1)(c-u)``, TrajDLM's w = 0.5) and greedy confidence-ordered commits (TrajDLM: temperature 0,
2 denoising steps per block by default; TrajDLM uses up to 8).

**Topology-constrained sampling** (:class:`TopologyConstraint`, the core's logits-constraint
callback, run before every commit decision). Logits of tokens that would break the trip are set
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

Travel times: the model's :class:`~difforge.traj.model.TravelTimeHead` gives each segment a
duration (sampled from its Gaussian over ``log1p(seconds)``, or its mean), so trips carry entry
times from their departure time, as HOSER's ``time_list``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from scipy.sparse.csgraph import shortest_path
from torch import Tensor

from difforge.core.cli import progress
from difforge.core.config import check_config, from_dict
from difforge.core.diffusion import sample_autoregressive, sample_block_diffusion
from difforge.core.errors import UserError
from difforge.traj.data.hoser import Trajectories
from difforge.traj.data.segments import SegmentGraph
from difforge.traj.evaluate import ODRequests
from difforge.traj.model import MINUTES_PER_DAY, TrajDLM, round_up

UNREACHABLE = np.iinfo(np.int32).max // 2
ALL_PAIRS_LIMIT = 4096  # all-pairs hop table up to this many segments (64 MB of int32)


@dataclass(frozen=True)
class SamplingConfig:
    """How trips are decoded (defaults: TrajDLM's inference settings)."""

    decoding: Literal["diffusion", "autoregressive"] = "diffusion"
    # Denoising steps per block (block / steps tokens committed per step); None: threshold only.
    # 2 rather than TrajDLM's up to 8: on one H200 (RESULTS.md, helsinki_drive_dua, 5,000 trips x
    # 2 seeds) 2 steps scored the same as 4 and 8 on every metric within the seed spread and
    # decoded 2.2x / 4.4x faster (1 step: same scores again, 1.5x faster still).
    steps_per_block: int | None = 2
    threshold: float | None = None  # Fast-dLLM: also commit every token above this confidence
    guidance_scale: float = 0.5  # w in u + (w + 1)(c - u); 0 disables guidance
    temperature: float = 0.0  # 0: greedy (TrajDLM); > 0: Gumbel-max sampling
    constrained: bool = True  # topology-constrained sampling (False: the ablation)
    # Longest detour, in segments beyond the fewest-hop route, a trip may take (rule 2); training
    # stores a high quantile of the training trips' detours here. None: only the canvas limits it.
    max_detour: int | None = None
    duration_sampling: bool = True  # sample travel times from the head's Gaussian (False: mean)
    batch_size: int = 256
    cuda_graphs: bool = True  # replay the constraint as CUDA graphs on a GPU (ConstraintGraphs)

    def __post_init__(self) -> None:
        if self.steps_per_block is not None:
            check_config(self.steps_per_block >= 1, "steps_per_block", ">= 1", self.steps_per_block)
        if self.threshold is not None:
            check_config(0 < self.threshold <= 1, "threshold", "in (0, 1]", self.threshold)
        check_config(self.guidance_scale >= 0, "guidance_scale", ">= 0", self.guidance_scale)
        check_config(self.temperature >= 0, "temperature", ">= 0", self.temperature)
        check_config(self.batch_size >= 1, "batch_size", ">= 1", self.batch_size)
        if self.max_detour is not None:
            check_config(self.max_detour >= 0, "max_detour", ">= 0", self.max_detour)


################################################################################
#                              Graph look-ups                                  #
################################################################################


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


def model_sampling(meta: dict, **changes: object) -> SamplingConfig:
    """The sampling defaults saved with a model (``config.json``), with ``changes`` applied."""
    return from_dict(SamplingConfig, {**meta.get("sampling", {}), **changes}, prefix="sampling.")


class HopDistances:
    """Fewest transitions from every segment to a destination (BFS on the reversed relation)."""

    def __init__(self, graph: SegmentGraph) -> None:
        self.reverse = graph.successor_matrix().T.tocsr()
        self.all_pairs = (
            self._bfs(np.arange(graph.num_segments))
            if graph.num_segments <= ALL_PAIRS_LIMIT
            else None
        )

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

    def between(
        self, origins: np.ndarray, destinations: np.ndarray, chunk: int = 1024
    ) -> np.ndarray:
        """Hop count of each (origin, destination) pair."""
        out = np.empty(len(origins), dtype=np.int32)
        for lo in range(0, len(origins), chunk):
            rows = self.to(destinations[lo : lo + chunk])
            out[lo : lo + chunk] = rows[np.arange(len(rows)), origins[lo : lo + chunk]]
        return out


################################################################################
#                          The constraint callback                             #
################################################################################


class TopologyConstraint:
    """Logits constraint for one batch of requests (rules in the module docstring).

    ``successors``: :func:`successor_table` over the whole vocabulary (``N + 2`` rows);
    ``destinations`` ``(B,)``; ``hops`` ``(B, N)`` hop counts to each row's destination;
    ``limits`` ``(B,)`` the most tokens a row may use (default: the whole canvas). With
    ``temperature > 0`` the logits are Gumbel-perturbed here (and the core decodes greedily), so
    the chain of candidates is the sampled one. ``static=True`` computes the same result without
    any host synchronisation or data-dependent shortcut (every position of the block is visited),
    so that it can be captured as a CUDA graph (:class:`ConstraintGraphs`).
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


class ConstraintGraphs:
    """Replays :class:`TopologyConstraint` as CUDA graphs, one per input shape.

    Eager PyTorch launches the constraint's few hundred small kernels one by one, which dominates
    a small batch on a GPU; a captured graph launches them together. Each shape's first capture is
    checked against the eager result; any capture error or difference turns graphs off for good
    (eager from then on), so a failure can cost speed but never correctness.
    """

    def __init__(self) -> None:
        self.enabled = True
        self.entries: dict[tuple, tuple] = {}
        self.failure: str | None = None

    def wrap(self, constraint: TopologyConstraint):
        """A logits constraint that replays a graph of ``constraint`` where it can."""
        if constraint.temperature > 0 or constraint.limits is None:
            return constraint  # sampling noise is drawn eagerly

        def call(logits: Tensor, tokens: Tensor, positions: Tensor) -> Tensor:
            if not self.enabled or logits.device.type != "cuda":
                return constraint(logits, tokens, positions)
            key = (tuple(logits.shape), tuple(tokens.shape), logits.dtype)
            entry = self.entries.get(key)
            if entry is None:
                try:
                    entry = self._capture(constraint, logits, tokens, positions)
                except Exception as exc:  # any capture problem: stay correct, lose speed
                    entry, self.failure = None, f"{type(exc).__name__}: {exc}"
                if entry is None:
                    self.enabled = False
                    return constraint(logits, tokens, positions)
                self.entries[key] = entry
            graph, static, inputs, output = entry
            for buffer, value in (
                *zip(inputs, (logits, tokens, positions)),
                (static.destinations, constraint.destinations),
                (static.hops, constraint.hops),
                (static.limits, constraint.limits),
            ):
                buffer.copy_(value)
            graph.replay()
            return output

        return call

    def _capture(
        self, constraint: TopologyConstraint, logits: Tensor, tokens: Tensor, positions: Tensor
    ) -> tuple | None:
        static = TopologyConstraint(
            constraint.successors,
            constraint.destinations.clone(),
            constraint.hops.clone(),
            eos_id=constraint.eos_id,
            mask_id=constraint.mask_id,
            limits=constraint.limits.clone(),
            static=True,
        )
        inputs = (logits.clone(), tokens.clone(), positions.clone())
        expected = constraint(logits, tokens, positions)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            static(*inputs)  # warm-up outside the capture (lazy initialisation, allocator)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            output = static(*inputs)
        graph.replay()
        if not torch.equal(output, expected):
            self.failure = "the captured constraint differs from the eager one"
            return None
        return graph, static, inputs, output


def stop_at_destination(destinations: Tensor, eos_id: int):
    """Stop condition: a row is finished once it holds its destination or ``[EOS]``."""

    def stop(tokens: Tensor) -> Tensor:
        return ((tokens == destinations[:, None]) | (tokens == eos_id)).any(1)

    return stop


################################################################################
#                               The sampler                                    #
################################################################################


@dataclass
class GeneratedTrips:
    """Generated trajectories with their requests and timing."""

    rids: list[np.ndarray]
    times: list[np.ndarray | None]  # entry time of every segment (datetime64[s])
    end_times: list[np.datetime64 | None]  # when the last segment is left
    origins: np.ndarray
    destinations: np.ndarray
    departures: np.ndarray
    seconds: float  # wall time of path + time generation
    batch_size: int
    device: str

    def __len__(self) -> int:
        return len(self.rids)

    def trajectories(self) -> Trajectories:
        return Trajectories(
            rids=self.rids, times=self.times, traj_ids=[str(k) for k in range(len(self.rids))]
        )

    @property
    def trajectories_per_second(self) -> float:
        return len(self.rids) / self.seconds if self.seconds > 0 else math.inf


def departure_minutes(departures: np.ndarray) -> np.ndarray:
    """UTC minute of the day of each departure (``datetime64``); -1 where unknown (NaT)."""
    departures = np.asarray(departures, dtype="datetime64[s]")
    minutes = (departures - departures.astype("datetime64[D]")).astype(np.int64) // 60
    return np.where(np.isnat(departures), -1, minutes % MINUTES_PER_DAY)


class TrajectorySampler:
    """Batched generation with a TrajDLM model on one device (module docstring)."""

    def __init__(
        self, model: TrajDLM, config: SamplingConfig, device: str | torch.device = "cpu"
    ) -> None:
        if model.road_graph is None:
            raise ValueError("the model has no road network attached")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.config = config
        self.graph = model.road_graph
        mc = model.config
        self.successors = successor_table(self.graph, mc.vocab_size).to(self.device)
        self.hops = HopDistances(self.graph)
        self.constraint_graphs = ConstraintGraphs()

    @torch.no_grad()
    def sample_paths(
        self,
        origins: np.ndarray,
        destinations: np.ndarray,
        minutes: np.ndarray,
        generator: torch.Generator | None = None,
    ) -> list[np.ndarray]:
        """One segment sequence per request (all rows decoded together as one batch)."""
        mc, cfg, device = self.model.config, self.config, self.device
        hops = self.hops.to(destinations)
        origin_hops = hops[np.arange(len(origins)), origins]
        if (origin_hops >= UNREACHABLE).any():
            bad = int(np.argmax(origin_hops >= UNREACHABLE))
            raise UserError(
                f"OD pair ({int(origins[bad])}, {int(destinations[bad])}) has no legal path on "
                f"the road network ({int((origin_hops >= UNREACHABLE).sum())} such requests)"
            )
        block = 1 if cfg.decoding == "autoregressive" else mc.block_size
        if cfg.max_detour is None:
            length = round_up(max(mc.max_len, int(origin_hops.max()) + 1), block)
            limits = np.full(len(origins), length)
        else:
            limits = origin_hops.astype(np.int64) + 1 + cfg.max_detour
            length = round_up(int(limits.max()), block)
        canvas = torch.full((len(origins), length), mc.mask_id, dtype=torch.long)
        canvas[:, 0] = torch.from_numpy(origins)
        canvas = canvas.to(device)
        dest = torch.from_numpy(destinations).to(device)
        table = self.model.token_table()
        bucket = self.model.time_bucket(torch.from_numpy(minutes).to(device))
        origin = canvas[:, 0]
        extra = {"embedding_weight": table, **self.model.condition(table, origin, dest, bucket)}
        uncond = self.model.null_condition(table, len(origins)) if cfg.guidance_scale else None
        constraint = (
            TopologyConstraint(
                self.successors,
                dest,
                torch.from_numpy(hops).to(device),
                eos_id=mc.eos_id,
                mask_id=mc.mask_id,
                limits=torch.from_numpy(limits).to(device),
                temperature=cfg.temperature,
                generator=generator,
            )
            if cfg.constrained
            else None
        )
        # With the constraint, sampling noise is added inside it (see TopologyConstraint).
        temperature = 0.0 if constraint is not None else cfg.temperature
        if constraint is not None and cfg.cuda_graphs and device.type == "cuda":
            constraint = self.constraint_graphs.wrap(constraint)
        common = {
            "mask_token_id": mc.mask_id,
            "temperature": temperature,
            "constraint": constraint,
            "stop": stop_at_destination(dest, mc.eos_id),
            "generator": generator,
            "extra_args": extra,
            "guidance_scale": cfg.guidance_scale,
            "uncond_args": uncond,
        }
        if cfg.decoding == "autoregressive":
            out = sample_autoregressive(self.model.backbone, canvas, **common)
        else:
            out = sample_block_diffusion(
                self.model.backbone,
                canvas,
                block_size=mc.block_size,
                steps_per_block=cfg.steps_per_block,
                threshold=cfg.threshold,
                **common,
            )
        paths = [
            cut_trip(row, int(d), mc.eos_id) for row, d in zip(out.cpu().numpy(), destinations)
        ]
        if cfg.constrained:
            self._check(paths, destinations)
        return paths

    def _check(self, paths: list[np.ndarray], destinations: np.ndarray) -> None:
        """The constraint's guarantee, verified on the finished trips (a failure is a bug)."""
        ids = np.concatenate(paths)
        legal = self.graph.transition_legal(ids[:-1], ids[1:])
        legal[np.cumsum([len(p) for p in paths])[:-1] - 1] = True  # pairs across two trips
        reached = np.array([p[-1] for p in paths]) == destinations
        if not (legal.all() and reached.all()):
            raise RuntimeError(
                f"constrained sampling produced {int((~legal).sum())} illegal transitions and "
                f"{int((~reached).sum())} trips off their destination"
            )

    @torch.no_grad()
    def sample_durations(
        self,
        paths: list[np.ndarray],
        minutes: np.ndarray,
        generator: torch.Generator | None = None,
    ) -> list[np.ndarray]:
        """Seconds spent on every segment of every path."""
        mc = self.model.config
        width = max(len(p) for p in paths)
        tokens = torch.full((len(paths), width), mc.eos_id, dtype=torch.long)
        for row, path in enumerate(paths):
            tokens[row, : len(path)] = torch.from_numpy(path)
        tokens = tokens.to(self.device)
        minute = torch.from_numpy(np.maximum(minutes, 0)).to(self.device)
        mean, log_std = self.model(tokens, task="duration", departure_minute=minute).sample.unbind(
            -1
        )
        if self.config.duration_sampling:
            noise = torch.randn(mean.shape, generator=generator, device=self.device)
            mean = mean + noise * log_std.exp()
        seconds = torch.expm1(mean.float()).clamp(min=0).cpu().numpy()
        return [seconds[row, : len(path)] for row, path in enumerate(paths)]

    def _trip_size(self, origins: np.ndarray, destinations: np.ndarray) -> np.ndarray:
        """The fewest-hop count of each request where the all-pairs table exists; on larger
        networks the straight-line distance between the two segments' centroids, because a BFS
        for every request here would double the per-batch BFS that decoding needs anyway."""
        if self.hops.all_pairs is not None:
            return self.hops.between(origins, destinations)
        offset = self.graph.centroid[destinations] - self.graph.centroid[origins]
        offset[:, 0] *= np.cos(np.radians(self.graph.centroid[origins, 1]))
        return np.hypot(offset[:, 0], offset[:, 1])

    def generate(
        self,
        requests: ODRequests,
        seed: int = 0,
        show_progress: bool = True,
        batch_size: int | None = None,
    ) -> GeneratedTrips:
        """Trips for every request, in request order; batches of ``batch_size`` (default
        ``config.batch_size``) requests.

        Requests are decoded in order of their size (:meth:`_trip_size`), so that a batch holds
        trips of similar length (fewer blocks spent on finished rows), then put back in order.
        """
        generator = torch.Generator(device=self.device).manual_seed(seed)
        origins = np.asarray(requests.origins, dtype=np.int64)
        destinations = np.asarray(requests.destinations, dtype=np.int64)
        n = self.graph.num_segments
        for name, ids in (("origin", origins), ("destination", destinations)):
            if len(ids) and (ids.min() < 0 or ids.max() >= n):
                raise UserError(f"an OD request names an unknown {name} segment (network has {n})")
        minutes = departure_minutes(requests.departures)
        order = np.argsort(self._trip_size(origins, destinations), kind="stable")
        paths: list[np.ndarray | None] = [None] * len(origins)
        durations: list[np.ndarray | None] = [None] * len(origins)
        size = batch_size or self.config.batch_size
        start = time.perf_counter()
        bar = progress(
            total=len(origins),
            desc="generate",
            unit="trip",
            disable=None if show_progress else True,
        )
        for lo in range(0, len(order), size):
            index = order[lo : lo + size]
            batch_paths = self.sample_paths(
                origins[index], destinations[index], minutes[index], generator
            )
            batch_seconds = self.sample_durations(batch_paths, minutes[index], generator)
            for k, path, seconds in zip(index, batch_paths, batch_seconds):
                paths[k], durations[k] = path, seconds
            bar.update(len(index))
        bar.close()
        elapsed = time.perf_counter() - start
        departures = np.asarray(requests.departures, dtype="datetime64[s]")
        times, end_times = [], []
        for seconds, depart in zip(durations, departures):
            if np.isnat(depart):
                times.append(None)
                end_times.append(None)
                continue
            offsets = np.round(np.concatenate([[0.0], np.cumsum(seconds)])).astype(np.int64)
            stamps = depart + offsets.astype("timedelta64[s]")
            times.append(stamps[:-1])
            end_times.append(stamps[-1])
        return GeneratedTrips(
            rids=paths,  # type: ignore[arg-type]
            times=times,
            end_times=end_times,
            origins=origins,
            destinations=destinations,
            departures=departures,
            seconds=elapsed,
            batch_size=size,
            device=str(self.device),
        )


def cut_trip(row: np.ndarray, destination: int, eos_id: int) -> np.ndarray:
    """The trip in a decoded canvas row: up to its destination (inclusive) or up to the first
    special token, whichever comes first (the latter only without the constraint)."""
    special = np.flatnonzero(row >= eos_id)
    end = special[0] if len(special) else len(row)
    hits = np.flatnonzero(row[:end] == destination)
    if len(hits):
        end = hits[0] + 1
    return row[: max(end, 1)].astype(np.int64)
