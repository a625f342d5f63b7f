"""Layout JSON files, their validation and rasters."""

from __future__ import annotations

import json

import numpy as np
import pytest

from difforge.core.errors import UserError
from difforge.scene.classes import CLASS_INDEX
from difforge.scene.data.layout import (
    LAYOUT_FORMAT,
    Layout,
    LayoutBox,
    downsample_raster,
    rasterize_layout,
    read_layout,
    write_layout,
)


def _layout_json(*boxes: dict) -> dict:
    return {
        "format": LAYOUT_FORMAT,
        "extent": {"min": [0.0, 0.0], "max": [3.2, 3.2]},
        "boxes": list(boxes),
    }


def test_layout_round_trips_through_json(tmp_path) -> None:
    layout = Layout(
        (
            LayoutBox("bed", (0.2, 0.0, 0.1), (1.6, 0.9, 2.2)),
            LayoutBox("lighting", (2.0, 0.0, 2.0), (2.4, 1.7, 2.4)),
        )
    )
    write_layout(tmp_path / "l.json", layout)
    assert read_layout(tmp_path / "l.json") == layout


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ({"class": "piano", "min": [0, 0, 0], "max": [1, 1, 1]}, "unknown class 'piano'"),
        ({"class": "bed", "min": [2.5, 0, 0], "max": [3.5, 1, 1]}, "outside the block"),
        ({"class": "bed", "min": [0, 0, 0], "max": [1, 3.2, 1]}, "outside the block"),
        ({"class": "bed", "min": [1, 0, 0], "max": [1, 1, 1]}, "is empty"),
        ({"class": "bed", "min": [0, 0], "max": [1, 1, 1]}, "list of 3 finite numbers"),
        ({"class": "bed", "min": [0, 0, "a"], "max": [1, 1, 1]}, "list of 3 finite numbers"),
    ],
)
def test_bad_boxes_are_one_line_user_errors(tmp_path, box: dict, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_layout_json(box)))
    with pytest.raises(UserError, match=message) as info:
        read_layout(path)
    assert "\n" not in str(info.value)


def test_bad_files_are_user_errors(tmp_path) -> None:
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(UserError, match="not valid JSON"):
        read_layout(tmp_path / "broken.json")
    (tmp_path / "old.json").write_text(json.dumps({"boxes": []}))
    with pytest.raises(UserError, match="'format'"):
        read_layout(tmp_path / "old.json")
    with pytest.raises(UserError, match="does not exist"):
        read_layout(tmp_path / "missing.json")


def test_writing_a_bad_layout_leaves_no_file(tmp_path) -> None:
    bad = Layout((LayoutBox("bed", (0.0, 0.0, 0.0), (4.0, 1.0, 1.0)),))
    with pytest.raises(UserError, match="outside the block"):
        write_layout(tmp_path / "l.json", bad)
    assert list(tmp_path.iterdir()) == []


def test_raster_marks_cells_whose_centres_are_inside() -> None:
    # x in [0.1, 0.4] holds cell centres 0.15, 0.25, 0.35; z in [0, 0.2] holds 0.05, 0.15.
    layout = Layout((LayoutBox("bed", (0.1, 0.0, 0.0), (0.4, 0.5, 0.2)),))
    raster = rasterize_layout(layout)
    assert raster.shape == (9, 32, 32) and raster.dtype == np.uint8
    bed = CLASS_INDEX["bed"]
    assert raster[bed].sum() == 6
    assert raster[bed, 1:4, 0:2].all()
    assert raster.sum() == 6


def test_crop_moves_boxes_into_the_block_frame() -> None:
    layout = Layout(
        (LayoutBox("table", (4.0, 0.0, 5.0), (5.0, 0.7, 6.0)),), (0.0, 0.0), (10.0, 10.0)
    )
    crop = layout.crop(4.5, 4.0)
    assert crop.boxes == (LayoutBox("table", (0.0, 0.0, 1.0), (0.5, 0.7, 2.0)),)
    assert layout.crop(8.0, 8.0).boxes == ()


def test_downsample_is_a_max_pool() -> None:
    raster = np.zeros((9, 32, 32), dtype=np.uint8)
    raster[2, 5, 7] = 1
    small = downsample_raster(raster, 2)
    assert small.shape == (9, 16, 16)
    assert small[2, 2, 3] == 1 and small.sum() == 1
