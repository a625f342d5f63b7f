"""Model folders: "default" vs a path, JSON metadata, save_pretrained components."""

from __future__ import annotations

import pytest
import torch

from difforge.core.errors import CheckpointError, UserError
from difforge.core.nn.dit import DiTBackbone
from difforge.core.pretrained import (
    load_component,
    read_json_object,
    read_model_meta,
    resolve_model_dir,
    save_component,
    split_model_meta,
    write_model_meta,
)


def test_resolve_model_dir_names_the_package_and_the_missing_file(tmp_path):
    shipped = tmp_path / "weights" / "default"
    with pytest.raises(UserError, match=r"default model is missing: .*`difforge-x train`"):
        resolve_model_dir("default", shipped, "difforge-x")
    shipped.mkdir(parents=True)
    (shipped / "config.json").write_text("{}")
    assert resolve_model_dir("default", shipped, "difforge-x") == shipped
    with pytest.raises(UserError, match="not a difforge-x model folder"):
        resolve_model_dir(tmp_path, shipped, "difforge-x")
    assert resolve_model_dir(str(shipped), tmp_path / "nowhere", "difforge-x") == shipped


def test_read_json_object_refuses_broken_and_non_object_files(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"a": 1}')
    assert read_json_object(path) == {"a": 1}
    path.write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="not a JSON object"):
        read_json_object(path)
    path.write_text("{broken")
    with pytest.raises(CheckpointError, match="unreadable"):
        read_json_object(path)


def test_load_component_round_trips_safetensors_in_float32_eval_mode(tmp_path):
    model = DiTBackbone(in_channels=4, hidden_size=32, num_layers=1, num_heads=2)
    save_component(model, tmp_path / "dit")  # float16 on disk
    assert (tmp_path / "dit" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = load_component(DiTBackbone, tmp_path / "dit")
    assert not loaded.training and next(loaded.parameters()).dtype == torch.float32
    for a, b in zip(model.parameters(), loaded.parameters()):
        torch.testing.assert_close(a.half().float(), b)
    (tmp_path / "dit" / "diffusion_pytorch_model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="cannot load"):
        load_component(DiTBackbone, tmp_path / "dit")
    with pytest.raises(CheckpointError, match=r"config\.json not found"):
        load_component(DiTBackbone, tmp_path)


def test_save_component_keeps_float32_when_asked(tmp_path):
    model = DiTBackbone(in_channels=4, hidden_size=32, num_layers=1, num_heads=2)
    with torch.no_grad():
        next(model.parameters()).add_(1e-4)  # below float16 resolution around 1
    save_component(model, tmp_path / "exact", float16=False)
    save_component(model, tmp_path / "half")
    exact = load_component(DiTBackbone, tmp_path / "exact")
    half = load_component(DiTBackbone, tmp_path / "half")
    for a, b in zip(model.parameters(), exact.parameters()):
        assert torch.equal(a, b)
    assert any(not torch.equal(a, b) for a, b in zip(model.parameters(), half.parameters()))
    assert next(model.parameters()).dtype == torch.float32  # the caller's model is untouched


def test_read_model_meta_checks_the_model_type(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "difforge-x", "sampling": {}}')
    assert read_model_meta(tmp_path, "difforge-x")["sampling"] == {}
    with pytest.raises(CheckpointError, match="not a difforge-y model folder"):
        read_model_meta(tmp_path, "difforge-y")


def test_model_meta_round_trips_sampling_and_info(tmp_path):
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Sampling:
        steps: int = 20

    write_model_meta(tmp_path, "difforge-x", Sampling(steps=7), {"training": {"steps": 3}})
    sampling, info = split_model_meta(read_model_meta(tmp_path, "difforge-x"), Sampling)
    assert sampling == Sampling(steps=7) and info == {"training": {"steps": 3}}
