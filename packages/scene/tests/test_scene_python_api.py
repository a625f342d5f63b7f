"""The Python API: ScenePipeline and SceneOutput, and the README's example, executed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import trimesh

from difforge.core.errors import UserError
from difforge.scene import SceneOutput, ScenePipeline
from difforge.scene.sample import generate_scene

README = Path(__file__).resolve().parents[1] / "README.md"
QUICK = {"steps": 2, "repaint_steps": 2, "jump_length": 1, "jump_n_sample": 1, "grid_resolution": 16}  # fmt: skip


def readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Python API\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S)[1]


def test_the_readme_example_runs(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_example(), str(README), "exec"), namespace)
    assert len(namespace["out"].latents) == 2 and len(namespace["bigger"].latents) == 3
    assert len(trimesh.load(tmp_path / "scene.glb", force="mesh").faces) > 0
    assert len(trimesh.load(tmp_path / "scene_bigger.ply", force="mesh").faces) > 0


@pytest.fixture(scope="module")
def pipe() -> ScenePipeline:
    return ScenePipeline.from_pretrained("default")


def test_the_pipeline_generates_what_the_command_line_generates(pipe) -> None:
    assert pipe.to("cpu") is pipe and pipe.to(torch.device("cpu")) is pipe
    out = pipe(None, blocks=(1, 1), seed=3, **QUICK)
    assert isinstance(out, SceneOutput) and out.layout is None
    reference = generate_scene(pipe.generator(**QUICK), 1, 1, None, 3)
    assert torch.equal(out.latents[(0, 0)], reference.latents[(0, 0)])
    assert len(out.mesh.faces) > 0


def test_output_save_by_suffix_and_scene_folders(pipe, tmp_path) -> None:
    out = pipe(None, blocks=(1, 1), seed=0, **QUICK)
    for suffix in (".glb", ".ply", ".obj"):
        assert out.save(tmp_path / f"s{suffix}").is_file()
    with pytest.raises(UserError, match="use one of"):
        out.save(tmp_path / "s.stl")
    folder = out.save(tmp_path / "scene")
    assert (folder / "scene.json").is_file() and (folder / "scene.glb").is_file()
    (tmp_path / "precious").mkdir()
    with pytest.raises(UserError, match="not a scene folder"):
        out.save(tmp_path / "precious")
    grown = pipe.expand(folder, "+x", **QUICK)
    assert sorted(grown.latents) == [(0, 0), (1, 0)]
    assert list(out.latents) == [(0, 0)]  # the input is left as it was


def test_sampling_overrides_are_checked(pipe) -> None:
    with pytest.raises(UserError, match="unknown sampling setting"):
        pipe(None, stepz=3)
    with pytest.raises(UserError, match="steps"):
        pipe(None, steps=0)
