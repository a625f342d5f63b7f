"""Masked (absorbing-state) diffusion: schedules, noise levels, masking, SUBS, the weighted loss."""

import math

import pytest
import torch

from difforge.core.diffusion.masked import (
    MaskedDiffusionLoss,
    MaskSchedule,
    effective_mask_weight,
    mask_tokens,
    masked_token_loss,
    sample_noise_levels,
    subs_logits,
)
from difforge.core.errors import ConfigError
from difforge.core.nn.dit import DiTBackbone, DiTOutput


@pytest.mark.parametrize("kind", ["linear", "loglinear"])
def test_schedule_weight_is_minus_alpha_derivative_over_one_minus_alpha(kind):
    schedule = MaskSchedule(kind=kind, eps=0.01)
    t = torch.linspace(0.05, 1.0, 20, dtype=torch.float64, requires_grad=True)
    alpha = schedule.alpha(t)
    (derivative,) = torch.autograd.grad(alpha.sum(), t)
    expected = -derivative / (1 - alpha)
    assert torch.allclose(schedule.loss_weight(t), expected.detach())
    assert torch.allclose(schedule.loss_weight(t), 1 / t.detach())  # 1/t for both schedules
    slope = 1.0 if kind == "linear" else 0.99
    assert torch.allclose(schedule.mask_rate(t), slope * t)


def test_loglinear_is_mdlm_exponential_of_total_noise():
    # MDLM: move chance 1 - exp(-sigma(t)) with sigma(t) = -log(1 - (1 - eps) t).
    schedule = MaskSchedule(kind="loglinear", eps=1e-3)
    t = torch.linspace(0.0, 1.0, 11, dtype=torch.float64)
    sigma = -torch.log1p(-(1 - 1e-3) * t)
    assert torch.allclose(schedule.mask_rate(t), 1 - torch.exp(-sigma))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "cosine"},
        {"eps": 1.0},
        {"t_min": 0.0},
        {"t_min": 0.6, "t_max": 0.5},
        {"t_max": 1.5},
    ],
)
def test_schedule_rejects_bad_settings(kwargs):
    with pytest.raises(ConfigError):
        MaskSchedule(**kwargs)


def test_antithetic_levels_fill_every_stratum_of_the_clipped_range():
    schedule = MaskSchedule(t_min=0.3, t_max=0.8)  # BD3-LM clipped schedule [beta, omega]
    gen = torch.Generator().manual_seed(0)
    t = schedule.sample_t((8, 5), generator=gen)
    assert t.shape == (8, 5) and t.min() >= 0.3 and t.max() <= 0.8
    strata = ((t - 0.3) / 0.5 * 40).floor().long().flatten().clamp(max=39)
    assert sorted(strata.tolist()) == list(range(40))  # one draw per stratum
    plain = schedule.sample_t((1000,), antithetic=False, generator=gen)
    assert plain.min() >= 0.3 and plain.max() <= 0.8 and abs(plain.mean() - 0.55) < 0.02


def test_noise_levels_are_constant_per_block_and_async_across_blocks():
    schedule = MaskSchedule()
    gen = torch.Generator().manual_seed(0)
    t = sample_noise_levels(schedule, 3, 10, 4, generator=gen)  # blocks 4, 4, 2
    assert t.shape == (3, 10)
    for lo, hi in [(0, 4), (4, 8), (8, 10)]:
        assert (t[:, lo:hi] == t[:, lo : lo + 1]).all()
    assert len(torch.unique(t[:, [0, 4, 8]])) == 9  # every block of every row its own level
    sync = sample_noise_levels(schedule, 3, 10, 4, asynchronous=False, generator=gen)
    assert (sync == sync[:, :1]).all() and len(torch.unique(sync[:, 0])) == 3
    whole = sample_noise_levels(schedule, 3, 10, None, generator=gen)
    assert (whole == whole[:, :1]).all()


def test_mask_tokens_rate_and_maskable():
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, 7, (200, 50), generator=gen)
    rate = torch.linspace(0, 1, 200)[:, None]
    x_t, masked = mask_tokens(x0, rate, 7, generator=gen)
    assert (x_t[masked] == 7).all() and (x_t[~masked] == x0[~masked]).all()
    assert not masked[0].any() and masked[-1].all()
    assert abs(masked.float().mean().item() - 0.5) < 0.02
    maskable = torch.ones_like(masked)
    maskable[:, :10] = False  # a prompt
    _, masked = mask_tokens(x0, torch.ones(()), 7, maskable=maskable, generator=gen)
    assert not masked[:, :10].any() and masked[:, 10:].all()


