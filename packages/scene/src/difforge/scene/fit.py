"""Tri-plane fitting: blocks' SDFs -> per-block tri-planes with one shared decoder (batched torch).

Two stages as in BlockFusion: fit the decoder and the planes of a first set of blocks together
(``train_decoder=True``), then freeze the decoder and fit only the planes of every other block.
Losses and weights are BlockFusion's: L1 on SDF samples (x50), |f| on the surface (x100), normal
alignment on the surface (x5), eikonal on samples within the truncation band (x2); plus NFD's total
variation (x1) and L2 (x1e-4) on the planes. The TV weight was chosen by a sweep
(RESULTS.md, "Tri-plane fitting"): without it the planes memorise the target points and leave spurious surfaces between them. Gradients are central
differences (see ``triplane.central_gradient``).

Targets come from any SDF source (procedural rooms: exact; users' meshes: libigl): surface points
are marching-cubes samples projected onto the exact surface, normals are the source's SDF gradient,
space samples are half uniform in the block, half near the surface (1 and 5 cm noise).
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import trimesh
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from scipy.interpolate import RegularGridInterpolator

from difforge.core.errors import UserError
from difforge.core.io import atomic_dir, atomic_path, write_json
from difforge.core.workers import ignore_interrupts
from difforge.scene.data.blocks import Block, BlockDataset, SDFSource
from difforge.scene.data.geometry import BLOCK_SIZE, NORMALISE_SCALE, TRUNCATION, grid_points
from difforge.scene.evaluate import reconstruction_metrics, surface_samples
from difforge.scene.meshing import mesh_from_sdf
from difforge.scene.triplane import TriPlaneDecoder, central_gradient, init_planes, load_decoder

# Step (metres) of the central differences taken on the source SDF for exact normals.
_SOURCE_STEP = 1e-4
_EVAL_SEED = 1_000_003


@dataclass
class FitConfig:
    """Tri-plane fitting settings (defaults: the design note's 3 x 16 x 64 x 64, 5 cm texels)."""

    channels: int = 16
    resolution: int = 64
    hidden: int = 128
    layers: int = 3
    iterations: int = 500
    lr_planes: float = 5e-2
    lr_decoder: float = 1e-3
    points_per_step: int = 4096
    w_sdf: float = 50.0
    w_surface: float = 100.0
    w_normal: float = 5.0
    w_eikonal: float = 2.0
    w_tv: float = 1.0
    w_l2: float = 1e-4
    gradient_eps: float = 1e-3
    seed: int = 0


@dataclass
class Supervision:
    """Fitting targets of B blocks in normalised coordinates ([-1, 1]^3, SDF x 0.625)."""

    surface: torch.Tensor  # (B, S, 3)
    normals: torch.Tensor  # (B, S, 3)
    space: torch.Tensor  # (B, Q, 3)
    space_sdf: torch.Tensor  # (B, Q)

    def to(self, device: torch.device | str) -> Supervision:
        return Supervision(*(getattr(self, f).to(device) for f in SUPERVISION_FIELDS))

    @staticmethod
    def stack(items: list[Supervision]) -> Supervision:
        return Supervision(*(torch.cat([getattr(s, f) for s in items]) for f in SUPERVISION_FIELDS))


SUPERVISION_FIELDS = ("surface", "normals", "space", "space_sdf")


def exact_surface_samples(
    source: SDFSource, block: Block, n: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points on the source's exact surface in a block, with unit normals (world metres).

    Sampled on the block's marching-cubes mesh, then moved onto the zero level set by two Newton
    steps along the source's SDF gradient.
    """
    mesh = mesh_from_sdf(block.sdf, block.origin, block.voxel, close=False)
    points, _ = surface_samples(mesh, n, seed)
    for _ in range(2):
        value, normal = _sdf_and_normal(source, points)
        points = points - value[:, None] * normal
    _, normal = _sdf_and_normal(source, points)
    return points, normal


def _sdf_and_normal(source: SDFSource, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.concatenate(
        [np.zeros((1, 3)), np.eye(3) * _SOURCE_STEP, -np.eye(3) * _SOURCE_STEP]
    )
    queries = (points[:, None, :] + offsets[None]).reshape(-1, 3)
    with torch.no_grad():
        values = source.sdf(torch.as_tensor(queries, dtype=torch.float64), TRUNCATION)
    values = values.numpy().reshape(len(points), 7)
    gradient = (values[:, 1:4] - values[:, 4:7]) / (2 * _SOURCE_STEP)
    norm = np.linalg.norm(gradient, axis=1, keepdims=True)
    return values[:, 0], gradient / np.maximum(norm, 1e-12)


def block_supervision(
    source: SDFSource, block: Block, n_surface: int = 16384, n_space: int = 16384, seed: int = 0
) -> Supervision:
    """Targets for one block (B = 1)."""
    rng = np.random.default_rng(seed)
    surface, normals = exact_surface_samples(source, block, n_surface, seed)
    uniform = block.origin + rng.random((n_space // 2, 3)) * BLOCK_SIZE
    base = surface[rng.integers(len(surface), size=n_space - n_space // 2)]
    sigma = rng.choice([0.01, 0.05], size=(len(base), 1))
    near = np.clip(
        base + rng.normal(size=base.shape) * sigma, block.origin, block.origin + BLOCK_SIZE
    )
    space = np.concatenate([uniform, near])
    with torch.no_grad():
        space_sdf = source.sdf(torch.as_tensor(space, dtype=torch.float64), TRUNCATION).numpy()
    centre = block.origin + BLOCK_SIZE / 2

    def normalised(p: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((p - centre) * NORMALISE_SCALE, dtype=torch.float32)[None]

    return Supervision(
        surface=normalised(surface),
        normals=torch.as_tensor(normals, dtype=torch.float32)[None],
        space=normalised(space),
        space_sdf=torch.as_tensor(space_sdf * NORMALISE_SCALE, dtype=torch.float32)[None],
    )


class GridSDF:
    """Trilinear interpolation of a block's stored SDF grid: the fitting target for blocks that
    have no exact source (users' meshes once converted)."""

    def __init__(self, block: Block) -> None:
        axis = (np.arange(block.resolution) + 0.5) * block.voxel
        self._interpolate = RegularGridInterpolator(
            tuple(axis + o for o in block.origin), block.sdf, bounds_error=False, fill_value=None
        )
        self._limit = float(np.abs(block.sdf).max())

    def sdf(self, points: torch.Tensor, truncation: float | None = None) -> torch.Tensor:
        values = self._interpolate(points.detach().cpu().numpy())
        bound = self._limit if truncation is None else min(truncation, self._limit)
        return torch.as_tensor(np.clip(values, -bound, bound), dtype=points.dtype)


def dataset_supervision(
    dataset: BlockDataset,
    indices: list[int],
    n_surface: int = 16384,
    n_space: int = 16384,
    workers: int = 1,
) -> tuple[Supervision, list[Block], list[SDFSource]]:
    """Targets for dataset blocks (exact for procedural rooms, interpolated grids otherwise)."""
    jobs = [(str(dataset.path), i, n_surface, n_space) for i in indices]
    if workers > 1:
        with ProcessPoolExecutor(workers, initializer=_worker_init) as pool:
            parts = list(pool.map(_supervise, jobs))
    else:
        parts = [_supervise(job) for job in jobs]
    blocks = [dataset.block(i) for i in indices]
    return (
        Supervision.stack(parts),
        blocks,
        [block_source(dataset, i, b) for i, b in zip(indices, blocks)],
    )


def block_source(dataset: BlockDataset, index: int, block: Block) -> SDFSource:
    """The exact SDF of a dataset block: its procedural room, or its stored grid (meshes)."""
    return dataset.room(index) if dataset.room_index[index] >= 0 else GridSDF(block)


_DATASETS: dict[str, BlockDataset] = {}


def _worker_init() -> None:
    ignore_interrupts()  # Ctrl-C: the main process says it in one line
    torch.set_num_threads(1)


def _supervise(job: tuple[str, int, int, int]) -> Supervision:
    path, index, n_surface, n_space = job
    dataset = _DATASETS.setdefault(path, BlockDataset(path))
    block = dataset.block(index)
    return block_supervision(
        block_source(dataset, index, block), block, n_surface, n_space, seed=index
    )


def fit_triplanes(
    supervision: Supervision,
    decoder: TriPlaneDecoder,
    config: FitConfig,
    train_decoder: bool,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, list[dict[str, float]]]:
    """Fit planes (B, 3, C, R, R) to the supervision; optionally the decoder too (stage 1).

    Returns the planes (on CPU) and a loss history (every tenth of the run).
    """
    generator = torch.Generator().manual_seed(config.seed)
    sup = supervision.to(device)
    n_blocks = len(sup.surface)
    planes = init_planes(n_blocks, config.channels, config.resolution, generator).to(device)
    planes.requires_grad_(True)
    decoder.to(device).train(train_decoder)
    decoder.requires_grad_(train_decoder)
    groups = [{"params": [planes], "lr": config.lr_planes}]
    if train_decoder:
        groups.append({"params": list(decoder.parameters()), "lr": config.lr_decoder})
    optimiser = torch.optim.Adam(groups)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser,
        lambda i: 1e-3 + (1 - 1e-3) * 0.5 * (1 + math.cos(math.pi * i / config.iterations)),
    )
    band = TRUNCATION * NORMALISE_SCALE
    history = []
    k = config.points_per_step
    for step in range(config.iterations):
        i_s = torch.randint(sup.surface.shape[1], (n_blocks, k), generator=generator).to(device)
        i_q = torch.randint(sup.space.shape[1], (n_blocks, k), generator=generator).to(device)
        surface = torch.gather(sup.surface, 1, i_s[..., None].expand(-1, -1, 3))
        normals = torch.gather(sup.normals, 1, i_s[..., None].expand(-1, -1, 3))
        space = torch.gather(sup.space, 1, i_q[..., None].expand(-1, -1, 3))
        target = torch.gather(sup.space_sdf, 1, i_q)
        pred = decoder(planes, space)
        # Truncated targets only say "at least band away": penalise falling short of it, never
        # clamp the prediction (a clamp has no gradient, so a wrong sign far out would stay).
        truncated = target.abs() >= band * (1 - 1e-4)
        shortfall = torch.relu(band - pred * torch.sign(target))
        loss_sdf = torch.where(truncated, shortfall, (pred - target).abs()).mean()
        loss_surface = decoder(planes, surface).abs().mean()
        grad_surface = central_gradient(decoder, planes, surface, config.gradient_eps)
        loss_normal = (1 - torch.cosine_similarity(grad_surface, normals, dim=-1)).mean()
        grad_space = central_gradient(decoder, planes, space, config.gradient_eps)
        inside_band = (target.abs() < band).float()
        eikonal = (
            (grad_space.norm(dim=-1) - 1).square() * inside_band
        ).sum() / inside_band.sum().clamp(min=1)
        tv = sum((planes.diff(dim=d)).square().mean() for d in (-1, -2))
        loss = (
            config.w_sdf * loss_sdf
            + config.w_surface * loss_surface
            + config.w_normal * loss_normal
            + config.w_eikonal * eikonal
            + config.w_tv * tv
            + config.w_l2 * planes.square().mean()
        )
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % max(1, config.iterations // 10) == 0 or step == config.iterations - 1:
            history.append(
                {
                    "step": step,
                    "loss": loss.item(),
                    "sdf_l1_m": loss_sdf.item() / NORMALISE_SCALE,
                    "surface_m": loss_surface.item() / NORMALISE_SCALE,
                    "normal": loss_normal.item(),
                    "eikonal": eikonal.item(),
                }
            )
    decoder.requires_grad_(True)
    return planes.detach().cpu(), history


@torch.no_grad()
def decode_grids(
    decoder: TriPlaneDecoder,
    planes: torch.Tensor,
    resolution: int = 64,
    device: torch.device | str = "cpu",
    chunk: int = 65536,
) -> np.ndarray:
    """Decoded SDF grids (B, R, R, R) in metres on the block sample grid (as ``Block.sdf``)."""
    decoder.to(device).eval()
    centre = np.full(3, -BLOCK_SIZE / 2)
    points = (grid_points(centre, resolution) * NORMALISE_SCALE).to(device)
    grids = []
    for p in planes:
        p = p[None].to(device)
        values = [decoder(p, part[None])[0] for part in points.split(chunk)]
        grids.append(torch.cat(values).reshape(resolution, resolution, resolution).cpu().numpy())
    return np.stack(grids) / NORMALISE_SCALE


def reconstruction_report(
    grids: np.ndarray,
    blocks: list[Block],
    sources: list[SDFSource],
    n_points: int = 100_000,
) -> dict[str, float]:
    """Mean reconstruction metrics of decoded grids against the sources' exact surfaces.

    Blocks whose decoded grid has no surface at all are counted, not averaged.
    """
    rows = []
    for k, (grid, block, source) in enumerate(zip(grids, blocks, sources)):
        mesh = mesh_from_sdf(grid, block.origin, block.voxel, close=False)
        if len(mesh.faces) == 0:
            continue
        # Seeds apart from the fitting targets' (seed = block index), so no point is shared.
        gt_points, gt_normals = exact_surface_samples(source, block, n_points, seed=_EVAL_SEED + k)
        points, faces = trimesh.sample.sample_surface(mesh, n_points, seed=_EVAL_SEED + k)
        rows.append(reconstruction_metrics(points, mesh.face_normals[faces], gt_points, gt_normals))
    report: dict[str, float] = {"empty_reconstructions": len(grids) - len(rows)}
    if rows:
        report.update({key: float(np.mean([r[key] for r in rows])) for key in rows[0]})
    return report


def save_fit(
    out_dir: str | os.PathLike[str],
    decoder: TriPlaneDecoder,
    planes: torch.Tensor,
    origins: np.ndarray,
    config: FitConfig,
    report: dict,
    surface: torch.Tensor | None = None,
) -> Path:
    """Write decoder/ (config.json + safetensors), planes.safetensors and fit.json into out_dir.

    ``surface`` (B, S, 3), normalised surface samples of each block, is stored beside the planes:
    the VAE's SDF loss reads the raw planes' SDF near them.
    """
    out = Path(out_dir)
    decoder.save_pretrained(out / "decoder")
    tensors = {"planes": planes.contiguous(), "origins": torch.as_tensor(origins)}
    if surface is not None:
        tensors["surface"] = surface.contiguous()
    with atomic_path(out / "planes.safetensors") as tmp:
        save_file(tensors, str(tmp))
    write_json(out / "fit.json", {"config": asdict(config), **report})
    return out


@dataclass(frozen=True)
class FitRun:
    """How :func:`fit_dataset` prepares targets and reports (the fit itself is a FitConfig)."""

    surface_points: int = 200_000  # target bank per block
    space_points: int = 200_000
    workers: int = 1  # processes preparing the targets
    chunk_blocks: int = 256  # blocks fitted together under a frozen decoder
    eval_blocks: int = 8  # blocks meshed for the reconstruction report
    eval_points: int = 100_000  # points per side of that report
    keep_surface: int = 4096  # surface samples stored per block for the VAE's SDF loss


def fit_dataset(
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    config: FitConfig,
    run: FitRun = FitRun(),
    *,
    first: int | None = None,
    decoder_dir: str | os.PathLike[str] | None = None,
    device: torch.device | str = "cpu",
    overwrite: bool = False,
) -> dict:
    """Fit the planes of a dataset's first ``first`` blocks (None: all) into the fit folder
    ``out_dir`` (an existing non-empty one is replaced only with ``overwrite``), training a new
    decoder with them or, with ``decoder_dir``, under that frozen decoder (whose sizes then
    replace the config's). Returns the report written to fit.json."""
    dataset = BlockDataset(data_dir)
    n = len(dataset) if first is None else min(first, len(dataset))
    if decoder_dir is not None:
        decoder = load_decoder(decoder_dir)
        sizes = {k: decoder.config[k] for k in ("channels", "hidden", "layers")}
        config = replace(config, **sizes)
    else:
        decoder = TriPlaneDecoder(
            channels=config.channels, hidden=config.hidden, layers=config.layers
        )
    start = time.perf_counter()
    sup, blocks, sources = dataset_supervision(
        dataset, list(range(n)), run.surface_points, run.space_points, run.workers
    )
    prepared = time.perf_counter()
    # Stage 1 fits everything at once (the decoder sees all blocks); stage 2 fits the planes of
    # independent chunks of blocks, so memory does not grow with the dataset.
    chunk = n if decoder_dir is None else run.chunk_blocks
    parts, history = [], []
    for lo in range(0, n, chunk):
        part = Supervision(*(getattr(sup, f)[lo : lo + chunk] for f in SUPERVISION_FIELDS))
        planes_part, history = fit_triplanes(part, decoder, config, decoder_dir is None, device)
        parts.append(planes_part)
    planes = torch.cat(parts)
    fitted = time.perf_counter()
    k = min(run.eval_blocks, n)
    grids = decode_grids(decoder, planes[:k], dataset.resolution, device)
    device = torch.device(device)
    report = {
        "blocks": n,
        "data": str(Path(data_dir).resolve()),
        "stage": "decoder + planes" if decoder_dir is None else "planes only (frozen decoder)",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else str(device),
        "seconds_supervision": prepared - start,
        "seconds_fit": fitted - prepared,
        "history": history,
        f"reconstruction_first_{k}_blocks": reconstruction_report(
            grids, blocks[:k], sources[:k], run.eval_points
        ),
    }
    # Surface samples kept for the VAE's SDF loss (a random subset per block).
    keep = torch.randperm(sup.surface.shape[1], generator=torch.Generator().manual_seed(0))
    surface = sup.surface[:, keep[: run.keep_surface]]
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        save_fit(tmp, decoder, planes, dataset.origins[:n], config, report, surface)
    return report


def load_planes(path: str | os.PathLike[str]) -> tuple[torch.Tensor, np.ndarray]:
    """Planes (B, 3, C, R, R) and block origins (B, 3) from a planes.safetensors file."""
    tensors = load_plane_file(path)
    return tensors["planes"], tensors["origins"].numpy()


def load_plane_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Every tensor of a planes.safetensors file (planes, origins and, if fitted so, surface)."""
    try:
        tensors = load_file(str(path))
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        raise UserError(f"{path} is not a tri-plane file: {exc}") from None
    if "planes" not in tensors or "origins" not in tensors:
        raise UserError(f"{path} is not a tri-plane file (no planes/origins)")
    return tensors
