"""Scoring a groom against the photograph it came from, HairStep's way (no 3D truth needed).

HairStep (CVPR 2023) renders a reconstructed groom with the photo's camera and compares it with
annotations of the photo: **IoU** of the rendered hair mask with the annotated one, and
**HairSale**, the mean angle between the rendered strand directions and the annotated strand map
where both have hair. Here the camera is the front end's alignment (:mod:`difforge.hair.photo`):
the groom is rendered in the renders' framing and warped back into the photo by the inverse
similarity, strand directions turned with it. Also reported: strands over the face (the front
of the face below the brows, where hair should rarely hang), whether short hair stays short
(median strand length against the vertical extent of the visible hair) and **HairRida**, the
share of annotated ordinal depth pairs (two hair pixels, which is nearer) that the groom's
rendered depth orders the same way; a pair the groom does not cover counts as wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from difforge.hair.evaluate import mask_iou, orientation_error_2d, strand_lengths
from difforge.hair.maps import ANALYSIS_SIZE
from difforge.hair.photo import AlignedPhoto
from difforge.hair.render import VIEWS, Render, render_groom

# The front of the face below the brows, head frame (metres): between the outer eye corners,
# from just under the brows to above the chin, and in front of the skull's widest section.
FACE_REGION = {"x": 0.05, "y": (-0.115, -0.005), "z": 0.03}


@dataclass(frozen=True)
class PhotoReference:
    """Annotations of a photo, in its pixels: ``hair_mask`` (H, W) bool, ``orientation``
    (H, W) strand direction in [0, pi) (0 = image right, pi/2 = up), NaN where unknown, and
    ``depth_pairs``: (a, b, +1 if a is nearer else -1), a and b (x, y) pixels."""

    hair_mask: np.ndarray
    orientation: np.ndarray
    depth_pairs: list[tuple[np.ndarray, np.ndarray, int]] = field(default_factory=list)


def strands_over_face(points: np.ndarray) -> int:
    """Strands with a point in front of the face below the brows (:data:`FACE_REGION`)."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    low, high = FACE_REGION["y"]
    inside = (np.abs(x) < FACE_REGION["x"]) & (y > low) & (y < high) & (z > FACE_REGION["z"])
    return int(inside.any(axis=1).sum())


def groom_in_photo(
    aligned: AlignedPhoto,
    points: np.ndarray,
    photo_shape: tuple[int, int],
    front: Render | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The groom's front render (``front``, or rendered here) in the photo's pixels: hair mask
    (H, W) bool and strand orientation (H, W) in [0, pi), NaN off the hair."""
    if front is None:
        front = render_groom(points, VIEWS["front"], ANALYSIS_SIZE)
    to_photo = cv2.invertAffineTransform(aligned.matrix)
    height, width = photo_shape
    mask = cv2.warpAffine(
        front.hair_mask.astype(np.uint8), to_photo, (width, height), flags=cv2.INTER_NEAREST
    ).astype(bool)
    # Directions in pixel coordinates (y down) turn with the similarity's linear part.
    angle = np.nan_to_num(front.orientation)
    direction = np.stack([np.cos(angle), -np.sin(angle)], -1) @ to_photo[:, :2].T
    turned = np.mod(np.arctan2(-direction[..., 1], direction[..., 0]), np.pi)
    doubled = np.stack([np.cos(2 * turned), np.sin(2 * turned)], -1).astype(np.float32)
    doubled = cv2.warpAffine(doubled, to_photo, (width, height), flags=cv2.INTER_NEAREST)
    orientation = np.mod(np.arctan2(doubled[..., 1], doubled[..., 0]) / 2, np.pi)
    orientation[~mask] = np.nan
    return mask, orientation.astype(np.float32)


def visible_extent_m(aligned: AlignedPhoto, hair_mask: np.ndarray) -> float:
    """Vertical extent (metres at the head model's scale) of a photo's hair mask."""
    rows = np.nonzero(hair_mask.any(axis=1))[0]
    if rows.size == 0:
        return 0.0
    scale = np.hypot(*aligned.matrix[:, 0])  # crop pixels per photo pixel
    metres_per_crop_pixel = 2 * VIEWS["front"].half_extent / ANALYSIS_SIZE
    return float((rows[-1] - rows[0] + 1) * scale * metres_per_crop_pixel)


def hair_rida(
    aligned: AlignedPhoto,
    depth: np.ndarray,
    pairs: list[tuple[np.ndarray, np.ndarray, int]],
    search: int = 2,
) -> float:
    """Share of ``pairs`` (photo pixels) that ``depth`` (the groom's front render at the crop's
    size, NaN off the hair) orders as annotated; each point takes the nearest covered depth
    within ``search`` crop pixels, and a pair with an uncovered point counts as wrong."""
    if not pairs:
        return float("nan")
    size = depth.shape[0]

    def depth_at(point: np.ndarray) -> float:
        x, y = np.round(aligned.matrix[:, :2] @ point + aligned.matrix[:, 2]).astype(int)
        window = depth[
            max(0, y - search) : min(size, y + search + 1),
            max(0, x - search) : min(size, x + search + 1),
        ]
        return float(np.nanmin(window)) if np.isfinite(window).any() else float("nan")

    right = 0
    for a, b, sign in pairs:
        depth_a, depth_b = depth_at(np.asarray(a, float)), depth_at(np.asarray(b, float))
        right += bool(np.isfinite(depth_a) and np.isfinite(depth_b)) and (
            np.sign(depth_b - depth_a) == sign
        )
    return right / len(pairs)


def photo_scores(aligned: AlignedPhoto, points: np.ndarray, reference: PhotoReference) -> dict:
    """IoU, HairSale (degrees), HairRida, strands over the face, median strand length and the
    visible hair extent (metres) of a groom generated from an aligned photo."""
    front = render_groom(points, VIEWS["front"], ANALYSIS_SIZE)
    mask, orientation = groom_in_photo(aligned, points, reference.hair_mask.shape, front)
    annotated = np.where(reference.hair_mask, reference.orientation, np.nan)
    return {
        "iou": mask_iou(mask, reference.hair_mask),
        "hairsale_deg": orientation_error_2d(orientation, annotated),
        "hairrida": hair_rida(aligned, front.depth, reference.depth_pairs),
        "strands_over_face": strands_over_face(points),
        "strands": len(points),
        "median_length_m": float(np.median(strand_lengths(points))) if len(points) else 0.0,
        "visible_extent_m": visible_extent_m(aligned, reference.hair_mask),
    }
