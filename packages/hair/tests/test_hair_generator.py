"""Procedural groom generator: format, determinism, scalp/head constraints, distinct families."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from difforge.core.errors import UserError
from difforge.hair.data.groom import density_at, density_map, generate_groom, resample_by_arc_length
from difforge.hair.data.head import DEFAULT_HEAD, angles_from_uv, uv_from_angles
from difforge.hair.data.styles import (
    FAMILIES,
    GEOMETRY_PARAMETERS,
    HELD_OUT_SEED_BASE,
    StyleParams,
    family_for_seed,
    sample_style,
)
from difforge.hair.evaluate import curl_frequencies, strand_lengths

N_STRANDS, N_POINTS = 1200, 32


@pytest.fixture(scope="module")
def grooms():
    """Two seeds of every family, small."""
    result = {}
    for index, family in enumerate(FAMILIES):
        for repeat in range(2):
            style = sample_style(100 * repeat + index, family)
            result[(family, repeat)] = (style, generate_groom(style, N_STRANDS, N_POINTS))
    return result


def test_style_space_has_at_least_twelve_families_and_about_twenty_parameters():
    assert len(FAMILIES) >= 12
    assert 15 <= len(GEOMETRY_PARAMETERS) <= 27
    style = sample_style(7)
    assert style.family == family_for_seed(7)
    assert style.geometry_vector().shape == (len(GEOMETRY_PARAMETERS),)
    assert StyleParams.from_dict(style.to_dict()) == style
    # params.json written before hug and stray existed still load, with their defaults.
    older = {k: v for k, v in style.to_dict().items() if k not in ("hug", "stray")}
    assert StyleParams.from_dict(older) == style
    with pytest.raises(UserError):
        StyleParams.from_dict({**style.to_dict(), "colour": 1})
    with pytest.raises(UserError):
        sample_style(0, "dreadlocks")


def test_consecutive_seeds_cycle_through_every_family():
    assert {family_for_seed(seed) for seed in range(len(FAMILIES))} == set(FAMILIES)
    assert family_for_seed(HELD_OUT_SEED_BASE) in FAMILIES


def test_training_seeds_of_chosen_families_are_the_first_from_start_on():
    from difforge.hair.data.dataset import training_seeds

    seeds = training_seeds(7, 1960, ["curly", "coily", "wavy"])
    expected = [s for s in range(1960, 2100) if family_for_seed(s) in ("curly", "coily", "wavy")]
    assert list(seeds) == expected[:7]
    assert list(training_seeds(3, 5)) == [5, 6, 7]  # no families: consecutive seeds
    with pytest.raises(UserError, match="unknown hair style families bob2"):
        training_seeds(2, 0, ["bob2"])
    with pytest.raises(UserError, match="held out"):
        training_seeds(2, HELD_OUT_SEED_BASE - 5, ["buzz"])  # the 2nd is >= 14 seeds on


def test_same_seed_gives_identical_groom_and_other_seed_differs():
    style = sample_style(3)
    first, again = generate_groom(style, 800, 24), generate_groom(sample_style(3), 800, 24)
    np.testing.assert_array_equal(first.points, again.points)
    np.testing.assert_array_equal(first.root_uv, again.root_uv)
    other = generate_groom(sample_style(3 + len(FAMILIES)), 800, 24)  # same family, other seed
    assert other.points.shape != first.points.shape or not np.allclose(other.points, first.points)


def test_strand_format(grooms):
    for style, groom in grooms.values():
        assert groom.points.dtype == np.float32 and groom.root_uv.dtype == np.float32
        assert groom.points.ndim == 3 and groom.points.shape[1:] == (N_POINTS, 3)
        assert groom.root_uv.shape == (groom.n_strands, 2)
        assert 0 < groom.n_strands <= N_STRANDS, style.family
        assert np.isfinite(groom.points).all()


def test_roots_lie_on_the_scalp_where_density_is_positive(grooms):
    for style, groom in grooms.values():
        roots = groom.points[:, 0].astype(np.float64)
        np.testing.assert_allclose(DEFAULT_HEAD.skull_level(roots), 1.0, atol=1e-5)
        theta, phi = DEFAULT_HEAD.angles(roots)
        assert (density_at(style, theta, phi) > 0).all(), style.family
        # root_uv describes the same point as the root position
        uv_theta, uv_phi = angles_from_uv(groom.root_uv.astype(np.float64))
        expected, _ = DEFAULT_HEAD.scalp_points(uv_theta, uv_phi)
        np.testing.assert_allclose(expected, roots, atol=1e-5)


def test_strands_never_pass_through_the_head(grooms):
    fractions = np.linspace(0.0, 1.0, 9)[1:, None, None, None]  # points along every segment
    for style, groom in grooms.values():
        start, end = groom.points[:, :-1].astype(np.float64), groom.points[:, 1:].astype(np.float64)
        along = start[None] + fractions * (end - start)[None]
        assert not DEFAULT_HEAD.inside(along, tolerance=1e-6).any(), style.family


def _family_features(points: np.ndarray) -> np.ndarray:
    """Strand statistics a person would use to tell hairstyles apart."""
    points = points.astype(np.float64)
    roots, tips = points[:, 0], points[:, -1]
    theta, phi = DEFAULT_HEAD.angles(roots)
    lengths = strand_lengths(points)
    on_top = np.abs(roots[:, 0]) < 0.03
    front_top = (roots[:, 2] > 0) & (theta < 1.2)
    return np.array(
        [
            np.log(np.median(lengths)),
            np.median(curl_frequencies(points)) / 10,
            np.log(len(points)),
            np.mean((np.cos(phi) > 0.5) & (theta > 0.6)),  # hair at the front hairline
            np.mean(np.abs(roots[:, 0]) > 0.05),  # hair on the sides
            np.mean((theta < 0.7) & (np.cos(phi) < 0)),  # hair on the crown
            np.log(np.median(lengths[on_top]) / np.median(lengths[~on_top])),  # undercut
            tips[:, 2].mean() / 0.1,  # swept back or forward
            tips[:, 1].mean() / 0.1,  # how far down the hair falls
            np.std(tips[:, 1]) / np.median(lengths),  # a blunt cut has level tips
            np.median(DEFAULT_HEAD.skull_level(points[:, points.shape[1] // 2])),  # volume
            np.abs(np.mean(tips[front_top, 0] - roots[front_top, 0])) / 0.03,  # combed to one side
            np.mean(front_top & (tips[:, 2] > 0.07) & (tips[:, 1] > -0.03)),  # fringe over the brow
        ]
    )


def test_families_differ_measurably(grooms):
    """Leave-one-out nearest-centroid on strand statistics (each feature scaled by its pooled
    within-family spread) recovers the family of almost every groom."""
    table = {key: _family_features(groom.points) for key, (_, groom) in grooms.items()}
    within = np.sqrt(
        np.mean([np.var([table[(f, 0)], table[(f, 1)]], axis=0, ddof=1) for f in FAMILIES], axis=0)
    )
    confused = []
    for (family, repeat), features in table.items():
        centroids = {name: table[(name, 1 - repeat if name == family else 0)] for name in FAMILIES}
        distance = {
            name: np.linalg.norm((c - features) / (within + 1e-6)) for name, c in centroids.items()
        }
        if min(distance, key=distance.get) != family:
            confused.append((family, repeat, min(distance, key=distance.get)))
    assert len(confused) <= 2, f"grooms matched to the wrong family: {confused}"


def test_parameters_steer_the_groom():
    base = sample_style(5, "long_straight")
    short = generate_groom(dataclasses.replace(base, length=0.1, cut_y=-1.0), 600, 32)
    long = generate_groom(dataclasses.replace(base, length=0.4, cut_y=-1.0), 600, 32)
    assert np.median(strand_lengths(long.points)) > 3 * np.median(strand_lengths(short.points))
    bob = generate_groom(dataclasses.replace(base, cut_y=-0.08), 600, 32)
    assert bob.points[..., 1].min() > -0.08 - 0.015  # cut plane (+ 3 mm jitter, + tolerance)
    curly = generate_groom(
        dataclasses.replace(base, curl_radius=0.008, curl_frequency=20.0), 600, 32
    )
    assert np.median(curl_frequencies(curly.points)) > 5.0
    assert np.median(curl_frequencies(long.points)) == 0.0
    thin = generate_groom(dataclasses.replace(base, density=0.4), 2000, 8)
    full = generate_groom(dataclasses.replace(base, density=1.0), 2000, 8)
    assert 0.3 < thin.n_strands / full.n_strands < 0.5


def test_density_map_is_zero_off_the_scalp_and_shows_partings_and_balding():
    side_part = sample_style(3, "side_part")
    image = density_map(side_part, 64)
    centres = (np.arange(64) + 0.5) / 64
    uv = np.stack(np.meshgrid(centres, centres, indexing="xy"), -1)
    theta, _ = angles_from_uv(uv)
    assert (image[theta > np.deg2rad(123.0)] == 0).all()
    assert image.max() <= 1.0 and image.mean() > 0.2
    bald = density_map(dataclasses.replace(side_part, thinning=1.0), 64)
    crown = uv_from_angles(np.array(0.4), np.array(np.pi))
    row, col = (crown[1] * 64).astype(int), (crown[0] * 64).astype(int)
    assert bald[row, col] < 0.3 < image[row, col]


def test_resample_by_arc_length_spaces_points_evenly():
    t = np.linspace(0.0, 1.0, 50) ** 2  # unevenly spaced points on a straight line of length 2
    strand = np.stack([2 * t, np.zeros_like(t), np.zeros_like(t)], -1)[None]
    even = resample_by_arc_length(strand, 5)
    np.testing.assert_allclose(even[0, :, 0], [0.0, 0.5, 1.0, 1.5, 2.0], atol=1e-9)
    half = resample_by_arc_length(strand, 3, lengths=np.array([1.0]))
    np.testing.assert_allclose(half[0, :, 0], [0.0, 0.5, 1.0], atol=1e-9)


def test_bad_sizes_are_user_errors():
    with pytest.raises(UserError):
        generate_groom(sample_style(0), n_strands=0)
    with pytest.raises(UserError):
        generate_groom(sample_style(0), n_points=1)


def test_root_frames_are_orthonormal_smooth_and_follow_the_scalp_normal(grooms):
    _, groom = grooms[("long_straight", 0)]
    frames = groom.root_frames()
    np.testing.assert_allclose(
        frames.transpose(0, 2, 1) @ frames, np.broadcast_to(np.eye(3), frames.shape), atol=1e-9
    )
    np.testing.assert_allclose(np.linalg.det(frames), 1.0, atol=1e-9)
    _, normals = DEFAULT_HEAD.scalp_points(*angles_from_uv(groom.root_uv.astype(np.float64)))
    np.testing.assert_allclose(frames[:, :, 2], normals, atol=1e-9)
    # smooth over the whole scalp: roots under 1 cm apart have tangents within 20 degrees
    roots = groom.points[:, 0].astype(np.float64)
    gap = np.linalg.norm(roots[:, None] - roots[None], axis=-1)
    near = (gap < 0.01) & (gap > 0)
    tangent_dot = np.einsum("ic,jc->ij", frames[:, :, 0], frames[:, :, 0])
    assert tangent_dot[near].min() > np.cos(np.deg2rad(20.0))
