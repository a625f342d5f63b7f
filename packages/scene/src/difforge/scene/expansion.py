"""How much an expansion rewrites what exists: displacement of the existing surface outside and
inside the blending band, SDF disagreement at the seam, and holes left in the grown mesh.

The seam is where the existing scene's footprint (the x-z rectangles of its blocks) ends and the
new blocks continue it. ``expansion_report`` compares the mesh before an expansion with the mesh
after it; ``compare_expansion_blending`` does so for the staged blending that ``expand`` uses and
for blending every block alike (what expansion did before stages), on the same blocks.
"""

from __future__ import annotations

from collections.abc import Sequence

import igl
import numpy as np
import trimesh
from scipy.ndimage import distance_transform_edt

from difforge.scene.data.blocks import Block
from difforge.scene.data.geometry import BLOCK_SIZE
from difforge.scene.meshing import (
    SEAM_BAND,
    blend_block_stages,
    blend_blocks,
    mesh_from_sdf,
)

# Raster step (metres) of the footprints the seam distance is measured on.
_FOOTPRINT_CELL = 0.01
# Samples this close (metres) to either field's surface count in the SDF disagreement.
_NEAR_SURFACE = 0.05


def _footprint_mask(
    blocks: Sequence[Block], lo: np.ndarray, shape: tuple[int, int], cell: float
) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for block in blocks:
        start = np.round((block.origin[[0, 2]] - lo) / cell).astype(int)
        stop = start + round(BLOCK_SIZE / cell)
        mask[start[0] : stop[0], start[1] : stop[1]] = True
    return mask


def seam_distance(old: Sequence[Block], new: Sequence[Block], xz: np.ndarray) -> np.ndarray:
    """Horizontal distance (metres) of points ``xz`` (N, 2) to the part of the new blocks'
    footprint that lies outside the old one (what the expansion adds)."""
    corners = np.array([b.origin[[0, 2]] for b in [*old, *new]])
    lo = corners.min(axis=0) - 1.0
    hi = corners.max(axis=0) + BLOCK_SIZE + 1.0
    shape = tuple(np.ceil((hi - lo) / _FOOTPRINT_CELL).astype(int))
    added = _footprint_mask(new, lo, shape, _FOOTPRINT_CELL)
    added &= ~_footprint_mask(old, lo, shape, _FOOTPRINT_CELL)
    distance = distance_transform_edt(~added) * _FOOTPRINT_CELL
    cells = np.clip(np.floor((xz - lo) / _FOOTPRINT_CELL).astype(int), 0, np.array(shape) - 1)
    return distance[cells[:, 0], cells[:, 1]]


def surface_distance(points: np.ndarray, mesh: trimesh.Trimesh) -> np.ndarray:
    """Distance (metres) of each point to the nearest point of ``mesh``'s surface."""
    squared, _, _ = igl.point_mesh_squared_distance(
        np.asarray(points, dtype=np.float64),
        np.asarray(mesh.vertices, dtype=np.float64),
        np.asarray(mesh.faces, dtype=np.int64),
    )
    return np.sqrt(squared)


def boundary_length(mesh: trimesh.Trimesh) -> float:
    """Total length (metres) of edges used by one face only (holes and open rims)."""
    if len(mesh.faces) == 0:
        return 0.0
    edges = mesh.edges_sorted
    unique, counts = np.unique(edges, axis=0, return_counts=True)
    open_edges = unique[counts == 1]
    return float(np.linalg.norm(np.diff(mesh.vertices[open_edges], axis=1), axis=2).sum())


def expansion_report(
    before: trimesh.Trimesh,
    after: trimesh.Trimesh,
    old: Sequence[Block],
    new: Sequence[Block],
    band: float = SEAM_BAND,
) -> dict[str, float | int]:
    """Displacement (mm) of the existing surface's vertices, outside and inside ``band`` of the
    seam, and the grown mesh's open boundary length (m)."""
    vertices = np.asarray(before.vertices)
    moved = surface_distance(vertices, after) * 1000.0
    outside = seam_distance(old, new, vertices[:, [0, 2]]) > band
    report: dict[str, float | int] = {
        "vertices_outside_band": int(outside.sum()),
        "vertices_inside_band": int((~outside).sum()),
        "open_boundary_m": boundary_length(after),
    }
    for name, part in (("outside", moved[outside]), ("inside", moved[~outside])):
        report[f"max_move_{name}_mm"] = float(part.max()) if len(part) else 0.0
        report[f"mean_move_{name}_mm"] = float(part.mean()) if len(part) else 0.0
    return report


def seam_disagreement(old: Sequence[Block], new: Sequence[Block]) -> float:
    """Mean |SDF| difference (cm) between the existing and the new blocks where both cover the
    space, over samples within 5 cm of either surface (a model's agreement with what it extends,
    the same whatever the blending)."""
    old_grid, old_origin, voxel = blend_blocks(old)
    new_grid, new_origin, _ = blend_blocks(new)
    offset = np.round((new_origin - old_origin) / voxel).astype(int)
    lo = np.maximum(offset, 0)
    hi = np.minimum(offset + new_grid.shape, old_grid.shape)
    if np.any(hi <= lo):
        return float("nan")
    a = old_grid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    b_lo, b_hi = lo - offset, hi - offset
    b = new_grid[b_lo[0] : b_hi[0], b_lo[1] : b_hi[1], b_lo[2] : b_hi[2]]
    near = (np.abs(a) < _NEAR_SURFACE) | (np.abs(b) < _NEAR_SURFACE)
    return float(np.abs(a - b)[near].mean() * 100.0) if near.any() else float("nan")


def compare_expansion_blending(
    old: Sequence[Block], new: Sequence[Block], band: float = SEAM_BAND
) -> dict[str, object]:
    """``expansion_report`` for the staged blending and for blending all blocks alike."""
    before = mesh_from_sdf(*blend_blocks(old))
    staged = mesh_from_sdf(*blend_block_stages([old, new], band))
    alike = mesh_from_sdf(*blend_blocks([*old, *new]))
    return {
        "band_m": band,
        "sdf_disagreement_cm": seam_disagreement(old, new),
        "staged": expansion_report(before, staged, old, new, band),
        "all_blocks_alike": expansion_report(before, alike, old, new, band),
    }
