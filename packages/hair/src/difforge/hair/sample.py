"""Generating grooms from pictures with a trained :class:`~difforge.hair.model.HairModel`.

picture -> image encoder -> DiT sampling of the scalp texture (EDM DPM-Solver++, classifier-free
guidance) -> roots: uniform candidates on the scalp cap kept with the texture's density (DiffLocks'
density sampling, and the way the procedural generator places roots) -> latents looked up
bilinearly at each root -> one batched codec decode -> strands placed in their root frames ->
points pushed out of the head with the generator's collision code.

Roots lie on the skull by construction (they are skull points at sampled angles, only inside the
scalp cap and only where the density is non-zero) and every other point ends at least half the
generator's margin outside the skull and neck.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from difforge.core.diffusion.sampling import sample
from difforge.core.timing import timed
from difforge.hair.codec import StrandCodec, local_to_world
from difforge.hair.data.groom import COLLISION_MARGIN, Groom
from difforge.hair.data.head import DEFAULT_HEAD, UV_MAX_THETA, Head, uv_from_angles
from difforge.hair.model import (
    MIN_DENSITY,
    HairModel,
    SamplingConfig,
    ScalpDiffusion,
    head_complement,
    images_to_tensor,
    make_edm_scheduler,
    model_condition,
    replace_complement,
    sample_texture,
    smooth_latents,
    texel_noise_ratio,
)


class HeadRangeDenoiser:
    """``diffusion`` whose denoised estimates have no component outside its output head's range.

    The head writes ``outputs`` numbers per token from ``hidden`` features; in the other
    directions the EDM denoiser D = c_skip·x + c_out·F only scales the noisy input, so sampling
    leaves unit-variance noise there, where real tokens have almost none (RESULTS.md). This denoiser puts D at 0
    there, the whitened training textures' mean, i.e. D becomes its orthogonal projection onto
    the head's range: the sampler then sees the noisy inputs it saw in training (data + σ·noise)
    and ends at the mean there. With diffusers' EDM preconditioning (epsilon prediction, as
    :class:`HairGenerator`'s scheduler; s = ``sigma_data``) D = s²x/(σ²+s²) + σs/√(σ²+s²)·F and
    ``model_in`` = x/√(σ²+s²), so D is 0 outside the range for F = -s·model_in/σ there.
    """

    def __init__(self, diffusion: ScalpDiffusion, sigma_data: float = 1.0) -> None:
        self.diffusion = diffusion
        self.sigma_data = sigma_data
        self.complement = head_complement(diffusion.dit.proj_out.weight)

    def __call__(self, model_in: Tensor, timestep: Tensor, **condition: Tensor) -> Tensor:
        out = self.diffusion(model_in, timestep, **condition)
        sigma = torch.exp(4 * timestep).view(-1, 1, 1)  # diffusers' EDM c_noise = log(sigma) / 4
        return replace_complement(out, -self.sigma_data * model_in / sigma, self.complement)


class HairGenerator:
    """``generator(image) -> Groom``: a model on a device with its sampling settings.

    Also a :data:`~difforge.hair.evaluate.Reconstructor` for the evaluation harness.
    """

    def __init__(
        self,
        model: HairModel,
        device: torch.device | str = "cpu",
        sampling: SamplingConfig | None = None,
        seed: int = 0,
        head: Head = DEFAULT_HEAD,
    ) -> None:
        self.device = torch.device(device)
        self.codec = model.codec.to(self.device).eval()
        self.diffusion = model.diffusion.to(self.device).eval()
        self.sampling = sampling or model.sampling
        self.info = model.info
        self.seed = seed
        self.head = head
        cfg = self.sampling
        self.scheduler = make_edm_scheduler(cfg)
        self.calls = 0

    @property
    def image_size(self) -> int:
        return int(self.diffusion.config.image_size)

    @property
    def condition(self) -> str:
        """``"maps"`` or ``"rgb"``: the picture :meth:`generate` takes (:func:`model_condition`)."""
        return model_condition(self.info)

    @torch.no_grad()
    def textures(self, images: np.ndarray, seed: int) -> Tensor:
        """Sample scalp textures ``(B, C, R, R)`` (de-whitened) for uint8 pictures ``(B, S, S, 3)``:
        each the mean of ``sampling.ensemble`` samples."""
        members = self.sampling.ensemble
        pictures = images_to_tensor(images).to(self.device).repeat_interleave(members, 0)
        length, width = self.diffusion.token_shape
        denoiser = (
            HeadRangeDenoiser(self.diffusion, self.sampling.schedule.sigma_data)
            if self.sampling.project_to_head_range
            else self.diffusion
        )
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.sampling.bf16):
            tokens, vector = self.diffusion.encode_image(pictures)
            null_tokens, null_vector = self.diffusion.encode_image(torch.zeros_like(pictures))
            x = sample(
                denoiser,
                self.scheduler,
                (len(pictures), length, width),
                num_inference_steps=self.sampling.steps,
                condition={"image_tokens": tokens, "image_vector": vector},
                uncondition={"image_tokens": null_tokens, "image_vector": null_vector},
                guidance_scale=self.sampling.guidance_scale,
                generator=torch.Generator().manual_seed(seed),
                device=self.device,
            )
        textures = self.diffusion.tokens_to_textures(x.float())
        return textures.unflatten(0, (-1, members)).mean(1)

    def decode(
        self,
        texture: Tensor,
        seed: int,
        n_strands: int | None = None,
        root_candidates: int | None = None,
    ) -> Groom:
        """Strands of one texture ``(C, R, R)``: exactly ``n_strands``, or as many of
        ``root_candidates`` as the density keeps (:func:`decode_texture`); without either, the
        sampling settings' ``n_strands`` or else their ``root_candidates``."""
        if n_strands is None and root_candidates is None:
            n_strands = self.sampling.n_strands
        return decode_texture(
            self.codec,
            texture.to(self.device),
            seed,
            n_strands=n_strands,
            root_candidates=root_candidates or self.sampling.root_candidates,
            head=self.head,
            batch_size=self.sampling.decode_batch,
            min_density=self.sampling.min_density,
            latent_smoothing=self.sampling.latent_smoothing,
        )

    def generate(
        self,
        image: np.ndarray,
        n_strands: int | None = None,
        seed: int | None = None,
        root_candidates: int | None = None,
    ) -> Groom:
        """One groom for one uint8 picture ``(S, S, 3)`` (deterministic for a given seed) with
        exactly ``n_strands`` strands, or the strands the density keeps of ``root_candidates``
        candidates (:meth:`decode`)."""
        if n_strands is not None and root_candidates is not None:
            raise ValueError("give n_strands (the strand count) or root_candidates, not both")
        if image.shape != (self.image_size, self.image_size, 3):
            raise ValueError(f"expected a {self.image_size}² RGB picture, got {image.shape}")
        seed = self.seed if seed is None else seed
        texture = self.textures(image[None], seed)[0]
        return self.decode(texture, seed, n_strands, root_candidates)

    def __call__(self, image: np.ndarray) -> Groom:
        """Reconstructor interface: a different noise seed per call, deterministic per sequence."""
        self.calls += 1
        return self.generate(image, seed=self.seed + self.calls)


