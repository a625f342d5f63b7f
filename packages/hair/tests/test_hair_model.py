"""The model half: strand codec, scalp texture, scalp DiT with guidance, decoding, model folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from diffusers import EDMDPMSolverMultistepScheduler
from scipy import ndimage

from difforge.core.errors import CheckpointError, ConfigError, UserError
from difforge.hair.codec import (
    POSITION_SCALE,
    CodecLossWeights,
    StrandCodec,
    codec_errors,
    codec_loss,
    local_to_world,
    strands_to_local,
)
from difforge.hair.data.groom import COLLISION_MARGIN, density_map, generate_groom
from difforge.hair.data.head import DEFAULT_HEAD, UV_MAX_THETA, angles_from_uv
from difforge.hair.data.styles import sample_style
from difforge.hair.model import (
    UNSTORED_SCHEDULE,
    HairModel,
    SamplingConfig,
    ScalpDiffusion,
    ScheduleConfig,
    head_complement,
    replace_complement,
    resolve_model_dir,
    sample_texture,
    scalp_texture,
    smooth_latents,
    texel_noise,
    texel_noise_ratio,
)
from difforge.hair.sample import HairGenerator, HeadRangeDenoiser, _outside_head_range

N_POINTS, LATENT = 16, 4


def tiny_codec() -> StrandCodec:
    torch.manual_seed(0)
    return StrandCodec(
        n_points=N_POINTS,
        latent_dim=LATENT,
        encoder_channels=(8, 16),
        decoder_width=32,
        decoder_layers=2,
    )


def tiny_diffusion(resolution: int = 8, patch_size: int = 2) -> ScalpDiffusion:
    torch.manual_seed(1)
    return ScalpDiffusion(
        texture_channels=LATENT + 1,
        resolution=resolution,
        patch_size=patch_size,
        image_size=64,
        encoder_channels=(8, 16, 16),
        token_grid=8,
        hidden_size=32,
        num_layers=2,
        num_heads=2,
    )


@pytest.fixture(scope="module")
def groom():
    return generate_groom(sample_style(3, "curly"), 400, N_POINTS)


def test_root_frame_round_trip_is_exact(groom):
    local = strands_to_local(groom.points, groom.root_uv)
    assert local.shape == groom.points.shape
    np.testing.assert_allclose(local[:, 0], 0.0, atol=1e-7)
    frames = torch.from_numpy(groom.root_frames()).float()
    world = local_to_world(torch.from_numpy(local), torch.from_numpy(groom.points[:, 0]), frames)
    np.testing.assert_allclose(world.numpy(), groom.points, atol=1e-6)


def test_codec_shapes_and_a_few_steps_reduce_the_loss(groom):
    codec = tiny_codec()
    local = torch.from_numpy(strands_to_local(groom.points, groom.root_uv))
    mean, log_std = codec.encode(local)
    assert mean.shape == log_std.shape == (len(local), LATENT)
    assert mean.abs().max() <= 1.0  # tanh-bounded
    assert codec.decode(mean).shape == local.shape
    np.testing.assert_array_equal(codec.decode(mean)[:, 0].detach().numpy(), 0.0)

    weights = CodecLossWeights()
    optimizer = torch.optim.Adam(codec.parameters(), lr=3e-3)
    torch.manual_seed(2)
    losses = []
    for _ in range(60):
        loss, parts = codec_loss(codec, local, weights)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert set(parts) == {"position", "direction", "curvature", "kl"}
    assert np.mean(losses[-5:]) < 0.85 * np.mean(losses[:5])


def test_codec_errors_are_in_millimetres_and_degrees(groom):
    codec = tiny_codec()
    local = torch.from_numpy(strands_to_local(groom.points, groom.root_uv))
    errors = codec_errors(codec, local, batch_size=100)
    with torch.no_grad():
        reconstruction = codec.decode(codec.encode(local)[0])
    expected_mm = (reconstruction - local).norm(dim=-1).mean().item() * POSITION_SCALE * 1000
    assert errors["position_mm"] == pytest.approx(expected_mm, rel=1e-5)
    assert 0 <= errors["direction_deg"] <= 180 and errors["curvature_mm"] >= 0


def test_texture_writes_lookup_and_fills_holes():
    resolution = 8
    centres = (np.array([[1, 2], [5, 6], [7, 0]]) + 0.5) / resolution  # (u, v) texel centres
    latents = np.array([[1.0, -1.0], [0.5, 0.25], [-0.5, 0.75]])
    density = np.linspace(0, 1, 16 * 16, dtype=np.float32).reshape(16, 16)
    texture = scalp_texture(latents, centres, density, resolution)
    assert texture.shape == (3, resolution, resolution)
    # Each root is in its own texel (row v, column u), read back exactly at the texel centre.
    np.testing.assert_allclose(texture[:2, 2, 1], latents[0])
    looked_up = sample_texture(torch.from_numpy(texture), torch.from_numpy(centres)).numpy()
    np.testing.assert_allclose(looked_up[:, :2], latents, atol=1e-6)
    # Holes hold the nearest written texel's value; the density is the 2x2 block mean.
    np.testing.assert_allclose(texture[:2, 0, 0], latents[0])
    np.testing.assert_allclose(texture[:2, 7, 7], latents[1])
    np.testing.assert_allclose(texture[2], density.reshape(8, 2, 8, 2).mean(axis=(1, 3)), atol=1e-6)
    # Two roots in one texel are averaged.
    both = scalp_texture(latents[:2], np.stack([centres[0], centres[0]]), density, resolution)
    np.testing.assert_allclose(both[:2, 2, 1], latents[:2].mean(0))


def test_dit_sampling_shapes_and_guidance():
    diffusion = tiny_diffusion()
    torch.nn.init.normal_(diffusion.dit.proj_out.weight, std=0.5)  # untrained output is not 0
    for block in diffusion.dit.transformer_blocks:
        torch.nn.init.normal_(block.adaLN_modulation.weight, std=0.1)
    model = HairModel(tiny_codec(), diffusion, SamplingConfig(steps=3, n_strands=200))
    images = np.random.default_rng(0).integers(0, 255, size=(2, 64, 64, 3), dtype=np.uint8)
    textures = HairGenerator(model).textures(images, seed=0)
    assert textures.shape == (2, LATENT + 1, 8, 8) and torch.isfinite(textures).all()
    again = HairGenerator(model).textures(images, seed=0)
    torch.testing.assert_close(textures, again)
    unguided = HairGenerator(model, sampling=SamplingConfig(steps=3, guidance_scale=0.0))
    assert not torch.allclose(unguided.textures(images, seed=0), textures)
    tokens = diffusion.textures_to_tokens(textures)
    assert tokens.shape == (2, 16, (LATENT + 1) * 4)
    torch.testing.assert_close(diffusion.tokens_to_textures(tokens), textures)


def test_ensemble_averages_its_members_and_reaches_the_sampler():
    diffusion = tiny_diffusion()
    torch.nn.init.normal_(diffusion.dit.proj_out.weight, std=0.5)
    model = HairModel(tiny_codec(), diffusion, SamplingConfig(steps=3, n_strands=200))
    image = np.random.default_rng(0).integers(0, 255, size=(1, 64, 64, 3), dtype=np.uint8)
    members = HairGenerator(model).textures(np.repeat(image, 3, axis=0), seed=0)
    assert not torch.allclose(members[0], members[1])  # one noise draw, different members
    ensemble = HairGenerator(model, sampling=SamplingConfig(steps=3, ensemble=3))
    averaged = ensemble.textures(image, seed=0)
    assert averaged.shape == (1, LATENT + 1, 8, 8)
    torch.testing.assert_close(averaged[0], members.mean(0))
    from difforge.hair.cli import _generator, build_parser

    args = build_parser().parse_args(
        ["evaluate", "--device", "cpu", "--out", "unused.json", "--ensemble", "4"]
    )
    assert _generator(args, model=model).sampling.ensemble == 4
    with pytest.raises(ConfigError, match="ensemble"):
        SamplingConfig(ensemble=0)


def test_bf16_sampling_stays_close_to_float32_and_reaches_the_sampler():
    diffusion = tiny_diffusion()
    torch.nn.init.normal_(diffusion.dit.proj_out.weight, std=0.5)
    model = HairModel(tiny_codec(), diffusion, SamplingConfig(steps=3, n_strands=200))
    image = np.random.default_rng(0).integers(0, 255, size=(1, 64, 64, 3), dtype=np.uint8)
    exact = HairGenerator(model).textures(image, seed=0)
    fast = HairGenerator(model, sampling=SamplingConfig(steps=3, bf16=True)).textures(image, 0)
    assert fast.dtype == torch.float32  # decoding and export stay in float32
    assert not torch.equal(fast, exact)  # the autocast is applied
    # bfloat16 rounds to 8 significant bits (0.4 %); these textures differ by about 1 %.
    assert float((fast - exact).norm() / exact.norm()) < 0.05
    from difforge.hair.cli import _generator, build_parser

    args = build_parser().parse_args(["evaluate", "--device", "cpu", "--out", "x", "--bf16"])
    assert _generator(args, model=model).sampling.bf16


def test_decode_roots_on_the_scalp_and_no_point_inside_the_head():
    codec = tiny_codec()
    torch.nn.init.normal_(codec.decoder[-1].weight, std=1.0)  # wild strands, many into the head
    resolution = 16
    density = density_map(sample_style(2, "receding"), resolution)
    density[:, : resolution // 2] = 0.0  # no hair on the u < 0.5 half (the subject's right)
    latents = np.random.default_rng(0).uniform(-1, 1, size=(LATENT, resolution, resolution))
    texture = torch.from_numpy(np.concatenate([latents, density[None]]).astype(np.float32))
    generator = HairGenerator(HairModel(codec, tiny_diffusion()))
    groom = generator.decode(texture, seed=0, root_candidates=3000)
    assert groom.n_strands > 100 and groom.points.shape[1:] == (N_POINTS, 3)
    roots = groom.points[:, 0].astype(np.float64)
    np.testing.assert_allclose(DEFAULT_HEAD.skull_level(roots), 1.0, atol=1e-5)
    theta, _ = angles_from_uv(groom.root_uv.astype(np.float64))
    assert theta.max() <= UV_MAX_THETA
    assert groom.root_uv[:, 0].min() >= 0.5 - 1.0 / resolution  # bilinear reach only
    root_density = sample_texture(texture, torch.from_numpy(groom.root_uv))[:, -1]
    assert root_density.min() >= 0.02
    rest = groom.points[:, 1:].astype(np.float64)
    assert not DEFAULT_HEAD.inside(rest).any()
    assert DEFAULT_HEAD.skull_level(rest).min() >= 1 + 0.99 * COLLISION_MARGIN / 2 / 0.1


def test_min_density_drops_roots_where_the_sampled_density_is_sparse():
    resolution = 16
    density = np.full((resolution, resolution), 0.9, dtype=np.float32)
    density[:, : resolution // 2] = 0.1  # sparse hair on the u < 0.5 half
    latents = np.zeros((LATENT, resolution, resolution), dtype=np.float32)
    texture = torch.from_numpy(np.concatenate([latents, density[None]]))
    model = HairModel(tiny_codec(), tiny_diffusion())
    kept = {}
    for min_density in (0.02, 0.5):
        generator = HairGenerator(model, sampling=SamplingConfig(min_density=min_density))
        groom = generator.decode(texture, seed=0, root_candidates=4000)
        kept[min_density] = sample_texture(texture, torch.from_numpy(groom.root_uv))[:, -1]
    assert (kept[0.02] < 0.5).sum() > 50  # the default keeps some sparse roots...
    assert kept[0.5].min() >= 0.5 and len(kept[0.5]) > 1000  # ...a higher cut none, dense kept
    with pytest.raises(ConfigError, match="min_density"):
        SamplingConfig(min_density=1.0)


def test_a_strand_count_is_met_exactly_and_root_candidates_keep_the_old_meaning():
    resolution = 16
    density = np.zeros((resolution, resolution), dtype=np.float32)
    density[:, resolution // 2 :] = 0.3  # sparse hair on one half: most candidates are dropped
    latents = np.zeros((LATENT, resolution, resolution), dtype=np.float32)
    texture = torch.from_numpy(np.concatenate([latents, density[None]]))
    model = HairModel(tiny_codec(), tiny_diffusion())
    generator = HairGenerator(model)
    for count in (1, 2000):
        groom = generator.decode(texture, seed=0, n_strands=count)
        assert groom.n_strands == count and groom.root_uv.shape == (count, 2)
        assert groom.root_uv[:, 0].min() >= 0.5 - 1.0 / resolution  # only where hair grows
    candidates = generator.decode(texture, seed=0, root_candidates=2000)
    assert 100 < candidates.n_strands < 400  # about 2000 x 0.3 x (half the cap)
    with_count = generator.decode(texture, seed=0, n_strands=2000)
    np.testing.assert_array_equal(with_count.points[:100], candidates.points[:100])
    assert generator.decode(texture * 0, seed=0, n_strands=50).n_strands == 1  # bald: one strand
    assert generator.sampling.n_strands is None  # the density decides how many by default
    counted = HairGenerator(model, sampling=SamplingConfig(n_strands=123))
    assert counted.decode(texture, seed=0).n_strands == 123


def test_latent_smoothing_blurs_the_latents_only_and_reaches_the_decoder():
    rng = np.random.default_rng(0)
    texture = torch.from_numpy(rng.uniform(-1, 1, size=(LATENT + 1, 16, 16)).astype(np.float32))
    assert smooth_latents(texture, 0.0) is texture
    for sigma in (1.0, 1.5):
        smoothed = smooth_latents(texture, sigma)
        expected = ndimage.gaussian_filter(
            texture[:-1].double().numpy(), (0, sigma, sigma), mode="nearest", truncate=3.0
        )
        np.testing.assert_allclose(smoothed[:-1].numpy(), expected, atol=1e-5)
        torch.testing.assert_close(smoothed[-1], texture[-1])  # the density is left alone
    model = HairModel(tiny_codec(), tiny_diffusion())
    smooth = HairGenerator(model, sampling=SamplingConfig(latent_smoothing=1.5))
    plain = HairGenerator(model)
    groom = smooth.decode(texture, seed=0, n_strands=500)
    np.testing.assert_array_equal(
        groom.points, plain.decode(smooth_latents(texture, 1.5), seed=0, n_strands=500).points
    )
    assert not np.allclose(groom.points, plain.decode(texture, seed=0, n_strands=500).points)


def test_texel_noise_is_about_one_between_real_textures_and_higher_for_noisy_ones(groom):
    codec = tiny_codec()
    with torch.no_grad():
        latents = codec.encode(torch.from_numpy(strands_to_local(groom.points, groom.root_uv)))[0]
    density = density_map(sample_style(3, "curly"), 128)
    # Two textures of one style from disjoint halves of its strands: equally smooth.
    halves = [
        torch.from_numpy(scalp_texture(latents[i::2].numpy(), groom.root_uv[i::2], density, 16))
        for i in (0, 1)
    ]
    real, other_real = halves[0][None], halves[1][None]
    ratio = texel_noise_ratio(other_real, real)
    assert ratio.shape == (LATENT + 1,)
    assert torch.all((ratio[:-1] > 0.6) & (ratio[:-1] < 1.6)), ratio
    # Texel noise of half the channels' spread: several times the real textures'.
    spread = real.std(dim=(0, 2, 3))[None, :, None, None]
    noisy = real + 0.5 * spread * torch.randn(
        real.shape, generator=torch.Generator().manual_seed(0)
    )
    assert torch.all(texel_noise_ratio(noisy, real) > 2), texel_noise_ratio(noisy, real)
    assert torch.all(texel_noise(smooth_latents(real[0], 1.0)[None])[:-1] < texel_noise(real)[:-1])
    # One step between neighbours: rows 0, 1, 2, 3 in one channel give (1 + 0) / 2.
    steps = torch.arange(4.0).view(1, 1, 4, 1).expand(1, 1, 4, 4)
    torch.testing.assert_close(texel_noise(steps), torch.tensor([0.5], dtype=torch.float64))


def test_noise_outside_the_output_heads_range_is_measured_there_only():
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(12, 4, generator=generator)  # 12 outputs per token from 4 features
    inside = torch.randn(3, 50, 4, generator=generator) @ weight.T
    outside = inside + torch.randn(3, 50, 12, generator=generator)  # unit noise everywhere
    report = _outside_head_range(weight, outside, inside)
    assert (report["outputs"], report["hidden"]) == (12, 4)
    assert report["outside_variance_real"] < 1e-10
    assert 0.8 < report["outside_variance_sampled"] < 1.2, report
    assert (
        _outside_head_range(weight[:3], outside[..., :3], inside[..., :3])[
            "outside_variance_sampled"
        ]
        == 0.0
    )  # 3 outputs from 4 features: nothing lies outside


def project_to_range(tokens: torch.Tensor, complement: torch.Tensor) -> torch.Tensor:
    return replace_complement(tokens, torch.zeros(()), complement)


def test_projection_onto_the_heads_range_removes_a_planted_complement_only():
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(12, 4, generator=generator)  # 12 outputs per token from 4 features
    complement = head_complement(weight)
    assert complement.shape == (12, 8)
    inside = torch.randn(3, 50, 4, generator=generator) @ weight.T
    planted = torch.randn(3, 50, 8, generator=generator, dtype=torch.float64) @ complement.T
    projected = project_to_range(inside + planted.float(), complement)
    torch.testing.assert_close(projected, inside, atol=1e-4, rtol=0)
    torch.testing.assert_close(project_to_range(projected, complement), projected)  # idempotent
    wide = torch.randn(3, 4, generator=generator)  # 3 outputs from 4 features: all reachable
    assert head_complement(wide).shape == (3, 0)
    torch.testing.assert_close(project_to_range(planted.float()[..., :3], head_complement(wide)),
                               planted.float()[..., :3])  # fmt: skip


def test_head_range_denoiser_zeroes_the_unreachable_part_of_each_denoised_estimate():
    images = np.random.default_rng(0).integers(0, 255, size=(2, 64, 64, 3), dtype=np.uint8)
    for patch_size, rank_deficient in ((4, True), (2, False)):  # 80 or 20 outputs, width 32
        diffusion = tiny_diffusion(patch_size=patch_size)
        torch.nn.init.normal_(diffusion.dit.proj_out.weight, std=0.5)  # untrained output is not 0
        torch.nn.init.normal_(diffusion.dit.proj_out.bias, std=0.5)
        complement = head_complement(diffusion.dit.proj_out.weight)
        model = HairModel(tiny_codec(), diffusion, SamplingConfig(steps=3))
        generator = HairGenerator(model)
        scheduler = generator.scheduler
        condition = dict(zip(("image_tokens", "image_vector"), diffusion.encode_image(
            torch.zeros(2, 3, 64, 64))))  # fmt: skip
        x = 5.0 * torch.randn(2, *diffusion.token_shape, generator=torch.Generator().manual_seed(0))
        sigma = torch.full((2, 1, 1), 5.0)
        model_in, c_noise = scheduler.precondition_inputs(x, sigma), torch.log(sigma[:, 0, 0]) / 4
        plain, projected = (
            scheduler.precondition_outputs(x, denoiser(model_in, c_noise, **condition), sigma)
            for denoiser in (diffusion, HeadRangeDenoiser(diffusion))
        )
        torch.testing.assert_close(
            project_to_range(projected, complement), projected, atol=1e-5, rtol=0
        )
        torch.testing.assert_close(
            projected, project_to_range(plain, complement), atol=1e-5, rtol=0
        )
        on = HairGenerator(model, sampling=SamplingConfig(steps=3, project_to_head_range=True))
        sampled = (
            diffusion.textures_to_tokens(g.textures(images, seed=0)) for g in (generator, on)
        )
        without, with_projection = sampled
        assert torch.allclose(without, with_projection) is not rank_deficient
        assert (with_projection.double() @ complement).norm() < 1e-3


def test_project_head_range_flag_reaches_the_sampler():
    from difforge.hair.cli import _generator, build_parser

    parser = build_parser()
    evaluate = ["evaluate", "--device", "cpu", "--out", "unused.json"]
    model = HairModel(tiny_codec(), tiny_diffusion(), SamplingConfig(project_to_head_range=True))
    for flag, expected in (([], True), (["--no-project-head-range"], False)):
        args = parser.parse_args([*evaluate, *flag])
        assert _generator(args, model=model).sampling.project_to_head_range is expected
    model = HairModel(tiny_codec(), tiny_diffusion())  # new models: off unless asked
    assert not _generator(args, model=model).sampling.project_to_head_range
    args = parser.parse_args([*evaluate, "--project-head-range"])
    assert _generator(args, model=model).sampling.project_to_head_range


def test_model_folder_round_trip(tmp_path):
    model = HairModel(tiny_codec(), tiny_diffusion(), SamplingConfig(steps=2), {"note": "x"})
    with torch.no_grad():
        model.diffusion.channel_std.fill_(0.5)
    model.save(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} == {"config.json", "codec", "diffusion"}
    loaded = HairModel.load(tmp_path / "m")
    assert loaded.sampling == model.sampling and loaded.info == {"note": "x"}
    for original, restored in ((model.codec, loaded.codec), (model.diffusion, loaded.diffusion)):
        saved = restored.state_dict()
        assert set(saved) == set(original.state_dict())
        for key, value in original.state_dict().items():
            assert saved[key].dtype == torch.float32
            torch.testing.assert_close(saved[key], value, atol=2e-3, rtol=2e-3)  # float16 files
    assert loaded.diffusion.channel_std[0] == 0.5


def test_sampling_schedule_is_saved_with_the_model_and_steers_sampling(tmp_path):
    schedule = ScheduleConfig(sigma_min=0.01, sigma_max=40.0, rho=5.0)
    sampling = SamplingConfig(steps=3, sampler="edm_euler", schedule=schedule)
    HairModel(tiny_codec(), tiny_diffusion(), sampling).save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    assert meta["sampling"]["schedule"]["sigma_max"] == 40.0
    loaded = HairModel.load(tmp_path / "m")
    assert loaded.sampling == sampling
    scheduler = HairGenerator(loaded).scheduler
    assert type(scheduler).__name__ == "EDMEulerScheduler"
    assert (scheduler.config.sigma_min, scheduler.config.sigma_max) == (0.01, 40.0)
    assert (scheduler.config.rho, scheduler.config.sigma_data) == (5.0, 1.0)

    image = np.random.default_rng(0).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    before = HairGenerator(loaded).textures(image, seed=0)
    meta["sampling"]["schedule"]["sigma_max"] = 2.0  # edited in the folder, not in code
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    edited = HairModel.load(tmp_path / "m")
    assert HairGenerator(edited).scheduler.config.sigma_max == 2.0
    assert not torch.allclose(HairGenerator(edited).textures(image, seed=0), before)


def test_folders_saved_before_the_schedule_was_stored_load_with_what_they_used(tmp_path):
    HairModel(tiny_codec(), tiny_diffusion(), SamplingConfig(root_candidates=300)).save(
        tmp_path / "m"
    )
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    old = {key: value for key, value in meta["sampling"].items() if key != "schedule"}
    old["n_strands"] = old.pop("root_candidates")  # which counted root candidates then
    (tmp_path / "m" / "config.json").write_text(json.dumps({**meta, "sampling": old}))
    sampling = HairModel.load(tmp_path / "m").sampling
    assert sampling.schedule == ScheduleConfig(**UNSTORED_SCHEDULE)
    assert (sampling.root_candidates, sampling.n_strands) == (300, None)
    scheduler = HairGenerator(HairModel.load(tmp_path / "m")).scheduler
    expected = EDMDPMSolverMultistepScheduler(sigma_data=1.0, prediction_type="epsilon")
    for key in ("sigma_min", "sigma_max", "sigma_data", "rho", "sigma_schedule"):
        assert scheduler.config[key] == expected.config[key], key
    shipped = json.loads((resolve_model_dir("default") / "config.json").read_text())
    assert shipped["sampling"]["schedule"] == UNSTORED_SCHEDULE  # written out for the default


def test_model_folder_errors(tmp_path, monkeypatch):
    from difforge.hair import model

    with pytest.raises(UserError, match="not a difforge-hair model folder"):
        HairModel.load(tmp_path / "missing")
    monkeypatch.setattr(model, "DEFAULT_MODEL_DIR", tmp_path / "weights" / "default")
    with pytest.raises(
        UserError, match=r"default model is missing: .*weights/default holds no config\.json"
    ):
        resolve_model_dir("default")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text(json.dumps({"model_type": "other"}))
    with pytest.raises(CheckpointError, match="not a difforge-hair model"):
        HairModel.load(tmp_path / "bad")
    (tmp_path / "bad" / "config.json").write_text(json.dumps({"model_type": "difforge-hair"}))
    with pytest.raises(CheckpointError, match="codec: missing"):
        HairModel.load(tmp_path / "bad")
