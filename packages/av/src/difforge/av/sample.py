"""Generation: prompts -> clips (video frames + Griffin-Lim audio) by DDIM with text CFG, and the
model folder format (``config.json`` + safetensors)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from difforge.av.data.audio import mel_to_audio
from difforge.av.data.bounce import Clip
from difforge.av.data.captions import null_tokens, tokenize
from difforge.av.model import AVDiT
from difforge.av.train import MODEL_TYPE, SamplingConfig
from difforge.core.diffusion.sampling import make_scheduler, sample
from difforge.core.pretrained import (
    load_component,
    read_model_meta,
    resolve_model_dir,
    save_component,
    split_model_meta,
    write_model_meta,
)

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "weights" / "default"


def write_meta(
    folder: str | os.PathLike[str], sampling: SamplingConfig, info: dict[str, Any]
) -> None:
    """``folder/config.json``: the model type, sampling defaults and training info."""
    write_model_meta(Path(folder), MODEL_TYPE, sampling, info)


def save_model(
    folder: str | os.PathLike[str], model: AVDiT, sampling: SamplingConfig, info: dict[str, Any]
) -> None:
    """``folder/config.json`` (sampling defaults, training info) + ``folder/model/`` weights."""
    save_component(model, Path(folder) / "model")
    write_meta(folder, sampling, info)


def load_model(
    folder: str | os.PathLike[str] = "default",
) -> tuple[AVDiT, SamplingConfig, dict[str, Any]]:
    """A model folder (``"default"``: the one shipped inside the package)."""
    folder = resolve_model_dir(folder, DEFAULT_MODEL_DIR, MODEL_TYPE)
    meta = read_model_meta(folder, MODEL_TYPE)
    sampling, info = split_model_meta(meta, SamplingConfig)
    return load_component(AVDiT, folder / "model"), sampling, info


@torch.no_grad()
def generate(
    model: AVDiT,
    prompts: list[str],
    *,
    seed: int = 0,
    sampling: SamplingConfig | None = None,
    device: torch.device | str = "cpu",
    **overrides: Any,
) -> list[Clip]:
    """One clip per prompt: DDIM from seeded noise, guided by the caption, audio by Griffin-Lim."""
    sampling = replace(sampling or SamplingConfig(), **overrides)
    ids = torch.from_numpy(np.stack([tokenize(p) for p in prompts])).to(device)
    null = torch.from_numpy(np.stack([null_tokens() for _ in prompts])).to(device)
    model = model.to(device).eval()
    generator = torch.Generator().manual_seed(seed)
    packed = sample(
        lambda x, t, text_ids: model(x, t, text_ids),
        make_scheduler("gaussian", "ddim", prediction_type="v_prediction"),
        (len(prompts), model.video_numel + model.audio_numel),
        num_inference_steps=sampling.steps,
        condition={"text_ids": ids},
        uncondition={"text_ids": null},
        guidance_scale=sampling.guidance_scale,
        generator=generator,
        device=device,
    )
    video, mel = model.unpack(packed.clamp(-1, 1).cpu())
    frames = ((video.permute(0, 2, 3, 4, 1) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return [
        Clip(
            video=frames[i].numpy(),
            audio=mel_to_audio(mel[i, 0].numpy(), seed=seed + i),
            caption=prompt,
        )
        for i, prompt in enumerate(prompts)
    ]
