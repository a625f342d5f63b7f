"""Metric definitions checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from difforge.core.metrics import chamfer_distance as core_chamfer
from difforge.hair.data.head import DEFAULT_HEAD
from difforge.hair.evaluate import (
    compare_grooms,
    curl_frequencies,
    mask_iou,
    occupancy_scores,
    orientation_error_2d,
    orientation_scores,
    sample_along_strands,
    scalp_cap_area_cm2,
    scalp_coverage,
    strand_lengths,
    style_estimates,
)

X = np.array([1.0, 0.0, 0.0])


def test_points_are_spread_evenly_by_arc_length_with_unit_tangents():
    # One strand 3 mm long along x, one 1 mm long along y: 4 samples -> 3 on the first, 1 on the second.
    strands = np.array([[[0, 0, 0], [0.003, 0, 0]], [[0, 1, 0], [0, 1.001, 0]]], dtype=np.float64)
    points, tangents = sample_along_strands(strands, 4)
    np.testing.assert_allclose(points[:, 0], [0.0005, 0.0015, 0.0025, 0.0])
    np.testing.assert_allclose(points[3], [0, 1.0005, 0])
    np.testing.assert_allclose(tangents, [X, X, X, [0, 1, 0]])


def test_occupancy_precision_recall_f1_and_chamfer_by_hand():
    gt = np.array([[0, 0, 0], [0.010, 0, 0]], dtype=np.float64)
    pred = np.array([[0.0025, 0, 0], [0.0100, 0.0035, 0], [0.05, 0, 0]])
    scores = occupancy_scores(pred, gt)
    # pred -> gt distances: 2.5, 3.5, 40 mm; gt -> pred: 2.5, 3.5 mm
    assert scores["occupancy_precision@2mm"] == 0.0
    assert scores["occupancy_precision@3mm"] == pytest.approx(100 / 3)
    assert scores["occupancy_recall@3mm"] == pytest.approx(50.0)
    assert scores["occupancy_f1@3mm"] == pytest.approx(100 * 2 * (1 / 3) * 0.5 / (1 / 3 + 0.5))
    assert scores["occupancy_precision@4mm"] == pytest.approx(200 / 3)
    assert scores["occupancy_recall@4mm"] == 100.0
    assert scores["occupancy_f1@2mm"] == 0.0
    expected_cd = np.mean(np.array([2.5, 3.5, 40.0]) ** 2) + np.mean(np.array([2.5, 3.5]) ** 2)
    assert scores["chamfer_mm2"] == pytest.approx(expected_cd)


def test_chamfer_agrees_with_the_core_implementation():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 3)) * 0.01, rng.normal(size=(200, 3)) * 0.01
    core = float(core_chamfer(torch.from_numpy(a), torch.from_numpy(b), squared=True))
    assert occupancy_scores(a, b)["chamfer_mm2"] == pytest.approx(core * 1e6, rel=1e-4)


def test_orientation_counts_any_aligned_neighbour_within_the_radius():
    # The nearest GT point (1 mm) points the wrong way; a farther one (2.5 mm) is aligned.
    pred, pred_t = np.zeros((1, 3)), X[None]
    gt = np.array([[0.001, 0, 0], [0, 0.0025, 0]])
    gt_t = np.array([[0, 1.0, 0], [np.cos(0.4), np.sin(0.4), 0]])  # 90 deg and ~23 deg off
    scores = orientation_scores(
        pred, pred_t, gt, gt_t, settings=[(3.0, 30.0), (2.0, 30.0), (3.0, 20.0)]
    )
    assert scores["orientation_precision@3mm_30deg"] == 100.0  # aligned neighbour at 2.5 mm
    assert (
        scores["orientation_precision@2mm_30deg"] == 0.0
    )  # only the misaligned one is near enough
    assert scores["orientation_precision@3mm_20deg"] == 0.0  # 23 deg is too far off
    # recall: GT 0 has pred within 1 mm but 90 deg off; GT 1 is 2.5 mm away and 23 deg off
    assert scores["orientation_recall@3mm_30deg"] == 50.0
    assert scores["orientation_f1@3mm_30deg"] == pytest.approx(100 * 2 * 1 * 0.5 / 1.5)


def test_orientation_search_is_exact_when_many_misaligned_points_crowd_the_radius():
    # 200 reversed tangents within 1 mm and a single aligned point at 2.9 mm: k must grow past 16.
    rng = np.random.default_rng(1)
    crowd = rng.uniform(-0.0005, 0.0005, size=(200, 3))
    gt = np.vstack([crowd, [[0.0029, 0, 0]]])
    gt_t = np.vstack([np.tile(-X, (200, 1)), X[None]])
    scores = orientation_scores(np.zeros((1, 3)), X[None], gt, gt_t, settings=[(3.0, 30.0)])
    assert scores["orientation_precision@3mm_30deg"] == 100.0


def test_identical_grooms_score_perfectly_and_a_shifted_one_does_not():
    t = np.linspace(0, 0.1, 20)
    strands = np.stack(
        [np.stack([np.full_like(t, 0.01 * i), -t, np.zeros_like(t)], -1) for i in range(5)]
    )
    same = compare_grooms(strands, strands, n_samples=2000)
    assert same["occupancy_f1@2mm"] == 100.0 and same["orientation_f1@3mm_30deg"] == 100.0
    assert same["chamfer_mm2"] == 0.0
    shifted = compare_grooms(strands + np.array([0.0035, 0, 0]), strands, n_samples=2000)
    assert shifted["occupancy_f1@3mm"] == 0.0 and shifted["occupancy_f1@4mm"] == 100.0
    reversed_ = compare_grooms(strands[:, ::-1], strands, n_samples=2000)
    assert reversed_["occupancy_f1@2mm"] == 100.0 and reversed_["orientation_f1@3mm_30deg"] == 0.0


def test_mask_iou_and_2d_orientation_error():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2] = True  # 8 pixels
    b[1:3] = True  # 8 pixels, 4 shared
    assert mask_iou(a, b) == pytest.approx(4 / 12)
    assert mask_iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool)) == 1.0
    first = np.array([[0.0, np.pi - 0.1, np.nan]])
    second = np.array([[0.2, 0.1, 1.0]])
    # undirected: |0 - 0.2| = 0.2 rad; |pi - 0.1 - 0.1| wraps to 0.2 rad; the NaN pixel is skipped
    assert orientation_error_2d(first, second) == pytest.approx(np.degrees(0.2))


def test_curl_frequency_of_a_helix_and_a_straight_strand():
    # Helix of radius 5 mm, 20 turns per metre of axis, 0.2 m of axis: arc per turn is
    # sqrt((2 pi r)^2 + pitch^2), so the frequency per metre of arc is 1 / that.
    axis = np.linspace(0, 0.2, 400)
    angle = 2 * np.pi * 20 * axis
    helix = np.stack([0.005 * np.cos(angle), -axis, 0.005 * np.sin(angle)], -1)[None]
    per_arc = 1.0 / np.hypot(2 * np.pi * 0.005, 1 / 20)
    assert curl_frequencies(helix)[0] == pytest.approx(per_arc, rel=0.08)
    straight = np.stack([np.zeros_like(axis), -axis, 0.01 * axis**2], -1)[None]
    assert curl_frequencies(straight)[0] == 0.0
    np.testing.assert_allclose(strand_lengths(straight[:, :, :2]), 0.2)


def test_scalp_area_coverage_and_density():
    area = scalp_cap_area_cm2()
    # between the area of a sphere cap of the smallest and the largest semi-axis (123 deg cap)
    cap = 2 * np.pi * (1 - np.cos(np.deg2rad(123.0)))
    assert cap * 7.8**2 < area < cap * 10.0**2
    theta = np.deg2rad(np.array([10.0, 40.0]))
    roots, _ = DEFAULT_HEAD.scalp_points(theta, np.array([0.0, 1.0]))
    strands = np.stack([roots, roots + 0.01], axis=1)
    assert 0 < scalp_coverage(strands) < 0.01
    estimates = style_estimates(strands)
    assert estimates["density_per_cm2"] == pytest.approx(2 / area)
    assert estimates["length_m"] == pytest.approx(0.01 * np.sqrt(3))
