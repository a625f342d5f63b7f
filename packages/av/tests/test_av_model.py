"""The joint DiT: shapes, shared time axis, cross-modal paths, the loss, sampling and the model
folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from difforge.av import TRAIN_PRESETS
from difforge.av.data.captions import tokenize
from difforge.av.data.dataset import procedural_dataset
from difforge.av.sample import generate, load_model, save_model
from difforge.av.train import (
    AVConfig,
    ClipDataset,
    ModelConfig,
    SamplingConfig,
    build_model,
    caption_dropout,
    joint_loss,
    make_train_scheduler,
)
from difforge.core.cli import load_preset
from difforge.core.errors import ConfigError, UserError

TINY = load_preset(AVConfig, TRAIN_PRESETS, "tiny").model  # the tiny size preset


def _randomise_zero_layers(model: nn.Module) -> None:
    """adaLN-Zero and zero output heads make every block the identity at init; give them weights
    so that information paths show up in gradients."""
    torch.manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.Linear) and not module.weight.any():
            nn.init.normal_(module.weight, std=0.05)


def _audio_grad_wrt_video(config: ModelConfig) -> float:
    torch.manual_seed(0)
    model = build_model(config)
    _randomise_zero_layers(model)
    x = torch.randn(1, model.video_numel + model.audio_numel, requires_grad=True)
    out = model(x, torch.tensor([500]), torch.from_numpy(tokenize("one ball bouncing"))[None])
    out[:, model.video_numel :].sum().backward()
    return float(x.grad[:, : model.video_numel].abs().sum())


def test_prediction_shape_and_zero_init() -> None:
    model = build_model(TINY)
    x = torch.randn(2, model.video_numel + model.audio_numel)
    ids = torch.from_numpy(np.stack([tokenize("two small metal balls bouncing")] * 2))
    out = model(x, torch.tensor([3, 900]), ids)
    assert out.shape == x.shape
    assert not out.any()  # DiT's zero-initialised output: the first prediction is 0
    video, mel = model.unpack(x)
    assert video.shape == (2, 3, 16, 64, 64) and mel.shape == (2, 1, 64, 100)


def test_audio_and_video_tokens_share_one_time_axis() -> None:
    model = build_model(ModelConfig(hidden_size=32, num_heads=2, num_layers=1, omni_layers=()))
    video_times = model.video_pos[:, 0].unique()
    assert video_times.tolist() == [2 * k + 0.5 for k in range(8)]  # centres of 2-frame patches
    audio_times = model.audio_pos[:, 0].unique()
    # 25 audio patches of 4 mel frames (64 ms each) span the same 16 frames (1.6 s).
    assert len(audio_times) == 25
    assert audio_times.min() > 0 and audio_times.max() < 16
    assert np.allclose(np.diff(audio_times.numpy()), 4 * 256 / 16000 * 10)


def test_only_the_omni_block_lets_audio_see_the_video() -> None:
    assert _audio_grad_wrt_video(TINY) > 0
    assert _audio_grad_wrt_video(ModelConfig(**{**TINY.__dict__, "omni_layers": ()})) == 0


def test_omni_layers_must_exist() -> None:
    with pytest.raises(ConfigError, match="omni_layers"):
        ModelConfig(num_layers=2, omni_layers=(2,))


def test_joint_loss_learns_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    model = build_model(TINY)
    arrays, _ = procedural_dataset(4, seed=0)
    data = ClipDataset(arrays)
    batch = torch.utils.data.default_collate([data[i] for i in range(4)])
    assert batch["video"].min() >= -1 and batch["video"].max() <= 1
    scheduler, dropout = make_train_scheduler(), caption_dropout(0.0)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        torch.manual_seed(123)  # the same t and noise every step: the loss must fall
        loss, logs = joint_loss(model, batch, scheduler, dropout)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert set(logs) == {"video_mse", "audio_mse"}
    assert losses[-1] < 0.7 * losses[0]


def test_generate_is_seeded_and_the_model_folder_round_trips(tmp_path) -> None:
    torch.manual_seed(0)
    model = build_model(TINY)
    _randomise_zero_layers(model)
    save_model(tmp_path / "m", model, SamplingConfig(steps=2), {"note": "test"})
    loaded, sampling, info = load_model(tmp_path / "m")
    assert sampling.steps == 2 and info["note"] == "test"
    a = generate(loaded, ["one large wood ball bouncing"], seed=3, sampling=sampling)[0]
    b = generate(loaded, ["one large wood ball bouncing"], seed=3, sampling=sampling)[0]
    c = generate(loaded, ["one large wood ball bouncing"], seed=4, sampling=sampling)[0]
    assert a.video.shape == (16, 64, 64, 3) and a.audio.shape == (25600,)
    assert np.array_equal(a.video, b.video) and not np.array_equal(a.video, c.video)


def test_unknown_prompt_words_name_the_closest_known_words() -> None:
    with pytest.raises(UserError, match="'metl' \\(closest: metal"):
        tokenize("two metl balls")
    with pytest.raises(UserError, match="empty"):
        tokenize("   ")
