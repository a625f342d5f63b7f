"""Evaluation with a fixed protocol: distribution, reconstruction, layout and seam metrics.

Protocol (recorded with every result, see ``PROTOCOL``):

* Each block becomes a point cloud of 2,048 surface points, sampled area-weighted (seed = the
  block's position in its set) from the marching-cubes mesh of its SDF grid at 64^3 (5 cm voxels),
  meshed open (no caps where solids leave the block). Generated and reference blocks go through the
  same procedure, so grid resolution does not favour either.
* Coordinates are block-local metres, centred on the block centre; no per-shape normalisation
  (BlockFusion's blocks share one scale, and scale is part of what is generated).
* Chamfer distance (PointFlow): mean squared nearest-neighbour distance from X to Y plus from Y to
  X, reported in cm^2: exact k-d tree queries on the CPU, ``difforge.core.metrics.chamfer_distance``
  (batched torch) on an accelerator.
* COV, MMD and 1-NNA on Chamfer between the generated set S_g and a held-out reference set S_r of
  the same size (held-out = procedural rooms whose seeds are disjoint from training):
  COV = |{argmin_Y D(X, Y) : X in S_g}| / |S_r|; MMD = mean_Y min_X D(X, Y);
  1-NNA = leave-one-out 1-NN accuracy of telling S_g from S_r (ideal 50 %).
* Reconstructions against ground truth: F-score at 2 and 5 cm (precision = predicted points within
  tau of GT, recall the reverse, F = 2PR / (P + R)) and normal consistency (mean |n_p . n_gt| over
  nearest pairs, both directions), on 100,000 points each.
* Layout adherence: 16,384 surface points per block; cells of the 0.1 m grid occupied by points at
  heights 0.05-2.2 m, minus the wall mask dilated by one cell, against the union of furniture
  masks (IoU); wall IoU for points above 2.2 m against the wall mask; per class, the share of its
  cells that are occupied (recall). Footprint IoU per class between two rasters (e.g. a retrieved
  block's layout against the query layout) is summed over blocks before dividing.
* Seams: SDF disagreement = mean |f_A - f_B| over overlap samples with min(|f_A|, |f_B|) < 5 cm
  (cm); openness = boundary edges (used by one face) inside the scene per metre of inner block
  border (ideal 0); open boundary length = metres of boundary edges left more than 1 cm apart
  where two neighbours meshed without blending, each up to the middle of their overlap, meet
  (``seam_gap_length``; 0 where the two SDFs agree on the cut), and metres of boundary edges
  inside the blended mesh (``open_boundary_length``; 0 by construction).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import trimesh
from scipy.ndimage import binary_dilation
from scipy.spatial import cKDTree

from difforge.core.metrics import chamfer_distance
from difforge.scene.classes import CLASSES, FURNITURE, WALL
from difforge.scene.data.blocks import Block
from difforge.scene.data.geometry import BLOCK_SIZE, LAYOUT_CELL, LAYOUT_CELLS
from difforge.scene.meshing import mesh_from_sdf

POINTS_PER_BLOCK = 2048
ADHERENCE_POINTS = 16384
RECONSTRUCTION_POINTS = 100_000
FSCORE_THRESHOLDS = (0.02, 0.05)
FURNITURE_HEIGHTS = (0.05, 2.2)
SEAM_BAND = 0.05
SEAM_GAP = 0.01  # rims further apart than this count as open (a crack)
CM2 = 1e4  # m^2 -> cm^2
_PAIR_BATCH = 16  # cloud pairs per batched Chamfer call on an accelerator

PROTOCOL = {
    "points_per_block": POINTS_PER_BLOCK,
    "surface": "area-weighted samples of the open marching-cubes mesh of the block SDF (64^3, 5 cm)",
    "sampling_seed": "index of the block in its set",
    "frame": "block-local metres centred on the block centre",
    "normalisation": "none",
    "distance": "Chamfer (PointFlow: mean squared NN distance both ways, summed), cm^2",
    "fscore_thresholds_m": list(FSCORE_THRESHOLDS),
    "reconstruction_points": RECONSTRUCTION_POINTS,
    "adherence_points": ADHERENCE_POINTS,
    "furniture_heights_m": list(FURNITURE_HEIGHTS),
    "layout_cell_m": LAYOUT_CELL,
    "seam_band_m": SEAM_BAND,
    "seam_gap_m": SEAM_GAP,
}


def block_mesh(block: Block) -> trimesh.Trimesh:
    """The block's surface, meshed open, in world coordinates."""
    return mesh_from_sdf(block.sdf, block.origin, block.voxel, close=False)


