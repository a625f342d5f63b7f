"""Training renders of turned heads: framed as the photo front end frames a portrait, turned the
way a photo's head turn is measured, drawn per seed, and off unless asked for."""

from __future__ import annotations

import json
from dataclasses import replace

import cv2
import numpy as np
import pytest
from skimage.transform import SimilarityTransform

from difforge.core.errors import ConfigError
from difforge.hair.data.dataset import (
    SampleConfig,
    build_dataset,
    dataset_folders,
    make_sample,
)
from difforge.hair.data.groom import generate_groom
from difforge.hair.data.pose import (
    FACE_KEYPOINTS,
    project,
    sample_head_yaw,
    turned_head_camera,
)
from difforge.hair.data.styles import sample_style
from difforge.hair.photo import CANONICAL_KEYPOINTS, head_to_crop
from difforge.hair.render import VIEWS, render_groom

SIZE = 96  # rendered at 2x: 192 px, where the pixel keypoints are measured


def _pixels(camera, size: int) -> np.ndarray:
    """Image pixels (x right, y down) of the face points seen by ``camera``."""
    plane = project(FACE_KEYPOINTS, camera)
    scale = size / (2 * camera.half_extent)
    return np.stack([(plane[:, 0] + camera.half_extent) * scale,
                     (camera.half_extent - plane[:, 1]) * scale], -1)  # fmt: skip


@pytest.fixture(scope="module")
def groom():
    return generate_groom(sample_style(1, "side_part"), 1500, 32).points


def test_frontal_framing_is_the_photo_framing_and_yaw_zero_changes_nothing() -> None:
    front = VIEWS["front"]
    assert turned_head_camera(0.0) is front and sample_head_yaw(7, 0.0) == 0.0
    # The face points the photo front end aligns to are where a frontal render shows ours.
    np.testing.assert_allclose(_pixels(front, 256), head_to_crop(CANONICAL_KEYPOINTS), atol=1e-9)


@pytest.mark.parametrize("yaw", [-35.0, 20.0])
def test_turned_render_is_what_the_photo_alignment_makes_of_a_turned_head(groom, yaw) -> None:
    """Render the turned head with a plain orbiting camera, align it as align_photo aligns a
    photo (least-squares similarity of eyes, nose and mouth onto the canonical places), and
    compare with the render from the aligned camera: the same hair, pixel for pixel."""
    size = 2 * SIZE
    plain_camera = replace(VIEWS["front"], yaw=-yaw)
    plain = render_groom(groom, plain_camera, size, supersample=1)
    fit = SimilarityTransform.from_estimate(
        _pixels(plain_camera, size), head_to_crop(CANONICAL_KEYPOINTS, size)
    )
    aligned_mask = cv2.warpAffine(plain.hair_mask.astype(np.float32), fit.params[:2], (size, size))
    turned = render_groom(groom, turned_head_camera(yaw), size, supersample=1)
    overlap = (aligned_mask > 0.5) & turned.hair_mask
    iou = overlap.sum() / ((aligned_mask > 0.5) | turned.hair_mask).sum()
    # Thin strands lose a little to the resampling; unaligned, the two overlap at 0.15-0.4.
    assert iou > 0.85
    # Its face points sit where the frontal ones do, to the least-squares residual (the nose
    # sticks out of the face plane, so a turn cannot be undone exactly).
    offset = np.abs(_pixels(turned_head_camera(yaw), size) - _pixels(VIEWS["front"], size))
    assert offset.max() < 0.015 / (2 * VIEWS["front"].half_extent) * size


def test_head_turns_the_way_photo_yaw_is_measured(groom) -> None:
    """+yaw is a turn toward the subject's left (photo.head_yaw): the nose tip moves to the image
    right of the eyes, and the back of the head (the hair's mass) to the image left."""
    centroids = {}
    for yaw in (-25.0, 0.0, 25.0):
        camera = turned_head_camera(yaw)
        eyes, nose = _pixels(camera, SIZE)[:2], _pixels(camera, SIZE)[2]
        shift = nose[0] - eyes[:, 0].mean()
        assert shift > 1 if yaw > 0 else shift < -1 if yaw < 0 else abs(shift) < 1e-9, yaw
        mask = render_groom(groom, camera, SIZE).hair_mask
        centroids[yaw] = np.nonzero(mask)[1].mean()
    assert centroids[25.0] < centroids[0.0] - 2 < centroids[-25.0] - 4


def test_samples_draw_their_own_turn_and_record_it(tmp_path) -> None:
    config = SampleConfig(n_strands=300, n_points=8, image_size=64, max_yaw=35.0)
    frontal = make_sample(2, replace(config, max_yaw=0.0))
    turned, again = make_sample(2, config), make_sample(2, config)
    assert frontal.camera == VIEWS["front"]
    assert turned.camera.yaw == -sample_head_yaw(2, 35.0) != 0
    assert -35 <= sample_head_yaw(2, 35.0) <= 35
    np.testing.assert_array_equal(turned.maps, again.maps)
    np.testing.assert_array_equal(turned.groom.points, frontal.groom.points)  # same groom
    assert np.abs(turned.maps.astype(int) - frontal.maps.astype(int)).mean() > 2  # other maps
    yaws = [sample_head_yaw(seed, 35.0) for seed in range(200)]
    assert max(yaws) > 30 and min(yaws) < -30  # both ways, up to the limit
    (folder,) = build_dataset(tmp_path / "data", [2], config)
    recorded = json.loads((folder / "params.json").read_text())
    assert recorded["camera"]["yaw"] == turned.camera.yaw
    assert recorded["sample"]["max_yaw"] == 35.0


def test_sample_settings_are_checked_and_old_datasets_still_match(tmp_path) -> None:
    with pytest.raises(ConfigError, match="max_yaw"):
        SampleConfig(max_yaw=90.0)
    with pytest.raises(ConfigError, match="style_set"):
        SampleConfig(style_set="glam")
    config = SampleConfig(n_strands=300, n_points=8, image_size=64)
    build_dataset(tmp_path / "data", [0], config)
    index = tmp_path / "data" / "index.json"
    recorded = json.loads(index.read_text())
    for key in ("style_set", "max_yaw"):  # written before these settings existed
        del recorded["sample"][key]
    index.write_text(json.dumps(recorded))
    assert len(dataset_folders(tmp_path / "data", config)) == 1
    with pytest.raises(Exception, match="this run needs"):
        dataset_folders(tmp_path / "data", replace(config, max_yaw=35.0))
