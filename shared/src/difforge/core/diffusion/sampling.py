"""Sampling continuous diffusion models through diffusers schedulers.

``make_scheduler`` names every supported (training family, sampler) pair; ``sample`` is one loop
that serves them all (the diffusers contract: ``set_timesteps``, ``scale_model_input``, ``step``),
with classifier-free guidance and the cache context the diffusers cache hooks need.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Literal

import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EDMDPMSolverMultistepScheduler,
    EDMEulerScheduler,
    FlowMatchEulerDiscreteScheduler,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from torch import Tensor
from tqdm.auto import tqdm

from difforge.core.diffusion.guidance import Denoiser, guided
from difforge.core.diffusion.steps import SamplerCallback, SamplerStep

__all__ = ["SAMPLERS", "SamplerCallback", "SamplerStep", "make_scheduler", "sample"]


Family = Literal["gaussian", "flow", "edm"]

# Which samplers each training family can use. The first entry is the family's training scheduler.
SAMPLERS: dict[str, tuple[str, ...]] = {
    "gaussian": ("ddpm", "ddim", "dpmsolver++", "unipc"),
    "flow": ("flow_euler", "dpmsolver++", "unipc"),
    "edm": ("edm_euler", "edm_dpmsolver++"),
}


def make_scheduler(
    family: Family,
    sampler: str | None = None,
    *,
    prediction_type: str = "v_prediction",
    num_train_timesteps: int = 1000,
    beta_schedule: str = "linear",
    flow_shift: float = 1.0,
    sigma_data: float = 0.5,
) -> SchedulerMixin:
    """A diffusers scheduler for ``family`` (how the model was trained) and ``sampler``.

    v-prediction is the Gaussian default: on few-step deterministic samplers (DDIM, DPM-Solver++,
    UniPC) an ε model's error at the noisiest step is amplified by 1/√ᾱ_T when x0 is formed.
    The default ``linear`` betas keep ᾱ_T away from zero: with ``squaredcos_cap_v2`` the x0 that
    DPM-Solver++ derives from an ε prediction at the first step divides by √ᾱ_T ≈ 0 and diverges.

    ``sampler=None`` gives the family's training scheduler (DDPM, flow-matching Euler or EDM Euler).
    """
    if family not in SAMPLERS:
        raise ValueError(f"unknown diffusion family {family!r}; choose from {sorted(SAMPLERS)}")
    sampler = sampler or SAMPLERS[family][0]
    if sampler not in SAMPLERS[family]:
        raise ValueError(
            f"sampler {sampler!r} does not fit {family!r} models; choose from {SAMPLERS[family]}"
        )
    if family == "gaussian":
        common = {
            "num_train_timesteps": num_train_timesteps,
            "beta_schedule": beta_schedule,
            "prediction_type": prediction_type,
        }
        if sampler == "ddpm":
            return DDPMScheduler(**common, clip_sample=False)
        if sampler == "ddim":
            return DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=True)
        if sampler == "dpmsolver++":
            return DPMSolverMultistepScheduler(
                **common, algorithm_type="dpmsolver++", solver_order=2
            )
        return UniPCMultistepScheduler(**common)
    if family == "flow":
        if sampler == "flow_euler":
            return FlowMatchEulerDiscreteScheduler(
                num_train_timesteps=num_train_timesteps, shift=flow_shift
            )
        flow = {
            "num_train_timesteps": num_train_timesteps,
            "prediction_type": "flow_prediction",
            "use_flow_sigmas": True,
            "flow_shift": flow_shift,
        }
        if sampler == "dpmsolver++":
            return DPMSolverMultistepScheduler(**flow, algorithm_type="dpmsolver++", solver_order=2)
        return UniPCMultistepScheduler(**flow)
    edm = {"sigma_data": sigma_data, "prediction_type": prediction_type}
    if sampler == "edm_euler":
        return EDMEulerScheduler(**edm)
    return EDMDPMSolverMultistepScheduler(**edm, algorithm_type="dpmsolver++", solver_order=2)


@torch.no_grad()
def sample(
    denoiser: Denoiser,
    scheduler: SchedulerMixin,
    shape: tuple[int, ...],
    *,
    num_inference_steps: int = 50,
    condition: Mapping[str, Any] | None = None,
    uncondition: Mapping[str, Any] | None = None,
    guidance_scale: float = 0.0,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    cache_model: Any = None,
    callback: SamplerCallback | None = None,
    progress: bool = False,
) -> Tensor:
    """Draw samples of ``shape`` by running ``scheduler`` from noise to data.

    ``cache_model`` is the model whose diffusers cache hooks (``enable_cache``) should see each step;
    ``callback`` gets a :class:`SamplerStep` after every step (its ``next_t`` can feed
    PyramidAttentionBroadcast the timestep of the next model call).
    """
    scheduler = type(scheduler).from_config(
        scheduler.config
    )  # fresh state; the caller's is untouched
    scheduler.set_timesteps(num_inference_steps, device=device)
    x = torch.randn(shape, generator=generator, dtype=dtype).to(device)
    x = x * getattr(scheduler, "init_noise_sigma", 1.0)  # flow schedulers start at unit noise
    step_kwargs = (
        {"generator": generator}
        if "generator" in inspect.signature(scheduler.step).parameters
        else {}
    )
    scale_input = hasattr(type(scheduler), "scale_model_input")  # flow schedulers have none
    use_cache_context = cache_model is not None and getattr(cache_model, "is_cache_enabled", False)
    timesteps = scheduler.timesteps
    for i, t in enumerate(tqdm(timesteps, disable=not progress, desc="sampling")):
        model_in = scheduler.scale_model_input(x, t) if scale_input else x
        t_batch = t.to(device=device, dtype=dtype).expand(shape[0])
        if use_cache_context:
            with cache_model.cache_context("denoise"):
                pred = guided(denoiser, model_in, t_batch, condition, uncondition, guidance_scale)
        else:
            pred = guided(denoiser, model_in, t_batch, condition, uncondition, guidance_scale)
        x = scheduler.step(pred, t, x, **step_kwargs).prev_sample
        if callback is not None:
            next_t = timesteps[i + 1] if i + 1 < len(timesteps) else None
            callback(SamplerStep(index=i, x=x, t=t, next_t=next_t))
    return x
