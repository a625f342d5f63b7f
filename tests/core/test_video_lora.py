"""Video patchify with axial rotary embeddings, and LoRA adapters (difforge.core.nn)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from difforge.core.nn.dit import apply_rotary, rotary_cos_sin
from difforge.core.nn.lora import LoRALinear, add_lora, merge_lora, trainable_parameters
from difforge.core.nn.video import (
    axial_rotary_cos_sin,
    patch_grid_positions,
    split_head_dim,
    video_patchify,
    video_unpatchify,
)


def test_patchify_round_trip_and_token_content() -> None:
    video = torch.randn(2, 3, 4, 8, 12)
    tokens = video_patchify(video, (2, 4, 4))
    assert tokens.shape == (2, 2 * 2 * 3, 3 * 2 * 4 * 4)
    assert torch.equal(video_unpatchify(tokens, (2, 4, 4), (2, 2, 3), 3), video)
    # Token 1 is time patch 0, row 0, column 1: pixels x 4..7 of frames 0..1.
    expected = video[0, :, 0:2, 0:4, 4:8].reshape(-1)
    assert torch.equal(tokens[0, 1], expected)
    positions = patch_grid_positions((2, 2, 3))
    assert positions[1].tolist() == [0.0, 0.0, 1.0]
    assert positions[6].tolist() == [1.0, 0.0, 0.0]


def test_patchify_rejects_a_grid_that_does_not_divide() -> None:
    with pytest.raises(ValueError, match="does not divide"):
        video_patchify(torch.zeros(1, 3, 5, 8, 8), (2, 4, 4))


def test_axial_rotary_on_one_axis_equals_the_1d_rotary() -> None:
    pos = torch.tensor([[0.0, 3.0, 7.5]])
    cos1, sin1 = rotary_cos_sin(pos, 8)
    cos3, sin3 = axial_rotary_cos_sin(torch.stack([pos, pos * 0], -1), 8, (8, 0))
    assert torch.allclose(cos1, cos3) and torch.allclose(sin1, sin3)


def test_axial_rotary_scores_depend_only_on_offsets_per_axis() -> None:
    torch.manual_seed(0)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)
    dims = split_head_dim(16, (2, 1, 1))
    assert sum(dims) == 16 and all(d % 2 == 0 for d in dims)

    def score(pq: list[float], pk: list[float]) -> float:
        cq, sq = axial_rotary_cos_sin(torch.tensor([[pq]]), 16, dims)
        ck, sk = axial_rotary_cos_sin(torch.tensor([[pk]]), 16, dims)
        return float((apply_rotary(q, cq, sq) * apply_rotary(k, ck, sk)).sum())

    same = score([1.0, 2.0, 3.0], [0.0, 1.0, 1.0])
    assert same == pytest.approx(score([5.0, 4.0, 9.0], [4.0, 3.0, 7.0]), abs=1e-4)
    assert same != pytest.approx(score([1.0, 2.0, 3.0], [0.0, 1.0, 2.0]), abs=1e-3)


def test_lora_starts_as_identity_trains_only_adapters_and_merges_exactly() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    x = torch.randn(5, 8)
    before = model(x)
    names = add_lora(model, rank=2, targets=[r"^2$"])
    assert names == ["2"] and isinstance(model[2], LoRALinear)
    assert torch.allclose(model(x), before)
    for p in model[0].parameters():
        p.requires_grad_(False)
    assert trainable_parameters(model) == 2 * 16 + 4 * 2
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    base_weight = model[2].base.weight.clone()
    model(x).square().sum().backward()
    opt.step()
    assert torch.equal(model[2].base.weight, base_weight)
    trained = model(x)
    assert not torch.allclose(trained, before)
    assert merge_lora(model) == 1
    assert type(model[2]) is nn.Linear
    assert torch.allclose(model(x), trained, atol=1e-5)


def test_add_lora_refuses_targets_that_match_nothing() -> None:
    with pytest.raises(ValueError, match=r"no nn\.Linear"):
        add_lora(nn.Sequential(nn.Linear(2, 2)), 1, ["attn"])
