"""Scoring a groom against the photograph it came from, HairStep's way (no 3D truth needed).

HairStep (CVPR 2023) renders a reconstructed groom with the photo's camera and compares it with
annotations of the photo: **IoU** of the rendered hair mask with the annotated one, and
**HairSale**, the mean angle between the rendered strand directions and the annotated strand map
where both have hair. Here the camera is the front end's alignment (:mod:`difforge.hair.photo`):
the groom is rendered in the renders' framing and warped back into the photo by the inverse
similarity, strand directions turned with it. Also reported: strands over the face (the front
of the face below the brows, where hair should rarely hang) and whether short hair stays short
(median strand length against the vertical extent of the visible hair). HairRida needs ordinal
depth annotations, which our set does not have.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from difforge.hair.evaluate import mask_iou, orientation_error_2d, strand_lengths
from difforge.hair.maps import ANALYSIS_SIZE
from difforge.hair.photo import AlignedPhoto
from difforge.hair.render import VIEWS, render_groom

# The front of the face below the brows, head frame (metres): between the outer eye corners,
# from just under the brows to above the chin, and in front of the skull's widest section.
FACE_REGION = {"x": 0.05, "y": (-0.115, -0.005), "z": 0.03}


@dataclass(frozen=True)
class PhotoReference:
    """Annotations of a photo, in its pixels: ``hair_mask`` (H, W) bool and ``orientation``
    (H, W) strand direction in [0, pi) (0 = image right, pi/2 = up), NaN where unknown."""

    hair_mask: np.ndarray
    orientation: np.ndarray


def strands_over_face(points: np.ndarray) -> int:
    """Strands with a point in front of the face below the brows (:data:`FACE_REGION`)."""
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    low, high = FACE_REGION["y"]
    inside = (np.abs(x) < FACE_REGION["x"]) & (y > low) & (y < high) & (z > FACE_REGION["z"])
    return int(inside.any(axis=1).sum())


def groom_in_photo(
    aligned: AlignedPhoto, points: np.ndarray, photo_shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The groom's front render in the photo's pixels: hair mask (H, W) bool and strand
    orientation (H, W) in [0, pi), NaN off the hair."""
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


def photo_scores(aligned: AlignedPhoto, points: np.ndarray, reference: PhotoReference) -> dict:
    """IoU, HairSale (degrees), strands over the face, median strand length and the visible
    hair extent (metres) of a groom generated from an aligned photo."""
    mask, orientation = groom_in_photo(aligned, points, reference.hair_mask.shape)
    annotated = np.where(reference.hair_mask, reference.orientation, np.nan)
    return {
        "iou": mask_iou(mask, reference.hair_mask),
        "hairsale_deg": orientation_error_2d(orientation, annotated),
        "strands_over_face": strands_over_face(points),
        "strands": len(points),
        "median_length_m": float(np.median(strand_lengths(points))) if len(points) else 0.0,
        "visible_extent_m": visible_extent_m(aligned, reference.hair_mask),
    }
