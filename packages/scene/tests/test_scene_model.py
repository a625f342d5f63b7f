"""The generative model's parts: 3D-aware plane features, exact flips, VAE and DiT plumbing,
neighbour conditions for expansion, RePaint keeping what is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from difforge.core.errors import CheckpointError, UserError
from difforge.scene.model import (
    LatentDiffusion,
    NoiseSchedule,
    SamplingConfig,
    SceneModel,
    TriPlaneVAE,
    cross_plane_features,
    epsilon_from_v,
    layout_condition,
)
from difforge.scene.sample import Scene, SceneGenerator, neighbour_condition
from difforge.scene.train import flip_planes, flip_rasters
from difforge.scene.triplane import TriPlaneDecoder


def _tiny_model() -> SceneModel:
    torch.manual_seed(0)
    diffusion = LatentDiffusion(
        latent_channels=2, latent_resolution=8, hidden_size=32, num_layers=1, num_heads=2
    )
    # Non-zero output head, so the model's prediction depends on its input.
    torch.nn.init.normal_(diffusion.dit.proj_out.weight, std=0.1)
    return SceneModel(
        TriPlaneDecoder(channels=4, hidden=16, layers=1),
        TriPlaneVAE(channels=4, resolution=16, latent_channels=2, widths=(8, 8, 8)),
        diffusion,
        SamplingConfig(steps=3, repaint_steps=4, jump_length=2, jump_n_sample=2),
    )


def test_cross_plane_features_follow_the_shared_axes() -> None:
    s = 4
    ramp = torch.arange(s, dtype=torch.float32)
    planes = torch.zeros(1, 3, 1, s, s)
    planes[0, 1, 0] = ramp[None, :]  # xz plane: a function of x (columns)
    features = cross_plane_features(planes)[0]
    # xy sees it as a function of x (its columns) from its first (xz) slot ...
    assert torch.equal(features[0, 0], ramp[None, :].expand(s, s))
    # ... yz (which does not contain x) sees its mean over x: a constant.
    assert torch.allclose(features[2, 1], torch.full((s, s), ramp.mean()))
    planes = torch.zeros(1, 3, 1, s, s)
    planes[0, 2, 0] = ramp[None, :]  # yz plane: a function of y (columns)
    features = cross_plane_features(planes)[0]
    assert torch.equal(features[0, 1], ramp[:, None].expand(s, s))  # xy rows are y


@pytest.mark.parametrize("flip_x,flip_z", [(True, False), (False, True), (True, True)])
def test_flipped_planes_decode_to_the_mirrored_field(flip_x: bool, flip_z: bool) -> None:
    torch.manual_seed(1)
    decoder = TriPlaneDecoder(channels=3, hidden=8, layers=1)
    planes = torch.randn(1, 3, 3, 6, 6)
    points = torch.rand(1, 50, 3) * 2 - 1
    mirrored = points * torch.tensor([-1.0 if flip_x else 1.0, 1.0, -1.0 if flip_z else 1.0])
    with torch.no_grad():
        expected = decoder(planes, points)
        got = decoder(flip_planes(planes, flip_x, flip_z), mirrored)
    assert torch.allclose(got, expected, atol=1e-5)
    raster = np.zeros((1, 9, 4, 4), dtype=np.uint8)
    raster[0, 2, 0, 1] = 1  # [class, x, z]
    flipped = flip_rasters(raster, flip_x, flip_z)
    assert flipped[0, 2, 3 if flip_x else 0, 2 if flip_z else 1] == 1


def test_layout_condition_lies_on_the_xz_plane_grid() -> None:
    raster = np.zeros((1, 9, 32, 32), dtype=np.uint8)
    raster[0, 2, 30, 1] = 1  # bed at large x, small z
    cond = layout_condition(raster, 16)
    assert cond.shape == (1, 9, 16, 16)
    # xz plane: rows are z, columns x.
    assert cond[0, 2, 0, 15] == 1 and cond[0, 2].sum() == 1


def test_vae_shapes_kl_and_tokens_round_trip() -> None:
    model = _tiny_model()
    planes = torch.randn(2, 3, 4, 16, 16)
    recon, mean, logvar = model.vae(planes)
    assert recon.shape == planes.shape and mean.shape == (2, 3, 2, 4, 4)
    prior = torch.zeros_like(mean), torch.full_like(logvar, 2 * np.log(0.25))
    assert torch.allclose(model.vae.kl(*prior), torch.zeros_like(mean), atol=1e-6)
    latents = torch.randn(2, 3, 2, 8, 8)
    tokens = model.diffusion.latents_to_tokens(latents)
    assert tokens.shape == (2, *model.diffusion.token_shape) == (2, 48, 8)
    assert torch.allclose(model.diffusion.tokens_to_latents(tokens), latents, atol=1e-6)


def test_layout_changes_only_reach_the_model_through_the_condition() -> None:
    model = _tiny_model()
    x = torch.randn(2, 48, 8)
    t = torch.tensor([10, 900])
    empty = torch.zeros(2, 9, 8, 8)
    full = torch.ones(2, 9, 8, 8)
    with torch.no_grad():
        a = model.diffusion(x, t, layout=empty)
        b = model.diffusion(x, t, layout=full)
    assert not torch.allclose(a, b)


def test_epsilon_from_v_inverts_the_v_target() -> None:
    scheduler = NoiseSchedule().scheduler()
    x0, noise = torch.randn(3, 5), torch.randn(3, 5)
    t = torch.tensor([1, 400, 999])
    xt = scheduler.add_noise(x0, noise, t)
    v = scheduler.get_velocity(x0, noise, t)
    abar = scheduler.alphas_cumprod[t][:, None]
    assert torch.allclose(epsilon_from_v(v, xt, abar), noise, atol=1e-4)


def test_neighbour_condition_shares_only_planes_containing_the_shift_axis() -> None:
    r, ov = 8, 2
    left = torch.arange(3 * r * r, dtype=torch.float32).reshape(3, 1, r, r)
    scene = Scene({(0, 0): left}, stride=2.4)
    known, mask = neighbour_condition(scene, (1, 0), ov)  # new block at +x
    # xy (cols x) and xz (cols x): the neighbour's last columns become the first ones.
    for plane in (0, 1):
        assert torch.equal(known[plane, :, :, :ov], left[plane, :, :, r - ov :])
        assert mask[plane, :, :, :ov].eq(1).all() and mask[plane, :, :, ov:].eq(0).all()
    assert mask[2].eq(0).all()  # yz is block-private for a shift along x
    known, mask = neighbour_condition(scene, (0, -1), ov)  # new block at -z
    for plane in (1, 2):  # xz and yz: rows are z
        assert torch.equal(known[plane, :, r - ov :], left[plane, :, :ov])
        assert mask[plane, :, r - ov :].eq(1).all() and mask[plane, :, : r - ov].eq(0).all()
    assert mask[0].eq(0).all()
    assert neighbour_condition(scene, (5, 5), ov) is None


def test_repaint_keeps_the_known_latents_and_samples_the_rest() -> None:
    generator = SceneGenerator(_tiny_model())
    assert generator.overlap_texels == 2
    raster = np.zeros((1, 9, 32, 32), dtype=np.uint8)
    known = torch.randn(1, 3, 2, 8, 8)
    mask = torch.zeros(1, 3, 1, 8, 8)
    mask[:, :2, :, :, :2] = 1
    out = generator.inpaint_latents(raster, known, mask, seed=0)
    keep = mask.expand_as(known).bool()
    assert torch.allclose(out[keep], known[keep], atol=1e-4)
    assert torch.isfinite(out).all() and not torch.allclose(out[~keep], known[~keep])
    again = generator.inpaint_latents(raster, known, mask, seed=0)
    assert torch.equal(out, again)
    plain = generator.sample_latents(raster, seed=0)
    assert plain.shape == (1, 3, 2, 8, 8) and torch.isfinite(plain).all()


def test_model_folder_round_trip_and_bad_folders(tmp_path) -> None:
    model = _tiny_model()
    model.save(tmp_path / "m")
    again = SceneModel.load(tmp_path / "m")
    planes = torch.randn(1, 3, 4, 16, 16)
    with torch.no_grad():
        a = model.vae.decode(model.vae.encode(planes)[0])
        b = again.vae.decode(again.vae.encode(planes)[0])
    assert torch.allclose(a, b, atol=0.05)  # float16 on disk
    assert again.sampling == model.sampling
    with pytest.raises(UserError, match="not a difforge-scene model folder"):
        SceneModel.load(tmp_path)
    (tmp_path / "m" / "diffusion" / "diffusion_pytorch_model.safetensors").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="cannot load") as info:
        SceneModel.load(tmp_path / "m")
    assert "\n" not in str(info.value)


def test_sampling_stride_must_leave_whole_latent_texels() -> None:
    model = _tiny_model()
    with pytest.raises(UserError, match="whole number of latent texels"):
        SceneGenerator(model, sampling=SamplingConfig(stride=2.5))


def test_vector_latent_vae_has_one_global_latent_of_the_same_size() -> None:
    torch.manual_seed(0)
    vae = TriPlaneVAE(channels=4, resolution=16, latent_channels=2, widths=(8, 8, 8))
    vector = TriPlaneVAE(
        channels=4, resolution=16, latent_channels=2, widths=(8, 8, 8), vector_latent=True
    )
    planes = torch.randn(2, 3, 4, 16, 16)
    recon, mean, _ = vector(planes)
    assert recon.shape == planes.shape and mean.shape == vae.encode(planes)[0].shape
    n = mean[0].numel()  # the same number of latent numbers as the tri-plane latent ...
    assert vector.to_vector.weight.shape == (2 * n, 2 * n)  # ... made by one dense map
    with torch.no_grad():
        again = vector.decode(vector.encode(planes)[0])
    assert again.shape == planes.shape and torch.isfinite(again).all()


def test_vae_and_diffusion_losses_fall_when_trained() -> None:
    from difforge.core.diffusion.gaussian import GaussianLoss
    from difforge.scene.run_config import VAELossWeights
    from difforge.scene.train import vae_loss

    torch.manual_seed(0)
    model = _tiny_model()
    # Smooth planes (the fitter's TV term makes them so) and surface samples.
    planes = torch.nn.functional.avg_pool2d(torch.randn(12, 4, 18, 18), 3, 1).view(4, 3, 4, 16, 16)
    batch = {"planes": planes, "surface": torch.rand(4, 64, 3) * 2 - 1}
    optimiser = torch.optim.Adam(model.vae.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss, _ = vae_loss(model.vae, model.decoder, batch, VAELossWeights(), 128)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.75 * np.mean(losses[:5])

    tokens = model.diffusion.latents_to_tokens(torch.randn(1, 3, 2, 8, 8)).expand(8, -1, -1)
    layout = torch.zeros(8, 9, 8, 8)
    loss_fn = GaussianLoss(NoiseSchedule().scheduler())
    optimiser = torch.optim.Adam(model.diffusion.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(60):
        loss = loss_fn(model.diffusion, tokens, {"layout": layout}, generator)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    # One training example: the model learns it, so the v-prediction error drops.
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10])
