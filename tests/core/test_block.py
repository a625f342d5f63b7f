"""Block diffusion: attention masks, vectorised loss, commit rule, KV-cached sampler, constraints, CFG."""

import math

import pytest
import torch
from diffusers import BlockRefinementScheduler

from difforge.core.diffusion.block import (
    BlockDiffusionLoss,
    block_causal_attention_mask,
    block_diffusion_attention_mask,
    commit_by_confidence,
    commit_counts,
    sample_autoregressive,
    sample_block_diffusion,
    stop_at_token,
)
from difforge.core.diffusion.masked import MaskSchedule
from difforge.core.errors import ConfigError
from difforge.core.nn.dit import DiTBackbone, DiTOutput
from difforge.core.testing import imported_by
from difforge.core.toy import MarkovChain, legal_transition_rate

VOCAB = 12  # 11 real tokens + [MASK]
MASK = 11


def random_dit(dtype=torch.float64, **kwargs) -> DiTBackbone:
    """Tiny DiT with random weights (adaLN-Zero makes a fresh one the identity), by default in
    float64 so that cached and uncached passes agree far below any confidence gap."""
    torch.manual_seed(0)
    model = DiTBackbone.from_preset("tiny", vocab_size=VOCAB, use_timestep=False, **kwargs)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    return model.to(dtype).eval()


class CountingModel:
    def __init__(self, model) -> None:
        self.model, self.calls, self.tokens = model, 0, 0

    def __call__(self, tokens, **kwargs):
        self.calls += 1
        self.tokens += tokens.numel()
        return self.model(tokens, **kwargs)


# ----------------------------------------------------------------------------- masks


def brute_force_bd3_mask(seq_len: int, block_size: int) -> torch.Tensor:
    mask = torch.zeros(2 * seq_len, 2 * seq_len, dtype=torch.bool)
    for q in range(2 * seq_len):
        for k in range(2 * seq_len):
            q_clean, k_clean = q >= seq_len, k >= seq_len
            q_block, k_block = (q % seq_len) // block_size, (k % seq_len) // block_size
            if not q_clean and not k_clean:
                mask[q, k] = q_block == k_block  # M_BD
            elif not q_clean and k_clean:
                mask[q, k] = k_block < q_block  # M_OBC
            elif q_clean and k_clean:
                mask[q, k] = k_block <= q_block  # M_BC
    return mask


@pytest.mark.parametrize(("seq_len", "block_size"), [(8, 1), (8, 2), (10, 4), (12, 3), (6, 6)])
def test_bd3_mask_equals_brute_force(seq_len, block_size):
    assert torch.equal(
        block_diffusion_attention_mask(seq_len, block_size),
        brute_force_bd3_mask(seq_len, block_size),
    )


@pytest.mark.parametrize(
    ("start", "end", "block_size", "past"), [(0, 9, 4, 0), (4, 12, 4, 7), (3, 5, 1, 3)]
)
def test_block_causal_mask_equals_brute_force(start, end, block_size, past):
    expected = torch.ones(end - start, past + end - start, dtype=torch.bool)
    for i, q in enumerate(range(start, end)):
        for j, k in enumerate(range(start, end)):
            expected[i, past + j] = k // block_size <= q // block_size
    assert torch.equal(block_causal_attention_mask(start, end, block_size, past), expected)


# ------------------------------------------------------------------------------ loss


def test_vectorised_pass_equals_block_by_block_conditionals():
    # Noisy block b in the x_t ⊕ x_0 pass must see exactly x_t^b and the clean blocks before it.
    model = random_dit()
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, MASK, (2, 10), generator=gen)
    x_t = torch.where(torch.rand(2, 10, generator=gen) < 0.5, MASK, x0)
    loss_fn = BlockDiffusionLoss(MASK, block_size=4)
    vectorised = loss_fn.denoise(model, x_t, x0)
    for start in range(0, 10, 4):
        end = min(start + 4, 10)
        context = torch.cat([x0[:, :start], x_t[:, start:end]], 1)
        mask = block_causal_attention_mask(0, end, 4)
        reference = model(context, attention_mask=mask).sample[:, start:end]
        assert torch.allclose(vectorised[:, start:end], reference, atol=1e-10)


def test_block_loss_backpropagates_with_class_labels_and_per_token_cond():
    model = random_dit(torch.float32, num_classes=3, cond_dim=2).train()
    x0 = torch.randint(0, MASK, (4, 12))
    loss = BlockDiffusionLoss(MASK, block_size=4)(
        model, x0, class_labels=torch.tensor([0, 1, 2, 3]), cond=torch.randn(4, 12, 2)
    )
    loss.backward()
    assert torch.isfinite(loss) and model.class_embed.weight.grad.abs().sum() > 0
    assert model.cond_embed[0].weight.grad.abs().sum() > 0


