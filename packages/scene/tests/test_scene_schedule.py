"""The noise schedule and the RePaint settings are saved in the model folder's config.json and
read back: a model samples the way it was trained, not the way the code's defaults say."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from difforge.scene.model import DEFAULT_MODEL_DIR, NoiseSchedule, SamplingConfig, SceneModel
from difforge.scene.sample import SceneGenerator

FAST = {"steps": 2, "repaint_steps": 2, "jump_length": 1, "jump_n_sample": 1}
SHIPPED_SCHEDULE = {
    "prediction_type": "v_prediction",
    "num_train_timesteps": 1000,
    "beta_schedule": "linear",
}


def _copy_of_default(folder: Path, edit) -> Path:
    """The shipped model folder with an edited config.json (weights linked, never copied)."""
    folder.mkdir()
    for part in ("decoder", "vae", "diffusion"):
        (folder / part).symlink_to(DEFAULT_MODEL_DIR / part, target_is_directory=True)
    meta = json.loads((DEFAULT_MODEL_DIR / "config.json").read_text())
    edit(meta["sampling"])
    (folder / "config.json").write_text(json.dumps(meta))
    return folder


def _latents(model: SceneModel) -> torch.Tensor:
    generator = SceneGenerator(model, "cpu", replace(model.sampling, **FAST))
    return generator.sample_latents(np.zeros((1, 9, 32, 32), dtype=np.uint8), seed=0)


def _inpainted(model: SceneModel) -> torch.Tensor:
    generator = SceneGenerator(model, "cpu", replace(model.sampling, **FAST))
    known = torch.zeros(1, *generator.latent_shape)
    mask = torch.zeros(1, 3, 1, *generator.latent_shape[-2:])
    mask[..., :4] = 1.0
    rasters = np.zeros((1, 9, 32, 32), dtype=np.uint8)
    return generator.inpaint_latents(rasters, known, mask, seed=0)


def test_the_shipped_model_folder_holds_its_schedule() -> None:
    sampling = json.loads((DEFAULT_MODEL_DIR / "config.json").read_text())["sampling"]
    assert sampling["schedule"] == SHIPPED_SCHEDULE and sampling["repaint_eta"] == 1.0
    model = SceneModel.load("default")
    assert model.sampling.schedule == NoiseSchedule(**SHIPPED_SCHEDULE)
    scheduler = SceneGenerator(model).scheduler
    assert scheduler.config.beta_schedule == "linear"
    assert scheduler.config.prediction_type == "v_prediction"


def test_an_old_folder_without_the_schedule_loads_with_the_shipped_values(tmp_path) -> None:
    def strip(sampling: dict) -> None:
        del sampling["schedule"], sampling["repaint_eta"]

    old = SceneModel.load(_copy_of_default(tmp_path / "old", strip))
    assert old.sampling == SceneModel.load("default").sampling
    assert old.sampling.schedule == NoiseSchedule(**SHIPPED_SCHEDULE)


def test_the_schedule_round_trips_through_save_and_load(tmp_path) -> None:
    model = SceneModel.load("default")
    changed = replace(
        model.sampling,
        repaint_eta=0.5,
        schedule=NoiseSchedule(num_train_timesteps=500, beta_schedule="scaled_linear"),
    )
    replace(model, sampling=changed).save(tmp_path / "model")
    assert SceneModel.load(tmp_path / "model").sampling == changed
    saved = json.loads((tmp_path / "model" / "config.json").read_text())["sampling"]
    assert saved["schedule"]["num_train_timesteps"] == 500


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s["schedule"].update(beta_schedule="scaled_linear"),
        lambda s: s["schedule"].update(num_train_timesteps=500),
    ],
    ids=["beta_schedule", "num_train_timesteps"],
)
def test_a_changed_schedule_in_config_json_changes_sampling(tmp_path, edit) -> None:
    reference = SceneModel.load("default")
    changed = SceneModel.load(_copy_of_default(tmp_path / "changed", edit))
    assert not torch.allclose(_latents(reference), _latents(changed))
    assert not torch.allclose(_inpainted(reference), _inpainted(changed))


def test_a_changed_repaint_eta_in_config_json_changes_expansion(tmp_path) -> None:
    reference = SceneModel.load("default")
    changed = SceneModel.load(
        _copy_of_default(tmp_path / "eta", lambda s: s.update(repaint_eta=0.0))
    )
    assert torch.equal(_latents(reference), _latents(changed))  # plain sampling: no RePaint
    assert not torch.allclose(_inpainted(reference), _inpainted(changed))


def test_sampling_config_checks_the_schedule() -> None:
    with pytest.raises(ValueError, match="num_train_timesteps"):
        SamplingConfig(schedule=NoiseSchedule(num_train_timesteps=1))
    with pytest.raises(ValueError, match="repaint_eta"):
        SamplingConfig(repaint_eta=2.0)