MAX_ROOT_BATCH = 1 << 22  # root candidates drawn at once while filling an exact strand count
BALD_PROBE = 1 << 16  # candidates that all find zero density: the texture has no hair anywhere


@torch.no_grad()
def decode_texture(
    codec: StrandCodec,
    texture: Tensor,
    seed: int,
    *,
    n_strands: int | None = None,
    root_candidates: int = 10_000,
    head: Head = DEFAULT_HEAD,
    batch_size: int = 65_536,
    min_density: float = MIN_DENSITY,
    latent_smoothing: float = 0.0,
) -> Groom:
    """Strands of one scalp texture ``(C, R, R)`` (on the codec's device).

    Roots are uniform candidates on the scalp cap, each kept with the texture's density (none
    where it is below ``min_density``): the density decides where hair grows. ``n_strands``: the
    groom has exactly that many strands (candidates are drawn until enough are kept; the first
    ``n_strands`` candidates are drawn as ``root_candidates=n_strands`` draws them). Without it,
    ``root_candidates`` are drawn and the density also decides how many are kept, as the
    procedural generator does (a full head keeps about 60 %). Latents are read after
    :func:`smooth_latents` by ``latent_smoothing`` texels. A texture with no hair anywhere
    gives one strand, at its densest candidate."""
    device = texture.device
    texture = smooth_latents(texture.float(), latent_smoothing)
    rng = np.random.default_rng(seed)
    batch = n_strands or root_candidates
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray, Tensor]] = []
    kept = 0
    density_sum, drawn = 0.0, 0
    while True:
        cos_theta = rng.uniform(np.cos(UV_MAX_THETA), 1.0, size=batch)
        theta, phi = np.arccos(cos_theta), rng.uniform(-np.pi, np.pi, size=batch)
        uv = uv_from_angles(theta, phi)
        values = sample_texture(texture, torch.from_numpy(uv).to(device))
        density = values[:, -1].clamp(0.0, 1.0).cpu().numpy()
        density[density < min_density] = 0.0
        keep = rng.random(batch) < density
        density_sum, drawn = density_sum + float(density.sum()), drawn + batch
        last = n_strands is None or (density_sum == 0.0 and drawn >= BALD_PROBE)
        if last and kept == 0 and not keep.any():  # as the generator: keep the densest candidate
            keep[np.argmax(density)] = True
        found.append((theta[keep], phi[keep], uv[keep], values[torch.from_numpy(keep).to(device)]))
        kept += int(keep.sum())
        if last or kept >= n_strands:
            break
        # The expected share kept is the mean density: draw about what is still missing.
        missing = (n_strands - kept) * drawn / max(density_sum, 1e-12)
        batch = int(min(MAX_ROOT_BATCH, max(BALD_PROBE, np.ceil(1.05 * missing) + 64)))
    theta, phi, uv = (np.concatenate([part[i] for part in found])[:n_strands] for i in range(3))
    values = torch.cat([part[3] for part in found])[:n_strands]
    latents = values[:, :-1].clamp(-1.0, 1.0)
    roots, _ = head.scalp_points(theta, phi)
    frames = torch.from_numpy(head.frames(theta, phi)).float().to(device)
    root_tensor = torch.from_numpy(roots).float().to(device)
    decoded = []
    for start in range(0, len(latents), batch_size):
        stop = start + batch_size
        local = codec.decode(latents[start:stop])
        decoded.append(local_to_world(local, root_tensor[start:stop], frames[start:stop]))
    points = torch.cat(decoded).double().cpu().numpy()
    points[:, 1:] = head.push_outside(points[:, 1:], COLLISION_MARGIN / 2)
    points[:, 0] = roots
    return Groom(points=points.astype(np.float32), root_uv=uv.astype(np.float32))


