"""Where the named configs live: ``configs/<kind>/<name>.yaml``, read by
``difforge.core.cli.load_preset``. A module of its own so that the command line finds them
without importing the model code."""

from __future__ import annotations

from pathlib import Path

CONFIGS_DIR = Path(__file__).resolve().parent / "configs"
CODEC_PRESETS = CONFIGS_DIR / "codec"
DIFFUSION_PRESETS = CONFIGS_DIR / "diffusion"
RECIPE_PRESETS = CONFIGS_DIR / "recipe"
