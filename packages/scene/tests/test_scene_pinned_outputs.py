"""The shipped default model's outputs for a fixed seed, pinned.

A refactor of sampling, the model folder or the configs must not change what the shipped model
generates: a 2x1 scene (block (0, 0) from noise by DPM-Solver++, block (1, 0) by RePaint from its
neighbour's overlap) on the demo room's layout, with the smallest settings, on the CPU. A change
that alters these numbers on purpose updates them and says why in its commit.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from difforge.scene.data.blocks import room_scene_layout
from difforge.scene.model import SceneModel
from difforge.scene.sample import SceneGenerator, generate_scene, scene_mesh

LATENT_HEADS = {
    (0, 0): [-0.22, -0.1892, -0.1106, 0.089],
    (1, 0): [0.2923, 0.1965, 0.2239, 0.1006],
}
LATENT_SUMS = {(0, 0): -105.474, (1, 0): -146.256}
# SDF (metres) of both blocks along one line of their 16^3 grids.
SDF_LINE = [0.0392, 0.2269, 0.2379, 0.2391, -0.0054, 0.267, 0.265, 0.2583]
MESH_VERTICES, MESH_FACES = 2852, 5692


@pytest.fixture(scope="module")
def pinned_scene():
    model = SceneModel.load("default")
    sampling = replace(
        model.sampling,
        steps=4,
        repaint_steps=4,
        jump_length=2,
        jump_n_sample=2,
        grid_resolution=16,
    )
    generator = SceneGenerator(model, "cpu", sampling)
    layout = room_scene_layout(24, 2, 1, sampling.stride)
    return generator, generate_scene(generator, 2, 1, layout, seed=0)


def test_shipped_model_latents_are_pinned(pinned_scene) -> None:
    _, scene = pinned_scene
    assert list(scene.latents) == [(0, 0), (1, 0)]
    for index, latent in scene.latents.items():
        assert latent.shape == (3, 4, 16, 16)
        np.testing.assert_allclose(latent.flatten()[:4].numpy(), LATENT_HEADS[index], atol=2e-3)
        assert float(latent.sum()) == pytest.approx(LATENT_SUMS[index], abs=0.05)


def test_shipped_model_sdf_and_mesh_are_pinned(pinned_scene) -> None:
    generator, scene = pinned_scene
    grids = generator.decode(torch.stack(list(scene.latents.values())))
    np.testing.assert_allclose(grids[:, 8, 8, ::4].flatten(), SDF_LINE, atol=2e-3)
    mesh = scene_mesh(scene, generator)
    assert (len(mesh.vertices), len(mesh.faces)) == (MESH_VERTICES, MESH_FACES)
