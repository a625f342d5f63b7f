"""The real-photo front end (face, alignment, hair mask), the conditioning maps, their training
augmentation and the photo scores, on scikit-image's astronaut (a real portrait)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

import difforge.hair.augment as augment
import difforge.hair.photo as photo
from difforge.core.errors import UserError
from difforge.hair.data.dataset import held_out_seeds, make_sample
from difforge.hair.maps import ANALYSIS_SIZE, hair_maps, unpack_maps
from difforge.hair.model import images_to_tensor
from difforge.hair.photo_eval import groom_in_photo, hair_rida, strands_over_face
from difforge.hair.render import VIEWS, render_groom


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


@pytest.fixture(scope="module")
def sample():
    return make_sample(held_out_seeds(12)[11])  # long straight hair


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    difference = np.abs(np.mod(a - b, np.pi))
    return np.degrees(np.minimum(difference, np.pi - difference))


def test_maps_follow_the_renderers_mask_and_orientation(sample):
    mask, orientation, weight = unpack_maps(sample.maps)
    truth = sample.render
    assert np.mean((mask > 0.5) == truth.hair_mask) > 0.97
    scored = truth.hair_mask & np.isfinite(truth.orientation) & (weight > 0.3)
    assert scored.sum() > 500
    # The Gabor field on a photo-like render against the renderer's exact orientation; a
    # random field would be 45 deg off on average.
    assert _angle(orientation[scored], truth.orientation[scored]).mean() < 25.0


def _stripes(angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Strand-like stripes at ``angle_deg`` (counter-clockwise from image right) in a square."""
    y, x = np.mgrid[0:ANALYSIS_SIZE, 0:ANALYSIS_SIZE]
    a = np.radians(angle_deg)
    across = -x * np.sin(a) - y * np.cos(a)  # distance across strands (rows run down)
    rgb = np.repeat(
        (127 + 100 * np.sin(2 * np.pi * across / 3.0)).astype(np.uint8)[..., None], 3, -1
    )
    mask = np.zeros((ANALYSIS_SIZE, ANALYSIS_SIZE))
    mask[64:192, 64:192] = 1
    return rgb, mask


@pytest.mark.parametrize("angle", [0.0, 30.0, 100.0])
def test_maps_measure_the_stripe_angle(angle):
    _, orientation, weight = unpack_maps(hair_maps(*_stripes(angle)))
    centre = (slice(48, 80), slice(48, 80))
    assert weight[centre].mean() > 0.5
    assert np.median(_angle(orientation[centre], np.radians(angle))) < 6.0


def test_augmentation_turns_orientations_with_the_picture(monkeypatch):
    maps = images_to_tensor(hair_maps(*_stripes(0.0))[None])
    assert augment.augment_maps(maps, 0.0) is maps
    # Only a +30 deg turn: every random draw at its maximum, the other ranges off.
    monkeypatch.setattr(augment, "MAX_ROTATION", np.radians(30.0))
    for name in ("MAX_SCALE", "MAX_SHIFT", "MAX_EDGE_SHIFT", "ORIENTATION_NOISE"):
        monkeypatch.setattr(augment, name, 0.0)
    monkeypatch.setattr(
        augment.torch, "rand", lambda *shape, device=None: augment.torch.ones(*shape)
    )
    turned = augment.augment_maps(maps, 1.0)[0].permute(1, 2, 0).numpy()
    mask, orientation, _ = unpack_maps(np.round((turned + 1) * 127.5).astype(np.uint8))
    assert np.median(_angle(orientation[56:72, 56:72], np.radians(30.0))) < 5.0
    # The mask turned the same way as cv2 turns the stripes' square counter-clockwise.
    expected = cv2.warpAffine(
        np.pad(np.ones((64, 64)), 32), cv2.getRotationMatrix2D((63.5, 63.5), 30, 1.0), (128, 128)
    )
    assert np.mean((mask > 0.5) == (expected > 0.5)) > 0.98


