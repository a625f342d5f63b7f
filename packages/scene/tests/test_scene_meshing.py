"""Marching cubes, seamless blending of overlapping blocks, export and rendering."""

from __future__ import annotations

import math

import numpy as np
import pytest
import trimesh
from PIL import Image

from difforge.core.errors import UserError
from difforge.scene.classes import CLASS_COLOURS, CLASS_INDEX
from difforge.scene.data.blocks import Block, extract_block, room_scene
from difforge.scene.data.geometry import grid_points
from difforge.scene.data.rooms import RoomConfig, generate_room
from difforge.scene.evaluate import (
    inner_border_length,
    open_boundary_length,
    sdf_disagreement,
    seam_gap_length,
    seam_openness,
)
from difforge.scene.meshing import (
    blend_blocks,
    block_offsets,
    colour_by_class,
    export_mesh,
    mesh_blocks,
    mesh_from_sdf,
)
from difforge.scene.render import render_mesh, save_png


def _sphere_grid(n: int, radius: float) -> tuple[np.ndarray, np.ndarray, float]:
    voxel = 2.0 / n
    origin = np.array([-1.0, -1.0, -1.0])
    pts = grid_points(origin, n, size=2.0).numpy()
    return (np.linalg.norm(pts, axis=1) - radius).reshape(n, n, n), origin, voxel


def test_marching_cubes_mesh_is_closed_outward_and_the_right_size() -> None:
    sdf, origin, voxel = _sphere_grid(40, 0.6)
    mesh = mesh_from_sdf(sdf, origin, voxel)
    assert mesh.is_watertight
    assert mesh.volume == pytest.approx(4 / 3 * math.pi * 0.6**3, rel=0.03)  # > 0: outward faces
    assert np.allclose(np.linalg.norm(mesh.vertices, axis=1), 0.6, atol=voxel / 4)


def test_empty_grid_gives_an_empty_mesh() -> None:
    assert len(mesh_from_sdf(np.full((8, 8, 8), 0.2), np.zeros(3), 0.1).faces) == 0


def test_closed_room_block_meshes_watertight() -> None:
    room = generate_room(5, RoomConfig(size=(2.4, 2.5)))
    lo, hi = room.bounds()
    assert (hi - lo)[[0, 2]].max() < 3.2
    block = extract_block(room, float(lo[0]) - 0.1, float(lo[2]) - 0.1, resolution=64)
    mesh = mesh_from_sdf(block.sdf, block.origin, block.voxel, close=False)
    assert len(mesh.faces) > 1000
    assert mesh.is_watertight


@pytest.fixture(scope="module")
def two_blocks() -> tuple[Block, Block]:
    # A 1x2 scene: blocks overlapping by 0.8 m along z, on a 0.1 m lattice.
    _, blocks = room_scene(6, blocks_x=1, blocks_z=2, resolution=32)
    return blocks[0], blocks[1]


def test_blending_agreeing_blocks_reproduces_the_field(two_blocks) -> None:
    a, b = two_blocks
    grid, origin, _ = blend_blocks([a, b])
    assert np.allclose(origin, a.origin)
    assert grid.shape == (32, 32, 32 + 24)
    offsets, _ = block_offsets([a, b])
    assert sdf_disagreement(a.sdf, offsets[0], b.sdf, offsets[1]) < 1e-6
    assert np.allclose(grid[:, :, :32], a.sdf, atol=1e-5)
    assert np.allclose(grid[:, :, 24:], b.sdf, atol=1e-5)


def test_blending_disagreeing_blocks_has_no_seam(two_blocks) -> None:
    a, b = two_blocks
    shift = 0.03
    b_off = Block(b.origin, b.sdf + shift, b.layout, b.raster)
    grid, _, _ = blend_blocks([a, b_off])
    truth, _, _ = blend_blocks([a, b])
    error = grid - truth  # 0 in A-only samples, `shift` in B-only samples, a ramp in between
    step = np.abs(np.diff(error, axis=2)).max()
    assert error[:, :, :24].max() < 1e-5 and np.allclose(error[:, :, 32:], shift, atol=1e-5)
    # A hard switch would jump by the whole shift in one sample; the blend spreads it out.
    assert step < 0.3 * shift
    offsets, _ = block_offsets([a, b_off])
    assert sdf_disagreement(a.sdf, offsets[0], b_off.sdf, offsets[1]) == pytest.approx(
        shift, abs=1e-4
    )


