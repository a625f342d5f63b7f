"""Users' own meshes: loading, repair or refusal, signed distances, conversion into blocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from difforge.core.errors import UserError
from difforge.scene.data.blocks import BlockDataset
from difforge.scene.data.meshes import MeshSDF, load_mesh, mesh_to_blocks, write_mesh_dataset
from difforge.scene.meshing import mesh_blocks


def _room_parts() -> trimesh.Trimesh:
    """A floor slab, two walls standing on it and a cabinet: closed parts touching along edges."""
    parts = [
        trimesh.creation.box((4.0, 0.1, 3.0)).apply_translation((2.0, -0.05, 1.5)),
        trimesh.creation.box((4.0, 2.5, 0.1)).apply_translation((2.0, 1.25, 0.05)),
        trimesh.creation.box((0.1, 2.5, 3.0)).apply_translation((0.05, 1.25, 1.5)),
        trimesh.creation.box((1.0, 0.8, 0.5)).apply_translation((2.0, 0.4, 0.35)),
    ]
    return trimesh.util.concatenate(parts)


def test_closed_parts_load_and_give_exact_signed_distances(tmp_path) -> None:
    _room_parts().export(tmp_path / "room.obj")
    mesh = load_mesh(tmp_path / "room.obj")
    assert np.allclose(mesh.bounds, [[0.0, -0.1, 0.0], [4.0, 2.5, 3.0]])
    sdf = MeshSDF(mesh)
    pts = torch.tensor(
        [
            [2.0, 0.4, 0.35],  # cabinet centre: 0.25 m from its front and back faces
            [2.5, 0.5, 2.0],  # 0.5 m above the floor, farther from everything else
            [2.0, -0.05, 2.0],  # inside the slab
            [2.0, 0.4, 0.7],  # 10 cm in front of the cabinet
        ]
    )
    d = sdf.sdf(pts)
    assert torch.allclose(d, torch.tensor([-0.25, 0.5, -0.05, 0.1]), atol=1e-3)
    truncated = sdf.sdf(pts, truncation=0.2)
    assert torch.allclose(truncated, torch.tensor([-0.2, 0.2, -0.05, 0.1]), atol=1e-3)


def test_a_mesh_that_cannot_be_closed_is_refused(tmp_path) -> None:
    tube = trimesh.creation.annulus(r_min=0.3, r_max=0.5, height=1.0)
    open_tube = trimesh.Trimesh(tube.vertices, tube.faces[np.abs(tube.face_normals[:, 1]) < 0.5])
    open_tube.export(tmp_path / "tube.ply")
    with pytest.raises(UserError, match="cannot be made watertight") as info:
        load_mesh(tmp_path / "tube.ply")
    assert "\n" not in str(info.value)


def test_small_holes_are_repaired(tmp_path) -> None:
    box = trimesh.creation.box((1.0, 1.0, 1.0))
    holed = trimesh.Trimesh(box.vertices, box.faces[1:])
    holed.export(tmp_path / "holed.obj")
    assert load_mesh(tmp_path / "holed.obj").is_watertight


def test_empty_and_missing_meshes_are_user_errors(tmp_path) -> None:
    (tmp_path / "empty.obj").write_text("# nothing here\nv 0 0 0\nv 1 0 0\n")
    with pytest.raises(UserError, match="empty"):
        load_mesh(tmp_path / "empty.obj")
    with pytest.raises(UserError, match="does not exist"):
        load_mesh(tmp_path / "nope.glb")
    (tmp_path / "scene.fbx").write_text("")
    with pytest.raises(UserError, match="unsupported mesh format"):
        load_mesh(tmp_path / "scene.fbx")


def test_mesh_becomes_overlapping_blocks_meshed_back_closed(tmp_path) -> None:
    _room_parts().export(tmp_path / "room.glb")
    mesh = load_mesh(tmp_path / "room.glb")
    blocks = mesh_to_blocks(mesh, resolution=32, stride=2.4)
    assert len(blocks) == 2  # 4 m along x needs two blocks, 3 m along z one
    scene = mesh_blocks(blocks)
    assert scene.is_watertight
    assert np.allclose(scene.bounds[:, [0, 2]], mesh.bounds[:, [0, 2]], atol=0.06)


def test_too_tall_mesh_and_bad_stride_are_refused() -> None:
    tall = trimesh.creation.box((1.0, 4.0, 1.0))
    tall.apply_translation(-tall.bounds[0])
    with pytest.raises(UserError, match="blocks end at"):
        mesh_to_blocks(tall, resolution=16)
    with pytest.raises(UserError, match="--stride"):
        mesh_to_blocks(trimesh.creation.box((1.0, 1.0, 1.0)), resolution=16, stride=0.33)


def test_convert_writes_a_dataset_or_nothing(tmp_path) -> None:
    _room_parts().export(tmp_path / "room.ply")
    blocks = write_mesh_dataset(tmp_path / "room.ply", tmp_path / "ds", resolution=16)
    data = BlockDataset(tmp_path / "ds")
    assert len(data) == len(blocks) == 2
    assert np.allclose(data.block(1).sdf, blocks[1].sdf, atol=2e-4)
    with pytest.raises(UserError, match="comes from a mesh"):
        data.room(0)
    tube = trimesh.creation.annulus(r_min=0.3, r_max=0.5, height=1.0)
    trimesh.Trimesh(tube.vertices, tube.faces[np.abs(tube.face_normals[:, 1]) < 0.5]).export(
        tmp_path / "tube.obj"
    )
    with pytest.raises(UserError):
        write_mesh_dataset(tmp_path / "tube.obj", tmp_path / "ds2", resolution=16)
    assert not (tmp_path / "ds2").exists()
