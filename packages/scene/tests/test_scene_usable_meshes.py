"""Meshes people can use: closed, no fragments, normals in every format, a viewer page, colours
from the geometry; every written mesh opens in Open3D."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest
import trimesh

from difforge.scene.data.blocks import room_scene
from difforge.scene.expansion import boundary_length
from difforge.scene.meshing import (
    MIN_FRAGMENT,
    colour_by_geometry,
    export_mesh,
    mesh_blocks,
    remove_fragments,
)
from difforge.scene.viewer import viewer_html

o3d = pytest.importorskip("open3d")  # the optional 'scans' extra


def assert_usable(mesh: trimesh.Trimesh) -> None:
    """Closed (no boundary edges), watertight, and no piece under the fragment size."""
    assert len(mesh.faces) > 0
    assert boundary_length(mesh) == 0.0
    assert mesh.is_watertight
    pieces = mesh.split(only_watertight=False)
    assert min(np.linalg.norm(p.extents) for p in pieces) >= MIN_FRAGMENT


@pytest.fixture(scope="module")
def room_mesh() -> trimesh.Trimesh:
    _, blocks = room_scene(3, 2, 1, resolution=32)
    mesh = remove_fragments(mesh_blocks(blocks))
    colour_by_geometry(mesh)
    return mesh


def test_fragments_are_dropped_and_the_rest_is_kept(room_mesh) -> None:
    speck = trimesh.creation.box((0.05, 0.05, 0.05))
    speck.apply_translation([0.5, 1.0, 0.5])
    with_speck = trimesh.util.concatenate([room_mesh, speck])
    cleaned = remove_fragments(with_speck)
    assert len(cleaned.faces) == len(room_mesh.faces)
    assert_usable(cleaned)


@pytest.mark.parametrize("suffix", [".glb", ".ply", ".obj"])
def test_exports_have_normals_and_open_in_open3d(room_mesh, tmp_path, suffix) -> None:
    path = export_mesh(room_mesh, tmp_path / f"room{suffix}")
    opened = o3d.io.read_triangle_mesh(str(path))
    assert len(opened.triangles) == len(room_mesh.faces)
    assert opened.has_vertex_normals()
    normals = np.asarray(opened.vertex_normals)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-3)
    # Metric scale: the room is metres across, as generated.
    extent = np.asarray(opened.get_max_bound()) - np.asarray(opened.get_min_bound())
    np.testing.assert_allclose(extent, room_mesh.extents, atol=1e-3)
    assert_usable(trimesh.load(path, force="mesh", process=True))


def test_geometry_colours_follow_the_surface(room_mesh) -> None:
    colours = np.asarray(room_mesh.visual.vertex_colors)[:, :3].astype(float)
    up = np.asarray(room_mesh.vertex_normals)[:, 1] > 0.9
    side = np.abs(np.asarray(room_mesh.vertex_normals)[:, 1]) < 0.1
    # Upward-facing (floor) is warm (red > blue), walls are not.
    assert (colours[up, 0] - colours[up, 2]).mean() > 50
    assert abs((colours[side, 0] - colours[side, 2]).mean()) < 50


def test_viewer_page_embeds_the_mesh_and_needs_no_network(room_mesh) -> None:
    page = viewer_html(room_mesh, "room", "colours: geometry")
    assert "http://" not in page and "https://" not in page and "<script src" not in page
    indices = re.search(r'i:"([A-Za-z0-9+/=]*)"', page)[1]
    faces = np.frombuffer(base64.b64decode(indices), dtype="<u4").reshape(-1, 3)
    np.testing.assert_array_equal(faces, room_mesh.faces)
    assert "colours: geometry" in page
