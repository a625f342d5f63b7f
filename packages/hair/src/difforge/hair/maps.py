"""Conditioning maps that look the same on our renders and on photographs.

The model trained on raw render pixels failed on photos (faceless heads on plain backgrounds are
not portraits). Like HairStep and NeuralHDHair, the model now sees intermediate maps instead of
pixels: the hair mask and a 2D strand orientation field from a Gabor filter bank, computed by the
same function on a render (with the renderer's hair mask) and on an aligned photo crop (with the
photo front end's hair mask, :mod:`difforge.hair.photo`).

The maps are packed into a ``(S, S, 3)`` uint8 picture so that the rest of the pipeline (datasets,
caches, the image encoder) is unchanged: channel 0 is the hair mask, channels 1 and 2 are
``cos 2a`` and ``sin 2a`` of the orientation ``a`` weighted by the filter bank's confidence, zero
(127.5) outside the hair. The doubled angle makes the field continuous: a strand direction and its
reverse are the same undirected orientation, as a Gabor filter sees it.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

N_ORIENTATIONS = 16  # Gabor orientations over [0, pi)
WAVELENGTH = 3.0  # pixels at the 256^2 analysis size: the stripe period of strand shading
ANALYSIS_SIZE = 256  # orientation is measured at twice the 128^2 conditioning size
SMOOTHING = 4.0  # Gaussian sigma (pixels at 256^2) of the orientation votes


@lru_cache(maxsize=4)
def _gabor_bank(wavelength: float) -> list[np.ndarray]:
    sigma = 0.45 * wavelength
    size = int(2 * round(2.5 * sigma) + 1)
    kernels = []
    for k in range(N_ORIENTATIONS):
        # OpenCV's theta is the direction of the wave vector; strands run perpendicular to it.
        angle = np.pi * k / N_ORIENTATIONS + np.pi / 2
        kernel = cv2.getGaborKernel((size, size), sigma, angle, wavelength, 0.5, 0.0, cv2.CV_32F)
        kernels.append(kernel - kernel.mean())  # no response to flat regions
    return kernels


def orientation_votes(gray: np.ndarray, smoothing: float = SMOOTHING) -> np.ndarray:
    """``(H, W, 2)``: the doubled-angle vector ``c (cos 2a, sin 2a)`` of the strand orientation
    ``a`` (0 = image right, pi/2 = image up) with coherence ``c`` in [0, 1].

    Every Gabor filter votes for its orientation with its rectified response above the weakest
    one; the votes are smoothed over ``smoothing`` pixels. Measured on renders at 256^2 against
    the renderer's exact orientation: 15 deg mean error, against 35 deg for the per-pixel
    strongest filter at 128^2 (RESULTS.md, "Conditioning maps").
    """
    gray = np.asarray(gray, dtype=np.float32)
    responses = np.stack(
        [np.abs(cv2.filter2D(gray, cv2.CV_32F, k)) for k in _gabor_bank(WAVELENGTH)]
    )
    responses -= responses.min(axis=0, keepdims=True)
    # Rows run down the image, so a filter's angle is clockwise; flip it to counter-clockwise.
    angles = (np.pi - np.pi * np.arange(N_ORIENTATIONS) / N_ORIENTATIONS) % np.pi
    votes = np.stack(
        [
            np.tensordot(np.cos(2 * angles), responses, axes=1),
            np.tensordot(np.sin(2 * angles), responses, axes=1),
            responses.sum(axis=0),
        ],
        -1,
    ).astype(np.float32)
    if smoothing > 0:
        votes = cv2.GaussianBlur(votes, (0, 0), smoothing)
    return votes[..., :2] / (votes[..., 2:] + 1e-6)


def luminance(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb, dtype=np.float32) / 255.0
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def hair_maps(rgb: np.ndarray, hair_mask: np.ndarray, size: int = 128) -> np.ndarray:
    """The ``(size, size, 3)`` uint8 conditioning picture of a square picture (best at
    :data:`ANALYSIS_SIZE`; others are resized to it) and its hair mask (bool or soft in [0, 1],
    same size as the picture)."""
    rgb = np.asarray(rgb)
    mask = np.clip(np.asarray(hair_mask, dtype=np.float32), 0.0, 1.0)
    if rgb.shape[0] != ANALYSIS_SIZE:
        rgb = cv2.resize(rgb, (ANALYSIS_SIZE, ANALYSIS_SIZE), interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask, (ANALYSIS_SIZE, ANALYSIS_SIZE), interpolation=cv2.INTER_AREA)
    votes = orientation_votes(luminance(rgb))
    # Coherence of the smoothed votes is low (~0.1-0.3) even on clean strands; scale it up.
    votes = votes * np.minimum(3.0, 1.0 / (np.linalg.norm(votes, axis=-1, keepdims=True) + 1e-6))
    channels = np.concatenate([mask[..., None] * 2 - 1, votes * mask[..., None]], -1)
    channels = cv2.resize(channels, (size, size), interpolation=cv2.INTER_AREA)
    return np.round((np.clip(channels, -1, 1) + 1) * 127.5).astype(np.uint8)


def photo_like(rgb: np.ndarray, seed: int) -> np.ndarray:
    """A render degraded the way photographs are, deterministically per ``seed``: exposure and
    contrast, defocus blur, sensor noise and JPEG compression (each at a random strength), so
    that the orientation maps of renders carry the noise those of photos do."""
    rng = np.random.default_rng(seed)
    image = np.asarray(rgb, dtype=np.float32) / 255.0
    image = np.clip((image - 0.5) * rng.uniform(0.7, 1.2) + 0.5 + rng.uniform(-0.1, 0.1), 0, 1)
    blur = rng.uniform(0.0, 1.2)
    if blur > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), blur)
    image = image + rng.normal(0.0, rng.uniform(0.0, 0.03), image.shape).astype(np.float32)
    image = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
    quality = int(rng.integers(35, 96))
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED) if ok else image


def unpack_maps(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`hair_maps`: mask in [0, 1], orientation in [0, pi), weight in [0, 1]."""
    channels = np.asarray(maps, dtype=np.float32) / 127.5 - 1.0
    mask = (channels[..., 0] + 1) / 2
    weight = np.hypot(channels[..., 1], channels[..., 2])
    orientation = (np.arctan2(channels[..., 2], channels[..., 1]) / 2) % np.pi
    return mask, orientation.astype(np.float32), weight


def maps_preview(maps: np.ndarray) -> np.ndarray:
    """An RGB picture of the maps for people: hue = orientation, value = mask x confidence."""
    mask, orientation, weight = unpack_maps(maps)
    hsv = np.stack(
        [
            orientation / np.pi * 179,
            np.full_like(mask, 200),
            np.clip(40 + 215 * (0.3 * mask + 0.7 * np.minimum(weight * 1.5, 1)), 0, 255) * mask,
        ],
        -1,
    ).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
