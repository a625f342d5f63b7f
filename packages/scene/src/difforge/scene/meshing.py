"""From SDF grids to meshes: seamless blending of overlapping blocks, marching cubes, colours, export.

Neighbouring blocks overlap (BlockFusion: 0.8 m on 3.2 m blocks). Instead of meshing each block and
registering the pieces, every block's grid is placed on one global grid and the overlaps are blended
with a smooth partition of unity: each block weighs its samples by a smoothstep ramp that falls
towards its own faces, and the field is the weighted mean. Where blocks agree the result equals
either; where they disagree it moves smoothly from one to the other across the overlap, so one
marching-cubes pass over the blended field has no seam.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import trimesh
from scipy.ndimage import distance_transform_edt
from skimage.measure import marching_cubes

from difforge.core.errors import UserError
from difforge.core.io import atomic_path
from difforge.scene.classes import CLASS_COLOURS
from difforge.scene.data.blocks import Block
from difforge.scene.data.geometry import TRUNCATION

EXPORT_FORMATS = ("glb", "ply", "obj")
# Connected pieces whose bounding box diagonal is shorter than this (metres) are fragments of a
# generated field (noise specks), not objects: generated meshes drop them.
MIN_FRAGMENT = 0.15
# What the picture's caption says about colours of generated scenes.
GEOMETRY_COLOURS = "colours: height and facing of the generated surface (no semantic labels)"
# Blocks must sit on a common voxel lattice; offsets closer than this to whole voxels are rounded.
_LATTICE_TOLERANCE = 1e-4
# Samples closer than this to the level set (metres) count as on it; covers the 1e-6 m bias of the
# analytic SDFs and float16 storage.
_ON_SURFACE = 1e-5
# Expansion may change what exists only this close (metres) to the seam with the new blocks.
SEAM_BAND = 0.2


def mesh_from_sdf(
    sdf: np.ndarray, origin: np.ndarray, voxel: float, close: bool = True
) -> trimesh.Trimesh:
    """Marching cubes of the zero level of a cell-centred SDF grid, in world coordinates.

    With ``close`` the grid is padded with empty space, so solids cut by the grid's faces are capped
    and the mesh is closed; without it those cuts stay open.
    """
    grid = np.asarray(sdf, dtype=np.float32)
    # Samples exactly on the level set make degenerate, non-manifold triangles: count them as
    # inside (a slab whose faces fall on samples keeps its thickness instead of vanishing).
    grid = np.where(np.abs(grid) < _ON_SURFACE, -_ON_SURFACE, grid)
    first = origin + voxel / 2
    if close:
        pad = max(float(np.abs(grid).max()), voxel)
        grid = np.pad(grid, 1, constant_values=pad)
        first = first - voxel
    if not (grid.min() < 0.0 < grid.max()):
        return trimesh.Trimesh()
    # skimage's default "descent" winding gives outward-facing triangles for negative-inside SDFs
    # (checked by the sphere test: positive volume).
    verts, faces, _, _ = marching_cubes(
        grid, level=0.0, spacing=(voxel, voxel, voxel), gradient_direction="descent"
    )
    return trimesh.Trimesh(verts + first, faces, process=True)


def smooth_weights(resolution: int, ramp: float) -> np.ndarray:
    """Per-sample blending weight along one axis: smoothstep of the distance to the nearer face.

    Distances are in voxels from the cell centre to the block face (0.5 for the outermost samples),
    so every weight is positive and normalisation never divides by zero inside a block.
    """
    i = np.arange(resolution, dtype=np.float64)
    distance = np.minimum(i + 0.5, resolution - i - 0.5)
    t = np.clip(distance / ramp, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _accumulate(
    grids: Sequence[tuple[np.ndarray, tuple[int, int, int]]],
    lo: np.ndarray,
    shape: tuple[int, ...],
    ramp: float | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted sum and weight of grids placed at integer offsets on a lattice starting at ``lo``."""
    total = np.zeros(shape, dtype=np.float64)
    weight = np.zeros_like(total)
    for grid, off in grids:
        r = ramp if ramp is not None else max(min(grid.shape) / 4.0, 1.0)
        w = (
            smooth_weights(grid.shape[0], r)[:, None, None]
            * smooth_weights(grid.shape[1], r)[None, :, None]
            * smooth_weights(grid.shape[2], r)[None, None, :]
        )
        start = np.asarray(off) - lo
        region = tuple(slice(s, s + n) for s, n in zip(start, grid.shape))
        total[region] += w * grid
        weight[region] += w
    return total, weight


