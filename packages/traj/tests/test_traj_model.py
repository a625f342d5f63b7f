"""TrajDLM model: config resolution, road-network encoder shapes, conditioning, save/load."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from difforge.core.cli import load_preset
from difforge.core.errors import CheckpointError, ConfigError, UserError
from difforge.traj import TRAIN_PRESETS
from difforge.traj.data.hoser import write_roadmap
from difforge.traj.data.synthetic import synthetic_city
from difforge.traj.model import (
    DEFAULT_MODEL_DIR,
    NUM_PREFIX,
    SamplingConfig,
    TrajDLM,
    TrajDLMConfig,
    default_block_size,
    resolve_config,
    resolve_model_dir,
    time_bucket,
)
from difforge.traj.train import TrajTrainConfig

TINY = load_preset(TrajTrainConfig, TRAIN_PRESETS, "tiny").model  # the tiny size preset


@pytest.fixture(scope="module")
def city():
    return synthetic_city(4, seed=0)


def tiny_model(city, **overrides) -> TrajDLM:
    torch.manual_seed(0)
    config = resolve_config(dataclasses.replace(TINY, **overrides), city, np.array([3, 5, 9]))
    return TrajDLM(config).attach_graph(city)


def test_block_size_rule_follows_the_trip_lengths():
    # Smallest power of two >= p90 + 1, clamped to [4, 128].
    assert default_block_size(np.array([15] * 50 + [24] * 50)) == 32
    assert default_block_size(np.array([2, 2, 3])) == 4
    assert default_block_size(np.arange(10, 60)) == 64
    assert default_block_size(np.array([500])) == 128


def test_resolve_config_fills_data_sizes_and_checks_them(city):
    config = resolve_config(TrajDLMConfig(), city, np.array([3, 5, 9]))
    assert (config.num_segments, config.num_road_types) == (city.num_segments, 2)
    assert config.block_size == 16  # p90 of (3, 5, 9) is 8.2, + 1 -> 16
    assert config.max_len == 16  # longest trip rounded up to the block
    assert config.vocab_size == city.num_segments + 2
    assert (config.eos_id, config.mask_id) == (city.num_segments, city.num_segments + 1)
    fixed = resolve_config(TrajDLMConfig(block_size=4), city, np.array([3, 5, 9]))
    assert (fixed.block_size, fixed.max_len) == (4, 12)
    with pytest.raises(ConfigError, match="num_segments"):
        resolve_config(TrajDLMConfig(num_segments=7), city, np.array([3]))
    with pytest.raises(ConfigError, match="unresolved"):
        TrajDLM(TrajDLMConfig())
    with pytest.raises(ConfigError, match="hidden_size"):
        TrajDLMConfig(hidden_size=30, num_heads=4)


def test_encoder_and_condition_shapes(city):
    model = tiny_model(city)
    n, d = city.num_segments, 32
    table = model.token_table()
    assert table.shape == (n + 2, d)
    # The GATv2 encoder mixes neighbours: changing one segment's length changes its neighbours'
    # embeddings, not only its own.
    edge_index = model.graph_edge_index
    victim = int(edge_index[0, 0])
    neighbour = int(edge_index[1, 0])
    model.graph_length[victim] += 3.0
    changed = (model.token_table() - table).abs().sum(-1)
    assert changed[victim] > 0 and changed[neighbour] > 0
    model.graph_length[victim] -= 3.0

    origin = torch.tensor([0, 5])
    dest = torch.tensor([7, 9])
    bucket = time_bucket(torch.tensor([8 * 60 + 30, -1]), 24)
    assert bucket.tolist() == [8, 24]  # 08:30 -> bucket 8; unknown time -> the null bucket
    cond = model.condition(table, origin, dest, bucket)
    assert cond["prefix_embeds"].shape == (2, NUM_PREFIX, d)
    assert cond["cond"].shape == (2, NUM_PREFIX * d)
    null = model.null_condition(table, 2)
    assert torch.equal(null["prefix_embeds"][0], null["prefix_embeds"][1])

    tokens = torch.randint(0, n, (2, 8))
    logits = model(tokens, origin=origin, destination=dest, time_bucket=bucket).sample
    assert logits.shape == (2, 8, n + 2)
    # The output head is the token table itself (no separate input or output matrix).
    assert model.backbone.tied_head and model.backbone.token_embed is None
    assert not any("proj_out" in name for name, _ in model.named_parameters())
    durations = model(tokens, task="duration", departure_minute=torch.tensor([500, 0])).sample
    assert durations.shape == (2, 8, 2)


def test_plain_embedding_ablation_has_no_graph_encoder(city):
    model = tiny_model(city, road_encoder=False)
    assert model.encoder is None
    assert model.token_table().shape == (city.num_segments + 2, 32)
    assert not any(name.startswith("encoder.") for name, _ in model.named_parameters())


def test_save_and_load_round_trip(city, tmp_path):
    data = tmp_path / "data"
    write_roadmap(city, data)
    model = tiny_model(city).eval()
    model.sampling = SamplingConfig(steps_per_block=3, max_detour=5)
    out = model.save_pretrained(tmp_path / "model", data_dir=data, info={"training": {"steps": 7}})
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "model.safetensors",
        "roadmap.geo",
        "roadmap.rel",
    ]
    meta = json.loads((out / "config.json").read_text())
    assert meta["model_type"] == "difforge-traj" and meta["format_version"] == 2
    loaded = TrajDLM.from_pretrained(out)
    assert loaded.sampling == model.sampling
    assert loaded.meta["training"] == {"steps": 7} and loaded.model_dir == out
    assert loaded.config == model.config
    tokens = torch.randint(0, city.num_segments, (3, 8))
    kwargs = {
        "origin": tokens[:, 0],
        "destination": tokens[:, -1],
        "time_bucket": torch.tensor([1, 2, 24]),
    }
    with torch.no_grad():
        assert torch.equal(model(tokens, **kwargs).sample, loaded(tokens, **kwargs).sample)
    assert loaded.road_graph.num_segments == city.num_segments
    assert resolve_model_dir(out) == out


def test_loading_bad_model_folders_fails_with_one_line_errors(city, tmp_path):
    data = tmp_path / "data"
    write_roadmap(city, data)
    out = tiny_model(city).save_pretrained(tmp_path / "model", data_dir=data)
    with pytest.raises(UserError, match=r"no config\.json"):
        TrajDLM.from_pretrained(tmp_path)
    with pytest.raises(UserError, match="not a difforge-traj model folder"):
        resolve_model_dir(tmp_path / "missing")

    (out / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot load"):
        TrajDLM.from_pretrained(out)

    out = tiny_model(city).save_pretrained(tmp_path / "model2", data_dir=data)
    with open(out / "roadmap.rel", "a") as fh:
        fh.write("9999,geo,0,1\n")
    with pytest.raises(CheckpointError, match="roadmap files differ"):
        TrajDLM.from_pretrained(out)

    out = tiny_model(city).save_pretrained(tmp_path / "model3", data_dir=data)
    meta = json.loads((out / "config.json").read_text())
    meta["model"]["hidden_size"] = 48
    (out / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="cannot load"):
        TrajDLM.from_pretrained(out)


LEGACY_CONFIG = Path(__file__).parent / "data" / "default_model_config_v1.json"


def test_folders_saved_before_format_version_2_still_load(tmp_path):
    """The shipped default as it was first saved: model_type "trajdlm", no format_version."""
    old = tmp_path / "old_default"
    shutil.copytree(DEFAULT_MODEL_DIR, old)
    shutil.copyfile(LEGACY_CONFIG, old / "config.json")
    assert json.loads(LEGACY_CONFIG.read_text())["model_type"] == "trajdlm"
    legacy, current = TrajDLM.from_pretrained(old), TrajDLM.from_pretrained("default")
    assert legacy.meta["format_version"] == 1 and current.meta["format_version"] == 2
    # the shipped sampling changed in issue 16 (was greedy, guidance 0.5, max_detour 14)
    greedy = dataclasses.replace(
        current.sampling, temperature=0.0, guidance_scale=0.5, max_detour=14
    )
    assert legacy.sampling == greedy and legacy.config == current.config
    assert legacy.meta["roadmap_sha256"] == current.meta["roadmap_sha256"]
    for (name, a), (_, b) in zip(legacy.state_dict().items(), current.state_dict().items()):
        assert torch.equal(a, b), name


def test_unknown_model_types_and_newer_formats_are_refused(city, tmp_path):
    data = tmp_path / "data"
    write_roadmap(city, data)
    out = tiny_model(city).save_pretrained(tmp_path / "model", data_dir=data)
    meta = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**meta, "format_version": 3}))
    with pytest.raises(CheckpointError, match="format_version 3"):
        TrajDLM.from_pretrained(out)
    (out / "config.json").write_text(json.dumps({**meta, "model_type": "difforge-hair"}))
    with pytest.raises(CheckpointError, match="not a difforge-traj model folder"):
        TrajDLM.from_pretrained(out)
