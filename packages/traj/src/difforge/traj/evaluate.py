"""The HOSER evaluation protocol (Cao et al., AAAI 2025), as TrajDLM reports it, plus sanity checks.

Every segment is represented by the centroid of its ``roadmap.geo`` LineString. Given generated
trajectories (usually 5,000, their OD pairs and departure times drawn from the training set by
:func:`sample_od_requests`) and the real test set:

Global metrics (Jensen–Shannon divergence, natural log, so in [0, ln 2]; 100 equal bins on
``[0, max over the real test set]``, the last one closed so the real maximum falls inside, plus
one overflow bin for larger values: :func:`difforge.core.metrics.histogram_jsd`; histograms are
normalised exactly where HOSER adds 1e-14 to the denominator; the great-circle radius, 6378 km,
cancels out of these JSDs):

- ``jsd_distance``: per-trajectory travel distance, the sum of great-circle km between consecutive
  centroids;
- ``jsd_radius``: per-trajectory radius of gyration, the *mean* (not RMS) great-circle distance of
  the centroids from their mean (lon, lat);
- ``jsd_duration``: every consecutive time gap (minutes) of every trajectory, where both sides carry
  times (``None`` otherwise: TrajDLM makes no timestamps).

Local metrics, on trajectories paired by origin and destination: the origin and destination
centroids fall into cells of a 200 m × 200 m grid; for every (origin cell, destination cell) key
present in both sets, the i-th real trajectory is paired with the i-th generated one (file order)
for i < min(count real, count generated). Means over pairs:

- ``hausdorff_km``: symmetric Hausdorff distance, haversine km on (lat, lon) with R = 6378 km (the
  ``hausdorff`` package's haversine, as HOSER's notebook calls it);
- ``dtw``: FastDTW (radius 1) total cost with the same haversine km point cost, not normalised by
  length (the ``fastdtw`` package, as HOSER's notebook calls it; re-implemented here, see
  :func:`fastdtw_km`);
- ``edr``: edit distance on point sequences, points match when their great-circle distance
  (R = 6378137 m) is at most 100 m; substitution 0 if matched else 1, insertion and deletion 1;
  divided by max(n0, n1). HOSER's notebook builds (lat, lon) arrays and hands them to an EDR
  function that reads (lon, lat), so there latitude and longitude are swapped inside EDR; we use
  the intended order. Swapping the axes moves the cosine factor of the haversine onto the wrong
  coordinate, so HOSER's EDR matches points on a distorted distance and its numbers can differ
  slightly from ours.

The grid origin is the south-west corner of HOSER's fixed box for its three cities
(:data:`HOSER_BOUNDING_BOXES`) and otherwise the south-west corner of the bounding box of all
coordinates in ``roadmap.geo``. Cells are counted in geodesic metres (WGS-84, pyproj) east and north
of that corner; the OD key of a point is ``x * height + y`` as in HOSER's ``MapManager``
(``height`` = cells covering the box from south to north). Points west or south of a HOSER box get
negative cell numbers rather than folding onto cells inside it.

Sanity checks beyond HOSER's table: ``legal_transition_share`` (consecutive pairs that are
``roadmap.rel`` transitions), ``fully_legal_share`` (trajectories whose every transition is legal),
``destination_reached_share`` (trajectories ending on the requested destination segment, when the
generated file says which one was requested).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from difforge.core.errors import UserError
from difforge.core.io import write_json
from difforge.core.metrics import histogram_jsd
from difforge.traj.data.hoser import Trajectories, read_roadmap, read_trajectories
from difforge.traj.data.segments import SegmentGraph

EARTH_RADIUS_KM = 6378.0  # the `hausdorff` package's haversine (Hausdorff, DTW, distance, radius)
EDR_EARTH_RADIUS_M = 6378137.0  # the great-circle distance HOSER's EDR uses
EDR_EPS_M = 100.0
GRID_CELL_M = 200.0
NUM_BINS = 100
NUM_GENERATED = 5000

# HOSER evaluator boxes (lon_min, lat_min, lon_max, lat_max), from its map manager.
HOSER_BOUNDING_BOXES: dict[str, tuple[float, float, float, float]] = {
    "beijing": (116.25, 39.79, 116.51, 40.00),
    "porto": (-8.6890, 41.1406, -8.5577, 41.1855),
    "san_francisco": (-122.5123, 37.7083, -122.3617, 37.8309),
}

METRIC_KEYS = (
    "jsd_distance",
    "jsd_radius",
    "jsd_duration",
    "hausdorff_km",
    "dtw",
    "edr",
    "legal_transition_share",
    "fully_legal_share",
    "destination_reached_share",
)
THROUGHPUT_KEYS = ("generation_seconds", "trajectories_per_second", "batch_size", "device")


# ----------------------------------------------------------------------------------------------
# Great-circle geometry. Points are (lat, lon) in degrees, as the `hausdorff` package reads them.


def central_angle(a_latlon: np.ndarray, b_latlon: np.ndarray) -> np.ndarray:
    """Haversine central angle (radians) between broadcastable ``(..., 2)`` (lat, lon) arrays."""
    a = np.radians(np.asarray(a_latlon, dtype=np.float64))
    b = np.radians(np.asarray(b_latlon, dtype=np.float64))
    dlat = b[..., 0] - a[..., 0]
    dlon = b[..., 1] - a[..., 1]
    h = np.sin(dlat / 2) ** 2 + np.cos(a[..., 0]) * np.cos(b[..., 0]) * np.sin(dlon / 2) ** 2
    return 2.0 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def pairwise_angle(a_latlon: np.ndarray, b_latlon: np.ndarray) -> np.ndarray:
    """``(n, m)`` central angles between every point of ``a`` ``(n, 2)`` and of ``b`` ``(m, 2)``."""
    return central_angle(np.asarray(a_latlon)[:, None, :], np.asarray(b_latlon)[None, :, :])


def hausdorff_km(a_latlon: np.ndarray, b_latlon: np.ndarray) -> float:
    """Symmetric Hausdorff distance (haversine km, R = 6378 km) between two point sequences."""
    d = pairwise_angle(a_latlon, b_latlon)
    return float(max(d.min(axis=1).max(), d.min(axis=0).max()) * EARTH_RADIUS_KM)


def edr(a_latlon: np.ndarray, b_latlon: np.ndarray, eps_m: float = EDR_EPS_M) -> float:
    """EDR (Chen et al. 2005) with great-circle matching (R = 6378137 m), normalised by max length.

    Points are (lat, lon) and distances use that order (HOSER's notebook swaps the axes here; see
    the module docstring).
    """
    return _edr_from_angles(pairwise_angle(a_latlon, b_latlon), eps_m)


def _edr_from_angles(angles: np.ndarray, eps_m: float) -> float:
    # Row by row: D[i, j] = min(D[i, j-1] + 1, b_j) unrolls to j + min_{k<=j}(b_k - k), one
    # numpy prefix minimum per row instead of a Python loop over cells (all values are exact
    # small integers, so the result equals the cell-by-cell recurrence).
    n, m = angles.shape
    mismatch = (angles * EDR_EARTH_RADIUS_M > eps_m).astype(np.float64)
    cols = np.arange(m + 1, dtype=np.float64)
    prev = cols.copy()
    row = np.empty(m + 1)
    for i in range(1, n + 1):
        row[0] = i
        np.minimum(prev[1:] + 1.0, prev[:-1] + mismatch[i - 1], out=row[1:])
        prev = np.minimum.accumulate(row - cols) + cols
    return float(prev[m] / max(n, m))


def fastdtw_km(a_latlon: np.ndarray, b_latlon: np.ndarray, radius: int = 1) -> float:
    """FastDTW (Salvador & Chan 2007) total cost with haversine km point cost (R = 6378 km).

    Reproduces the ``fastdtw`` package (the version HOSER evaluates with): sequences shorter than
    ``radius + 2`` get exact DTW; otherwise both are halved by averaging neighbouring (lat, lon)
    pairs (an odd last point is dropped), solved recursively, and the coarse path, widened by
    ``radius`` cells and projected to the fine grid, is the window of a banded DTW. Ties between
    predecessors are broken in the package's order (vertical, horizontal, diagonal), so the windows
    and hence the costs match it. Written here because the package calls a Python distance function
    per cell; this computes each level's distances with one numpy call.
    """
    a = np.asarray(a_latlon, dtype=np.float64)
    b = np.asarray(b_latlon, dtype=np.float64)
    if len(a) == 0 or len(b) == 0:
        raise ValueError("DTW needs two non-empty sequences")
    return _fastdtw(a, b, radius, pairwise_angle(a, b))[0] * EARTH_RADIUS_KM


def _fastdtw(
    a: np.ndarray, b: np.ndarray, radius: int, angles: np.ndarray | None = None
) -> tuple[float, list[tuple[int, int]]]:
    """Cost in radians and warping path; ``angles`` is the full distance matrix if known."""
    n, m = len(a), len(b)
    if angles is None:
        angles = pairwise_angle(a, b)
    if n < radius + 2 or m < radius + 2:
        return _banded_dtw(angles, [(0, m - 1)] * n)
    _, coarse_path = _fastdtw(_halve(a), _halve(b), radius)
    return _banded_dtw(angles, _expand_window(coarse_path, n, m, radius))


def _halve(x: np.ndarray) -> np.ndarray:
    k = len(x) // 2
    return (x[0 : 2 * k : 2] + x[1 : 2 * k : 2]) / 2


def _expand_window(
    path: list[tuple[int, int]], n: int, m: int, radius: int
) -> list[tuple[int, int]]:
    """Per fine row, the inclusive column range of the coarse path widened by ``radius``.

    The coarse path is monotone and connected, so within coarse rows c-r..c+r its columns span
    [min column of row c-r, max column of row c+r]; widening by r and doubling gives one
    contiguous range per fine row, which is exactly the set the package's scan keeps.
    """
    rows = max(i for i, _ in path) + 1
    first = [math.inf] * rows
    last = [-1] * rows
    for i, j in path:
        first[i] = min(first[i], j)
        last[i] = max(last[i], j)
    bands = []
    for i in range(n):
        c = i // 2
        lo = first[min(max(c - radius, 0), rows - 1)] - radius
        hi = last[min(c + radius, rows - 1)] + radius
        bands.append((max(2 * lo, 0), min(2 * hi + 1, m - 1)))
    return bands


def _banded_dtw(
    angles: np.ndarray, bands: list[tuple[int, int]]
) -> tuple[float, list[tuple[int, int]]]:
    """DTW restricted to ``bands[i] = (lo, hi)`` columns of row i; returns cost and path."""
    inf = math.inf
    prev_lo, prev_hi, prev = -1, -1, [0.0]  # the virtual cell (-1, -1) with cost 0
    moves: list[list[int]] = []
    for i, (lo, hi) in enumerate(bands):
        costs = angles[i, lo : hi + 1].tolist()
        row: list[float] = []
        move_row: list[int] = []
        left = inf
        for j in range(lo, hi + 1):
            up = prev[j - prev_lo] if prev_lo <= j <= prev_hi else inf
            diag = prev[j - 1 - prev_lo] if prev_lo <= j - 1 <= prev_hi else inf
            # The package's min() keeps the first of equal candidates: up, then left, then diag.
            best, move = up, 0
            if left < best:
                best, move = left, 1
            if diag < best:
                best, move = diag, 2
            left = best + costs[j - lo]
            row.append(left)
            move_row.append(move)
        moves.append(move_row)
        prev_lo, prev_hi, prev = lo, hi, row
    i, j = len(bands) - 1, prev_hi
    path = []
    while i >= 0 and j >= 0:
        path.append((i, j))
        move = moves[i][j - bands[i][0]]
        if move == 0:
            i -= 1
        elif move == 1:
            j -= 1
        else:
            i, j = i - 1, j - 1
    path.reverse()
    return prev[-1], path


# ----------------------------------------------------------------------------------------------
# Per-trajectory global quantities.


def _segment_offsets(lengths: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)


def travel_distances_km(
    trajectories: Sequence[np.ndarray], centroids_latlon: np.ndarray
) -> np.ndarray:
    """Per trajectory, the sum of great-circle km between consecutive segment centroids."""
    lengths = np.array([len(t) for t in trajectories], dtype=np.int64)
    if len(trajectories) == 0:
        return np.zeros(0)
    ids = np.concatenate(trajectories)
    points = centroids_latlon[ids]
    steps = central_angle(points[:-1], points[1:]) * EARTH_RADIUS_KM
    # Steps that cross from one trajectory into the next are zeroed; sums per trajectory follow.
    ends = np.cumsum(lengths)[:-1] - 1
    steps[ends] = 0.0
    totals = np.concatenate([[0.0], np.cumsum(steps)])
    last = np.cumsum(lengths) - 1
    first = _segment_offsets(lengths)
    return totals[last] - totals[first]


def radii_of_gyration_km(
    trajectories: Sequence[np.ndarray], centroids_latlon: np.ndarray
) -> np.ndarray:
    """Per trajectory, the mean great-circle km of its centroids from their mean (lat, lon)."""
    if len(trajectories) == 0:
        return np.zeros(0)
    lengths = np.array([len(t) for t in trajectories], dtype=np.int64)
    points = centroids_latlon[np.concatenate(trajectories)]
    first = _segment_offsets(lengths)
    means = np.add.reduceat(points, first, axis=0) / lengths[:, None]
    dists = central_angle(points, np.repeat(means, lengths, axis=0)) * EARTH_RADIUS_KM
    return np.add.reduceat(dists, first) / lengths


def time_gaps_minutes(times: Sequence[np.ndarray | None]) -> np.ndarray:
    """Every consecutive gap of every time sequence (``datetime64``; None = unknown), in minutes."""
    gaps = [
        np.diff(t).astype("timedelta64[s]").astype(np.float64) / 60.0
        for t in times
        if t is not None and len(t) > 1
    ]
    return np.concatenate(gaps) if gaps else np.zeros(0)


def histogram_jsd_or_none(generated: np.ndarray, real: np.ndarray) -> float | None:
    """HOSER's JSD (100 bins on [0, max real] + overflow), or ``None`` if a side is empty."""
    if len(generated) == 0 or len(real) == 0:
        return None
    return histogram_jsd(generated, real, bins=NUM_BINS, overflow=True)


