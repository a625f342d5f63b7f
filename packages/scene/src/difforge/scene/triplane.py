"""Tri-planes and their shared decoder (BlockFusion's raw representation of a block's SDF).

A block is three feature planes (xy, xz, yz), each C x R x R, over the block's normalised cube
[-1, 1]^3. A point's feature is the sum of its bilinear samples on the three planes; one MLP shared
by every block (Softplus, beta = 100, weight-normalised layers) maps it to the signed distance in
normalised units (metres x 0.625). Registered config + save_pretrained / from_pretrained folders
(safetensors + config.json) as every difforge model.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from difforge.core.errors import UserError

# Which coordinates index each plane (x, y, z = 0, 1, 2): xy, xz, yz.
PLANE_AXES = ((0, 1), (0, 2), (1, 2))


def sample_triplanes(planes: Tensor, points: Tensor) -> Tensor:
    """Summed bilinear features (B, N, C) of tri-planes (B, 3, C, R, R) at points (B, N, 3) in [-1, 1]."""
    features = 0
    for k, (u, v) in enumerate(PLANE_AXES):
        # grid_sample reads grid[..., 0] along the width and grid[..., 1] along the height.
        grid = points[:, :, None, [u, v]]
        sampled = F.grid_sample(
            planes[:, k], grid, mode="bilinear", padding_mode="border", align_corners=False
        )
        features = features + sampled[..., 0]
    return features.transpose(1, 2)


class TriPlaneDecoder(ModelMixin, ConfigMixin):
    """Shared MLP from summed tri-plane features to signed distance (normalised units)."""

    @register_to_config
    def __init__(
        self,
        channels: int = 16,
        hidden: int = 128,
        layers: int = 3,
        softplus_beta: float = 100.0,
    ) -> None:
        super().__init__()
        sizes = [channels] + [hidden] * layers
        blocks: list[nn.Module] = []
        for n_in, n_out in itertools.pairwise(sizes):
            blocks += [weight_norm(nn.Linear(n_in, n_out)), nn.Softplus(beta=softplus_beta)]
        blocks.append(weight_norm(nn.Linear(hidden, 1)))
        self.mlp = nn.Sequential(*blocks)

    def forward(self, planes: Tensor, points: Tensor) -> Tensor:
        """SDF (B, N) of each block's tri-planes (B, 3, C, R, R) at its points (B, N, 3)."""
        return self.mlp(sample_triplanes(planes, points)).squeeze(-1)


def init_planes(
    n_blocks: int, channels: int, resolution: int, generator: torch.Generator | None = None
) -> Tensor:
    """Small random planes (B, 3, C, R, R) to start fitting from."""
    return 0.01 * torch.randn(n_blocks, 3, channels, resolution, resolution, generator=generator)


def central_gradient(
    decoder: TriPlaneDecoder, planes: Tensor, points: Tensor, eps: float = 1e-3
) -> Tensor:
    """Spatial gradient (B, N, 3) of the decoded SDF by central differences.

    Differences, as in BlockFusion's fitting, rather than autograd: grid_sample has no double
    backward with respect to the sample positions, which an eikonal loss on autograd gradients needs.
    """
    offsets = torch.eye(3, dtype=points.dtype, device=points.device) * eps
    shifted = torch.cat([points[:, :, None] + offsets, points[:, :, None] - offsets], dim=2)
    values = decoder(planes, shifted.reshape(len(points), -1, 3)).reshape(*points.shape[:2], 2, 3)
    return (values[:, :, 0] - values[:, :, 1]) / (2 * eps)


def load_decoder(path: str | os.PathLike[str]) -> TriPlaneDecoder:
    """A saved decoder folder (config.json + safetensors; never pickles), or a one-line UserError."""
    folder = Path(path)
    weights = folder / "diffusion_pytorch_model.safetensors"
    if not (folder / "config.json").is_file() or not weights.is_file():
        raise UserError(
            f"{folder} is not a tri-plane decoder folder (config.json + {weights.name})"
        )
    try:
        return TriPlaneDecoder.from_pretrained(folder, use_safetensors=True, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{folder}: cannot load the tri-plane decoder ({first_line})") from None
