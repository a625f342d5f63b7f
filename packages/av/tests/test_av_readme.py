"""The README's Python example runs as written (with a tiny untrained model in models/av)."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from difforge.av import TRAIN_PRESETS
from difforge.av.sample import save_model
from difforge.av.train import AVConfig, SamplingConfig, build_model
from difforge.core.cli import load_preset

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs(tmp_path, monkeypatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    tiny = load_preset(AVConfig, TRAIN_PRESETS, "tiny").model
    save_model(tmp_path / "models" / "av", build_model(tiny), SamplingConfig(steps=2), {})
    namespace: dict = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)
    assert (tmp_path / "clip.mp4").is_file()
    assert namespace["clips"][0].video.shape == (16, 64, 64, 3)
