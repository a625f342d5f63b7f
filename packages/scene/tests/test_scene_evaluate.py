"""Metrics against hand-computed values, and the retrieval baseline's nearest-layout rule."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from difforge.scene.baseline import nearest_by_layout
from difforge.scene.classes import CLASS_INDEX
from difforge.scene.data.blocks import BlockDataset, write_dataset
from difforge.scene.evaluate import (
    chamfer_matrix,
    coverage_mmd_1nna,
    distribution_metrics,
    footprint_iou_per_class,
    layout_adherence,
    reconstruction_metrics,
    sdf_disagreement,
    seam_openness,
)
from difforge.scene.evaluate_model import paired_summary, seam_pairs


def test_chamfer_is_pointflow_sum_of_mean_squared_distances() -> None:
    x = [np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]), np.array([[3.0, 4.0, 0.0]])]
    y = [np.array([[0.0, 0.0, 0.0]])]
    d = chamfer_matrix(x, y)
    # X0 -> Y: (0 + 1) / 2, Y -> X0: 0.  X1 <-> Y: 25 both ways.
    assert d[:, 0] == pytest.approx([0.5, 50.0])
    sym = chamfer_matrix(x)
    assert sym[0, 1] == sym[1, 0] == pytest.approx((25 + 20) / 2 + 20)
    assert sym[0, 0] == 0.0


def test_kd_tree_and_core_torch_chamfer_agree() -> None:
    rng = np.random.default_rng(1)
    clouds = [rng.normal(size=(50, 3)) for _ in range(3)]
    others = [rng.normal(size=(40, 3)) + 1 for _ in range(2)]
    assert np.allclose(chamfer_matrix(clouds, others), chamfer_matrix(clouds, others, device="cpu"))
    assert np.allclose(chamfer_matrix(clouds), chamfer_matrix(clouds, device="cpu"), atol=1e-6)


def test_cov_mmd_1nna_on_a_hand_computed_example() -> None:
    # 1D sets: generated {0, 10}, reference {1, 2.5}; D = |a - b|.
    g, r = np.array([0.0, 10.0]), np.array([1.0, 2.5])
    d_gr = np.abs(g[:, None] - r[None])
    d_gg = np.abs(g[:, None] - g[None])
    d_rr = np.abs(r[:, None] - r[None])
    out = coverage_mmd_1nna(d_gr, d_gg, d_rr)
    # COV: 0 -> 1, 10 -> 2.5: both covered. MMD: (min(1, 9) + min(2.5, 7.5)) / 2.
    assert out["COV"] == pytest.approx(100.0)
    assert out["MMD"] == pytest.approx(1.75)
    # Nearest: 0 -> 1 (wrong), 10 -> 2.5 (wrong), 1 -> 0 (wrong), 2.5 -> 1 (right).
    assert out["1-NNA"] == pytest.approx(25.0)


def test_memorising_the_reference_gives_zero_1nna_and_full_coverage() -> None:
    rng = np.random.default_rng(0)
    clouds = [rng.normal(size=(64, 3)) + 3 * i for i in range(4)]
    out = distribution_metrics(clouds, [c.copy() for c in clouds])
    assert out == {"COV": 100.0, "MMD": 0.0, "1-NNA": 0.0}


def test_fscore_and_normal_consistency_by_hand() -> None:
    gt = np.stack([np.arange(10.0), np.zeros(10), np.zeros(10)], axis=1)
    up = np.tile([0.0, 0.0, 1.0], (10, 1))
    shifted = gt + np.array([0.0, 0.0, 0.03])
    out = reconstruction_metrics(shifted, up, gt, up)
    assert out["F@2cm"] == 0.0 and out["F@5cm"] == pytest.approx(100.0)
    assert out["CD"] == pytest.approx(2 * 0.03**2 * 1e4)  # cm^2
    assert out["NC"] == pytest.approx(1.0)
    half = np.concatenate([gt[:5], gt[5:] + np.array([0.0, 0.0, 1.0])])
    side = np.tile([1.0, 0.0, 0.0], (10, 1))
    out = reconstruction_metrics(half, side, gt, up)
    assert out["F@5cm"] == pytest.approx(50.0)  # precision 0.5, recall 0.5
    assert out["NC"] == pytest.approx(0.0)


def test_layout_adherence_by_hand() -> None:
    raster = np.zeros((9, 32, 32), dtype=np.uint8)
    raster[CLASS_INDEX["table"], 10:12, 10:12] = 1
    origin = np.array([0.0, -0.15, 0.0])
    on_table = np.array(
        [[1.05, 0.7, 1.05], [1.15, 0.7, 1.05], [1.05, 0.7, 1.15], [1.15, 0.7, 1.15]]
    )
    out = layout_adherence([on_table], [origin], [raster])
    assert out["furniture_IoU"] == pytest.approx(100.0)
    assert out["recall_table"] == pytest.approx(100.0)
    elsewhere = on_table + np.array([1.0, 0.0, 1.0])
    floor = on_table * [1.0, 0.0, 1.0]  # at y = 0: below the furniture heights, ignored
    out = layout_adherence([np.concatenate([on_table[:2], elsewhere, floor])], [origin], [raster])
    assert out["furniture_IoU"] == pytest.approx(100.0 * 2 / 8)
    assert out["recall_table"] == pytest.approx(50.0)


def test_footprint_iou_per_class_sums_over_blocks() -> None:
    a = np.zeros((2, 9, 4, 4), dtype=np.uint8)
    b = np.zeros_like(a)
    bed = CLASS_INDEX["bed"]
    a[0, bed, :2, :2] = 1  # 4 cells
    b[0, bed, :2, :1] = 1  # 2 of them
    a[1, bed, 3, 3] = 1
    b[1, bed, 3, 3] = 1
    assert footprint_iou_per_class(a, b) == {"bed": pytest.approx(100.0 * 3 / 5)}


def test_sdf_disagreement_only_counts_overlap_near_the_surface() -> None:
    a = np.full((4, 4, 4), 0.01)
    b = np.full((4, 4, 4), 0.03)
    b[3] = 0.5  # overlap slice far from any surface in both blocks: ignored
    assert sdf_disagreement(a, (0, 0, 0), b, (2, 0, 0)) == pytest.approx(0.02)
    assert np.isnan(sdf_disagreement(a, (0, 0, 0), b, (4, 0, 0)))


def test_seam_openness_counts_inner_boundary_edges_per_metre() -> None:
    square = trimesh.Trimesh([[1, 0, 1], [2, 0, 1], [2, 0, 2], [1, 0, 2]], [[0, 1, 2], [0, 2, 3]])
    lo, hi = np.array([0.0, 0.0, 0.0]), np.array([3.0, 3.0, 3.0])
    assert seam_openness(square, lo, hi, inner_border_length=2.0) == pytest.approx(2.0)


def test_nearest_by_layout_uses_hamming_distance() -> None:
    train = np.zeros((3, 9, 4, 4), dtype=np.uint8)
    train[1, 2, :2] = 1
    train[2, 2, :] = 1
    query = np.zeros((2, 9, 4, 4), dtype=np.uint8)
    query[0, 2, :3] = 1  # 4 cells from train 1, 4 from train 2: tie -> lower index
    query[1, 2, 3, 3] = 1  # nearest to the empty layout
    assert nearest_by_layout(train, query).tolist() == [1, 0]


def test_paired_summary_uses_the_same_pairs_for_every_method() -> None:
    # Pair 2 failed for the conditioned variant only (NaN): it is left out of both means, not just
    # one (the old seam table averaged 12 pairs of one variant against 16 of the other).
    values = {"with": [1.0, 2.0, float("nan"), 4.0], "without": [3.0, 1.0, 100.0, 5.0]}
    summary = paired_summary(values)
    assert summary["pairs"] == 3
    assert summary["with"] == {"mean": pytest.approx(7 / 3), "median": 2.0}
    assert summary["without"] == {"mean": 3.0, "median": 3.0}
    assert summary["with lower (% of pairs)"] == pytest.approx(200 / 3)


def test_seam_pairs_lie_wholly_inside_their_rooms(tmp_path) -> None:
    write_dataset(tmp_path / "d", 6, seed=5, resolution=16, with_sdf=False)
    pairs = seam_pairs(BlockDataset(tmp_path / "d"), 3, stride=2.4, seed=0)
    assert len(pairs) == 3
    for layout, x, z in pairs:
        (x0, z0), (x1, z1) = layout.extent_min, layout.extent_max
        assert x0 <= x and x + 2.4 + 3.2 <= x1 and z0 <= z and z + 3.2 <= z1
    # A room too short along x for two blocks (3.9 m, seed 8) gives no pair.
    write_dataset(tmp_path / "short", 6, seed=8, resolution=16, with_sdf=False)
    assert seam_pairs(BlockDataset(tmp_path / "short"), 3, stride=2.4, seed=0) == []