def test_block_size_one_with_full_masking_is_next_token_loss():
    model = random_dit()
    x0 = torch.randint(0, MASK, (3, 7), generator=torch.Generator().manual_seed(0))
    loss = BlockDiffusionLoss(MASK, 1, schedule=MaskSchedule(kind="linear", t_min=1.0, t_max=1.0))(
        model, x0
    )
    # AR: position i predicted from x0[:i] (and its own [MASK]), every token counted once.
    nll = 0.0
    for i in range(7):
        context = torch.cat([x0[:, :i], torch.full((3, 1), MASK)], 1)
        logits = model(
            context, attention_mask=torch.ones(i + 1, i + 1, dtype=torch.bool).tril()
        ).sample[:, -1]
        logits[:, MASK] = -math.inf
        nll = nll - logits.log_softmax(-1).gather(1, x0[:, i : i + 1]).sum()
    assert torch.allclose(loss, nll / 21)


# ----------------------------------------------------------------------- commit rule


def test_commit_counts_spread_evenly():
    counts = commit_counts(torch.tensor([8, 5, 0, 3]), 3)
    assert counts.tolist() == [[3, 3, 2], [2, 2, 1], [0, 0, 0], [1, 1, 1]]


def test_commit_by_confidence_count_and_threshold():
    probs = torch.tensor([[[0.9, 0.1, 0.0], [0.6, 0.4, 0.0], [0.2, 0.8, 0.0], [0.5, 0.5, 0.0]]])
    logits = probs.clamp(min=1e-9).log()
    tokens = torch.tensor([[2, 2, 2, 0]])  # 2 = [MASK]; the last position is already known
    assert commit_by_confidence(logits, tokens, 2, count=1).tolist() == [[0, 2, 2, 0]]
    assert commit_by_confidence(logits, tokens, 2, count=2).tolist() == [[0, 2, 1, 0]]
    # Threshold: everything above 0.7, and at least the top-1 if none is.
    assert commit_by_confidence(logits, tokens, 2, threshold=0.7).tolist() == [[0, 2, 1, 0]]
    assert commit_by_confidence(logits, tokens, 2, threshold=0.95).tolist() == [[0, 2, 2, 0]]
    assert commit_by_confidence(logits, tokens, 2, count=3, threshold=0.7).tolist() == [
        [0, 0, 1, 0]
    ]
    assert commit_by_confidence(logits, torch.tensor([[0, 1, 0, 0]]), 2, count=4).tolist() == [
        [0, 1, 0, 0]
    ]


@pytest.mark.parametrize(("steps", "threshold"), [(4, 2.0), (4, 0.3), (8, 0.2), (2, 0.9)])
def test_commit_rule_matches_diffusers_block_refinement_at_temperature_zero(steps, threshold):
    # Same rule as diffusers' BlockRefinementScheduler.step (greedy): at least the scheduled count,
    # all above the threshold. threshold=2 disables it (fixed count per step).
    gen = torch.Generator().manual_seed(steps)
    scheduler = BlockRefinementScheduler(
        block_length=8, num_inference_steps=steps, threshold=threshold
    )
    scheduler.set_timesteps(steps)
    ours = theirs = torch.full((3, 8), MASK)
    for step in range(steps):
        logits = 3 * torch.randn(3, 8, VOCAB, generator=gen)
        logits[..., MASK] = -math.inf
        counts = commit_counts(torch.full((3,), 8), steps)[:, step]
        ours = commit_by_confidence(logits, ours, MASK, count=counts, threshold=threshold)
        theirs = scheduler.step(
            logits, step, theirs, mask_token_id=MASK, threshold=threshold
        ).prev_sample
        assert torch.equal(ours, theirs)
    assert not (ours == MASK).any()


