"""Flow matching (rectified flow): x_t = (1 − σ) x0 + σ ε, the network predicts ε − x0.

Timestep densities and loss weightings are diffusers' (``compute_density_for_timestep_sampling``,
``compute_loss_weighting_for_sd3``); timesteps are σ · num_train_timesteps as in
``FlowMatchEulerDiscreteScheduler``, so the model samples with that scheduler, or with
DPM-Solver++ / UniPC in their flow modes (see ``sampling.make_scheduler``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.training_utils import (
    compute_density_for_timestep_sampling,
    compute_loss_weighting_for_sd3,
)
from torch import Tensor

from difforge.core.diffusion.guidance import ConditionDropout, Denoiser


class FlowMatchingLoss:
    """Conditional flow-matching loss (Lipman et al. 2023; Liu et al. 2023; SD3's densities)."""

    def __init__(
        self,
        scheduler: FlowMatchEulerDiscreteScheduler,
        *,
        weighting_scheme: str = "logit_normal",
        logit_mean: float = 0.0,
        logit_std: float = 1.0,
        mode_scale: float = 1.29,
        loss_weighting: str = "none",
        condition_dropout: ConditionDropout | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.num_train_timesteps = scheduler.config.num_train_timesteps
        self.shift = scheduler.config.shift
        self.density = {
            "weighting_scheme": weighting_scheme,
            "logit_mean": logit_mean,
            "logit_std": logit_std,
            "mode_scale": mode_scale,
        }
        self.loss_weighting = loss_weighting
        self.condition_dropout = condition_dropout

    def __call__(
        self,
        denoiser: Denoiser,
        x0: Tensor,
        condition: Mapping[str, Any] | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        u = compute_density_for_timestep_sampling(
            batch_size=x0.shape[0], device=x0.device, generator=generator, **self.density
        )
        sigma = (self.shift * u / (1 + (self.shift - 1) * u)).to(x0)  # the scheduler's static shift
        s = sigma.view(-1, *([1] * (x0.ndim - 1)))
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        xt = (1 - s) * x0 + s * noise
        condition = dict(condition or {})
        if self.condition_dropout is not None:
            condition = self.condition_dropout(condition, generator)
        pred = denoiser(xt, sigma * self.num_train_timesteps, **condition)
        weight = compute_loss_weighting_for_sd3(self.loss_weighting, s).to(x0)
        per_sample = (weight * (pred.float() - (noise - x0).float()).square()).flatten(1).mean(1)
        return per_sample.mean()
