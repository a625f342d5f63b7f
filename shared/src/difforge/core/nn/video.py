"""Video tokens for DiTs: 3-D patchify/unpatchify and factorised space/time rotary embeddings.

A clip ``(B, C, T, H, W)`` is cut into ``pt x ph x pw`` patches, one token each, ordered time-major
(all patches of the first time step, then the next), with the integer grid position ``(t, y, x)``
of every token. :func:`axial_rotary_cos_sin` turns positions on several axes into one rotary table
that :func:`difforge.core.nn.dit.apply_rotary` applies: each axis rotates its own share of the head
dimensions, so attention over space sees only ``(y, x)`` offsets and attention over time only ``t``
offsets, and tokens of another modality placed on the same time axis (audio frames) line up with
the video tokens of the same instant. Positions may be fractional (a time in frames).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def video_patchify(video: Tensor, patch: Sequence[int]) -> Tensor:
    """``(B, C, T, H, W)`` -> tokens ``(B, T' * H' * W', C * pt * ph * pw)``, time-major."""
    pt, ph, pw = patch
    batch, channels, frames, height, width = video.shape
    if frames % pt or height % ph or width % pw:
        raise ValueError(
            f"video {frames}x{height}x{width} does not divide into patches {pt}x{ph}x{pw}"
        )
    grid = (frames // pt, height // ph, width // pw)
    x = video.reshape(batch, channels, grid[0], pt, grid[1], ph, grid[2], pw)
    x = x.permute(0, 2, 4, 6, 1, 3, 5, 7)  # B, T', H', W', C, pt, ph, pw
    return x.reshape(batch, grid[0] * grid[1] * grid[2], channels * pt * ph * pw)


def video_unpatchify(
    tokens: Tensor, patch: Sequence[int], grid: Sequence[int], channels: int
) -> Tensor:
    """Inverse of :func:`video_patchify`: ``(B, N, C * pt * ph * pw)`` -> ``(B, C, T, H, W)``."""
    pt, ph, pw = patch
    gt, gh, gw = grid
    batch = tokens.shape[0]
    x = tokens.reshape(batch, gt, gh, gw, channels, pt, ph, pw)
    x = x.permute(0, 4, 1, 5, 2, 6, 3, 7)  # B, C, T', pt, H', ph, W', pw
    return x.reshape(batch, channels, gt * pt, gh * ph, gw * pw)


def patch_grid_positions(grid: Sequence[int], device: torch.device | str = "cpu") -> Tensor:
    """Integer positions ``(N, len(grid))`` of the tokens of a patch grid, in patchify order."""
    axes = [torch.arange(n, device=device, dtype=torch.float32) for n in grid]
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=-1)


def axial_rotary_cos_sin(
    positions: Tensor,
    head_dim: int,
    axis_dims: Sequence[int],
    theta: float = 10000.0,
) -> tuple[Tensor, Tensor]:
    """cos/sin tables ``(B, 1, L, head_dim)`` for positions ``(B, L, A)`` on ``A`` axes.

    ``axis_dims[a]`` head dimensions (even, summing to ``head_dim``) rotate with axis ``a``; an
    axis given 0 dimensions is ignored. The layout matches ``apply_rotary`` (dimension ``i`` pairs
    with ``i + head_dim / 2``).
    """
    if sum(axis_dims) != head_dim or any(d % 2 for d in axis_dims):
        raise ValueError(f"axis_dims {list(axis_dims)} must be even and sum to {head_dim}")
    if positions.shape[-1] != len(axis_dims):
        raise ValueError(f"positions have {positions.shape[-1]} axes, axis_dims {len(axis_dims)}")
    angles = []
    for axis, dims in enumerate(axis_dims):
        if dims == 0:
            continue
        inv_freq = 1.0 / theta ** (
            torch.arange(0, dims, 2, device=positions.device, dtype=torch.float32) / dims
        )
        angles.append(positions[..., axis].float()[..., None] * inv_freq)
    half = torch.cat(angles, dim=-1)  # (B, L, head_dim / 2)
    full = torch.cat([half, half], dim=-1)[:, None]
    return full.cos(), full.sin()


def split_head_dim(head_dim: int, weights: Sequence[int]) -> list[int]:
    """Share ``head_dim`` among axes in proportion to ``weights``, each share even."""
    total = sum(weights)
    dims = [2 * (head_dim * w // (2 * total)) for w in weights]
    dims[0] += head_dim - sum(dims)
    return dims
