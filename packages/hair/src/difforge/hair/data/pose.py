"""Turned heads for the training renders, framed the way the photo front end frames a portrait.

:func:`difforge.hair.photo.align_photo` brings a photo into the renders' framing with the
least-squares similarity that takes the eyes, nose tip and mouth onto their places on a frontal
render (:data:`~difforge.hair.photo.CANONICAL_KEYPOINTS`). A portrait of a turned head therefore
reaches the model as a turned head, shrunk a little and shifted so that its face points sit
where a frontal face's do. A training render of a turned head must reach it the same way: the
same four points, now in 3D on our head model, are projected by the turned camera, the same
similarity is fitted, and it is folded into the orthographic camera (a similarity of the image
plane is a change of centre, extent and roll), so the render, its mask, orientation and depth
come out already aligned, with no resampling.
"""

from __future__ import annotations

import numpy as np
from skimage.transform import SimilarityTransform

from difforge.hair.photo import CANONICAL_KEYPOINTS
from difforge.hair.render import VIEWS, Camera

# How far in front of the skull centre the four points lie (metres, +z): the eye centres about
# 1 cm behind the brow (the skull ellipsoid's front, z = 0.095), the nose tip 2 cm ahead of it,
# the mouth 0.5 cm behind it (adult head anthropometry; the head model has no face of its own).
KEYPOINT_DEPTHS = np.array([0.085, 0.085, 0.115, 0.09])
FACE_KEYPOINTS = np.concatenate([CANONICAL_KEYPOINTS, KEYPOINT_DEPTHS[:, None]], axis=1)


def project(points: np.ndarray, camera: Camera) -> np.ndarray:
    """Camera-plane (right, up) metres of head-frame ``points`` (..., 3), relative to the
    camera's centre (the image centre)."""
    return ((np.asarray(points) - np.asarray(camera.center)) @ camera.rotation().T)[..., :2]


def turned_head_camera(head_yaw: float, camera: Camera = VIEWS["front"]) -> Camera:
    """The camera that sees the head turned ``head_yaw`` degrees toward the subject's left
    (as :func:`difforge.hair.photo.head_yaw` measures it), in the photo framing of ``camera``
    (a frontal one): its face points land where ``camera`` sees them on the unturned head, in
    the least-squares sense. ``head_yaw = 0`` gives ``camera`` itself."""
    if head_yaw == 0:
        return camera
    # Turning the head toward its left is orbiting the camera toward its right (-x).
    turned = Camera(yaw=camera.yaw - head_yaw, pitch=camera.pitch, center=camera.center,
                    half_extent=camera.half_extent, roll=camera.roll)  # fmt: skip
    seen, wanted = project(FACE_KEYPOINTS, turned), project(FACE_KEYPOINTS, camera)
    fit = SimilarityTransform.from_estimate(seen, wanted)  # least squares (Umeyama), as photo.py
    scale, angle = float(fit.scale), float(fit.rotation)
    # wanted = scale * R(angle) (seen + d) with d = R(-angle) t / scale: a shift d of the image
    # plane is a shift of the centre by -d along the turned camera's right and up axes, the
    # rotation is the roll, the scale shrinks the extent.
    cos, sin = np.cos(angle), np.sin(angle)
    shift = np.array([[cos, sin], [-sin, cos]]) @ np.asarray(fit.translation) / scale
    axes = turned.rotation()[:2]
    return Camera(
        yaw=turned.yaw,
        pitch=turned.pitch,
        center=tuple((np.asarray(camera.center) - shift @ axes).tolist()),
        half_extent=camera.half_extent / scale,
        roll=camera.roll + float(np.degrees(angle)),
    )


def sample_head_yaw(seed: int, max_yaw: float) -> float:
    """A head turn in [-max_yaw, max_yaw] degrees, uniform and fixed by ``seed`` (0 when
    ``max_yaw`` is 0, so frontal datasets draw nothing)."""
    if max_yaw <= 0:
        return 0.0
    return float(np.random.default_rng([seed, 11]).uniform(-max_yaw, max_yaw))
