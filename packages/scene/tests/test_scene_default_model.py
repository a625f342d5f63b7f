"""The shipped default model: inside the size budget and the package data, resolved by
``--model default``, used by the demo, and following a layout it has never seen."""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import replace

import numpy as np

from difforge.scene import demo
from difforge.scene.data.blocks import room_scene
from difforge.scene.model import DEFAULT_MODEL_DIR, SceneModel, resolve_model_dir
from difforge.scene.sample import SceneGenerator

PACKAGE_DIR = DEFAULT_MODEL_DIR.parents[1]
PYPROJECT = PACKAGE_DIR.parents[2] / "pyproject.toml"
SIZE_BUDGET_BYTES = 15_000_000


def test_default_model_ships_within_budget_and_in_the_package_data() -> None:
    assert resolve_model_dir("default") == DEFAULT_MODEL_DIR
    files = [p for p in DEFAULT_MODEL_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= SIZE_BUDGET_BYTES
    weights = {p.parent.name for p in files if p.suffix == ".safetensors"}
    assert weights == {"decoder", "vae", "diffusion"}
    assert {p.suffix for p in files} == {".json", ".safetensors"}  # nothing pickled
    patterns = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-data"]
    relative = [p.relative_to(PACKAGE_DIR).as_posix() for p in files]
    missing = [
        r for r in relative if not any(fnmatch.fnmatch(r, g) for g in patterns["difforge.scene"])
    ]
    assert missing == []


def test_demo_uses_the_shipped_default_model(tmp_path, monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(demo, "_model_section", lambda out, model, size: calls.append(model))
    demo.run(tmp_path)
    assert calls == ["default"]


def test_default_model_follows_a_held_out_layout() -> None:
    # The demo room (seed 24, sized to the 2x2 grid) is not a training room (those are drawn from
    # SeedSequence([1000, i]) with free sizes). Away from the surface, the generated block must be
    # solid and empty where the exact room is: a model that ignores its layout does not reach
    # 98.5 % (unconditional samples of this model on this block: 92-97 %); the shipped model
    # reaches 99.6 % (32^3 grid, 8 steps).
    _, blocks = room_scene(demo.DEMO_SEED, 2, 2, resolution=32)
    block = blocks[0]  # the demo scene's first block
    model = SceneModel.load("default")
    generator = SceneGenerator(model, "cpu", replace(model.sampling, steps=8))
    grid = generator.decode(generator.sample_latents(block.raster[None], seed=0), 32)[0]
    away = np.abs(block.sdf) > 0.1
    agreement = np.mean((grid < 0)[away] == (block.sdf < 0)[away])
    assert agreement > 0.985, agreement
