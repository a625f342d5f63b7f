"""The photo style set: short hair of 5-15 cm lying on the scalp, voluminous frizz, and the
classic families' seeds left as they were."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import uniform_filter1d
from scipy.spatial import ConvexHull

from difforge.core.errors import UserError
from difforge.hair.data.dataset import training_seeds
from difforge.hair.data.groom import generate_groom
from difforge.hair.data.head import DEFAULT_HEAD
from difforge.hair.data.styles import (
    FAMILIES,
    PHOTO_FAMILIES,
    STYLE_SETS,
    family_for_seed,
    sample_style,
)
from difforge.hair.evaluate import curl_frequencies, strand_lengths

N_STRANDS, N_POINTS = 1500, 32
LENGTH_RANGES = {"short_crop": (0.05, 0.15), "short_layered": (0.05, 0.15)}


def _height_above_head(points: np.ndarray) -> np.ndarray:
    """Distance (m) of points outside the head to its surface, skull or neck, whichever is
    nearer (exact for the neck, along the ellipsoid's radial line for the skull)."""
    points = np.asarray(points, dtype=np.float64)
    level = DEFAULT_HEAD.skull_level(points)
    skull = np.linalg.norm(points, axis=-1) * (1.0 - 1.0 / np.maximum(level, 1e-9))
    radial = np.hypot(points[..., 0], points[..., 2] - DEFAULT_HEAD.neck_z)
    neck = np.where(
        points[..., 1] < DEFAULT_HEAD.neck_top, radial - DEFAULT_HEAD.neck_radius, np.inf
    )
    return np.minimum(skull, neck)


def _curl_swing(points: np.ndarray) -> float:
    """Median distance (m) of strand points from their 5-point moving average, ends left out."""
    points = np.asarray(points, dtype=np.float64)
    smooth = uniform_filter1d(points, size=5, axis=1, mode="nearest")
    return float(np.median(np.linalg.norm(points - smooth, axis=-1)[:, 4:-4]))


def _height_above_ears(points: np.ndarray) -> np.ndarray:
    return _height_above_head(points[points[..., 1] > -0.02])


@pytest.fixture(scope="module")
def grooms():
    return {
        (family, seed): generate_groom(sample_style(seed, family), N_STRANDS, N_POINTS)
        for family in (*PHOTO_FAMILIES, "short_straight", "side_part", "long_straight", "curly")
        for seed in (0, 1)
    }


@pytest.mark.parametrize("family", sorted(LENGTH_RANGES))
def test_short_photo_styles_are_5_to_15_cm_long(grooms, family: str) -> None:
    low, high = LENGTH_RANGES[family]
    for seed in (0, 1):
        lengths = strand_lengths(grooms[(family, seed)].points)
        # Every strand but the few cut short at the hairline edge of the density map.
        assert low <= np.percentile(lengths, 5) and np.percentile(lengths, 95) <= high, seed
    # The classic short family the real photos showed too short stays as it was (1-7 cm).
    assert np.median(strand_lengths(grooms[("short_straight", 0)].points)) < 0.06


@pytest.mark.parametrize("family", sorted(LENGTH_RANGES))
def test_short_photo_styles_lie_on_the_scalp(grooms, family: str) -> None:
    """Points stay within a couple of centimetres of the head, unlike free-growing strands of
    the same length (the hug parameter off)."""
    import dataclasses

    for seed in (0, 1):
        height = _height_above_head(grooms[(family, seed)].points)
        assert np.percentile(height, 95) < 0.03 and height.max() < 0.05, seed
    style = sample_style(0, family)
    free = generate_groom(dataclasses.replace(style, hug=0.0), N_STRANDS, N_POINTS)
    hugged = _height_above_head(grooms[(family, 0)].points)
    assert np.percentile(_height_above_head(free.points), 95) > 1.3 * np.percentile(hugged, 95)


def test_frizzy_hair_is_voluminous_curled_and_has_stray_fibres(grooms) -> None:
    frizzy = grooms[("frizzy", 0)].points
    # Volume: the space the hair fills (against straight hair of about the same length), and how
    # far it stands off the head above the ears (against long straight hair).
    hull = {
        f: ConvexHull(grooms[(f, 0)].points.reshape(-1, 3)).volume for f in ("frizzy", "side_part")
    }
    assert hull["frizzy"] > 2 * hull["side_part"]
    for family in ("side_part", "long_straight"):
        straight = grooms[(family, 0)].points
        assert np.median(_height_above_ears(frizzy)) > 2 * np.median(_height_above_ears(straight))
    # High-frequency, small-amplitude curl: more turns per metre than the curly family, and
    # a smaller swing about the strand's smoothed course.
    curly = grooms[("curly", 0)].points
    assert np.median(curl_frequencies(frizzy)) > 2 * np.median(curl_frequencies(curly))
    assert _curl_swing(frizzy) < 0.6 * _curl_swing(curly)
    style = sample_style(0, "frizzy")
    # Stray fibres: the share of strands whose tips stand far out of the hair's silhouette.
    import dataclasses

    tame = generate_groom(dataclasses.replace(style, stray=0.0), N_STRANDS, N_POINTS).points
    out, tame_out = (np.percentile(_height_above_head(p[:, -1]), 99) for p in (frizzy, tame))
    assert out > tame_out + 0.003


def test_photo_set_adds_families_and_keeps_the_classic_seeds() -> None:
    assert STYLE_SETS["classic"] == tuple(FAMILIES)
    assert set(STYLE_SETS["photo"]) == set(FAMILIES) | set(PHOTO_FAMILIES)
    cycle = len(STYLE_SETS["photo"])
    assert {family_for_seed(s, "photo") for s in range(cycle)} == set(STYLE_SETS["photo"])
    # The new families come first: a few seeds from 0 already include them (the tiny recipe).
    assert [family_for_seed(s, "photo") for s in range(3)] == list(PHOTO_FAMILIES)
    # A classic family drawn through either set is the same style.
    seed = next(s for s in range(cycle) if family_for_seed(s, "photo") == "bob")
    assert sample_style(seed, style_set="photo") == sample_style(seed, "bob")
    assert sample_style(seed, "bob").hug == 0.0 and sample_style(seed, "bob").stray == 0.0
    picked = training_seeds(4, 0, ["frizzy"], style_set="photo")
    assert [family_for_seed(s, "photo") for s in picked] == ["frizzy"] * 4
    with pytest.raises(UserError, match="unknown hair style families frizzy"):
        training_seeds(2, 0, ["frizzy"])  # not a classic family
    with pytest.raises(UserError, match="unknown style set"):
        sample_style(0, style_set="glam")
