"""Furniture templates and the plane geometry of placing them, for the procedural rooms.

A template is a list of :class:`Part` primitives (boxes and vertical frusta) in the object's local
frame: front towards +z, centred in x and z, standing on y = 0. :func:`place_part` turns a part by
quarter turns and moves it into the room; footprints are axis-aligned :data:`Rect` rectangles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Thinnest part (table tops, legs, lamp poles): a 5 cm sample grid must still resolve every part.
MIN_PART = 0.06

# (x0, z0, x1, z1) in metres.
Rect = tuple[float, float, float, float]


@dataclass
class Part:
    """One primitive in an object's local frame: facing +z, centred on x = z = 0, y up from 0.
    ``kind`` "box": params = centre xyz + half sizes xyz; "frustum": centre xyz, r_bottom, r_top,
    half height."""

    kind: str
    params: list[float]


# ----- object templates (local frame: front towards +z, centred in xz, standing on y = 0) -------
def box(x0: float, y0: float, z0: float, x1: float, y1: float, z1: float) -> Part:
    return Part("box", box_from_bounds((x0, y0, z0), (x1, y1, z1)))


def frustum(x: float, z: float, y0: float, y1: float, r_bottom: float, r_top: float) -> Part:
    return Part("frustum", [x, (y0 + y1) / 2, z, r_bottom, r_top, (y1 - y0) / 2])


def bed(w: float, d: float) -> list[Part]:
    return [
        box(-w / 2, 0.0, -d / 2, w / 2, 0.35, d / 2),
        box(-w / 2 + 0.03, 0.35, -d / 2 + 0.06, w / 2 - 0.03, 0.55, d / 2 - 0.03),
        box(-w / 2, 0.0, -d / 2, w / 2, 1.0, -d / 2 + 0.06),
        box(-w / 2 + 0.1, 0.55, -d / 2 + 0.1, w / 2 - 0.1, 0.66, -d / 2 + 0.45),
    ]


def table(w: float, d: float, h: float) -> list[Part]:
    t = MIN_PART
    legs = [
        box(sx * (w / 2 - 0.05) - t / 2, 0.0, sz * (d / 2 - 0.05) - t / 2,
             sx * (w / 2 - 0.05) + t / 2, h - t, sz * (d / 2 - 0.05) + t / 2)
        for sx in (-1, 1)
        for sz in (-1, 1)
    ]  # fmt: skip
    return [box(-w / 2, h - t, -d / 2, w / 2, h, d / 2), *legs]


def round_table(r: float, h: float) -> list[Part]:
    t = MIN_PART
    return [
        frustum(0.0, 0.0, h - t, h, r, r),
        frustum(0.0, 0.0, t, h - t, 0.05, 0.05),
        frustum(0.0, 0.0, 0.0, t, 0.25, 0.22),
    ]


def chair() -> list[Part]:
    w, d, seat, t = 0.44, 0.44, 0.45, MIN_PART
    legs = [
        box(sx * (w - t) / 2 - t / 2, 0.0, sz * (d - t) / 2 - t / 2,
             sx * (w - t) / 2 + t / 2, seat - t, sz * (d - t) / 2 + t / 2)
        for sx in (-1, 1)
        for sz in (-1, 1)
    ]  # fmt: skip
    return [
        box(-w / 2, seat - t, -d / 2, w / 2, seat, d / 2),
        box(-w / 2, seat, -d / 2, w / 2, 0.92, -d / 2 + t),
        *legs,
    ]


def sofa(w: float, d: float) -> list[Part]:
    return [
        box(-w / 2, 0.0, -d / 2, w / 2, 0.42, d / 2),
        box(-w / 2, 0.0, -d / 2, w / 2, 0.82, -d / 2 + 0.22),
        box(-w / 2, 0.0, -d / 2, -w / 2 + 0.16, 0.62, d / 2),
        box(w / 2 - 0.16, 0.0, -d / 2, w / 2, 0.62, d / 2),
    ]


def cabinet(w: float, d: float, h: float) -> list[Part]:
    # A recessed plinth under the body, as real cabinets have.
    return [
        box(-w / 2 + 0.03, 0.0, -d / 2, w / 2 - 0.03, 0.08, d / 2 - 0.06),
        box(-w / 2, 0.08, -d / 2, w / 2, h, d / 2),
    ]


def floor_lamp(h: float) -> list[Part]:
    pole = MIN_PART / 2
    return [
        frustum(0.0, 0.0, 0.0, MIN_PART, 0.15, 0.14),
        frustum(0.0, 0.0, MIN_PART, h - 0.28, pole, pole),
        frustum(0.0, 0.0, h - 0.3, h, 0.22, 0.13),
    ]


def table_lamp() -> list[Part]:
    pole = MIN_PART / 2
    return [
        frustum(0.0, 0.0, 0.0, MIN_PART, 0.09, 0.08),
        frustum(0.0, 0.0, MIN_PART, 0.24, pole, pole),
        frustum(0.0, 0.0, 0.22, 0.42, 0.14, 0.09),
    ]


def stool(h: float) -> list[Part]:
    leg = MIN_PART / 2
    legs = [
        frustum(0.11 * math.cos(a), 0.11 * math.sin(a), 0.0, h - MIN_PART, leg, leg)
        for a in (math.pi / 4, 3 * math.pi / 4, 5 * math.pi / 4, 7 * math.pi / 4)
    ]
    return [frustum(0.0, 0.0, h - MIN_PART, h, 0.18, 0.18), *legs]


# ----- geometry helpers --------------------------------------------------------------------------
def box_from_bounds(lo: tuple[float, float, float], hi: tuple[float, float, float]) -> list[float]:
    return [
        (lo[0] + hi[0]) / 2,
        (lo[1] + hi[1]) / 2,
        (lo[2] + hi[2]) / 2,
        (hi[0] - lo[0]) / 2,
        (hi[1] - lo[1]) / 2,
        (hi[2] - lo[2]) / 2,
    ]


def cross(a: tuple[float, float], b: tuple[float, float]) -> float:
    return a[0] * b[1] - a[1] * b[0]


def rotate(x: float, z: float, k: int) -> tuple[float, float]:
    """Rotate (x, z) by k quarter turns so that local +z maps onto facing direction k."""
    for _ in range(k % 4):
        x, z = z, -x
    return x, z


def facing_index(direction: tuple[float, float]) -> int:
    """Quarter turns k with rotate(0, 1, k) == direction."""
    for k in range(4):
        x, z = rotate(0.0, 1.0, k)
        if abs(x - direction[0]) < 1e-9 and abs(z - direction[1]) < 1e-9:
            return k
    raise ValueError(f"direction {direction} is not axis-aligned")


def footprint(cx: float, cz: float, w: float, d: float, k: int) -> Rect:
    hx, hz = (d / 2, w / 2) if k % 2 else (w / 2, d / 2)
    return (cx - hx, cz - hz, cx + hx, cz + hz)


def place_part(part: Part, cx: float, cz: float, k: int) -> Part:
    p = list(part.params)
    x, z = rotate(p[0], p[2], k)
    p[0], p[2] = cx + x, cz + z
    if part.kind == "box" and k % 2:
        p[3], p[5] = p[5], p[3]
    return Part(part.kind, p)


def shift(part: Part, dx: float, dy: float, dz: float) -> Part:
    p = list(part.params)
    p[0] += dx
    p[1] += dy
    p[2] += dz
    return Part(part.kind, p)


def parts_bounds(parts: list[Part]) -> tuple[list[float], list[float]]:
    lo = np.full(3, np.inf)
    hi = np.full(3, -np.inf)
    for part in parts:
        p = np.asarray(part.params)
        if part.kind == "box":
            half = p[3:6]
        else:
            r = max(p[3], p[4])
            half = np.array([r, p[5], r])
        lo = np.minimum(lo, p[:3] - half)
        hi = np.maximum(hi, p[:3] + half)
    return lo.tolist(), hi.tolist()


def overlap(a: Rect, b: Rect, gap: float) -> bool:
    return a[0] < b[2] + gap and b[0] < a[2] + gap and a[1] < b[3] + gap and b[1] < a[3] + gap


def grow(rect: Rect, amount: float, direction: tuple[float, float]) -> Rect:
    """Extend a rectangle by ``amount`` towards ``direction`` (an axis-aligned unit vector)."""
    x0, z0, x1, z1 = rect
    dx, dz = direction
    return (
        x0 + min(dx, 0) * amount,
        z0 + min(dz, 0) * amount,
        x1 + max(dx, 0) * amount,
        z1 + max(dz, 0) * amount,
    )
