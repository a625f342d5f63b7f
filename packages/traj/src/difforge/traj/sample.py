"""Generating trajectories with TrajDLM: topology-constrained block-diffusion decoding.

Each OD request becomes a canvas ``[origin, MASK, MASK, ...]`` decoded block by block by the core's
KV-cached :func:`~difforge.core.diffusion.sample_block_diffusion` (or, as the baseline, one token at a
time by :func:`~difforge.core.diffusion.sample_autoregressive`), with classifier-free guidance
(``u + (w+1)(c-u)``, TrajDLM's w = 0.5) and greedy confidence-ordered commits (TrajDLM: temperature 0,
2 denoising steps per block by default; TrajDLM uses up to 8).

Before every commit decision the logits pass through
:class:`~difforge.traj.constraint.TopologyConstraint` (every trip legal, every trip at its
destination; the rules are in :mod:`difforge.traj.constraint`), replayed as CUDA graphs on a GPU
by :class:`~difforge.traj.constraint_graphs.ConstraintGraphs`.

Travel times: the model's :class:`~difforge.traj.model.TravelTimeHead` gives each segment a
duration (sampled from its Gaussian over ``log1p(seconds)``, or its mean), so trips carry entry
times from their departure time, as HOSER's ``time_list``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from difforge.core.cli import progress
from difforge.core.diffusion import sample_autoregressive, sample_block_diffusion
from difforge.core.errors import UserError
from difforge.traj.constraint import (
    UNREACHABLE,
    HopDistances,
    TopologyConstraint,
    stop_at_destination,
    successor_table,
)
from difforge.traj.constraint_graphs import ConstraintGraphs
from difforge.traj.data.hoser import Trajectories
from difforge.traj.data.requests import ODRequests
from difforge.traj.model import MINUTES_PER_DAY, SamplingConfig, TrajDLM, round_up


@dataclass
class GeneratedTrips:
    """Generated trajectories with their requests and timing."""

    rids: list[np.ndarray]
    times: list[np.ndarray | None]  # entry time of every segment (datetime64[s], HOSER's unit)
    end_times: list[np.datetime64 | None]  # when the last segment is left
    origins: np.ndarray
    destinations: np.ndarray
    departures: np.ndarray
    seconds: float  # wall time of path + time generation
    batch_size: int
    device: str
    fully_legal: np.ndarray  # per trip: every transition is in roadmap.rel
    reached: np.ndarray  # per trip: it ends on its requested destination
    # Unrounded seconds spent on every segment (exports derive sub-second times from them); None
    # where the trip has no departure time.
    durations: list[np.ndarray | None] | None = None

    def entry_offsets(self, k: int) -> np.ndarray | None:
        """Seconds from trip ``k``'s departure to each segment's entry, then to its end (one more
        value than segments), unrounded; None without times."""
        if self.times[k] is None:
            return None
        if self.durations is None or self.durations[k] is None:
            stamps = np.append(self.times[k], self.end_times[k]).astype("datetime64[s]")
            return (stamps - stamps[0]).astype(np.float64)
        return np.concatenate([[0.0], np.cumsum(self.durations[k], dtype=np.float64)])

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
        table: Tensor | None = None,
    ) -> list[np.ndarray]:
        """One segment sequence per request (all rows decoded together as one batch).

        ``table``: the model's :meth:`~difforge.traj.model.TrajDLM.token_table`, computed here
        if not given (it runs the road encoder, so callers with several batches pass it).
        """
        mc, cfg, device = self.model.config, self.config, self.device
        hops = self.hops.on_device(destinations, device)
        rows = torch.arange(len(origins), device=device)
        origin_hops = hops[rows, torch.from_numpy(origins).to(device)].cpu().numpy()
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
        table = self.model.token_table() if table is None else table
        bucket = self.model.time_bucket(torch.from_numpy(minutes).to(device))
        origin = canvas[:, 0]
        extra = {"embedding_weight": table, **self.model.condition(table, origin, dest, bucket)}
        uncond = self.model.null_condition(table, len(origins)) if cfg.guidance_scale else None
        constraint = (
            TopologyConstraint(
                self.successors,
                dest,
                hops,
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
        return [cut_trip(row, int(d), mc.eos_id) for row, d in zip(out.cpu().numpy(), destinations)]

    def _legality(
        self, paths: list[np.ndarray], destinations: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per trip: fully legal, and ending on its destination. With the constraint both are
        guaranteed, so a failure there is a bug and raises."""
        ids = np.concatenate(paths)
        legal = self.graph.transition_legal(ids[:-1], ids[1:])
        lengths = np.array([len(p) for p in paths])
        ends = np.cumsum(lengths)
        legal[ends[:-1] - 1] = True  # pairs across two trips
        illegal_before = np.concatenate([[0], np.cumsum(~legal)])
        fully_legal = illegal_before[ends - 1] == illegal_before[ends - lengths]
        reached = np.array([p[-1] for p in paths]) == destinations
        if self.config.constrained and not (fully_legal.all() and reached.all()):
            raise RuntimeError(
                f"constrained sampling produced {int((~fully_legal).sum())} trips with illegal "
                f"transitions and {int((~reached).sum())} trips off their destination"
            )
        return fully_legal, reached

    @torch.no_grad()
    def sample_durations(
        self,
        paths: list[np.ndarray],
        minutes: np.ndarray,
        generator: torch.Generator | None = None,
        table: Tensor | None = None,
    ) -> list[np.ndarray]:
        """Seconds spent on every segment of every path (``table`` as in :meth:`sample_paths`)."""
        mc = self.model.config
        width = max(len(p) for p in paths)
        tokens = torch.full((len(paths), width), mc.eos_id, dtype=torch.long)
        for row, path in enumerate(paths):
            tokens[row, : len(path)] = torch.from_numpy(path)
        tokens = tokens.to(self.device)
        minute = torch.from_numpy(np.maximum(minutes, 0)).to(self.device)
        table = self.model.token_table() if table is None else table
        mean, log_std = self.model.duration_head(table, tokens, mc.eos_id, minute)
        if self.config.duration_sampling:
            noise = torch.randn(mean.shape, generator=generator, device=self.device)
            mean = mean + noise * log_std.exp()
        seconds = torch.expm1(mean.float()).clamp(min=0).cpu().numpy()
        return [seconds[row, : len(path)] for row, path in enumerate(paths)]

    def _time_last_segment(self, path: np.ndarray, seconds: np.ndarray) -> np.ndarray:
        """The head never learns the last segment's time (a trip's exit time from it is unknown
        in the training data), so it is driven at the trip's mean speed over the others."""
        lengths = self.graph.length_m[path]
        if len(path) < 2 or seconds[:-1].sum() <= 0:
            return seconds
        speed = lengths[:-1].sum() / seconds[:-1].sum()
        return np.append(seconds[:-1], lengths[-1] / speed).astype(seconds.dtype)

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
        requests.check(self.graph.num_segments)
        minutes = departure_minutes(requests.departures)
        order = np.argsort(self._trip_size(origins, destinations), kind="stable")
        paths: list[np.ndarray | None] = [None] * len(origins)
        durations: list[np.ndarray | None] = [None] * len(origins)
        size = batch_size or self.config.batch_size
        start = time.perf_counter()
        with torch.no_grad():
            table = self.model.token_table()  # the road encoder runs once, not per batch
        bar = progress(
            total=len(origins),
            desc="generate",
            unit="trip",
            disable=None if show_progress else True,
        )
        for lo in range(0, len(order), size):
            index = order[lo : lo + size]
            batch_paths = self.sample_paths(
                origins[index], destinations[index], minutes[index], generator, table
            )
            batch_seconds = self.sample_durations(batch_paths, minutes[index], generator, table)
            for k, path, seconds in zip(index, batch_paths, batch_seconds):
                paths[k], durations[k] = path, self._time_last_segment(path, seconds)
            bar.update(len(index))
        bar.close()
        elapsed = time.perf_counter() - start
        fully_legal, reached = self._legality(paths, destinations)  # type: ignore[arg-type]
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
            fully_legal=fully_legal,
            reached=reached,
            durations=[
                None if np.isnat(depart) else seconds
                for seconds, depart in zip(durations, departures)
            ],
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
