"""Blocks: 3.2 m cubes cut from rooms (or users' meshes), with their SDF grid and layout raster.

A block is what every later stage works on: the tri-plane fitter reads its SDF (grid or analytic),
the diffusion model is conditioned on its layout raster, meshing blends neighbouring blocks' grids.

Dataset folder written by ``write_dataset`` (``difforge-scene dataset``)::

    dataset.json        manifest: format, seed, counts, resolution, truncation, classes, shards
    rooms.jsonl         one room per line (primitives + layout): SDFs can be regenerated exactly
    layouts.jsonl       one block layout per line (difforge-scene-layout/1, block frame)
    blocks_00000.npz    per shard: origin (B, 3) float64, room (B,) int64, raster (B, 9, 32, 32)
                        uint8 and, unless --no-sdf, sdf (B, R, R, R) float16 (truncated, metres)

The folder appears whole or not at all (built beside the target, then renamed).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from difforge.core.errors import UserError
from difforge.core.io import atomic_dir, atomic_open, write_json
from difforge.scene.classes import CLASSES
from difforge.scene.data.geometry import (
    BLOCK_SIZE,
    DEFAULT_RESOLUTION,
    LAYOUT_CELL,
    TRUNCATION,
    block_origin,
    grid_points,
)
from difforge.scene.data.layout import Layout, parse_layout, rasterize_layout
from difforge.scene.data.rooms import Room, RoomConfig, generate_room

DATASET_FORMAT = "difforge-scene-dataset/1"
SHARD_SIZE = 256


class SDFSource(Protocol):
    """Anything with a signed distance in world metres: procedural rooms, users' meshes."""

    def sdf(self, points: torch.Tensor, truncation: float | None = None) -> torch.Tensor: ...


@dataclass
class Block:
    """One block: world minimum corner, SDF grid (R, R, R) at cell centres, layout and raster."""

    origin: np.ndarray
    sdf: np.ndarray
    layout: Layout
    raster: np.ndarray

    @property
    def resolution(self) -> int:
        return self.sdf.shape[0]

    @property
    def voxel(self) -> float:
        return BLOCK_SIZE / self.resolution


def sdf_grid(
    source: SDFSource,
    origin: np.ndarray,
    resolution: int = DEFAULT_RESOLUTION,
    truncation: float = TRUNCATION,
) -> np.ndarray:
    """Truncated SDF of ``source`` on the block grid at ``origin``: (R, R, R) float32."""
    points = grid_points(origin, resolution)
    with torch.no_grad():
        values = source.sdf(points, truncation)
    return values.reshape(resolution, resolution, resolution).cpu().numpy().astype(np.float32)


def extract_block(
    room: Room,
    x: float,
    z: float,
    resolution: int = DEFAULT_RESOLUTION,
    truncation: float = TRUNCATION,
) -> Block:
    """The block of ``room`` whose xz minimum corner is (x, z)."""
    origin = block_origin(x, z)
    layout = room.layout.crop(x, z)
    return Block(
        origin, sdf_grid(room, origin, resolution, truncation), layout, rasterize_layout(layout)
    )