def surface_samples(mesh: trimesh.Trimesh, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` area-weighted surface points and their face normals (float64)."""
    if len(mesh.faces) == 0:
        raise ValueError("cannot sample points on an empty mesh (the block has no surface)")
    points, faces = trimesh.sample.sample_surface(mesh, n, seed=seed)
    return np.asarray(points), np.asarray(mesh.face_normals[faces])


def block_point_cloud(block: Block, seed: int, n: int = POINTS_PER_BLOCK) -> np.ndarray:
    """Protocol point cloud of a block: (n, 3) block-local metres, centred on the block."""
    points, _ = surface_samples(block_mesh(block), n, seed)
    return points - (block.origin + BLOCK_SIZE / 2)


def chamfer_matrix(
    a: Sequence[np.ndarray], b: Sequence[np.ndarray] | None = None, device: str | None = None
) -> np.ndarray:
    """Chamfer distances (A, B) between point clouds (each (n, 3)), in input units squared.

    With ``b`` None the matrix of ``a`` against itself (symmetric, half the work). Without a
    ``device``: exact k-d tree queries on the CPU (faster there than dense torch.cdist at
    2,048 points: RESULTS.md, "Speed"); with one (e.g. "cuda"): the core's batched ``chamfer_distance`` on it. Both
    give the same numbers (tested).
    """
    same = b is None
    other = a if same else b
    out = np.zeros((len(a), len(other)))
    pairs = [(i, j) for i in range(len(a)) for j in range(i + 1 if same else 0, len(other))]
    if device is None:
        trees_a = [cKDTree(p) for p in a]
        trees_b = trees_a if same else [cKDTree(p) for p in other]
        for i, j in pairs:
            d_ab = trees_b[j].query(a[i])[0]
            d_ba = trees_a[i].query(other[j])[0]
            out[i, j] = np.mean(d_ab**2) + np.mean(d_ba**2)
    else:
        xa = torch.as_tensor(np.stack(a), dtype=torch.float32, device=device)
        xb = xa if same else torch.as_tensor(np.stack(other), dtype=torch.float32, device=device)
        for start in range(0, len(pairs), _PAIR_BATCH):
            i, j = (torch.tensor(v) for v in zip(*pairs[start : start + _PAIR_BATCH]))
            out[i.numpy(), j.numpy()] = chamfer_distance(xa[i], xb[j], squared=True).cpu().numpy()
    if same:
        out = out + out.T
    return out


def distribution_metrics(
    generated: Sequence[np.ndarray],
    reference: Sequence[np.ndarray],
    reference_matrix: np.ndarray | None = None,
    device: str | None = None,
) -> dict[str, float]:
    """COV (%), MMD (cm^2) and 1-NNA (%) on Chamfer; equal-size sets of (n, 3) clouds in metres.

    ``reference_matrix`` (chamfer_matrix(reference)) can be passed to share it between methods.
    """
    if len(generated) != len(reference):
        raise ValueError(f"|S_g| = {len(generated)} must equal |S_r| = {len(reference)}")
    d_rr = (
        chamfer_matrix(reference, device=device) if reference_matrix is None else reference_matrix
    )
    d_gr = chamfer_matrix(generated, reference, device=device)
    return coverage_mmd_1nna(d_gr, chamfer_matrix(generated, device=device), d_rr, scale=CM2)


def coverage_mmd_1nna(
    d_gr: np.ndarray, d_gg: np.ndarray, d_rr: np.ndarray, scale: float = 1.0
) -> dict[str, float]:
    """COV, MMD and 1-NNA from distance matrices (generated x reference, within each set)."""
    n_g, n_r = d_gr.shape
    cov = len(np.unique(d_gr.argmin(axis=1))) / n_r
    mmd = d_gr.min(axis=0).mean()
    joint = np.block([[d_gg, d_gr], [d_gr.T, d_rr]]).astype(np.float64)
    np.fill_diagonal(joint, np.inf)
    nearest = joint.argmin(axis=1)
    is_generated = np.arange(n_g + n_r) < n_g
    correct = is_generated[nearest] == is_generated
    return {"COV": 100.0 * cov, "MMD": float(mmd * scale), "1-NNA": 100.0 * correct.mean()}


def reconstruction_metrics(
    pred_points: np.ndarray,
    pred_normals: np.ndarray,
    gt_points: np.ndarray,
    gt_normals: np.ndarray,
) -> dict[str, float]:
    """Chamfer (cm^2), F-score at 2 and 5 cm with its precision and recall (%), and normal
    consistency of a reconstruction."""
    d_pg, i_pg = cKDTree(gt_points).query(pred_points)
    d_gp, i_gp = cKDTree(pred_points).query(gt_points)
    out = {"CD": float((np.mean(d_pg**2) + np.mean(d_gp**2)) * CM2)}
    for tau in FSCORE_THRESHOLDS:
        precision, recall = np.mean(d_pg < tau), np.mean(d_gp < tau)
        f = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
        cm = round(tau * 100)
        out[f"F@{cm}cm"] = 100.0 * f
        out[f"P@{cm}cm"] = 100.0 * precision
        out[f"R@{cm}cm"] = 100.0 * recall
    nc_p = np.abs(np.sum(pred_normals * gt_normals[i_pg], axis=1)).mean()
    nc_g = np.abs(np.sum(gt_normals * pred_normals[i_gp], axis=1)).mean()
    out["NC"] = float((nc_p + nc_g) / 2)
    return out


def mesh_reconstruction_metrics(
    pred: trimesh.Trimesh, gt: trimesh.Trimesh, n: int = RECONSTRUCTION_POINTS, seed: int = 0
) -> dict[str, float]:
    """Reconstruction metrics between two meshes, each sampled with ``n`` points."""
    return reconstruction_metrics(
        *surface_samples(pred, n, seed), *surface_samples(gt, n, seed + 1)
    )


def occupancy_raster(
    points: np.ndarray, origin: np.ndarray, heights: tuple[float, float]
) -> np.ndarray:
    """(32, 32) bool: layout cells of a block holding a point (world coordinates) in ``heights``."""
    keep = (points[:, 1] >= heights[0]) & (points[:, 1] <= heights[1])
    cells = np.floor((points[keep][:, [0, 2]] - origin[[0, 2]]) / LAYOUT_CELL).astype(np.int64)
    cells = cells[((cells >= 0) & (cells < LAYOUT_CELLS)).all(axis=1)]
    grid = np.zeros((LAYOUT_CELLS, LAYOUT_CELLS), dtype=bool)
    grid[cells[:, 0], cells[:, 1]] = True
    return grid


def layout_adherence(
    points: Sequence[np.ndarray], origins: Sequence[np.ndarray], rasters: Sequence[np.ndarray]
) -> dict[str, float]:
    """Geometry-vs-layout agreement over a set of blocks (points in world metres, see module doc).

    Returns the furniture footprint IoU and wall IoU (%), summed over blocks before dividing, and
    per furniture class the share of its cells that hold geometry (recall, %).
    """
    inter = union = wall_inter = wall_union = 0
    hit = np.zeros(len(CLASSES))
    total = np.zeros(len(CLASSES))
    for p, origin, raster in zip(points, origins, rasters):
        wall = raster[WALL].astype(bool)
        near_wall = binary_dilation(wall)
        furniture = raster[list(FURNITURE)].any(axis=0) & ~near_wall
        occupied = occupancy_raster(p, origin, FURNITURE_HEIGHTS) & ~near_wall
        inter += np.sum(occupied & furniture)
        union += np.sum(occupied | furniture)
        high = occupancy_raster(p, origin, (FURNITURE_HEIGHTS[1], np.inf))
        wall_inter += np.sum(high & wall)
        wall_union += np.sum(high | wall)
        occupied_any = occupancy_raster(p, origin, FURNITURE_HEIGHTS)
        for c in FURNITURE:
            mask = raster[c].astype(bool)
            hit[c] += np.sum(mask & occupied_any)
            total[c] += np.sum(mask)
    out = {
        "furniture_IoU": _percent(inter, union),
        "wall_IoU": _percent(wall_inter, wall_union),
    }
    for c in FURNITURE:
        if total[c]:
            out[f"recall_{CLASSES[c]}"] = 100.0 * hit[c] / total[c]
    return out


def footprint_iou_per_class(predicted: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Per-class IoU (%) of two sets of rasters (B, 9, n, n), summed over blocks before dividing."""
    p = predicted.astype(bool)
    r = reference.astype(bool)
    inter = (p & r).sum(axis=(0, 2, 3))
    union = (p | r).sum(axis=(0, 2, 3))
    return {CLASSES[c]: 100.0 * inter[c] / union[c] for c in range(len(CLASSES)) if union[c]}


def sdf_disagreement(
    grid_a: np.ndarray,
    offset_a: Sequence[int],
    grid_b: np.ndarray,
    offset_b: Sequence[int],
    band: float = SEAM_BAND,
) -> float:
    """Mean |f_A - f_B| (metres) over overlap samples near either surface; NaN without overlap."""
    lo = np.maximum(offset_a, offset_b)
    hi = np.minimum(np.add(offset_a, grid_a.shape), np.add(offset_b, grid_b.shape))
    if np.any(hi <= lo):
        return float("nan")
    a = grid_a[tuple(slice(s - o, e - o) for s, e, o in zip(lo, hi, offset_a))]
    b = grid_b[tuple(slice(s - o, e - o) for s, e, o in zip(lo, hi, offset_b))]
    near = np.minimum(np.abs(a), np.abs(b)) < band
    if not near.any():
        return float("nan")
    return float(np.abs(a - b)[near].mean())


def _boundary_edges(mesh: trimesh.Trimesh) -> np.ndarray:
    """End points (n, 2, 3) of the edges used by exactly one face."""
    if len(mesh.faces) == 0:
        return np.zeros((0, 2, 3))
    edges, uses = np.unique(mesh.edges_sorted, axis=0, return_counts=True)
    return mesh.vertices[edges[uses == 1]]


def seam_openness(
    mesh: trimesh.Trimesh,
    scene_lo: np.ndarray,
    scene_hi: np.ndarray,
    inner_border_length: float,
    margin: float = 0.1,
) -> float:
    """Boundary edges (used by one face) inside the scene's xz extent per metre of inner border.

    Edges within ``margin`` of the scene's outer faces are not seams (an open mesh ends there);
    use at least one and a half voxels.
    """
    if inner_border_length <= 0:
        return 0.0
    mid = _boundary_edges(mesh).mean(axis=1)
    inside = np.all(
        (mid[:, [0, 2]] > scene_lo[[0, 2]] + margin) & (mid[:, [0, 2]] < scene_hi[[0, 2]] - margin),
        axis=1,
    )
    return float(inside.sum() / inner_border_length)


def open_boundary_length(
    mesh: trimesh.Trimesh, lo: np.ndarray, hi: np.ndarray, margin: float = 0.1
) -> float:
    """Summed length (m) of the boundary edges more than ``margin`` inside the box [lo, hi] (an
    open mesh ends at the box's faces; what is left open inside is a seam)."""
    ends = _boundary_edges(mesh)
    mid = ends.mean(axis=1)
    inside = np.all((mid > np.asarray(lo) + margin) & (mid < np.asarray(hi) - margin), axis=1)
    return float(np.linalg.norm(ends[inside, 0] - ends[inside, 1], axis=1).sum())


def seam_gap_length(
    grid_a: np.ndarray,
    origin_a: np.ndarray,
    grid_b: np.ndarray,
    shift: int,
    voxel: float,
    tolerance: float = SEAM_GAP,
    margin: float = 0.1,
) -> float:
    """Open boundary length (m) where two neighbours meet when they are meshed without blending:
    A on its samples up to the middle of the overlap, B (``shift`` samples further along x) from
    there on.

    Both meshes end on the cut's sample layer. Where the two SDFs agree on it, marching cubes puts
    the same rim on the cut from both sides and the surface closes; otherwise the rims part. Counted
    is the length of both meshes' rim edges on the cut that lie more than ``tolerance`` from the
    other mesh's rim (a crack wider than that, or a surface the other block lacks there); edges
    within ``margin`` of the blocks' outer faces are not seams.
    """
    cut = (shift + grid_a.shape[0]) // 2  # A's sample index of the cut layer
    origin_a = np.asarray(origin_a, dtype=np.float64)
    origin_b = origin_a + np.array([cut * voxel, 0.0, 0.0])
    x_cut = origin_a[0] + (cut + 0.5) * voxel
    size = np.array(grid_a.shape[1:]) * voxel
    rims = []
    for grid, origin in ((grid_a[: cut + 1], origin_a), (grid_b[cut - shift :], origin_b)):
        ends = _boundary_edges(mesh_from_sdf(grid, origin, voxel, close=False))
        mid = ends.mean(axis=1)
        on_cut = (np.abs(mid[:, 0] - x_cut) < voxel / 4) & np.all(
            (mid[:, 1:] > origin_a[1:] + margin) & (mid[:, 1:] < origin_a[1:] + size - margin),
            axis=1,
        )
        rims.append(ends[on_cut])
    # The other rim as points every 1/8 edge (< 1 cm apart at 5 cm voxels).
    steps = np.linspace(0.0, 1.0, 9)[None, :, None]
    total = 0.0
    for own, other in ((rims[0], rims[1]), (rims[1], rims[0])):
        lengths = np.linalg.norm(own[:, 0] - own[:, 1], axis=1)
        if len(other) == 0:
            total += float(lengths.sum())
            continue
        points = (other[:, :1] * (1 - steps) + other[:, 1:] * steps).reshape(-1, 3)
        gap = cKDTree(points).query(own.mean(axis=1))[0]
        total += float(lengths[gap > tolerance].sum())
    return total


def inner_border_length(origins: Sequence[np.ndarray], size: float = BLOCK_SIZE) -> float:
    """Summed length (m) of the blocks' vertical faces that lie inside the scene's xz extent.

    These are the lines where per-block meshes would meet; seam openness is counted per metre of
    them. Two blocks side by side give 2 x 3.2 m; a 2 x 2 grid gives 8 x 3.2 m.
    """
    corners = np.array([[o[0], o[2]] for o in origins])
    lo, hi = corners.min(axis=0), corners.max(axis=0) + size
    total = 0.0
    for c in corners:
        for axis in (0, 1):
            for face in (c[axis], c[axis] + size):
                if lo[axis] + 1e-9 < face < hi[axis] - 1e-9:
                    total += size
    return total


def _percent(num: float, den: float) -> float:
    return float("nan") if den == 0 else 100.0 * num / den
