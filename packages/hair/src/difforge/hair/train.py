"""Training the strand codec and the scalp-texture diffusion model through the core Trainer.

Data is either style folders written by ``difforge-hair dataset`` (any folder tree holding
``style_*/`` folders) or procedural styles generated on the fly from seeds (``data.styles``
styles from ``data.seed``, in ``data.workers`` processes), so no dataset has to be stored.

- :func:`train_codec`: ``data.strands_per_style`` random strands of every style, in their root
  frames, train the VAE (:func:`~difforge.hair.codec.codec_loss`); every 10th style is held out
  and its strands give the reported codec errors (mm, degrees). Output: the codec folder
  (``save_pretrained``, float16) with ``metrics.json``.
- :func:`train_diffusion`: every style's strands are encoded by the frozen codec (posterior means)
  into its scalp texture (:func:`~difforge.hair.model.scalp_texture`); the texture's per-channel
  statistics whiten it; the DiT and the image encoder train jointly with the core EDM loss and 10 %
  condition dropout (blank picture). Output: the model folder (``config.json``, ``codec/``,
  ``diffusion/``).

The run configs and their presets are in :mod:`difforge.hair.run_config`. Checkpoints and
tensorboard logs go to a run folder beside the output (``<out>-run``); a rerun
with the same output resumes from its newest checkpoint, and the diffusion run reuses the
textures it encoded (``textures.safetensors`` there, keyed by the codec and the styles).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from difforge.core.config import check_config, to_dict
from difforge.core.diffusion.gaussian import EDMLoss
from difforge.core.diffusion.guidance import ConditionDropout
from difforge.core.errors import UserError
from difforge.core.io import atomic_dir, atomic_path, write_json
from difforge.core.nn import num_parameters
from difforge.core.pretrained import CONFIG_NAME, load_component, save_component
from difforge.core.train import Trainer, process_state
from difforge.core.workers import spawn_context
from difforge.hair.augment import augment_maps
from difforge.hair.codec import (
    StrandCodec,
    codec_errors,
    codec_loss,
    strands_to_local,
)
from difforge.hair.data.dataset import SampleConfig, load_sample, make_sample, training_seeds
from difforge.hair.data.groom import density_map, resample_by_arc_length
from difforge.hair.model import (
    MIN_DENSITY,
    HairModel,
    ScalpDiffusion,
    images_to_tensor,
    make_edm_scheduler,
    resolve_model_dir,
    scalp_texture,
)
from difforge.hair.run_config import CodecRunConfig, DataConfig, DiffusionRunConfig

CODEC_EVAL_EVERY = 10  # every 10th style is held out of codec training
ENCODE_BATCH = 16_384


################################################################################
#                                     Data                                     #
################################################################################


@dataclass(frozen=True)
class StyleRecord:
    """One training style: strands in root frames (N, K, 3) in codec units (:func:`local_strands`,
    computed where the style is read, so in the data workers), root UVs, picture (S, S, 3) uint8,
    scalp density map (128, 128) in [0, 1]."""

    seed: int
    family: str
    local: np.ndarray
    root_uv: np.ndarray
    image: np.ndarray
    density: np.ndarray


def style_folders(data_dir: str | Path) -> list[Path]:
    """Every ``style_*`` folder holding ``strands.npz`` under ``data_dir`` (sorted)."""
    root = Path(data_dir)
    if not root.is_dir():
        raise UserError(f"{root}: no such dataset folder")
    folders = sorted(p.parent for p in root.glob("**/style_*/strands.npz"))
    if not folders:
        raise UserError(f"{root}: no style folders (build one with `difforge-hair dataset`)")
    return folders


def _read_folder(task: tuple[Path, int, int, str]) -> StyleRecord:
    folder, image_size, n_points, condition = task
    style, groom, image = load_sample(folder, condition)
    try:
        with Image.open(folder / "density.png") as picture:
            density = np.asarray(picture.convert("L"), dtype=np.float32) / 255.0
    except OSError as exc:
        raise UserError(f"{folder}: unreadable density.png ({exc})") from None
    if image.shape[0] != image_size:
        image = np.asarray(
            Image.fromarray(image).resize((image_size, image_size), Image.Resampling.LANCZOS)
        )
    local = local_strands(groom.points, groom.root_uv, n_points)
    return StyleRecord(style.seed, style.family, local, groom.root_uv, image, density)


def procedural_record(task: tuple[int, SampleConfig, int, str]) -> StyleRecord:
    """The style of a seed, generated with the sample settings ``config``, its strands resampled
    to ``n_points`` (the codec's) in root frames; ``task`` is ``(seed, config, n_points,
    condition)``."""
    seed, config, n_points, condition = task
    sample = make_sample(seed, config)
    return StyleRecord(
        seed,
        sample.style.family,
        local_strands(sample.groom.points, sample.groom.root_uv, n_points),
        sample.groom.root_uv,
        sample.condition(condition),
        density_map(sample.style, 128),
    )


def iter_styles(
    data_dir: str | Path | None, data: DataConfig, n_points: int
) -> Iterator[StyleRecord]:
    """Training styles in a fixed order, read from folders or generated from seeds, in
    ``data.workers`` processes."""
    if data_dir is not None:
        read = _read_folder
        tasks = [(f, data.image_size, n_points, data.condition) for f in style_folders(data_dir)]
    else:
        config = data.sample_config(n_points)
        read = procedural_record
        tasks = [
            (seed, config, n_points, data.condition)
            for seed in training_seeds(data.styles, data.seed, style_set=data.style_set)
        ]
    if data.workers <= 1:
        yield from map(read, tasks)
        return
    # Spawned, not forked: the parent may already hold a CUDA context.
    with ProcessPoolExecutor(data.workers, mp_context=spawn_context()) as pool:
        yield from pool.map(read, tasks, chunksize=4)


def local_strands(points: np.ndarray, root_uv: np.ndarray, n_points: int) -> np.ndarray:
    """Strands (N, K, 3) in metres -> root frames (codec units), resampled to ``n_points``."""
    if points.shape[1] != n_points:
        points = resample_by_arc_length(points, n_points).astype(np.float32)
    return strands_to_local(points, root_uv)


def _random_batches(tensors: dict[str, torch.Tensor], batch_size: int, seed: int, start: int):
    """Endless batches of random rows; batch b of process r of n depends only on (seed, b, r, n),
    so resume is exact and the processes of a multi-GPU run (``torchrun``, ``accelerate launch``)
    draw different rows (one process: the same batches as before multi-GPU support). The rows
    are gathered where the tensors are (the indices are drawn on the CPU either way)."""
    state = process_state()
    rank, world = state.process_index, state.num_processes
    rows = len(next(iter(tensors.values())))
    for index in itertools.count(start):
        generator = torch.Generator().manual_seed(seed * 1_000_003 + index * world + rank)
        pick = torch.randint(rows, (batch_size,), generator=generator)
        yield {key: value[pick.to(value.device)] for key, value in tensors.items()}


def run_dir_of(out_dir: str | Path, run_dir: str | Path | None) -> Path:
    """Where a training run keeps its checkpoints: ``run_dir``, or ``<out_dir>-run``."""
    out_dir = Path(out_dir)
    return Path(run_dir) if run_dir is not None else out_dir.with_name(out_dir.name + "-run")


################################################################################
#                                 Strand codec                                 #
################################################################################


def train_codec(
    data_dir: str | Path | None,
    out_dir: str | Path,
    config: CodecRunConfig,
    run_dir: str | Path | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train the strand codec; write ``out_dir`` (codec folder + ``metrics.json``); return metrics.
    An existing non-empty ``out_dir`` is replaced only with ``overwrite``."""
    out_dir = Path(out_dir)
    n_points = config.model.n_points
    rng = np.random.default_rng(config.train.seed)
    train_parts, eval_parts, families = [], [], {}
    for index, record in enumerate(iter_styles(data_dir, config.data, n_points)):
        local = record.local
        held_out = len(train_parts) > 0 and index % CODEC_EVAL_EVERY == CODEC_EVAL_EVERY - 1
        if held_out:
            eval_parts.append(local)
            families.setdefault(record.family, []).append(len(eval_parts) - 1)
        else:
            pick = rng.choice(
                len(local), min(config.data.strands_per_style, len(local)), replace=False
            )
            train_parts.append(local[pick])
    if not eval_parts:  # under 10 styles: measure on the first (training) style's strands
        eval_parts = [train_parts[0]]
    strands = torch.from_numpy(np.concatenate(train_parts))
    torch.manual_seed(config.train.seed)  # the initial weights are the run's too
    codec = StrandCodec(**to_dict(config.model))
    trainer = Trainer(
        codec,
        lambda model, batch: codec_loss(model, batch["local"], config.loss),
        lambda start: _random_batches(
            {"local": strands}, config.train.batch_size, config.train.seed, start
        ),
        replace(config.train, out_dir=str(run_dir_of(out_dir, run_dir))),
    )
    run = trainer.train(resume="latest", time_limit_s=config.time_limit_s).summary()
    trainer.load_ema_weights()
    metrics: dict[str, Any] = {
        "held_out": codec_errors(codec, torch.from_numpy(np.concatenate(eval_parts))),
        "per_family": {
            family: codec_errors(
                codec, torch.from_numpy(np.concatenate([eval_parts[i] for i in idx]))
            )
            for family, idx in sorted(families.items())
        },
        "train_strands": len(strands),
        "held_out_strands": int(sum(len(p) for p in eval_parts)),
        "parameters": num_parameters(codec),
        **run,
    }
    if process_state().is_main_process:
        with atomic_dir(out_dir, overwrite=overwrite) as tmp:
            save_component(codec, tmp)
            write_json(tmp / "metrics.json", metrics)
    process_state().wait_for_everyone()
    return metrics


