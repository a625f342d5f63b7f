"""The run configs of ``train-codec`` and ``train``.

A run config is a preset of ``difforge.hair.CODEC_PRESETS`` or ``DIFFUSION_PRESETS`` (``tiny`` for the
tests, ``default``) or a YAML file, then ``key=value`` overrides, read by
``difforge.core.cli.load_preset``; every key is checked where it is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from difforge.core.config import check_config
from difforge.core.nn.dit import check_head_size
from difforge.core.train import TrainConfig
from difforge.hair.codec import CodecLossWeights
from difforge.hair.data.dataset import SampleConfig
from difforge.hair.model import SamplingConfig

__all__ = [
    "CodecModelConfig",
    "CodecRunConfig",
    "DataConfig",
    "DiffusionModelConfig",
    "DiffusionRunConfig",
]


@dataclass(frozen=True)
class DataConfig:
    """Training styles. ``styles``/``seed``/``workers`` apply to procedural styles (no --data);
    ``n_strands`` and ``image_size`` are their sample settings (root candidates, picture side)."""

    styles: int = 560
    seed: int = 0
    workers: int = 1
    n_strands: int = 10_000
    image_size: int = 128
    strands_per_style: int = 512  # codec training strands drawn from each style
    # What the model sees: "maps" (hair mask + Gabor orientation, the same on renders and
    # photos, :mod:`difforge.hair.maps`) or "rgb" (the render's pixels; models before issue 15).
    condition: str = "maps"
    # Strength of the training-time augmentation of the maps (misalignment, mask edges,
    # orientation noise; :func:`difforge.hair.maps.augment_maps`); 0 = off.
    augment: float = 1.0
    # Procedural styles' family set ("classic", or "photo" with short lying and frizzy styles)
    # and largest head turn (degrees) of their renders (difforge.hair.data.dataset.SampleConfig).
    style_set: str = "classic"
    max_yaw: float = 0.0

    def __post_init__(self) -> None:
        check_config(
            self.condition in ("maps", "rgb"), "condition", "'maps' or 'rgb'", self.condition
        )
        check_config(0 <= self.augment <= 2, "augment", "in [0, 2]", self.augment)
        self.sample_config(64)  # checks style_set and max_yaw
        for key in ("styles", "workers", "n_strands", "strands_per_style"):
            check_config(getattr(self, key) >= 1, key, ">= 1", getattr(self, key))
        check_config(self.seed >= 0, "seed", ">= 0", self.seed)
        check_config(self.image_size >= 16, "image_size", ">= 16", self.image_size)

    def sample_config(self, n_points: int) -> SampleConfig:
        """The sample settings of the procedural styles, strands resampled to ``n_points``."""
        return SampleConfig(n_strands=self.n_strands, n_points=n_points,
                            image_size=self.image_size, style_set=self.style_set,
                            max_yaw=self.max_yaw)  # fmt: skip


@dataclass(frozen=True)
class CodecModelConfig:
    """:class:`~difforge.hair.codec.StrandCodec` arguments."""

    n_points: int = 64
    latent_dim: int = 16
    encoder_channels: tuple[int, ...] = (32, 64, 128, 128, 256)
    decoder_width: int = 384
    decoder_layers: int = 3

    def __post_init__(self) -> None:
        stride = 2 ** len(self.encoder_channels)
        check_config(
            self.n_points % stride == 0 and self.n_points >= 2 * stride,
            "n_points",
            f"a multiple of {stride} (2**len(encoder_channels)), at least {2 * stride}",
            self.n_points,
        )
        check_config(self.latent_dim >= 1, "latent_dim", ">= 1", self.latent_dim)
        check_config(self.decoder_layers >= 1, "decoder_layers", ">= 1", self.decoder_layers)


def _codec_train() -> TrainConfig:
    return TrainConfig(steps=6000, batch_size=1024, lr=2e-3, min_lr=1e-4, warmup_steps=200,
                       weight_decay=0.0, grad_clip=10.0, ema_decay=0.999, log_every=200,
                       ckpt_every=0, keep_checkpoints=1)  # fmt: skip


@dataclass(frozen=True)
class CodecRunConfig:
    model: CodecModelConfig = field(default_factory=CodecModelConfig)
    loss: CodecLossWeights = field(default_factory=CodecLossWeights)
    train: TrainConfig = field(default_factory=_codec_train)
    data: DataConfig = field(default_factory=DataConfig)
    time_limit_s: float = 0.0  # stop training after the step passing this (0: no limit)


@dataclass(frozen=True)
class DiffusionModelConfig:
    """:class:`~difforge.hair.model.ScalpDiffusion` arguments (texture channels and picture size
    come from the codec and the data)."""

    resolution: int = 64
    patch_size: int = 2  # the output head must fit its patch: see train_diffusion's check
    encoder_channels: tuple[int, ...] = (32, 64, 128, 160)
    token_grid: int = 8
    hidden_size: int = 160
    num_layers: int = 6
    num_heads: int = 4
    mlp_ratio: float = 3.0

    def __post_init__(self) -> None:
        check_config(
            self.resolution % self.patch_size == 0,
            "resolution",
            f"a multiple of patch_size={self.patch_size}",
            self.resolution,
        )
        check_head_size(self.hidden_size, self.num_heads)


def _diffusion_train() -> TrainConfig:
    return TrainConfig(steps=8000, batch_size=64, lr=5e-4, min_lr=5e-5, warmup_steps=300,
                       betas=(0.9, 0.95), weight_decay=1e-3, grad_clip=1.0, ema_decay=0.999,
                       mixed_precision="bf16", log_every=200, ckpt_every=0,
                       keep_checkpoints=1)  # fmt: skip


@dataclass(frozen=True)
class DiffusionRunConfig:
    """``cond_dropout``: probability of training on the blank picture (classifier-free guidance);
    ``p_mean``/``p_std``: EDM's log-normal noise-level density."""

    model: DiffusionModelConfig = field(default_factory=DiffusionModelConfig)
    train: TrainConfig = field(default_factory=_diffusion_train)
    data: DataConfig = field(default_factory=DataConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    cond_dropout: float = 0.1
    # Higher than EDM's image default N(-1.2, 1.2^2): a style lives in the texture's large-scale
    # structure, hidden only above sigma ~ 5-20, where the picture must steer (RESULTS.md, Diagnosis).
    p_mean: float = 0.5
    p_std: float = 1.8
    # Per-channel weights of the loss: "uniform", or "codec" (DiffLocks: each latent channel by
    # how much the decoded strands move when it moves, the density 1; codec_channel_weights).
    channel_weights: str = "codec"
    time_limit_s: float = 0.0  # stop training after the step passing this (0: no limit)

    def __post_init__(self) -> None:
        check_config(0 <= self.cond_dropout < 1, "cond_dropout", "in [0, 1)", self.cond_dropout)
        check_config(
            self.channel_weights in ("uniform", "codec"),
            "channel_weights",
            "uniform or codec",
            self.channel_weights,
        )
        side = self.model.token_grid * 2 ** len(self.model.encoder_channels)
        check_config(
            self.data.image_size == side,
            "data.image_size",
            f"model.token_grid * 2**len(model.encoder_channels) = {side}",
            self.data.image_size,
        )
        check_config(self.p_std > 0, "p_std", "> 0", self.p_std)
