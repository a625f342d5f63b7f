"""Training-time augmentation of the conditioning maps: what a photo's maps get wrong.

On a photo the head is aligned from a few detected keypoints, the hair mask comes from a
segmenter and the orientation from noisier texture. Each training picture is therefore moved by
a random similarity (rotation, scale, shift: alignment error; the orientation channels turn with
it), its mask edges are moved in or out (segmentation error) and its orientation field is
weakened and noised (texture), on the training device, fresh at every step.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

MAX_ROTATION = math.radians(8.0)
MAX_SCALE = 0.08
MAX_SHIFT = 0.08  # of the half-width: +-4 % of the picture
MAX_EDGE_SHIFT = 0.3  # threshold offset on the blurred mask: about +-2 px at 128^2
ORIENTATION_NOISE = 0.15


def augment_maps(images: Tensor, strength: float = 1.0) -> Tensor:
    """Augment maps ``(B, 3, S, S)`` in [-1, 1] (:func:`difforge.hair.model.images_to_tensor`
    of :func:`difforge.hair.maps.hair_maps` pictures); ``strength`` scales every range."""
    if strength <= 0:
        return images
    batch, device = images.shape[0], images.device
    uniform = lambda *shape: torch.rand(*shape, device=device) * 2 - 1  # noqa: E731
    angle = uniform(batch) * MAX_ROTATION * strength
    scale = 1 + uniform(batch) * MAX_SCALE * strength
    shift = uniform(batch, 2) * MAX_SHIFT * strength
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # affine_grid maps output to input coordinates (x right, y down): this turns the content by
    # +angle counter-clockwise as seen, so orientations grow by angle.
    theta = torch.stack(
        [torch.stack([cos, -sin, shift[:, 0]], -1), torch.stack([sin, cos, shift[:, 1]], -1)], 1
    )
    mask = (images[:, :1] + 1) / 2  # no hair (0) outside the picture after the move
    fields = torch.cat([mask, images[:, 1:]], 1)
    grid = F.affine_grid(theta, list(fields.shape), align_corners=False)
    moved = F.grid_sample(fields, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    mask, vectors = moved[:, :1], moved[:, 1:]
    turn = 2 * angle
    vectors = torch.stack(
        [
            torch.cos(turn)[:, None, None] * vectors[:, 0]
            - torch.sin(turn)[:, None, None] * vectors[:, 1],
            torch.sin(turn)[:, None, None] * vectors[:, 0]
            + torch.cos(turn)[:, None, None] * vectors[:, 1],
        ],
        1,
    )
    # Mask edges in or out: threshold the blurred mask at a random level.
    blurred = F.avg_pool2d(mask, 5, stride=1, padding=2, count_include_pad=False)
    level = 0.5 + uniform(batch, 1, 1, 1) * MAX_EDGE_SHIFT * strength
    mask = ((blurred - level) / 0.15 + 0.5).clamp(0, 1)
    gain = 1 + uniform(batch, 1, 1, 1) * 0.4 * strength
    noise = torch.randn_like(vectors) * ORIENTATION_NOISE * strength
    vectors = ((vectors * gain + noise) * mask).clamp(-1, 1)
    return torch.cat([mask * 2 - 1, vectors], 1)