def sample_block_corners(room: Room, n: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    """``n`` random block corners whose block centres lie inside the room's inner footprint."""
    corners: list[tuple[float, float]] = []
    while len(corners) < n:
        cx, cz = rng.uniform(0.0, room.width), rng.uniform(0.0, room.depth)
        if room.notch[0] and not _on_floor(room, cx, cz):
            continue
        corners.append((float(cx - BLOCK_SIZE / 2), float(cz - BLOCK_SIZE / 2)))
    return corners


def _on_floor(room: Room, x: float, z: float) -> bool:
    """Whether (x, z) lies over a floor slab (L-shaped rooms have a corner without floor)."""
    return any(
        b.cls == "floor" and b.min[0] <= x <= b.max[0] and b.min[2] <= z <= b.max[2]
        for b in room.layout.boxes
    )


def room_seed(seed: int, index: int) -> int:
    """Seed of room ``index`` in a dataset drawn with ``seed`` (independent streams)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def iter_dataset_blocks(
    n_blocks: int,
    seed: int,
    blocks_per_room: int,
    config: RoomConfig | None = None,
) -> Iterator[tuple[int, Room, tuple[float, float]]]:
    """(room index, room, block corner) for the first ``n_blocks`` blocks of a seeded dataset."""
    count, index = 0, 0
    while count < n_blocks:
        room = generate_room(room_seed(seed, index), config)
        rng = np.random.default_rng([seed, index, 1])
        for corner in sample_block_corners(room, min(blocks_per_room, n_blocks - count), rng):
            yield index, room, corner
            count += 1
        index += 1


def write_dataset(
    out_dir: str | os.PathLike[str],
    n_blocks: int,
    seed: int,
    resolution: int = DEFAULT_RESOLUTION,
    blocks_per_room: int = 8,
    with_sdf: bool = True,
    truncation: float = TRUNCATION,
    overwrite: bool = False,
) -> Path:
    """Generate ``n_blocks`` procedural blocks into ``out_dir`` (see the module docstring); an
    existing non-empty ``out_dir`` is replaced only with ``overwrite``."""
    if n_blocks < 1:
        raise UserError(f"--n must be at least 1, got {n_blocks}")
    if resolution < 8:
        raise UserError(f"--resolution must be at least 8, got {resolution}")
    if blocks_per_room < 1:
        raise UserError(f"--blocks-per-room must be at least 1, got {blocks_per_room}")
    with dataset_writer(out_dir, with_sdf, overwrite) as writer:
        last_room = -1
        for index, room, (x, z) in iter_dataset_blocks(n_blocks, seed, blocks_per_room):
            if index != last_room:
                writer.add_room(room.to_json())
                last_room = index
            origin = block_origin(x, z)
            grid = sdf_grid(room, origin, resolution, truncation) if with_sdf else None
            writer.add_block(origin, room.layout.crop(x, z), grid, index)
        writer.manifest.update(
            generator="difforge.scene procedural rooms",
            seed=seed,
            blocks_per_room=blocks_per_room,
            resolution=resolution,
            truncation=truncation,
        )
    return Path(out_dir)


class DatasetWriter:
    """Appends rooms and blocks to a dataset folder under construction (see the module docstring)."""

    def __init__(self, folder: Path, with_sdf: bool) -> None:
        self.folder = folder
        self.with_sdf = with_sdf
        self.shards: list[str] = []
        self.n_rooms = 0
        self.n_blocks = 0
        self.manifest: dict = {}
        self._shard: dict[str, list] = {"origin": [], "room": [], "raster": [], "sdf": []}
        self._rooms = open(folder / "rooms.jsonl", "w", encoding="utf-8")  # noqa: SIM115
        self._layouts = open(folder / "layouts.jsonl", "w", encoding="utf-8")  # noqa: SIM115

    def add_room(self, room_json: dict) -> int:
        self._rooms.write(json.dumps(room_json) + "\n")
        self.n_rooms += 1
        return self.n_rooms - 1

    def add_block(
        self, origin: np.ndarray, layout: Layout, sdf: np.ndarray | None, room_index: int
    ) -> None:
        """One block; ``room_index`` -1 for blocks not regenerable from a room (users' meshes)."""
        if self.with_sdf != (sdf is not None):
            raise ValueError("every block needs an SDF grid exactly when the dataset stores them")
        self._layouts.write(json.dumps(layout.to_json()) + "\n")
        self._shard["origin"].append(origin)
        self._shard["room"].append(room_index)
        self._shard["raster"].append(rasterize_layout(layout))
        if sdf is not None:
            self._shard["sdf"].append(sdf)
        self.n_blocks += 1
        if len(self._shard["origin"]) == SHARD_SIZE:
            self._flush()

    def _flush(self) -> None:
        name = f"blocks_{len(self.shards):05d}.npz"
        arrays = {
            "origin": np.asarray(self._shard["origin"], dtype=np.float64),
            "room": np.asarray(self._shard["room"], dtype=np.int64),
            "raster": np.asarray(self._shard["raster"], dtype=np.uint8),
        }
        if self.with_sdf:
            arrays["sdf"] = np.asarray(self._shard["sdf"], dtype=np.float16)
        with atomic_open(self.folder / name, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        self.shards.append(name)
        for values in self._shard.values():
            values.clear()

    def close_files(self) -> None:
        self._rooms.close()
        self._layouts.close()

    def finish(self) -> None:
        """Flush the last shard and write the manifest (last, so its presence means complete)."""
        if self._shard["origin"]:
            self._flush()
        self.close_files()
        write_json(
            self.folder / "dataset.json",
            {
                "format": DATASET_FORMAT,
                "n_blocks": self.n_blocks,
                "n_rooms": self.n_rooms,
                "block_size": BLOCK_SIZE,
                "sdf_stored": self.with_sdf,
                "layout_cell": LAYOUT_CELL,
                "classes": list(CLASSES),
                "shards": self.shards,
                **self.manifest,
            },
        )


@contextlib.contextmanager
def dataset_writer(
    out_dir: str | os.PathLike[str], with_sdf: bool, overwrite: bool = False
) -> Iterator[DatasetWriter]:
    """A DatasetWriter on a hidden folder beside ``out_dir``, renamed onto it only on success.
    An existing non-empty folder is replaced only with ``overwrite``."""
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        writer = DatasetWriter(tmp, with_sdf)
        try:
            yield writer
            writer.finish()
        finally:
            writer.close_files()


class BlockDataset:
    """Read a dataset folder; SDF grids come from the shards or are regenerated from the rooms."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        manifest = self.path / "dataset.json"
        try:
            self.manifest = json.loads(manifest.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{self.path} is not a dataset folder (no dataset.json)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UserError(f"{manifest} is corrupt: {exc}") from None
        except RecursionError:
            raise UserError(f"{manifest} is corrupt: nested too deeply") from None
        if not isinstance(self.manifest, dict) or self.manifest.get("format") != DATASET_FORMAT:
            raise UserError(f"{manifest} is not a {DATASET_FORMAT} manifest")
        self.resolution = int(self.manifest["resolution"])
        self.truncation = float(self.manifest["truncation"])
        arrays = [self._load_shard(name, with_sdf=False) for name in self.manifest["shards"]]
        self.origins = np.concatenate([a["origin"] for a in arrays])
        self.room_index = np.concatenate([a["room"] for a in arrays])
        self.rasters = np.concatenate([a["raster"] for a in arrays])
        if len(self.origins) != self.manifest["n_blocks"]:
            raise UserError(
                f"{self.path}: shards hold {len(self.origins)} blocks, manifest says {self.manifest['n_blocks']}"
            )
        self._rooms: list[Room] | None = None
        self._layouts: list[Layout] | None = None
        self._shard_cache: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.origins)

    def _load_shard(self, name: str, with_sdf: bool) -> dict[str, np.ndarray]:
        try:
            with np.load(self.path / name, allow_pickle=False) as data:
                keys = ["origin", "room", "raster"] + (["sdf"] if with_sdf else [])
                return {k: data[k] for k in keys}
        except (OSError, KeyError, ValueError) as exc:
            raise UserError(f"{self.path / name} is missing or corrupt: {exc}") from None

    @property
    def rooms(self) -> list[Room]:
        if self._rooms is None:
            with open(self.path / "rooms.jsonl", encoding="utf-8") as fh:
                self._rooms = [Room.from_json(json.loads(line)) for line in fh]
        return self._rooms

    @property
    def layouts(self) -> list[Layout]:
        if self._layouts is None:
            with open(self.path / "layouts.jsonl", encoding="utf-8") as fh:
                self._layouts = [parse_layout(json.loads(line), "dataset layout") for line in fh]
        return self._layouts

    def room(self, i: int) -> Room:
        index = int(self.room_index[i])
        if index < 0:
            raise UserError(f"block {i} of {self.path} comes from a mesh, not a procedural room")
        return self.rooms[index]

    def block(self, i: int, resolution: int | None = None) -> Block:
        """Block ``i``; stored SDF when it exists at that resolution, else regenerated exactly."""
        resolution = resolution or self.resolution
        origin = self.origins[i]
        if self.manifest["sdf_stored"] and resolution == self.resolution:
            shard, offset = divmod(i, SHARD_SIZE)
            if self._shard_cache is None or self._shard_cache[0] != shard:
                sdf = self._load_shard(self.manifest["shards"][shard], with_sdf=True)["sdf"]
                self._shard_cache = (shard, sdf)
            grid = self._shard_cache[1][offset].astype(np.float32)
        else:
            grid = sdf_grid(self.room(i), origin, resolution, self.truncation)
        return Block(origin.copy(), grid, self.layouts[i], self.rasters[i])


def _scene_room(
    seed: int, blocks_x: int, blocks_z: int, stride: float, resolution: int
) -> tuple[Room, float, float, float, float]:
    """A room sized to fill the block grid, the grid's corner (x0, z0) and span in its frame."""
    if blocks_x < 1 or blocks_z < 1:
        raise UserError(f"a scene needs at least 1x1 blocks, got {blocks_x}x{blocks_z}")
    voxel = BLOCK_SIZE / resolution
    if abs(stride / voxel - round(stride / voxel)) > 1e-6:
        raise UserError(f"stride {stride} m is not a multiple of the voxel size {voxel:g} m")
    span_x = BLOCK_SIZE + (blocks_x - 1) * stride
    span_z = BLOCK_SIZE + (blocks_z - 1) * stride
    # Leave room for the thickest wall (0.2 m) on both sides plus a 5 cm margin.
    inner = (span_x - 0.45, span_z - 0.45)
    room = generate_room(seed, RoomConfig(size=inner))
    return room, (inner[0] - span_x) / 2, (inner[1] - span_z) / 2, span_x, span_z


def room_scene(
    seed: int,
    blocks_x: int = 2,
    blocks_z: int = 2,
    stride: float = 2.4,
    resolution: int = DEFAULT_RESOLUTION,
) -> tuple[Room, list[Block]]:
    """A procedural room sized to fill a grid of overlapping blocks, and those blocks.

    The scene spans BLOCK_SIZE + (n - 1) * stride per axis; the room (walls included) is centred in
    it. Blocks are listed x-major and share one voxel lattice, ready for ``mesh_blocks``.
    """
    room, x0, z0, _, _ = _scene_room(seed, blocks_x, blocks_z, stride, resolution)
    blocks = [
        extract_block(room, x0 + i * stride, z0 + j * stride, resolution)
        for i in range(blocks_x)
        for j in range(blocks_z)
    ]
    return room, blocks


def room_scene_layout(
    seed: int, blocks_x: int = 2, blocks_z: int = 2, stride: float = 2.4
) -> Layout:
    """The layout of ``room_scene``'s room over the block grid, in the grid's frame (extent from
    (0, 0) to the span): a procedural plan for generating a scene of that many blocks."""
    room, x0, z0, span_x, span_z = _scene_room(seed, blocks_x, blocks_z, stride, DEFAULT_RESOLUTION)
    return room.layout.crop(x0, z0, span_x, span_z)
