"""OD requests: what every generator (the model, the baselines) is asked to produce.

Generation needs only these; it never imports the evaluation protocol. Drawing requests needs only
the ends of the training trips (origin, destination, start time), so :func:`read_trip_ends` reads
those and not the whole trips.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from difforge.core.errors import UserError
from difforge.traj.data.hoser import TIME_FORMAT, Trajectories

NUM_GENERATED = 5000  # HOSER's protocol generates 5,000 trips per method


@dataclass
class ODRequests:
    """Origins, destinations (segment ids) and departure times (``datetime64[s]`` or NaT).

    ``trip_index``: the training trajectory each OD pair was drawn from (None for requests made
    otherwise), so that the real trips themselves can be scored as a reference generator.
    """

    origins: np.ndarray
    destinations: np.ndarray
    departures: np.ndarray
    trip_index: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.origins)

    def check(self, num_segments: int) -> None:
        """A one-line error if a request names a segment the network does not have."""
        for name, ids in (("origin", self.origins), ("destination", self.destinations)):
            if len(ids) and (ids.min() < 0 or ids.max() >= num_segments):
                raise UserError(
                    f"an OD request names an unknown {name} segment (network has {num_segments})"
                )


@dataclass
class TripEnds:
    """First segment, last segment and start time (NaT if unknown) of every training trip."""

    origins: np.ndarray
    destinations: np.ndarray
    starts: np.ndarray

    def __len__(self) -> int:
        return len(self.origins)

    @classmethod
    def from_trajectories(cls, trips: Trajectories) -> TripEnds:
        nat = np.datetime64("NaT", "s")
        return cls(
            origins=np.array([r[0] for r in trips.rids], dtype=np.int64),
            destinations=np.array([r[-1] for r in trips.rids], dtype=np.int64),
            starts=np.array(
                [t[0] if t is not None and len(t) else nat for t in trips.times],
                dtype="datetime64[s]",
            ),
        )


def read_trip_ends(path: str | Path, num_segments: int) -> TripEnds:
    """The ends of the trips of a HOSER CSV, reading only ``rid_list`` and ``time_list``.

    Rows whose ends are not segments of the network, or whose first time does not parse, are left
    out; unlike :func:`~difforge.traj.data.hoser.read_trajectories` the segments in between are not
    read, so a row with an illegal inner transition still gives its OD pair.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        header = pd.read_csv(path, nrows=0).columns
        if "rid_list" not in header:
            raise UserError(f"{path}: missing column rid_list")
        columns = [c for c in ("rid_list", "time_list") if c in header]
        frame = pd.read_csv(path, usecols=columns, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError as exc:
        raise UserError(f"{path}: empty file") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: malformed CSV ({str(exc).splitlines()[0]})") from exc
    rids = frame["rid_list"].str.strip().str.strip("[]()")
    origins = pd.to_numeric(rids.str.split(",", n=1).str[0], errors="coerce")
    destinations = pd.to_numeric(rids.str.rsplit(",", n=1).str[-1], errors="coerce")
    if "time_list" in frame:
        first = frame["time_list"].str.strip().str.split(",", n=1).str[0]
        starts = pd.to_datetime(first, format=TIME_FORMAT, errors="coerce").to_numpy()
        bad_time = first.ne("").to_numpy() & np.isnat(starts)
    else:
        starts = np.full(len(frame), np.datetime64("NaT"))
        bad_time = np.zeros(len(frame), dtype=bool)
    ok = (
        origins.between(0, num_segments - 1).to_numpy()
        & destinations.between(0, num_segments - 1).to_numpy()
        & ~bad_time
    )
    if not ok.any():
        raise UserError(f"{path}: no trip starts and ends on the road network")
    return TripEnds(
        origins=origins.to_numpy()[ok].astype(np.int64),
        destinations=destinations.to_numpy()[ok].astype(np.int64),
        starts=starts[ok].astype("datetime64[s]"),
    )


def sample_od_requests(
    train: Trajectories | TripEnds, n: int = NUM_GENERATED, seed: int = 0
) -> ODRequests:
    """Draw ``n`` OD pairs and departure times from the training set, as HOSER's ``gene.py``.

    The OD pair is the (first, last) segment of a training trajectory drawn uniformly with
    replacement, i.e. a draw from the empirical OD distribution; the departure time is the start
    time of a second, independent draw (HOSER samples the two separately). Departures are NaT when
    the training set has no times.
    """
    ends = TripEnds.from_trajectories(train) if isinstance(train, Trajectories) else train
    if len(ends) == 0:
        raise ValueError("cannot sample OD pairs from an empty training set")
    rng = np.random.default_rng(seed)
    od_index = rng.integers(0, len(ends), size=n)
    starts = ends.starts[~np.isnat(ends.starts)]
    if len(starts):
        departures = starts[rng.integers(0, len(starts), size=n)]
    else:
        departures = np.full(n, np.datetime64("NaT"), dtype="datetime64[s]")
    return ODRequests(
        origins=ends.origins[od_index],
        destinations=ends.destinations[od_index],
        departures=departures,
        trip_index=od_index,
    )
