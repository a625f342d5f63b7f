"""DiT backbone: shapes, masks, exact KV cache, prefix tokens, save/load, diffusers cache hooks."""

import pytest
import torch
from diffusers.hooks import (
    FirstBlockCacheConfig,
    PyramidAttentionBroadcastConfig,
    TaylorSeerCacheConfig,
)

from difforge.core.config import InvalidConfigValue
from difforge.core.nn.dit import DIT_PRESETS, DiTBackbone, KVCache, check_head_size


def tiny_discrete(**kw) -> DiTBackbone:
    torch.manual_seed(0)
    return DiTBackbone.from_preset("tiny", vocab_size=11, use_timestep=False, **kw).eval()


def randomise(model: DiTBackbone) -> DiTBackbone:
    # adaLN-Zero makes a fresh model the identity; random weights make the tests meaningful.
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def test_presets_build_and_count_parameters():
    sizes = {
        name: DiTBackbone.from_preset(name, in_channels=4).num_parameters() for name in DIT_PRESETS
    }
    assert sizes["tiny"] < sizes["small"] < sizes["base"] < sizes["large"]


def test_continuous_forward_shapes_and_zero_init():
    model = DiTBackbone.from_preset("tiny", in_channels=3, cond_dim=5, num_classes=4)
    x = torch.randn(2, 7, 3)
    out = model(
        x, torch.tensor([10.0, 500.0]), cond=torch.randn(2, 5), class_labels=torch.tensor([0, 4])
    )
    assert out.sample.shape == (2, 7, 3)
    assert torch.count_nonzero(out.sample) == 0  # zero-initialised output projection (DiT)


def test_per_token_timestep_and_cross_attention():
    model = randomise(DiTBackbone.from_preset("tiny", in_channels=3, cross_attention_dim=6))
    x = torch.randn(2, 5, 3)
    t = torch.rand(2, 5) * 1000
    ctx = torch.randn(2, 4, 6)
    a = model(x, t, encoder_hidden_states=ctx).sample
    b = model(x, t, encoder_hidden_states=ctx.flip(1).clone() * 2).sample
    assert a.shape == (2, 5, 3) and not torch.allclose(a, b)


def test_attention_mask_blocks_information_flow():
    model = randomise(tiny_discrete())
    ids = torch.randint(0, 10, (1, 6))
    causal = torch.ones(6, 6, dtype=torch.bool).tril()
    base = model(ids, attention_mask=causal).sample
    changed = ids.clone()
    changed[0, 5] = (ids[0, 5] + 1) % 10
    after = model(changed, attention_mask=causal).sample
    assert torch.allclose(base[:, :5], after[:, :5], atol=1e-6)  # earlier tokens cannot see token 5
    assert not torch.allclose(base[:, 5], after[:, 5])


@pytest.mark.parametrize("pos", ["rope", "learned"])
def test_kv_cache_equals_full_causal_pass(pos):
    model = randomise(tiny_discrete(pos_embedding=pos))
    ids = torch.randint(0, 10, (2, 9))
    causal = torch.ones(9, 9, dtype=torch.bool).tril()
    full = model(ids, attention_mask=causal).sample
    out = model(ids[:, :4], attention_mask=causal[:4, :4], use_cache=True)
    cache: KVCache = out.past_key_values
    assert cache.length == 4
    pieces = [out.sample]
    for start, stop in [(4, 7), (7, 9)]:
        step = model(
            ids[:, start:stop],
            past_key_values=cache,
            use_cache=True,
            attention_mask=causal[start:stop, :stop],
        )
        cache = step.past_key_values
        pieces.append(step.sample)
    assert torch.allclose(torch.cat(pieces, 1), full, atol=1e-5)
    assert cache.select(torch.tensor([1])).batch_size == 1


def test_prefix_tokens_condition_and_are_cached():
    model = randomise(tiny_discrete())
    ids = torch.randint(0, 10, (2, 5))
    prefix = torch.randn(2, 3, 64)
    with_prefix = model(ids, prefix_embeds=prefix, use_cache=True)
    assert with_prefix.sample.shape == (2, 5, 11)
    assert with_prefix.past_key_values.length == 8
    other = model(ids, prefix_embeds=torch.randn(2, 3, 64)).sample
    assert not torch.allclose(with_prefix.sample, other)
    # Prefill the prefix alone, then the tokens with the cache: same result as one pass.
    prefill = model(ids[:, :0], prefix_embeds=prefix, use_cache=True).past_key_values
    cached = model(ids, past_key_values=prefill).sample
    assert torch.allclose(cached, with_prefix.sample, atol=1e-5)


def test_external_embedding_weight_ties_input_and_output():
    model = tiny_discrete()
    weight = torch.randn(11, 64)
    logits = model(torch.randint(0, 10, (1, 4)), embedding_weight=weight).sample
    logits.sum().backward()  # gradients flow into an external (e.g. graph-encoder) table
    assert logits.shape == (1, 4, 11)


