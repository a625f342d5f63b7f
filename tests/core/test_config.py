"""difforge.core.config: YAML + key=value overrides into frozen dataclasses, errors naming the key."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from difforge.core.config import (
    apply_overrides,
    config_diff,
    from_dict,
    load_config,
    load_yaml,
    save_config,
    to_dict,
)
from difforge.core.errors import ConfigError
from difforge.core.train import TrainConfig


@dataclass(frozen=True)
class ModelConfig:
    hidden_size: int = 64
    num_layers: int = 2
    dropout: float = 0.0
    pos_embedding: Literal["rope", "learned"] = "rope"


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    teacher: ModelConfig | None = None
    name: str | None = None
    image_size: tuple[int, int] = (32, 32)
    channels: list[int] = field(default_factory=lambda: [1, 2])
    data_dir: Path = Path("data")
    verbose: bool = False


@dataclass(frozen=True)
class NeedsVocab:
    vocab_size: int
    hidden_size: int = 8


def test_yaml_file_then_overrides_build_typed_frozen_config(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(
        "model:\n  hidden_size: 128\n  dropout: 0   # an int where a float is expected\n"
        "train:\n  lr: 3e-4\n  mixed_precision: bf16\n  betas: [0.9, 0.95]\n"
        "image_size: [64, 48]\nverbose: true\n"
    )
    config = load_config(
        RunConfig,
        path,
        ["model.num_layers=6", "train.steps=20", "teacher.hidden_size=32", "name=run1"],
    )
    assert config.model == ModelConfig(hidden_size=128, num_layers=6, dropout=0.0)
    assert isinstance(config.model.dropout, float)
    assert config.train.lr == pytest.approx(3e-4) and config.train.steps == 20
    assert config.train.mixed_precision == "bf16" and config.train.betas == (0.9, 0.95)
    assert config.teacher == ModelConfig(hidden_size=32)
    assert config.image_size == (64, 48) and config.name == "run1" and config.verbose is True
    assert config.data_dir == Path("data")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.name = "x"  # type: ignore[misc]


def test_yaml_reads_scalars_the_yaml_1_2_way() -> None:
    # YAML 1.1 (plain PyYAML) turns `no` into False and leaves 1e-4 a string.
    assert load_yaml("a: no\nb: 1e-4\nc: off\nd: true\ne: -2E3\nf: 1.5") == {
        "a": "no",
        "b": 1e-4,
        "c": "off",
        "d": True,
        "e": -2000.0,
        "f": 1.5,
    }
    assert (
        load_config(RunConfig, overrides=["train.mixed_precision=no"]).train.mixed_precision == "no"
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "model.hiden_size=3",
            "unknown config key 'model.hiden_size' (did you mean 'model.hidden_size'?)",
        ),
        (
            "modle.hidden_size=3",
            "unknown config key 'modle.hidden_size' (did you mean 'model.hidden_size'?)",
        ),
        (
            "zzz=1",
            "unknown config key 'zzz' (known keys: model, train, teacher, name, image_size, channels, data_dir, verbose)",
        ),
        (
            "name.first=1",
            "unknown config key 'name.first' ('name' is a value, not a group of keys)",
        ),
        ("train.lr=fast", "config key 'train.lr' expects float, got 'fast' (str)"),
        ("model.num_layers=2.5", "config key 'model.num_layers' expects int, got 2.5 (float)"),
        ("train.steps=true", "config key 'train.steps' expects int, got True (bool)"),
        ("verbose=1", "config key 'verbose' expects bool, got 1 (int)"),
        (
            "train.mixed_precision=fp16",
            "config key 'train.mixed_precision' expects one of 'no', 'bf16', got 'fp16' (str)",
        ),
        (
            "image_size=[1]",
            "config key 'image_size' expects 2 values (tuple[int, int]), got [1] (list)",
        ),
        ("channels=[1, x]", "config key 'channels[1]' expects int, got 'x' (str)"),
        ("name=[1]", "config key 'name' expects str | None, got [1] (list)"),
        ("model=3", "config key 'model' expects a mapping, got 3 (int)"),
        ("train.lr=-1", "config key 'train.lr' must be > 0, got -1.0"),
        ("train.ema_decay=1", "config key 'train.ema_decay' must be in [0, 1), got 1.0"),
        ("lr", "override 'lr' is not of the form key=value (e.g. model.hidden_size=256)"),
        (
            "train.lr=[1",
            "invalid YAML in override train.lr line 1 column 3: expected ',' or ']', but got '<stream end>'",
        ),
    ],
)
def test_bad_override_names_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(RunConfig, overrides=[override])
    assert str(info.value) == message
    assert info.value.exit_code == 2


def test_bad_yaml_file_errors_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  hiden_size: 3\n")
    with pytest.raises(
        ConfigError,
        match=r"^unknown config key 'model.hiden_size' \(did you mean 'model.hidden_size'\?\)$",
    ):
        load_config(RunConfig, path)
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="must hold a mapping of keys"):
        load_config(RunConfig, path)
    path.write_text("model: {hidden_size: 3\n")
    with pytest.raises(ConfigError, match=r"^invalid YAML in .*bad.yaml line \d+ column \d+"):
        load_config(RunConfig, path)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(RunConfig, tmp_path / "missing.yaml")


def test_missing_required_key_is_named() -> None:
    with pytest.raises(
        ConfigError, match=r"^missing config key 'vocab_size' \(it has no default\)$"
    ):
        from_dict(NeedsVocab, {"hidden_size": 4})
    assert from_dict(NeedsVocab, {"vocab_size": 10}) == NeedsVocab(vocab_size=10)


def test_apply_overrides_returns_a_new_validated_config() -> None:
    base = RunConfig()
    changed = apply_overrides(base, ["model.hidden_size=256", "train.betas=[0.8, 0.9]"])
    assert changed.model.hidden_size == 256 and changed.train.betas == (0.8, 0.9)
    assert base.model.hidden_size == 64
    assert apply_overrides(changed, ["teacher=", "name=~"]).teacher is None  # empty value -> None


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_save_and_load_round_trip(tmp_path: Path, suffix: str) -> None:
    config = load_config(
        RunConfig, overrides=["teacher.dropout=0.5", "train.mixed_precision=no", "name='a: b'"]
    )
    path = tmp_path / f"saved{suffix}"
    save_config(config, path)
    assert load_config(RunConfig, path) == config
    assert not [p for p in tmp_path.iterdir() if p.name != path.name]  # no temp file left behind


def test_config_diff_lists_differing_dotted_keys() -> None:
    a = RunConfig()
    b = apply_overrides(a, ["model.hidden_size=1", "train.lr=1.0", "teacher.num_layers=3"])
    assert config_diff(a, a) == []
    assert config_diff(a, b) == ["model.hidden_size", "train.lr", "teacher"]
    assert config_diff(to_dict(b), b) == []
    assert config_diff({"x": {"y": 1}}, {"x": {"y": 1, "z": 2}, "w": [1]}) == ["x.z", "w"]


@dataclass(frozen=True)
class _Inner:
    steps: int = 10
    lr: float = 1e-4
    batch_size: int = 32


@dataclass(frozen=True)
class _Deep:
    inner: _Inner = field(default_factory=lambda: _Inner(lr=5e-3))


@dataclass(frozen=True)
class _Preset:
    train: _Inner = field(default_factory=lambda: _Inner(lr=2e-3, batch_size=1024))
    deep: _Deep = field(default_factory=lambda: _Deep(inner=_Inner(batch_size=7)))
    optional: _Inner | None = None


def test_one_override_keeps_the_rest_of_a_factory_default_group() -> None:
    cfg = load_config(_Preset, None, ["train.steps=5"])
    assert cfg.train == _Inner(steps=5, lr=2e-3, batch_size=1024)
    # nested two levels down: the outer factory's value wins over the inner class default
    cfg = load_config(_Preset, None, ["deep.inner.steps=3"])
    assert cfg.deep.inner == _Inner(steps=3, lr=1e-4, batch_size=7)
    # an optional group with no default is built from its class defaults
    assert load_config(_Preset, None, ["optional.steps=2"]).optional == _Inner(steps=2)


def test_a_yaml_group_is_laid_over_the_factory_default(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  steps: 9\n")
    assert load_config(_Preset, path).train == _Inner(steps=9, lr=2e-3, batch_size=1024)


def test_a_deeply_nested_config_file_is_named_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigError, match=r"deep.yaml is nested too deeply to be a config"):
        load_config(_Preset, path)
