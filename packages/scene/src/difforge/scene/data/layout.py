"""Layouts: class-labelled boxes in metres, their JSON files and their 2D rasters.

A layout is what a user draws to steer generation and what each procedural block carries: a list of
axis-aligned boxes, each with one of the nine classes, inside an xz extent (one block: 3.2 x 3.2 m,
or a whole scene). Its raster has one binary channel per class on a 0.1 m grid: a cell is set when
its centre lies inside the xz footprint of a box of that class (BlockFusion's 9 x 32 x 32 per block).

JSON file (``difforge-scene-layout/1``)::

    {"format": "difforge-scene-layout/1",
     "extent": {"min": [0.0, 0.0], "max": [3.2, 3.2]},      # xz, metres
     "boxes": [{"class": "bed", "min": [0.2, 0.0, 0.1], "max": [1.6, 0.9, 2.2]}, ...]}

Boxes are [x, y, z] in metres, y up, floor top at y = 0; each must lie inside the extent and the
block's height range.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass

import numpy as np

from difforge.core.errors import UserError
from difforge.core.io import write_json
from difforge.scene.classes import CLASSES, NUM_CLASSES, class_index
from difforge.scene.data.geometry import BLOCK_SIZE, BLOCK_Y_MAX, BLOCK_Y_MIN, LAYOUT_CELL

LAYOUT_FORMAT = "difforge-scene-layout/1"
# Coordinates in files are compared with this slack, so 3.2000000001 from a float round trip passes.
_TOLERANCE = 1e-6


@dataclass(frozen=True)
class LayoutBox:
    """One class-labelled axis-aligned box: min and max corners [x, y, z] in metres."""

    cls: str
    min: tuple[float, float, float]
    max: tuple[float, float, float]

    def clipped(self, lo: np.ndarray, hi: np.ndarray) -> LayoutBox | None:
        """This box cut to the xz rectangle [lo, hi] (2-vectors), or None if nothing is left."""
        x0, x1 = max(self.min[0], lo[0]), min(self.max[0], hi[0])
        z0, z1 = max(self.min[2], lo[1]), min(self.max[2], hi[1])
        if x1 <= x0 or z1 <= z0:
            return None
        return LayoutBox(self.cls, (x0, self.min[1], z0), (x1, self.max[1], z1))

    def shifted(self, dx: float, dz: float) -> LayoutBox:
        return LayoutBox(
            self.cls,
            (self.min[0] + dx, self.min[1], self.min[2] + dz),
            (self.max[0] + dx, self.max[1], self.max[2] + dz),
        )


@dataclass(frozen=True)
class Layout:
    """Boxes inside an xz extent (min and max corners, metres)."""

    boxes: tuple[LayoutBox, ...]
    extent_min: tuple[float, float] = (0.0, 0.0)
    extent_max: tuple[float, float] = (BLOCK_SIZE, BLOCK_SIZE)

    def crop(
        self, x: float, z: float, size: float = BLOCK_SIZE, size_z: float | None = None
    ) -> Layout:
        """The part inside [x, x+size] x [z, z+size_z] (default a square), in its own frame."""
        size_z = size if size_z is None else size_z
        lo, hi = np.array([x, z]), np.array([x + size, z + size_z])
        boxes = (b.clipped(lo, hi) for b in self.boxes)
        return Layout(
            tuple(b.shifted(-x, -z) for b in boxes if b is not None), (0.0, 0.0), (size, size_z)
        )

    def to_json(self) -> dict:
        return {
            "format": LAYOUT_FORMAT,
            "extent": {"min": list(self.extent_min), "max": list(self.extent_max)},
            "boxes": [{"class": b.cls, "min": list(b.min), "max": list(b.max)} for b in self.boxes],
        }


def rasterize_layout(layout: Layout, cell: float = LAYOUT_CELL) -> np.ndarray:
    """Binary raster (NUM_CLASSES, nx, nz) uint8 of the layout's extent, index [class, ix, iz]."""
    lo = np.asarray(layout.extent_min, dtype=np.float64)
    size = np.asarray(layout.extent_max, dtype=np.float64) - lo
    nx, nz = (round(s / cell) for s in size)
    raster = np.zeros((NUM_CLASSES, nx, nz), dtype=np.uint8)
    if not layout.boxes:
        return raster
    cx = lo[0] + (np.arange(nx) + 0.5) * cell
    cz = lo[1] + (np.arange(nz) + 0.5) * cell
    mins = np.array([b.min for b in layout.boxes])
    maxs = np.array([b.max for b in layout.boxes])
    in_x = (cx[None] >= mins[:, 0:1]) & (cx[None] <= maxs[:, 0:1])  # (B, nx)
    in_z = (cz[None] >= mins[:, 2:3]) & (cz[None] <= maxs[:, 2:3])  # (B, nz)
    classes = np.array([class_index(b.cls) for b in layout.boxes])
    for c in np.unique(classes):
        sel = classes == c
        raster[c] = (
            np.einsum("bi,bj->ij", in_x[sel].astype(np.int32), in_z[sel].astype(np.int32)) > 0
        )
    return raster


