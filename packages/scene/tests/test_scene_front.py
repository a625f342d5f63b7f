"""3D-FRONT house JSON as a layout (a small fixture written in that format)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from difforge.core.errors import UserError
from difforge.scene.data.layout import rasterize_layout, read_layout

FIXTURE = Path(__file__).parent / "fixtures" / "front_bedroom.json"


def test_front_scene_becomes_boxes_of_the_nine_classes() -> None:
    layout = read_layout(FIXTURE)
    by_class = {b.cls: b for b in layout.boxes}
    assert sorted(b.cls for b in layout.boxes) == ["bed", "floor", "table", "wall"]
    # The bed is turned 90 degrees about y: its 1.8 x 2.0 footprint becomes 2.0 along x.
    bed = by_class["bed"]
    assert bed.min == pytest.approx((1.0, 0.0, 0.6), abs=1e-6)
    assert bed.max == pytest.approx((3.0, 0.5, 2.4), abs=1e-6)
    assert by_class["table"].max[1] == pytest.approx(0.36)  # scaled height
    assert by_class["floor"].min[1] == pytest.approx(-0.1)
    assert layout.extent_min == pytest.approx((0.0, 0.0))
    assert layout.extent_max == pytest.approx((4.0, 3.5))
    raster = rasterize_layout(layout.crop(0.0, 0.0))
    assert raster.shape == (9, 32, 32) and raster.any()


def test_front_furniture_without_a_size_is_a_one_line_error(tmp_path) -> None:
    obj = json.loads(FIXTURE.read_text())
    del obj["furniture"][0]["bbox"]
    path = tmp_path / "house.json"
    path.write_text(json.dumps(obj))
    with pytest.raises(UserError, match="f-bed has no 'bbox'"):
        read_layout(path)
