"""difforge.traj: road-network trajectory generation with block discrete diffusion (TrajDLM).

``TrajPipeline`` and ``TrajOutput`` (:mod:`difforge.traj.pipeline`) are imported on first use, so
that ``import difforge.traj`` stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["RECIPE_PRESETS", "TRAIN_PRESETS", "TrajOutput", "TrajPipeline", "__version__"]

# The presets read by difforge.core.cli.load_preset: training sizes (tiny, small, default) and
# the training recipes (configs/recipe/: default, tiny, berlin, bikes_zero_shot).
TRAIN_PRESETS = Path(__file__).resolve().parent / "configs" / "train"
RECIPE_PRESETS = Path(__file__).resolve().parent / "configs" / "recipe"

if TYPE_CHECKING:
    from difforge.traj.pipeline import TrajOutput, TrajPipeline


def __getattr__(name: str) -> Any:
    if name in ("TrajPipeline", "TrajOutput"):
        from difforge.traj import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'difforge.traj' has no attribute {name!r}")
