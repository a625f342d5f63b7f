"""Training options: a wall-clock limit (``time_limit_s=``: an early stop that still writes the
codec folder, then a rerun that resumes the same run to its last step), the per-channel loss
weights (``channel_weights=codec``) and the output-head check on ``model.patch_size``."""

from __future__ import annotations

import json
import os

import pytest
import torch

from difforge.core.cli import load_preset
from difforge.core.errors import ConfigError, UserError
from difforge.core.pretrained import save_component
from difforge.hair import DIFFUSION_PRESETS
from difforge.hair.cli import main
from difforge.hair.codec import StrandCodec
from difforge.hair.data.dataset import SampleConfig, build_dataset
from difforge.hair.model import HairModel
from difforge.hair.run_config import DiffusionRunConfig
from difforge.hair.train import codec_channel_weights, train_diffusion


def save_tiny_codec(folder, seed: int = 0) -> None:
    torch.manual_seed(seed)
    codec = StrandCodec(n_points=16, latent_dim=4, encoder_channels=(8, 16), decoder_width=32,
                        decoder_layers=2)  # fmt: skip
    save_component(codec, folder)


def write_tiny_data_and_codec(tmp_path) -> None:
    """Two styles in ``tmp_path/data`` and an untrained tiny codec in ``tmp_path/codec``."""
    build_dataset(
        tmp_path / "data", [0, 5], SampleConfig(n_strands=300, n_points=16, image_size=64)
    )
    save_tiny_codec(tmp_path / "codec")


def test_time_limit_stops_codec_training_early_and_a_rerun_resumes(tmp_path):
    args = ["train-codec", "--out", str(tmp_path / "codec"), "--config", "tiny", "data.styles=2"]
    # Any step outlasts a nanosecond: the run stops after its first step whatever the machine.
    assert main([*args, "time_limit_s=1e-9"]) == 0
    metrics = json.loads((tmp_path / "codec" / "metrics.json").read_text())
    assert (metrics["steps"], metrics["planned_steps"]) == (1, 30)
    assert metrics["stopped_by"] == "time_limit" and metrics["held_out"]["position_mm"] > 0

    # No limit: resumes from the step-1 checkpoint and replaces the early codec (--overwrite).
    assert main([*args, "--overwrite"]) == 0
    metrics = json.loads((tmp_path / "codec" / "metrics.json").read_text())
    assert (metrics["steps"], metrics["stopped_by"]) == (30, "steps")


