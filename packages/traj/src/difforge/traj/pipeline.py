"""The Python API in the diffusers style: ``TrajPipeline.from_pretrained("default")``, ``.to``, a
call that returns a :class:`TrajOutput` with ``.save(path)``.

It wraps what ``difforge-traj generate`` uses (:class:`~difforge.traj.model.TrajDLM`,
:class:`~difforge.traj.sample.TrajectorySampler` and
:func:`~difforge.traj.data.requests.sample_od_requests`): the sampling defaults come from the
model folder's config.json, keyword arguments override them.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from difforge.core.config import from_dict, to_dict
from difforge.core.errors import UserError
from difforge.traj.data.requests import ODRequests, TripEnds, read_trip_ends, sample_od_requests
from difforge.traj.data.segments import SegmentGraph
from difforge.traj.export import write_generated_csv
from difforge.traj.model import SamplingConfig, TrajDLM, model_data_dir
from difforge.traj.sample import GeneratedTrips, TrajectorySampler


@dataclass
class TrajOutput:
    """Generated trips: ``rids`` (segment ids of each trip), ``times`` (entry time of each
    segment, ``datetime64[s]``, None without a departure time) and the requests they answer."""

    trips: GeneratedTrips
    graph: SegmentGraph

    @property
    def rids(self) -> list[np.ndarray]:
        return self.trips.rids

    @property
    def times(self) -> list[np.ndarray | None]:
        return self.trips.times

    @property
    def origins(self) -> np.ndarray:
        return self.trips.origins

    @property
    def destinations(self) -> np.ndarray:
        return self.trips.destinations

    def __len__(self) -> int:
        return len(self.trips)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the HOSER CSV (``rid_list``, ``time_list`` and the requested origin and
        destination) atomically; ``difforge-traj evaluate`` reads it."""
        write_generated_csv(path, self.trips)
        return Path(path)


class TrajPipeline:
    """A trained TrajDLM on a device, generating trips for OD requests."""

    def __init__(self, model: TrajDLM, device: torch.device | str = "cpu") -> None:
        self.model = model
        self.device = torch.device(device)
        self._sampler: TrajectorySampler | None = None  # hop tables: built once per device
        self._trip_ends: TripEnds | None = None

    @classmethod
    def from_pretrained(cls, name: str | os.PathLike[str] = "default") -> TrajPipeline:
        """``"default"`` (the shipped model) or a model folder written by ``difforge-traj
        train``; safetensors and JSON only."""
        return cls(TrajDLM.from_pretrained(name))

    def to(self, device: torch.device | str) -> TrajPipeline:
        self.device = torch.device(device)
        self._sampler = None
        return self

    @property
    def graph(self) -> SegmentGraph:
        return self.model.road_graph

    def draw_requests(
        self, num_trips: int, seed: int = 0, data: str | os.PathLike[str] | None = None
    ) -> ODRequests:
        """``num_trips`` OD pairs and departure times drawn from the training trips of the
        model's dataset (or of ``data``, a dataset folder on the same road network), as
        ``difforge-traj generate`` draws them."""
        if num_trips < 1:
            raise UserError(f"num_trips must be >= 1, got {num_trips}")
        if data is not None or self._trip_ends is None:
            folder = model_data_dir(self.model.meta, data)
            ends = read_trip_ends(folder / "train.csv", self.graph.num_segments)
            if data is not None:
                return sample_od_requests(ends, num_trips, seed)
            self._trip_ends = ends
        return sample_od_requests(self._trip_ends, num_trips, seed)

    def __call__(
        self,
        requests: ODRequests | None = None,
        *,
        origins: Sequence[int] | np.ndarray | None = None,
        destinations: Sequence[int] | np.ndarray | None = None,
        departures: Sequence[Any] | np.ndarray | None = None,
        num_trips: int | None = None,
        seed: int = 0,
        show_progress: bool = False,
        **sampling: Any,
    ) -> TrajOutput:
        """One trip per request. Give either ``requests``, or ``origins`` and ``destinations``
        (segment ids; ``departures`` optional: datetimes or ISO strings, UTC), or ``num_trips``
        (requests drawn from the training data with ``seed``). ``sampling``: overrides of the
        model's :class:`~difforge.traj.model.SamplingConfig` (e.g. ``guidance_scale=0``)."""
        given = [requests is not None, origins is not None or destinations is not None]
        given.append(num_trips is not None)
        if sum(given) != 1:
            raise UserError("give one of: requests, origins and destinations, num_trips")
        if num_trips is not None:
            requests = self.draw_requests(num_trips, seed)
        elif requests is None:
            requests = od_requests(origins, destinations, departures)
        trips = self._configured_sampler(sampling).generate(
            requests, seed=seed, show_progress=show_progress
        )
        return TrajOutput(trips, self.graph)

    def _configured_sampler(self, overrides: dict[str, Any]) -> TrajectorySampler:
        if self._sampler is None:
            self._sampler = TrajectorySampler(self.model, self.model.sampling, self.device)
        if not overrides:
            return self._sampler
        defaults = to_dict(self.model.sampling)
        unknown = sorted(set(overrides) - set(defaults))
        if unknown:
            raise UserError(f"unknown sampling setting(s): {', '.join(unknown)}")
        sampler = copy.copy(self._sampler)  # shares the hop tables and the model
        sampler.config = from_dict(SamplingConfig, {**defaults, **overrides}, prefix="sampling.")
        return sampler


def od_requests(
    origins: Sequence[int] | np.ndarray | None,
    destinations: Sequence[int] | np.ndarray | None,
    departures: Sequence[Any] | np.ndarray | None = None,
) -> ODRequests:
    """:class:`ODRequests` from plain sequences (departures None: no times)."""
    if origins is None or destinations is None:
        raise UserError("origins and destinations go together")
    origin_ids = np.asarray(origins, dtype=np.int64).reshape(-1)
    destination_ids = np.asarray(destinations, dtype=np.int64).reshape(-1)
    if departures is None:
        starts = np.full(len(origin_ids), np.datetime64("NaT"), dtype="datetime64[s]")
    else:
        try:
            starts = np.asarray(departures, dtype="datetime64[s]").reshape(-1)
        except ValueError as exc:
            raise UserError(f"departures must be datetimes or ISO strings ({exc})") from None
    if not len(origin_ids) == len(destination_ids) == len(starts):
        raise UserError(
            f"{len(origin_ids)} origins, {len(destination_ids)} destinations and "
            f"{len(starts)} departures: give one of each per trip"
        )
    if len(origin_ids) == 0:
        raise UserError("no OD requests given")
    return ODRequests(origin_ids, destination_ids, starts)