CHECK_SIGMAS = (0.2, 1.0, 5.0, 20.0, 80.0)


@torch.no_grad()
def conditioning_check(
    generator: HairGenerator,
    textures: Tensor,
    images: np.ndarray,
    sigmas: tuple[float, ...] = CHECK_SIGMAS,
    seed: int = 0,
) -> dict:
    """How much the model uses its picture, measured against ground-truth scalp textures.

    ``textures`` ``(B, C, R, R)`` (as :func:`~difforge.hair.train.encode_styles` makes them) belong
    to the uint8 ``images`` ``(B, S, S, 3)``, B >= 2. Returns:

    - ``denoising``: per noise level, the denoiser's error (mean squared, whitened texture units)
      on one shared noise draw, given the right picture, the null (blank) picture, and another
      style's picture (the batch rolled by one). A model that uses the picture has
      ``right < null < other`` wherever the noisy texture alone cannot tell the style.
    - ``sampled``: textures sampled with the model's sampling settings: the mean squared error
      to their own ground truth, to the other styles' (mean), and the fraction of pictures whose
      sample is nearest to their own style's texture.
    - ``texel_noise``: :func:`~difforge.hair.model.texel_noise_ratio` of the sampled textures
      over ``textures``, per channel, and its mean over the latent channels and for the density
      (1: as smooth as encoded grooms).
    - ``output_head``: the DiT's linear output head writes ``outputs`` numbers per token from
      ``hidden`` features, so its outputs span at most ``hidden`` directions. Noise outside them
      can never be removed: the sampling ODE leaves it at variance sigma_data² = 1.
      ``outside_variance_sampled``/``_real``: per-direction variance of the sampled and the real
      tokens outside the head's range (both 0 when ``outputs <= hidden``).
    """
    diffusion, scheduler = generator.diffusion, generator.scheduler
    device = generator.device
    x0 = diffusion.textures_to_tokens(textures.to(device))
    pictures = images_to_tensor(images).to(device)
    right = diffusion.encode_image(pictures)
    null = diffusion.encode_image(torch.zeros_like(pictures))
    other = tuple(part.roll(1, dims=0) for part in right)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed)).to(device)
    rows = []
    for sigma in sigmas:
        sigma_t = torch.full((len(x0), 1, 1), float(sigma), device=device)
        noisy = x0 + sigma_t * noise
        model_in = scheduler.precondition_inputs(noisy, sigma_t)
        c_noise = scheduler.precondition_noise(sigma_t.flatten())
        row = {"sigma": float(sigma)}
        for name, (tokens, vector) in (("right", right), ("null", null), ("other", other)):
            out = diffusion(model_in, c_noise, image_tokens=tokens, image_vector=vector)
            denoised = scheduler.precondition_outputs(noisy, out, sigma_t)
            row[f"mse_{name}_picture"] = float((denoised - x0).square().mean())
        rows.append(row)
    sampled_textures = generator.textures(images, seed)
    sampled = diffusion.textures_to_tokens(sampled_textures)
    noise_ratio = texel_noise_ratio(sampled_textures.cpu(), textures.cpu())
    distance = torch.cdist(sampled.flatten(1).double(), x0.flatten(1).double()).square()
    distance = distance / x0[0].numel()
    own = distance.diagonal()
    return {
        "denoising": rows,
        "sampled": {
            "mse_own": float(own.mean()),
            "mse_other_styles": float((distance.sum(1) - own).mean() / (len(own) - 1)),
            "nearest_is_own": float(
                (distance.argmin(1).cpu() == torch.arange(len(own))).float().mean()
            ),
        },
        "texel_noise": {
            "ratio_per_channel": [round(float(r), 4) for r in noise_ratio],
            "latent_ratio": float(noise_ratio[:-1].mean()),
            "density_ratio": float(noise_ratio[-1]),
        },
        "output_head": _outside_head_range(diffusion.dit.proj_out.weight, sampled, x0),
    }