def test_subs_forbids_mask_and_copies_unmasked_tokens():
    logits = torch.randn(2, 4, 6)
    original = logits.clone()
    x_t = torch.tensor([[5, 1, 5, 3], [0, 5, 5, 5]])
    out = subs_logits(logits, x_t, 5)
    probs = out.softmax(-1)
    assert (probs[..., 5] == 0).all()
    frozen = x_t != 5
    assert (
        torch.equal(probs[frozen].argmax(-1), x_t[frozen])
        and (probs[frozen].max(-1).values == 1).all()
    )
    free = logits[~frozen].clone()
    free[:, 5] = -math.inf
    assert torch.equal(out[~frozen], free)
    assert torch.equal(logits, original)  # input untouched


def test_masked_token_loss_by_hand():
    logits = torch.randn(1, 3, 5)
    x0 = torch.tensor([[0, 1, 2]])
    x_t = torch.tensor([[4, 1, 4]])
    masked = x_t == 4
    weight = torch.tensor([[2.0, 7.0, 0.5]])
    masked_logits = logits.clone()
    masked_logits[..., 4] = -math.inf
    logp = masked_logits.log_softmax(-1)
    expected = -(2.0 * logp[0, 0, 0] + 0.5 * logp[0, 2, 2]) / 3
    loss = masked_token_loss(logits, x0, x_t, masked, weight, 4)
    assert torch.allclose(loss, expected)
    maskable = torch.tensor([[True, False, True]])  # normalised by the 2 maskable tokens
    assert torch.allclose(
        masked_token_loss(logits, x0, x_t, masked, weight, 4, maskable), expected * 3 / 2
    )


def test_effective_mask_weight_is_inverse_realised_ratio_per_block():
    masked = torch.tensor([[True, False, False, False, True, True, False, False, False]])
    weight = effective_mask_weight(masked, 4)  # blocks: 1/4 masked, 2/4, 0/1
    assert torch.equal(weight, torch.tensor([[4.0] * 4 + [2.0] * 4 + [1.0]]))
    maskable = torch.tensor([[False, True, True, True, True, True, True, True, True]])
    assert torch.equal(effective_mask_weight(masked, 4, maskable)[0, :4], torch.full((4,), 3.0))


class UniformNet:
    """Equal logits everywhere: p(x0 | x_t) = 1 / (V - 1) after SUBS; records what it was given."""

    def __init__(self, vocab: int) -> None:
        self.vocab = vocab
        self.inputs: list[torch.Tensor] = []

    def __call__(self, tokens, **kwargs):
        self.inputs.append(tokens)
        return DiTOutput(sample=torch.zeros(*tokens.shape, self.vocab))


@pytest.mark.parametrize("block_size", [None, 4])
def test_nelbo_of_uniform_model_is_log_vocab_per_token(block_size):
    # E_t[w(t) * P(masked | t)] = 1 for the linear schedule, so the NELBO of a model predicting
    # uniformly over the V - 1 real tokens is log(V - 1) per token: an unbiasedness check.
    vocab = 9
    x0 = torch.randint(0, 8, (256, 32), generator=torch.Generator().manual_seed(0))
    loss_fn = MaskedDiffusionLoss(8, MaskSchedule(kind="linear"), block_size)
    loss = loss_fn(UniformNet(vocab), x0, generator=torch.Generator().manual_seed(1))
    assert abs(loss.item() - math.log(8)) < 0.03 * math.log(8)


def test_effective_weighting_counts_each_block_with_a_mask_once():
    net = UniformNet(9)
    x0 = torch.randint(0, 8, (64, 32), generator=torch.Generator().manual_seed(0))
    loss_fn = MaskedDiffusionLoss(8, block_size=8, weighting="effective")
    loss = loss_fn(net, x0, generator=torch.Generator().manual_seed(1))
    blocks_with_mask = (net.inputs[0] == 8).view(64, 4, 8).any(-1).float().mean()
    assert torch.allclose(loss, blocks_with_mask * math.log(8), atol=1e-6)


def test_loss_sees_masked_input_and_keeps_prompt_clean():
    net = UniformNet(9)
    x0 = torch.randint(0, 8, (16, 12), generator=torch.Generator().manual_seed(0))
    maskable = torch.ones_like(x0, dtype=torch.bool)
    maskable[:, :5] = False
    MaskedDiffusionLoss(8)(net, x0, maskable=maskable, generator=torch.Generator().manual_seed(2))
    (x_t,) = net.inputs
    assert torch.equal(x_t[:, :5], x0[:, :5]) and (x_t == 8).any()
    assert ((x_t == x0) | (x_t == 8)).all()


def test_loss_trains_a_dit_and_rejects_bad_options():
    model = DiTBackbone.from_preset("tiny", vocab_size=9, use_timestep=False)
    x0 = torch.randint(0, 8, (4, 12))
    loss = MaskedDiffusionLoss(8, block_size=4)(model, x0)
    loss.backward()
    assert torch.isfinite(loss) and model.token_embed.weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError):
        MaskedDiffusionLoss(8, weighting="sum")
    with pytest.raises(ConfigError):
        MaskedDiffusionLoss(8, block_size=0)