def test_save_and_load_round_trip(tmp_path):
    model = randomise(DiTBackbone.from_preset("tiny", in_channels=2, num_classes=3))
    model.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").exists()
    assert list(tmp_path.glob("*.safetensors"))
    loaded = DiTBackbone.from_pretrained(tmp_path)
    x, t = torch.randn(2, 4, 2), torch.tensor([3.0, 7.0])
    assert torch.equal(model(x, t).sample, loaded(x, t).sample)


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="exactly one"):
        DiTBackbone(hidden_size=64, num_layers=1, num_heads=2)
    with pytest.raises(ValueError, match="preset"):
        DiTBackbone.from_preset("huge", in_channels=2)


@pytest.mark.parametrize(
    "config",
    [
        FirstBlockCacheConfig(threshold=0.5),
        TaylorSeerCacheConfig(cache_interval=2, disable_cache_before_step=1),
        PyramidAttentionBroadcastConfig(
            spatial_attention_block_skip_range=2,
            spatial_attention_timestep_skip_range=(-1, 1001),
            current_timestep_callback=lambda: 500,
        ),
    ],
    ids=["first_block", "taylorseer", "pab"],
)
def test_diffusers_cache_hooks_attach_and_skip_work(config):
    model = randomise(DiTBackbone.from_preset("tiny", in_channels=2, num_layers=4))
    calls = {"n": 0}

    def count(*_):
        calls["n"] += 1

    for block in model.transformer_blocks:
        block.attn.to_q.register_forward_hook(count)  # runs only when attention is computed
    x = torch.randn(4, 3, 2)
    model.enable_cache(config)
    n_steps = 6
    for i in range(n_steps):
        with model.cache_context("cond"):
            model(x + 0.001 * i, torch.full((4,), 500.0))
    model.disable_cache()
    assert calls["n"] < n_steps * 4  # some attention calls were skipped by the hook


def test_head_size_check_names_the_config_key():
    for preset in DIT_PRESETS.values():
        check_head_size(preset["hidden_size"], preset["num_heads"])
    for hidden, heads in ((100, 3), (96, 32)):  # not a whole width per head; 3 per head (odd)
        with pytest.raises(InvalidConfigValue, match="config key 'width' must be an even multiple"):
            check_head_size(hidden, heads, key="width")
        with pytest.raises(ValueError):  # what the config check spares the user
            DiTBackbone(in_channels=4, hidden_size=hidden, num_layers=1, num_heads=heads)
    with pytest.raises(InvalidConfigValue):
        check_head_size(64, 0)


def test_a_backbone_without_its_own_token_table_is_a_supported_mode(tmp_path):
    torch.manual_seed(0)
    model = DiTBackbone(vocab_size=11, hidden_size=32, num_layers=1, num_heads=2,
                        external_embedding=True)  # fmt: skip
    assert model.token_embed is None
    assert not any("token_embed" in k for k in model.state_dict())
    tokens = torch.randint(0, 11, (2, 5))
    table = torch.randn(11, 32)
    assert model(tokens, embedding_weight=table).sample.shape == (2, 5, 11)
    with pytest.raises(ValueError, match="external_embedding=True: pass embedding_weight"):
        model(tokens)
    model.save_pretrained(tmp_path)
    loaded = DiTBackbone.from_pretrained(tmp_path).eval()
    model.eval()
    assert loaded.token_embed is None
    torch.testing.assert_close(
        loaded(tokens, embedding_weight=table).sample, model(tokens, embedding_weight=table).sample
    )
    with pytest.raises(ValueError, match="needs vocab_size"):
        DiTBackbone(in_channels=3, external_embedding=True)


def test_num_parameters_counts_tied_tensors_once():
    from difforge.core.nn import num_parameters

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 3))
    model[1].weight = torch.nn.Parameter(model[0].weight.T.contiguous())
    assert num_parameters(model) == 12 + 4 + 12 + 3
    shared = torch.nn.Linear(2, 2)
    assert num_parameters(torch.nn.Sequential(shared, shared)) == 6
    assert num_parameters(None) == 0


def test_null_class_is_the_extra_row_condition_dropout_uses():
    from difforge.core.diffusion.guidance import ConditionDropout

    model = DiTBackbone.from_preset("tiny", in_channels=2, num_classes=3)
    dropout = ConditionDropout(p=1.0, null_values={"class_labels": model.null_class})
    labels = dropout({"class_labels": torch.tensor([0, 2])})["class_labels"]
    assert labels.tolist() == [3, 3]
    out = model(torch.randn(2, 4, 2), torch.tensor([1.0, 2.0]), class_labels=labels).sample
    assert out.shape == (2, 4, 2)
