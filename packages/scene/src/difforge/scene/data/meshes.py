"""Users' own meshes (OBJ, PLY, GLB, ... through trimesh) turned into SDF blocks.

The mesh must describe closed solids: a signed distance needs an inside. Loading merges duplicate
vertices, drops degenerate and duplicate faces and fills small holes; a mesh still open after that
is refused with a one-line error naming the number of open edges. Signed distances come from libigl
(AABB tree for the distance, fast winding numbers for the sign, which stays right where closed
parts overlap, e.g. furniture standing in a floor slab).

Expected frame: metres, y up. ``place_on_floor`` moves the mesh so its lowest point is the bottom of
our floor slab (y = -0.1) and its xz minimum is at the origin.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import igl
import numpy as np
import torch
import trimesh

from difforge.core.errors import UserError
from difforge.scene.data.blocks import Block, dataset_writer, sdf_grid
from difforge.scene.data.geometry import (
    BLOCK_SIZE,
    BLOCK_Y_MAX,
    DEFAULT_RESOLUTION,
    TRUNCATION,
    block_origin,
)
from difforge.scene.data.layout import Layout, rasterize_layout
from difforge.scene.data.rooms import FLOOR_THICKNESS

MESH_SUFFIXES = (".obj", ".ply", ".glb", ".gltf", ".stl", ".off")


def read_mesh_file(path: str | os.PathLike[str]) -> trimesh.Trimesh:
    """The triangles of a mesh file as stored; a missing, unsupported, corrupt or empty file is a
    one-line UserError naming it."""
    source = Path(path)
    if not source.is_file():
        raise UserError(f"mesh file {source} does not exist")
    if source.suffix.lower() not in MESH_SUFFIXES:
        raise UserError(f"{source}: unsupported mesh format; use {', '.join(MESH_SUFFIXES)}")
    try:
        loaded = trimesh.load(source, force="mesh", process=False)
    except Exception as exc:  # trimesh raises many types for malformed files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"cannot read mesh {source}: {reason}") from None
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise UserError(f"{source}: the mesh is empty (no triangles)")
    return loaded


def load_mesh(
    path: str | os.PathLike[str],
    scale: float = 1.0,
    z_up: bool = False,
    place_on_floor: bool = True,
) -> trimesh.Trimesh:
    """Read a mesh file as one closed triangle mesh in our frame, or raise a one-line UserError."""
    mesh = make_watertight(read_mesh_file(path), str(path))
    if not math.isfinite(scale) or scale <= 0:
        raise UserError(f"--scale must be a positive number, got {scale}")
    mesh.apply_scale(scale)
    if z_up:
        mesh.apply_transform(trimesh.transformations.rotation_matrix(-math.pi / 2, [1, 0, 0]))
    if place_on_floor:
        lo = mesh.bounds[0]
        mesh.apply_translation([-lo[0], -FLOOR_THICKNESS - lo[1], -lo[2]])
    return mesh


def make_watertight(mesh: trimesh.Trimesh, name: str) -> trimesh.Trimesh:
    """Repair what can be repaired; a one-line UserError when the mesh stays open.

    "Watertight" here means closed: every edge is used by an even number of faces. Closed parts
    that touch along an edge (a wall standing on a floor slab) share it four times, which is still
    closed, so the winding-number sign stays correct.
    """
    fixed = trimesh.Trimesh(np.asarray(mesh.vertices), np.asarray(mesh.faces), process=True)
    fixed.update_faces(fixed.nondegenerate_faces())
    fixed.update_faces(fixed.unique_faces())
    fixed.remove_unreferenced_vertices()
    if len(fixed.faces) == 0:
        raise UserError(f"{name}: the mesh is empty (only degenerate triangles)")
    if open_edge_count(fixed):
        trimesh.repair.fill_holes(fixed)
    open_edges = open_edge_count(fixed)
    if open_edges:
        raise UserError(
            f"{name}: the mesh cannot be made watertight ({open_edges} open edges left after "
            f"repair); close its holes or export its parts as closed solids"
        )
    trimesh.repair.fix_normals(fixed, multibody=True)
    return fixed


def open_edge_count(mesh: trimesh.Trimesh) -> int:
    """Edges used by an odd number of faces: the boundary a closed surface does not have."""
    _, uses = np.unique(mesh.edges_sorted, axis=0, return_counts=True)
    return int((uses % 2 == 1).sum())


class MeshSDF:
    """Signed distance of a closed mesh (metres, negative inside): an SDFSource for blocks."""

    def __init__(self, mesh: trimesh.Trimesh) -> None:
        self.mesh = mesh
        self._vertices = np.ascontiguousarray(mesh.vertices, dtype=np.float64)
        self._faces = np.ascontiguousarray(mesh.faces, dtype=np.int64)

    def sdf(self, points: torch.Tensor, truncation: float | None = None) -> torch.Tensor:
        p = np.ascontiguousarray(points.detach().cpu().numpy(), dtype=np.float64)
        bound = math.inf if truncation is None else truncation
        dist, _, _, _ = igl.signed_distance(
            p,
            self._vertices,
            self._faces,
            sign_type=igl.SIGNED_DISTANCE_TYPE_FAST_WINDING_NUMBER,
            lower_bound=-bound,
            upper_bound=bound,
        )
        if truncation is not None:
            # Beyond the bounds igl returns NaN without a sign: take it from the winding number.
            far = np.isnan(dist)
            if far.any():
                inside = igl.fast_winding_number(self._vertices, self._faces, p[far]) > 0.5
                dist[far] = np.where(inside, -truncation, truncation)
            dist = np.clip(dist, -truncation, truncation)
        return torch.as_tensor(dist, dtype=points.dtype, device=points.device)


def mesh_block_corners(mesh: trimesh.Trimesh, stride: float) -> list[tuple[float, float]]:
    """Block corners (x, z) on a grid of ``stride`` covering the mesh's xz extent."""
    lo, hi = mesh.bounds
    corners_x = _axis_corners(float(lo[0]), float(hi[0]), stride)
    corners_z = _axis_corners(float(lo[2]), float(hi[2]), stride)
    return [(x, z) for x in corners_x for z in corners_z]


