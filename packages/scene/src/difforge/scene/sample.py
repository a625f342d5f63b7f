"""Generating blocks and expandable scenes with a trained :class:`~difforge.scene.model.SceneModel`.

- A block with no generated neighbour is sampled from noise with the layout condition and
  classifier-free guidance (the core ``sample`` loop, a diffusers DPM-Solver++ by default).
- A block next to existing ones is **inpainted** (RePaint, Lugmayr et al. 2022, with diffusers'
  ``RePaintScheduler``): the neighbours' latents over the 0.8 m overlap are forward-noised and
  written into the new block's latent at every step, with jumps back in time (``jump_length``,
  ``jump_n_sample``) so the generated part harmonises with them. As in BlockFusion, only the
  planes that contain the shift axis share the overlap (xy and xz for a shift along x, xz and yz
  along z); the third plane is block-private.
- Each block's latent is decoded (VAE -> tri-planes -> shared MLP) to an SDF grid; overlapping
  grids are blended with a partition of unity and meshed in one marching-cubes pass, so the
  scene has no seam. Blocks remember the stage that made them (``generate`` 0, each ``expand``
  one more): a later stage extends the field and changes what exists only within
  ``meshing.SEAM_BAND`` of the seam (``meshing.blend_sdf_stages``), so expansion never rewrites
  the scene the user already has.

Scene folder (``difforge-scene-scene/1``, written atomically)::

    scene.json            format, blocks [[ix, iz], ...], corner [x, z] of block (0, 0), stride,
                          seed, model name, layout file or null, mesh file, stages [s, ...]
                          (the stage of each block; absent: all 0)
    latents.safetensors   latents (N, 3, Z, r, r) float32, in the order of scene.json's blocks
    layout.json           the world-frame layout the blocks were conditioned on (if any)
    scene.glb             the blended mesh (expand writes it; generate writes SCENE.glb beside)
    scene.html            a 3D viewer of scene.glb's mesh (self-contained: opens from disk)

Block (ix, iz) spans x in corner_x + ix * stride + [0, 3.2] m, likewise z, y in [-0.15, 3.05].
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import trimesh
from diffusers import RePaintScheduler
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from difforge.core.cli import progress
from difforge.core.diffusion.guidance import guided
from difforge.core.diffusion.sampling import sample
from difforge.core.errors import UserError
from difforge.core.io import atomic_dir, atomic_path, write_json
from difforge.scene.classes import NUM_CLASSES
from difforge.scene.data.blocks import Block
from difforge.scene.data.geometry import BLOCK_SIZE, LAYOUT_CELLS, block_origin
from difforge.scene.data.layout import Layout, parse_layout, rasterize_layout
from difforge.scene.fit import decode_grids
from difforge.scene.meshing import (
    blend_block_stages,
    colour_by_geometry,
    mesh_from_sdf,
    remove_fragments,
)
from difforge.scene.model import (
    SamplingConfig,
    SceneModel,
    epsilon_from_v,
    layout_condition,
    representation,
)

SCENE_FORMAT = "difforge-scene-scene/1"
SCENE_FILES = frozenset(
    ("scene.json", "latents.safetensors", "layout.json", "scene.glb", "scene.html", "scene.png")
)
DIRECTIONS = {"+x": (1, 0), "-x": (-1, 0), "+z": (0, 1), "-z": (0, -1)}
# Planes that contain each horizontal axis (x = 0, z = 2) and the tensor dim of that axis in them:
# xy (rows y, cols x), xz (rows z, cols x), yz (rows z, cols y); dims of (B, 3, Z, rows, cols).
_SHARED_PLANES = {0: ((0, -1), (1, -1)), 2: ((1, -2), (2, -2))}


class SceneGenerator:
    """A model on a device with its sampling settings: latents from layouts, grids from latents."""

    def __init__(
        self,
        model: SceneModel,
        device: torch.device | str = "cpu",
        sampling: SamplingConfig | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.sampling = sampling or model.sampling
        self.diffusion = model.diffusion
        cfg = self.diffusion.config
        self.latent_shape = (3, cfg.latent_channels, cfg.latent_resolution, cfg.latent_resolution)
        self.scheduler = self.sampling.schedule.scheduler(self.sampling.sampler)
        overlap = (BLOCK_SIZE - self.sampling.stride) / BLOCK_SIZE * cfg.latent_resolution
        if abs(overlap - round(overlap)) > 1e-6:
            raise UserError(
                f"stride {self.sampling.stride} m does not leave a whole number of latent texels "
                f"of overlap ({overlap:.2f} of {cfg.latent_resolution})"
            )
        self.overlap_texels = round(overlap)

    def _layout(self, rasters: np.ndarray) -> torch.Tensor:
        return layout_condition(rasters, self.latent_shape[-1]).to(self.device)

    @torch.no_grad()
    def sample_latents(self, rasters: np.ndarray, seed: int) -> torch.Tensor:
        """Latents (B, 3, Z, r, r) for layout rasters (B, 9, 32, 32); all-zero = unconditional."""
        layout = self._layout(rasters)
        tokens = sample(
            self.diffusion,
            self.scheduler,
            (len(rasters), *self.diffusion.token_shape),
            num_inference_steps=self.sampling.steps,
            condition={"layout": layout},
            uncondition={"layout": torch.zeros_like(layout)},
            guidance_scale=self.sampling.guidance_scale,
            generator=torch.Generator().manual_seed(seed),
            device=self.device,
        )
        return self.diffusion.tokens_to_latents(tokens).cpu()

    @torch.no_grad()
    def inpaint_latents(
        self, rasters: np.ndarray, known: torch.Tensor, mask: torch.Tensor, seed: int
    ) -> torch.Tensor:
        """RePaint: latents that keep ``known`` (B, 3, Z, r, r) where ``mask`` (B, 3, 1, r, r)
        is 1 and are generated elsewhere, conditioned on the layout."""
        cfg = self.sampling
        diffusion = self.diffusion
        scheduler = RePaintScheduler(
            num_train_timesteps=cfg.schedule.num_train_timesteps,
            beta_schedule=cfg.schedule.beta_schedule,
            eta=cfg.repaint_eta,
            clip_sample=False,
        )
        scheduler.set_timesteps(cfg.repaint_steps, cfg.jump_length, cfg.jump_n_sample, self.device)
        generator = torch.Generator().manual_seed(seed)  # CPU: same draws on every device
        layout = self._layout(rasters)
        original = diffusion.latents_to_tokens(known.to(self.device))
        token_mask = diffusion.token_mask(mask.to(self.device))
        x = torch.randn((len(rasters), *diffusion.token_shape), generator=generator).to(self.device)
        alphas = scheduler.alphas_cumprod.to(self.device)
        # Plain ints for the scheduler: it indexes CPU tables with the timestep.
        t_last = int(scheduler.timesteps[0]) + 1
        for t in (int(t) for t in scheduler.timesteps):
            if t < t_last:
                v = guided(
                    diffusion,
                    x,
                    torch.full((len(x),), t, device=self.device),
                    {"layout": layout},
                    {"layout": torch.zeros_like(layout)},
                    cfg.guidance_scale,
                )
                eps = epsilon_from_v(v, x, alphas[t])
                x = scheduler.step(eps, t, x, original, token_mask, generator).prev_sample
            else:
                x = scheduler.undo_step(x, t_last, generator)
            t_last = t
        # The known part is exactly the neighbours' (the last step writes it noise-free).
        x = token_mask * original + (1 - token_mask) * x
        return diffusion.tokens_to_latents(x).cpu()

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, resolution: int | None = None) -> np.ndarray:
        """SDF grids (B, R, R, R) in metres on the block sample grid."""
        planes = latents.to(self.device)
        if self.model.vae is not None:
            planes = self.model.vae.decode(planes)
        return decode_grids(
            self.model.decoder, planes, resolution or self.sampling.grid_resolution, self.device
        )


################################################################################
#                                     Scenes                                   #
################################################################################


@dataclass
class Scene:
    """Generated blocks on a grid: latents by (ix, iz), the world layout they follow (or None)."""

    latents: dict[tuple[int, int], torch.Tensor]
    stride: float
    corner: tuple[float, float] = (0.0, 0.0)
    layout: Layout | None = None
    seed: int = 0
    model: str = ""
    history: list[str] = field(default_factory=list)
    stages: dict[tuple[int, int], int] = field(default_factory=dict)  # absent: stage 0

    def stage(self, index: tuple[int, int]) -> int:
        return self.stages.get(index, 0)

    def block_corner(self, index: tuple[int, int]) -> tuple[float, float]:
        return (self.corner[0] + index[0] * self.stride, self.corner[1] + index[1] * self.stride)

    def raster(self, index: tuple[int, int]) -> np.ndarray:
        """The block's layout raster (9, 32, 32); all-zero (unconditional) when the block is not
        wholly inside the layout's extent, or the scene has no layout."""
        if self.layout is None:
            return np.zeros((NUM_CLASSES, LAYOUT_CELLS, LAYOUT_CELLS), dtype=np.uint8)
        x, z = self.block_corner(index)
        lo, hi = self.layout.extent_min, self.layout.extent_max
        eps = 1e-6
        inside = (
            x >= lo[0] - eps
            and z >= lo[1] - eps
            and x + BLOCK_SIZE <= hi[0] + eps
            and z + BLOCK_SIZE <= hi[1] + eps
        )
        if not inside:
            return np.zeros((NUM_CLASSES, LAYOUT_CELLS, LAYOUT_CELLS), dtype=np.uint8)
        return rasterize_layout(self.layout.crop(x, z))

    def blocks(self, generator: SceneGenerator) -> list[Block]:
        """Every block decoded to an SDF grid (in the order of ``latents``)."""
        indices = list(self.latents)
        grids = generator.decode(torch.stack([self.latents[i] for i in indices]))
        out = []
        for index, grid in zip(indices, grids):
            origin = block_origin(*self.block_corner(index))
            layout = Layout(()) if self.layout is None else self.layout.crop(*origin[[0, 2]])
            out.append(Block(origin, grid, layout, self.raster(index)))
        return out