def test_codec_channel_weights_follow_the_decoders_sensitivity():
    torch.manual_seed(0)
    codec = StrandCodec(n_points=16, latent_dim=4, encoder_channels=(8, 16), decoder_width=32,
                        decoder_layers=2)  # fmt: skip
    with torch.no_grad():
        codec.decoder[0].weight[:, 1] = 0.0  # the decoder ignores latent channel 1
    textures = torch.rand(2, 5, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    textures[:, -1] = 1.0  # density: hair everywhere
    weights = codec_channel_weights(codec, textures, torch.full((5,), 0.5))
    assert weights.shape == (5,)
    torch.testing.assert_close(weights.mean(), torch.tensor(1.0))
    assert weights[1] == 0 and torch.all(weights[[0, 2, 3]] > 0), weights
    # The most sensitive latent channel and the density both weigh 1 before the mean is taken.
    torch.testing.assert_close(weights[:-1].max(), weights[-1])


def test_diffusion_training_with_codec_weights_and_the_output_head_check(tmp_path):
    write_tiny_data_and_codec(tmp_path)
    config = load_preset(
        DiffusionRunConfig, DIFFUSION_PRESETS, "tiny", ["channel_weights=codec", "train.steps=2"]
    )
    model = train_diffusion(tmp_path / "data", tmp_path / "codec", tmp_path / "model", config)
    weights = model.info["training"]["channel_weights"]
    assert len(weights) == 5 and abs(sum(weights) / 5 - 1) < 1e-3 and len(set(weights)) > 1
    # 4x4 patches of 5 channels are 80 outputs per token: more than the tiny DiT's 32 features.
    too_few = load_preset(
        DiffusionRunConfig, DIFFUSION_PRESETS, "tiny", ["model.patch_size=4", "train.steps=2"]
    )
    with pytest.raises(ConfigError, match="hidden_size"):
        train_diffusion(tmp_path / "data", tmp_path / "codec", tmp_path / "other", too_few)


def test_init_continues_from_a_model_folder_with_its_codec_and_sampling(tmp_path):
    write_tiny_data_and_codec(tmp_path)
    first = load_preset(
        DiffusionRunConfig, DIFFUSION_PRESETS, "tiny", ["train.steps=3", "sampling.ensemble=3"]
    )
    train_diffusion(tmp_path / "data", tmp_path / "codec", tmp_path / "start", first)
    start = HairModel.load(tmp_path / "start")  # as saved (float16), what --init reads
    # lr ~0: the continued model must hold the weights and whitening it started from
    frozen = load_preset(
        DiffusionRunConfig,
        DIFFUSION_PRESETS,
        "tiny",
        ["train.steps=2", "train.lr=1e-12", "train.min_lr=1e-12"],
    )
    model = train_diffusion(
        tmp_path / "data", None, tmp_path / "next", frozen, init_dir=tmp_path / "start"
    )
    for name, tensor in start.diffusion.state_dict().items():
        torch.testing.assert_close(model.diffusion.state_dict()[name], tensor, msg=name)
    torch.testing.assert_close(model.codec.decoder[0].weight, start.codec.decoder[0].weight)
    assert model.sampling.ensemble == 3  # the init model's settings, not the preset's
    assert model.info["training"]["init"]["steps"] == 3
    with pytest.raises(UserError, match="leave out --codec"):
        train_diffusion(
            tmp_path / "data",
            tmp_path / "codec",
            tmp_path / "x",
            frozen,
            init_dir=tmp_path / "start",
        )
    wider = load_preset(
        DiffusionRunConfig, DIFFUSION_PRESETS, "tiny", ["model.hidden_size=64", "train.steps=2"]
    )
    with pytest.raises(UserError, match="its DiT differs"):
        train_diffusion(tmp_path / "data", None, tmp_path / "y", wider, init_dir=tmp_path / "start")


def test_a_resumed_diffusion_run_reuses_its_encoded_textures(tmp_path, monkeypatch):
    import difforge.hair.train as train_module

    write_tiny_data_and_codec(tmp_path)
    config = load_preset(DiffusionRunConfig, DIFFUSION_PRESETS, "tiny", ["train.steps=2"])
    first = train_diffusion(tmp_path / "data", tmp_path / "codec", tmp_path / "model", config)
    assert (tmp_path / "model-run" / train_module.TEXTURE_CACHE).is_file()

    def no_encoding(*args, **kwargs):
        raise AssertionError("the styles were encoded again")

    monkeypatch.setattr(train_module, "encode_styles", no_encoding)
    more = load_preset(
        DiffusionRunConfig, DIFFUSION_PRESETS, "tiny", ["train.steps=3"]
    )  # resumes at step 2
    again = train_diffusion(
        tmp_path / "data", tmp_path / "codec", tmp_path / "model", more, overwrite=True
    )
    torch.testing.assert_close(again.diffusion.channel_std, first.diffusion.channel_std)
    assert again.info["training"]["diffusion"]["steps"] == 3
    assert again.info["training"]["last_seed"] == 5
    # another codec means other latents: the cache must not be used
    save_tiny_codec(tmp_path / "codec2", seed=1)
    with pytest.raises(AssertionError, match="encoded again"):
        train_diffusion(
            tmp_path / "data", tmp_path / "codec2", tmp_path / "model", more, overwrite=True
        )


def test_two_processes_train_one_model_on_different_batches(tmp_path):
    """``torchrun --nproc_per_node 2`` (gloo on the CPU, as DDP on two GPUs): the processes
    draw different rows, the step count is shared and only the main process writes."""
    import subprocess
    import sys

    write_tiny_data_and_codec(tmp_path)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
               "2", "-m", "difforge.hair.cli", "train", "--data", str(tmp_path / "data"),
               "--codec", str(tmp_path / "codec"), "--out", str(tmp_path / "model"),
               "--config", "tiny", "train.steps=3", "train.batch_size=4"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    state = json.loads(
        next((tmp_path / "model-run" / "checkpoints").glob("step_*/state.json")).read_text()
    )
    assert state["components"]["data"]["samples_seen"] == 3 * 4 * 2  # steps x batch x processes
    assert len(state["components"]["rng"]) == 2
    assert HairModel.load(tmp_path / "model").info["training"]["diffusion"]["steps"] == 3


def test_random_batches_differ_between_processes_and_match_one_process(monkeypatch):
    import difforge.hair.train as train_module

    rows = {"x": torch.arange(1000)}

    def batches(rank: int, world: int) -> list[torch.Tensor]:
        state = type("State", (), {"process_index": rank, "num_processes": world})
        monkeypatch.setattr(train_module, "process_state", lambda: state)
        stream = train_module._random_batches(rows, 8, seed=3, start=5)
        return [next(stream)["x"] for _ in range(2)]

    first, second = batches(0, 2), batches(1, 2)
    assert not any(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    generator = torch.Generator().manual_seed(3 * 1_000_003 + 5)  # one process: batch 5 as ever
    torch.testing.assert_close(batches(0, 1)[0], torch.randint(1000, (8,), generator=generator))


def _weights(folder) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(next(folder.glob("*.safetensors"))))


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def test_train_seed_fixes_the_codecs_initial_weights(tmp_path):
    def run(name: str, seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(len(name))  # the global RNG differs from run to run
        out = tmp_path / name
        args = ["--config", "tiny", "data.styles=2", "train.steps=1", f"train.seed={seed}"]
        assert main(["train-codec", "--out", str(out), *args]) == 0
        return _weights(out)

    first = run("a", 0)
    assert _same(first, run("bb", 0))
    assert not _same(first, run("ccc", 1))


def test_train_seed_fixes_the_diffusion_models_initial_weights(tmp_path):
    write_tiny_data_and_codec(tmp_path)

    def run(name: str, seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(len(name))  # the global RNG differs from run to run
        config = load_preset(
            DiffusionRunConfig, DIFFUSION_PRESETS, "tiny", ["train.steps=1", f"train.seed={seed}"]
        )
        train_diffusion(tmp_path / "data", tmp_path / "codec", tmp_path / name, config)
        return _weights(tmp_path / name / "diffusion")

    first = run("a", 0)
    assert _same(first, run("bb", 0))
    assert not _same(first, run("ccc", 1))