def _bounds(grids: Sequence[tuple[np.ndarray, tuple[int, int, int]]]) -> tuple[np.ndarray, ...]:
    if not grids:
        raise ValueError("no grids to blend")
    offsets = np.array([off for _, off in grids], dtype=np.int64)
    shapes = np.array([g.shape for g, _ in grids], dtype=np.int64)
    return offsets.min(axis=0), (offsets + shapes).max(axis=0)


def blend_sdf_grids(
    grids: Sequence[tuple[np.ndarray, tuple[int, int, int]]],
    ramp: float | None = None,
    fill: float = TRUNCATION,
) -> tuple[np.ndarray, np.ndarray]:
    """Blend grids placed at integer voxel offsets on one lattice.

    grids: (sdf (Rx, Ry, Rz), offset (i, j, k)) pairs. ramp: width in voxels over which a block's
    weight falls to zero at its faces (default a quarter of the block: the 0.8 m overlap of 3.2 m
    blocks). Returns the blended grid and the offset of its first sample; samples no block covers
    are ``fill`` (empty space).
    """
    lo, hi = _bounds(grids)
    total, weight = _accumulate(grids, lo, tuple(hi - lo), ramp)
    covered = weight > 0
    blended = np.full(total.shape, fill, dtype=np.float32)
    blended[covered] = (total[covered] / weight[covered]).astype(np.float32)
    return blended, lo


def seam_weight(footprint: np.ndarray, voxel: float, band: float) -> np.ndarray:
    """Weight (X, Z) of a later stage over an earlier stage's (x, z) ``footprint`` of columns: 1
    outside it, falling smoothly to 0 at ``band`` metres inside its edge (the seam).

    Samples sit half a voxel inside the seam; a marching-cubes vertex lies between two samples,
    so the weight reaches 0 one voxel before ``band``: every vertex farther than ``band`` from the
    seam comes from samples the later stage does not touch.
    """
    inside = distance_transform_edt(footprint) * voxel - voxel / 2  # seam distance, 0 outside
    width = max(band - voxel, voxel)
    t = np.clip(1.0 - inside / width, 0.0, 1.0)
    return np.where(footprint, t * t * (3.0 - 2.0 * t), 1.0)


def blend_sdf_stages(
    stages: Sequence[Sequence[tuple[np.ndarray, tuple[int, int, int]]]],
    voxel: float,
    band: float,
    ramp: float | None = None,
    fill: float = TRUNCATION,
) -> tuple[np.ndarray, np.ndarray]:
    """Blend grids stage by stage, as a scene grows: the grids of one stage are blended among
    themselves (``blend_sdf_grids``); a later stage fills the space no earlier grid covers and
    takes over only within ``band`` metres of the earlier footprint's edge, so what exists farther
    from the seam is left exactly as it was. Axis 1 is up. Returns the grid and its first offset.
    """
    lo, hi = _bounds([g for stage in stages for g in stage])
    field = np.full(tuple(hi - lo), fill, dtype=np.float64)
    footprint = np.zeros((field.shape[0], field.shape[2]), dtype=bool)
    for grids in stages:
        total, weight = _accumulate(grids, lo, field.shape, ramp)
        covered = weight > 0
        new = np.divide(total, weight, out=np.zeros_like(total), where=covered)
        share = seam_weight(footprint, voxel, band)[:, None, :] if footprint.any() else 1.0
        share = np.where(covered, share, 0.0)
        field = (1.0 - share) * field + share * new
        footprint |= covered.any(axis=1)
    return field.astype(np.float32), lo


def block_offsets(blocks: Sequence[Block]) -> tuple[list[tuple[int, int, int]], float]:
    """Integer voxel offsets of blocks relative to the first one; they must share voxel and lattice."""
    voxel = blocks[0].voxel
    offsets = []
    for block in blocks:
        if abs(block.voxel - voxel) > 1e-9:
            raise ValueError(f"blocks have different voxel sizes ({block.voxel} vs {voxel})")
        rel = (block.origin - blocks[0].origin) / voxel
        rounded = np.round(rel)
        if np.abs(rel - rounded).max() > _LATTICE_TOLERANCE:
            raise ValueError(
                f"block at {block.origin} is not on the voxel lattice of the first block"
            )
        offsets.append(tuple(int(v) for v in rounded))
    return offsets, voxel


