"""Evaluating a trained scene model: generated vs held-out blocks beside the retrieval baseline,
and seams between neighbours generated with vs without overlap conditioning.

Protocol: ``evaluate.PROTOCOL`` (recorded in the JSON). Generated blocks answer the held-out
blocks' layouts and are placed at their positions, so the distribution metrics (COV / MMD /
1-NNA on Chamfer), the paired reconstruction against the query block and layout adherence are
computed exactly as for the retrieval baseline, in the same call (same reference set).

Seams: for held-out rooms, block A at a held-out block's corner and block B one stride (2.4 m)
further along +x, both conditioned on the room's layout. B is generated (i) by RePaint from A's
overlapping latents, (ii) independently. Reported: SDF disagreement of the decoded grids in the
0.8 m overlap (cm, samples within 5 cm of either surface) and the Chamfer distance (cm^2) between
the two blocks' surfaces inside the overlap (2,048 points each). Blended meshing leaves no open
seam in either case (one marching-cubes pass over a closed field), so openness is not reported.
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
    sdf_disagreement,
    surface_samples,
)
from difforge.scene.sample import Scene, SceneGenerator, neighbour_condition

GENERATE_BATCH = 32


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


def seam_comparison(
    generator: SceneGenerator, test: BlockDataset, n_pairs: int, seed: int
) -> dict[str, Any]:
    """Neighbours with vs without overlap conditioning (see the module docstring)."""
    stride = generator.sampling.stride
    res = test.resolution
    voxel = BLOCK_SIZE / res
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(len(test), min(n_pairs, len(test)), replace=False))
    corners = [(float(test.origins[i][0]), float(test.origins[i][2])) for i in picks]
    layouts = [test.room(int(i)).layout for i in picks]

    def rasters(dx: float) -> np.ndarray:
        return np.stack(
            [rasterize_layout(lay.crop(x + dx, z)) for lay, (x, z) in zip(layouts, corners)]
        )

    started = time.perf_counter()
    first = generator.sample_latents(rasters(0.0), seed)
    conditions = [
        neighbour_condition(Scene({(0, 0): a}, stride), (1, 0), generator.overlap_texels)
        for a in first
    ]
    known = torch.stack([c[0] for c in conditions])
    mask = torch.stack([c[1] for c in conditions])
    with_overlap = generator.inpaint_latents(rasters(stride), known, mask, seed + 1)
    without = generator.sample_latents(rasters(stride), seed + 2)
    grids_a = generator.decode(first, res)
    offset = (round(stride / voxel), 0, 0)
    out: dict[str, Any] = {"pairs": len(picks), "seconds": 0.0}
    for name, second in (("with overlap conditioning", with_overlap), ("independent", without)):
        grids_b = generator.decode(second, res)
        disagreement, overlap_cd = [], []
        for (x, z), a, b in zip(corners, grids_a, grids_b):
            d = sdf_disagreement(a, (0, 0, 0), b, offset)
            if np.isfinite(d):
                disagreement.append(d)
            cd = overlap_chamfer(
                Block(block_origin(x, z), a, Layout(()), np.zeros(0)),
                Block(block_origin(x + stride, z), b, Layout(()), np.zeros(0)),
            )
            if np.isfinite(cd):
                overlap_cd.append(cd)
        out[name] = {
            "sdf_disagreement_cm": 100.0 * float(np.mean(disagreement)) if disagreement else None,
            "overlap_chamfer_cm2": float(np.mean(overlap_cd)) if overlap_cd else None,
            "pairs_with_surface_in_overlap": len(disagreement),
        }
    out["seconds"] = time.perf_counter() - started
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
    name = "latent diffusion (this model)"
    if generator.model.vae is None:
        name = "raw tri-plane diffusion (this model)"
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
