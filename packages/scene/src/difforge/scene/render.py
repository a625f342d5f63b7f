"""A small CPU renderer for meshes: perspective camera, z-buffer, flat shading, outlines.

Written by hand with numpy because the alternatives need an OpenGL context (pyrender, trimesh's
scene viewer) that headless CPU machines lack, and matplotlib's painter's algorithm mis-sorts the
hundreds of thousands of small triangles marching cubes produces. Triangles are rasterised in
vectorised batches grouped by their screen-space size; depth is interpolated perspective-correctly.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image, ImageDraw

from difforge.core.io import atomic_path
from difforge.scene.classes import NEUTRAL_COLOUR

BACKGROUND = (246, 245, 241)
# Candidate pixels evaluated per batch (triangles x pixels of their bounding square).
_BATCH_PIXELS = 1 << 22


def render_mesh(
    mesh: trimesh.Trimesh,
    width: int = 960,
    height: int = 720,
    azimuth: float = 35.0,
    elevation: float = 55.0,
    fov: float = 40.0,
    supersample: int = 2,
) -> np.ndarray:
    """Render ``mesh`` (vertex colours if any) to an (height, width, 3) uint8 image.

    The camera looks at the mesh's bounding-box centre from ``azimuth`` degrees around y (0 = from
    +z) and ``elevation`` degrees above the horizon, far enough for the bounding sphere to fit.
    """
    w, h = width * supersample, height * supersample
    image = np.empty((h, w, 3), dtype=np.float64)
    image[:] = BACKGROUND
    depth = np.full(h * w, np.inf)
    if len(mesh.faces):
        eye, right, up, forward = _camera(mesh, azimuth, elevation, fov)
        rel = np.asarray(mesh.vertices) - eye
        cam = np.stack([rel @ right, rel @ up, rel @ forward], axis=1)
        focal = (h / 2) / math.tan(math.radians(fov) / 2)
        z = np.maximum(cam[:, 2], 1e-6)
        screen = np.stack([w / 2 + focal * cam[:, 0] / z, h / 2 - focal * cam[:, 1] / z], axis=1)
        pixel, pixel_depth, face = _rasterise(screen, z, np.asarray(mesh.faces), w, h)
        # Far to near: with repeated indices numpy keeps the last write, i.e. the nearest face.
        order = np.argsort(-pixel_depth, kind="stable")
        image.reshape(-1, 3)[pixel[order]] = _shade(mesh, forward, up, right)[face[order]]
        depth[pixel[order]] = pixel_depth[order]
    image *= _outline(depth.reshape(h, w))[..., None]
    if supersample > 1:
        image = image.reshape(height, supersample, width, supersample, 3).mean(axis=(1, 3))
    return np.clip(image, 0, 255).round().astype(np.uint8)


def save_png(image: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Write an RGB uint8 image as PNG, atomically."""
    target = Path(path)
    with atomic_path(target) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return target


def render_png(
    mesh: trimesh.Trimesh,
    path: str | os.PathLike[str],
    caption: str | None = None,
    **options: float,
) -> Path:
    """Render ``mesh`` and write the PNG (size and camera keywords as in ``render_mesh``), with
    ``caption`` written at its bottom-left (e.g. what the colours mean)."""
    image = render_mesh(mesh, **options)
    if caption:
        picture = Image.fromarray(image)
        ImageDraw.Draw(picture).text((8, image.shape[0] - 20), caption, fill=(40, 40, 40))
        image = np.asarray(picture)
    return save_png(image, path)


def _camera(
    mesh: trimesh.Trimesh, azimuth: float, elevation: float, fov: float
) -> tuple[np.ndarray, ...]:
    lo, hi = mesh.bounds
    centre = (lo + hi) / 2
    radius = float(np.linalg.norm(hi - lo)) / 2
    az, el = math.radians(azimuth), math.radians(elevation)
    direction = np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])
    eye = centre + direction * radius / math.sin(math.radians(fov) / 2) * 1.02
    forward = -direction
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return eye, right, up, forward


def _shade(
    mesh: trimesh.Trimesh, forward: np.ndarray, up: np.ndarray, right: np.ndarray
) -> np.ndarray:
    """Per-face RGB: base colour times ambient + key light + head light (two-sided)."""
    if mesh.visual.kind == "vertex":
        base = mesh.visual.vertex_colors[:, :3].astype(np.float64)[mesh.faces].mean(axis=1)
    elif mesh.visual.kind == "face":
        base = mesh.visual.face_colors[:, :3].astype(np.float64)
    else:
        base = np.tile(NEUTRAL_COLOUR.astype(np.float64), (len(mesh.faces), 1))
    normals = mesh.face_normals
    key = 0.7 * up - 0.5 * forward - 0.4 * right
    key /= np.linalg.norm(key)
    light = 0.38 + 0.45 * np.abs(normals @ key) + 0.22 * np.abs(normals @ forward)
    return base * np.minimum(light, 1.15)[:, None]


