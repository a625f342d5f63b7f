"""Dataset samples: a style, its groom, its conditioning render; written to and read from disk.

On disk, one folder per style, ``style_<seed>/``, like DiffLocks' per-style files:
``strands.npz`` (points (N, K, 3) float32 metres, root_uv (N, 2)), ``image.png`` (front
conditioning picture), ``mask.png`` (its hair mask), ``maps.png`` (the
conditioning maps: hair mask and Gabor orientation, :mod:`difforge.hair.maps`), ``density.png``
(scalp density map, rows v, columns u), ``params.json`` (style parameters + generation settings). ``index.json`` at the top
lists the styles and is written last.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from difforge.core.config import check_config
from difforge.core.errors import UserError
from difforge.core.io import write_json
from difforge.core.workers import spawn_context
from difforge.hair.data.groom import Groom, density_map, generate_groom
from difforge.hair.data.head import DEFAULT_HEAD, Head
from difforge.hair.data.pose import sample_head_yaw, turned_head_camera
from difforge.hair.data.styles import (
    HELD_OUT_SEED_BASE,
    STYLE_SETS,
    StyleParams,
    family_for_seed,
    sample_style,
    style_set_families,
)
from difforge.hair.export import read_npz, write_npz
from difforge.hair.maps import hair_maps, photo_like
from difforge.hair.render import (
    CONDITIONING_SIZE,
    VIEWS,
    Appearance,
    Camera,
    Render,
    render_groom,
    save_png,
)

MAX_HEAD_YAW = 60.0  # degrees; beyond this the far side of the face (and its points) is hidden


@dataclass(frozen=True)
class SampleConfig:
    """How a style becomes a sample: strand count (candidates at full density), points per
    strand, conditioning picture size, the style set the seed's family comes from
    (:data:`~difforge.hair.data.styles.STYLE_SETS`), and the largest head turn (degrees) of the
    render: each seed draws its own turn in [-max_yaw, max_yaw] (0: every head frontal), framed
    as the photo front end frames a portrait (:mod:`difforge.hair.data.pose`)."""

    n_strands: int = 10_000
    n_points: int = 64
    image_size: int = CONDITIONING_SIZE
    style_set: str = "classic"
    max_yaw: float = 0.0

    def __post_init__(self) -> None:
        check_config(self.style_set in STYLE_SETS, "style_set", " or ".join(STYLE_SETS),
                     self.style_set)  # fmt: skip
        check_config(0 <= self.max_yaw <= MAX_HEAD_YAW, "max_yaw", f"in [0, {MAX_HEAD_YAW:g}]",
                     self.max_yaw)  # fmt: skip


@dataclass(frozen=True)
class HairSample:
    """A style, its groom, its render (by ``camera``: frontal, or a turned head in the photo
    framing), and the render's conditioning maps (measured on a photo-like copy of the
    supersampled render, :func:`~difforge.hair.maps.photo_like`)."""

    style: StyleParams
    groom: Groom
    render: Render
    maps: np.ndarray
    camera: Camera = VIEWS["front"]

    def condition(self, kind: str) -> np.ndarray:
        """The picture a model with conditioning ``kind`` ("rgb" or "maps") sees."""
        return self.maps if kind == "maps" else self.render.rgb


def make_sample(
    seed: int, config: SampleConfig = SampleConfig(), head: Head = DEFAULT_HEAD
) -> HairSample:
    """The style of ``seed``, its groom, its render and maps (all deterministic)."""
    style = sample_style(seed, style_set=config.style_set)
    groom = generate_groom(style, config.n_strands, config.n_points, head)
    camera = turned_head_camera(sample_head_yaw(seed, config.max_yaw))
    render = render_groom(
        groom.points,
        camera,
        config.image_size,
        Appearance.from_style(style),
        head,
        keep_fine=True,
    )
    maps = hair_maps(photo_like(render.fine_rgb, seed), render.fine_coverage, config.image_size)
    return HairSample(style=style, groom=groom, render=render, maps=maps, camera=camera)


def training_seeds(
    n: int, start: int = 0, families: Collection[str] | None = None, style_set: str = "classic"
) -> Sequence[int]:
    """Seeds ``start .. start + n - 1``, or with ``families`` the first ``n`` seeds from
    ``start`` on whose family (the seed's in ``style_set``,
    :func:`~difforge.hair.data.styles.family_for_seed`) is one of them, e.g. more of the styles
    a model gets wrong; refuses any in the held-out range."""
    if n < 1 or start < 0:
        raise UserError(f"need n >= 1 and seed >= 0 (got n={n}, seed={start})")
    known = style_set_families(style_set)
    unknown = sorted(set(families or ()) - set(known))
    if unknown or (families is not None and not families):
        raise UserError(
            f"unknown hair style families {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(known)}"
        )
    if families is None:
        seeds: Sequence[int] = range(start, start + n)
    else:  # the family cycles with the seed: each run of len(known) seeds has each once
        cycle = len(known)
        first = [
            seed
            for seed in range(start, start + cycle)
            if family_for_seed(seed, style_set) in families
        ]
        seeds = [first[i % len(first)] + cycle * (i // len(first)) for i in range(n)]
    if seeds[-1] >= HELD_OUT_SEED_BASE:
        raise UserError(
            f"training seeds must stay below {HELD_OUT_SEED_BASE} (held out for evaluation)"
        )
    return seeds


def held_out_seeds(n: int, start: int = 0) -> range:
    """Evaluation seeds, never used for training: ``HELD_OUT_SEED_BASE + start ...``."""
    return range(HELD_OUT_SEED_BASE + start, HELD_OUT_SEED_BASE + start + n)


def write_sample(
    sample: HairSample, directory: str | os.PathLike[str], config: SampleConfig
) -> Path:
    """Write one sample's files into ``directory/style_<seed>/`` (each file atomically)."""
    folder = Path(directory) / f"style_{sample.style.seed:07d}"
    write_npz(folder / "strands.npz", sample.groom.points, sample.groom.root_uv)
    save_png(folder / "image.png", sample.render.rgb)
    save_png(folder / "mask.png", sample.render.hair_mask.astype(np.uint8) * 255)
    save_png(folder / "maps.png", sample.maps)
    save_png(
        folder / "density.png", np.round(density_map(sample.style, 128) * 255).astype(np.uint8)
    )
    write_json(
        folder / "params.json",
        {
            "style": sample.style.to_dict(),
            "sample": asdict(config),
            "camera": asdict(sample.camera),
            "strand_count": sample.groom.n_strands,
        },
    )
    return folder


