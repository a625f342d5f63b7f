"""Block geometry shared by every stage: sizes, the sample grid and normalised coordinates.

World frame: metres, y up, floor top at y = 0. A block is a 3.2 m cube spanning
y in [-0.15, 3.05] (BlockFusion's room blocks: the floor slab and no ceiling). Its SDF grid holds
``resolution`` samples per axis at cell centres, ``origin + (i + 0.5) * voxel``, so blocks whose
origins differ by whole voxels share one global grid (needed for blending overlaps).
"""

from __future__ import annotations

import numpy as np
import torch

BLOCK_SIZE = 3.2
BLOCK_Y_MIN = -0.15
BLOCK_Y_MAX = BLOCK_Y_MIN + BLOCK_SIZE
# BlockFusion's scale from block metres to [-1, 1]^3.
NORMALISE_SCALE = 2.0 / BLOCK_SIZE
# Layout raster cell: 0.1 m, 32 x 32 per block.
LAYOUT_CELL = 0.1
LAYOUT_CELLS = round(BLOCK_SIZE / LAYOUT_CELL)
DEFAULT_RESOLUTION = 64
# SDF values are clamped to +-TRUNCATION (metres); far-away primitives are culled at this margin.
TRUNCATION = 0.2


def block_origin(x: float, z: float) -> np.ndarray:
    """World-space minimum corner of the block whose xz minimum corner is (x, z)."""
    return np.array([x, BLOCK_Y_MIN, z], dtype=np.float64)


def grid_points(
    origin: np.ndarray,
    resolution: int,
    size: float = BLOCK_SIZE,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Cell-centre sample points (resolution^3, 3), x slowest, z fastest (index [i, j, k])."""
    voxel = size / resolution
    axis = (torch.arange(resolution, dtype=torch.float64) + 0.5) * voxel
    o = torch.as_tensor(origin, dtype=torch.float64)
    xs, ys, zs = torch.meshgrid(axis + o[0], axis + o[1], axis + o[2], indexing="ij")
    return torch.stack([xs, ys, zs], dim=-1).reshape(-1, 3).to(dtype=dtype, device=device)