def _rasterise(
    screen: np.ndarray, z: np.ndarray, faces: np.ndarray, w: int, h: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Covered pixels of every triangle: (flat pixel index, depth, face index)."""
    tri = screen[faces].astype(np.float32)  # (F, 3, 2)
    edges = _edge_planes(tri, z[faces].astype(np.float32))
    lo = np.floor(tri.min(axis=1)).astype(np.int32)
    hi = np.floor(tri.max(axis=1)).astype(np.int32)
    visible = (hi[:, 0] >= 0) & (hi[:, 1] >= 0) & (lo[:, 0] < w) & (lo[:, 1] < h) & edges[1]
    extent = (hi - lo).max(axis=1) + 1
    # Group triangles by the power-of-two square that covers their bounding box.
    bucket = np.ceil(np.log2(np.maximum(extent, 1))).astype(np.int64)
    out_pixel, out_depth, out_face = [], [], []
    for b in np.unique(bucket[visible]):
        size = 1 << int(b)
        ids = np.flatnonzero(visible & (bucket == b))
        oy, ox = np.divmod(np.arange(size * size, dtype=np.int32), size)
        per_batch = max(1, _BATCH_PIXELS // (size * size))
        for start in range(0, len(ids), per_batch):
            sel = ids[start : start + per_batch]
            px = lo[sel, 0:1] + ox[None]  # (T, size^2)
            py = lo[sel, 1:2] + oy[None]
            x, y = px + np.float32(0.5), py + np.float32(0.5)
            coef = edges[0][sel]  # (T, 3 planes, 3 coefficients)
            w0 = coef[:, 0, 0:1] * x + coef[:, 0, 1:2] * y + coef[:, 0, 2:3]
            w1 = coef[:, 1, 0:1] * x + coef[:, 1, 1:2] * y + coef[:, 1, 2:3]
            inside = (w0 >= 0) & (w1 >= 0) & (w0 + w1 <= 1) & (px >= 0) & (px < w)
            inside &= (py >= 0) & (py < h)
            t_idx, p_idx = np.nonzero(inside)
            inv_depth = (
                coef[t_idx, 2, 0] * x[t_idx, p_idx]
                + coef[t_idx, 2, 1] * y[t_idx, p_idx]
                + coef[t_idx, 2, 2]
            )
            out_pixel.append(py[t_idx, p_idx].astype(np.int64) * w + px[t_idx, p_idx])
            out_depth.append(1.0 / inv_depth)
            out_face.append(sel[t_idx])
    if not out_pixel:
        return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64)
    return np.concatenate(out_pixel), np.concatenate(out_depth), np.concatenate(out_face)


def _edge_planes(tri: np.ndarray, tri_z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Screen-space affine planes per triangle: barycentrics w0, w1 and inverse depth.

    Returns coefficients (F, 3, 3) so that value = c0 * x + c1 * y + c2, and a mask of
    non-degenerate triangles. Inverse depth is affine in screen space, hence perspective-correct.
    """
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    ok = np.abs(area) > 1e-9
    inv_area = np.where(ok, 1.0 / np.where(ok, area, 1.0), 0.0).astype(np.float32)

    def plane(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        # Edge function of edge p -> q at (x, y), normalised so it is 1 at the opposite vertex.
        return (
            np.stack(
                [
                    -(q[:, 1] - p[:, 1]),
                    q[:, 0] - p[:, 0],
                    (q[:, 1] - p[:, 1]) * p[:, 0] - (q[:, 0] - p[:, 0]) * p[:, 1],
                ],
                axis=1,
            )
            * inv_area[:, None]
        )

    w0, w1 = plane(b, c), plane(c, a)
    inv_z = 1.0 / tri_z
    depth = (
        w0 * (inv_z[:, 0] - inv_z[:, 2])[:, None]
        + w1 * (inv_z[:, 1] - inv_z[:, 2])[:, None]
        + np.stack([np.zeros_like(area), np.zeros_like(area), inv_z[:, 2]], axis=1)
    )
    return np.stack([w0, w1, depth], axis=1).astype(np.float32), ok


def _outline(depth: np.ndarray) -> np.ndarray:
    """Darkening factor at depth discontinuities (silhouettes, creases between objects)."""
    d = np.where(np.isfinite(depth), depth, 1e6)
    edge = np.zeros(d.shape, dtype=bool)
    for axis in (0, 1):
        neighbour = np.roll(d, 1, axis=axis)
        edge |= np.abs(d - neighbour) > 0.04 * np.minimum(d, neighbour)
    return np.where(edge, 0.6, 1.0)
