"""Procedural rooms: a floor slab, walls with doors and windows, and furniture placed by rules.

A room is rectangular or L-shaped (3-8 m sides), its inner floor starts at (x, z) = (0, 0) and its
floor top is y = 0. Walls (0.1-0.2 m thick, 2.6-3.0 m high, no ceiling) stand outside the inner
footprint. Furniture is built from boxes and vertical frusta in BlockFusion's classes and placed by
rules: beds, sofas, cabinets and floor lamps back against walls (tall pieces never in front of a
window), nightstands with table lamps beside beds, coffee tables in front of sofas, dining tables
with chairs facing them on their sides, desks against walls with one chair, free stools; footprints
never overlap and the strip inside each door stays free. Everything is drawn from one seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from difforge.scene.classes import CLASS_INDEX
from difforge.scene.data import furniture
from difforge.scene.data.layout import Layout, LayoutBox, parse_layout
from difforge.scene.data.primitives import Primitives

FLOOR_THICKNESS = 0.1
# Free strip kept inside each door and the gap between neighbouring footprints (metres).
DOOR_CLEARANCE = 0.9
FOOTPRINT_GAP = 0.05
_PLACEMENT_TRIES = 40


@dataclass
class RoomConfig:
    """Ranges the generator draws from (metres). ``size`` fixes the inner footprint (w, d)."""

    side_range: tuple[float, float] = (3.0, 8.0)
    l_shape_probability: float = 0.35
    wall_height_range: tuple[float, float] = (2.6, 3.0)
    wall_thickness_range: tuple[float, float] = (0.1, 0.2)
    size: tuple[float, float] | None = None


@dataclass
class _Placed:
    cls: str
    parts: list[furniture.Part]  # world frame
    footprint: furniture.Rect


@dataclass
class Room:
    """A generated room: its primitives (analytic SDF) and its layout boxes, in world metres."""

    seed: int
    width: float
    depth: float
    notch: tuple[float, float]  # (x, z) size cut from the L-shape's far corner; (0, 0) = rectangle
    wall_height: float
    wall_thickness: float
    primitives: Primitives
    layout: Layout

    def class_sdf(self, points: torch.Tensor, truncation: float | None = None) -> torch.Tensor:
        """Per-class SDF (N, 9) at world points (N, 3), optionally truncated."""
        return self.primitives.class_sdf(points, truncation)

    def sdf(self, points: torch.Tensor, truncation: float | None = None) -> torch.Tensor:
        """SDF (N,) of the whole room at world points (N, 3), optionally truncated."""
        return self.primitives.sdf(points, truncation)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """World bounds (lo, hi) of all geometry, walls included."""
        lo, hi = self.primitives.bounds()
        return lo.min(axis=0), hi.max(axis=0)

    def to_json(self) -> dict:
        return {
            "seed": self.seed,
            "width": self.width,
            "depth": self.depth,
            "notch": list(self.notch),
            "wall_height": self.wall_height,
            "wall_thickness": self.wall_thickness,
            "primitives": self.primitives.to_json(),
            "layout": self.layout.to_json(),
        }

    @staticmethod
    def from_json(obj: dict) -> Room:
        return Room(
            seed=int(obj["seed"]),
            width=float(obj["width"]),
            depth=float(obj["depth"]),
            notch=(float(obj["notch"][0]), float(obj["notch"][1])),
            wall_height=float(obj["wall_height"]),
            wall_thickness=float(obj["wall_thickness"]),
            primitives=Primitives.from_json(obj["primitives"]),
            layout=parse_layout(obj["layout"], source="room layout"),
        )


def generate_room(seed: int, config: RoomConfig | None = None) -> Room:
    """Draw one room from ``seed`` (same seed and config, same room)."""
    return _RoomBuilder(seed, config or RoomConfig()).build()


class _RoomBuilder:
    def __init__(self, seed: int, config: RoomConfig) -> None:
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.config = config
        self.occupied: list[furniture.Rect] = []
        self.objects: list[_Placed] = []

    # ----- shell -------------------------------------------------------------------------------
    def build(self) -> Room:
        rng, cfg = self.rng, self.config
        if cfg.size is not None:
            self.w, self.d = cfg.size
        else:
            self.w, self.d = (float(v) for v in rng.uniform(*cfg.side_range, size=2))
        self.notch = (0.0, 0.0)
        if (
            cfg.size is None
            and min(self.w, self.d) >= 4.0
            and rng.random() < cfg.l_shape_probability
        ):
            self.notch = (
                float(rng.uniform(1.2, self.w - 2.2)),
                float(rng.uniform(1.2, self.d - 2.2)),
            )
        self.h = float(rng.uniform(*cfg.wall_height_range))
        self.t = float(rng.uniform(*cfg.wall_thickness_range))
        self.polygon = self._polygon()
        self.openings: list[dict] = []
        self._place_openings()
        self._place_furniture()
        room = self._assemble()
        return _mirror(room, flip_x=bool(rng.random() < 0.5), flip_z=bool(rng.random() < 0.5))

    def _polygon(self) -> list[tuple[float, float]]:
        w, d = self.w, self.d
        nw, nd = self.notch
        if nw == 0.0:
            return [(0.0, 0.0), (w, 0.0), (w, d), (0.0, d)]
        return [(0.0, 0.0), (w, 0.0), (w, d - nd), (w - nw, d - nd), (w - nw, d), (0.0, d)]

    def _edges(self) -> list[dict]:
        """Counter-clockwise edges (interior on the left) with unit direction and inward normal."""
        pts = self.polygon
        edges = []
        for i, a in enumerate(pts):
            b = pts[(i + 1) % len(pts)]
            length = math.dist(a, b)
            u = ((b[0] - a[0]) / length, (b[1] - a[1]) / length)
            edges.append({"a": a, "b": b, "u": u, "inward": (-u[1], u[0]), "length": length})
        return edges

    def _wall_boxes(self) -> list[tuple[int, list[float], list[tuple[float, float]]]]:
        """Per edge: (edge index, box params, door spans along the edge) of its wall."""
        t, h = self.t, self.h
        edges = self._edges()
        n = len(edges)
        walls = []
        for i, e in enumerate(edges):
            prev_u, next_u = edges[i - 1]["u"], edges[(i + 1) % n]["u"]
            # Convex corners (left turns) need the wall extended by its thickness to close them.
            ext_a = t if furniture.cross(prev_u, e["u"]) > 0 else 0.0
            ext_b = t if furniture.cross(e["u"], next_u) > 0 else 0.0
            s0, s1 = -ext_a, e["length"] + ext_b
            out = (-e["inward"][0], -e["inward"][1])
            along_mid = (s0 + s1) / 2
            cx = e["a"][0] + e["u"][0] * along_mid + out[0] * t / 2
            cz = e["a"][1] + e["u"][1] * along_mid + out[1] * t / 2
            half_along, half_across = (s1 - s0) / 2, t / 2
            hx = abs(e["u"][0]) * half_along + abs(out[0]) * half_across
            hz = abs(e["u"][1]) * half_along + abs(out[1]) * half_across
            y0 = -FLOOR_THICKNESS
            walls.append((i, [cx, (y0 + h) / 2, cz, hx, (h - y0) / 2, hz]))
        return walls

    def _place_openings(self) -> None:
        rng = self.rng
        edges = self._edges()
        spans: dict[int, list[tuple[float, float]]] = {i: [] for i in range(len(edges))}
        door_edges = [i for i, e in enumerate(edges) if e["length"] >= 1.6]
        if door_edges:
            width = float(rng.uniform(0.8, 1.0))
            self._add_opening(
                "door", int(rng.choice(door_edges)), width, 0.0, float(rng.uniform(2.0, 2.2)), spans
            )
        for _ in range(int(rng.integers(0, 3))):
            edge = int(rng.integers(len(edges)))
            width = float(rng.uniform(0.8, 1.6))
            sill = float(rng.uniform(0.8, 1.0))
            top = min(float(rng.uniform(2.0, 2.2)), self.h - 0.2)
            self._add_opening("window", edge, width, sill, top, spans)

    def _add_opening(
        self,
        kind: str,
        edge_index: int,
        width: float,
        y0: float,
        y1: float,
        spans: dict[int, list[tuple[float, float]]],
    ) -> None:
        edge = self._edges()[edge_index]
        margin = 0.25
        if edge["length"] < width + 2 * margin:
            return
        for _ in range(_PLACEMENT_TRIES):
            s = float(self.rng.uniform(margin, edge["length"] - margin - width))
            if all(s + width + 0.3 <= a or s >= b + 0.3 for a, b in spans[edge_index]):
                break
        else:
            return
        spans[edge_index].append((s, s + width))
        self.openings.append(
            {"kind": kind, "edge": edge_index, "start": s, "end": s + width, "y0": y0, "y1": y1}
        )
        if kind == "door":
            self.occupied.append(self._strip_rect(edge, s, s + width, DOOR_CLEARANCE))

    def _strip_rect(self, edge: dict, s0: float, s1: float, depth: float) -> furniture.Rect:
        """The rectangle from edge positions s0..s1 reaching ``depth`` into the room."""
        ax, az = edge["a"]
        ux, uz = edge["u"]
        nx, nz = edge["inward"]
        xs = [ax + ux * s0, ax + ux * s1, ax + ux * s0 + nx * depth, ax + ux * s1 + nx * depth]
        zs = [az + uz * s0, az + uz * s1, az + uz * s0 + nz * depth, az + uz * s1 + nz * depth]
        return (min(xs), min(zs), max(xs), max(zs))

    def _opening_boxes(self) -> list[list[float]]:
        boxes = []
        edges = self._edges()
        for o in self.openings:
            e = edges[o["edge"]]
            # Through the wall with 5 cm spare on both faces, so no film of wall is left.
            r = self._strip_rect(e, o["start"], o["end"], -self.t - 0.05)
            r = furniture.grow(r, 0.05, e["inward"])
            boxes.append(furniture.box_from_bounds((r[0], o["y0"], r[1]), (r[2], o["y1"], r[3])))
        return boxes

    # ----- furniture ---------------------------------------------------------------------------
    def _place_furniture(self) -> None:
        rng = self.rng
        area = self.w * self.d - self.notch[0] * self.notch[1]
        if area >= 8.0 and rng.random() < 0.55:
            self._place_bed()
        if rng.random() < 0.5:
            self._place_sofa()
        for _ in range(int(rng.integers(0, 4))):
            self._place_cabinet()
        if rng.random() < 0.65:
            if rng.random() < 0.6:
                self._place_dining_table()
            else:
                self._place_desk()
        for _ in range(int(rng.integers(0, 3))):
            self._place_free("stool", 0.4, 0.4, furniture.stool(float(rng.uniform(0.45, 0.7))))
        for _ in range(int(rng.integers(0, 3))):
            self._place_against_wall(
                "lighting",
                0.44,
                0.44,
                furniture.floor_lamp(float(rng.uniform(1.4, 1.8))),
                near_corner=True,
            )

    def _place_bed(self) -> None:
        rng = self.rng
        w, d = float(rng.choice([0.9, 1.4, 1.6, 1.8])), float(rng.uniform(1.95, 2.1))
        placed = self._place_against_wall("bed", w, d, furniture.bed(w, d))
        if placed is None or rng.random() > 0.7:
            return
        edge, s, _ = placed
        for side in (-1, 1):
            centre_s = s + side * (w / 2 + 0.3)
            ns = furniture.cabinet(0.45, 0.4, 0.55)
            if self._try_wall_spot(edge, centre_s, 0.45, 0.4, "cabinet", ns) is not None:
                lamp = [furniture.shift(p, 0.0, 0.55, 0.0) for p in furniture.table_lamp()]
                self._try_wall_spot(edge, centre_s, 0.0, 0.4, "lighting", lamp, check=False)

    def _place_sofa(self) -> None:
        rng = self.rng
        w, d = float(rng.uniform(1.6, 2.4)), float(rng.uniform(0.8, 0.95))
        placed = self._place_against_wall("sofa", w, d, furniture.sofa(w, d))
        if placed is None or rng.random() > 0.6:
            return
        edge, s, _ = placed
        tw, td = w * 0.55, 0.55
        self._try_wall_spot(
            edge, s, tw, td, "table", furniture.table(tw, td, 0.42), depth_offset=d + 0.45
        )

    def _place_cabinet(self) -> None:
        rng = self.rng
        w, d = float(rng.uniform(0.5, 1.4)), float(rng.uniform(0.35, 0.6))
        h = float(rng.choice([rng.uniform(0.7, 1.0), rng.uniform(1.6, 2.1)]))
        self._place_against_wall("cabinet", w, d, furniture.cabinet(w, d, h), height=h)

    def _place_dining_table(self) -> None:
        rng = self.rng
        w, d = float(rng.uniform(0.8, 1.8)), float(rng.uniform(0.75, 1.0))
        round_top = w < 1.05 and rng.random() < 0.5
        if round_top:
            w = d
        top = furniture.round_table(w / 2, 0.74) if round_top else furniture.table(w, d, 0.74)
        chair_d = 0.45
        group = (w + 2 * (chair_d + 0.05), d + 2 * (chair_d + 0.05))
        for _ in range(_PLACEMENT_TRIES):
            cx, cz = self._random_interior_point(group[0] / 2, group[1] / 2)
            k = int(rng.integers(2))
            gw, gd = (group[1], group[0]) if k % 2 else group
            rect = (cx - gw / 2, cz - gd / 2, cx + gw / 2, cz + gd / 2)
            if self._fits(rect):
                break
        else:
            return
        self._add("table", top, cx, cz, k, w, d)
        per_side = 1 if w < 1.3 else 2
        # Chairs face the table: side 0 in front of it (+z locally), side 2 behind, 1/3 at the ends.
        spots = []
        for i in range(per_side):
            along = (i - (per_side - 1) / 2) * (w / per_side)
            spots += [
                (along, d / 2 + chair_d / 2 + 0.02, 2),
                (along, -d / 2 - chair_d / 2 - 0.02, 0),
            ]
        if w >= 1.3:
            spots += [(w / 2 + chair_d / 2 + 0.02, 0.0, 3), (-w / 2 - chair_d / 2 - 0.02, 0.0, 1)]
        for lx, lz, facing in spots:
            if rng.random() < 0.8:
                wx, wz = furniture.rotate(lx, lz, k)
                self._add(
                    "chair", furniture.chair(), cx + wx, cz + wz, (facing + k) % 4, 0.44, chair_d
                )

    def _place_desk(self) -> None:
        rng = self.rng
        w, d = float(rng.uniform(1.0, 1.6)), float(rng.uniform(0.6, 0.75))
        placed = self._place_against_wall("table", w, d, furniture.table(w, d, 0.74))
        if placed is None:
            return
        edge, s, _ = placed
        self._try_wall_spot(
            edge, s, 0.44, 0.45, "chair", furniture.chair(), depth_offset=d + 0.06, facing_wall=True
        )

    # ----- placement helpers -------------------------------------------------------------------
    def _place_against_wall(
        self,
        cls: str,
        w: float,
        d: float,
        parts: list[furniture.Part],
        height: float = 1.0,
        near_corner: bool = False,
    ) -> tuple[int, float, furniture.Rect] | None:
        """Back against a random wall; returns (edge, position along it, footprint) or None."""
        edges = self._edges()
        for _ in range(_PLACEMENT_TRIES):
            i = int(self.rng.integers(len(edges)))
            length = edges[i]["length"]
            if length < w + 0.1:
                continue
            if near_corner:
                s = float(self.rng.choice([w / 2 + 0.05, length - w / 2 - 0.05]))
            else:
                s = float(self.rng.uniform(w / 2 + 0.05, length - w / 2 - 0.05))
            if height > 0.75 and self._blocks_window(i, s - w / 2, s + w / 2):
                continue
            rect = self._try_wall_spot(i, s, w, d, cls, parts)
            if rect is not None:
                return i, s, rect
        return None

    def _try_wall_spot(
        self,
        edge_index: int,
        s: float,
        w: float,
        d: float,
        cls: str,
        parts: list[furniture.Part],
        depth_offset: float = 0.0,
        facing_wall: bool = False,
        check: bool = True,
    ) -> furniture.Rect | None:
        """Put an object at position s along an edge, ``depth_offset`` off the wall, if it fits."""
        e = self._edges()[edge_index]
        k = furniture.facing_index(e["inward"])
        if facing_wall:
            k = (k + 2) % 4
        dist = 0.01 + depth_offset + d / 2
        cx = e["a"][0] + e["u"][0] * s + e["inward"][0] * dist
        cz = e["a"][1] + e["u"][1] * s + e["inward"][1] * dist
        rect = furniture.footprint(cx, cz, w, d, k)
        if check and not self._fits(rect):
            return None
        self._add(cls, parts, cx, cz, k, w, d, occupy=check)
        return rect

    def _place_free(self, cls: str, w: float, d: float, parts: list[furniture.Part]) -> None:
        for _ in range(_PLACEMENT_TRIES):
            cx, cz = self._random_interior_point(w / 2, d / 2)
            k = int(self.rng.integers(4))
            if self._fits(furniture.footprint(cx, cz, w, d, k)):
                self._add(cls, parts, cx, cz, k, w, d)
                return

    def _random_interior_point(self, hx: float, hz: float) -> tuple[float, float]:
        return (
            float(self.rng.uniform(hx, max(hx, self.w - hx))),
            float(self.rng.uniform(hz, max(hz, self.d - hz))),
        )

    def _fits(self, rect: furniture.Rect) -> bool:
        x0, z0, x1, z1 = rect
        if x0 < 0 or z0 < 0 or x1 > self.w or z1 > self.d:
            return False
        nw, nd = self.notch
        if nw and furniture.overlap(rect, (self.w - nw, self.d - nd, self.w, self.d), 0.0):
            return False
        return not any(furniture.overlap(rect, r, FOOTPRINT_GAP) for r in self.occupied)

    def _blocks_window(self, edge_index: int, s0: float, s1: float) -> bool:
        return any(
            o["kind"] == "window" and o["edge"] == edge_index and s0 < o["end"] and s1 > o["start"]
            for o in self.openings
        )

    def _add(
        self,
        cls: str,
        parts: list[furniture.Part],
        cx: float,
        cz: float,
        k: int,
        w: float,
        d: float,
        occupy: bool = True,
    ) -> None:
        rect = furniture.footprint(cx, cz, w, d, k)
        world = [furniture.place_part(p, cx, cz, k) for p in parts]
        self.objects.append(_Placed(cls, world, rect))
        if occupy:
            self.occupied.append(rect)

    # ----- assembly ----------------------------------------------------------------------------
    def _assemble(self) -> Room:
        t = self.t
        boxes: list[tuple[int, list[float]]] = []
        frusta: list[tuple[int, list[float]]] = []
        layout: list[LayoutBox] = []
        wall, floor = CLASS_INDEX["wall"], CLASS_INDEX["floor"]
        nw, nd = self.notch
        slabs = (
            [(-t, -t, self.w + t, self.d + t)]
            if nw == 0.0
            else [
                (-t, -t, self.w + t, self.d - nd + t),
                (-t, self.d - nd, self.w - nw + t, self.d + t),
            ]
        )
        for x0, z0, x1, z1 in slabs:
            boxes.append(
                (floor, furniture.box_from_bounds((x0, -FLOOR_THICKNESS, z0), (x1, 0.0, z1)))
            )
            layout.append(LayoutBox("floor", (x0, -FLOOR_THICKNESS, z0), (x1, 0.0, z1)))
        edges = self._edges()
        for i, params in self._wall_boxes():
            boxes.append((wall, params))
            doors = [
                (o["start"], o["end"])
                for o in self.openings
                if o["edge"] == i and o["kind"] == "door"
            ]
            layout += _wall_layout(params, edges[i], doors)
        for obj in self.objects:
            c = CLASS_INDEX[obj.cls]
            for p in obj.parts:
                (boxes if p.kind == "box" else frusta).append((c, p.params))
            lo, hi = furniture.parts_bounds(obj.parts)
            layout.append(LayoutBox(obj.cls, tuple(lo), tuple(hi)))
        prims = Primitives.from_parts(boxes, frusta, self._opening_boxes())
        lo, hi = prims.bounds()
        extent = Layout(
            tuple(layout),
            (float(lo[:, 0].min()), float(lo[:, 2].min())),
            (float(hi[:, 0].max()), float(hi[:, 2].max())),
        )
        return Room(
            seed=self.seed,
            width=self.w,
            depth=self.d,
            notch=self.notch,
            wall_height=self.h,
            wall_thickness=t,
            primitives=prims,
            layout=extent,
        )


def _wall_layout(
    params: list[float], edge: dict, doors: list[tuple[float, float]]
) -> list[LayoutBox]:
    """A wall's layout boxes: the wall box with its door spans cut out (windows keep the wall)."""
    c, half = np.asarray(params[:3]), np.asarray(params[3:])
    lo, hi = c - half, c + half
    axis = 0 if abs(edge["u"][0]) > 0.5 else 2
    sign = edge["u"][0] if axis == 0 else edge["u"][1]
    origin = edge["a"][0] if axis == 0 else edge["a"][1]
    # Door spans in world coordinates along the wall's axis.
    cuts = sorted(
        (min(origin + sign * a, origin + sign * b), max(origin + sign * a, origin + sign * b))
        for a, b in doors
    )
    pieces, start = [], lo[axis]
    for a, b in cuts:
        if a > start:
            pieces.append((start, a))
        start = max(start, b)
    if hi[axis] > start:
        pieces.append((start, hi[axis]))
    boxes = []
    for a, b in pieces:
        p_lo, p_hi = lo.copy(), hi.copy()
        p_lo[axis], p_hi[axis] = a, b
        boxes.append(LayoutBox("wall", tuple(p_lo.tolist()), tuple(p_hi.tolist())))
    return boxes


