"""What every sampler hands its ``callback`` after each step, in a module of its own.

It lives apart from :mod:`difforge.core.diffusion.sampling` so that the discrete samplers can share
it without importing diffusers' schedulers (and scipy.stats through them), which would add seconds
to the start of every command that decodes tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

__all__ = ["SamplerCallback", "SamplerStep"]


@dataclass(frozen=True)
class SamplerStep:
    """What every sampler (continuous :func:`sample`, discrete ``sample_block_diffusion``) hands
    its ``callback`` after each step: one signature, ``callback(step: SamplerStep) -> None``.

    ``index`` counts the steps of this call from 0; ``x`` is the sample (continuous) or the canvas
    (discrete) after the step. Continuous samplers fill ``t`` (the step's timestep) and ``next_t``
    (the next one, None after the last: what a cache hook needs before the next model call);
    discrete samplers fill ``block``, ``block_step``, ``start``/``end`` (the block's positions) and
    ``committed`` (``(B, end - start)``: the positions this step committed).
    """

    index: int
    x: Tensor
    t: Tensor | None = None
    next_t: Tensor | None = None
    block: int | None = None
    block_step: int | None = None
    start: int | None = None
    end: int | None = None
    committed: Tensor | None = None


SamplerCallback = Callable[[SamplerStep], None]