def test_front_end_aligns_the_astronaut_and_finds_her_hair(astronaut):
    aligned = photo.align_photo(astronaut, source="astronaut")
    assert len(aligned.faces) == 1 and aligned.face == 0 and not aligned.notes
    assert aligned.mesh is not None
    # The mesh's eye centres (corners 33/133 and 362/263) land where the head model's eyes are.
    eyes = np.stack([aligned.mesh[[33, 133]].mean(0), aligned.mesh[[362, 263]].mean(0)])
    target = photo.head_to_crop(photo.CANONICAL_KEYPOINTS[:2])
    assert np.abs(eyes - target).max() < 8.0
    hair = aligned.hair_mask
    eye_row = target[:, 1].mean()
    assert 0.05 < hair.mean() < 0.2
    assert hair[: int(eye_row)].sum() > 0.85 * hair.sum()  # short hair: above the eyes
    assert not hair[int(eye_row) + 20 :, 100:156].any()  # nothing on the face or the neck
    assert aligned.maps.shape == (128, 128, 3)


def test_no_face_is_a_one_line_error():
    with pytest.raises(UserError, match="no face found in cat"):
        photo.align_photo(data.chelsea(), source="cat")


def test_several_faces_take_the_largest_unless_told(astronaut):
    canvas = np.full((512, 800, 3), 200, np.uint8)
    canvas[:, :512] = astronaut
    canvas[128:384, 530:786] = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    largest = photo.align_photo(canvas, source="pair")
    assert len(largest.faces) == 2 and largest.face == 0
    assert largest.notes == ["2 faces found; using the largest (--face 0..1)"]
    smaller = photo.align_photo(canvas, face=1, source="pair")
    scale = lambda a: np.hypot(*a.matrix[:, 0])  # noqa: E731
    assert scale(smaller) == pytest.approx(2 * scale(largest), rel=0.1)
    with pytest.raises(UserError, match="pair has 2 face"):
        photo.align_photo(canvas, face=2, source="pair")


def test_opencv_fallback_without_the_mediapipe_models(astronaut, monkeypatch):
    monkeypatch.setattr(photo, "front_end_available", lambda: False)
    aligned = photo.align_photo(astronaut)
    assert aligned.mesh is None and "cascade face box" in aligned.notes[0]
    assert aligned.hair_mask.mean() > 0.03


def test_groom_in_photo_undoes_the_alignment(sample):
    """A render turned by 20 deg and shrunk is a 'photo' whose alignment is known exactly."""
    front = render_groom(sample.groom.points, VIEWS["front"], ANALYSIS_SIZE)
    to_photo = cv2.getRotationMatrix2D((128, 128), 20, 0.8)
    to_photo[:, 2] += (40, 10)
    shape = (300, 320)
    aligned = photo.AlignedPhoto(
        rgb=front.rgb,
        hair_mask=front.hair_mask,
        maps=sample.maps,
        matrix=cv2.invertAffineTransform(to_photo),
        faces=[],
        face=0,
    )
    mask, orientation = groom_in_photo(aligned, sample.groom.points, shape)
    expected = cv2.warpAffine(front.hair_mask.astype(np.uint8), to_photo, shape[::-1]) > 0
    assert (mask & expected).sum() / (mask | expected).sum() > 0.9
    # Orientations turn by +20 deg (counter-clockwise) with the picture.
    turned = cv2.warpAffine(
        np.nan_to_num(front.orientation, nan=-1.0), to_photo, shape[::-1], flags=cv2.INTER_NEAREST
    )
    both = mask & expected & (turned >= 0)
    assert np.median(_angle(orientation[both], turned[both] + np.radians(20))) < 8.0


def test_strands_over_the_face_counts_hanging_strands():
    strand = np.stack([np.zeros(8), np.linspace(0.1, -0.1, 8), np.full(8, 0.1)], -1)
    beside = strand + np.array([0.09, 0.0, 0.0])
    behind = strand * np.array([1, 1, -1])
    assert strands_over_face(np.stack([strand, beside, behind, strand])) == 2


