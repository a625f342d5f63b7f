"""Gallery demo: a procedural 2 x 2-block room, blended and meshed once, as GLB + PNG.

Until the diffusion model ships, the blocks come from the procedural generator (the same blocks the
model is trained on); the lead switches this to model output later.
"""

from __future__ import annotations

import os
from pathlib import Path

from difforge.core.gallery import DemoSection
from difforge.scene.data.blocks import room_scene
from difforge.scene.data.geometry import DEFAULT_RESOLUTION
from difforge.scene.meshing import colour_by_class, export_mesh, mesh_blocks
from difforge.scene.render import render_png

# A seed whose room shows every class: bed with nightstand and lamp, desk and chair, sofa,
# cabinet, stool.
DEMO_SEED = 24


def run(
    out_dir: str | os.PathLike[str],
    *,
    resolution: int = DEFAULT_RESOLUTION,
    image_size: tuple[int, int] = (960, 720),
) -> list[DemoSection]:
    """Write the demo scene into ``out_dir``; returns its gallery section."""
    out = Path(out_dir)
    room, blocks = room_scene(DEMO_SEED, 2, 2, resolution=resolution)
    mesh = mesh_blocks(blocks)
    colour_by_class(mesh, room)
    glb = export_mesh(mesh, out / "scene_procedural_2x2.glb")
    png = render_png(
        mesh, out / "scene_procedural_2x2.png", width=image_size[0], height=image_size[1]
    )
    return [
        DemoSection(
            title="scene: procedural room, 2x2 blocks (data generator; no trained model yet)",
            description=(
                f"Procedural room (seed {DEMO_SEED}) cut into 2x2 overlapping 3.2 m blocks, the "
                "blocks' SDFs blended across the overlaps and meshed in one marching-cubes pass. "
                "This is the training data the latent tri-plane diffusion model will learn; the "
                "model itself has not landed yet."
            ),
            images=[png],
            files=[glb],
            metrics={"vertices": len(mesh.vertices), "faces": len(mesh.faces)},
        )
    ]
