"""Users' scenes in 3D-FRONT's JSON layout format, read as a :class:`Layout`.

A 3D-FRONT house file lists ``furniture`` (``uid``, ``category``, and the object's size in metres
as ``bbox`` [x, y, z], which 3D-FRONT's tools take from the 3D-FUTURE model), architectural
``mesh`` entries (``uid``, ``type`` such as ``Floor`` or ``WallInner``, flat ``xyz`` vertices) and
``scene.room[*].children`` placing them (``ref`` to a uid, ``pos``, ``rot`` quaternion [x, y, z,
w], ``scale``), y up, metres. Each placed object becomes an axis-aligned box: furniture from its
size (origin at the bottom centre, as 3D-FUTURE models are stored; rotated about y), floors and
walls from their placed vertices. Categories map to the nine classes by keyword; others are
skipped. The layout's extent is the boxes' x-z bounds.
"""

from __future__ import annotations

import math

import numpy as np

from difforge.core.errors import UserError
from difforge.scene.data.layout import Layout, LayoutBox

# Category keywords -> class (first match wins; "table" after "stool"/"chair" so that a
# "dining chair" is a chair).
_CATEGORY_CLASSES = (
    ("bed", "bed"),
    ("sofa", "sofa"),
    ("stool", "stool"),
    ("chair", "chair"),
    ("lamp", "lighting"),
    ("light", "lighting"),
    ("chandelier", "lighting"),
    ("table", "table"),
    ("desk", "table"),
    ("cabinet", "cabinet"),
    ("shelf", "cabinet"),
    ("wardrobe", "cabinet"),
    ("nightstand", "cabinet"),
    ("drawer", "cabinet"),
    ("bookcase", "cabinet"),
)
_MESH_CLASSES = {"floor": "floor", "wallinner": "wall", "wallouter": "wall", "wall": "wall"}
# Floors are stored as flat surfaces; layouts give them this thickness below the surface.
_FLOOR_THICKNESS = 0.1


def is_front_scene(obj: object) -> bool:
    return isinstance(obj, dict) and "scene" in obj and ("furniture" in obj or "mesh" in obj)


def _vector(value: object, n: int, what: str, source: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64).reshape(n)
    except (TypeError, ValueError):
        raise UserError(f"{source}: {what} must be {n} numbers, got {value!r}"[:200]) from None
    if not np.isfinite(array).all():
        raise UserError(f"{source}: {what} must be finite numbers")
    return array


def _furniture_class(category: str) -> str | None:
    text = category.lower()
    return next((cls for key, cls in _CATEGORY_CLASSES if key in text), None)


def _yaw(rot: np.ndarray) -> float:
    """Rotation about y (radians) of a quaternion [x, y, z, w] (3D-FRONT places objects upright)."""
    return 2.0 * math.atan2(rot[1], rot[3])


def parse_front(obj: object, source: str = "3D-FRONT scene") -> Layout:
    """The boxes of a decoded 3D-FRONT house JSON; a malformed file is a one-line UserError."""
    if not is_front_scene(obj):
        raise UserError(f"{source}: not a 3D-FRONT scene (needs 'scene' and 'furniture'/'mesh')")
    try:
        furniture = {f["uid"]: f for f in obj.get("furniture", [])}
        meshes = {m["uid"]: m for m in obj.get("mesh", [])}
        children = [c for room in obj["scene"]["room"] for c in room.get("children", [])]
    except (KeyError, TypeError, AttributeError):
        raise UserError(f"{source}: 'furniture', 'mesh' and 'scene.room' are malformed") from None
    boxes = []
    for child in children:
        ref = child.get("ref") if isinstance(child, dict) else None
        pos = _vector(child.get("pos", [0, 0, 0]), 3, f"pos of {ref}", source)
        scale = _vector(child.get("scale", [1, 1, 1]), 3, f"scale of {ref}", source)
        rot = _vector(child.get("rot", [0, 0, 0, 1]), 4, f"rot of {ref}", source)
        if ref in furniture:
            item = furniture[ref]
            cls = _furniture_class(str(item.get("category") or item.get("title") or ""))
            if cls is None:
                continue
            if "bbox" not in item:
                raise UserError(
                    f"{source}: furniture {ref} has no 'bbox' (its size in metres; take it from "
                    "the 3D-FUTURE model)"
                )
            size = _vector(item["bbox"], 3, f"bbox of {ref}", source) * np.abs(scale)
            yaw = _yaw(rot)
            c, s = abs(math.cos(yaw)), abs(math.sin(yaw))
            half = np.array([c * size[0] + s * size[2], 0.0, s * size[0] + c * size[2]]) / 2
            lo = pos - half
            hi = pos + half + np.array([0.0, size[1], 0.0])
        elif ref in meshes:
            mesh = meshes[ref]
            cls = _MESH_CLASSES.get(str(mesh.get("type", "")).lower())
            if cls is None:
                continue
            try:
                xyz = np.asarray(mesh["xyz"], dtype=np.float64).reshape(-1, 3)
            except (KeyError, TypeError, ValueError):
                raise UserError(f"{source}: mesh {ref} has no valid 'xyz'") from None
            if len(xyz) == 0 or not np.isfinite(xyz).all():
                raise UserError(f"{source}: mesh {ref} has no valid 'xyz'")
            yaw = _yaw(rot)
            turn = np.array(
                [[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]]
            )
            placed = (xyz * scale) @ turn.T + pos
            lo, hi = placed.min(axis=0), placed.max(axis=0)
            if cls == "floor" and hi[1] - lo[1] < _FLOOR_THICKNESS:
                lo = lo - np.array([0.0, _FLOOR_THICKNESS, 0.0])
        else:
            continue
        boxes.append(LayoutBox(cls, tuple(map(float, lo)), tuple(map(float, hi))))
    if not boxes:
        raise UserError(f"{source}: no floor, wall or furniture of the nine classes to lay out")
    lo = np.min([b.min for b in boxes], axis=0)
    hi = np.max([b.max for b in boxes], axis=0)
    return Layout(tuple(boxes), (float(lo[0]), float(lo[2])), (float(hi[0]), float(hi[2])))
