# Masked and block discrete diffusion (masked.py, block.py).
from difforge.core.diffusion.block import (
    BlockDiffusionLoss,
    LogitsConstraint,
    StopCondition,
    block_causal_attention_mask,
    block_diffusion_attention_mask,
    commit_by_confidence,
    commit_counts,
    sample_autoregressive,
    sample_block_diffusion,
    stop_at_token,
)
from difforge.core.diffusion.masked import (
    MaskedDiffusionLoss,
    MaskSchedule,
    effective_mask_weight,
    mask_tokens,
    masked_token_loss,
    sample_noise_levels,
    subs_logits,
)

__all__ = [
    "BlockDiffusionLoss",
    "LogitsConstraint",
    "MaskSchedule",
    "MaskedDiffusionLoss",
    "StopCondition",
    "block_causal_attention_mask",
    "block_diffusion_attention_mask",
    "commit_by_confidence",
    "commit_counts",
    "effective_mask_weight",
    "mask_tokens",
    "masked_token_loss",
    "sample_autoregressive",
    "sample_block_diffusion",
    "sample_noise_levels",
    "stop_at_token",
    "subs_logits",
]
