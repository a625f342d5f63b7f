"""Line rasteriser and conditioning-picture loading."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from difforge.core.errors import UserError
from difforge.hair.data.groom import generate_groom
from difforge.hair.data.images import load_conditioning_image
from difforge.hair.data.styles import sample_style
from difforge.hair.render import (
    VIEWS,
    Appearance,
    Camera,
    orientation_to_rgb,
    render_groom,
    render_views,
)


def _line(start, end, count=20):
    return np.linspace(start, end, count)[None]


def test_groom_render_is_non_trivial():
    style = sample_style(5, "long_straight")
    groom = generate_groom(style, 1500, 32)
    render = render_groom(groom.points, appearance=Appearance.from_style(style))
    assert render.rgb.shape == (128, 128, 3) and render.rgb.dtype == np.uint8
    assert 0.1 < render.hair_mask.mean() < 0.7
    hair = render.rgb[render.hair_mask].astype(float).mean(axis=0)
    background = render.rgb[0, 0].astype(float)
    assert np.abs(hair - background).sum() > 60  # hair is visibly not background
    assert render.rgb[render.hair_mask].std() > 5  # shaded, not flat
    assert np.isfinite(render.orientation[render.hair_mask]).all()
    assert np.isnan(render.orientation[0, 0])
    # long hair hangs: most hair pixels are near vertical (pi/2)
    vertical = np.abs(render.orientation[render.hair_mask] - np.pi / 2) < np.pi / 6
    assert vertical.mean() > 0.5


def test_views_differ_and_inspection_colouring_works():
    groom = generate_groom(sample_style(2, "side_part"), 800, 24)
    views = render_views(groom.points, ("front", "left", "top"), size=64)
    assert set(views) == {"front", "left", "top"}
    assert not np.array_equal(views["front"].rgb, views["left"].rgb)
    orientation = views["front"].orientation
    coloured = orientation_to_rgb(orientation)
    assert coloured.shape == (64, 64, 3)
    assert (
        coloured[np.isnan(orientation)].max() == 0 and coloured[views["front"].hair_mask].max() > 0
    )


def test_orientation_map_follows_the_strand_direction():
    horizontal = _line([-0.15, -0.25, 0.2], [0.15, -0.25, 0.2])
    vertical = _line([0.15, -0.1, 0.2], [0.15, -0.3, 0.2])
    render = render_groom(np.concatenate([horizontal, vertical]), size=64, supersample=1)
    row = int((0.24 - (-0.25 - -0.07)) / 0.48 * 64)
    assert np.nanmedian(render.orientation[row, 5:25]) == pytest.approx(0.0, abs=1e-6)
    col = int((0.15 + 0.24) / 0.48 * 64)
    assert np.nanmedian(render.orientation[30:40, col]) == pytest.approx(np.pi / 2, abs=1e-6)


def test_hair_behind_the_head_is_hidden_from_the_front_but_seen_from_the_back():
    behind = _line([-0.02, 0.0, -0.12], [0.02, 0.0, -0.12])  # behind the skull, at eye height
    front = render_groom(behind, size=64, supersample=1)
    back = render_groom(behind, VIEWS["back"], size=64, supersample=1)
    assert front.hair_mask.sum() == 0
    assert back.hair_mask.sum() > 0


def test_camera_rotation_is_orthonormal():
    for camera in (*VIEWS.values(), Camera(yaw=17.0, pitch=-23.0)):
        rotation = camera.rotation()
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(rotation) == pytest.approx(1.0)


def _save(tmp_path, name, image: Image.Image):
    path = tmp_path / name
    image.save(path)
    return path


def test_loader_converts_grayscale_rgba_and_sizes_with_notes(tmp_path):
    gray = _save(tmp_path, "gray.png", Image.new("L", (128, 128), 90))
    image, notes = load_conditioning_image(gray)
    assert (
        image.shape == (128, 128, 3)
        and (image == 90).all()
        and any("converted" in n for n in notes)
    )

    rgba = Image.new("RGBA", (128, 128), (255, 0, 0, 0))
    image, notes = load_conditioning_image(_save(tmp_path, "clear.png", rgba))
    assert tuple(image[0, 0]) == tuple(round(255 * c) for c in Appearance().background)
    assert any("transparency" in n for n in notes)

    large = _save(tmp_path, "large.jpg", Image.new("RGB", (1600, 1200), (10, 200, 30)))
    image, notes = load_conditioning_image(large)
    assert image.shape == (128, 128, 3)
    assert any("centre-cropped" in n for n in notes) and any("resized" in n for n in notes)

    tiny = _save(tmp_path, "tiny.png", Image.new("RGB", (20, 20), (1, 2, 3)))
    image, notes = load_conditioning_image(tiny)
    assert image.shape == (128, 128, 3) and any("20x20" in n for n in notes)

    deep = _save(tmp_path, "deep.png", Image.fromarray(np.full((64, 64), 65535, dtype=np.uint16)))
    image, notes = load_conditioning_image(deep)
    assert (image == 255).all()


def test_loader_refuses_what_is_not_a_usable_image(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    truncated = tmp_path / "cut.png"
    Image.new("RGB", (64, 64), (9, 9, 9)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:60])
    cases = [
        (text, "not an image"),
        (tmp_path / "missing.png", "no such image"),
        (tmp_path, "no such image"),
        (_save(tmp_path, "speck.png", Image.new("RGB", (8, 8))), "at least 16"),
        (truncated, "unreadable"),
    ]
    for path, message in cases:
        with pytest.raises(UserError, match=message) as info:
            load_conditioning_image(path)
        assert "\n" not in str(info.value)
