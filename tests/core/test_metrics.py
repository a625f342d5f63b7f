"""Shared metrics against hand-computed values."""

import math

import numpy as np
import pytest
import torch

from difforge.core.metrics import (
    chamfer_distance,
    frechet_distance,
    histogram_jsd,
    jsd,
    psnr,
    sliced_wasserstein,
    ssim,
)


def test_jsd_bounds_and_symmetry():
    assert jsd([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0, abs=1e-12)
    assert jsd([1, 0], [0, 1]) == pytest.approx(math.log(2))
    p, q = [0.5, 0.5], [0.9, 0.1]
    # Hand computation with m = (0.7, 0.3).
    expected = 0.5 * (0.5 * math.log(0.5 / 0.7) + 0.5 * math.log(0.5 / 0.3)) + 0.5 * (
        0.9 * math.log(0.9 / 0.7) + 0.1 * math.log(0.1 / 0.3)
    )
    assert jsd(p, q) == pytest.approx(expected)
    assert jsd(p, q) == pytest.approx(jsd(q, p))
    with pytest.raises(ValueError, match="shape"):
        jsd([1, 2], [1, 2, 3])


def test_histogram_jsd_bins_like_hosers_notebook():
    # Edges np.linspace(0, 3, 4) + inf = [0, 1, 2, 3, inf]: the reference maximum 3.0 lands in the
    # last bin [3, inf) with everything beyond it. Reference counts (0, 1, 1, 1).
    ref = np.array([1.0, 2.0, 3.0])
    far = np.array([10.0, 20.0, 30.0])  # all in the last bin: (0, 0, 0, 3)
    expected = 0.5 * (math.log(2) / 3 + math.log(1.5))
    assert histogram_jsd(far, ref, bins=4) == pytest.approx(expected)
    assert histogram_jsd(ref, ref, bins=4) == pytest.approx(0.0)
    # 2.9 lies in the regular bin [2, 3), which holds only 2.0 of the reference.
    p, q = np.array([1 / 3, 1 / 3, 1 / 3]), np.array([0.0, 1.0, 0.0])
    m = (p + q) / 2
    expected = 0.5 * float(np.sum(p * np.log(p / m))) + 0.5 * math.log(1 / m[1])
    assert histogram_jsd(np.array([2.9]), ref, bins=4) == pytest.approx(expected)
    # Without the overflow bin, 4 equal bins over [0, 3] with values clipped into the last one.
    assert histogram_jsd(far, ref, bins=4, overflow=False) < math.log(2)


def test_frechet_distance_of_shifted_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20000, 3))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, 2.0, 2.0])  # |shift|^2 = 9, equal covariances
    assert frechet_distance(a, a + shift) == pytest.approx(9.0, rel=1e-3)


def test_chamfer_distance_hand_computed():
    a = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[0.0, 1.0]])
    # a->b: distances 1 and sqrt(2), mean (1 + sqrt 2)/2; b->a: nearest is 1.
    assert float(chamfer_distance(a, b)) == pytest.approx((1 + math.sqrt(2)) / 2 + 1)
    assert float(chamfer_distance(a, b, squared=True)) == pytest.approx((1 + 2) / 2 + 1)
    batched = chamfer_distance(torch.stack([a, a]), torch.stack([b, b]), chunk=1)
    assert batched.shape == (2,)


def test_sliced_wasserstein_of_a_translation():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 2, generator=gen)
    assert sliced_wasserstein(a, a) == pytest.approx(0.0)
    # Shifting by v moves every 1-D projection by v·θ, so SW2 = |v| / sqrt(d) for d = 2.
    v = torch.tensor([3.0, 4.0])
    assert sliced_wasserstein(a, a + v, projections=4096) == pytest.approx(
        5 / math.sqrt(2), rel=0.03
    )


def test_psnr_and_ssim():
    img = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-5)
    noisy = (img + 0.1).clamp(0, 1)
    mse = float((noisy - img).square().mean())
    assert psnr(noisy, img) == pytest.approx(10 * math.log10(1 / mse), rel=1e-4)
