"""The image-conditioned hair model: scalp texture of strand latents, its DiT, the model folder.

After DiffLocks (clean-room, from the paper's description), scaled down (design note A4):

- **Scalp texture** (:func:`scalp_texture`): every strand's codec latent is written to the texel
  of its root UV (texels holding several roots average them), empty texels take the value of the
  nearest written one, and the scalp density map is the last channel: ``(latent_dim + 1, R, R)``.
  Rows are v and columns u, as ``density.png``. :func:`sample_texture` reads it back bilinearly.
- **ScalpDiffusion**: the texture, whitened per channel, cut into ``patch_size``² patches (one token
  each) and denoised by a :class:`~difforge.core.nn.dit.DiTBackbone` (learned 2-D positions).
  The picture goes through a small CNN trained from scratch (:class:`ImageEncoder`): its 8x8
  feature map is the cross-attention context and its mean the adaLN vector condition. Training
  uses the core's EDM loss; sampling uses diffusers' EDM DPM-Solver++ (DPM++ 2M, Karras sigmas)
  with classifier-free guidance, the null condition being a blank (all-zero) picture.
- **Model folder** (:class:`HairModel`): ``config.json`` (written last), ``codec/`` and
  ``diffusion/`` (diffusers ``save_pretrained`` folders: safetensors + config.json, float16).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from PIL import Image
from scipy import ndimage
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
from difforge.hair.codec import StrandCodec

MODEL_TYPE = "difforge-hair"
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "weights" / "default"
# DiT timesteps are EDM's c_noise = log(sigma) / 4 (about -1.6 .. 1.1); scaled so diffusers'
# sinusoidal timestep embedding (frequencies 1e-4 .. 1) resolves them.
TIMESTEP_SCALE = 1000.0
MIN_DENSITY = 0.02  # below this a texel holds no hair (DiffLocks, and the generator's density map)


################################################################################
#                                 Scalp texture                                #
################################################################################


def resize_map(image: np.ndarray, resolution: int) -> np.ndarray:
    """A (H, W) float map at ``resolution``²: block means when the size divides, else bilinear."""
    image = np.asarray(image, dtype=np.float32)
    height = image.shape[0]
    if height == resolution:
        return image
    if height % resolution == 0 and image.shape[1] == height:
        factor = height // resolution
        return image.reshape(resolution, factor, resolution, factor).mean(axis=(1, 3))
    resized = Image.fromarray(image, mode="F").resize(
        (resolution, resolution), Image.Resampling.BILINEAR
    )
    return np.asarray(resized, dtype=np.float32)


def scalp_texture(
    latents: np.ndarray, root_uv: np.ndarray, density: np.ndarray, resolution: int
) -> np.ndarray:
    """The ``(latent_dim + 1, R, R)`` float32 texture of one groom (see the module docstring).

    ``density`` is the scalp density map (any square size, values in [0, 1]); it is resampled to
    ``resolution``. Holes are filled with the nearest written texel (exact Euclidean distance
    transform), so the texture is smooth enough to read bilinearly anywhere.
    """
    latents = np.asarray(latents, dtype=np.float64)
    cell = np.clip((np.asarray(root_uv) * resolution).astype(np.int64), 0, resolution - 1)
    flat = cell[:, 1] * resolution + cell[:, 0]
    count = np.bincount(flat, minlength=resolution * resolution)
    sums = np.stack(
        [np.bincount(flat, weights=column, minlength=resolution**2) for column in latents.T]
    )
    written = count > 0
    texture = np.zeros_like(sums)
    texture[:, written] = sums[:, written] / count[written]
    texture = texture.reshape(-1, resolution, resolution)
    empty = ~written.reshape(resolution, resolution)
    if empty.any():
        _, (rows, cols) = ndimage.distance_transform_edt(empty, return_indices=True)
        texture = texture[:, rows, cols]
    density = np.clip(resize_map(density, resolution), 0.0, 1.0)
    return np.concatenate([texture, density[None]], axis=0).astype(np.float32)


def sample_texture(texture: Tensor, uv: Tensor) -> Tensor:
    """Bilinear lookup of a ``(C, R, R)`` texture at UVs ``(N, 2)`` -> ``(N, C)``.

    Texel (row i, column j) is centred at uv ((j + 0.5) / R, (i + 0.5) / R), the cell
    :func:`scalp_texture` writes a root to; beyond the outer centres the edge value is kept.
    """
    grid = (2.0 * uv.to(texture.dtype) - 1.0).view(1, 1, -1, 2)
    values = F.grid_sample(
        texture[None], grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return values[0, :, 0].T


def smooth_latents(texture: Tensor, sigma: float) -> Tensor:
    """A ``(C, R, R)`` texture with its latent channels (all but the last, the density)
    Gaussian-blurred by ``sigma`` texels (edges replicated; ``sigma`` 0 returns it unchanged).

    Written with a separable convolution rather than scipy so that it runs on the texture's
    device: sampled textures carry far more texel-to-texel noise than encoded grooms do.
    """
    if sigma <= 0:
        return texture
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, device=texture.device, dtype=texture.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    latents = texture[:-1, None]  # (C - 1, 1, R, R): one channel per convolution group
    latents = F.conv2d(
        F.pad(latents, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1)
    )
    latents = F.conv2d(
        F.pad(latents, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1)
    )
    return torch.cat([latents[:, 0], texture[-1:]])


def head_complement(weight: Tensor) -> Tensor:
    """Orthonormal basis ``(outputs, outputs - hidden)`` of the token directions that a linear
    output head with an ``(outputs, hidden)`` weight cannot write: the complement of its column
    space (no columns when ``outputs <= hidden``)."""
    hidden = weight.shape[1]
    return torch.linalg.qr(weight.detach().double().cpu(), mode="complete").Q[:, hidden:]


def replace_complement(tokens: Tensor, values: Tensor, complement: Tensor) -> Tensor:
    """``tokens (..., outputs)`` with their component along the orthonormal columns of
    ``complement`` (:func:`head_complement`) replaced by that of ``values`` (broadcast; 0 gives
    the orthogonal projection onto the head's range)."""
    complement = complement.to(tokens)
    return tokens + ((values - tokens) @ complement) @ complement.T


def texel_noise(textures: Tensor) -> Tensor:
    """Per-channel high-frequency energy of textures ``(B, C, R, R)`` -> ``(C,)``: the mean
    squared difference between neighbouring texels (rows and columns alike).

    Sampled textures whose latents scatter from texel to texel decode to frizzy, wrongly oriented
    strands (RESULTS.md); compare with encoded real textures (:func:`texel_noise_ratio`).
    """
    textures = textures.double()
    rows = (textures[..., 1:, :] - textures[..., :-1, :]).square().mean(dim=(0, 2, 3))
    columns = (textures[..., :, 1:] - textures[..., :, :-1]).square().mean(dim=(0, 2, 3))
    return (rows + columns) / 2


def texel_noise_ratio(textures: Tensor, reference: Tensor) -> Tensor:
    """:func:`texel_noise` of ``textures`` over that of ``reference`` (e.g. encoded real grooms),
    per channel: about 1 when both are equally smooth, whatever the channels' scales."""
    return texel_noise(textures) / texel_noise(reference).clamp(min=1e-12)


################################################################################
#                               Image encoder + DiT                            #
################################################################################


class ImageEncoder(nn.Module):
    """Small CNN from scratch: picture (B, 3, S, S) in [-1, 1] -> tokens (B, G*G, D) and their
    mean (B, D); stride-2 convolutions halve the side until it is ``token_grid``."""

    def __init__(
        self, image_size: int, channels: tuple[int, ...], dim: int, token_grid: int
    ) -> None:
        super().__init__()
        if image_size != token_grid * 2 ** len(channels):
            raise ValueError(
                f"image_size {image_size} must equal token_grid {token_grid} * 2**{len(channels)}"
            )
        layers: list[nn.Module] = [nn.Conv2d(3, channels[0], 3, padding=1), nn.SiLU()]
        previous = channels[0]
        for width in channels:
            layers += [
                nn.Conv2d(previous, width, 4, stride=2, padding=1),
                nn.GroupNorm(min(8, width), width),
                nn.SiLU(),
            ]
            previous = width
        layers.append(nn.Conv2d(previous, dim, 1))
        self.net = nn.Sequential(*layers)
        self.position = nn.Parameter(torch.zeros(1, token_grid * token_grid, dim))
        nn.init.normal_(self.position, std=0.02)

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        tokens = self.net(image).flatten(2).transpose(1, 2) + self.position
        return tokens, tokens.mean(dim=1)


class ScalpDiffusion(ModelMixin, ConfigMixin):
    """Image encoder + DiT over patch tokens of the whitened scalp texture.

    ``forward(x, timestep, image=...)`` (training) or ``forward(x, timestep, image_tokens=...,
    image_vector=...)`` (sampling, the picture encoded once) returns the EDM network output for the
    noisy tokens ``x`` ``(B, L, C * patch_size**2)``.
    """

    @register_to_config
    def __init__(
        self,
        texture_channels: int = 17,
        resolution: int = 64,
        patch_size: int = 4,
        image_size: int = 128,
        encoder_channels: tuple[int, ...] = (32, 64, 128, 160),
        token_grid: int = 8,
        hidden_size: int = 160,
        num_layers: int = 6,
        num_heads: int = 4,
        mlp_ratio: float = 3.0,
    ) -> None:
        super().__init__()
        if resolution % patch_size:
            raise ValueError(f"resolution {resolution} must be a multiple of patch {patch_size}")
        self.image_encoder = ImageEncoder(image_size, encoder_channels, hidden_size, token_grid)
        self.dit = DiTBackbone(
            in_channels=texture_channels * patch_size**2,
            hidden_size=hidden_size,
            num_layers=num_layers,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            max_seq_len=(resolution // patch_size) ** 2,
            pos_embedding="learned",  # a 2-D grid of patches: 1-D rotary positions would not fit
            cond_dim=hidden_size,
            cross_attention_dim=hidden_size,
        )
        # Per-channel whitening of the texture, measured on the training textures.
        self.register_buffer("channel_mean", torch.zeros(texture_channels))
        self.register_buffer("channel_std", torch.ones(texture_channels))

    @property
    def token_shape(self) -> tuple[int, int]:
        cfg = self.config
        return (cfg.resolution // cfg.patch_size) ** 2, cfg.texture_channels * cfg.patch_size**2

    def set_normalisation(self, textures: Tensor) -> None:
        """Measure the per-channel mean and std of training textures ``(S, C, R, R)``."""
        flat = textures.transpose(0, 1).flatten(1).double()
        self.channel_mean.copy_(flat.mean(1).float())
        self.channel_std.copy_(flat.std(1).clamp(min=1e-4).float())

    def textures_to_tokens(self, textures: Tensor) -> Tensor:
        """Whiten and patchify ``(B, C, R, R)`` -> ``(B, L, C * p * p)``."""
        p = self.config.patch_size
        x = (textures - self.channel_mean[:, None, None]) / self.channel_std[:, None, None]
        b, c, r, _ = x.shape
        x = x.view(b, c, r // p, p, r // p, p).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(b, (r // p) ** 2, c * p * p)

    def tokens_to_textures(self, tokens: Tensor) -> Tensor:
        """Inverse of :meth:`textures_to_tokens`."""
        cfg = self.config
        p, c, side = cfg.patch_size, cfg.texture_channels, cfg.resolution // cfg.patch_size
        x = tokens.reshape(-1, side, side, c, p, p).permute(0, 3, 1, 4, 2, 5)
        x = x.reshape(-1, c, side * p, side * p)
        return x * self.channel_std[:, None, None] + self.channel_mean[:, None, None]

    def encode_image(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """Pictures ``(B, 3, S, S)`` in [-1, 1] -> (tokens, vector) condition."""
        return self.image_encoder(image.to(self.dtype))

    def forward(
        self,
        x: Tensor,
        timestep: Tensor,
        *,
        image: Tensor | None = None,
        image_tokens: Tensor | None = None,
        image_vector: Tensor | None = None,
    ) -> Tensor:
        if image is not None:
            image_tokens, image_vector = self.encode_image(image)
        return self.dit(
            x,
            timestep * TIMESTEP_SCALE,
            cond=image_vector,
            encoder_hidden_states=image_tokens,
        ).sample


def images_to_tensor(images: np.ndarray | Tensor) -> Tensor:
    """uint8 pictures ``(B, S, S, 3)`` -> float ``(B, 3, S, S)`` in [-1, 1]."""
    images = images if isinstance(images, Tensor) else torch.tensor(np.asarray(images))
    return images.permute(0, 3, 1, 2).float() / 127.5 - 1.0


################################################################################
#                                  Model folder                                #
################################################################################


@dataclass(frozen=True)
class ScheduleConfig:
    """The EDM noise schedule a model is trained and sampled with (diffusers' EDM schedulers,
    epsilon prediction). ``sigma_data`` sets the preconditioning of training and sampling alike;
    sampling walks ``steps`` noise levels from ``sigma_max`` down to ``sigma_min``, spaced by
    ``sigma_schedule`` (``karras``: Karras et al.'s ``rho``-th-root spacing; ``exponential``:
    even in log sigma), then to 0."""

    sigma_min: float = 0.002
    sigma_max: float = 80.0
    sigma_data: float = 1.0
    rho: float = 7.0
    sigma_schedule: str = "karras"

    def __post_init__(self) -> None:
        check_config(self.sigma_min > 0, "sigma_min", "> 0", self.sigma_min)
        check_config(
            self.sigma_max > self.sigma_min, "sigma_max", f"> sigma_min={self.sigma_min}",
            self.sigma_max,
        )  # fmt: skip
        check_config(self.sigma_data > 0, "sigma_data", "> 0", self.sigma_data)
        check_config(self.rho > 0, "rho", "> 0", self.rho)
        check_config(
            self.sigma_schedule in ("karras", "exponential"),
            "sigma_schedule",
            "karras or exponential",
            self.sigma_schedule,
        )


# What models saved before the schedule was stored were trained and sampled with.
UNSTORED_SCHEDULE = {
    "sigma_min": 0.002,
    "sigma_max": 80.0,
    "sigma_data": 1.0,
    "rho": 7.0,
    "sigma_schedule": "karras",
}


@dataclass(frozen=True)
class SamplingConfig:
    """Generation defaults stored with a model (``generate`` and ``evaluate`` use them).

    ``guidance_scale`` follows the core convention ``u + (w + 1)(c - u)``: 0 is the plain
    conditional model. ``n_strands``: the strand count of a groom (the density decides where
    they grow); None lets the density also decide how many: ``root_candidates`` uniform
    candidates are drawn and kept with the density, as ``dataset`` and ``groom`` do, so a groom
    has about as many strands as the training grooms of its style.
    ``min_density``: a root candidate is dropped where the sampled density is below it (0.02,
    DiffLocks' and the generator's cut; higher values drop the sparse roots that a sampled
    density map leaves on bald scalp). ``latent_smoothing``: Gaussian blur (in texels) of the
    sampled latent channels before decoding (:func:`smooth_latents`; 0 = off).
    ``project_to_head_range``: in every sampling step, the denoised tokens' component outside the
    DiT output head's range (which the head cannot write, so the plain denoiser never removes its
    noise) is set to the whitened training mean there, 0 (:class:`~difforge.hair.sample.
    HeadRangeDenoiser`; a no-op for a head as wide as a token).
    ``ensemble``: textures sampled per picture (different noise, one batch) and averaged before
    decoding, Marigold's test-time ensembling: the average keeps what the picture determines and
    shrinks what each sample guesses; it costs ``ensemble`` times the sampling work.
    ``sampler``: the scheduler kind (``edm_dpmsolver++``: DPM-Solver++ 2M; ``edm_euler``);
    ``schedule``: its noise schedule (:class:`ScheduleConfig`), saved with the model so that it
    samples the way it was trained.
    ``bf16``: sample the DiT under bfloat16 autocast (textures still come back in float32):
    faster on CPUs with bfloat16 units (AMX), slower on CPUs without them (RESULTS.md).
    """

    steps: int = 20
    guidance_scale: float = 1.0
    sampler: str = "edm_dpmsolver++"
    n_strands: int | None = None
    root_candidates: int = 10_000
    decode_batch: int = 65_536
    min_density: float = MIN_DENSITY
    latent_smoothing: float = 0.0
    project_to_head_range: bool = False
    ensemble: int = 1
    bf16: bool = False
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)

    def __post_init__(self) -> None:
        check_config(self.steps >= 1, "steps", ">= 1", self.steps)
        check_config(self.ensemble >= 1, "ensemble", ">= 1", self.ensemble)
        check_config(self.guidance_scale >= 0, "guidance_scale", ">= 0", self.guidance_scale)
        check_config(
            self.sampler in ("edm_euler", "edm_dpmsolver++"),
            "sampler",
            "edm_euler or edm_dpmsolver++",
            self.sampler,
        )
        if self.n_strands is not None:
            check_config(self.n_strands >= 1, "n_strands", ">= 1 or None", self.n_strands)
        check_config(self.root_candidates >= 1, "root_candidates", ">= 1", self.root_candidates)
        check_config(self.decode_batch >= 1, "decode_batch", ">= 1", self.decode_batch)
        check_config(0 <= self.min_density < 1, "min_density", "in [0, 1)", self.min_density)
        check_config(self.latent_smoothing >= 0, "latent_smoothing", ">= 0", self.latent_smoothing)


@dataclass
class HairModel:
    """A trained model: strand codec, scalp-texture diffusion and generation defaults."""

    codec: StrandCodec
    diffusion: ScalpDiffusion
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    info: dict[str, Any] = field(default_factory=dict)  # training data, metrics, versions

    @property
    def condition(self) -> str:
        """What the model sees: ``"maps"`` (hair mask + orientation, :mod:`difforge.hair.maps`)
        or ``"rgb"`` (a render's pixels: models trained before the maps existed)."""
        return model_condition(self.info)

    def save(self, model_dir: str | os.PathLike[str], overwrite: bool = False) -> Path:
        """Write the folder atomically: ``codec/``, ``diffusion/`` (float16) and ``config.json``.
        An existing non-empty folder is replaced only with ``overwrite``."""
        with atomic_dir(model_dir, overwrite=overwrite) as tmp:
            save_component(self.codec, tmp / "codec")
            save_component(self.diffusion, tmp / "diffusion")
            write_model_meta(tmp, MODEL_TYPE, self.sampling, self.info)
        return Path(model_dir)

    @classmethod
    def load(cls, model_dir: str | os.PathLike[str]) -> HairModel:
        """Load a model folder (``"default"`` is the shipped one) in float32, eval mode."""
        model_dir = resolve_model_dir(model_dir)
        meta = read_model_meta(model_dir, MODEL_TYPE)
        meta["sampling"] = upgrade_sampling_meta(meta.get("sampling", {}))
        sampling, info = split_model_meta(meta, SamplingConfig)
        return cls(
            codec=load_component(StrandCodec, model_dir / "codec"),
            diffusion=load_component(ScalpDiffusion, model_dir / "diffusion"),
            sampling=sampling,
            info=info,
        )


def model_condition(info: dict[str, Any]) -> str:
    """The conditioning kind recorded in a model folder's training config (default ``"rgb"``)."""
    return info.get("training", {}).get("config", {}).get("data", {}).get("condition", "rgb")


def upgrade_sampling_meta(sampling: dict[str, Any]) -> dict[str, Any]:
    """A model folder's ``sampling`` metadata in today's keys. Folders written before
    ``root_candidates`` existed stored the candidate count as ``n_strands``; folders without a
    ``schedule`` were trained and sampled with :data:`UNSTORED_SCHEDULE`."""
    sampling = dict(sampling)
    if "root_candidates" not in sampling and "n_strands" in sampling:
        sampling["root_candidates"] = sampling.pop("n_strands")
    sampling["schedule"] = {**UNSTORED_SCHEDULE, **sampling.get("schedule", {})}
    return sampling


def make_edm_scheduler(sampling: SamplingConfig, sampler: str | None = None) -> SchedulerMixin:
    """The diffusers EDM scheduler of ``sampling``'s kind (or ``sampler``, e.g. ``edm_euler``
    for training) and noise schedule."""
    schedule = sampling.schedule
    scheduler = make_scheduler(
        "edm",
        sampler or sampling.sampler,
        prediction_type="epsilon",
        sigma_data=schedule.sigma_data,
    )
    settings = {key: value for key, value in scheduler.config.items() if not key.startswith("_")}
    return type(scheduler).from_config(  # without "_use_default_values", which would win
        {
            **settings,
            "sigma_min": schedule.sigma_min,
            "sigma_max": schedule.sigma_max,
            "rho": schedule.rho,
            "sigma_schedule": schedule.sigma_schedule,
        }
    )


def resolve_model_dir(name: str | os.PathLike[str]) -> Path:
    """``"default"`` -> the shipped default model folder; anything else is a folder path."""
    return pretrained.resolve_model_dir(name, DEFAULT_MODEL_DIR, "difforge-hair")
