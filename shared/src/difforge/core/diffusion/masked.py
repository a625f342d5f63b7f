"""Absorbing-state ([MASK]) discrete diffusion: noise schedules, masking, SUBS, the weighted loss.

The forward process replaces each clean token by ``[MASK]`` with probability ``1 - alpha(t)``; the
network predicts the clean tokens of the masked positions. The training objective is the MDLM /
BD3-LM negative ELBO::

    loss = sum over masked positions of  w(t) * -log p_theta(x0_i | x_t),   w(t) = -alpha'(t) / (1 - alpha(t))

normalised by the number of tokens (``w = 1/t`` for both schedules here). Noise levels are drawn once
per block (BD3-LM; SDAR-VL's asynchronous block-wise schedule) or once per sequence (MDLM, LLaDA,
synchronous blocks), optionally clipped to ``[beta, omega]`` (BD3-LM's clipped schedules).
``weighting="effective"`` replaces ``w(t)`` by the inverse of the block's *realised* mask ratio
(SDAR-VL's effective mask-ratio scaling). The network is evaluated under the SUBS parameterisation:
the ``[MASK]`` logit is -inf and unmasked positions copy their input.

``MaskedDiffusionLoss`` runs the network with full attention over ``x_t`` (MDLM);
``difforge.core.diffusion.block.BlockDiffusionLoss`` is the same loss with BD3-LM's vectorised
block-causal pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from difforge.core.errors import ConfigError

__all__ = [
    "MaskSchedule",
    "MaskedDiffusionLoss",
    "effective_mask_weight",
    "mask_tokens",
    "masked_token_loss",
    "sample_noise_levels",
    "subs_logits",
]


@dataclass(frozen=True)
class MaskSchedule:
    """Absorbing-state schedule ``alpha(t)`` = probability that a token is still clean at level ``t``.

    - ``"linear"``: ``alpha(t) = 1 - t`` (LLaDA, dLLM's BD3-LM port).
    - ``"loglinear"``: total noise ``sigma(t) = -log(1 - (1 - eps) t)``, so ``alpha(t) = 1 - (1 - eps) t``
      (MDLM, bd3lms): at ``t = 1`` one token in ``1/eps`` stays clean.

    Noise levels are drawn uniformly from ``[t_min, t_max]``. The default ``t_min = 1e-3`` is MDLM's
    ``sampling_eps`` (it keeps ``w = 1/t`` finite); narrowing the range to ``[beta, omega]`` gives
    BD3-LM's clipped ("data-driven") schedules, whose mask rate stays in ``[beta, omega]`` (times
    ``1 - eps`` for log-linear). Linear with ``t_min = t_max = 1`` masks every token: with block size
    1 that is exactly the autoregressive next-token loss.
    """

    kind: Literal["linear", "loglinear"] = "loglinear"
    eps: float = 1e-3
    t_min: float = 1e-3
    t_max: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("linear", "loglinear"):
            raise ConfigError(
                f"mask schedule kind must be 'linear' or 'loglinear', got {self.kind!r}"
            )
        if not 0.0 <= self.eps < 1.0:
            raise ConfigError(f"mask schedule eps must be in [0, 1), got {self.eps}")
        if not 0.0 < self.t_min <= self.t_max <= 1.0:
            raise ConfigError(
                f"mask schedule needs 0 < t_min <= t_max <= 1, got [{self.t_min}, {self.t_max}]"
            )

    @property
    def _slope(self) -> float:
        # Both schedules have a mask rate linear in t; only the slope differs.
        return 1.0 if self.kind == "linear" else 1.0 - self.eps

    def mask_rate(self, t: Tensor) -> Tensor:
        """``1 - alpha(t)``: the probability that a token is ``[MASK]`` at level ``t``."""
        return self._slope * t

    def alpha(self, t: Tensor) -> Tensor:
        return 1.0 - self.mask_rate(t)

    def loss_weight(self, t: Tensor) -> Tensor:
        """ELBO weight ``-alpha'(t) / (1 - alpha(t))`` (= ``1/t`` for both schedules)."""
        return self._slope / self.mask_rate(t)

    def sample_t(
        self,
        shape: tuple[int, ...],
        *,
        antithetic: bool = True,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Noise levels uniform on ``[t_min, t_max]``.

        ``antithetic`` stratifies the draws (one in each of ``n`` equal strata, randomly assigned),
        the low-discrepancy sampling of MDLM/BD3-LM that lowers the variance of the batch loss.
        """
        n = math.prod(shape)
        u = torch.rand(n, generator=generator, device=device)
        if antithetic:
            strata = torch.randperm(n, generator=generator, device=device)
            u = (strata + u) / n
        return (self.t_min + (self.t_max - self.t_min) * u).view(shape)


def sample_noise_levels(
    schedule: MaskSchedule,
    batch_size: int,
    seq_len: int,
    block_size: int | None = None,
    *,
    asynchronous: bool = True,
    antithetic: bool = True,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Per-token noise levels ``(B, L)``, constant within each block.

    ``block_size=None`` treats the whole sequence as one block (MDLM). ``asynchronous=True`` draws
    one level per block (bd3lms ``_sample_t``; SDAR-VL's asynchronous block-wise noise scheduling);
    ``False`` shares one level across a sequence's blocks (synchronous).
    """
    block = seq_len if block_size is None else block_size
    num_blocks = -(-seq_len // block)
    levels = schedule.sample_t(
        (batch_size, num_blocks if asynchronous else 1),
        antithetic=antithetic,
        generator=generator,
        device=device,
    )
    levels = levels.expand(batch_size, num_blocks)
    return levels.repeat_interleave(block, dim=1)[:, :seq_len]


def mask_tokens(
    x0: Tensor,
    mask_rate: Tensor,
    mask_token_id: int,
    *,
    maskable: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Forward process: each token becomes ``mask_token_id`` with probability ``mask_rate``.

    ``mask_rate`` broadcasts against ``x0`` ``(B, L)``; ``maskable`` (bool, ``(B, L)``) marks the
    positions that may be masked (False for prompts and padding). Returns ``(x_t, masked)``.
    """
    draws = torch.rand(x0.shape, generator=generator, device=x0.device)
    masked = draws < mask_rate
    if maskable is not None:
        masked &= maskable
    return x0.masked_fill(masked, mask_token_id), masked


def subs_logits(logits: Tensor, x_t: Tensor, mask_token_id: int) -> Tensor:
    """SUBS parameterisation (MDLM): never predict ``[MASK]``; unmasked positions copy their input.

    Returns logits whose softmax is the model's ``p(x0 | x_t)``: the ``[MASK]`` logit is -inf, and at
    unmasked positions every logit is -inf except the input token's (0).
    """
    logits = logits.clone()
    logits[..., mask_token_id] = -math.inf
    copy = F.one_hot(x_t, logits.shape[-1]).bool()
    frozen = (x_t != mask_token_id)[..., None]
    copy_logits = torch.zeros_like(logits).masked_fill(~copy, -math.inf)
    return torch.where(frozen, copy_logits, logits)


def effective_mask_weight(
    masked: Tensor, block_size: int | None, maskable: Tensor | None = None
) -> Tensor:
    """SDAR-VL effective mask-ratio weights: each block's ``maskable / masked`` token count, ``(B, L)``.

    The realised fraction of masked tokens replaces the expected fraction ``t`` in ``1/t``, removing
    the extra variance of the Bernoulli mask draw.
    """
    batch, length = masked.shape
    block = length if block_size is None else block_size
    pad = -length % block
    valid = torch.ones_like(masked) if maskable is None else maskable

    def per_block(x: Tensor) -> Tensor:
        return F.pad(x.float(), (0, pad)).view(batch, -1, block).sum(-1)

    ratio = per_block(valid) / per_block(masked).clamp(min=1.0)
    return ratio.repeat_interleave(block, dim=1)[:, :length]


def masked_token_loss(
    logits: Tensor,
    x0: Tensor,
    x_t: Tensor,
    masked: Tensor,
    weight: Tensor,
    mask_token_id: int,
    maskable: Tensor | None = None,
) -> Tensor:
    """Weighted cross-entropy of the masked positions under SUBS, per token (LLaDA/MDLM).

    ``sum_masked weight * -log p(x0 | x_t) / number of maskable tokens``; unmasked positions add
    nothing (SUBS copies them exactly).
    """
    # At least float32 for the log-softmax (bf16 logits lose the small probabilities).
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    log_probs = subs_logits(logits, x_t, mask_token_id).log_softmax(-1)
    nll = -log_probs.gather(-1, x0[..., None]).squeeze(-1)
    per_token = torch.where(masked, weight * nll, torch.zeros_like(nll))
    count = masked.numel() if maskable is None else maskable.sum().clamp(min=1)
    return per_token.sum() / count


class MaskedDiffusionLoss:
    """Masked-diffusion NELBO (MDLM); EDM-style: ``loss = MaskedDiffusionLoss(...)(net, x0)``.

    ``net`` follows the DiT call convention ``net(tokens, **kwargs).sample -> (B, L, V)`` logits;
    ``net_kwargs`` (class labels, conditions, prefix tokens...) pass through. Subclasses change
    ``denoise`` (how the network sees ``x_t``), e.g. BD3-LM's vectorised block-causal pass.
    """

    def __init__(
        self,
        mask_token_id: int,
        schedule: MaskSchedule | None = None,
        block_size: int | None = None,
        *,
        asynchronous: bool = True,
        antithetic: bool = True,
        weighting: Literal["schedule", "effective"] = "schedule",
    ) -> None:
        if weighting not in ("schedule", "effective"):
            raise ConfigError(f"weighting must be 'schedule' or 'effective', got {weighting!r}")
        if block_size is not None and block_size < 1:
            raise ConfigError(f"block_size must be >= 1, got {block_size}")
        self.mask_token_id = mask_token_id
        self.schedule = schedule or MaskSchedule()
        self.block_size = block_size
        self.asynchronous = asynchronous
        self.antithetic = antithetic
        self.weighting = weighting

    def __call__(
        self,
        net: Callable[..., Any],
        x0: Tensor,
        *,
        maskable: Tensor | None = None,
        generator: torch.Generator | None = None,
        **net_kwargs: Any,
    ) -> Tensor:
        batch, length = x0.shape
        t = sample_noise_levels(
            self.schedule,
            batch,
            length,
            self.block_size,
            asynchronous=self.asynchronous,
            antithetic=self.antithetic,
            generator=generator,
            device=x0.device,
        )
        x_t, masked = mask_tokens(
            x0,
            self.schedule.mask_rate(t),
            self.mask_token_id,
            maskable=maskable,
            generator=generator,
        )
        logits = self.denoise(net, x_t, x0, **net_kwargs)
        if self.weighting == "schedule":
            weight = self.schedule.loss_weight(t)
        else:
            weight = effective_mask_weight(masked, self.block_size, maskable)
        return masked_token_loss(logits, x0, x_t, masked, weight, self.mask_token_id, maskable)

    def denoise(
        self, net: Callable[..., Any], x_t: Tensor, x0: Tensor, **net_kwargs: Any
    ) -> Tensor:
        """Logits ``(B, L, V)`` for ``x_t``; MDLM sees the whole noisy sequence bidirectionally."""
        return net(x_t, **net_kwargs).sample
