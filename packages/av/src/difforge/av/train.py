"""Training the joint DiT: settings, the clip dataset, the joint loss and the run.

The loss is AV-DiT/MM-Diffusion's: one diffusion timestep shared by video and audio, the sum of
the two modalities' mean squared errors (each averaged over its own elements, so the 6,400-value
mel image weighs as much as the 196,608-value video), v-prediction on a linear 1000-step DDPM
schedule, and the caption dropped to the null caption with probability ``cond_dropout`` for
classifier-free guidance.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from difforge.av.data.captions import NULL
from difforge.av.model import AVDiT, pack
from difforge.core.config import check_config, to_dict
from difforge.core.diffusion.guidance import ConditionDropout
from difforge.core.diffusion.sampling import make_scheduler
from difforge.core.errors import UserError
from difforge.core.train.run import TrainConfig

MODEL_TYPE = "difforge-av"


@dataclass(frozen=True)
class ModelConfig:
    """Constructor arguments of :class:`AVDiT` (sizes; the clip format is fixed by the data)."""

    hidden_size: int = 256
    num_heads: int = 4
    num_layers: int = 6
    omni_layers: tuple[int, ...] = (1, 3, 5)  # [] is the no-cross-modal-block ablation
    mlp_ratio: float = 4.0
    video_patch: tuple[int, int, int] = (2, 4, 4)
    audio_patch: tuple[int, int] = (4, 4)
    text_layers: int = 2

    def __post_init__(self) -> None:
        for key in ("hidden_size", "num_heads", "num_layers", "text_layers"):
            check_config(getattr(self, key) >= 1, key, ">= 1", getattr(self, key))
        check_config(
            all(0 <= i < self.num_layers for i in self.omni_layers),
            "omni_layers",
            f"layer indices in [0, {self.num_layers})",
            list(self.omni_layers),
        )


@dataclass(frozen=True)
class SamplingConfig:
    steps: int = 25  # DDIM steps
    guidance_scale: float = 1.0  # u + (w + 1)(c - u); 0 is the plain conditional model

    def __post_init__(self) -> None:
        check_config(1 <= self.steps <= 1000, "steps", "in [1, 1000]", self.steps)
        check_config(self.guidance_scale >= 0, "guidance_scale", ">= 0", self.guidance_scale)


@dataclass(frozen=True)
class AVConfig:
    """One named config: model size, training settings and sampling defaults."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    cond_dropout: float = 0.1
    train_clips: int = 2048  # procedural clips drawn when no --data folder is given

    def __post_init__(self) -> None:
        check_config(0 <= self.cond_dropout < 1, "cond_dropout", "in [0, 1)", self.cond_dropout)
        check_config(self.train_clips >= 1, "train_clips", ">= 1", self.train_clips)


def build_model(config: ModelConfig) -> AVDiT:
    kwargs = asdict(config)
    kwargs["omni_layers"] = list(config.omni_layers)
    kwargs["video_patch"] = list(config.video_patch)
    kwargs["audio_patch"] = list(config.audio_patch)
    return AVDiT(**kwargs)


def make_train_scheduler():
    """The DDPM schedule every model of this package is trained on (v-prediction, linear)."""
    return make_scheduler("gaussian", prediction_type="v_prediction")


class ClipDataset(torch.utils.data.Dataset):
    """Clips of a dataset folder (``dataset.npz``): video in [-1, 1], mel image, caption ids."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.video = arrays["video"]
        self.mel = arrays["mel"]
        self.text_ids = arrays["text_ids"]

    def __len__(self) -> int:
        return len(self.video)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        video = torch.from_numpy(self.video[index]).permute(3, 0, 1, 2).float() / 127.5 - 1.0
        return {
            "video": video,
            "mel": torch.from_numpy(self.mel[index].astype(np.float32))[None],
            "text_ids": torch.from_numpy(self.text_ids[index]),
        }


def joint_loss(
    model: Any, batch: dict[str, Tensor], scheduler: Any, dropout: ConditionDropout
) -> tuple[Tensor, dict[str, float]]:
    """Shared-timestep v-prediction loss: video MSE + audio MSE (see the module docstring)."""
    video, mel = batch["video"], batch["mel"]
    x0 = pack(video, mel)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (x0.shape[0],), device=x0.device)
    noise = torch.randn_like(x0)
    xt = scheduler.add_noise(x0, noise, t)
    target = scheduler.get_velocity(x0, noise, t)
    condition = dropout({"text_ids": batch["text_ids"]})
    error = (model(xt, t, condition["text_ids"]) - target).square()
    n_video = video[0].numel()
    video_mse = error[:, :n_video].mean()
    audio_mse = error[:, n_video:].mean()
    return video_mse + audio_mse, {"video_mse": video_mse.item(), "audio_mse": audio_mse.item()}


def caption_dropout(p: float) -> ConditionDropout:
    return ConditionDropout(p=p, null_values={"text_ids": NULL})


def load_dataset_arrays(folder: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The arrays of a ``difforge-av dataset`` folder (no pickles)."""
    path = Path(folder) / "dataset.npz"
    if not path.is_file():
        raise UserError(
            f"{folder}: not a dataset folder (no dataset.npz); see 'difforge-av dataset'"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in ("video", "mel", "text_ids")}
    except (OSError, ValueError, KeyError) as exc:
        raise UserError(f"{path}: cannot read ({exc})") from None
    return arrays


def train(
    config: AVConfig,
    out: str | os.PathLike[str],
    *,
    data: str | os.PathLike[str] | None = None,
    resume: bool = False,
    time_limit_s: float = 0.0,
) -> dict[str, Any]:
    """Train into the model folder ``out`` (``config.json`` + ``model/`` + ``checkpoints/``):
    on a ``difforge-av dataset`` folder, or on ``config.train_clips`` procedural clips."""
    from dataclasses import replace

    from difforge.av.data.dataset import procedural_dataset
    from difforge.av.sample import write_meta
    from difforge.core.train.trainer import Trainer

    train_config = replace(config.train, out_dir=str(out))
    if data is not None:
        arrays = load_dataset_arrays(data)
        source = {"data": str(data), "clips": len(arrays["video"])}
    else:
        arrays, _ = procedural_dataset(config.train_clips, seed=10_000)
        source = {"data": "procedural BounceAV", "seeds": [10_000, 10_000 + config.train_clips]}
    torch.manual_seed(train_config.seed)  # the seed fixes the initial weights
    model = build_model(config.model)
    scheduler, dropout = make_train_scheduler(), caption_dropout(config.cond_dropout)
    trainer = Trainer(
        model,
        lambda m, batch: joint_loss(m, batch, scheduler, dropout),
        ClipDataset(arrays),
        train_config,
    )
    result = trainer.train(resume="latest" if resume else None, time_limit_s=time_limit_s)
    info = {
        "training": {**result.summary(), **source},
        "parameters": sum(p.numel() for p in model.parameters()),
        "config": to_dict(config),
    }
    write_meta(out, config.sampling, info)
    return info
