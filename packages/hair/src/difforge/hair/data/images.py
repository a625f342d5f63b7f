"""Loading a user's picture as the conditioning image: checks and documented conversions.

- Not a file / not an image / truncated image -> one-line UserError.
- Grayscale, palette, CMYK -> converted to RGB; 16-bit and float -> rescaled to 8 bits (note).
- RGBA / LA / transparency -> composited over the renderer's background grey (note).
- Non-square -> centre crop to a square (note); the picture should be centred on the head.
- Larger or smaller than ``size`` -> resized with a Lanczos filter (note). Under 16 px on a side
  is refused: there is no head left to see.
- Beyond Pillow's decompression-bomb limit -> UserError, never decoded.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from difforge.core.errors import UserError
from difforge.hair.render import CONDITIONING_SIZE, Appearance

MIN_SIDE = 16


def load_conditioning_image(
    path: str | os.PathLike[str], size: int = CONDITIONING_SIZE
) -> tuple[np.ndarray, list[str]]:
    """Return the picture as a (size, size, 3) uint8 RGB array and notes on what was converted."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                opened.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when large
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

    return conditioning_picture(image, size, str(path))


def conditioning_array(
    array: np.ndarray, size: int = CONDITIONING_SIZE
) -> tuple[np.ndarray, list[str]]:
    """:func:`load_conditioning_image` for a picture already in memory: an ``(H, W, 3)`` or
    ``(H, W, 4)`` uint8 array (or ``(H, W)`` grey), converted the same way."""
    array = np.asarray(array)
    if (
        array.dtype != np.uint8
        or array.ndim not in (2, 3)
        or array.shape[2:] not in ((), (3,), (4,))
    ):
        raise UserError(
            f"expected an (H, W, 3) uint8 picture, got a {array.dtype} array of shape {array.shape}"
        )
    return conditioning_picture(Image.fromarray(array), size, "picture")


def conditioning_picture(
    image: Image.Image, size: int, source: str
) -> tuple[np.ndarray, list[str]]:
    """A decoded picture as the (size, size, 3) uint8 conditioning image and the notes on what
    was converted (``source`` names it in errors)."""
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
