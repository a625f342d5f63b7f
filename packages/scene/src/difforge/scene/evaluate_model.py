"""Evaluating a trained scene model: generated vs held-out blocks beside the retrieval baseline,
and seams between neighbours generated with vs without overlap conditioning.

Protocol: ``evaluate.PROTOCOL`` (recorded in the JSON). Generated blocks answer the held-out
blocks' layouts and are placed at their positions, so the distribution metrics (COV / MMD /
1-NNA on Chamfer), the paired reconstruction against the query block and layout adherence are
computed exactly as for the retrieval baseline, in the same call (same reference set).

Seams: in held-out rooms, block A at a random corner and block B one stride (2.4 m) further
along +x, both wholly inside the room's layout extent (``seam_pairs``) and conditioned on it. B is
generated (i) by RePaint from A's overlapping latents, (ii) independently. Per pair: the SDF
disagreement of the decoded grids in the 0.8 m overlap (cm, samples within 5 cm of either
surface), the Chamfer distance (cm^2) between the two blocks' surfaces inside the overlap (2,048
points each), and the open boundary length (m, rims more than 1 cm apart) where the two meet when
meshed without blending, each up to the middle of the overlap (``evaluate.seam_gap_length``); the
blended mesh's open length is reported too (0 by construction: one marching-cubes pass over one
field). Means and medians
are over the pairs where every value of both variants is finite (``paired_summary``); the mean
of a squared distance is dominated by its worst pairs, hence the median and the share of pairs
where conditioning is lower.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from scipy.spatial import cKDTree

from difforge.scene.baseline import evaluate_retrieval
from difforge.scene.data.blocks import Block, BlockDataset
from difforge.scene.data.geometry import BLOCK_SIZE, block_origin
from difforge.scene.data.layout import Layout, rasterize_layout
from difforge.scene.evaluate import (
    CM2,
    POINTS_PER_BLOCK,
    block_mesh,
    open_boundary_length,
    sdf_disagreement,
    seam_gap_length,
    surface_samples,
)
from difforge.scene.meshing import mesh_blocks
from difforge.scene.model import representation
from difforge.scene.sample import Scene, SceneGenerator, neighbour_condition

GENERATE_BATCH = 32
METHOD_NAMES = {
    "latent tri-planes": "latent diffusion (this model)",
    "raw tri-planes": "raw tri-plane diffusion (this model)",
    "latent vector": "latent vector diffusion (this model)",
}


def generate_grids(
    generator: SceneGenerator, rasters: np.ndarray, resolution: int, seed: int
) -> np.ndarray:
    """SDF grids (n, R, R, R) for layout rasters, sampled in batches."""
    grids = []
    for k, lo in enumerate(range(0, len(rasters), GENERATE_BATCH)):
        latents = generator.sample_latents(rasters[lo : lo + GENERATE_BATCH], seed + k)
        grids.append(generator.decode(latents, resolution))
    return np.concatenate(grids)


def overlap_chamfer(a: Block, b: Block, n: int = POINTS_PER_BLOCK) -> float:
    """Chamfer (cm^2) between two blocks' surfaces restricted to their xz overlap; NaN when
    either has no surface there."""
    lo = np.maximum(a.origin, b.origin)
    hi = np.minimum(a.origin, b.origin) + BLOCK_SIZE
    clouds = []
    for k, block in enumerate((a, b)):
        mesh = block_mesh(block)
        if len(mesh.faces) == 0:
            return float("nan")
        points, _ = surface_samples(mesh, 8 * n, seed=k)
        inside = np.all((points[:, [0, 2]] >= lo[[0, 2]]) & (points[:, [0, 2]] <= hi[[0, 2]]), 1)
        if not inside.any():
            return float("nan")
        clouds.append(points[inside][:n])
    d_ab = cKDTree(clouds[1]).query(clouds[0])[0]
    d_ba = cKDTree(clouds[0]).query(clouds[1])[0]
    return float((np.mean(d_ab**2) + np.mean(d_ba**2)) * CM2)


def seam_pairs(
    test: BlockDataset, n_pairs: int, stride: float, seed: int
) -> list[tuple[Layout, float, float]]:
    """``n_pairs`` (layout, x, z): block A's corner in a held-out room, block B one stride further
    along +x, both wholly inside the room's layout extent.

    Only there does ``generate`` condition both blocks on the layout (a block outside the extent
    gets the null layout), so pairs reaching past the room would compare a layout-conditioned
    expansion with what is effectively unconditional sampling. Rooms long enough along x are
    visited in a random order (again from the start when there are fewer rooms than pairs), A at a
    random position in each.
    """
    span = BLOCK_SIZE + stride
    rooms = [
        room.layout
        for room in test.rooms
        if room.layout.extent_max[0] - room.layout.extent_min[0] >= span
        and room.layout.extent_max[1] - room.layout.extent_min[1] >= BLOCK_SIZE
    ]
    if not rooms or n_pairs <= 0:
        return []
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(rooms))
    pairs = []
    for k in range(n_pairs):
        layout = rooms[order[k % len(rooms)]]
        (x0, z0), (x1, z1) = layout.extent_min, layout.extent_max
        pairs.append(
            (layout, float(rng.uniform(x0, x1 - span)), float(rng.uniform(z0, z1 - BLOCK_SIZE)))
        )
    return pairs


def paired_summary(values: dict[str, list[float]]) -> dict[str, Any]:
    """Mean and median of each method's per-pair values over the pairs where every method's value
    is finite (the same pairs for all, so a pair one method fails on is not silently dropped from
    it alone), and the share of those pairs where the first method is lower."""
    table = np.array(list(values.values()), dtype=np.float64)
    common = np.all(np.isfinite(table), axis=0)
    out: dict[str, Any] = {"pairs": int(common.sum())}
    for name, row in zip(values, table):
        out[name] = {
            "mean": float(row[common].mean()) if common.any() else None,
            "median": float(np.median(row[common])) if common.any() else None,
        }
    if common.any():
        lower = table[0, common] < table[1:, common].min(axis=0)
        out[f"{next(iter(values))} lower (% of pairs)"] = 100.0 * float(lower.mean())
    return out


def seam_comparison(
    generator: SceneGenerator, test: BlockDataset, n_pairs: int, seed: int
) -> dict[str, Any]:
    """Neighbours with vs without overlap conditioning (see the module docstring)."""
    stride = generator.sampling.stride
    res = test.resolution
    voxel = BLOCK_SIZE / res
    shift = round(stride / voxel)
    pairs = seam_pairs(test, n_pairs, stride, seed)
    out: dict[str, Any] = {"pairs": len(pairs), "seconds": 0.0}
    if not pairs:
        return out

    def rasters(dx: float) -> np.ndarray:
        return np.stack([rasterize_layout(lay.crop(x + dx, z)) for lay, x, z in pairs])

    started = time.perf_counter()
    first = generator.sample_latents(rasters(0.0), seed)
    conditions = [
        neighbour_condition(Scene({(0, 0): a}, stride), (1, 0), generator.overlap_texels)
        for a in first
    ]
    known = torch.stack([c[0] for c in conditions])
    mask = torch.stack([c[1] for c in conditions])
    second = {
        "with overlap conditioning": generator.inpaint_latents(
            rasters(stride), known, mask, seed + 1
        ),
        "independent": generator.sample_latents(rasters(stride), seed + 2),
    }
    grids_a = generator.decode(first, res)
    metrics: dict[str, dict[str, list[float]]] = {}
    for name, latents in second.items():
        grids_b = generator.decode(latents, res)
        for (_, x, z), a, b in zip(pairs, grids_a, grids_b):
            block_a = Block(block_origin(x, z), a, Layout(()), np.zeros(0))
            block_b = Block(block_origin(x + stride, z), b, Layout(()), np.zeros(0))
            lo, hi = block_a.origin, block_b.origin + BLOCK_SIZE
            per_pair = {
                "sdf_disagreement_cm": 100.0 * sdf_disagreement(a, (0, 0, 0), b, (shift, 0, 0)),
                "overlap_chamfer_cm2": overlap_chamfer(block_a, block_b),
                "open_boundary_m": seam_gap_length(a, block_a.origin, b, shift, voxel),
                "open_boundary_blended_m": open_boundary_length(
                    mesh_blocks([block_a, block_b], close=False), lo, hi
                ),
            }
            for metric, value in per_pair.items():
                metrics.setdefault(metric, {}).setdefault(name, []).append(value)
    out["seconds"] = time.perf_counter() - started
    for metric, values in metrics.items():
        out[metric] = paired_summary(values)
    out["per_pair"] = {metric: values for metric, values in metrics.items()}
    return out


def evaluate_model(
    generator: SceneGenerator,
    train: BlockDataset,
    test: BlockDataset,
    n_eval: int = 100,
    seed: int = 0,
    n_seams: int = 16,
    device: str | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """The retrieval baseline's evaluation with the model added as a method, plus seams."""
    name = METHOD_NAMES[representation(generator.model.vae)]
    result = evaluate_retrieval(
        train,
        test,
        n_eval=n_eval,
        seed=seed,
        device=device,
        generators={name: lambda r: generate_grids(generator, r, test.resolution, seed)},
        workers=workers,
    )
    if n_seams > 0:
        result["seams"] = seam_comparison(generator, test, n_seams, seed)
    result["sampling"] = {
        k: getattr(generator.sampling, k)
        for k in ("steps", "sampler", "guidance_scale", "repaint_steps", "jump_length",
                  "jump_n_sample", "grid_resolution", "stride")
    }  # fmt: skip
    result["device"] = str(generator.device)
    return result
