"""Tri-plane fitting: targets, a short fit that learns, save/load round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from difforge.core.errors import UserError
from difforge.scene.data.blocks import room_scene
from difforge.scene.data.geometry import BLOCK_SIZE, NORMALISE_SCALE
from difforge.scene.fit import (
    FitConfig,
    GridSDF,
    block_supervision,
    decode_grids,
    exact_surface_samples,
    fit_triplanes,
    load_planes,
    save_fit,
)
from difforge.scene.triplane import (
    TriPlaneDecoder,
    central_gradient,
    load_decoder,
    sample_triplanes,
)


@pytest.fixture(scope="module")
def scene():
    room, blocks = room_scene(24, 1, 1, resolution=24)
    return room, blocks[0]


def test_exact_surface_samples_lie_on_the_surface_with_unit_normals(scene) -> None:
    room, block = scene
    points, normals = exact_surface_samples(room, block, 500, seed=0)
    d = room.sdf(torch.as_tensor(points, dtype=torch.float64)).numpy()
    assert np.abs(d).max() < 1e-4
    assert np.allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-6)


def test_supervision_is_in_normalised_block_coordinates(scene) -> None:
    room, block = scene
    sup = block_supervision(room, block, n_surface=256, n_space=256, seed=1)
    assert sup.surface.shape == (1, 256, 3) and sup.space_sdf.shape == (1, 256)
    assert sup.space.abs().max() <= 1.0 + 1e-6
    centre = block.origin + BLOCK_SIZE / 2
    world = sup.space[0].double().numpy() / NORMALISE_SCALE + centre
    expected = room.sdf(torch.as_tensor(world), 0.2).numpy() * NORMALISE_SCALE
    assert np.allclose(sup.space_sdf[0].numpy(), expected, atol=1e-5)


def test_triplane_sampling_reads_the_right_planes() -> None:
    planes = torch.zeros(1, 3, 1, 4, 4)
    planes[0, 1] = 1.0  # xz plane only
    planes[0, 2, 0, :, 3] = 5.0  # yz plane: the column for the largest y (width axis = y)
    points = torch.tensor([[[0.0, 0.9, 0.0], [0.0, -0.9, 0.0]]])
    features = sample_triplanes(planes, points)[0, :, 0]
    assert torch.allclose(features, torch.tensor([6.0, 1.0]))


def test_central_gradient_of_a_linear_field() -> None:
    decoder = TriPlaneDecoder(channels=1, hidden=4, layers=1)
    planes = torch.linspace(-1, 1, 8).repeat(1, 3, 1, 8, 1)  # varies along each plane's width
    pts = torch.rand(1, 16, 3) * 1.2 - 0.6
    eps = 1e-3
    grad = central_gradient(decoder, planes, pts, eps)
    for axis in range(3):
        step = torch.zeros(3)
        step[axis] = eps
        numeric = (decoder(planes, pts + step) - decoder(planes, pts - step)) / (2 * eps)
        assert torch.allclose(grad[..., axis], numeric, atol=1e-5)


def test_short_fit_learns_and_round_trips(tmp_path, scene) -> None:
    torch.manual_seed(0)
    room, block = scene
    sup = block_supervision(room, block, n_surface=2048, n_space=2048, seed=0)
    config = FitConfig(
        channels=8, resolution=16, hidden=32, layers=2, iterations=60, points_per_step=256
    )
    decoder = TriPlaneDecoder(channels=8, hidden=32, layers=2)
    planes, history = fit_triplanes(sup, decoder, config, train_decoder=True)
    assert planes.shape == (1, 3, 8, 16, 16)
    first, last = history[0], history[-1]
    assert last["loss"] < 0.6 * first["loss"]
    assert last["sdf_l1_m"] < 0.5 * first["sdf_l1_m"]
    assert last["normal"] < 0.7 * first["normal"]
    grids = decode_grids(decoder, planes, 24)
    agree = np.mean((grids[0] < 0) == (block.sdf < 0))
    # Better than calling everything empty space (the trivial answer for a mostly empty block).
    assert agree > np.mean(block.sdf >= 0) + 0.02

    save_fit(tmp_path, decoder, planes, block.origin[None], config, {"history": history})
    again = load_decoder(tmp_path / "decoder")
    planes_again, origins = load_planes(tmp_path / "planes.safetensors")
    assert np.allclose(origins, block.origin[None])
    assert np.allclose(decode_grids(again, planes_again, 24), grids, atol=1e-6)


def test_bad_decoder_folders_are_user_errors(tmp_path) -> None:
    with pytest.raises(UserError, match="not a tri-plane decoder folder"):
        load_decoder(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "diffusion_pytorch_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(UserError, match="cannot load") as info:
        load_decoder(tmp_path)
    assert "\n" not in str(info.value)


def test_grid_sdf_interpolates_the_stored_grid(scene) -> None:
    _, block = scene
    source = GridSDF(block)
    idx = [(0, 0, 0), (5, 7, 11), (23, 12, 3)]
    pts = torch.as_tensor(np.array([block.origin + (np.array(i) + 0.5) * block.voxel for i in idx]))
    expected = torch.tensor([float(block.sdf[i]) for i in idx], dtype=torch.float64)
    assert torch.allclose(source.sdf(pts), expected, atol=1e-6)