def _outside_head_range(weight: Tensor, sampled: Tensor, real: Tensor) -> dict:
    """Per-direction variance of tokens ``(B, L, outputs)`` outside the column space of the
    output head's ``(outputs, hidden)`` weight (see :func:`conditioning_check`)."""
    outputs, hidden = weight.shape
    report = {"outputs": outputs, "hidden": hidden}
    basis = head_complement(weight)
    for name, tokens in (("sampled", sampled), ("real", real)):
        flat = tokens.detach().double().cpu().flatten(0, 1)
        outside = (flat - flat.mean(0)) @ basis
        report[f"outside_variance_{name}"] = (
            float(outside.square().mean()) if outputs > hidden else 0.0
        )
    return report


def conditioning_table(report: dict) -> str:
    """Markdown of :func:`conditioning_check`'s report."""
    lines = [
        "| sigma | denoising MSE, right picture | null picture | other style's picture |",
        "|---|---|---|---|",
    ]
    for row in report["denoising"]:
        lines.append(
            f"| {row['sigma']:g} | {row['mse_right_picture']:.3f} | {row['mse_null_picture']:.3f} "
            f"| {row['mse_other_picture']:.3f} |"
        )
    sampled = report["sampled"]
    lines.append(
        f"\nSampled textures: MSE to their own style {sampled['mse_own']:.3f}, to the other "
        f"styles {sampled['mse_other_styles']:.3f}; nearest to their own style for "
        f"{100 * sampled['nearest_is_own']:.0f} % of the pictures."
    )
    noise, head = report["texel_noise"], report["output_head"]
    lines.append(
        f"Texel-to-texel noise of sampled over encoded real textures: latents "
        f"{noise['latent_ratio']:.2f}x, density {noise['density_ratio']:.2f}x (1 = as smooth). "
        f"Output head: {head['outputs']} outputs per token from {head['hidden']} features; "
        f"variance outside its range: sampled {head['outside_variance_sampled']:.3f}, real "
        f"{head['outside_variance_real']:.3f}.\n"
    )
    return "\n".join(lines)


def time_generation(
    generator: HairGenerator, image: np.ndarray, n_strands: int, repeats: int = 3
) -> dict[str, float]:
    """Median wall time of whole generations of ``n_strands`` strands (texture sampling +
    decoding) after one warm-up."""
    seeds = iter(range(repeats + 1))
    seconds, groom = timed(
        lambda: generator.generate(image, n_strands, seed=next(seeds)), generator.device, repeats
    )
    return {"seconds_median": float(np.median(seconds)), "strands": groom.n_strands}
