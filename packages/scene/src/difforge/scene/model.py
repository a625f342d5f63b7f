"""The generative model of blocks: tri-plane VAE, layout-conditioned latent DiT, the model folder.

After BlockFusion (Wu et al. 2024), scaled down (design note B5):

- **TriPlaneVAE**: raw tri-planes (B, 3, C, R, R), whitened per channel, to latent tri-planes
  (B, 3, Z, R/4, R/4) and back. Every convolution is grouped by plane (BlockFusion's GroupConv: each
  plane keeps its own weights) and every residual block also sees the other two planes averaged
  along the axis they do not share (Rodin's 3D-aware convolution, :func:`cross_plane_features`).
  KL to N(0, kl_std^2) as BlockFusion (``kl_std`` 0.25).
- **LatentDiffusion**: the core :class:`~difforge.core.nn.dit.DiTBackbone` over patch tokens of the
  three latent planes (learned positions: plane and place), whitened per channel. The block's
  layout raster (9 classes, resampled to the latent resolution) is concatenated to the tokens of
  the xz plane only, zeros on the others, as BlockFusion concatenates it to its xz third; an
  all-zero raster is the null condition for classifier-free guidance. v-prediction DDPM (the
  core's default); RePaint expansion converts v to epsilon (:func:`epsilon_from_v`).
- **SceneModel folder**: ``config.json`` (written last), ``decoder/`` (the shared tri-plane MLP),
  ``vae/`` (absent for the raw tri-plane ablation) and ``diffusion/``: diffusers
  ``save_pretrained`` folders, safetensors + config.json, float16 on disk.

Plane axes (see ``triplane.PLANE_AXES``): plane 0 is xy (rows y, columns x), plane 1 xz (rows z,
columns x), plane 2 yz (rows z, columns y); layout rasters are indexed [class, x, z], so they are
transposed to [class, z, x] to lie on the xz plane.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from torch import Tensor, nn

from difforge.core import pretrained
from difforge.core.config import check_config
from difforge.core.diffusion.sampling import make_scheduler
from difforge.core.io import atomic_dir
from difforge.core.nn.dit import DiTBackbone
from difforge.core.pretrained import (
    load_component,
    read_model_meta,
    save_component,
    split_model_meta,
    write_model_meta,
)
from difforge.scene.classes import NUM_CLASSES
from difforge.scene.triplane import TriPlaneDecoder

MODEL_TYPE = "difforge-scene"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "weights" / "default"
XZ_PLANE = 1


################################################################################
#                                  Tri-plane VAE                               #
################################################################################


def cross_plane_features(x: Tensor) -> Tensor:
    """For planes (B, 3, C, S, S): each plane's view of the other two, (B, 3, 2C, S, S).

    A plane gets the other planes averaged along the axis it does not contain, broadcast along the
    axis they share (Rodin's 3D-aware convolution). xy (rows y, cols x): xz averaged over z gives a
    function of x (cols); yz averaged over z gives one of y (rows). xz: xy over y -> x (cols), yz
    over y -> z (rows). yz (rows z, cols y): xy over x -> y (cols), xz over x -> z (rows).
    """
    xy, xz, yz = x.unbind(1)
    s = x.shape[-1]

    def rows(v: Tensor) -> Tensor:  # (B, C, S) -> varies along rows
        return v[..., :, None].expand(-1, -1, s, s)

    def cols(v: Tensor) -> Tensor:  # (B, C, S) -> varies along columns
        return v[..., None, :].expand(-1, -1, s, s)

    for_xy = torch.cat([cols(xz.mean(-2)), rows(yz.mean(-2))], dim=1)
    for_xz = torch.cat([cols(xy.mean(-2)), rows(yz.mean(-1))], dim=1)
    for_yz = torch.cat([cols(xy.mean(-1)), rows(xz.mean(-1))], dim=1)
    return torch.stack([for_xy, for_xz, for_yz], dim=1)


def _plane_conv(c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> nn.Conv2d:
    """A convolution with separate weights per plane: planes stacked on channels, 3 groups."""
    return nn.Conv2d(3 * c_in, 3 * c_out, kernel, stride, padding=kernel // 2, groups=3)


def _planes_to_channels(x: Tensor) -> Tensor:
    return x.flatten(1, 2)


def _channels_to_planes(x: Tensor) -> Tensor:
    return x.unflatten(1, (3, -1))


class PlaneResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice; the second conv also reads the cross-plane features."""

    def __init__(self, width: int) -> None:
        super().__init__()
        groups = 3 * min(8, width)
        self.norm1 = nn.GroupNorm(groups, 3 * width)
        self.conv1 = _plane_conv(width, width)
        self.norm2 = nn.GroupNorm(groups, 3 * width)
        self.conv2 = _plane_conv(3 * width, width)

    def forward(self, x: Tensor) -> Tensor:  # (B, 3W, S, S)
        h = self.conv1(F.silu(self.norm1(x)))
        h = _channels_to_planes(F.silu(self.norm2(h)))
        h = torch.cat([h, cross_plane_features(h)], dim=2)
        return x + self.conv2(_planes_to_channels(h))


class TriPlaneVAE(ModelMixin, ConfigMixin):
    """Raw tri-planes (B, 3, C, R, R) <-> latent tri-planes (B, 3, Z, R / 2^k, R / 2^k)."""

    @register_to_config
    def __init__(
        self,
        channels: int = 16,
        resolution: int = 64,
        latent_channels: int = 4,
        widths: tuple[int, ...] = (32, 48, 64),
        kl_std: float = 0.25,
        vector_latent: bool = False,
    ) -> None:
        super().__init__()
        widths = tuple(widths)
        if resolution % 2 ** (len(widths) - 1):
            raise ValueError(f"resolution {resolution} must be divisible by 2^{len(widths) - 1}")
        enc: list[nn.Module] = [_plane_conv(channels, widths[0])]
        for w_in, w_out in itertools.pairwise(widths):
            enc += [PlaneResBlock(w_in), _plane_conv(w_in, w_out, 3, stride=2)]
        enc += [
            PlaneResBlock(widths[-1]),
            nn.GroupNorm(3 * min(8, widths[-1]), 3 * widths[-1]),
            nn.SiLU(),
            _plane_conv(widths[-1], 2 * latent_channels),
        ]
        self.encoder = nn.Sequential(*enc)
        dec: list[nn.Module] = [_plane_conv(latent_channels, widths[-1]), PlaneResBlock(widths[-1])]
        for w_in, w_out in itertools.pairwise(widths[::-1]):
            dec += [nn.Upsample(scale_factor=2), _plane_conv(w_in, w_out), PlaneResBlock(w_out)]
        dec += [
            nn.GroupNorm(3 * min(8, widths[0]), 3 * widths[0]),
            nn.SiLU(),
            _plane_conv(widths[0], channels),
        ]
        self.decoder = nn.Sequential(*dec)
        if vector_latent:
            # The paper's "single latent vector" ablation: the same number of latent numbers, but
            # one global vector made by dense layers over every position (no spatial layout).
            size = 3 * latent_channels * (resolution // 2 ** (len(widths) - 1)) ** 2
            self.to_vector = nn.Linear(2 * size, 2 * size)
            self.from_vector = nn.Linear(size, size)
        # Per-channel whitening of raw planes, measured on the training planes.
        self.register_buffer("channel_mean", torch.zeros(channels))
        self.register_buffer("channel_std", torch.ones(channels))

    @property
    def latent_resolution(self) -> int:
        return self.config.resolution // 2 ** (len(self.config.widths) - 1)

    def set_normalisation(self, planes: Tensor) -> None:
        flat = planes.transpose(0, 2).flatten(1).double()  # (C, rest)
        self.channel_mean.copy_(flat.mean(1).float())
        self.channel_std.copy_(flat.std(1).clamp(min=1e-4).float())

    def whiten(self, planes: Tensor) -> Tensor:
        return (planes - self.channel_mean[:, None, None]) / self.channel_std[:, None, None]

    def unwhiten(self, x: Tensor) -> Tensor:
        return x * self.channel_std[:, None, None] + self.channel_mean[:, None, None]

    def encode(self, planes: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and log-variance, each (B, 3, Z, r, r)."""
        h = _channels_to_planes(
            self.encoder(_planes_to_channels(self.whiten(planes.to(self.dtype))))
        )
        if self.config.vector_latent:  # the vector is kept in the tri-plane shape for bookkeeping
            b, r = len(planes), self.latent_resolution
            mean, logvar = self.to_vector(h.flatten(1)).chunk(2, dim=1)
            mean, logvar = mean.view(b, 3, -1, r, r), logvar.view(b, 3, -1, r, r)
        else:
            mean, logvar = h.chunk(2, dim=2)
        return mean, logvar.clamp(-20.0, 10.0)

    def decode(self, latents: Tensor) -> Tensor:
        """Raw planes (B, 3, C, R, R) of latents (B, 3, Z, r, r)."""
        if self.config.vector_latent:
            latents = self.from_vector(latents.flatten(1)).view(latents.shape)
        return self.unwhiten(_channels_to_planes(self.decoder(_planes_to_channels(latents))))

    def kl(self, mean: Tensor, logvar: Tensor) -> Tensor:
        """Mean KL divergence per element to N(0, kl_std^2)."""
        prior_var = self.config.kl_std**2
        return 0.5 * ((mean.square() + logvar.exp()) / prior_var - 1 - logvar + np.log(prior_var))

    def forward(self, planes: Tensor, generator: torch.Generator | None = None) -> Any:
        mean, logvar = self.encode(planes)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return self.decode(mean + (0.5 * logvar).exp() * noise), mean, logvar


################################################################################
#                                Latent diffusion                              #
################################################################################


def layout_condition(rasters: Tensor | np.ndarray, resolution: int) -> Tensor:
    """Rasters (B, 9, n, n) indexed [class, x, z] -> float (B, 9, res, res) on the xz plane's
    [class, z, x] grid: max-pooled (coarser) or repeated (finer) to ``resolution``."""
    r = torch.as_tensor(np.asarray(rasters) if not isinstance(rasters, Tensor) else rasters)
    r = r.float().transpose(-1, -2)
    n = r.shape[-1]
    if resolution < n:
        return F.max_pool2d(r, n // resolution)
    if resolution > n:
        return F.interpolate(r, scale_factor=resolution // n, mode="nearest")
    return r


class LatentDiffusion(ModelMixin, ConfigMixin):
    """DiT over patch tokens of the three (latent or raw) planes, layout on the xz tokens.

    ``forward(x, timestep, layout=...)``: ``x`` (B, L, Z p^2) whitened tokens, ``layout`` (B, 9,
    r, r) from :func:`layout_condition`; returns the prediction for ``x``.
    """

    @register_to_config
    def __init__(
        self,
        latent_channels: int = 4,
        latent_resolution: int = 16,
        patch_size: int = 2,
        layout_channels: int = NUM_CLASSES,
        hidden_size: int = 192,
        num_layers: int = 6,
        num_heads: int = 4,
        mlp_ratio: float = 3.0,
    ) -> None:
        super().__init__()
        if latent_resolution % patch_size:
            raise ValueError(f"latent_resolution {latent_resolution} % patch {patch_size} != 0")
        token_width = latent_channels * patch_size**2
        self.dit = DiTBackbone(
            in_channels=token_width + layout_channels * patch_size**2,
            out_channels=token_width,
            hidden_size=hidden_size,
            num_layers=num_layers,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            max_seq_len=3 * (latent_resolution // patch_size) ** 2,
            pos_embedding="learned",  # three 2-D grids: 1-D rotary positions would not fit
        )
        self.register_buffer("latent_mean", torch.zeros(latent_channels))
        self.register_buffer("latent_std", torch.ones(latent_channels))

    @property
    def token_shape(self) -> tuple[int, int]:
        cfg = self.config
        return 3 * (cfg.latent_resolution // cfg.patch_size) ** 2, cfg.latent_channels * (
            cfg.patch_size**2
        )

    def set_normalisation(self, latents: Tensor) -> None:
        flat = latents.transpose(0, 2).flatten(1).double()
        self.latent_mean.copy_(flat.mean(1).float())
        self.latent_std.copy_(flat.std(1).clamp(min=1e-4).float())

    def _patchify(self, x: Tensor) -> Tensor:  # (B, P, C, r, r) -> (B, P * (r/p)^2, C p p)
        p = self.config.patch_size
        b, planes, c, r, _ = x.shape
        x = x.reshape(b, planes, c, r // p, p, r // p, p).permute(0, 1, 3, 5, 2, 4, 6)
        return x.reshape(b, planes * (r // p) ** 2, c * p * p)

    def latents_to_tokens(self, latents: Tensor) -> Tensor:
        x = (latents - self.latent_mean[:, None, None]) / self.latent_std[:, None, None]
        return self._patchify(x)

    def tokens_to_latents(self, tokens: Tensor) -> Tensor:
        cfg = self.config
        p, c, side = cfg.patch_size, cfg.latent_channels, cfg.latent_resolution // cfg.patch_size
        x = tokens.reshape(-1, 3, side, side, c, p, p).permute(0, 1, 4, 2, 5, 3, 6)
        x = x.reshape(-1, 3, c, side * p, side * p)
        return x * self.latent_std[:, None, None] + self.latent_mean[:, None, None]

    def token_mask(self, mask: Tensor) -> Tensor:
        """A latent-space mask (B, 3, 1, r, r) as token entries (B, L, Z p^2)."""
        c = self.config.latent_channels
        return self._patchify(mask.expand(-1, -1, c, -1, -1))

    def forward(self, x: Tensor, timestep: Tensor, *, layout: Tensor) -> Tensor:
        per_plane = x.shape[1] // 3
        layout_tokens = self._patchify(layout[:, None].to(x.dtype))  # (B, per_plane, 9 p p)
        cond = x.new_zeros(x.shape[0], x.shape[1], layout_tokens.shape[-1])
        cond[:, XZ_PLANE * per_plane : (XZ_PLANE + 1) * per_plane] = layout_tokens
        return self.dit(torch.cat([x, cond], dim=-1), timestep).sample


def epsilon_from_v(v: Tensor, sample: Tensor, alpha_prod: Tensor) -> Tensor:
    """epsilon = sqrt(abar) v + sqrt(1 - abar) x_t (v = sqrt(abar) eps - sqrt(1 - abar) x0)."""
    return alpha_prod.sqrt() * v + (1 - alpha_prod).sqrt() * sample


################################################################################
#                                  Model folder                                #
################################################################################


@dataclass(frozen=True)
class NoiseSchedule:
    """The Gaussian (DDPM) noise schedule the diffusion model is trained and sampled with, stored
    with the model so that it samples as it was trained. The defaults are the shipped model's
    (and of every model folder written before the schedule was saved)."""

    prediction_type: Literal["v_prediction"] = "v_prediction"  # RePaint converts v to epsilon
    num_train_timesteps: int = 1000
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "linear"

    def __post_init__(self) -> None:
        check_config(
            self.num_train_timesteps >= 2, "num_train_timesteps", ">= 2", self.num_train_timesteps
        )

    def scheduler(self, sampler: str | None = None) -> SchedulerMixin:
        """The diffusers scheduler of this schedule: the training DDPM (``sampler`` None) or the
        named few-step sampler."""
        return make_scheduler(
            "gaussian",
            sampler,
            prediction_type=self.prediction_type,
            num_train_timesteps=self.num_train_timesteps,
            beta_schedule=self.beta_schedule,
        )


@dataclass(frozen=True)
class SamplingConfig:
    """Generation defaults stored with a model. ``guidance_scale`` follows the core convention
    ``u + (w + 1)(c - u)`` (0: plain conditional). Expansion uses RePaint (``repaint_steps``,
    jumps of ``jump_length`` steps repeated ``jump_n_sample`` times, ``repaint_eta`` 1: DDPM-like
    stochastic steps as in RePaint); ``grid_resolution`` is the SDF grid each block is decoded to
    before blending and marching cubes; ``schedule`` the noise schedule the model was trained
    with."""

    steps: int = 50
    sampler: str = "dpmsolver++"
    guidance_scale: float = 1.0
    repaint_steps: int = 50
    jump_length: int = 10
    jump_n_sample: int = 5
    repaint_eta: float = 1.0
    grid_resolution: int = 64
    stride: float = 2.4
    schedule: NoiseSchedule = field(default_factory=NoiseSchedule)

    def __post_init__(self) -> None:
        for key in ("steps", "repaint_steps", "jump_length", "jump_n_sample"):
            check_config(getattr(self, key) >= 1, key, ">= 1", getattr(self, key))
        check_config(0 <= self.repaint_eta <= 1, "repaint_eta", "in [0, 1]", self.repaint_eta)
        check_config(
            self.sampler in ("ddpm", "ddim", "dpmsolver++", "unipc"),
            "sampler",
            "ddpm, ddim, dpmsolver++ or unipc",
            self.sampler,
        )
        check_config(self.guidance_scale >= 0, "guidance_scale", ">= 0", self.guidance_scale)
        check_config(self.grid_resolution >= 8, "grid_resolution", ">= 8", self.grid_resolution)
        check_config(0 < self.stride <= 3.2, "stride", "in (0, 3.2] m", self.stride)


def representation(vae: TriPlaneVAE | None) -> str:
    """What the diffusion model generates: "raw tri-planes" (no VAE), "latent tri-planes", or
    "latent vector" (the paper's ablation: a VAE with one global latent vector)."""
    if vae is None:
        return "raw tri-planes"
    return "latent vector" if vae.config.vector_latent else "latent tri-planes"


@dataclass
class SceneModel:
    """A trained generator: shared tri-plane decoder, VAE (None: diffusion on raw planes),
    diffusion model and generation defaults."""

    decoder: TriPlaneDecoder
    vae: TriPlaneVAE | None
    diffusion: LatentDiffusion
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    info: dict[str, Any] = field(default_factory=dict)

    def save(self, model_dir: str | os.PathLike[str], overwrite: bool = False) -> Path:
        """Write the model folder atomically; an existing non-empty one only with ``overwrite``."""
        with atomic_dir(model_dir, overwrite=overwrite) as tmp:
            save_component(self.decoder, tmp / "decoder", float16=False)  # SDF to the mm
            if self.vae is not None:
                save_component(self.vae, tmp / "vae")
            save_component(self.diffusion, tmp / "diffusion")
            write_model_meta(tmp, MODEL_TYPE, self.sampling, self.info)
        return Path(model_dir)

    @classmethod
    def load(cls, model_dir: str | os.PathLike[str]) -> SceneModel:
        """Load a model folder (``"default"``: the shipped one) in float32, eval mode."""
        model_dir = resolve_model_dir(model_dir)
        meta = read_model_meta(model_dir, MODEL_TYPE)
        sampling, info = split_model_meta(meta, SamplingConfig)
        vae = (
            load_component(TriPlaneVAE, model_dir / "vae") if (model_dir / "vae").is_dir() else None
        )
        return cls(
            decoder=load_component(TriPlaneDecoder, model_dir / "decoder"),
            vae=vae,
            diffusion=load_component(LatentDiffusion, model_dir / "diffusion"),
            sampling=sampling,
            info=info,
        )

    def to(self, device: torch.device | str) -> SceneModel:
        for part in (self.decoder, self.vae, self.diffusion):
            if part is not None:
                part.to(device).eval()
        return self


def resolve_model_dir(name: str | os.PathLike[str]) -> Path:
    """``"default"`` -> the shipped default model folder; anything else is a folder path."""
    return pretrained.resolve_model_dir(name, DEFAULT_MODEL_DIR, "difforge-scene")
