"""Procedural rooms, analytic SDFs, blocks and the dataset folder."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from difforge.core.errors import UserError
from difforge.scene.classes import CLASS_INDEX, FURNITURE
from difforge.scene.data.blocks import BlockDataset, extract_block, write_dataset
from difforge.scene.data.geometry import BLOCK_SIZE, LAYOUT_CELL, grid_points
from difforge.scene.data.primitives import box_sdf, frustum_sdf
from difforge.scene.data.rooms import Room, generate_room


def test_box_sdf_exact_values() -> None:
    points = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [2.0, 2.0, 0.0], [0.5, 0.0, 0.0]])
    d = box_sdf(points, torch.zeros(1, 3), torch.ones(1, 3))[:, 0]
    assert torch.allclose(d, torch.tensor([1.0, -1.0, math.sqrt(2.0), -0.5]), atol=1e-5)


def test_frustum_sdf_exact_for_cylinder_and_cone() -> None:
    pts = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, -0.5, 0.0]])
    one = torch.ones(1)
    cylinder = frustum_sdf(pts, torch.zeros(1, 3), one, one, one)[:, 0]
    assert torch.allclose(cylinder, torch.tensor([1.0, -1.0, 2.0, -0.5]), atol=1e-5)
    # Cone: bottom radius 1 at y = -1, apex at y = 1.
    cone_pts = torch.tensor([[0.0, 2.0, 0.0], [2.0, -1.0, 0.0], [0.0, -1.5, 0.0]])
    cone = frustum_sdf(cone_pts, torch.zeros(1, 3), one, torch.zeros(1), one)[:, 0]
    assert torch.allclose(cone, torch.tensor([1.0, 1.0, 0.5]), atol=1e-5)


def test_room_sdf_is_a_distance_outside_objects() -> None:
    room = generate_room(5)
    points = (torch.rand(400, 3, generator=torch.Generator().manual_seed(0)) * 6).requires_grad_()
    d = room.sdf(points)
    (grad,) = torch.autograd.grad(d.sum(), points)
    outside = d.detach() > 0.02
    # The union's SDF is exact outside: unit gradient (eikonal).
    assert torch.allclose(grad[outside].norm(dim=1), torch.ones(int(outside.sum())), atol=1e-3)


def test_room_is_deterministic_per_seed() -> None:
    assert generate_room(11).to_json() == generate_room(11).to_json()
    assert generate_room(11).to_json() != generate_room(12).to_json()


def test_room_json_round_trip_keeps_the_sdf() -> None:
    room = generate_room(3)
    again = Room.from_json(json.loads(json.dumps(room.to_json())))
    pts = grid_points(np.array([0.0, -0.15, 0.0]), 12)
    assert torch.equal(room.sdf(pts, 0.2), again.sdf(pts, 0.2))


def test_truncated_tiled_sdf_equals_full_sdf_clamped() -> None:
    room = generate_room(8)
    pts = grid_points(np.array([0.3, -0.15, 0.2]), 24)
    full = room.sdf(pts).clamp(-0.2, 0.2)
    assert torch.allclose(room.sdf(pts, 0.2), full, atol=1e-6)


def test_sdf_sign_on_known_points() -> None:
    room = generate_room(1)
    walls = [b for b in room.layout.boxes if b.cls == "wall"]
    floors = [b for b in room.layout.boxes if b.cls == "floor"]
    inside_wall = [[(b.min[0] + b.max[0]) / 2, 0.3, (b.min[2] + b.max[2]) / 2] for b in walls]
    inside_floor = [[(b.min[0] + b.max[0]) / 2, -0.05, (b.min[2] + b.max[2]) / 2] for b in floors]
    above = [[room.width / 2, room.wall_height + 0.5, room.depth / 2]]
    # Opening boxes' centres lie in the middle of the wall they cut: empty space.
    openings = room.primitives.openings[:, :3].tolist()
    assert len(openings) >= 1
    d_in = room.sdf(torch.tensor(inside_wall + inside_floor))
    d_out = room.sdf(torch.tensor(above + openings))
    assert (d_in < 0).all()
    assert (d_out > 0).all()


@pytest.mark.parametrize("seed", range(6))
def test_furniture_footprints_do_not_overlap_and_stay_inside(seed: int) -> None:
    room = generate_room(seed)
    furniture = [b for b in room.layout.boxes if CLASS_INDEX[b.cls] in FURNITURE]
    assert furniture
    for b in furniture:
        assert b.min[1] >= -1e-9
        assert b.min[0] >= -1e-6 and b.max[0] <= room.width + 1e-6
        assert b.min[2] >= -1e-6 and b.max[2] <= room.depth + 1e-6
    for i, a in enumerate(furniture):
        for b in furniture[i + 1 :]:
            xz_overlap = all(
                a.min[k] < b.max[k] - 1e-6 and b.min[k] < a.max[k] - 1e-6 for k in (0, 2)
            )
            stacked = a.max[1] <= b.min[1] + 1e-6 or b.max[1] <= a.min[1] + 1e-6
            assert not xz_overlap or stacked, (a, b)


def test_block_raster_matches_the_geometry() -> None:
    room = generate_room(24)
    bed = next(b for b in room.layout.boxes if b.cls == "bed")
    x0 = (bed.min[0] + bed.max[0]) / 2 - 1.6
    z0 = (bed.min[2] + bed.max[2]) / 2 - 1.6
    block = extract_block(room, x0, z0, resolution=16)
    n = block.raster.shape[1]
    cx, cz = np.meshgrid(
        x0 + (np.arange(n) + 0.5) * LAYOUT_CELL,
        z0 + (np.arange(n) + 0.5) * LAYOUT_CELL,
        indexing="ij",
    )
    for name, height in (("wall", 0.3), ("bed", 0.25), ("sofa", 0.25), ("cabinet", 0.25)):
        c = CLASS_INDEX[name]
        pts = np.stack([cx.ravel(), np.full(cx.size, height), cz.ravel()], axis=1)
        solid = room.class_sdf(torch.tensor(pts, dtype=torch.float64))[:, c] < 0
        assert np.array_equal(block.raster[c].ravel().astype(bool), solid.numpy()), name
    assert block.raster[CLASS_INDEX["wall"]].any() and block.raster[CLASS_INDEX["bed"]].any()


def test_block_grid_samples_the_room_sdf() -> None:
    room = generate_room(2)
    block = extract_block(room, 0.5, 0.7, resolution=16)
    pts = grid_points(block.origin, 16).reshape(16, 16, 16, 3)
    for idx in [(0, 0, 0), (3, 1, 9), (15, 15, 15), (8, 2, 4)]:
        expected = float(room.sdf(pts[idx][None]).clamp(-0.2, 0.2))
        assert block.sdf[idx] == pytest.approx(expected, abs=1e-6)
    assert block.voxel == pytest.approx(BLOCK_SIZE / 16)


def test_dataset_is_deterministic_and_reads_back(tmp_path) -> None:
    a = write_dataset(tmp_path / "a", n_blocks=3, seed=4, resolution=12, blocks_per_room=2)
    b = write_dataset(tmp_path / "b", n_blocks=3, seed=4, resolution=12, blocks_per_room=2)
    lazy = write_dataset(
        tmp_path / "c", 3, seed=4, resolution=12, blocks_per_room=2, with_sdf=False
    )
    da, db, dl = BlockDataset(a), BlockDataset(b), BlockDataset(lazy)
    assert len(da) == 3 and da.manifest["n_rooms"] == 2
    assert np.array_equal(da.rasters, db.rasters) and np.array_equal(da.origins, db.origins)
    for i in range(3):
        stored = da.block(i)
        assert np.array_equal(stored.sdf, db.block(i).sdf)
        # float16 storage against the exact regeneration from the room file.
        assert np.allclose(stored.sdf, dl.block(i).sdf, atol=2e-4)
        assert stored.layout == da.room(i).layout.crop(stored.origin[0], stored.origin[2])


def test_dataset_refuses_a_non_empty_output(tmp_path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="already exists"):
        write_dataset(tmp_path / "out", n_blocks=1, seed=0, resolution=8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_corrupt_dataset_is_a_user_error(tmp_path) -> None:
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(UserError, match="corrupt"):
        BlockDataset(tmp_path)
