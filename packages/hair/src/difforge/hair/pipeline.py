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

from difforge.hair.data.groom import Groom
from difforge.hair.data.images import conditioning_array, load_conditioning_image
from difforge.hair.export import write_strands
from difforge.hair.model import HairModel, SamplingConfig
from difforge.hair.sample import HairGenerator


@dataclass
class HairOutput:
    """One generated groom: ``points (N, K, 3)`` float32 metres in the head frame (root first),
    ``root_uv (N, 2)``, the conditioning ``image`` it came from, and the conversion ``notes``."""

    points: np.ndarray
    root_uv: np.ndarray
    image: np.ndarray
    seed: int
    notes: list[str] = field(default_factory=list)

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
        image: str | os.PathLike[str] | np.ndarray,
        seed: int = 0,
        strands: int | None = None,
        root_candidates: int | None = None,
        **sampling: Any,
    ) -> HairOutput:
        """A groom for one front picture (a file, or an ``(H, W, 3)`` uint8 array; other sizes
        are centre-cropped and resized). ``strands``: exactly that many (the density decides
        where they grow); ``root_candidates``: as many as the density keeps of them; neither:
        the model's default. Other keywords override :class:`SamplingConfig` fields."""
        unknown = set(sampling) - {f.name for f in dataclasses.fields(SamplingConfig)}
        if unknown:
            raise TypeError(f"unknown sampling settings: {', '.join(sorted(unknown))}")
        settings = dataclasses.replace(self.model.sampling, **sampling)
        generator = HairGenerator(self.model, self.device, settings, seed=seed)
        if isinstance(image, np.ndarray):
            picture, notes = conditioning_array(image, generator.image_size)
        else:
            picture, notes = load_conditioning_image(image, generator.image_size)
        groom = generator.generate(picture, strands, seed, root_candidates)
        return HairOutput(groom.points, groom.root_uv, picture, seed, notes)
