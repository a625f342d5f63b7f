"""``HairPipeline``: the README's example runs as written; pictures as files or arrays; outputs
saved by suffix; the model folder's sampling settings apply unless the call overrides them."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from difforge.core.errors import UserError
from difforge.hair import HairOutput, HairPipeline
from difforge.hair.codec import StrandCodec
from difforge.hair.demo import HELD_OUT_PICTURES
from difforge.hair.export import read_npz, read_ply, read_strands
from difforge.hair.model import HairModel, SamplingConfig, ScalpDiffusion

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_python_example() -> str:
    section = README.read_text(encoding="utf-8").split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_the_readme_example_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_python_example(), str(README), "exec"), namespace)
    out = namespace["out"]
    assert isinstance(out, HairOutput) and out.n_strands == 2000
    assert len(read_ply(tmp_path / "groom.ply")) == 2000


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    codec = StrandCodec(n_points=16, latent_dim=4, encoder_channels=(8, 16), decoder_width=32,
                        decoder_layers=2)  # fmt: skip
    diffusion = ScalpDiffusion(texture_channels=5, resolution=8, patch_size=2, image_size=64,
                               encoder_channels=(8, 16, 16), token_grid=8, hidden_size=32,
                               num_layers=2, num_heads=2)  # fmt: skip
    folder = tmp_path_factory.mktemp("model") / "m"
    HairModel(codec, diffusion, SamplingConfig(steps=2, root_candidates=300)).save(folder)
    return folder


def test_pictures_as_arrays_and_outputs_by_suffix(tiny_folder, tmp_path):
    pipe = HairPipeline.from_pretrained(tiny_folder)
    assert pipe.to(torch.device("cpu")) is pipe and pipe.sampling.steps == 2
    picture = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    out = pipe(picture, seed=1, strands=150)
    assert out.n_strands == 150 and out.points.shape == (150, 16, 3)
    assert out.image.shape == (64, 64, 3) and any("centre-cropped" in note for note in out.notes)
    np.testing.assert_array_equal(pipe(picture, seed=1, strands=150).points, out.points)
    for suffix in (".ply", ".obj", ".npz", ".usda"):
        saved = out.save(tmp_path / f"groom{suffix}")
        np.testing.assert_allclose(read_strands(saved), out.points, atol=1e-6)
    np.testing.assert_array_equal(read_npz(tmp_path / "groom.npz")[1], out.root_uv)
    with pytest.raises(UserError, match="unknown strand format"):
        out.save(tmp_path / "groom.txt")
    with pytest.raises(UserError, match="uint8"):
        pipe(picture.astype(np.float32))


def test_call_keywords_override_the_folders_sampling_settings(tiny_folder):
    pipe = HairPipeline.from_pretrained(tiny_folder)
    picture = HELD_OUT_PICTURES / "heldout_bob_1000108.png"
    plain = pipe(picture, seed=0, strands=100)
    assert not np.allclose(pipe(picture, seed=0, strands=100, steps=5).points, plain.points)
    np.testing.assert_array_equal(pipe(picture, seed=0, strands=100).points, plain.points)
    kept = pipe(picture, seed=0)  # the folder's 300 root candidates, kept with the density
    assert 0 < kept.n_strands <= 300
    with pytest.raises(TypeError, match="unknown sampling settings: step"):
        pipe(picture, step=5)
