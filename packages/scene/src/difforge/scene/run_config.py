"""Run configs of the two training commands (``train-vae``, ``train``) and their presets.

A preset is ``configs/<kind>/<name>.yaml`` (``kind`` ``vae`` or ``diffusion``), read by the core's
``load_preset``, e.g. ``load_preset(VAERunConfig, difforge.scene.VAE_PRESETS, "tiny", ["train.steps=5"])``; no
``--config`` means the ``default`` preset, the recipe of the shipped model. The dataclass defaults
equal the default presets (tested), so a config built in Python trains like the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from difforge.core.config import check_config
from difforge.core.nn.dit import check_head_size
from difforge.core.train import TrainConfig
from difforge.scene.model import SamplingConfig


@dataclass(frozen=True)
class VAEModelConfig:
    """:class:`~difforge.scene.model.TriPlaneVAE` arguments (plane size comes from the fit)."""

    latent_channels: int = 4
    widths: tuple[int, ...] = (32, 48, 64)
    kl_std: float = 0.25
    vector_latent: bool = False  # ablation: one global latent vector of the same size

    def __post_init__(self) -> None:
        check_config(self.latent_channels >= 1, "latent_channels", ">= 1", self.latent_channels)
        check_config(len(self.widths) >= 1, "widths", "at least one width", self.widths)
        check_config(self.kl_std > 0, "kl_std", "> 0", self.kl_std)


@dataclass(frozen=True)
class VAELossWeights:
    planes: float = 1.0  # L1 on whitened planes
    sdf: float = 10.0  # L1 on decoded SDF (normalised units)
    kl: float = 1e-3


def _vae_train() -> TrainConfig:
    return TrainConfig(steps=3000, batch_size=32, lr=1e-3, min_lr=5e-5, warmup_steps=100,
                       weight_decay=0.0, grad_clip=1.0, ema_decay=0.0, log_every=100,
                       ckpt_every=0, keep_checkpoints=1)  # fmt: skip


@dataclass(frozen=True)
class VAERunConfig:
    model: VAEModelConfig = field(default_factory=VAEModelConfig)
    loss: VAELossWeights = field(default_factory=VAELossWeights)
    train: TrainConfig = field(default_factory=_vae_train)
    points_per_block: int = 2048  # SDF-loss points per block per step (half near the surface)
    eval_blocks: int = 16  # held-out blocks meshed for the reconstruction metrics
    eval_points: int = 100_000  # points per side for those metrics
    time_limit_s: float = 0.0  # seconds for the whole command (see train.py); 0: no limit

    def __post_init__(self) -> None:
        check_config(self.points_per_block >= 2, "points_per_block", ">= 2", self.points_per_block)
        check_config(self.eval_blocks >= 0, "eval_blocks", ">= 0", self.eval_blocks)
        check_config(self.eval_points >= 100, "eval_points", ">= 100", self.eval_points)
        check_config(self.time_limit_s >= 0, "time_limit_s", ">= 0", self.time_limit_s)


@dataclass(frozen=True)
class DiffusionModelConfig:
    """:class:`~difforge.scene.model.LatentDiffusion` arguments (latent shape from the VAE)."""

    patch_size: int = 2
    hidden_size: int = 192
    num_layers: int = 6
    num_heads: int = 4
    mlp_ratio: float = 3.0

    def __post_init__(self) -> None:
        check_head_size(self.hidden_size, self.num_heads)


def _diffusion_train() -> TrainConfig:
    # The shipped default model's recipe (its config.json records it): AdamW's default betas and
    # no weight decay.
    return TrainConfig(steps=8000, batch_size=64, lr=4e-4, min_lr=2e-5, warmup_steps=200,
                       betas=(0.9, 0.999), weight_decay=0.0, grad_clip=1.0, ema_decay=0.999,
                       log_every=200, ckpt_every=0, keep_checkpoints=1)  # fmt: skip


@dataclass(frozen=True)
class DiffusionRunConfig:
    model: DiffusionModelConfig = field(default_factory=DiffusionModelConfig)
    train: TrainConfig = field(default_factory=_diffusion_train)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    cond_dropout: float = 0.1
    flips: bool = True  # also train on the x / z mirror images of every block
    time_limit_s: float = 0.0  # seconds for the whole command (see train.py); 0: no limit

    def __post_init__(self) -> None:
        check_config(0 <= self.cond_dropout < 1, "cond_dropout", "in [0, 1)", self.cond_dropout)
        check_config(self.time_limit_s >= 0, "time_limit_s", ">= 0", self.time_limit_s)