def blend_blocks(
    blocks: Sequence[Block], ramp: float | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """Blend blocks' SDF grids on their common lattice: (grid, world origin, voxel)."""
    offsets, voxel = block_offsets(blocks)
    grid, lo = blend_sdf_grids([(b.sdf, off) for b, off in zip(blocks, offsets)], ramp)
    return grid, blocks[0].origin + lo * voxel, voxel


def blend_block_stages(
    stages: Sequence[Sequence[Block]], band: float = SEAM_BAND, ramp: float | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """``blend_sdf_stages`` for blocks (stage 0 first): (grid, world origin, voxel)."""
    blocks = [b for stage in stages for b in stage]
    offsets, voxel = block_offsets(blocks)
    placed = iter(zip((b.sdf for b in blocks), offsets))
    grids = [[next(placed) for _ in stage] for stage in stages]
    grid, lo = blend_sdf_stages(grids, voxel, band, ramp)
    return grid, blocks[0].origin + lo * voxel, voxel


def mesh_blocks(
    blocks: Sequence[Block], ramp: float | None = None, close: bool = True
) -> trimesh.Trimesh:
    """One mesh for a set of (overlapping) blocks: blend, then a single marching-cubes pass."""
    grid, origin, voxel = blend_blocks(blocks, ramp)
    return mesh_from_sdf(grid, origin, voxel, close=close)


class ClassSDFSource(Protocol):
    def class_sdf(self, points: torch.Tensor, truncation: float | None = None) -> torch.Tensor: ...


def colour_by_class(mesh: trimesh.Trimesh, source: ClassSDFSource) -> None:
    """Colour vertices by their nearest class under a per-class SDF (e.g. a procedural Room)."""
    if len(mesh.vertices) == 0:
        return
    with torch.no_grad():
        points = torch.as_tensor(np.asarray(mesh.vertices), dtype=torch.float32)
        values = source.class_sdf(points, TRUNCATION)
    mesh.visual.vertex_colors = _rgba(CLASS_COLOURS[values.argmin(dim=1).numpy()])


def remove_fragments(mesh: trimesh.Trimesh, min_size: float = MIN_FRAGMENT) -> trimesh.Trimesh:
    """``mesh`` without connected pieces whose bounding-box diagonal is under ``min_size`` m."""
    if len(mesh.faces) == 0:
        return mesh
    pieces = mesh.split(only_watertight=False)
    kept = [p for p in pieces if np.linalg.norm(p.extents) >= min_size]
    if len(kept) == len(pieces):
        return mesh
    return trimesh.util.concatenate(kept) if kept else trimesh.Trimesh()


def colour_by_geometry(mesh: trimesh.Trimesh) -> None:
    """Colour vertices from the surface itself: upward-facing surfaces (floors, table tops) warm,
    downward-facing cool, vertical ones by height (light low, darker high); no labels are used."""
    if len(mesh.vertices) == 0:
        return
    normals = np.asarray(mesh.vertex_normals)
    y = np.asarray(mesh.vertices)[:, 1]
    height = np.clip((y - y.min()) / max(float(np.ptp(y)), 1e-6), 0.0, 1.0)[:, None]
    low, high = np.array([214.0, 206.0, 190.0]), np.array([120.0, 128.0, 140.0])
    colours = (1.0 - height) * low + height * high
    up = np.clip(normals[:, 1], 0.0, 1.0)[:, None]
    down = np.clip(-normals[:, 1], 0.0, 1.0)[:, None]
    colours = (1 - up - down) * colours + up * [196.0, 150.0, 104.0] + down * [150.0, 170.0, 190.0]
    mesh.visual.vertex_colors = _rgba(np.clip(colours, 0, 255).astype(np.uint8))


def _rgba(rgb: np.ndarray) -> np.ndarray:
    return np.concatenate([rgb, np.full((len(rgb), 1), 255, dtype=np.uint8)], axis=1)


def export_mesh(
    mesh: trimesh.Trimesh, path: str | os.PathLike[str], file_type: str | None = None
) -> Path:
    """Write a mesh as GLB, PLY or OBJ (``file_type``, default: by extension), atomically, with
    vertex colours and vertex normals (viewers shade it smoothly)."""
    target = Path(path)
    fmt = file_type or target.suffix.lower().lstrip(".")
    if fmt not in EXPORT_FORMATS:
        raise UserError(f"cannot export {target.name}: use one of .{', .'.join(EXPORT_FORMATS)}")
    if len(mesh.faces) == 0:
        raise UserError(f"nothing to export to {target}: the mesh has no faces")
    _ = mesh.vertex_normals  # computed now, so every exporter finds them in the cache
    with atomic_path(target) as tmp:
        if fmt == "obj":
            # Vertex colours inline ("v x y z r g b"), no material file beside it.
            data = trimesh.exchange.obj.export_obj(
                mesh, include_normals=True, include_color=True, include_texture=False
            )
            tmp.write_text(data, encoding="utf-8")
        elif fmt == "ply":
            tmp.write_bytes(trimesh.exchange.ply.export_ply(mesh, vertex_normal=True))
        else:
            tmp.write_bytes(trimesh.exchange.gltf.export_glb(mesh, include_normals=True))
    return target