def test_temperature_sampling_follows_softmax_and_respects_minus_inf():
    logits = torch.tensor([0.0, math.log(3.0), -math.inf, -math.inf]).expand(4000, 1, 4)
    tokens = torch.full((4000, 1), 3)
    out = commit_by_confidence(
        logits, tokens, 3, temperature=1.0, generator=torch.Generator().manual_seed(0)
    )
    share = (out == 1).float().mean().item()
    assert abs(share - 0.75) < 0.03 and not (out >= 2).any()
    again = commit_by_confidence(
        logits, tokens, 3, temperature=1.0, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(out, again)


# --------------------------------------------------------------------------- sampler


def canvas_with_prompt(batch: int, length: int, prompt: int, seed: int = 0) -> torch.Tensor:
    canvas = torch.full((batch, length), MASK)
    canvas[:, :prompt] = torch.randint(
        0, MASK, (batch, prompt), generator=torch.Generator().manual_seed(seed)
    )
    return canvas


@pytest.mark.parametrize(
    ("block_size", "options"),
    [
        (1, {}),
        (3, {"steps_per_block": 2}),
        (4, {"threshold": 0.3}),
        (4, {"steps_per_block": 4, "temperature": 1.0}),
        (8, {"threshold": 0.2, "temperature": 0.7}),
        (16, {"steps_per_block": 5}),
    ],
)
def test_kv_cached_sampling_equals_uncached(block_size, options):
    model = random_dit()
    canvas = canvas_with_prompt(3, 16, prompt=5)  # the prompt ends inside a block
    cached = sample_block_diffusion(
        model,
        canvas,
        block_size=block_size,
        mask_token_id=MASK,
        generator=torch.Generator().manual_seed(1),
        **options,
    )
    uncached = sample_block_diffusion(
        model,
        canvas,
        block_size=block_size,
        mask_token_id=MASK,
        generator=torch.Generator().manual_seed(1),
        use_cache=False,
        **options,
    )
    assert torch.equal(cached, uncached)
    assert torch.equal(cached[:, :5], canvas[:, :5]) and not (cached == MASK).any()
    assert len(torch.unique(cached[:, 5:], dim=0)) > 1  # the continuation depends on the prompt


def test_cached_sampler_makes_one_call_per_step_and_processes_only_new_tokens():
    model = CountingModel(random_dit())
    sample_block_diffusion(
        model, torch.full((2, 16), MASK), block_size=4, mask_token_id=MASK, steps_per_block=2
    )
    assert model.calls == 4 * 2  # the cache pass of a block rides on the next block's first step
    # 8 denoising passes over a 4-token block, 3 of them also carrying the previous block.
    assert model.tokens == 2 * (8 * 4 + 3 * 4)


def test_autoregressive_is_block_size_one_with_one_call_per_token():
    model = CountingModel(random_dit())
    canvas = canvas_with_prompt(2, 10, prompt=3)
    out = sample_autoregressive(model, canvas, mask_token_id=MASK)
    assert model.calls == 7
    reference = sample_block_diffusion(
        model.model, canvas, block_size=1, mask_token_id=MASK, use_cache=False
    )
    assert torch.equal(out, reference)


def test_constraint_runs_before_every_commit_with_positions():
    model = random_dit()
    seen = []

    def only_token_three(logits, tokens, positions):
        seen.append((tokens.clone(), positions.clone()))
        forbidden = torch.ones_like(logits, dtype=torch.bool)
        forbidden[..., 3] = False
        return logits.masked_fill(forbidden, -math.inf)

    out = sample_block_diffusion(
        model,
        torch.full((2, 8), MASK),
        block_size=4,
        mask_token_id=MASK,
        threshold=0.5,
        constraint=only_token_three,
    )
    assert (out == 3).all()
    assert seen[0][1].tolist() == [0, 1, 2, 3] and seen[-1][1].tolist() == [4, 5, 6, 7]
    assert (seen[0][0] == MASK).all()  # the constraint sees the canvas before the commit
    assert len(seen) == 2  # one token allowed -> confidence 1 -> the whole block in one step


def test_markov_constraint_makes_an_untrained_model_legal():
    chain = MarkovChain.random_sparse(num_states=MASK, out_degree=2, seed=3)
    model = random_dit()
    canvas = torch.full((16, 24), MASK)
    free = sample_block_diffusion(model, canvas, block_size=8, mask_token_id=MASK)
    constrained = sample_block_diffusion(
        model, canvas, block_size=8, mask_token_id=MASK, constraint=chain.constraint(MASK, 24)
    )
    assert legal_transition_rate(free, chain.allowed) < 0.5
    assert legal_transition_rate(constrained, chain.allowed) == 1.0


def test_stop_condition_cuts_after_the_block_where_all_rows_stopped():
    model = random_dit()
    canvas = torch.full((2, 12), MASK)
    canvas[0, 2] = 7  # row 0 stops in block 0, row 1 at block 1
    canvas[1, 5] = 7
    out = sample_block_diffusion(
        model, canvas, block_size=4, mask_token_id=MASK, stop=stop_at_token(7)
    )
    assert out.shape == (2, 8) and not (out == MASK).any()


def test_classifier_free_guidance_mixes_logits():
    class Table:
        """Logits [1.0, 1.2, 0] for class 0 and [0, 1.2, 0] for the null class 1."""

        def __call__(self, tokens, class_labels, **kwargs):
            rows = torch.tensor([[1.0, 1.2, 0.0, 0.0], [0.0, 1.2, 0.0, 0.0]])[class_labels]
            return DiTOutput(sample=rows[:, None].expand(-1, tokens.shape[1], -1).clone())

    canvas = torch.full((1, 2), 3)
    args = {"block_size": 2, "mask_token_id": 3, "extra_args": {"class_labels": torch.tensor([0])}}
    null = {"class_labels": torch.tensor([1])}
    assert (sample_block_diffusion(Table(), canvas, **args).flatten() == 1).all()
    assert (sample_block_diffusion(Table(), canvas, uncond_args=null, **args).flatten() == 1).all()
    # w = 1: u + 2 (c - u) = [2.0, 1.2, 0]
    guided = sample_block_diffusion(Table(), canvas, uncond_args=null, guidance_scale=1.0, **args)
    assert (guided.flatten() == 0).all()
    with pytest.raises(ConfigError):  # an unconditional input must replace a conditional one
        sample_block_diffusion(
            Table(), canvas, uncond_args={"cond": torch.zeros(1, 2)}, guidance_scale=1.0, **args
        )


def test_cached_equals_uncached_with_guidance_prefix_tokens_and_per_token_cond():
    model = random_dit(num_classes=2, cond_dim=3)
    gen = torch.Generator().manual_seed(0)
    extra = {
        "class_labels": torch.tensor([0, 1]),
        "prefix_embeds": torch.randn(2, 3, 64, generator=gen, dtype=torch.float64),
        "cond": torch.randn(2, 12, 3, generator=gen, dtype=torch.float64),
    }
    uncond = {
        "class_labels": torch.tensor([2, 2]),
        "prefix_embeds": torch.zeros(2, 3, 64, dtype=torch.float64),
    }
    options = {
        "block_size": 4,
        "mask_token_id": MASK,
        "threshold": 0.3,
        "extra_args": extra,
        "uncond_args": uncond,
        "guidance_scale": 1.5,
    }
    canvas = canvas_with_prompt(2, 12, prompt=2)
    cached = sample_block_diffusion(model, canvas, **options)
    assert torch.equal(cached, sample_block_diffusion(model, canvas, use_cache=False, **options))
    unguided = sample_block_diffusion(
        model, canvas, **{**options, "guidance_scale": 0.0, "uncond_args": None}
    )
    assert not torch.equal(cached, unguided)


def test_callback_reports_every_commit():
    events = []
    sample_block_diffusion(
        random_dit(),
        torch.full((1, 8), MASK),
        block_size=4,
        mask_token_id=MASK,
        steps_per_block=2,
        callback=events.append,
    )
    assert [(e.block, e.block_step) for e in events] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert [e.index for e in events] == [0, 1, 2, 3]
    assert all(int(e.committed.sum()) == 2 for e in events)


@pytest.mark.parametrize(
    "options",
    [
        {"block_size": 0},
        {"steps_per_block": 0},
        {"threshold": 0.0},
        {"threshold": 1.5},
        {"temperature": -1.0},
    ],
)
def test_sampler_rejects_bad_options(options):
    kwargs = {"block_size": 4, "mask_token_id": MASK, **options}
    with pytest.raises(ConfigError):
        sample_block_diffusion(random_dit(), torch.full((1, 8), MASK), **kwargs)
    with pytest.raises(ConfigError):
        sample_block_diffusion(
            random_dit(), torch.full((1, 8), 1.0), block_size=4, mask_token_id=MASK
        )


@pytest.mark.parametrize("use_cache", [True, False])
def test_sampler_conditionals_equal_training_conditionals(use_cache):
    # The logits a block is decoded from must be those the loss trains: same positions (after the
    # prefix tokens), same visible context, same per-token conditions.
    model = random_dit(cond_dim=3)
    gen = torch.Generator().manual_seed(0)
    extra = {
        "prefix_embeds": torch.randn(2, 3, 64, generator=gen, dtype=torch.float64),
        "cond": torch.randn(2, 12, 3, generator=gen, dtype=torch.float64),
    }
    canvas = canvas_with_prompt(2, 12, prompt=8)  # blocks 0-1 known, block 2 to decode
    captured = []

    def capture(logits, tokens, positions):
        captured.append(logits.clone())
        return logits

    sample_block_diffusion(
        model,
        canvas,
        block_size=4,
        mask_token_id=MASK,
        constraint=capture,
        extra_args=extra,
        use_cache=use_cache,
    )
    x0 = canvas.clone()
    x0[:, 8:] = 0
    trained = BlockDiffusionLoss(MASK, block_size=4).denoise(model, canvas, x0, **extra)[:, 8:]
    trained[..., MASK] = -math.inf
    assert torch.allclose(captured[0], trained, atol=1e-9)


def test_block_decoding_does_not_import_diffusers_schedulers():
    # Every token-decoding command imports this module first; the continuous samplers' schedulers
    # (and scipy.stats under them) cost seconds of start-up it does not need.
    loaded = imported_by("difforge.core.diffusion.block", ["diffusers.schedulers", "scipy.stats"])
    assert loaded == []
