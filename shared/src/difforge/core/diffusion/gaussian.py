"""Gaussian diffusion losses: ε-, v- and x0-prediction on a DDPM schedule, and EDM's loss.

Each loss is a short class called as ``loss(denoiser, x0, condition)`` (EDM style). Noise schedules
and their algebra (``add_noise``, ``get_velocity``, the EDM preconditioning) come from the diffusers
schedulers, so training and sampling use one definition.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from diffusers import DDPMScheduler, EDMEulerScheduler
from diffusers.training_utils import compute_snr
from torch import Tensor

from difforge.core.diffusion.guidance import ConditionDropout, Denoiser


def _per_sample_mse(pred: Tensor, target: Tensor) -> Tensor:
    return (pred.float() - target.float()).square().flatten(1).mean(1)


class GaussianLoss:
    """MSE of the prediction named by ``scheduler.config.prediction_type``.

    ``epsilon`` (Ho et al. 2020), ``v_prediction`` (Salimans & Ho 2022) or ``sample`` (x0). Optional
    Min-SNR-γ weighting (Hang et al. 2023) and condition dropout for classifier-free guidance.
    """

    def __init__(
        self,
        scheduler: DDPMScheduler,
        *,
        condition_dropout: ConditionDropout | None = None,
        min_snr_gamma: float | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.prediction_type = scheduler.config.prediction_type
        if self.prediction_type not in ("epsilon", "v_prediction", "sample"):
            raise ValueError(f"unsupported prediction_type {self.prediction_type!r}")
        self.condition_dropout = condition_dropout
        self.min_snr_gamma = min_snr_gamma

    def __call__(
        self,
        denoiser: Denoiser,
        x0: Tensor,
        condition: Mapping[str, Any] | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        batch = x0.shape[0]
        steps = self.scheduler.config.num_train_timesteps
        t = torch.randint(0, steps, (batch,), generator=generator, device=x0.device)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        xt = self.scheduler.add_noise(x0, noise, t)
        if self.prediction_type == "epsilon":
            target = noise
        elif self.prediction_type == "v_prediction":
            target = self.scheduler.get_velocity(x0, noise, t)
        else:
            target = x0
        condition = dict(condition or {})
        if self.condition_dropout is not None:
            condition = self.condition_dropout(condition, generator)
        per_sample = _per_sample_mse(denoiser(xt, t, **condition), target)
        if self.min_snr_gamma is not None:
            snr = compute_snr(self.scheduler, t)
            clipped = snr.clamp(max=self.min_snr_gamma)
            if self.prediction_type == "epsilon":
                weight = clipped / snr
            elif self.prediction_type == "v_prediction":
                weight = clipped / (snr + 1)
            else:
                weight = clipped
            per_sample = per_sample * weight
        return per_sample.mean()


class EDMLoss:
    """Karras et al. (2022) loss: log-normal σ, preconditioned denoiser, λ(σ) = (σ² + σd²)/(σ σd)².

    The preconditioning (c_in, c_noise, c_skip, c_out) is the ``EDMEulerScheduler``'s, so a model
    trained here samples with that scheduler (or ``EDMDPMSolverMultistepScheduler``) unchanged.
    ``feature_weights`` (broadcast over the last dimension of ``x0``) weights the squared error per
    feature, e.g. DiffLocks' per-channel weights; ``None`` is the plain loss.
    """

    def __init__(
        self,
        scheduler: EDMEulerScheduler,
        *,
        p_mean: float = -1.2,
        p_std: float = 1.2,
        condition_dropout: ConditionDropout | None = None,
        feature_weights: Tensor | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.sigma_data = scheduler.config.sigma_data
        self.p_mean, self.p_std = p_mean, p_std
        self.condition_dropout = condition_dropout
        self.feature_weights = feature_weights

    def __call__(
        self,
        denoiser: Denoiser,
        x0: Tensor,
        condition: Mapping[str, Any] | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        shape = (x0.shape[0],) + (1,) * (x0.ndim - 1)
        sigma = (
            (torch.randn(shape, generator=generator, device=x0.device) * self.p_std + self.p_mean)
            .exp()
            .to(x0)
        )
        noisy = x0 + sigma * torch.randn(
            x0.shape, generator=generator, device=x0.device, dtype=x0.dtype
        )
        condition = dict(condition or {})
        if self.condition_dropout is not None:
            condition = self.condition_dropout(condition, generator)
        model_in = self.scheduler.precondition_inputs(noisy, sigma)
        c_noise = self.scheduler.precondition_noise(sigma.flatten())
        denoised = self.scheduler.precondition_outputs(
            noisy, denoiser(model_in, c_noise, **condition), sigma
        )
        weight = (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2
        if self.feature_weights is None:
            return (weight.flatten() * _per_sample_mse(denoised, x0)).mean()
        error = (denoised.float() - x0.float()).square() * self.feature_weights.to(x0.device)
        return (weight.flatten() * error.flatten(1).mean(1)).mean()
