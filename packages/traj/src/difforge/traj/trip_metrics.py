"""The distances and per-trip quantities of the HOSER protocol (:mod:`difforge.traj.evaluate`
defines the protocol and says where each formula follows HOSER and where it departs).

Points are (lat, lon) in degrees, as the ``hausdorff`` package reads them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from difforge.core.metrics import histogram_jsd

EARTH_RADIUS_KM = 6378.0  # the `hausdorff` package's haversine (Hausdorff, DTW, distance, radius)
EDR_EARTH_RADIUS_M = 6378137.0  # the great-circle distance HOSER's EDR uses
EDR_EPS_M = 100.0
NUM_BINS = 100


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
    :mod:`difforge.traj.evaluate`).
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
    """HOSER's JSD (edges ``linspace(0, max real, 100)`` + inf), or ``None`` if a side is empty."""
    if len(generated) == 0 or len(real) == 0:
        return None
    return histogram_jsd(generated, real, bins=NUM_BINS, overflow=True)


def local_metrics(
    real_latlon: Sequence[np.ndarray],
    generated_latlon: Sequence[np.ndarray],
    progress: bool = False,
) -> dict[str, float | None]:
    """Mean Hausdorff (km), FastDTW (km) and EDR over already paired centroid sequences;
    ``progress`` shows a bar where the command line would (a terminal, not ``--quiet``)."""
    from difforge.core.cli import progress as progress_bar

    if len(real_latlon) == 0:
        return {"hausdorff_km": None, "dtw": None, "edr": None}
    haus, dtw, edrs = [], [], []
    pairs = zip(real_latlon, generated_latlon)
    bar = progress_bar(
        pairs, total=len(real_latlon), desc="OD pairs", disable=None if progress else True
    )
    for real, gen in bar:
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
