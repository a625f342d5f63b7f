"""Classifier-free guidance: condition dropout at training time, guided predictions at sampling time.

Convention (as in TrajDLM and the HOSER-era papers): ``u + (w + 1)(c − u)``, so ``w = 0`` is the
plain conditional model and ``w > 0`` pushes away from the unconditional one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

# Every denoiser is called as ``denoiser(x, t, **condition)`` and returns a tensor shaped like ``x``
# (continuous) or logits ``(..., vocab)`` (discrete).
Denoiser = Callable[..., Tensor]


@dataclass(frozen=True)
class ConditionDropout:
    """Replace each sample's condition by its null value with probability ``p``.

    ``null_values`` maps a condition key to its null: a number fills the tensor (e.g. the null class
    id for ``class_labels``, 0 for a vector condition); keys not listed are zeroed.
    """

    p: float = 0.1
    null_values: Mapping[str, float | int] = field(default_factory=dict)

    def _null_like(self, key: str, value: Tensor) -> Tensor:
        return torch.full_like(value, self.null_values.get(key, 0))

    def __call__(
        self, condition: Mapping[str, Any], generator: torch.Generator | None = None
    ) -> dict[str, Any]:
        tensors = {k: v for k, v in condition.items() if isinstance(v, Tensor)}
        if not tensors or self.p <= 0:
            return dict(condition)
        ref = next(iter(tensors.values()))
        drop = torch.rand(ref.shape[0], generator=generator, device=ref.device) < self.p
        out = dict(condition)
        for key, value in tensors.items():
            keep = drop.view(-1, *([1] * (value.ndim - 1)))
            out[key] = torch.where(keep, self._null_like(key, value), value)
        return out

    def null(self, condition: Mapping[str, Any]) -> dict[str, Any]:
        """The unconditional counterpart of ``condition`` (every sample dropped)."""
        return {
            k: self._null_like(k, v) if isinstance(v, Tensor) else v for k, v in condition.items()
        }


def guidance_batch(
    x: Tensor, condition: Mapping[str, Any], uncondition: Mapping[str, Any]
) -> tuple[Tensor, dict[str, Any]]:
    """The doubled batch of one guided call: ``x`` twice and each tensor condition stacked with its
    unconditional counterpart (conditional half first); non-tensor entries are shared."""
    if set(condition) != set(uncondition):
        raise ValueError("condition and uncondition must have the same keys")
    both = {
        k: torch.cat([v, uncondition[k]]) if isinstance(v, Tensor) else v
        for k, v in condition.items()
    }
    return torch.cat([x, x]), both


def mix_guidance(output: Tensor, guidance_scale: float) -> Tensor:
    """``u + (w + 1)(c - u)`` from the output of a :func:`guidance_batch` call."""
    cond_out, uncond_out = output.chunk(2)
    return uncond_out + (guidance_scale + 1) * (cond_out - uncond_out)


def guided(
    denoiser: Denoiser,
    x: Tensor,
    t: Tensor,
    condition: Mapping[str, Any] | None = None,
    uncondition: Mapping[str, Any] | None = None,
    guidance_scale: float = 0.0,
    **shared: Any,
) -> Tensor:
    """One denoiser call with classifier-free guidance; conditional and unconditional in one batch.

    ``shared`` keyword arguments are passed unchanged to both halves (they must not depend on the
    batch, e.g. an attention mask of shape ``(L, L)``).
    """
    condition = dict(condition or {})
    if uncondition is None or guidance_scale == 0:
        return denoiser(x, t, **condition, **shared)
    x_both, both = guidance_batch(x, condition, uncondition)
    t_both = torch.cat([t, t]) if t.ndim else t
    return mix_guidance(denoiser(x_both, t_both, **both, **shared), guidance_scale)
