"""Training the tri-plane VAE and the layout-conditioned latent diffusion model (core Trainer).

Both read fit folders written by ``difforge-scene fit`` (``planes.safetensors`` + ``fit.json``
naming the dataset the planes were fitted to, whose layout rasters condition the diffusion model).
Stage-1 and stage-2 fit folders may be given together; they must share one decoder.

- :func:`train_vae`: raw planes -> latent planes -> raw planes. Losses: L1 on whitened planes, L1
  between the SDFs the shared (frozen) decoder reads from the reconstructed and from the raw planes
  at points near the block's surface and uniform in the block (truncated at the fitting band), KL
  to N(0, kl_std^2) at weight 1e-3 (BlockFusion). Every 10th block is held out; the output's
  ``metrics.json`` holds the held-out reconstruction (F-score at 2 / 5 cm, NC, CD) of the VAE
  through the decoder against the exact surface, beside the raw planes' own (the ceiling).
- :func:`train_diffusion`: planes (and their x / z mirror images, exact for tri-planes) encoded to
  posterior means, whitened per channel, patchified; the DiT trains with the core's v-prediction
  DDPM loss and 10 % condition dropout (all-zero layout). ``--vae raw`` trains on the raw planes
  instead (the paper's raw tri-plane ablation). Output: the model folder.

Checkpoints go to ``<out>-run`` beside the output; a rerun with the same output resumes.

``time_limit_s`` > 0 bounds the whole call, counted from ``started_at`` (the command line passes
its process's start, so python start-up and imports count too): the work before training (loading,
encoding, for the VAE the raw planes' held-out reconstruction) is spent first, training stops
(checked every step by the core Trainer) early enough to leave the measured or reserved time for
what follows it, and each phase prints a line stamped with the seconds since the start.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from difforge.core.config import to_dict
from difforge.core.diffusion.gaussian import GaussianLoss
from difforge.core.diffusion.guidance import ConditionDropout
from difforge.core.errors import UserError
from difforge.core.io import atomic_dir, write_json
from difforge.core.nn import num_parameters
from difforge.core.pretrained import CONFIG_NAME, load_component, save_component
from difforge.core.train import Trainer
from difforge.scene.data.blocks import BlockDataset
from difforge.scene.data.geometry import NORMALISE_SCALE, TRUNCATION
from difforge.scene.fit import (
    block_source,
    decode_grids,
    load_plane_file,
    reconstruction_report,
)
from difforge.scene.model import (
    LatentDiffusion,
    SceneModel,
    TriPlaneVAE,
    layout_condition,
    representation,
)
from difforge.scene.run_config import DiffusionRunConfig, VAELossWeights, VAERunConfig
from difforge.scene.triplane import TriPlaneDecoder, load_decoder

VAE_EVAL_EVERY = 10  # every 10th fitted block is held out of VAE training
ENCODE_BATCH = 64
# Seconds a time limit keeps free after training for the stop's checkpoint and export, writing the
# output folder and the interpreter's exit, for the default diffusion sizes (the measured split:
# RESULTS.md, "Before the trained model").
SAVE_RESERVE_S = 8.0


################################################################################
#                                     Data                                     #
################################################################################


@dataclass
class FitSet:
    """Fitted blocks: raw planes, normalised surface samples, layout rasters, their dataset."""

    planes: torch.Tensor  # (N, 3, C, R, R)
    surface: torch.Tensor  # (N, S, 3)
    rasters: np.ndarray  # (N, 9, 32, 32) uint8
    dataset: BlockDataset
    indices: list[int]  # block indices in ``dataset`` (-1: from an earlier fit folder)
    decoder_dir: Path


def load_fits(fit_dirs: Sequence[str | Path]) -> FitSet:
    """Concatenate fit folders (they must share one decoder configuration)."""
    if not fit_dirs:
        raise UserError("give at least one --fit folder")
    parts = []
    for fit_dir in map(Path, fit_dirs):
        meta_path = fit_dir / "fit.json"
        if not meta_path.is_file():
            raise UserError(f"{fit_dir}: not a fit folder (no fit.json; see `difforge-scene fit`)")
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise UserError(f"{meta_path} is corrupt (not a fit.json; refit)") from None
        if not isinstance(meta, dict):
            raise UserError(f"{meta_path} is corrupt (not a fit.json; refit)")
        tensors = load_plane_file(fit_dir / "planes.safetensors")
        if "surface" not in tensors:
            raise UserError(f"{fit_dir}: fitted without surface samples (refit with this version)")
        if "data" not in meta:
            raise UserError(f"{fit_dir}/fit.json does not name its dataset (refit)")
        dataset = BlockDataset(meta["data"])
        n = len(tensors["planes"])
        parts.append((tensors, dataset, fit_dir))
        if len(dataset) < n:
            raise UserError(f"{fit_dir}: {n} planes but its dataset has {len(dataset)} blocks")
    decoder_configs = {
        tuple(load_decoder(d / "decoder").config[k] for k in ("channels", "hidden", "layers"))
        for _, _, d in parts
    }
    if len(decoder_configs) > 1:
        raise UserError("the fit folders were made with different decoders")
    planes = torch.cat([t["planes"] for t, _, _ in parts]).float()
    surface = torch.cat([t["surface"] for t, _, _ in parts]).float()
    rasters = np.concatenate([ds.rasters[: len(t["planes"])] for t, ds, _ in parts])
    # Held-out evaluation reads exact surfaces from the last folder's dataset (the frozen-decoder
    # stage, the representative one); blocks of earlier folders are marked -1.
    tensors, dataset, last = parts[-1]
    offset = len(planes) - len(tensors["planes"])
    return FitSet(
        planes=planes,
        surface=surface,
        rasters=rasters,
        dataset=dataset,
        indices=[-1] * offset + list(range(len(tensors["planes"]))),
        decoder_dir=last / "decoder",
    )


def flip_planes(planes: torch.Tensor, flip_x: bool, flip_z: bool) -> torch.Tensor:
    """Tri-planes (N, 3, C, R, R) of the block mirrored in x and/or z (exact: features move with
    the geometry). xy: columns are x; xz: columns x, rows z; yz: rows z."""
    xy, xz, yz = planes.unbind(1)
    if flip_x:
        xy, xz = xy.flip(-1), xz.flip(-1)
    if flip_z:
        xz, yz = xz.flip(-2), yz.flip(-2)
    return torch.stack([xy, xz, yz], dim=1)


def flip_rasters(rasters: np.ndarray, flip_x: bool, flip_z: bool) -> np.ndarray:
    """Layout rasters (N, 9, nx, nz) mirrored as :func:`flip_planes`."""
    if flip_x:
        rasters = rasters[..., ::-1, :]
    if flip_z:
        rasters = rasters[..., ::-1]
    return np.ascontiguousarray(rasters)


def _random_batches(tensors: dict[str, torch.Tensor], batch_size: int, seed: int, start: int):
    """Endless batches of random rows; batch b depends only on (seed, b), so resume is exact."""
    rows = len(next(iter(tensors.values())))
    for index in itertools.count(start):
        generator = torch.Generator().manual_seed(seed * 1_000_003 + index)
        pick = torch.randint(rows, (batch_size,), generator=generator)
        yield {key: value[pick] for key, value in tensors.items()}


def run_dir_of(out_dir: str | Path, run_dir: str | Path | None) -> Path:
    """The checkpoint folder of a training run: ``run_dir``, or ``<out>-run`` beside the output."""
    out_dir = Path(out_dir)
    return Path(run_dir) if run_dir is not None else out_dir.with_name(out_dir.name + "-run")


class Clock:
    """Seconds since ``started_at`` (a ``time.monotonic()`` value; default: now). :meth:`say`
    prints a progress line stamped with them, so a log shows where the time went."""

    def __init__(self, started_at: float | None = None) -> None:
        self.started_at = time.monotonic() if started_at is None else started_at

    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    def say(self, message: str) -> None:
        print(f"[{self.elapsed():7.1f} s] {message}", flush=True)


def _train(trainer: Trainer, time_limit_s: float, reserve_s: float, clock: Clock) -> dict[str, Any]:
    """Run (or resume) ``trainer``; with a limit, stop after the step that leaves less than
    ``reserve_s`` of ``time_limit_s`` (counted from the clock's start). Leaves the EMA weights in
    the model; returns the run record."""
    steps = trainer.config.steps
    limit = 0.0
    if time_limit_s > 0:
        # Never 0 (no limit): with the budget already spent, the Trainer still runs one step.
        limit = max(time_limit_s - reserve_s, 1e-9)
        clock.say(f"training: {steps} steps planned, stopping by {limit:.0f} s")
    else:
        clock.say(f"training: {steps} steps, no time limit")
    result = trainer.train(
        resume="latest",
        time_limit_s=limit,
        started_at=clock.started_at,
        on_log=lambda step, logs: clock.say(f"step {step}/{steps}: loss {logs['loss']:.4g}"),
    )
    trainer.load_ema_weights()
    clock.say(
        f"trained {result.step}/{steps} steps in {result.seconds:.1f} s (stopped by "
        f"{result.stopped_by.replace('_', ' ')})"
    )
    return result.summary()


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


################################################################################
#                                      VAE                                     #
################################################################################


def vae_loss(
    vae: Any,
    decoder: TriPlaneDecoder,
    batch: dict[str, torch.Tensor],
    weights: VAELossWeights,
    points_per_block: int,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Plane L1 + decoded-SDF L1 + KL (see the module docstring)."""
    planes, surface = batch["planes"], batch["surface"]
    recon, mean, logvar = vae(planes)
    model = getattr(vae, "module", vae)  # DDP-wrapped or not
    n = planes.shape[0]
    half = points_per_block // 2
    pick = torch.randint(surface.shape[1], (n, half), device=planes.device)
    near = torch.gather(surface, 1, pick[..., None].expand(-1, -1, 3))
    near = near + torch.randn_like(near) * 0.03 * NORMALISE_SCALE
    points = torch.cat([near, torch.rand_like(near) * 2 - 1], dim=1).clamp(-1, 1)
    band = TRUNCATION * NORMALISE_SCALE
    decoder.to(planes.device)
    with torch.no_grad():
        target = decoder(planes, points).clamp(-band, band)
    predicted = decoder(recon, points).clamp(-band, band)
    loss_planes = (model.whiten(recon) - model.whiten(planes)).abs().mean()
    loss_sdf = (predicted - target).abs().mean()
    loss_kl = model.kl(mean, logvar).mean()
    loss = weights.planes * loss_planes + weights.sdf * loss_sdf + weights.kl * loss_kl
    return loss, {
        "planes_l1": loss_planes.detach(),
        "sdf_l1_m": loss_sdf.detach() / NORMALISE_SCALE,
        "kl": loss_kl.detach(),
    }


@torch.no_grad()
def encode_planes(vae: TriPlaneVAE, planes: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Posterior means (N, 3, Z, r, r) of raw planes, in batches."""
    vae.to(device).eval()
    return torch.cat([vae.encode(p.to(device))[0].cpu() for p in planes.split(ENCODE_BATCH)])


@torch.no_grad()
def decode_latents(vae: TriPlaneVAE, latents: torch.Tensor, device: torch.device) -> torch.Tensor:
    vae.to(device).eval()
    return torch.cat([vae.decode(z.to(device)).cpu() for z in latents.split(ENCODE_BATCH)])


def train_vae(
    fit_dirs: Sequence[str | Path],
    out_dir: str | Path,
    config: VAERunConfig,
    run_dir: str | Path | None = None,
    started_at: float | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train the VAE; write ``out_dir`` (VAE folder + ``metrics.json``; an existing non-empty one
    only with ``overwrite``); return the metrics. ``started_at``: where ``config.time_limit_s``
    counts from (module docstring)."""
    clock = Clock(started_at)
    out_dir = Path(out_dir)
    clock.say(f"loading {len(fit_dirs)} fit folder(s)")
    fits = load_fits(fit_dirs)
    decoder = load_decoder(fits.decoder_dir).eval().requires_grad_(False)
    n = len(fits.planes)
    held_out = [i for i in range(n) if i % VAE_EVAL_EVERY == VAE_EVAL_EVERY - 1] if n >= 10 else []
    train_rows = [i for i in range(n) if i not in set(held_out)]
    clock.say(f"{n} blocks: {len(train_rows)} to train on, {len(held_out)} held out")
    # The raw planes' reconstruction (the ceiling) does not depend on the VAE: measured before
    # training, it also tells how long the VAE's own held-out reconstruction will take after it.
    evaluation = HeldOutEvaluation(decoder, fits, held_out, config)
    reports: dict[str, Any] = {}
    if evaluation.rows:
        clock.say(f"raw tri-plane reconstruction of {len(evaluation.rows)} held-out blocks")
        started = time.monotonic()
        reports["held_out_reconstruction_raw_triplanes"] = evaluation.report(
            fits.planes[evaluation.rows]
        )
        evaluation_s = time.monotonic() - started
    else:
        evaluation_s = 0.0
    _, _, channels, resolution, _ = fits.planes.shape
    torch.manual_seed(config.train.seed)  # the initial weights belong to the run's seed
    vae = TriPlaneVAE(channels=channels, resolution=resolution, **to_dict(config.model))
    vae.set_normalisation(fits.planes[train_rows])
    data = {"planes": fits.planes[train_rows], "surface": fits.surface[train_rows]}
    trainer = Trainer(
        vae,
        lambda model, batch: vae_loss(model, decoder, batch, config.loss, config.points_per_block),
        lambda start: _random_batches(data, config.train.batch_size, config.train.seed, start),
        replace(config.train, out_dir=str(run_dir_of(out_dir, run_dir))),
    )
    # 1.5x: the VAE round trip adds its encode/decode to the same meshing and scoring.
    run = _train(trainer, config.time_limit_s, SAVE_RESERVE_S + 1.5 * evaluation_s, clock)
    vae.cpu().eval()
    metrics = {
        "blocks": n,
        "train_blocks": len(train_rows),
        "held_out_blocks": len(held_out),
        "parameters": num_parameters(vae),
        "latent_shape": [
            3,
            config.model.latent_channels,
            vae.latent_resolution,
            vae.latent_resolution,
        ],
        "compression": float(fits.planes[0].numel())
        / (3 * config.model.latent_channels * vae.latent_resolution**2),
        "time_limit_s": config.time_limit_s,
        **run,
        **reports,
    }
    if evaluation.rows:
        clock.say(f"VAE reconstruction of {len(evaluation.rows)} held-out blocks")
        device = _device()
        planes = fits.planes[evaluation.rows]
        recon = decode_latents(vae, encode_planes(vae, planes, device), device)
        vae.cpu()
        metrics["held_out_reconstruction_vae"] = evaluation.report(recon)
        metrics["held_out_reconstruction_blocks"] = len(evaluation.rows)
    with atomic_dir(out_dir, overwrite=overwrite) as tmp:
        save_component(vae, tmp)
        write_json(tmp / "metrics.json", metrics)
    clock.say(f"wrote {out_dir}")
    return metrics


class HeldOutEvaluation:
    """Reconstruction of held-out blocks through the decoder vs their exact surfaces: the first
    ``config.eval_blocks`` of ``rows`` that come from the last fit folder's dataset."""

    def __init__(
        self, decoder: TriPlaneDecoder, fits: FitSet, rows: Sequence[int], config: VAERunConfig
    ) -> None:
        self.decoder = decoder
        self.rows = [r for r in rows if fits.indices[r] >= 0][: config.eval_blocks]
        self.eval_points = config.eval_points
        self.resolution = fits.dataset.resolution
        ds = fits.dataset
        self.blocks = [ds.block(fits.indices[r]) for r in self.rows]
        self.sources = [
            block_source(ds, fits.indices[r], b) for r, b in zip(self.rows, self.blocks)
        ]

    def report(self, planes: torch.Tensor) -> dict[str, float]:
        """Mean metrics of ``planes`` (one per row, raw or VAE-reconstructed)."""
        grids = decode_grids(self.decoder, planes, self.resolution, _device())
        return reconstruction_report(grids, self.blocks, self.sources, self.eval_points)


################################################################################
#                                  Diffusion                                   #
################################################################################


def train_diffusion(
    fit_dirs: Sequence[str | Path],
    vae_dir: str | Path | None,
    out_dir: str | Path,
    config: DiffusionRunConfig,
    run_dir: str | Path | None = None,
    started_at: float | None = None,
    overwrite: bool = False,
) -> SceneModel:
    """Train the layout-conditioned DiT on latent (``vae_dir``) or raw (None) tri-planes and write
    the model folder ``out_dir`` (an existing non-empty one only with ``overwrite``).
    ``started_at``: where ``config.time_limit_s`` counts from."""
    clock = Clock(started_at)
    out_dir = Path(out_dir)
    clock.say(f"loading {len(fit_dirs)} fit folder(s)")
    fits = load_fits(fit_dirs)
    decoder = load_decoder(fits.decoder_dir).eval()
    device = _device()
    vae = None
    if vae_dir is not None:
        vae_path = Path(vae_dir)
        if not (vae_path / CONFIG_NAME).is_file():
            raise UserError(f"{vae_path}: not a VAE folder (see `difforge-scene train-vae`)")
        vae = load_component(TriPlaneVAE, vae_path)
    flips = [(False, False), (True, False), (False, True), (True, True)] if config.flips else []
    flips = flips or [(False, False)]
    clock.say(
        f"{len(fits.planes)} blocks x {len(flips)} mirror images"
        + (" through the VAE" if vae is not None else " (raw tri-planes)")
    )
    latents, rasters = [], []
    for fx, fz in flips:
        planes = flip_planes(fits.planes, fx, fz)
        latents.append(planes if vae is None else encode_planes(vae, planes, device))
        rasters.append(flip_rasters(fits.rasters, fx, fz))
    latent = torch.cat(latents)
    del latents, planes  # the raw copies: hundreds of MB at the default plane size
    _, _, z_channels, z_res, _ = latent.shape
    if vae is not None:
        vae.cpu()
    torch.manual_seed(config.train.seed)  # the initial weights belong to the run's seed
    diffusion = LatentDiffusion(
        latent_channels=z_channels, latent_resolution=z_res, **to_dict(config.model)
    )
    diffusion.set_normalisation(latent)
    with torch.no_grad():
        tokens = diffusion.latents_to_tokens(latent)
    layout = layout_condition(np.concatenate(rasters), z_res)
    loss = GaussianLoss(
        config.sampling.schedule.scheduler(),
        condition_dropout=ConditionDropout(config.cond_dropout),
    )
    trainer = Trainer(
        diffusion,
        lambda model, batch: loss(model, batch["tokens"], {"layout": batch["layout"]}),
        lambda start: _random_batches(
            {"tokens": tokens, "layout": layout},
            config.train.batch_size,
            config.train.seed,
            start,
        ),
        replace(config.train, out_dir=str(run_dir_of(out_dir, run_dir))),
    )
    run = _train(trainer, config.time_limit_s, SAVE_RESERVE_S, clock)
    vae_metrics = Path(vae_dir) / "metrics.json" if vae_dir is not None else None
    info: dict[str, Any] = {
        "representation": representation(vae),
        "training": {
            "fits": [str(Path(d).resolve()) for d in fit_dirs],
            "blocks": len(fits.planes),
            "examples_with_flips": len(latent),
            "diffusion": run,
            "config": to_dict(config),
        },
        "parameters": {
            "decoder": num_parameters(decoder),
            "vae": num_parameters(vae),
            "diffusion": num_parameters(diffusion),
        },
    }
    if vae_metrics is not None and vae_metrics.is_file():
        vae_info = json.loads(vae_metrics.read_text(encoding="utf-8"))
        info["vae_metrics"] = {
            k: v for k, v in vae_info.items() if k.startswith("held_out") or k == "compression"
        }
    model = SceneModel(decoder, vae, diffusion.cpu().eval(), config.sampling, info)
    model.save(out_dir, overwrite)
    clock.say(f"wrote {out_dir}")
    return model
