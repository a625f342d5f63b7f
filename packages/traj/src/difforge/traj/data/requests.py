"""OD requests: what every generator (the model, the baselines) is asked to produce.

Generation needs only these; it never imports the evaluation protocol.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from difforge.traj.data.hoser import Trajectories

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


def sample_od_requests(train: Trajectories, n: int = NUM_GENERATED, seed: int = 0) -> ODRequests:
    """Draw ``n`` OD pairs and departure times from the training set, as HOSER's ``gene.py``.

    The OD pair is the (first, last) segment of a training trajectory drawn uniformly with
    replacement, i.e. a draw from the empirical OD distribution; the departure time is the start
    time of a second, independent draw (HOSER samples the two separately). Departures are NaT when
    the training set has no times.
    """
    if len(train) == 0:
        raise ValueError("cannot sample OD pairs from an empty training set")
    rng = np.random.default_rng(seed)
    od_index = rng.integers(0, len(train), size=n)
    origins = np.array([train.rids[i][0] for i in od_index], dtype=np.int64)
    destinations = np.array([train.rids[i][-1] for i in od_index], dtype=np.int64)
    starts = np.array(
        [t[0] for t in train.times if t is not None and len(t)], dtype="datetime64[s]"
    )
    if len(starts):
        departures = starts[rng.integers(0, len(starts), size=n)]
    else:
        departures = np.full(n, np.datetime64("NaT"), dtype="datetime64[s]")
    return ODRequests(
        origins=origins, destinations=destinations, departures=departures, trip_index=od_index
    )