def codec_folder(path: str | Path) -> Path:
    """A codec folder, or a model folder holding one in ``codec/``."""
    path = Path(path)
    for candidate in (path, path / "codec"):
        if (candidate / CONFIG_NAME).is_file() and any(candidate.glob("*.safetensors")):
            return candidate
    raise UserError(f"{path}: not a codec folder (train one with `difforge-hair train-codec`)")


################################################################################
#                              Scalp-texture diffusion                         #
################################################################################

SENSITIVITY_TEXELS = 2048  # latent texels decoded to measure codec_channel_weights


@torch.no_grad()
def codec_channel_weights(
    codec: StrandCodec, textures: torch.Tensor, channel_std: torch.Tensor, seed: int = 0
) -> torch.Tensor:
    """Loss weights ``(C,)`` of the texture channels: each latent channel's weight is how far the
    decoded strands move (mean L1) when that latent moves by one channel std (one whitened unit,
    the unit of the diffusion error), up or down, over up to ``SENSITIVITY_TEXELS`` random texels
    with hair; the latents are normalised by the largest, the density channel gets 1 (as
    DiffLocks), then all are divided by their mean so the loss keeps its scale."""
    latents = textures[:, :-1].permute(0, 2, 3, 1).flatten(0, 2)
    with_hair = latents[textures[:, -1].flatten() > MIN_DENSITY]
    latents = with_hair if len(with_hair) else latents
    pick = torch.randperm(len(latents), generator=torch.Generator().manual_seed(seed))
    latents = latents[pick[:SENSITIVITY_TEXELS]].float().to(codec.device)
    base = codec.decode(latents)
    sensitivity = torch.zeros(latents.shape[1], device=latents.device)
    for channel in range(latents.shape[1]):
        for sign in (1.0, -1.0):
            moved = latents.clone()
            moved[:, channel] += sign * float(channel_std[channel])
            sensitivity[channel] += (codec.decode(moved) - base).abs().mean() / 2
    weights = torch.cat([sensitivity / sensitivity.max().clamp(min=1e-12), sensitivity.new_ones(1)])
    return weights / weights.mean()


