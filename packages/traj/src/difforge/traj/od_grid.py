"""HOSER's origin-destination grid: which generated trip is compared with which real one.

Local metrics pair trips whose origins and destinations fall in the same 200 m cells; the grid is
laid out as HOSER's ``MapManager`` lays it out (see :mod:`difforge.traj.evaluate`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

GRID_CELL_M = 200.0

# HOSER evaluator boxes (lon_min, lat_min, lon_max, lat_max), from its map manager.
HOSER_BOUNDING_BOXES: dict[str, tuple[float, float, float, float]] = {
    "beijing": (116.25, 39.79, 116.51, 40.00),
    "porto": (-8.6890, 41.1406, -8.5577, 41.1855),
    "san_francisco": (-122.5123, 37.7083, -122.3617, 37.8309),
}


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
