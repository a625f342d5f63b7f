"""difforge.hair: 3D hair strands from one picture (after DiffLocks).

Procedural styles and their renders (``data``, ``render``), the strand codec and the
scalp-texture DiT (``codec``, ``model``, ``train``), generation (``sample``), the metrics and
the baselines (``evaluate``, ``baselines``), strand files (``export``). The shipped default
model is ``weights/default``. Python API: :class:`HairPipeline` (README.md, "Python API").
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

__all__ = ["CODEC_PRESETS", "DIFFUSION_PRESETS", "RECIPE_PRESETS", "HairOutput", "HairPipeline"]

# The named configs, read by difforge.core.cli.load_preset (configs/<kind>/<name>.yaml).
CODEC_PRESETS = Path(__file__).resolve().parent / "configs" / "codec"
DIFFUSION_PRESETS = Path(__file__).resolve().parent / "configs" / "diffusion"
RECIPE_PRESETS = Path(__file__).resolve().parent / "configs" / "recipe"

if TYPE_CHECKING:
    from difforge.hair.pipeline import HairOutput, HairPipeline


def __getattr__(name: str) -> Any:
    # Lazily: importing the package stays cheap (no torch) for the data-only commands.
    if name in ("HairOutput", "HairPipeline"):
        from difforge.hair import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'difforge.hair' has no attribute {name!r}")
