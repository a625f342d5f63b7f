"""Retrieval baseline: answer each query layout with the training block whose layout is nearest.

It is the bar a layout-conditioned generator must clear: the generator sees the same training set
and the same layout. Nearest = smallest Hamming distance between binary 9 x 32 x 32 rasters (ties
to the lowest index). Evaluated with the protocol in ``evaluate.py`` against held-out procedural
blocks, next to two references: random training blocks (layout ignored: what an unconditional
generator that reproduced the training distribution perfectly would score) and the held-out blocks'
own geometry (the ceiling of the geometry-from-layout metrics).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np
import torch

from difforge.core.errors import UserError
from difforge.core.workers import ignore_interrupts
from difforge.scene.data.blocks import Block, BlockDataset
from difforge.scene.data.geometry import BLOCK_SIZE
from difforge.scene.evaluate import (
    ADHERENCE_POINTS,
    POINTS_PER_BLOCK,
    PROTOCOL,
    block_mesh,
    chamfer_matrix,
    distribution_metrics,
    footprint_iou_per_class,
    layout_adherence,
    reconstruction_metrics,
    surface_samples,
)

# Points per block for the paired F-score of retrieved vs query blocks. Fewer than the 100k used for
# reconstructions: k-d tree queries between unrelated blocks are ~100x slower than between a
# reconstruction and its ground truth, and this comparison is a sanity number, not a headline.
PAIRED_POINTS = 10_000


def nearest_by_layout(train_rasters: np.ndarray, query_rasters: np.ndarray) -> np.ndarray:
    """Index of the training raster nearest to each query raster (Hamming distance)."""
    train = train_rasters.reshape(len(train_rasters), -1).astype(np.float32)
    query = query_rasters.reshape(len(query_rasters), -1).astype(np.float32)
    # |a - b| summed = |a| + |b| - 2 a.b for binary vectors.
    dist = query.sum(1)[:, None] + train.sum(1)[None] - 2.0 * query @ train.T
    return dist.argmin(axis=1)


@dataclass
class BlockGeometry:
    """What the protocol samples from one block (all derived from one open mesh)."""

    cloud: np.ndarray  # (2048, 3) block-local, centred
    adherence_points: np.ndarray  # (16384, 3) world
    recon_points: np.ndarray  # (recon_points, 3) block-local, centred
    recon_normals: np.ndarray

    @staticmethod
    def of(block: Block, seed: int, recon_points: int) -> BlockGeometry:
        mesh = block_mesh(block)
        centre = block.origin + BLOCK_SIZE / 2
        if len(mesh.faces) == 0:
            # A generated block can be empty: all its points sit at the block centre (far from
            # any real surface), so it counts against the generator instead of being skipped.
            return BlockGeometry(
                np.zeros((POINTS_PER_BLOCK, 3)),
                np.tile(centre, (ADHERENCE_POINTS, 1)),
                np.zeros((recon_points, 3)),
                np.tile([0.0, 1.0, 0.0], (recon_points, 1)),
            )
        cloud, _ = surface_samples(mesh, POINTS_PER_BLOCK, seed)
        adherence, _ = surface_samples(mesh, ADHERENCE_POINTS, seed)
        points, normals = surface_samples(mesh, recon_points, seed)
        return BlockGeometry(cloud - centre, adherence, points - centre, normals)


_DATASETS: dict[str, BlockDataset] = {}


def _worker_init() -> None:
    ignore_interrupts()  # Ctrl-C: the main process says it in one line
    torch.set_num_threads(1)


def _dataset_geometry(job: tuple[str, int, int, int]) -> tuple[Block, BlockGeometry]:
    path, index, seed, recon_points = job
    dataset = _DATASETS.setdefault(path, BlockDataset(path))
    block = dataset.block(index)
    return block, BlockGeometry.of(block, seed, recon_points)


def _block_geometry(job: tuple[Block, int, int]) -> BlockGeometry:
    block, seed, recon_points = job
    return BlockGeometry.of(block, seed, recon_points)


def evaluate_retrieval(
    train: BlockDataset,
    test: BlockDataset,
    n_eval: int = 100,
    seed: int = 0,
    recon_points: int = PAIRED_POINTS,
    device: str | None = None,
    generators: Mapping[str, Callable[[np.ndarray], np.ndarray]] | None = None,
    workers: int = 1,
) -> dict:
    """Run the retrieval baseline and its references on ``n_eval`` held-out blocks.

    ``generators`` adds methods under the same protocol: each maps the query rasters (n, 9, 32,
    32) to SDF grids (n, R, R, R) in metres at the test set's resolution, placed at the queries.
    ``workers`` > 1 regenerates and samples blocks in that many (spawned) processes.
    """
    if train.manifest.get("seed") is not None and train.manifest.get("seed") == test.manifest.get(
        "seed"
    ):
        raise UserError(
            "train and test datasets were drawn with the same seed: held-out blocks must come "
            "from other rooms (use another --seed for one of them)"
        )
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    n_eval = min(n_eval, len(test), len(train))
    queries = np.sort(rng.choice(len(test), n_eval, replace=False))
    retrieved = nearest_by_layout(train.rasters, test.rasters[queries])
    randoms = np.sort(rng.choice(len(train), n_eval, replace=False))

    pool = (
        ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_worker_init)
        if workers > 1
        else None
    )

    def parallel_map(fn: Callable, jobs: list) -> list:
        return list(pool.map(fn, jobs)) if pool is not None else [fn(job) for job in jobs]

    def geometry(
        dataset: BlockDataset, indices: np.ndarray
    ) -> tuple[list[Block], list[BlockGeometry]]:
        jobs = [(str(dataset.path), int(i), k, recon_points) for k, i in enumerate(indices)]
        pairs = parallel_map(_dataset_geometry, jobs)
        return [b for b, _ in pairs], [g for _, g in pairs]

    try:
        ref_blocks, ref_geo = geometry(test, queries)
        ret_blocks, ret_geo = geometry(train, retrieved)
        rand_blocks, rand_geo = geometry(train, randoms)
        generated = {}
        for name, generate in (generators or {}).items():
            started = time.perf_counter()
            grids = generate(test.rasters[queries])
            seconds = time.perf_counter() - started
            blocks = [Block(b.origin, g, b.layout, b.raster) for b, g in zip(ref_blocks, grids)]
            jobs = [(b, k, recon_points) for k, b in enumerate(blocks)]
            generated[name] = (parallel_map(_block_geometry, jobs), seconds)
    finally:
        if pool is not None:
            pool.shutdown()
    ref_clouds = [g.cloud for g in ref_geo]
    ref_matrix = chamfer_matrix(ref_clouds, device=device)
    query_rasters = test.rasters[queries]
    query_origins = [b.origin for b in ref_blocks]

    def shifted_points(geo: list[BlockGeometry], blocks: list[Block]) -> list[np.ndarray]:
        # Generated geometry is placed in the query block's frame before reading the layout.
        return [g.adherence_points - b.origin + q for g, b, q in zip(geo, blocks, query_origins)]

    def paired_reconstruction(geo: list[BlockGeometry]) -> dict[str, float]:
        rows = [
            reconstruction_metrics(g.recon_points, g.recon_normals, r.recon_points, r.recon_normals)
            for g, r in zip(geo, ref_geo)
        ]
        return {k: float(np.mean([row[k] for row in rows])) for k in rows[0]}

    results = {
        "retrieval (nearest training layout)": {
            "distribution": distribution_metrics(
                [g.cloud for g in ret_geo], ref_clouds, ref_matrix, device
            ),
            "reconstruction_vs_query": paired_reconstruction(ret_geo),
            "layout_adherence": layout_adherence(
                shifted_points(ret_geo, ret_blocks), query_origins, query_rasters
            ),
            "footprint_IoU_per_class": footprint_iou_per_class(
                train.rasters[retrieved], query_rasters
            ),
        },
        "random training blocks (layout ignored)": {
            "distribution": distribution_metrics(
                [g.cloud for g in rand_geo], ref_clouds, ref_matrix, device
            ),
            "reconstruction_vs_query": paired_reconstruction(rand_geo),
            "layout_adherence": layout_adherence(
                shifted_points(rand_geo, rand_blocks),
                query_origins,
                query_rasters,
            ),
            "footprint_IoU_per_class": footprint_iou_per_class(
                train.rasters[randoms], query_rasters
            ),
        },
    }
    for name, (gen_geo, seconds) in generated.items():
        results[name] = {
            "distribution": distribution_metrics(
                [g.cloud for g in gen_geo], ref_clouds, ref_matrix, device
            ),
            "reconstruction_vs_query": paired_reconstruction(gen_geo),
            "layout_adherence": layout_adherence(
                [g.adherence_points for g in gen_geo], query_origins, query_rasters
            ),
            "empty_blocks": int(sum(not g.recon_points.any() for g in gen_geo)),
            "seconds_per_block": seconds / n_eval,
        }
    results |= {
        "held-out geometry itself (ceiling)": {
            "layout_adherence": layout_adherence(
                [g.adherence_points for g in ref_geo], query_origins, query_rasters
            ),
        },
    }
    return {
        "protocol": {
            **PROTOCOL,
            "paired_points_per_block": recon_points,
            "n_generated": n_eval,
            "n_reference": n_eval,
            "reference": f"{test.path} ({len(test)} held-out blocks, {n_eval} drawn with seed {seed})",
            "train": f"{train.path} ({len(train)} blocks)",
            "train_seed": train.manifest.get("seed"),
            "test_seed": test.manifest.get("seed"),
        },
        "methods": results,
        "seconds": time.perf_counter() - start,
    }