@torch.no_grad()
def encode_styles(
    codec: StrandCodec,
    records: Iterator[StyleRecord],
    resolution: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Scalp textures ``(S, C, R, R)`` and pictures ``(S, H, W, 3)`` uint8 of every style."""
    textures, images, seeds = [], [], []
    for record in records:
        local = torch.from_numpy(record.local)
        latents = torch.cat(
            [codec.encode(chunk.to(device))[0].cpu() for chunk in local.split(ENCODE_BATCH)]
        )
        textures.append(scalp_texture(latents.numpy(), record.root_uv, record.density, resolution))
        images.append(record.image)
        seeds.append(record.seed)
    return torch.from_numpy(np.stack(textures)), torch.from_numpy(np.stack(images)), seeds


TEXTURE_CACHE = "textures.safetensors"


def _texture_cache_key(
    codec_path: Path, data_dir: str | Path | None, config: DiffusionRunConfig
) -> str:
    """What the encoded textures depend on: the codec's weights, the styles and the sizes."""
    digest = hashlib.sha256()
    for weights in sorted(codec_path.glob("*.safetensors")):
        digest.update(weights.read_bytes())
    if data_dir is not None:
        for folder in style_folders(data_dir):
            stat = (folder / "strands.npz").stat()
            digest.update(f"{folder.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    else:
        digest.update(json.dumps(to_dict(config.data), sort_keys=True).encode())
    digest.update(f"{config.model.resolution}:{config.data.image_size}".encode())
    return digest.hexdigest()


def cached_textures(
    path: Path, key: str, encode: Callable[[], tuple[torch.Tensor, torch.Tensor, list[int]]]
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """``encode()``'s textures, pictures and seeds, kept in ``path`` (safetensors) under ``key``,
    so that a resumed run skips reading and encoding every style again; a different key encodes
    again and replaces the file."""
    if path.is_file():
        with safe_open(str(path), "pt") as cache:
            if cache.metadata().get("key") == key:
                seeds = [int(seed) for seed in cache.get_tensor("seeds")]
                return cache.get_tensor("textures"), cache.get_tensor("images"), seeds
    textures, images, seeds = encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tensors = {"textures": textures, "images": images, "seeds": torch.tensor(seeds)}
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp), {"key": key})
    return textures, images, seeds


def train_diffusion(
    data_dir: str | Path | None,
    codec_dir: str | Path | None,
    out_dir: str | Path,
    config: DiffusionRunConfig,
    run_dir: str | Path | None = None,
    init_dir: str | Path | None = None,
    overwrite: bool = False,
) -> HairModel:
    """Train the image-conditioned scalp-texture DiT; write the model folder ``out_dir``.

    ``init_dir``: a model folder (or ``default``) to continue from: its codec (``codec_dir`` must
    then be None), its DiT weights and texture whitening, and its sampling settings; the schedule
    of ``config.train`` starts afresh. ``config.model`` must describe the same DiT. An existing
    non-empty ``out_dir`` is replaced only with ``overwrite``."""
    out_dir = Path(out_dir)
    init = HairModel.load(init_dir) if init_dir is not None else None
    if init is not None and codec_dir is not None:
        raise UserError("--init brings its own codec: leave out --codec")
    if init is None and codec_dir is None:
        raise UserError("give --codec (a codec folder) or --init (a model folder)")
    codec_path = codec_folder(resolve_model_dir(init_dir) if init is not None else codec_dir)
    codec = load_component(StrandCodec, codec_path)
    state = process_state()  # one process, or one per GPU under torchrun / accelerate launch
    codec.to(state.device)
    with state.main_process_first():  # the other processes then load the textures it cached
        textures, images, seeds = cached_textures(
            run_dir_of(out_dir, run_dir) / TEXTURE_CACHE,
            _texture_cache_key(codec_path, data_dir, config),
            lambda: encode_styles(
                codec,
                iter_styles(data_dir, config.data, codec.config.n_points),
                config.model.resolution,
                state.device,
            ),
        )
    torch.manual_seed(config.train.seed)  # the initial weights are the run's too
    diffusion = ScalpDiffusion(
        texture_channels=textures.shape[1],
        image_size=images.shape[1],
        **to_dict(config.model),
    )
    outputs = textures.shape[1] * config.model.patch_size**2
    check_config(  # noise outside the output head's range is never removed (RESULTS.md)
        outputs <= config.model.hidden_size,
        "model.hidden_size",
        f">= texture channels x patch_size² = {outputs} (else use a smaller model.patch_size)",
        config.model.hidden_size,
    )
    if init is None:
        diffusion.set_normalisation(textures)
    else:  # the whitening comes with the weights (buffers), so the tokens match its training
        try:
            diffusion.load_state_dict(init.diffusion.state_dict())
        except RuntimeError as exc:
            first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
            raise UserError(
                f"--init {init_dir}: its DiT differs from the config ({first})"
            ) from None
    with torch.no_grad():
        tokens = diffusion.textures_to_tokens(textures)
    # The training set lives on the training device: gathering each batch on one CPU thread and
    # copying it over starves a fast accelerator (RESULTS.md).
    tokens, images = tokens.to(state.device), images.to(state.device)
    loss_args = {
        "p_mean": config.p_mean,
        "p_std": config.p_std,
        "condition_dropout": ConditionDropout(config.cond_dropout),
    }
    sampling = config.sampling if init is None else init.sampling
    scheduler = make_edm_scheduler(sampling, "edm_euler")  # the preconditioning it samples with
    channel_weights, features = torch.ones(textures.shape[1]), None  # uniform: the plain loss
    if config.channel_weights == "codec":
        channel_weights = codec_channel_weights(
            codec, textures, diffusion.channel_std, config.train.seed
        ).cpu()
        # Token features are channel-major (textures_to_tokens): patch_size² per channel.
        features = channel_weights.repeat_interleave(config.model.patch_size**2)
    loss = EDMLoss(scheduler, feature_weights=features, **loss_args)
    augment = config.data.augment if config.data.condition == "maps" else 0.0

    def picture(images: torch.Tensor) -> torch.Tensor:
        return augment_maps(images_to_tensor(images), augment)

    codec.cpu()
    trainer = Trainer(
        diffusion,
        lambda model, batch: loss(model, batch["tokens"], {"image": picture(batch["image"])}),
        lambda start: _random_batches(
            {"tokens": tokens, "image": images}, config.train.batch_size, config.train.seed, start
        ),
        replace(config.train, out_dir=str(run_dir_of(out_dir, run_dir))),
    )
    run = trainer.train(resume="latest", time_limit_s=config.time_limit_s).summary()
    trainer.load_ema_weights()
    codec_metrics_path = codec_path / "metrics.json"
    info = {
        "training": {
            "data": str(data_dir) if data_dir is not None else "procedural",
            "styles": len(seeds),
            "first_seed": min(seeds),
            "last_seed": max(seeds),
            "diffusion": run,
            "config": to_dict(config),
            "channel_weights": [round(float(w), 4) for w in channel_weights],
            "init": None
            if init is None
            else {
                "model": str(init_dir),
                "steps": init.info.get("training", {}).get("diffusion", {}).get("steps"),
            },
        },
        "parameters": {"codec": num_parameters(codec), "diffusion": num_parameters(diffusion)},
    }
    if codec_metrics_path.is_file():
        info["codec_metrics"] = json.loads(codec_metrics_path.read_text(encoding="utf-8"))[
            "held_out"
        ]
    model = HairModel(codec=codec, diffusion=diffusion.cpu(), sampling=sampling, info=info)
    if state.is_main_process:
        model.save(out_dir, overwrite=overwrite)
    state.wait_for_everyone()
    return model