def test_hair_rida_counts_the_pairs_the_groom_orders_right(sample):
    front = render_groom(sample.groom.points, VIEWS["front"], ANALYSIS_SIZE)
    depth = front.depth
    near_hair = cv2.dilate(front.hair_mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert np.isfinite(depth[front.hair_mask]).all() and np.isnan(depth[~near_hair]).all()
    # The nearest visible hair lies on the front of the skull (z ~ 0.095 m, in front of the
    # camera's centre plane); the farthest is behind it.
    flat = np.where(front.hair_mask, depth, np.nan)
    top = np.array(np.unravel_index(np.nanargmin(flat), flat.shape)[::-1], float)
    side = np.array(np.unravel_index(np.nanargmax(flat), flat.shape)[::-1], float)
    at = lambda p: depth[int(p[1]), int(p[0])]  # noqa: E731
    assert at(top) < -0.08 and at(side) > at(top) + 0.05
    aligned = photo.AlignedPhoto(front.rgb, front.hair_mask, sample.maps, np.eye(2, 3), [], 0)
    pairs = [(top, side, 1), (side, top, -1)]
    assert hair_rida(aligned, depth, pairs, search=0) == 1.0
    assert hair_rida(aligned, depth, [(top, side, -1)], search=0) == 0.0
    nowhere = np.array([2.0, 2.0])  # no hair there: the pair counts as wrong
    assert hair_rida(aligned, depth, [*pairs, (nowhere, top, 1)], search=0) == pytest.approx(2 / 3)
    assert np.isnan(hair_rida(aligned, depth, []))


def test_a_turned_head_is_said_in_a_note(astronaut, monkeypatch):
    mesh = np.zeros((468, 2))
    mesh[234, 0], mesh[454, 0] = 100.0, 200.0  # cheek edges
    mesh[1, 0] = 150.0
    assert photo.head_yaw(mesh) == pytest.approx(0.0)
    mesh[1, 0] = 100.0 + 100.0 * (1 - np.sin(np.radians(50))) / 2  # nose near the right cheek
    assert photo.head_yaw(mesh) == pytest.approx(-50.0)
    monkeypatch.setattr(photo, "head_yaw", lambda mesh: -50.0)
    (note,) = photo.align_photo(astronaut).notes
    assert note.startswith("the head is turned about 50° to their right")


def test_trimming_cuts_strands_where_they_leave_the_mask():
    # Three strands from the crown: one straight up inside the mask, one down over the face
    # (in front, outside the mask: cut), one down behind the head (hidden: kept).
    t = np.linspace(0.0, 1.0, 16)[:, None]
    up = np.array([0.0, 0.1, 0.0]) + t * [0.0, 0.04, 0.0]
    over_face = np.array([0.0, 0.1, 0.06]) + t * [0.0, -0.2, 0.04]
    behind = np.array([0.0, 0.1, -0.02]) + t * [0.0, -0.15, -0.03]
    points = np.stack([up, over_face, behind])
    mask = np.zeros((ANALYSIS_SIZE, ANALYSIS_SIZE), bool)
    top = photo.head_to_crop(np.array([0.0, 0.06]))  # the mask: everything above y = 6 cm
    mask[: int(top[1])] = True
    trimmed = photo.trim_to_mask(points, mask)
    np.testing.assert_allclose(trimmed[0], up)
    np.testing.assert_allclose(trimmed[2], behind)
    assert trimmed.shape == points.shape and trimmed[1, 0] == pytest.approx(over_face[0])
    # The face strand now ends where it left the (grown) mask, not 20 cm down.
    assert 0.04 < trimmed[1, -1, 1] < 0.06


def test_the_hair_mask_does_not_depend_on_what_ran_before(astronaut):
    first = photo.align_photo(astronaut).hair_mask
    points = np.random.default_rng(0).random((200, 3), dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_MAX_ITER, 3, 0)
    cv2.kmeans(points, 4, None, criteria, 2, cv2.KMEANS_RANDOM_CENTERS)  # moves OpenCV's RNG
    np.testing.assert_array_equal(photo.align_photo(astronaut).hair_mask, first)
