"""The Python API in the diffusers style: ``ScenePipeline.from_pretrained("default")``, ``.to``,
a call that returns a :class:`SceneOutput` with ``.save(path)``, and ``.expand`` to grow a scene.

It wraps what the command line uses (:class:`~difforge.scene.model.SceneModel`,
:class:`~difforge.scene.sample.SceneGenerator`, ``generate_scene`` / ``expand_scene``): the
sampling defaults come from the model folder's config.json, keyword arguments override them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import trimesh

from difforge.core.config import from_dict, to_dict
from difforge.core.errors import UserError
from difforge.scene.data.layout import Layout, read_layout
from difforge.scene.meshing import export_mesh
from difforge.scene.model import SamplingConfig, SceneModel
from difforge.scene.sample import (
    Scene,
    SceneGenerator,
    check_scene_fits_model,
    expand_scene,
    generate_scene,
    is_scene_folder,
    load_scene,
    save_scene,
    scene_mesh,
)


@dataclass
class SceneOutput:
    """A generated scene: its blended ``mesh`` and the ``scene`` it was meshed from (latents by
    block index, the layout they follow), which :meth:`ScenePipeline.expand` can grow."""

    mesh: trimesh.Trimesh
    scene: Scene

    @property
    def latents(self) -> dict[tuple[int, int], torch.Tensor]:
        return self.scene.latents

    @property
    def layout(self) -> Layout | None:
        return self.scene.layout

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the mesh as .glb, .ply or .obj (by suffix); a path without a suffix is written
        as a scene folder (latents, layout, scene.glb) that ``expand`` reads back."""
        target = Path(path)
        if not target.suffix:
            if target.exists() and not is_scene_folder(target):
                raise UserError(f"{target} exists and is not a scene folder: choose another path")
            # A scene folder is this method's own kind of output: replaced like a mesh file.
            return save_scene(self.scene, target, self.mesh, overwrite=True)
        return export_mesh(self.mesh, target)


class ScenePipeline:
    """A trained scene model on a device, generating and expanding scenes."""

    def __init__(self, model: SceneModel, device: torch.device | str = "cpu") -> None:
        self.model = model
        self.name = ""
        self.device = torch.device(device)

    @classmethod
    def from_pretrained(cls, name: str | os.PathLike[str] = "default") -> ScenePipeline:
        """``"default"`` (the shipped model) or a model folder written by ``difforge-scene
        train``; safetensors and JSON only."""
        pipe = cls(SceneModel.load(name))
        pipe.name = str(name)
        return pipe

    def to(self, device: torch.device | str) -> ScenePipeline:
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    def generator(self, **overrides: Any) -> SceneGenerator:
        """The lower-level generator (latents, decoding) with the model's sampling settings
        updated by ``overrides``; an unknown or invalid setting is a one-line UserError."""
        sampling = self.model.sampling
        if overrides:
            unknown = sorted(set(overrides) - set(to_dict(sampling)))
            if unknown:
                raise UserError(f"unknown sampling setting(s): {', '.join(unknown)}")
            sampling = from_dict(SamplingConfig, {**to_dict(sampling), **overrides})
        return SceneGenerator(self.model, self.device, sampling)

    def __call__(
        self,
        layout: Layout | str | os.PathLike[str] | None = None,
        blocks: tuple[int, int] = (1, 1),
        seed: int = 0,
        **sampling: Any,
    ) -> SceneOutput:
        """A scene of ``blocks`` (x, z) blocks: block (0, 0) from noise, the others by RePaint
        from their neighbours. ``layout``: a :class:`Layout` or a layout JSON file whose extent
        covers the scene, or None (unconditional). ``sampling``: overrides of the model's
        :class:`~difforge.scene.model.SamplingConfig` (e.g. ``steps=8``)."""
        if isinstance(layout, (str, os.PathLike)):
            layout = read_layout(layout)
        generator = self.generator(**sampling)
        scene = generate_scene(generator, *blocks, layout, seed, self.name)
        return SceneOutput(scene_mesh(scene, generator), scene)

    def expand(
        self,
        scene: SceneOutput | Scene | str | os.PathLike[str],
        direction: str,
        seed: int | None = None,
        at: tuple[int, int] | None = None,
        **sampling: Any,
    ) -> SceneOutput:
        """Blocks added on one side (``"+x"``, ``"-x"``, ``"+z"``, ``"-z"``) of a scene (an
        output, a :class:`Scene` or a scene folder), beside every edge block or beside block
        ``at`` only. The input is left as it was. ``seed`` None: derived from the scene's."""
        if isinstance(scene, SceneOutput):
            scene = scene.scene
        elif not isinstance(scene, Scene):
            scene = load_scene(scene)
        grown = Scene(
            dict(scene.latents),
            scene.stride,
            scene.corner,
            scene.layout,
            scene.seed,
            scene.model,
            list(scene.history),
            dict(scene.stages),
        )
        generator = self.generator(**sampling)
        check_scene_fits_model(grown, generator)
        seed = grown.seed + len(grown.history) if seed is None else seed
        expand_scene(grown, direction, generator, seed, at)
        return SceneOutput(scene_mesh(grown, generator), grown)