def _axis_corners(lo: float, hi: float, stride: float) -> list[float]:
    n = max(1, math.ceil((hi - lo - BLOCK_SIZE) / stride - 1e-9) + 1)
    return [lo + i * stride for i in range(n)]


def mesh_to_blocks(
    mesh: trimesh.Trimesh,
    resolution: int = DEFAULT_RESOLUTION,
    stride: float = 2.4,
    layout: Layout | None = None,
    truncation: float = TRUNCATION,
) -> list[Block]:
    """Cut a (placed, closed) mesh into blocks; ``layout`` (world frame) labels them if given."""
    voxel = BLOCK_SIZE / resolution
    if not 0 < stride <= BLOCK_SIZE or abs(stride / voxel - round(stride / voxel)) > 1e-6:
        raise UserError(
            f"--stride must be in (0, {BLOCK_SIZE}] m and a multiple of the voxel ({voxel:g} m), "
            f"got {stride}"
        )
    top = float(mesh.bounds[1][1])
    if top > BLOCK_Y_MAX + 1e-6:
        raise UserError(
            f"the mesh reaches y = {top:.2f} m but blocks end at {BLOCK_Y_MAX:.2f} m; "
            f"scale it down (--scale) or check its up axis (--z-up)"
        )
    source = MeshSDF(mesh)
    world_layout = layout or Layout(())
    blocks = []
    for x, z in mesh_block_corners(mesh, stride):
        origin = block_origin(x, z)
        block_layout = world_layout.crop(x, z)
        grid = sdf_grid(source, origin, resolution, truncation)
        blocks.append(Block(origin, grid, block_layout, rasterize_layout(block_layout)))
    return blocks


def write_mesh_dataset(
    mesh_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    resolution: int = DEFAULT_RESOLUTION,
    stride: float = 2.4,
    scale: float = 1.0,
    z_up: bool = False,
    layout: Layout | None = None,
    overwrite: bool = False,
    before_commit: Callable[[list[Block]], None] | None = None,
) -> list[Block]:
    """Convert a user's mesh into a dataset folder of SDF blocks (same format as ``dataset``); an
    existing non-empty ``out_dir`` is replaced only with ``overwrite``. ``before_commit(blocks)``
    runs before the folder appears (a preview written there appears with it or not at all)."""
    mesh = load_mesh(mesh_path, scale=scale, z_up=z_up)
    blocks = mesh_to_blocks(mesh, resolution, stride, layout)
    with dataset_writer(out_dir, with_sdf=True, overwrite=overwrite) as writer:
        if before_commit is not None:
            before_commit(blocks)
        for block in blocks:
            writer.add_block(block.origin, block.layout, block.sdf, room_index=-1)
        writer.manifest.update(
            generator=f"mesh {Path(mesh_path).name}",
            resolution=resolution,
            truncation=TRUNCATION,
            stride=stride,
            scale=scale,
        )
    return blocks