def _make_and_write(task: tuple[int, SampleConfig, str]) -> Path:
    seed, config, out_dir = task
    return write_sample(make_sample(seed, config), out_dir, config)


def build_dataset(
    out_dir: str | os.PathLike[str],
    seeds: Iterable[int],
    config: SampleConfig = SampleConfig(),
    progress: Callable[[int, Path], None] | None = None,
    workers: int = 1,
) -> list[Path]:
    """Generate and write every seed's sample (in ``workers`` processes), then ``index.json``
    (so a folder with ``index.json`` is complete); returns the style folders."""
    tasks = [(seed, config, str(out_dir)) for seed in seeds]
    pool = ProcessPoolExecutor(workers, mp_context=spawn_context()) if workers > 1 else None
    folders = []
    try:
        mapper = (
            pool.map(_make_and_write, tasks, chunksize=2) if pool else map(_make_and_write, tasks)
        )
        for count, folder in enumerate(mapper, start=1):
            folders.append(folder)
            if progress is not None:
                progress(count, folder)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    write_json(
        Path(out_dir) / "index.json",
        {"sample": asdict(config), "styles": [folder.name for folder in folders]},
    )
    return folders


def dataset_folders(root: str | os.PathLike[str], config: SampleConfig | None = None) -> list[Path]:
    """Every finished ``style_*`` folder under ``root`` (searched recursively, sorted). With
    ``config``, every ``index.json`` found must record the same sample settings (one written
    before a setting existed records its default)."""
    root = Path(root)
    indexes = sorted(root.glob("**/index.json")) if root.is_dir() else []
    if not indexes:
        raise UserError(f"{root}: no finished dataset (build one with `difforge-hair dataset`)")
    for index in indexes:
        try:
            recorded = json.loads(index.read_text(encoding="utf-8"))["sample"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{index}: unreadable dataset index ({exc})") from None
        if config is not None and {**asdict(SampleConfig()), **recorded} != asdict(config):
            raise UserError(
                f"{index.parent}: styles made with {recorded}, but this run needs {asdict(config)}"
            )
    folders = sorted(p.parent for p in root.glob("**/style_*/strands.npz"))
    if not folders:
        raise UserError(f"{root}: no style folders")
    return folders


CONDITION_FILES = {"rgb": "image.png", "maps": "maps.png"}


def load_style_picture(
    folder: str | os.PathLike[str], condition: str = "rgb"
) -> tuple[StyleParams, np.ndarray]:
    """Read a style folder's parameters and conditioning picture (H, W, 3) uint8: the render
    (``condition="rgb"``) or its maps (``"maps"``)."""
    folder = Path(folder)
    try:
        params = json.loads((folder / "params.json").read_text(encoding="utf-8"))
        style = StyleParams.from_dict(params["style"])
        with Image.open(folder / CONDITION_FILES[condition]) as picture:
            image = np.asarray(picture.convert("RGB"))
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{folder}: not a difforge-hair style folder ({exc})") from None
    return style, image


def load_sample(
    folder: str | os.PathLike[str], condition: str = "rgb"
) -> tuple[StyleParams, Groom, np.ndarray]:
    """Read a style folder: (style, groom, conditioning picture (H, W, 3) uint8)."""
    style, image = load_style_picture(folder, condition)
    points, root_uv = read_npz(Path(folder) / "strands.npz")
    return style, Groom(points=points, root_uv=root_uv), image