def test_one_pass_meshing_has_no_open_seam_unlike_per_block_meshing(two_blocks) -> None:
    a, b = two_blocks
    lo = a.origin
    hi = b.origin + 3.2
    border = inner_border_length([a.origin, b.origin])
    assert border == pytest.approx(2 * 3.2)
    blended = mesh_blocks([a, b], close=False)
    assert seam_openness(blended, lo, hi, border, margin=0.15) == 0.0
    # Meshing each block on its own and concatenating leaves open edges at the inner borders.
    halves = [mesh_from_sdf(blk.sdf, blk.origin, blk.voxel, close=False) for blk in (a, b)]
    assert seam_openness(trimesh.util.concatenate(halves), lo, hi, border, margin=0.15) > 1.0


def test_seam_gap_length_counts_cracks_between_unblended_neighbours() -> None:
    # Two neighbours along x from one procedural room (0.8 m overlap, 0.1 m lattice).
    room = generate_room(24)
    x0, z0 = room.layout.extent_min
    a = extract_block(room, x0, z0, resolution=32)
    b = extract_block(room, x0 + 2.4, z0, resolution=32)
    assert seam_gap_length(a.sdf, a.origin, b.sdf, 24, a.voxel) == 0.0
    # 2 mm of disagreement moves B's rim by less than the 1 cm tolerance (B's field lowered: this
    # room has samples exactly on its surfaces, which a raised field would move by a whole
    # sample); 3 cm opens metres.
    assert seam_gap_length(a.sdf, a.origin, b.sdf - 0.002, 24, a.voxel) == 0.0
    assert seam_gap_length(a.sdf, a.origin, b.sdf + 0.03, 24, a.voxel) > 2.0
    # B without any surface: A's whole rim on the cut is open.
    empty = np.full_like(b.sdf, 0.2)
    assert seam_gap_length(a.sdf, a.origin, empty, 24, a.voxel) > 5.0
    blended = mesh_blocks([a, Block(b.origin, b.sdf + 0.03, b.layout, b.raster)], close=False)
    assert open_boundary_length(blended, a.origin, b.origin + 3.2) == 0.0


@pytest.fixture(scope="module")
def coloured_mesh() -> trimesh.Trimesh:
    room, blocks = room_scene(24, 1, 1, resolution=24)
    mesh = mesh_blocks(blocks)
    colour_by_class(mesh, room)
    return mesh


@pytest.mark.parametrize("suffix", ["glb", "ply", "obj"])
def test_exports_round_trip_through_trimesh(tmp_path, coloured_mesh, suffix: str) -> None:
    path = export_mesh(coloured_mesh, tmp_path / f"scene.{suffix}")
    loaded = trimesh.load(path, force="mesh")
    assert len(loaded.faces) == len(coloured_mesh.faces)
    assert np.allclose(loaded.bounds, coloured_mesh.bounds, atol=1e-4)
    colours = np.unique(np.asarray(loaded.visual.vertex_colors)[:, :3], axis=0)
    assert len(colours) >= 3  # per-class colours survive the file format
    assert [p.name for p in tmp_path.iterdir()] == [f"scene.{suffix}"]


def test_bad_exports_are_user_errors_and_write_nothing(tmp_path, coloured_mesh) -> None:
    with pytest.raises(UserError, match="use one of"):
        export_mesh(coloured_mesh, tmp_path / "scene.fbx")
    with pytest.raises(UserError, match="no faces"):
        export_mesh(trimesh.Trimesh(), tmp_path / "empty.glb")
    assert list(tmp_path.iterdir()) == []


def test_render_draws_the_mesh_deterministically(tmp_path) -> None:
    box = trimesh.creation.box((1.0, 1.0, 1.0))
    image = render_mesh(box, width=64, height=48)
    assert image.shape == (48, 64, 3)
    background = image[0, 0].copy()
    assert (image[24, 32] != background).any()  # the box covers the centre
    assert np.array_equal(image, render_mesh(box, width=64, height=48))
    path = save_png(image, tmp_path / "box.png")
    assert np.array_equal(np.asarray(Image.open(path)), image)


def test_class_colours_follow_the_nearest_class(coloured_mesh) -> None:
    colours = np.asarray(coloured_mesh.visual.vertex_colors)[:, :3]
    v = coloured_mesh.vertices
    # The slab's underside away from the walls (room interior is [0, 2.75]^2 in this scene).
    under_floor = (v[:, 1] < -0.05) & np.all((v[:, [0, 2]] > 0.5) & (v[:, [0, 2]] < 2.25), axis=1)
    assert under_floor.sum() > 10
    assert (colours[under_floor] == CLASS_COLOURS[CLASS_INDEX["floor"]]).all()
    assert len(np.unique(colours, axis=0)) >= 4
