"""Strand codec: a VAE that compresses one strand (K points in its root frame) to a small latent.

After DiffLocks' strand VAE (clean-room, from the paper's description): a strand is expressed in
its root-local (tangent, bitangent, normal) frame with the root at the origin, encoded by strided
1-D convolutions over (position, segment direction) to a tanh-bounded mean and a small log-std,
and decoded by an MLP into per-segment displacement vectors whose cumulative sum gives the
points. The loss is DiffLocks': L1 on positions, on segment directions and on curvature (second
differences, which matter most for curly hair) plus a KL term with free bits.

Coordinates inside the codec are metres divided by :data:`POSITION_SCALE`; the reported errors
(:func:`codec_errors`) are in millimetres and degrees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn

from difforge.core.config import check_config
from difforge.hair.data.groom import Groom
from difforge.hair.data.head import DEFAULT_HEAD, Head

POSITION_SCALE = 0.1  # metres per codec unit: a 50 cm strand spans about 5 units


def strands_to_local(
    points: np.ndarray, root_uv: np.ndarray, head: Head = DEFAULT_HEAD
) -> np.ndarray:
    """Strands (N, K, 3) metres, head frame -> (N, K, 3) codec units in each root's frame."""
    frames = Groom(points=points, root_uv=root_uv).root_frames(head)  # columns t, b, n
    relative = np.asarray(points, dtype=np.float64) - np.asarray(points, dtype=np.float64)[:, :1]
    return (np.einsum("nkc,ncj->nkj", relative, frames) / POSITION_SCALE).astype(np.float32)


def local_to_world(local: Tensor, roots: Tensor, frames: Tensor) -> Tensor:
    """Inverse of :func:`strands_to_local`: codec units (N, K, 3) -> metres in the head frame."""
    return roots[:, None] + POSITION_SCALE * torch.einsum("nkj,ncj->nkc", local, frames)


