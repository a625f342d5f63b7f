"""The Python API in the diffusers style: ``TrajPipeline.from_pretrained("default")``, ``.to``, a
call that returns a :class:`TrajOutput` with ``.save(path)``.

Users' own requests come as a CSV (``difforge-traj generate --od FILE``, or ``pipe(od_file=FILE)``,
:func:`read_od_csv`): one request per row, the origin and destination either as segment ids
(columns ``origin_id``, ``destination_id``) or as points (``origin_lon``, ``origin_lat``,
``destination_lon``, ``destination_lat``, WGS-84 degrees) snapped to the nearest segment
(:func:`snap_to_segments`), and optionally ``departure_time`` (ISO 8601, UTC; empty: no times).

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
import pandas as pd
import shapely
import torch

from difforge.core.config import from_dict, to_dict
from difforge.core.errors import UserError
from difforge.traj.data.geo import LocalProjection
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
        od_file: str | os.PathLike[str] | None = None,
        seed: int = 0,
        show_progress: bool = False,
        **sampling: Any,
    ) -> TrajOutput:
        """One trip per request. Give either ``requests``, or ``origins`` and ``destinations``
        (segment ids; ``departures`` optional: datetimes or ISO strings, UTC), or ``num_trips``
        (requests drawn from the training data with ``seed``), or ``od_file`` (a CSV of requests,
        module docstring). ``sampling``: overrides of the model's
        :class:`~difforge.traj.model.SamplingConfig` (e.g. ``temperature=0`` decodes greedily)."""
        given = [requests is not None, origins is not None or destinations is not None]
        given += [num_trips is not None, od_file is not None]
        if sum(given) != 1:
            raise UserError("give one of: requests, origins and destinations, num_trips, od_file")
        if num_trips is not None:
            requests = self.draw_requests(num_trips, seed)
        elif od_file is not None:
            requests = read_od_csv(od_file, self.graph)
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


ID_COLUMNS = ("origin_id", "destination_id")
POINT_COLUMNS = ("origin_lon", "origin_lat", "destination_lon", "destination_lat")
DEPARTURE_COLUMN = "departure_time"
# A point farther than this from every segment is taken to be off the network (a wrong city or
# swapped lon/lat) rather than snapped.
MAX_SNAP_M = 500.0


def snap_to_segments(
    graph: SegmentGraph, lon: np.ndarray, lat: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The segment nearest to each point (distance to its polyline; of the two directions of one
    road, the lower id; among equally near roads, the lowest id) and that distance in metres
    (:class:`~difforge.traj.data.geo.LocalProjection`, shapely's STRtree)."""
    proj = LocalProjection(*graph.centroid.mean(axis=0))
    owner = np.repeat(np.arange(graph.num_segments), np.diff(graph.coord_indptr))
    lines = shapely.linestrings(
        np.stack(proj.to_xy(graph.coord_lonlat[:, 0], graph.coord_lonlat[:, 1]), 1), indices=owner
    )
    reverse = graph.reverse_segments()
    roads = np.flatnonzero((reverse < 0) | (reverse > np.arange(graph.num_segments)))
    points = shapely.points(*proj.to_xy(lon, lat))
    (point, match), gap = shapely.STRtree(lines[roads]).query_nearest(
        points, all_matches=True, return_distance=True
    )
    ids = roads[match]
    first = np.lexsort((ids, point))  # per point, its lowest id first
    keep = first[np.concatenate([[True], point[first][1:] != point[first][:-1]])]
    return ids[keep], gap[keep]


def read_od_csv(
    path: str | os.PathLike[str], graph: SegmentGraph, max_snap_m: float = MAX_SNAP_M
) -> ODRequests:
    """:class:`ODRequests` from a CSV of users' requests (module docstring); one-line UserErrors
    for a missing file or columns, unknown ids, unparsable values and points farther than
    ``max_snap_m`` from every segment."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if len(frame) == 0:
        raise UserError(f"{path}: no requests (the file has a header only)")
    if set(ID_COLUMNS) <= set(frame.columns):
        origins, destinations = (_id_column(frame, c, graph, path) for c in ID_COLUMNS)
    elif set(POINT_COLUMNS) <= set(frame.columns):
        values = [_number_column(frame, c, path) for c in POINT_COLUMNS]
        ends = []
        for name, lon, lat in (("origin", *values[:2]), ("destination", *values[2:])):
            ids, gap = snap_to_segments(graph, lon, lat)
            if (gap > max_snap_m).any():
                row = int(np.argmax(gap > max_snap_m))
                raise UserError(
                    f"{path}: row {row + 1}: {name} ({lon[row]:.6f}, {lat[row]:.6f}) is "
                    f"{gap[row] / 1000:.1f} km from the nearest road of {graph.name} (more than "
                    f"{max_snap_m:.0f} m; lon and lat swapped, or another city?)"
                )
            ends.append(ids)
        origins, destinations = ends
    else:
        raise UserError(
            f"{path}: needs columns {', '.join(ID_COLUMNS)} (segment ids) or "
            f"{', '.join(POINT_COLUMNS)} (WGS-84 degrees); found {', '.join(frame.columns)}"
        )
    departures = None
    if DEPARTURE_COLUMN in frame.columns:
        text = frame[DEPARTURE_COLUMN].str.strip()
        stamps = pd.to_datetime(text.replace("", None), utc=True, errors="coerce")
        bad = stamps.isna() & (text != "")
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            raise UserError(
                f"{path}: row {row + 1}: departure_time {text.iloc[row]!r} is not an ISO 8601 time"
            )
        departures = stamps.dt.tz_localize(None).to_numpy().astype("datetime64[s]")
    return od_requests(origins, destinations, departures)


def _number_column(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    values = pd.to_numeric(frame[column].str.strip(), errors="coerce")
    if values.isna().any():
        row = int(np.argmax(values.isna().to_numpy()))
        raise UserError(
            f"{path}: row {row + 1}: {column} {frame[column].iloc[row]!r} is not a number"
        )
    return values.to_numpy(dtype=np.float64)


def _id_column(frame: pd.DataFrame, column: str, graph: SegmentGraph, path: Path) -> np.ndarray:
    values = _number_column(frame, column, path)
    bad = (values != np.round(values)) | (values < 0) | (values >= graph.num_segments)
    if bad.any():
        row = int(np.argmax(bad))
        raise UserError(
            f"{path}: row {row + 1}: {column} {frame[column].iloc[row]!r} is not a segment of "
            f"{graph.name} (ids 0 to {graph.num_segments - 1})"
        )
    return values.astype(np.int64)
