"""Expansion extends the scene: outside the blending band the existing surface stays put."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from difforge.scene.data.blocks import room_scene
from difforge.scene.expansion import compare_expansion_blending
from difforge.scene.meshing import SEAM_BAND, blend_block_stages, blend_blocks


@pytest.fixture(scope="module")
def room_blocks():
    """Blocks (0, 0), (1, 0) of a procedural room at 32^3; the new block disagrees with the old
    one by a 4 cm offset of its SDF, as a generated neighbour would."""
    _, blocks = room_scene(3, 2, 1, resolution=32)
    old, new = blocks
    return [old], [replace(new, sdf=new.sdf + 0.04)]


def test_one_stage_equals_the_plain_blend(room_blocks) -> None:
    old, new = room_blocks
    staged, origin, _ = blend_block_stages([[*old, *new]])
    plain, plain_origin, _ = blend_blocks([*old, *new])
    np.testing.assert_array_equal(staged, plain)
    np.testing.assert_array_equal(origin, plain_origin)


def test_expansion_moves_existing_surface_less_than_a_millimetre_outside_the_band(
    room_blocks,
) -> None:
    old, new = room_blocks
    report = compare_expansion_blending(old, new)
    staged, alike = report["staged"], report["all_blocks_alike"]
    assert staged["vertices_outside_band"] > 1000
    assert staged["max_move_outside_mm"] < 1.0
    # Blending every block alike (what expansion did before) moves it by centimetres.
    assert alike["max_move_outside_mm"] > 10.0
    assert staged["open_boundary_m"] == 0.0
    assert report["sdf_disagreement_cm"] == pytest.approx(4.0, abs=0.01)
    assert report["band_m"] == SEAM_BAND


def test_expanding_a_generated_scene_leaves_it_alone_outside_the_band(trained, tmp_path) -> None:
    """Tiny trained model: generate 1x2, expand +x, measure the existing surface's movement."""
    from difforge.scene.expansion import expansion_report
    from difforge.scene.meshing import mesh_from_sdf
    from difforge.scene.pipeline import ScenePipeline
    from difforge.scene.sample import load_scene, scene_field

    pipe = ScenePipeline.from_pretrained(trained / "model")
    settings = {"steps": 2, "repaint_steps": 2, "jump_length": 1, "jump_n_sample": 1}
    first = pipe(None, (1, 2), seed=3, grid_resolution=32, **settings)
    first.save(tmp_path / "scene")
    grown = pipe.expand(tmp_path / "scene", "+x", grid_resolution=32, **settings)
    grown.save(tmp_path / "grown")
    assert load_scene(tmp_path / "grown").stages == {(0, 0): 0, (0, 1): 0, (1, 0): 1, (1, 1): 1}
    generator = pipe.generator(grid_resolution=32, **settings)
    before = mesh_from_sdf(*scene_field(first.scene, generator))
    after = mesh_from_sdf(*scene_field(grown.scene, generator))
    blocks = grown.scene.blocks(generator)
    old = [b for i, b in zip(grown.latents, blocks) if i in first.latents]
    new = [b for i, b in zip(grown.latents, blocks) if i not in first.latents]
    report = expansion_report(before, after, old, new)
    assert report["vertices_outside_band"] > 0
    assert report["max_move_outside_mm"] < 1.0
    assert (tmp_path / "grown" / "scene.html").is_file()
