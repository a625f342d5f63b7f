"""Analytic signed distances of the primitives procedural rooms are made of.

Two primitive kinds cover every object: axis-aligned boxes and vertical frusta (a frustum with equal
radii is a cylinder, with unequal radii a cone). Each primitive carries a class. Openings (doors,
windows) are boxes subtracted from the wall class only.

Distances are exact for each primitive (Inigo Quilez's box and capped-cone formulas). The union of a
class is the minimum over its primitives: exact outside, a bound inside; a wall with openings is
``max(wall, -opening)``, again a bound. All functions are vectorised torch, so they run on the
points' device and are differentiable (normals by autograd) for tri-plane fitting.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from difforge.scene.classes import NUM_CLASSES, WALL

# Added under square roots so gradients stay finite on symmetry axes and box faces (1e-6 m bias).
_EPS = 1e-12
# Points per evaluation chunk: bounds memory at chunk x primitives floats.
_CHUNK = 65536
# Tile edge (metres) for truncated evaluation: primitives are culled per tile.
_TILE = 0.8


def box_sdf(points: torch.Tensor, centre: torch.Tensor, half: torch.Tensor) -> torch.Tensor:
    """Exact SDF of axis-aligned boxes. points (N, 3), centre/half (M, 3) -> (N, M)."""
    q = (points[:, None, :] - centre[None]).abs() - half[None]
    outside = (q.clamp(min=0.0).square().sum(-1) + _EPS).sqrt()
    inside = q.amax(-1).clamp(max=0.0)
    return outside + inside


def frustum_sdf(
    points: torch.Tensor,
    centre: torch.Tensor,
    r_bottom: torch.Tensor,
    r_top: torch.Tensor,
    half_height: torch.Tensor,
) -> torch.Tensor:
    """Exact SDF of vertical capped cones / cylinders. points (N, 3), centre (M, 3), radii (M,)."""
    rel = points[:, None, :] - centre[None]
    qx = (rel[..., 0].square() + rel[..., 2].square() + _EPS).sqrt()
    qy = rel[..., 1]
    rb, rt, h = r_bottom[None], r_top[None], half_height[None]
    # Distance to the caps (ca) and to the slanted side (cb), as in the capped-cone formula.
    ca_x = qx - torch.minimum(qx, torch.where(qy < 0, rb, rt))
    ca_y = qy.abs() - h
    k2x, k2y = rt - rb, 2.0 * h
    t = (((rt - qx) * k2x + (h - qy) * k2y) / (k2x.square() + k2y.square())).clamp(0.0, 1.0)
    cb_x = qx - rt + k2x * t
    cb_y = qy - h + k2y * t
    sign = torch.where((cb_x < 0) & (ca_y < 0), -1.0, 1.0).to(points.dtype)
    dist2 = torch.minimum(ca_x.square() + ca_y.square(), cb_x.square() + cb_y.square())
    return sign * (dist2 + _EPS).sqrt()


def _as_rows(values: list[list[float]], width: int) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1, width)


@dataclass
class Primitives:
    """Boxes and frusta with classes, plus openings cut from walls (all float64 numpy, metres).

    boxes: (Nb, 6) centre xyz + half extents xyz; box_class: (Nb,)
    frusta: (Nf, 6) centre xyz, bottom radius, top radius, half height; frustum_class: (Nf,)
    openings: (No, 6) centre xyz + half extents xyz (subtracted from the wall class)
    """

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 6)))
    box_class: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    frusta: np.ndarray = field(default_factory=lambda: np.zeros((0, 6)))
    frustum_class: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    openings: np.ndarray = field(default_factory=lambda: np.zeros((0, 6)))

    @staticmethod
    def from_parts(
        boxes: list[tuple[int, list[float]]],
        frusta: list[tuple[int, list[float]]],
        openings: list[list[float]],
    ) -> Primitives:
        """Build from lists of (class, params) pairs as a room generator produces them."""
        return Primitives(
            boxes=_as_rows([p for _, p in boxes], 6),
            box_class=np.asarray([c for c, _ in boxes], dtype=np.int64),
            frusta=_as_rows([p for _, p in frusta], 6),
            frustum_class=np.asarray([c for c, _ in frusta], dtype=np.int64),
            openings=_as_rows(openings, 6),
        )

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned bounds (lo, hi) of every primitive, boxes first then frusta: (N, 3) each."""
        b_lo = self.boxes[:, :3] - self.boxes[:, 3:]
        b_hi = self.boxes[:, :3] + self.boxes[:, 3:]
        radius = np.maximum(self.frusta[:, 3], self.frusta[:, 4])
        f_half = np.stack([radius, self.frusta[:, 5], radius], axis=1)
        f_lo = self.frusta[:, :3] - f_half
        f_hi = self.frusta[:, :3] + f_half
        return np.concatenate([b_lo, f_lo]), np.concatenate([b_hi, f_hi])

    def cull(self, lo: np.ndarray, hi: np.ndarray, margin: float) -> Primitives:
        """Keep primitives whose bounds come within ``margin`` of the box [lo, hi].

        A dropped primitive is farther than ``margin`` from every point of the box, so the culled
        set gives the same SDF wherever it is below ``margin``: exact once truncated at ``margin``.
        """
        p_lo, p_hi = self.bounds()
        gap = np.maximum(np.maximum(lo - margin - p_hi, p_lo - hi - margin), 0.0)
        keep = ~(gap > 0).any(axis=1)
        nb = len(self.boxes)
        o_lo = self.openings[:, :3] - self.openings[:, 3:]
        o_hi = self.openings[:, :3] + self.openings[:, 3:]
        keep_open = ~((o_lo > hi + margin) | (o_hi < lo - margin)).any(axis=1)
        return Primitives(
            boxes=self.boxes[keep[:nb]],
            box_class=self.box_class[keep[:nb]],
            frusta=self.frusta[keep[nb:]],
            frustum_class=self.frustum_class[keep[nb:]],
            openings=self.openings[keep_open],
        )

    def class_sdf(self, points: torch.Tensor, truncation: float | None = None) -> torch.Tensor:
        """Per-class SDF (N, NUM_CLASSES) at points (N, 3); +inf for classes with no primitive.

        With ``truncation`` the result is clamped to [-truncation, truncation] and computed tile by
        tile, each tile against only the primitives within ``truncation`` of it (same values, many
        times faster on cluttered rooms).
        """
        if truncation is None:
            chunks = [self._class_sdf_chunk(chunk) for chunk in points.split(_CHUNK)]
            return torch.cat(chunks) if chunks else points.new_zeros((0, NUM_CLASSES))
        if len(points) == 0:
            return points.new_zeros((0, NUM_CLASSES))
        # Tile bookkeeping in numpy: torch's unique/argsort on CPU are slow under thread contention.
        tile = np.floor(points.detach().cpu().numpy() / _TILE).astype(np.int64)
        base = tile.min(axis=0)
        tile -= base
        span = int(tile.max()) + 1
        key = (tile[:, 0] * span + tile[:, 1]) * span + tile[:, 2]
        order_np = np.argsort(key, kind="stable")
        keys, counts = np.unique(key[order_np], return_counts=True)
        order = torch.from_numpy(order_np).to(points.device)
        results = []
        with _single_cpu_thread(points.device):
            for k, chunk in zip(keys.tolist(), points[order].split(counts.tolist())):
                lo = (base + np.array([k // (span * span), (k // span) % span, k % span])) * _TILE
                local = self.cull(lo, lo + _TILE, truncation)
                results.append(local.class_sdf(chunk).clamp(-truncation, truncation))
            out = results[0].new_empty((len(points), NUM_CLASSES))
            out[order] = torch.cat(results)
        return out

    def sdf(self, points: torch.Tensor, truncation: float | None = None) -> torch.Tensor:
        """SDF of the whole union (N,) at points (N, 3), optionally truncated (see class_sdf)."""
        return self.class_sdf(points, truncation).amin(dim=1)

    def _class_sdf_chunk(self, points: torch.Tensor) -> torch.Tensor:
        dists = []
        classes = []
        if len(self.boxes):
            b = _tensor(self.boxes, points)
            dists.append(box_sdf(points, b[:, :3], b[:, 3:]))
            classes.append(self.box_class)
        if len(self.frusta):
            f = _tensor(self.frusta, points)
            dists.append(frustum_sdf(points, f[:, :3], f[:, 3], f[:, 4], f[:, 5]))
            classes.append(self.frustum_class)
        inf = torch.full((len(points),), float("inf"), dtype=points.dtype, device=points.device)
        if not dists:
            return inf[:, None].expand(-1, NUM_CLASSES).clone()
        dist = torch.cat(dists, dim=1)
        cls = np.concatenate(classes)
        columns = []
        for c in range(NUM_CLASSES):
            idx = np.flatnonzero(cls == c)
            columns.append(dist[:, idx].amin(dim=1) if len(idx) else inf)
        if len(self.openings) and (cls == WALL).any():
            o = _tensor(self.openings, points)
            cut = box_sdf(points, o[:, :3], o[:, 3:]).amin(dim=1)
            columns[WALL] = torch.maximum(columns[WALL], -cut)
        return torch.stack(columns, dim=1)

    def to_json(self) -> dict:
        """Plain lists, for room files."""
        return {
            "boxes": self.boxes.tolist(),
            "box_class": self.box_class.tolist(),
            "frusta": self.frusta.tolist(),
            "frustum_class": self.frustum_class.tolist(),
            "openings": self.openings.tolist(),
        }

    @staticmethod
    def from_json(obj: dict) -> Primitives:
        return Primitives(
            boxes=_as_rows(obj["boxes"], 6),
            box_class=np.asarray(obj["box_class"], dtype=np.int64),
            frusta=_as_rows(obj["frusta"], 6),
            frustum_class=np.asarray(obj["frustum_class"], dtype=np.int64),
            openings=_as_rows(obj["openings"], 6),
        )


@contextlib.contextmanager
def _single_cpu_thread(device: torch.device) -> Iterator[None]:
    """Run CPU tile work on one thread: per-tile tensors are small, and intra-op threading on
    them costs more than it gains (RESULTS.md, "Speed")."""
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _tensor(values: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(values, dtype=like.dtype, device=like.device)
