"""``HairPipeline``: the shipped model (or any model folder) as one callable, diffusers style.

    pipe = HairPipeline.from_pretrained("default").to("cpu")
    out = pipe("photo.png", seed=0, strands=5000)   # a path or an (H, W, 3) uint8 array
    out.save("groom.ply")                           # .ply / .obj / .npz / .usd* by suffix

Loading goes through :meth:`HairModel.load` and generation through :class:`HairGenerator`; the
sampling defaults are the model folder's (``config.json``), and keyword arguments of the call
override any of them for that call.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from difforge.core.errors import UserError
from difforge.hair.data.groom import Groom
from difforge.hair.export import write_strands
from difforge.hair.model import HairModel, SamplingConfig
from difforge.hair.photo import AlignedPhoto, model_picture, trim_to_mask
from difforge.hair.sample import HairGenerator


@dataclass
class HairOutput:
    """One generated groom: ``points (N, K, 3)`` float32 metres in the head frame (root first),
        ``root_uv (N, 2)``, the conditioning ``image`` the model saw (the maps of the aligned photo for
    a photo model), the conversion ``notes`` and, for a photo, the front end's ``aligned`` photo."""

    points: np.ndarray
    root_uv: np.ndarray
    image: np.ndarray
    seed: int
    notes: list[str] = field(default_factory=list)
    aligned: AlignedPhoto | None = None  # the photo front end's crop, masks and transform

    @property
    def n_strands(self) -> int:
        return len(self.points)

    @property
    def groom(self) -> Groom:
        return Groom(points=self.points, root_uv=self.root_uv)

    def save(self, path: str | os.PathLike[str], up_axis: str = "y") -> Path:
        """Write the strands atomically, the format chosen by the suffix (.ply, .obj, .npz,
        .usda/.usdc/.usd); returns the path."""
        return write_strands(path, self.points, self.root_uv, up_axis=up_axis)


class HairPipeline:
    """A hair model on a device: ``pipe(image, seed=0, strands=None, **sampling)`` -> HairOutput."""

    def __init__(self, model: HairModel, device: str | torch.device = "cpu") -> None:
        self.model = model
        self.device = torch.device(device)

    @classmethod
    def from_pretrained(cls, model: str | os.PathLike[str] = "default") -> HairPipeline:
        """``"default"`` (the shipped model) or a model folder from ``difforge-hair train``."""
        return cls(HairModel.load(model))

    def to(self, device: str | torch.device) -> HairPipeline:
        self.device = torch.device(device)
        return self

    @property
    def sampling(self) -> SamplingConfig:
        """The model folder's sampling defaults."""
        return self.model.sampling

    def __call__(
        self,
        image: str | os.PathLike[str] | np.ndarray | None = None,
        seed: int = 0,
        strands: int | None = None,
        root_candidates: int | None = None,
        face: int | None = None,
        maps: np.ndarray | None = None,
        hair_mask: str | os.PathLike[str] | np.ndarray | None = None,
        trim: bool = False,
        **sampling: Any,
    ) -> HairOutput:
        """A groom for one photo of a person (a file, or an ``(H, W, 3)`` uint8 array): the
                        front end finds the face (``face``: which of several, default the largest), aligns the
                        head and measures its hair maps. ``strands``: exactly that many (the density decides
                        where they grow); ``root_candidates``: as many as the density keeps of them; neither:
                        the model's default. ``maps``: an ``(S, S, 3)`` uint8 maps picture instead of a photo
                        (:func:`difforge.hair.maps.hair_maps`, e.g. a dataset's ``maps.png``). ``hair_mask``: your
                own hair mask of the photo (a file or array of its size, non-zero = hair) instead of the
                front end's segmentation. ``trim``: cut strands where they leave the photo's hair mask
        (:func:`difforge.hair.photo.trim_to_mask`). Other keywords
                        override :class:`SamplingConfig` fields."""
        unknown = set(sampling) - {f.name for f in dataclasses.fields(SamplingConfig)}
        if unknown:
            raise TypeError(f"unknown sampling settings: {', '.join(sorted(unknown))}")
        settings = dataclasses.replace(self.model.sampling, **sampling)
        generator = HairGenerator(self.model, self.device, settings, seed=seed)
        if (image is None) == (maps is None):
            raise TypeError("give a photo (image) or its maps (maps), not both or neither")
        picture, notes, aligned = model_picture(
            image, generator.condition, generator.image_size, face, hair_mask, maps
        )
        if trim and aligned is None:
            raise UserError("trim needs a photo (the mask it trims to)")
        groom = generator.generate(picture, strands, seed, root_candidates)
        points = trim_to_mask(groom.points, aligned.hair_mask) if trim else groom.points
        return HairOutput(points, groom.root_uv, picture, seed, notes, aligned)
