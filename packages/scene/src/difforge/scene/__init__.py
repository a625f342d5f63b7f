"""difforge.scene: expandable 3D indoor scenes built block by block (after BlockFusion).

The whole pipeline: procedural rooms with an analytic SDF and users' meshes cut into 3.2 m blocks
(``data``), tri-planes fitted per block with one shared decoder (``fit``), a tri-plane VAE and a
layout-conditioned latent DiT (``model``, ``train``), generation and RePaint expansion into scene
folders with seamless blended meshing (``sample``, ``meshing``), a CPU renderer and the evaluation
protocol against a retrieval baseline (``evaluate``, ``evaluate_model``, ``baseline``). The shipped
default model is ``weights/default``. Python API: :class:`ScenePipeline` (README.md, "Python API").
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = [
    "DIFFUSION_PRESETS",
    "RECIPE_PRESETS",
    "VAE_PRESETS",
    "SceneOutput",
    "ScenePipeline",
    "__version__",
]

# The named configs, read by difforge.core.cli.load_preset (configs/<kind>/<name>.yaml).
VAE_PRESETS = Path(__file__).resolve().parent / "configs" / "vae"
DIFFUSION_PRESETS = Path(__file__).resolve().parent / "configs" / "diffusion"
RECIPE_PRESETS = Path(__file__).resolve().parent / "configs" / "recipe"

if TYPE_CHECKING:
    from difforge.scene.pipeline import SceneOutput, ScenePipeline


def __getattr__(name: str) -> Any:
    # Lazily: importing the package stays cheap (no torch) for the data-only commands.
    if name in ("ScenePipeline", "SceneOutput"):
        from difforge.scene import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'difforge.scene' has no attribute {name!r}")
