"""Block discrete diffusion (BD3-LM): vectorised training and a KV-cached block sampler.

A sequence is cut into blocks of ``block_size`` tokens; blocks are generated left to right and the
tokens inside a block by masked diffusion conditioned on the clean earlier blocks. Block size 1 is
autoregressive decoding, block size = sequence length is MDLM.

Training (``BlockDiffusionLoss``) runs one pass over ``x_t ⊕ x_0`` (length 2L, positions repeated)
under the union of three masks (Arriola et al. 2025, Fig. 2): block-diagonal on the noisy half
(each noisy block sees itself), offset block-causal (a noisy block sees the clean blocks before it)
and block-causal on the clean half (a clean block sees itself and earlier clean blocks, building the
keys/values the next noisy block needs). Logits are read from the noisy half.

Sampling (``sample_block_diffusion``) keeps an exact KV cache of the committed blocks: the clean
prefix never changes, so its keys/values are computed once. Each denoising step runs the model on
the current block only; the pass that stores a finished block's keys/values is fused with the first
denoising step of the next block (one call, block-causal mask, the new block's entries cropped off
the cache), so block size 1 costs one model call per token, like an autoregressive model.
With ``use_cache=False`` it recomputes the whole prefix at every step: the reference the tests
and benchmarks compare against.

Tokens are committed by confidence (Fast-dLLM ``get_transfer_index``): a fixed count per step spread
evenly over ``steps_per_block`` steps, and/or every masked token whose confidence exceeds
``threshold`` (at least one per step). A logits constraint ``(logits, tokens, positions) -> logits``
runs before every commit decision so domains can forbid tokens by setting their logits to -inf.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from difforge.core.diffusion.guidance import guidance_batch, mix_guidance
from difforge.core.diffusion.masked import MaskedDiffusionLoss, subs_logits
from difforge.core.diffusion.steps import SamplerCallback, SamplerStep
from difforge.core.errors import ConfigError
from difforge.core.nn.dit import KVCache

__all__ = [
    "BlockDiffusionLoss",
    "LogitsConstraint",
    "StopCondition",
    "block_causal_attention_mask",
    "block_diffusion_attention_mask",
    "commit_by_confidence",
    "commit_counts",
    "sample_autoregressive",
    "sample_block_diffusion",
    "stop_at_token",
]

# (logits (B, n, V), current tokens (B, L) with [MASK] where unknown, absolute positions (n,)) -> logits
# with forbidden tokens at -inf; it must leave at least one token allowed at every masked position.
LogitsConstraint = Callable[[Tensor, Tensor, Tensor], Tensor]
# tokens generated so far (B, L') -> (B,) bool: True where the row is finished
StopCondition = Callable[[Tensor], Tensor]


################################################################################
#                               Attention masks                                #
################################################################################


def block_diffusion_attention_mask(
    seq_len: int, block_size: int, device: torch.device | str | None = None
) -> Tensor:
    """BD3-LM training mask over ``x_t ⊕ x_0``: bool ``(2L, 2L)``, True = may attend.

    Union of M_BD (noisy block -> same noisy block), M_OBC (noisy block -> earlier clean blocks) and
    M_BC (clean block -> same and earlier clean blocks). Clean tokens never see noisy ones.
    """
    index = torch.arange(2 * seq_len, device=device)
    clean = index >= seq_len
    block = (index % seq_len) // block_size
    q_clean, k_clean = clean[:, None], clean[None, :]
    q_block, k_block = block[:, None], block[None, :]
    block_diagonal = ~q_clean & ~k_clean & (q_block == k_block)
    offset_block_causal = ~q_clean & k_clean & (q_block > k_block)
    block_causal = q_clean & k_clean & (q_block >= k_block)
    return block_diagonal | offset_block_causal | block_causal


def block_causal_attention_mask(
    start: int, end: int, block_size: int, past: int = 0, device: torch.device | str | None = None
) -> Tensor:
    """Mask for the tokens at positions ``[start, end)`` attending to ``past`` cached entries and to
    themselves: bool ``(end - start, past + end - start)``.

    Cached entries (the condition prefix and committed blocks, all earlier) are always visible; among
    the new tokens a token sees its own block and earlier blocks.
    """
    block = torch.arange(start, end, device=device) // block_size
    new = block[None, :] <= block[:, None]
    seen = torch.ones(end - start, past, dtype=torch.bool, device=device)
    return torch.cat([seen, new], dim=1)


################################################################################
#                                   Training                                   #
################################################################################

# DiT keyword arguments that may hold one value per token, and the rank they then have.
_PER_TOKEN_RANK = {"timestep": 2, "cond": 3}


def _is_per_token(name: str, value: Any) -> bool:
    return isinstance(value, Tensor) and value.ndim == _PER_TOKEN_RANK.get(name, -1)


class BlockDiffusionLoss(MaskedDiffusionLoss):
    """BD3-LM NELBO: per-block noise levels, ``1/t`` weights, one vectorised pass over ``x_t ⊕ x_0``.

    ``BlockDiffusionLoss(mask_token_id, block_size=8)(net, x0)``; options as ``MaskedDiffusionLoss``
    (``asynchronous=False`` shares one level across a sequence's blocks; ``weighting="effective"``
    is SDAR-VL's effective mask-ratio scaling).
    """

    def __init__(self, mask_token_id: int, block_size: int, **kwargs: Any) -> None:
        super().__init__(mask_token_id, block_size=block_size, **kwargs)

    def denoise(
        self, net: Callable[..., Any], x_t: Tensor, x0: Tensor, **net_kwargs: Any
    ) -> Tensor:
        length = x_t.shape[1]
        prefix = net_kwargs.get("prefix_embeds")
        n_prefix = prefix.shape[1] if prefix is not None else 0
        positions = torch.arange(length, device=x_t.device).repeat(2) + n_prefix
        mask = block_diffusion_attention_mask(length, self.block_size, x_t.device)
        kwargs = {
            name: torch.cat([value, value], dim=1) if _is_per_token(name, value) else value
            for name, value in net_kwargs.items()
        }
        out = net(
            torch.cat([x_t, x0], dim=1), attention_mask=mask, position_ids=positions, **kwargs
        )
        return out.sample[:, :length]


################################################################################
#                                 Commit rule                                  #
################################################################################
# Written here rather than taken from diffusers' BlockRefinementScheduler.step: the rule is the same
# (tests check it against that scheduler), but its step loops over batch rows with .item() host
# syncs, keeps per-block state, and assumes one global commit schedule, while a batch here may mix
# rows with different numbers of masked tokens (prompts ending mid-block).


def commit_counts(num_masked: Tensor, steps: int) -> Tensor:
    """Spread each row's masked-token count evenly over ``steps`` steps, remainder first: ``(B, steps)``."""
    base = num_masked[:, None] // steps
    remainder = num_masked[:, None] % steps
    return base + (torch.arange(steps, device=num_masked.device) < remainder).long()


def commit_by_confidence(
    logits: Tensor,
    tokens: Tensor,
    mask_token_id: int,
    *,
    count: Tensor | int = 1,
    threshold: float | None = None,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One commit step: fill some masked positions of ``tokens`` ``(B, n)`` from ``logits`` ``(B, n, V)``.

    Candidates are the argmax (Gumbel-max sampling at ``temperature > 0``); confidence is the
    softmax probability of the candidate. Commits the ``count`` most confident masked positions per
    row (int or ``(B,)``) and, with ``threshold``, also every masked position above it (Fast-dLLM's
    confidence-aware parallel decoding with ``count=1``).
    """
    masked = tokens == mask_token_id
    scores = logits.to(torch.promote_types(logits.dtype, torch.float32))
    if temperature > 0:
        uniform = torch.rand(scores.shape, generator=generator, device=scores.device)
        gumbel = -torch.log(-torch.log(uniform.clamp(min=1e-20)))
        candidates = (scores / temperature + gumbel).argmax(-1)
    else:
        candidates = scores.argmax(-1)
    confidence = scores.softmax(-1).gather(-1, candidates[..., None]).squeeze(-1)
    confidence = confidence.masked_fill(~masked, -math.inf)
    rank = confidence.argsort(dim=-1, descending=True).argsort(dim=-1)
    count = torch.as_tensor(count, device=tokens.device)
    chosen = rank < (count[:, None] if count.ndim else count)
    if threshold is not None:
        chosen |= confidence > threshold
    return torch.where(masked & chosen, candidates, tokens)


def stop_at_token(token_id: int) -> StopCondition:
    """Stop condition: a row is finished once it contains ``token_id`` (e.g. EOS)."""

    def stop(tokens: Tensor) -> Tensor:
        return (tokens == token_id).any(dim=1)

    return stop


################################################################################
#                                   Sampling                                   #
################################################################################


def _crop(cache: KVCache, length: int) -> KVCache:
    return KVCache([k[:, :, :length] for k in cache.keys], [v[:, :, :length] for v in cache.values])


class _Denoiser:
    """One model call on a span of new tokens: conditions, prefix tokens, CFG and the cache.

    Classifier-free guidance runs the conditional and unconditional halves as one doubled batch
    (``guidance_batch``) and mixes the logits ``u + (w + 1)(c - u)`` (``mix_guidance``, as
    LLaDA); the cache then holds both halves. Prefix condition tokens are sent until a call has
    stored them in the cache.
    """

    def __init__(
        self,
        model: Callable[..., Any],
        extra_args: dict[str, Any] | None,
        guidance_scale: float,
        uncond_args: dict[str, Any] | None,
    ) -> None:
        self.model = model
        self.guidance_scale = guidance_scale
        self.cond = dict(extra_args or {})
        self.uncond = None
        if uncond_args is not None and guidance_scale != 0:
            unknown = sorted(set(uncond_args) - set(self.cond))
            if unknown:
                raise ConfigError(f"uncond_args keys {unknown} are not in extra_args")
            self.uncond = {**self.cond, **uncond_args}
        prefix = self.cond.get("prefix_embeds")
        self.prefix_len = prefix.shape[1] if prefix is not None else 0
        self.prefix_cached = False

    def _call_args(self, args: dict[str, Any], start: int, end: int) -> dict[str, Any]:
        return {
            name: value[:, start:end] if _is_per_token(name, value) else value
            for name, value in args.items()
            if name != "prefix_embeds" or not self.prefix_cached
        }

    def __call__(
        self,
        tokens: Tensor,
        start: int,
        attention_mask: Tensor | None,
        cache: KVCache | None,
        use_cache: bool,
    ) -> tuple[Tensor, KVCache | None]:
        end = start + tokens.shape[1]
        cond = self._call_args(self.cond, start, end)
        # Per-row tensors are split into the two CFG halves; the rest is shared by both.
        shared = {
            name: cond.pop(name)
            for name in list(cond)
            if not isinstance(cond[name], Tensor) or name == "embedding_weight"
        }
        shared.update(
            attention_mask=attention_mask,
            position_ids=torch.arange(start, end, device=tokens.device) + self.prefix_len,
            past_key_values=cache,
            use_cache=use_cache,
        )
        if self.uncond is None:
            out = self.model(tokens, **cond, **shared)
            logits = out.sample
        else:
            uncond = {
                k: v for k, v in self._call_args(self.uncond, start, end).items() if k in cond
            }
            tokens_both, both = guidance_batch(tokens, cond, uncond)
            out = self.model(tokens_both, **both, **shared)
            logits = mix_guidance(out.sample, self.guidance_scale)
        if use_cache:
            self.prefix_cached = True
        return logits, out.past_key_values


@torch.no_grad()
def sample_block_diffusion(
    model: Callable[..., Any],
    x: Tensor,
    *,
    block_size: int,
    mask_token_id: int,
    steps_per_block: int | None = None,
    threshold: float | None = None,
    temperature: float = 0.0,
    constraint: LogitsConstraint | None = None,
    stop: StopCondition | None = None,
    generator: torch.Generator | None = None,
    extra_args: dict[str, Any] | None = None,
    guidance_scale: float = 0.0,
    uncond_args: dict[str, Any] | None = None,
    callback: SamplerCallback | None = None,
    use_cache: bool = True,
) -> Tensor:
    """Block-by-block masked-diffusion decoding with an exact KV cache of the committed blocks.

    ``x`` ``(B, L)`` is the canvas: known tokens (a prompt, fixed tokens) and ``mask_token_id`` at
    the positions to generate; blocks are ``[k * block_size, (k + 1) * block_size)``. Returns the
    filled canvas, cut after the first block at which ``stop`` holds for every row.

    Commit rule per step (``commit_by_confidence``): ``steps_per_block`` spreads each block's masked
    tokens evenly over that many steps (the fixed count); ``threshold`` also commits every token
    whose confidence exceeds it (alone: at least one per step, Fast-dLLM). Neither: one per step.
    ``constraint`` edits the logits of the current block before every commit (set forbidden tokens to
    -inf). ``extra_args`` go to the model (``class_labels``, ``cond``, ``prefix_embeds``,
    ``encoder_hidden_states``, ``embedding_weight``; per-token ``cond``/``timestep`` ``(B, L, ...)``
    are sliced to the positions of each call). With ``uncond_args`` (replacing entries of
    ``extra_args``), classifier-free guidance mixes the logits as ``u + (w + 1)(c - u)``,
    ``w = guidance_scale``. ``callback`` receives a ``SamplerStep`` after every step.

    ``use_cache=False`` recomputes the whole prefix at every step: the reference path (same tokens
    for the same seed, ``O(prefix)`` more work per step) that tests and benchmarks compare against.
    """
    if x.ndim != 2 or x.dtype != torch.long:
        raise ConfigError(
            f"the canvas must be a (batch, length) LongTensor, got {tuple(x.shape)} {x.dtype}"
        )
    if block_size < 1:
        raise ConfigError(f"block_size must be >= 1, got {block_size}")
    if steps_per_block is not None and steps_per_block < 1:
        raise ConfigError(f"steps_per_block must be >= 1, got {steps_per_block}")
    if threshold is not None and not 0.0 < threshold <= 1.0:
        raise ConfigError(f"threshold must be in (0, 1], got {threshold}")
    if temperature < 0:
        raise ConfigError(f"temperature must be >= 0, got {temperature}")

    denoise = _Denoiser(model, extra_args, guidance_scale, uncond_args)
    canvas = x.clone()
    length = canvas.shape[1]
    cache: KVCache | None = None
    pending = 0  # canvas[:, pending:start] is clean but not yet in the cache
    index = 0  # steps taken in this call, over all blocks
    for block_index, start in enumerate(range(0, length, block_size)):
        end = min(start + block_size, length)
        positions = torch.arange(start, end, device=canvas.device)
        masked = canvas[:, start:end] == mask_token_id
        # Fixed count per step from steps_per_block; threshold alone commits at least one per step.
        counts = commit_counts(masked.sum(1), steps_per_block) if steps_per_block else None
        step = 0
        while masked.any():
            if not use_cache:
                logits, _ = denoise(
                    canvas[:, :end],
                    0,
                    block_causal_attention_mask(0, end, block_size, 0, canvas.device),
                    None,
                    False,
                )
            elif pending < start:
                # Store the finished blocks' keys/values and denoise this block in one call.
                past = cache.length if cache is not None else 0
                mask = block_causal_attention_mask(pending, end, block_size, past, canvas.device)
                logits, cache = denoise(canvas[:, pending:end], pending, mask, cache, True)
                cache = _crop(cache, cache.length - (end - start))
                pending = start
            else:
                logits, _ = denoise(canvas[:, start:end], start, None, cache, False)
            logits = subs_logits(logits[:, -(end - start) :], canvas[:, start:end], mask_token_id)
            if constraint is not None:
                logits = constraint(logits, canvas, positions)
            before = canvas[:, start:end].clone()
            canvas[:, start:end] = commit_by_confidence(
                logits,
                before,
                mask_token_id,
                count=counts[:, step] if counts is not None else 1,
                threshold=threshold,
                temperature=temperature,
                generator=generator,
            )
            masked = canvas[:, start:end] == mask_token_id
            if callback is not None:
                callback(
                    SamplerStep(
                        index=index,
                        x=canvas,
                        block=block_index,
                        block_step=step,
                        start=start,
                        end=end,
                        committed=before != canvas[:, start:end],
                    )
                )
            step += 1
            index += 1
        if stop is not None and bool(stop(canvas[:, :end]).all()):
            return canvas[:, :end]
    return canvas


def sample_autoregressive(
    model: Callable[..., Any],
    x: Tensor,
    *,
    mask_token_id: int,
    temperature: float = 0.0,
    constraint: LogitsConstraint | None = None,
    stop: StopCondition | None = None,
    generator: torch.Generator | None = None,
    extra_args: dict[str, Any] | None = None,
    guidance_scale: float = 0.0,
    uncond_args: dict[str, Any] | None = None,
    callback: SamplerCallback | None = None,
) -> Tensor:
    """Autoregressive decoding with a KV cache: ``sample_block_diffusion`` with block size 1.

    For a model trained with ``BlockDiffusionLoss(block_size=1)``; with
    ``MaskSchedule(kind="linear", t_min=1, t_max=1)`` that loss is exactly the next-token
    cross-entropy. One model call per token (the previous token's cache pass is fused with the next
    prediction).
    """
    return sample_block_diffusion(
        model,
        x,
        block_size=1,
        mask_token_id=mask_token_id,
        steps_per_block=None,
        threshold=None,
        temperature=temperature,
        constraint=constraint,
        stop=stop,
        generator=generator,
        extra_args=extra_args,
        guidance_scale=guidance_scale,
        uncond_args=uncond_args,
        callback=callback,
        use_cache=True,
    )
