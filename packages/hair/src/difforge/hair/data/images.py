"""Loading a user's picture as the conditioning image: checks and documented conversions.

- Not a file / not an image / truncated image -> one-line UserError.
- Grayscale, palette, CMYK -> converted to RGB; 16-bit and float -> rescaled to 8 bits (note).
- RGBA / LA / transparency -> composited over the renderer's background grey (note).
- Non-square -> centre crop to a square (note); the picture should be centred on the head.
- Larger or smaller than ``size`` -> resized with a Lanczos filter (note). Under 16 px on a side
  is refused: there is no head left to see.
- Beyond Pillow's decompression-bomb limit -> UserError, never decoded.

Models conditioned on maps (:mod:`difforge.hair.maps`) take the photo whole instead
(:func:`load_photo`): the front end (:mod:`difforge.hair.photo`) finds and crops the head.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from difforge.core.errors import UserError
from difforge.hair.render import CONDITIONING_SIZE, Appearance

MIN_SIDE = 16


MAX_PHOTO_SIDE = 1280  # photos are read at most this large: faces stay well resolved


def _open_image(path: str | os.PathLike[str], draft_size: int) -> Image.Image:
    """Open and decode an image file with the one-line errors of the module docstring."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                opened.draft("RGB", (draft_size, draft_size))  # JPEG: decode at reduced scale
                image = opened.copy() if opened.mode != "P" else opened.convert("RGBA")
                image.load()
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        reason = (
            "too many pixels to decode safely"
            if "ecompression" in type(exc).__name__
            else "not an image"
        )
        raise UserError(f"{path}: {reason}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"{path}: unreadable image ({exc})") from None
    return image


def _image_of_array(array: np.ndarray) -> Image.Image:
    array = np.asarray(array)
    if (
        array.dtype != np.uint8
        or array.ndim not in (2, 3)
        or array.shape[2:] not in ((), (3,), (4,))
    ):
        raise UserError(
            f"expected an (H, W, 3) uint8 picture, got a {array.dtype} array of shape {array.shape}"
        )
    return Image.fromarray(array)


def load_conditioning_image(
    path: str | os.PathLike[str], size: int = CONDITIONING_SIZE
) -> tuple[np.ndarray, list[str]]:
    """Return the picture as a (size, size, 3) uint8 RGB array and notes on what was converted."""
    return conditioning_picture(_open_image(path, size), size, str(path))


def conditioning_array(
    array: np.ndarray, size: int = CONDITIONING_SIZE
) -> tuple[np.ndarray, list[str]]:
    """:func:`load_conditioning_image` for a picture already in memory: an ``(H, W, 3)`` or
    ``(H, W, 4)`` uint8 array (or ``(H, W)`` grey), converted the same way."""
    return conditioning_picture(_image_of_array(array), size, "picture")


def load_photo(
    image: str | os.PathLike[str] | np.ndarray,
) -> tuple[np.ndarray, list[str]]:
    """A photograph (a file or an array) as an (H, W, 3) uint8 RGB array at its own size (at
    most :data:`MAX_PHOTO_SIDE` on the longer side), converted as the module docstring says but
    not cropped: the photo front end finds the head."""
    notes: list[str] = []
    if isinstance(image, np.ndarray):
        picture = _image_of_array(image)
    else:
        picture = _open_image(image, MAX_PHOTO_SIDE)
        upright = ImageOps.exif_transpose(picture)  # phones store portraits turned + a tag
        if upright.size != picture.size or upright.tobytes() != picture.tobytes():
            notes.append("turned upright as its EXIF orientation says")
        picture = upright
    picture, converted = _to_rgb(
        picture, "picture" if isinstance(image, np.ndarray) else str(image)
    )
    notes += converted
    longest = max(picture.size)
    if longest > MAX_PHOTO_SIDE:
        scale = MAX_PHOTO_SIDE / longest
        picture = picture.resize(
            (round(picture.size[0] * scale), round(picture.size[1] * scale)),
            Image.Resampling.LANCZOS,
        )
    return np.asarray(picture, dtype=np.uint8), notes


def _to_rgb(image: Image.Image, source: str) -> tuple[Image.Image, list[str]]:
    """Any decoded picture as 8-bit RGB, and notes on what was converted."""
    notes: list[str] = []
    width, height = image.size
    if min(width, height) < MIN_SIDE:
        raise UserError(
            f"{source}: image is {width}x{height}, need at least {MIN_SIDE} px on each side"
        )
    if "A" in image.mode or "transparency" in image.info:
        background = tuple(round(255 * c) for c in Appearance().background)
        rgba = image.convert("RGBA")
        flattened = Image.new("RGBA", rgba.size, (*background, 255))
        flattened.alpha_composite(rgba)
        image = flattened
        notes.append("transparency composited over a grey background")
    if image.mode.startswith("I") or image.mode == "F":  # 16/32-bit or float: rescale, not clip
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") else max(float(values.max()), 1e-12)
        image = Image.fromarray(np.clip(values / peak * 255.0, 0, 255).astype(np.uint8), "L")
        notes.append("high bit-depth image scaled to 8 bits")
    if image.mode != "RGB":
        if image.mode != "RGBA":
            notes.append(f"{image.mode} image converted to RGB")
        image = image.convert("RGB")
    return image, notes


def conditioning_picture(
    image: Image.Image, size: int, source: str
) -> tuple[np.ndarray, list[str]]:
    """A decoded picture as the (size, size, 3) uint8 conditioning image and the notes on what
    was converted (``source`` names it in errors)."""
    width, height = image.size
    image, notes = _to_rgb(image, source)
    if width != height:
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        image = image.crop((left, top, left + side, top + side))
        notes.append(f"{width}x{height} picture centre-cropped to {side}x{side}")
    side = image.size[0]
    if side != size:
        notes.append(f"{side}x{side} picture resized to {size}x{size}")
        image = image.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8), notes


def load_hair_mask(mask: str | os.PathLike[str] | np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A user's hair mask for a photo read by :func:`load_photo` (``shape``: its (H, W)): a file
    or array the size of the photo as given (any image mode; non-zero = hair), resized the way
    the photo was; a mask of another shape is a one-line error."""
    if isinstance(mask, np.ndarray):
        picture, source = _image_of_array(np.asarray(mask).astype(np.uint8)), "hair mask"
    else:
        picture, source = ImageOps.exif_transpose(_open_image(mask, MAX_PHOTO_SIDE)), str(mask)
    values = np.asarray(picture.convert("L")) > 0
    height, width = shape
    if abs(values.shape[1] / values.shape[0] - width / height) > 0.01:
        raise UserError(
            f"{source}: the mask is {values.shape[1]}x{values.shape[0]}, the photo {width}x{height}"
        )
    if values.shape != (height, width):
        values = np.asarray(
            Image.fromarray(values).resize((width, height), Image.Resampling.NEAREST)
        )
    return values