def neighbour_condition(
    scene: Scene, index: tuple[int, int], overlap: int
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Known latents and mask (1 = known) for a new block at ``index`` from its existing
    edge neighbours, or None when it has none. Only planes containing the shift axis share."""
    if not scene.latents:
        return None
    some = next(iter(scene.latents.values()))
    known = torch.zeros_like(some)
    mask = torch.zeros(3, 1, *some.shape[-2:])
    found = False
    for axis, (dx, dz) in ((0, (1, 0)), (2, (0, 1))):
        for sign in (1, -1):
            neighbour = (index[0] - sign * dx, index[1] - sign * dz)
            if neighbour not in scene.latents:
                continue
            found = True
            source = scene.latents[neighbour]
            r = some.shape[-1]
            # The new block lies at +sign along the axis: its first `overlap` texels are the
            # neighbour's last ones (sign +1), or its last ones the neighbour's first (sign -1).
            new = slice(0, overlap) if sign > 0 else slice(r - overlap, r)
            old = slice(r - overlap, r) if sign > 0 else slice(0, overlap)
            for plane, dim in _SHARED_PLANES[axis]:
                target = [plane, slice(None), slice(None), slice(None)]
                origin = [plane, slice(None), slice(None), slice(None)]
                target[dim] = new
                origin[dim] = old
                known[tuple(target)] = source[tuple(origin)]
                mask[tuple(target)] = 1.0
    return (known, mask) if found else None


def add_block(
    scene: Scene,
    index: tuple[int, int],
    generator: SceneGenerator,
    seed: int,
    use_neighbours: bool = True,
) -> None:
    """Generate the block at ``index`` (RePaint from its neighbours when it has any)."""
    raster = scene.raster(index)[None]
    condition = (
        neighbour_condition(scene, index, generator.overlap_texels) if use_neighbours else None
    )
    if condition is not None and representation(generator.model.vae) == "latent vector":
        raise UserError(
            "this model generates one latent vector per block (the ablation), which has no "
            "overlap to share with a neighbour: generate single blocks (--blocks 1x1)"
        )
    if condition is None:
        latent = generator.sample_latents(raster, seed)[0]
    else:
        known, mask = condition
        latent = generator.inpaint_latents(raster, known[None], mask[None], seed)[0]
    scene.latents[index] = latent


def generate_scene(
    generator: SceneGenerator,
    blocks_x: int,
    blocks_z: int,
    layout: Layout | None,
    seed: int,
    model_name: str = "",
) -> Scene:
    """A scene of blocks_x x blocks_z blocks, expanded from block (0, 0) in x-major order."""
    stride = generator.sampling.stride
    corner = (0.0, 0.0) if layout is None else layout.extent_min
    if layout is not None:
        span = (BLOCK_SIZE + (blocks_x - 1) * stride, BLOCK_SIZE + (blocks_z - 1) * stride)
        size = np.subtract(layout.extent_max, layout.extent_min)
        if size[0] < span[0] - 1e-6 or size[1] < span[1] - 1e-6:
            raise UserError(
                f"the layout's extent ({size[0]:.2f} x {size[1]:.2f} m) is smaller than the "
                f"{blocks_x}x{blocks_z}-block scene ({span[0]:.2f} x {span[1]:.2f} m at stride "
                f"{stride} m)"
            )
    scene = Scene({}, stride, (float(corner[0]), float(corner[1])), layout, seed, model_name)
    indices = [(i, j) for i in range(blocks_x) for j in range(blocks_z)]
    for k, index in enumerate(progress(indices, desc="generate", unit="block")):
        add_block(scene, index, generator, seed * 1000 + k)
    scene.history.append(f"generate {blocks_x}x{blocks_z} seed {seed}")
    return scene


def expand_scene(
    scene: Scene,
    direction: str,
    generator: SceneGenerator,
    seed: int,
    at: tuple[int, int] | None = None,
) -> list[tuple[int, int]]:
    """Add blocks on one side: beside every block on that edge, or beside block ``at`` only.

    Returns the new indices. Filling an occupied cell is a UserError.
    """
    if direction not in DIRECTIONS:
        raise UserError(f"--direction {direction!r}: use one of {', '.join(DIRECTIONS)}")
    dx, dz = DIRECTIONS[direction]
    if at is not None:
        if at not in scene.latents:
            raise UserError(f"--at {at[0]},{at[1]}: the scene has no block there")
        targets = [(at[0] + dx, at[1] + dz)]
        if targets[0] in scene.latents:
            raise UserError(
                f"direction {direction} of block {at[0]},{at[1]} is already filled "
                f"(block {targets[0][0]},{targets[0][1]} exists)"
            )
    else:
        targets = sorted(
            {(i + dx, j + dz) for i, j in scene.latents if (i + dx, j + dz) not in scene.latents}
        )
        # The far edge only: cells beyond the outermost block along the direction.
        axis = 0 if dx else 1
        sign = dx or dz
        edge = max(sign * idx[axis] for idx in scene.latents)
        targets = [t for t in targets if sign * t[axis] == edge + 1]
    stage = max((scene.stage(i) for i in scene.latents), default=-1) + 1
    # Order so each new block can lean on the previous one as well.
    first = len(scene.latents)
    for k, index in enumerate(progress(targets, desc=f"expand {direction}", unit="block")):
        add_block(scene, index, generator, seed * 1000 + first + k)
        scene.stages[index] = stage
    scene.history.append(f"expand {direction} seed {seed}" + (f" at {at}" if at else ""))
    return targets


def scene_field(scene: Scene, generator: SceneGenerator) -> tuple[np.ndarray, np.ndarray, float]:
    """The scene's blended SDF (grid, world origin, voxel), stage by stage."""
    blocks = scene.blocks(generator)
    stages = sorted({scene.stage(i) for i in scene.latents})
    by_stage = [[b for i, b in zip(scene.latents, blocks) if scene.stage(i) == s] for s in stages]
    return blend_block_stages(by_stage)


def scene_mesh(scene: Scene, generator: SceneGenerator) -> trimesh.Trimesh:
    """Blend every block's SDF (stage by stage), mesh once, drop fragments and colour by the
    geometry (never by the layout's boxes: the model predicts no semantics)."""
    mesh = remove_fragments(mesh_from_sdf(*scene_field(scene, generator)))
    colour_by_geometry(mesh)
    return mesh


def save_scene(
    scene: Scene,
    folder: str | os.PathLike[str],
    mesh: trimesh.Trimesh | None = None,
    png: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write the scene folder atomically (see the module docstring); an existing non-empty
    ``folder`` is replaced only with ``overwrite``."""
    from difforge.scene.meshing import GEOMETRY_COLOURS, export_mesh
    from difforge.scene.render import render_png
    from difforge.scene.viewer import write_viewer

    indices = list(scene.latents)
    with atomic_dir(folder, overwrite=overwrite) as tmp:
        with atomic_path(tmp / "latents.safetensors") as path:
            save_file(
                {"latents": torch.stack([scene.latents[i] for i in indices]).contiguous()},
                str(path),
            )
        if scene.layout is not None:
            write_json(tmp / "layout.json", scene.layout.to_json())
        if mesh is not None:
            export_mesh(mesh, tmp / "scene.glb")
            write_viewer(mesh, tmp / "scene.html", "scene", GEOMETRY_COLOURS)
            if png:
                render_png(mesh, tmp / "scene.png", caption=GEOMETRY_COLOURS)
        write_json(
            tmp / "scene.json",
            {
                "format": SCENE_FORMAT,
                "blocks": [list(i) for i in indices],
                "corner": list(scene.corner),
                "stride": scene.stride,
                "seed": scene.seed,
                "model": scene.model,
                "layout": "layout.json" if scene.layout is not None else None,
                "mesh": "scene.glb" if mesh is not None else None,
                "history": scene.history,
                "stages": [scene.stage(i) for i in indices],
            },
        )
    return Path(folder)


def is_scene_folder(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` holds a scene folder's files and nothing else (what ``save_scene`` may
    replace as its own earlier output)."""
    root = Path(folder)
    if root.is_symlink() or not (root / "scene.json").is_file():
        return False
    return all(entry.name in SCENE_FILES for entry in root.iterdir())


def _file_inside(root: Path, name: object, key: str) -> Path:
    """``root / name`` for a file named in scene.json; a name that leaves the scene folder
    (absolute, ``..``, a link pointing out) is a UserError: a scene never reads other files."""
    if not isinstance(name, str):
        raise UserError(f"{root}/scene.json: {key} must be a file name, got {name!r}")
    path = root / name
    if not path.resolve().is_relative_to(root.resolve()):
        raise UserError(f"{root}/scene.json: {key} {name!r} points outside the scene folder")
    return path


def load_scene(folder: str | os.PathLike[str]) -> Scene:
    """Read a scene folder; anything missing or inconsistent is a one-line UserError."""
    root = Path(folder)
    meta_path = root / "scene.json"
    if not meta_path.is_file():
        raise UserError(f"{root} is not a scene folder (no scene.json)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != SCENE_FORMAT:
            raise UserError(f"{meta_path}: format is not {SCENE_FORMAT}")
        indices = [(int(i), int(j)) for i, j in meta["blocks"]]
        stride = float(meta["stride"])
        corner = (float(meta["corner"][0]), float(meta["corner"][1]))
        stages = [int(s) for s in meta.get("stages", [0] * len(indices))]
        if len(stages) != len(indices):
            raise UserError(f"{meta_path}: {len(stages)} stages for {len(indices)} blocks")
    except UserError:
        raise
    except RecursionError:
        raise UserError(f"{meta_path} is corrupt (nested too deeply)") from None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"{meta_path} is corrupt ({type(exc).__name__}: {exc})") from None
    try:
        latents = load_file(str(root / "latents.safetensors"))["latents"]
    except (OSError, KeyError, ValueError, RuntimeError, SafetensorError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{root}/latents.safetensors is missing or corrupt ({first})") from None
    if len(latents) != len(indices) or len(set(indices)) != len(indices):
        raise UserError(
            f"{root}: scene.json lists {len(indices)} blocks, latents hold {len(latents)}"
        )
    layout = None
    if meta.get("layout"):
        layout_path = _file_inside(root, meta["layout"], "layout")
        try:
            obj = json.loads(layout_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            reason = str(exc) if not isinstance(exc, RecursionError) else "nested too deeply"
            raise UserError(f"{layout_path} is missing or corrupt ({reason})") from None
        layout = parse_layout(obj, str(layout_path))
    return Scene(
        dict(zip(indices, latents.float())),
        stride,
        corner,
        layout,
        int(meta.get("seed", 0)),
        str(meta.get("model", "")),
        list(meta.get("history", [])),
        dict(zip(indices, stages)),
    )


def check_scene_fits_model(scene: Scene, generator: SceneGenerator) -> None:
    shape = tuple(next(iter(scene.latents.values())).shape)
    if shape != generator.latent_shape:
        raise UserError(
            f"the scene's latents are {shape}, the model's {generator.latent_shape}: "
            "expand it with the model that generated it"
        )
    if abs(scene.stride - generator.sampling.stride) > 1e-9:
        raise UserError(
            f"the scene's stride {scene.stride} m differs from the model's "
            f"{generator.sampling.stride} m"
        )
