"""The nine semantic classes of BlockFusion's indoor layouts, in its layout-raster channel order."""

from __future__ import annotations

import numpy as np

from difforge.core.errors import UserError

# Channel order of BlockFusion's 9 x 32 x 32 layout rasters (its `samplelayouts/*.npy`), so that
# layouts drawn for it and for us are interchangeable.
CLASSES: tuple[str, ...] = (
    "wall",
    "floor",
    "bed",
    "cabinet",
    "chair",
    "lighting",
    "sofa",
    "stool",
    "table",
)
NUM_CLASSES = len(CLASSES)
CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}
WALL = CLASS_INDEX["wall"]
FLOOR = CLASS_INDEX["floor"]
FURNITURE = tuple(i for i in range(NUM_CLASSES) if i not in (WALL, FLOOR))

# sRGB colours for meshes and renders, one per class (uint8, rows in CLASSES order).
CLASS_COLOURS = np.array(
    [
        (214, 208, 196),  # wall: warm plaster
        (150, 118, 86),  # floor: oak
        (86, 120, 178),  # bed: blue linen
        (132, 96, 64),  # cabinet: walnut
        (196, 92, 70),  # chair: terracotta
        (242, 200, 80),  # lighting: lamp yellow
        (96, 150, 104),  # sofa: green
        (168, 124, 178),  # stool: violet
        (178, 146, 98),  # table: light wood
    ],
    dtype=np.uint8,
)
NEUTRAL_COLOUR = np.array((170, 170, 170), dtype=np.uint8)


def class_index(name: str) -> int:
    """The channel of class ``name``; a one-line UserError for an unknown class."""
    try:
        return CLASS_INDEX[name]
    except KeyError:
        raise UserError(f"unknown class {name!r}; known classes: {', '.join(CLASSES)}") from None