# ----------------------------------------------------------------------------------------------
# OD grid and pairing.


@dataclass(frozen=True)
class ODGrid:
    """HOSER's 200 m grid: cells counted in geodesic metres east and north of a south-west corner."""

    lon0: float
    lat0: float
    height: int
    cell_m: float = GRID_CELL_M

    @classmethod
    def from_bbox(
        cls,
        lon_min: float,
        lat_min: float,
        lon_max: float,
        lat_max: float,
        cell_m: float = GRID_CELL_M,
    ) -> ODGrid:
        """A grid whose origin is the box's south-west corner and whose height covers the box."""
        north = _geod_m(
            np.array([lon_min]), np.array([lat_min]), np.array([lon_min]), np.array([lat_max])
        )
        return cls(lon0=lon_min, lat0=lat_min, height=int(north[0] // cell_m) + 1, cell_m=cell_m)

    def cells(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Integer (x, y) cells of points; x counts east, y north of the origin."""
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        lon0 = np.full_like(lon, self.lon0)
        lat0 = np.full_like(lat, self.lat0)
        east = _geod_m(lon0, lat0, lon, lat0) * np.sign(lon - self.lon0)
        north = _geod_m(lon0, lat0, lon0, lat) * np.sign(lat - self.lat0)
        return np.floor(east / self.cell_m).astype(np.int64), np.floor(north / self.cell_m).astype(
            np.int64
        )

    def keys(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """HOSER's cell key ``x * height + y`` of each point."""
        x, y = self.cells(lon, lat)
        return x * self.height + y


def _geod_m(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    from pyproj import Geod

    _, _, dist = Geod(ellps="WGS84").inv(lon1, lat1, lon2, lat2)
    return np.asarray(dist, dtype=np.float64)


def pair_by_od(real_keys: np.ndarray, generated_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(real, generated)`` paired i-th with i-th within each shared OD key.

    ``*_keys`` are ``(N, 2)`` integer arrays of (origin cell key, destination cell key).
    """
    real_groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for index, key in enumerate(map(tuple, np.asarray(real_keys).tolist())):
        real_groups[key].append(index)
    gen_groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for index, key in enumerate(map(tuple, np.asarray(generated_keys).tolist())):
        gen_groups[key].append(index)
    real_idx: list[int] = []
    gen_idx: list[int] = []
    for key, gens in gen_groups.items():
        reals = real_groups.get(key, [])
        k = min(len(reals), len(gens))
        real_idx.extend(reals[:k])
        gen_idx.extend(gens[:k])
    return np.array(real_idx, dtype=np.int64), np.array(gen_idx, dtype=np.int64)


def hoser_city(name: str) -> str | None:
    """The :data:`HOSER_BOUNDING_BOXES` key for a dataset name such as ``Porto`` or ``San Francisco``."""
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    return key if key in HOSER_BOUNDING_BOXES else None


# ----------------------------------------------------------------------------------------------
# OD requests: what every generator is asked to produce.


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


# ----------------------------------------------------------------------------------------------
# The whole protocol on in-memory trajectories.


@dataclass
class Throughput:
    """How fast the evaluated trajectories were generated (reported beside the metrics)."""

    num_trajectories: int
    seconds: float
    batch_size: int | None = None
    device: str | None = None

    def fields(self) -> dict[str, object]:
        per_second = self.num_trajectories / self.seconds if self.seconds > 0 else None
        return dict(zip(THROUGHPUT_KEYS, (self.seconds, per_second, self.batch_size, self.device)))


def local_metrics(
    real_latlon: Sequence[np.ndarray],
    generated_latlon: Sequence[np.ndarray],
    progress: bool = False,
) -> dict[str, float | None]:
    """Mean Hausdorff (km), FastDTW (km) and EDR over already paired centroid sequences."""
    from tqdm import tqdm

    if len(real_latlon) == 0:
        return {"hausdorff_km": None, "dtw": None, "edr": None}
    haus, dtw, edrs = [], [], []
    pairs = zip(real_latlon, generated_latlon)
    for real, gen in tqdm(pairs, total=len(real_latlon), desc="OD pairs", disable=not progress):
        # One distance matrix serves all three metrics (and FastDTW's finest level).
        angles = pairwise_angle(real, gen)
        haus.append(max(angles.min(axis=1).max(), angles.min(axis=0).max()) * EARTH_RADIUS_KM)
        dtw.append(_fastdtw(real, gen, 1, angles)[0] * EARTH_RADIUS_KM)
        edrs.append(_edr_from_angles(angles, EDR_EPS_M))
    return {
        "hausdorff_km": float(np.mean(haus)),
        "dtw": float(np.mean(dtw)),
        "edr": float(np.mean(edrs)),
    }


def legality_metrics(
    trajectories: Sequence[np.ndarray],
    is_legal,
    requested_destinations: np.ndarray | None = None,
) -> dict[str, float | None]:
    """Shares of legal transitions, of fully legal trajectories and of destinations reached.

    ``is_legal(a, b)`` answers elementwise whether segment ``b`` may follow ``a``. A one-segment
    trajectory has no transition and counts as fully legal. ``destination_reached_share`` is
    ``None`` when the requested destinations are unknown.
    """
    lengths = np.array([len(t) for t in trajectories], dtype=np.int64)
    ids = np.concatenate(trajectories)
    legal = np.asarray(is_legal(ids[:-1], ids[1:]), dtype=bool)
    # Drop the pairs that straddle two trajectories.
    inside = np.ones(len(legal), dtype=bool)
    inside[np.cumsum(lengths)[:-1] - 1] = False
    legal_inside = legal[inside]
    illegal_per_traj = np.zeros(len(trajectories), dtype=np.int64)
    owner = np.repeat(np.arange(len(trajectories)), np.maximum(lengths - 1, 0))
    np.add.at(illegal_per_traj, owner, (~legal_inside).astype(np.int64))
    reached = None
    if requested_destinations is not None:
        last = np.array([t[-1] for t in trajectories], dtype=np.int64)
        reached = float(np.mean(last == np.asarray(requested_destinations, dtype=np.int64)))
    return {
        "legal_transition_share": float(legal_inside.mean()) if len(legal_inside) else 1.0,
        "fully_legal_share": float(np.mean(illegal_per_traj == 0)),
        "destination_reached_share": reached,
    }


def evaluate_trajectories(
    graph: SegmentGraph,
    real: Trajectories,
    generated: Trajectories,
    *,
    requested_destinations: np.ndarray | None = None,
    grid: ODGrid | None = None,
    throughput: Throughput | None = None,
    progress: bool = False,
) -> dict[str, object]:
    """Every metric of the protocol for ``generated`` against ``real`` (the test set).

    ``requested_destinations`` (one segment id per generated trajectory) enables
    ``destination_reached_share``. ``grid`` defaults to the bounding box of every coordinate of the
    road network. Returns the metric keys of :data:`METRIC_KEYS`, counts, the grid and the
    throughput fields (``None`` when ``throughput`` is not given).
    """
    if len(real) == 0 or len(generated) == 0:
        raise ValueError("both the real and the generated set need at least one trajectory")
    latlon = np.ascontiguousarray(graph.centroid[:, ::-1])
    grid = grid or ODGrid.from_bbox(*graph.bbox())
    result: dict[str, object] = {
        "jsd_distance": histogram_jsd_or_none(
            travel_distances_km(generated.rids, latlon), travel_distances_km(real.rids, latlon)
        ),
        "jsd_radius": histogram_jsd_or_none(
            radii_of_gyration_km(generated.rids, latlon), radii_of_gyration_km(real.rids, latlon)
        ),
        "jsd_duration": histogram_jsd_or_none(
            time_gaps_minutes(generated.times), time_gaps_minutes(real.times)
        ),
    }

    def od_keys(trajectories: Sequence[np.ndarray]) -> np.ndarray:
        ends = np.array([[t[0], t[-1]] for t in trajectories], dtype=np.int64)
        return grid.keys(graph.centroid[ends, 0], graph.centroid[ends, 1])

    real_idx, gen_idx = pair_by_od(od_keys(real.rids), od_keys(generated.rids))
    result.update(
        local_metrics(
            [latlon[real.rids[i]] for i in real_idx],
            [latlon[generated.rids[i]] for i in gen_idx],
            progress,
        )
    )
    result.update(legality_metrics(generated.rids, graph.transition_legal, requested_destinations))
    result.update(
        {
            "num_generated": len(generated),
            "num_real": len(real),
            "num_od_pairs": len(real_idx),
            "grid_origin_lonlat": [grid.lon0, grid.lat0],
            "grid_cell_m": grid.cell_m,
        }
    )
    result.update(throughput.fields() if throughput else dict.fromkeys(THROUGHPUT_KEYS))
    return result


def read_requested_destinations(generated_csv: str | Path) -> np.ndarray | None:
    """The optional ``destination_id`` column of a generated CSV (the requested destinations)."""
    header = pd.read_csv(generated_csv, nrows=0).columns
    if "destination_id" not in header:
        return None
    column = pd.read_csv(generated_csv, usecols=["destination_id"])["destination_id"]
    values = pd.to_numeric(column, errors="coerce")
    if values.isna().any():
        raise UserError(f"{generated_csv}: destination_id must be integer segment ids")
    return values.to_numpy(dtype=np.int64)


def evaluate(
    data_dir: str | Path,
    generated_csv: str | Path,
    out_json: str | Path | None = None,
    *,
    city: str | None = None,
    throughput: Throughput | None = None,
    progress: bool = False,
) -> dict[str, object]:
    """Evaluate a generated HOSER CSV against ``data_dir/test.csv``; write JSON if ``out_json``.

    The grid origin is HOSER's box when ``city`` (or, if ``city`` is None, the name of
    ``data_dir``) is Beijing, Porto or San Francisco, else the road network's bounding box. Test
    trajectories that are invalid on the road network are skipped and counted; a generated file
    with malformed rows or unknown segment ids is a UserError (illegal transitions are measured,
    not rejected). An optional ``destination_id`` column gives the requested destinations.
    """
    data_dir = Path(data_dir)
    graph = read_roadmap(data_dir)
    real = read_trajectories(data_dir / "test.csv", graph)
    generated = read_trajectories(generated_csv, None, on_invalid="error")
    for row, rids in enumerate(generated.rids, start=1):
        if rids.min() < 0 or rids.max() >= graph.num_segments:
            raise UserError(
                f"{generated_csv}: row {row}: unknown segment id (the network has {graph.num_segments})"
            )
    destinations = read_requested_destinations(generated_csv)
    if destinations is not None and len(destinations) != len(generated):
        raise UserError(
            f"{generated_csv}: destination_id has {len(destinations)} values for {len(generated)} rows"
        )
    hoser_key = hoser_city(city or data_dir.name)
    if city is not None and hoser_key is None:
        raise UserError(
            f"unknown HOSER city {city!r}: use one of {', '.join(HOSER_BOUNDING_BOXES)}"
        )
    grid = (
        ODGrid.from_bbox(*HOSER_BOUNDING_BOXES[hoser_key])
        if hoser_key
        else ODGrid.from_bbox(*graph.bbox())
    )
    result = evaluate_trajectories(
        graph,
        real,
        generated,
        requested_destinations=destinations,
        grid=grid,
        throughput=throughput,
        progress=progress,
    )
    result["grid_box"] = f"HOSER {hoser_key}" if hoser_key else "roadmap.geo bounding box"
    result["num_real_skipped"] = int(sum(real.skipped.values()))
    if out_json is not None:
        write_json(out_json, result)
    return result


# ----------------------------------------------------------------------------------------------
# Reporting.


def summarize_runs(results: Sequence[Mapping[str, object]]) -> dict[str, dict[str, float] | None]:
    """Mean and (population) standard deviation of each metric over runs (generated files)."""
    summary: dict[str, dict[str, float] | None] = {}
    for key in METRIC_KEYS:
        values = [float(r[key]) for r in results if r.get(key) is not None]
        summary[key] = (
            {"mean": float(np.mean(values)), "std": float(np.std(values))} if values else None
        )
    return summary


def _cell(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, Mapping):
        return f"{_cell(value['mean'])} ± {_cell(value['std'])}"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def format_markdown_table(
    rows: Mapping[str, Mapping[str, object]],
    columns: Sequence[str] = (*METRIC_KEYS, "trajectories_per_second"),
) -> str:
    """A markdown table, one row per method; cells are numbers, ``None`` or ``{mean, std}``."""
    lines = [
        "| method | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for name, metrics in rows.items():
        lines.append(f"| {name} | " + " | ".join(_cell(metrics.get(c)) for c in columns) + " |")
    return "\n".join(lines)