def _mirror(room: Room, flip_x: bool, flip_z: bool) -> Room:
    """Mirror a room inside its own inner footprint, so L-notches and doors land on every side."""
    if not (flip_x or flip_z):
        return room
    prims = room.primitives
    boxes, frusta, openings = prims.boxes.copy(), prims.frusta.copy(), prims.openings.copy()
    boxes_layout = list(room.layout.boxes)
    for axis, size, flip in ((0, room.width, flip_x), (2, room.depth, flip_z)):
        if not flip:
            continue
        for arr in (boxes, frusta, openings):
            arr[:, axis] = size - arr[:, axis]
        boxes_layout = [_mirror_box(b, axis, size) for b in boxes_layout]
    lo, hi = room.layout.extent_min, room.layout.extent_max
    ext_lo = [lo[0], lo[1]]
    ext_hi = [hi[0], hi[1]]
    for i, (size, flip) in enumerate(((room.width, flip_x), (room.depth, flip_z))):
        if flip:
            ext_lo[i], ext_hi[i] = size - hi[i], size - lo[i]
    return Room(
        seed=room.seed,
        width=room.width,
        depth=room.depth,
        notch=room.notch,
        wall_height=room.wall_height,
        wall_thickness=room.wall_thickness,
        primitives=Primitives(boxes, prims.box_class, frusta, prims.frustum_class, openings),
        layout=Layout(tuple(boxes_layout), (ext_lo[0], ext_lo[1]), (ext_hi[0], ext_hi[1])),
    )


def _mirror_box(box: LayoutBox, axis: int, size: float) -> LayoutBox:
    lo, hi = list(box.min), list(box.max)
    lo[axis], hi[axis] = size - box.max[axis], size - box.min[axis]
    return LayoutBox(box.cls, (lo[0], lo[1], lo[2]), (hi[0], hi[1], hi[2]))
