"""Run configs: "no --config" is the default preset, and the default preset is the recipe that
trained the shipped model (its config.json records the settings)."""

from __future__ import annotations

import json

import pytest

from difforge.core.cli import load_preset
from difforge.core.config import to_dict
from difforge.core.errors import ConfigError, UserError
from difforge.scene import DIFFUSION_PRESETS, VAE_PRESETS, cli, train
from difforge.scene.model import DEFAULT_MODEL_DIR
from difforge.scene.run_config import DiffusionRunConfig, VAERunConfig

PRESETS = {"vae": (VAERunConfig, VAE_PRESETS), "diffusion": (DiffusionRunConfig, DIFFUSION_PRESETS)}


def _preset(kind: str, config: str | None, overrides: list[str]):
    cls, presets = PRESETS[kind]
    return load_preset(cls, presets, config, overrides)


@pytest.mark.parametrize("kind", ["vae", "diffusion"])
def test_no_config_resolves_to_the_default_preset(kind) -> None:
    assert _preset(kind, None, []) == _preset(kind, "default", [])
    overrides = ["train.steps=7"]
    with_override = _preset(kind, None, overrides)
    assert with_override == _preset(kind, "default", overrides)
    assert with_override.train.steps == 7


@pytest.mark.parametrize("kind, cls", [("vae", VAERunConfig), ("diffusion", DiffusionRunConfig)])
def test_the_default_preset_trains_like_the_class_defaults(kind, cls) -> None:
    # Only the console settings differ: a preset trains without a progress bar or tensorboard.
    preset = to_dict(_preset(kind, None, []))
    defaults = to_dict(cls())
    for key in ("tensorboard", "progress"):
        preset["train"].pop(key), defaults["train"].pop(key)
    assert preset == defaults


def test_the_default_diffusion_preset_is_the_shipped_models_recipe() -> None:
    shipped = json.loads((DEFAULT_MODEL_DIR / "config.json").read_text())["training"]["config"]
    preset = to_dict(_preset("diffusion", None, []))
    shipped.pop("time_limit_s"), preset.pop("time_limit_s")  # gpu_run.sh's budget, not a setting
    assert preset["model"] == shipped["model"]
    assert preset["train"] == shipped["train"]
    assert {k: preset[k] for k in ("cond_dropout", "flips")} == {
        k: shipped[k] for k in ("cond_dropout", "flips")
    }


@pytest.mark.parametrize("command, kind", [("train-vae", "vae"), ("train", "diffusion")])
def test_the_train_commands_without_config_use_the_default_preset(monkeypatch, command, kind):
    seen = []
    target = "train_vae" if kind == "vae" else "train_diffusion"

    def record(*args, **kwargs):
        seen.append(next(a for a in args if isinstance(a, (VAERunConfig, DiffusionRunConfig))))
        raise UserError("stop here")

    monkeypatch.setattr(train, target, record)
    argv = [command, "--fit", "f", "--out", "o"] + (["--vae", "raw"] if kind == "diffusion" else [])
    assert cli.main(argv) == 2
    assert cli.main([*argv, "--config", "default"]) == 2
    assert seen[0] == seen[1] == _preset(kind, "default", [])


def test_an_unknown_preset_names_the_presets() -> None:
    with pytest.raises(ConfigError, match="presets: default, tiny"):
        _preset("vae", "huge", [])