class StrandCodec(ModelMixin, ConfigMixin):
    """Strand VAE: ``encode`` (N, K, 3) -> (mean, log_std) of a ``latent_dim`` latent, ``decode``
    latent -> (N, K, 3), both in codec units, root at the origin."""

    @register_to_config
    def __init__(
        self,
        n_points: int = 64,
        latent_dim: int = 16,
        encoder_channels: tuple[int, ...] = (32, 64, 128, 128, 256),
        decoder_width: int = 384,
        decoder_layers: int = 3,
    ) -> None:
        super().__init__()
        stride_total = 2 ** len(encoder_channels)
        if n_points % stride_total or n_points < 2 * stride_total:
            raise ValueError(
                f"n_points={n_points} must be a multiple of 2**len(encoder_channels)="
                f"{stride_total} with at least 2 samples left"
            )
        layers: list[nn.Module] = []
        previous = 6  # xyz + segment direction
        for channels in encoder_channels:
            # Replicate padding as DiffLocks: the ends of a strand are not zeros.
            layers += [
                nn.Conv1d(previous, channels, 4, stride=2, padding=1, padding_mode="replicate"),
                nn.SiLU(),
            ]
            previous = channels
        self.encoder = nn.Sequential(*layers, nn.Flatten())
        flat = previous * (n_points // stride_total)
        self.to_mean = nn.Sequential(nn.Linear(flat, 256), nn.SiLU(), nn.Linear(256, latent_dim))
        self.to_log_std = nn.Linear(flat, latent_dim)
        blocks: list[nn.Module] = [nn.Linear(latent_dim, decoder_width), nn.SiLU()]
        for _ in range(decoder_layers - 1):
            blocks += [nn.Linear(decoder_width, decoder_width), nn.SiLU()]
        blocks.append(nn.Linear(decoder_width, (n_points - 1) * 3))
        self.decoder = nn.Sequential(*blocks)

    @staticmethod
    def _features(local: Tensor) -> Tensor:
        steps = local.shape[1] - 1
        segments = torch.diff(local, dim=1) * steps
        segments = torch.cat([segments, segments[:, -1:]], dim=1)  # one per point
        return torch.cat([local, segments], dim=-1).transpose(1, 2)

    def encode(self, local: Tensor) -> tuple[Tensor, Tensor]:
        """Mean (tanh-bounded) and log-std (about -2, as DiffLocks) of each strand's latent."""
        hidden = self.encoder(self._features(local))
        return torch.tanh(self.to_mean(hidden)), -2.0 + 0.01 * self.to_log_std(hidden)

    def decode(self, latent: Tensor) -> Tensor:
        steps = self.config.n_points - 1
        segments = self.decoder(latent).unflatten(-1, (steps, 3)) / steps
        return F.pad(torch.cumsum(segments, dim=1), (0, 0, 1, 0))  # the root stays at 0

    def forward(
        self, local: Tensor, sample_posterior: bool = True
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(reconstruction, mean, log_std); a posterior sample is decoded when training."""
        mean, log_std = self.encode(local)
        latent = mean + log_std.exp() * torch.randn_like(mean) if sample_posterior else mean
        return self.decode(latent), mean, log_std


@dataclass(frozen=True)
class CodecLossWeights:
    """DiffLocks' strand-VAE weights (position 0.5, direction 1, curvature 20, KL 6e-4, free bits
    0.25 per latent dimension); directions and curvature are scaled by the segment count."""

    position: float = 0.5
    direction: float = 1.0
    curvature: float = 20.0
    kl: float = 6e-4
    free_bits: float = 0.25

    def __post_init__(self) -> None:
        for name in ("position", "direction", "curvature", "kl", "free_bits"):
            check_config(getattr(self, name) >= 0, name, ">= 0", getattr(self, name))


def codec_loss(
    model: nn.Module, local: Tensor, weights: CodecLossWeights
) -> tuple[Tensor, dict[str, Tensor]]:
    """The training loss of one batch of strands (codec units) and its parts, for logging."""
    reconstruction, mean, log_std = model(local)
    steps = local.shape[1] - 1
    position = F.l1_loss(reconstruction, local)
    direction = F.l1_loss(torch.diff(reconstruction, dim=1), torch.diff(local, dim=1)) * steps
    curvature = (
        F.l1_loss(torch.diff(reconstruction, n=2, dim=1), torch.diff(local, n=2, dim=1)) * steps
    )
    kl_per_dim = 0.5 * (mean.square() + (2 * log_std).exp() - 1.0 - 2 * log_std)
    kl = kl_per_dim.mean(0).clamp(min=weights.free_bits).sum()
    loss = (
        weights.position * position
        + weights.direction * direction
        + weights.curvature * curvature
        + weights.kl * kl
    )
    return loss, {"position": position, "direction": direction, "curvature": curvature, "kl": kl}


@torch.no_grad()
def codec_errors(codec: StrandCodec, local: Tensor, batch_size: int = 8192) -> dict[str, float]:
    """Design-note A5 codec errors of the posterior means on strands in codec units.

    E_pos: mean point distance (mm); E_dir: mean angle between segment directions (degrees);
    E_curv: mean L1 norm of the second-difference error (mm).
    """
    sums = {"position_mm": 0.0, "direction_deg": 0.0, "curvature_mm": 0.0}
    counts = dict.fromkeys(sums, 0)
    device = next(codec.parameters()).device
    for chunk in local.split(batch_size):
        chunk = chunk.to(device=device, dtype=torch.float32)
        reconstruction = codec.decode(codec.encode(chunk)[0])
        mm = 1000 * POSITION_SCALE
        distance = (reconstruction - chunk).norm(dim=-1) * mm
        true_dir, rec_dir = torch.diff(chunk, dim=1), torch.diff(reconstruction, dim=1)
        valid = true_dir.norm(dim=-1) > 1e-9  # zero-length segments have no direction
        cosine = F.cosine_similarity(true_dir, rec_dir, dim=-1, eps=1e-12).clamp(-1, 1)
        angle = torch.rad2deg(torch.arccos(cosine))[valid]
        curvature = (
            torch.diff(reconstruction, n=2, dim=1) - torch.diff(chunk, n=2, dim=1)
        ).abs().sum(-1) * mm
        for key, values in (
            ("position_mm", distance),
            ("direction_deg", angle),
            ("curvature_mm", curvature),
        ):
            sums[key] += float(values.double().sum())
            counts[key] += values.numel()
    return {key: sums[key] / max(counts[key], 1) for key in sums}