def downsample_raster(raster: np.ndarray, factor: int) -> np.ndarray:
    """Max-pool a (C, n, n) raster by ``factor`` (0.1 m -> 0.2 m cells for 16 x 16 latents)."""
    c, nx, nz = raster.shape
    if nx % factor or nz % factor:
        raise ValueError(f"raster size {nx}x{nz} is not divisible by {factor}")
    return raster.reshape(c, nx // factor, factor, nz // factor, factor).max(axis=(2, 4))


def read_layout(path: str | os.PathLike[str]) -> Layout:
    """Read and validate a layout JSON file (ours, or a 3D-FRONT house: ``data.front``); every
    problem is a one-line UserError."""
    try:
        with open(path, encoding="utf-8") as fh:
            obj = json.load(fh)
    except FileNotFoundError:
        raise UserError(f"layout file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"layout file {path} is not valid JSON: {exc}") from None
    except RecursionError:
        raise UserError(f"layout file {path} is nested too deeply to be a layout") from None
    from difforge.scene.data.front import is_front_scene, parse_front  # imports this module

    if is_front_scene(obj):
        return parse_front(obj, source=str(path))
    return parse_layout(obj, source=str(path))


def write_layout(path: str | os.PathLike[str], layout: Layout) -> None:
    """Write a layout JSON file atomically (validated first, so a bad layout never lands)."""
    parse_layout(layout.to_json(), source=str(path))
    write_json(path, layout.to_json())


def parse_layout(obj: object, source: str = "layout") -> Layout:
    """Validate a decoded layout JSON object and build the Layout."""
    if not isinstance(obj, dict):
        raise UserError(f"{source}: a layout must be a JSON object")
    if obj.get("format") != LAYOUT_FORMAT:
        raise UserError(f"{source}: 'format' must be {LAYOUT_FORMAT!r}, got {obj.get('format')!r}")
    extent = obj.get("extent", {"min": [0.0, 0.0], "max": [BLOCK_SIZE, BLOCK_SIZE]})
    if not isinstance(extent, dict):
        raise UserError(f"{source}: 'extent' must be an object with 'min' and 'max'")
    ext_min = _numbers(extent.get("min"), 2, f"{source}: extent 'min'")
    ext_max = _numbers(extent.get("max"), 2, f"{source}: extent 'max'")
    if any(hi <= lo for lo, hi in zip(ext_min, ext_max)):
        raise UserError(f"{source}: extent max {ext_max} must exceed min {ext_min}")
    boxes = obj.get("boxes")
    if not isinstance(boxes, list):
        raise UserError(f"{source}: 'boxes' must be a list")
    return Layout(
        tuple(_parse_box(b, i, ext_min, ext_max, source) for i, b in enumerate(boxes)),
        (ext_min[0], ext_min[1]),
        (ext_max[0], ext_max[1]),
    )


def _parse_box(
    obj: object, i: int, ext_min: list[float], ext_max: list[float], source: str
) -> LayoutBox:
    where = f"{source}: box {i}"
    if not isinstance(obj, dict):
        raise UserError(f"{where} must be an object with 'class', 'min' and 'max'")
    name = obj.get("class")
    if not isinstance(name, str) or name not in CLASSES:
        raise UserError(f"{where} has unknown class {name!r}; known classes: {', '.join(CLASSES)}")
    lo = _numbers(obj.get("min"), 3, f"{where} 'min'")
    hi = _numbers(obj.get("max"), 3, f"{where} 'max'")
    if any(h <= lo_ for lo_, h in zip(lo, hi)):
        raise UserError(f"{where} ({name}) is empty: max {hi} must exceed min {lo} on every axis")
    bound_lo = (ext_min[0], BLOCK_Y_MIN, ext_min[1])
    bound_hi = (ext_max[0], BLOCK_Y_MAX, ext_max[1])
    if any(v < b - _TOLERANCE for v, b in zip(lo, bound_lo)) or any(
        v > b + _TOLERANCE for v, b in zip(hi, bound_hi)
    ):
        raise UserError(
            f"{where} ({name}) spans {lo}..{hi}, outside the block "
            f"x,z in [{ext_min[0]}, {ext_max[0]}] x [{ext_min[1]}, {ext_max[1]}], "
            f"y in [{BLOCK_Y_MIN}, {BLOCK_Y_MAX:.2f}] m"
        )
    return LayoutBox(name, (lo[0], lo[1], lo[2]), (hi[0], hi[1], hi[2]))


def _numbers(value: object, n: int, what: str) -> list[float]:
    if (
        not isinstance(value, list)
        or len(value) != n
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        or not all(math.isfinite(v) for v in value)
    ):
        raise UserError(f"{what} must be a list of {n} finite numbers, got {value!r}")
    return [float(v) for v in value]
