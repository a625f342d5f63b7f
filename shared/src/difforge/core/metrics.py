"""Metrics shared by several domains: histogram JSD, Fréchet distance, Chamfer, SSIM/PSNR, sliced W2.

SSIM and PSNR come from torchmetrics; the rest have no maintained implementation with the exact
definitions our protocols need (natural-log JSD over fixed bins with overflow, Chamfer on raw point
sets, Fréchet distance of arbitrary features), so they are written here, each a few lines.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg
from torch import Tensor


def jsd(p: np.ndarray | Tensor, q: np.ndarray | Tensor) -> float:
    """Jensen–Shannon divergence (natural log, so in [0, ln 2]) between two histograms.

    Inputs are counts or probabilities of the same shape; each is normalised to sum to one.
    """
    p = np.asarray(p, dtype=np.float64).ravel()
    q = np.asarray(q, dtype=np.float64).ravel()
    if p.shape != q.shape:
        raise ValueError(f"histograms differ in shape: {p.shape} vs {q.shape}")
    if p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("a histogram is empty")
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log(a[nz] / b[nz])))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def histogram_jsd(
    a: np.ndarray,
    b: np.ndarray,
    *,
    bins: int = 100,
    upper: float | None = None,
    overflow: bool = True,
) -> float:
    """JSD of two samples binned over ``[0, upper]``, HOSER's way when ``overflow`` is true.

    ``upper`` defaults to the largest value of ``b`` (the reference sample). With ``overflow``
    (the HOSER protocol, ``evaluation/main.ipynb``) the edges are ``np.linspace(0, upper, bins)``
    plus infinity: ``bins - 1`` regular bins of width ``upper / (bins - 1)`` and one last bin from
    ``upper`` (included) to infinity, so the reference maximum itself falls in that last bin, as
    ``np.histogram`` puts it there. Without ``overflow``, ``bins`` equal bins over ``[0, upper]``
    with values outside clipped in.
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if upper is None:
        upper = float(b.max()) if b.size else 1.0
    upper = upper if upper > 0 else 1.0
    if overflow:
        edges = np.append(np.linspace(0.0, upper, bins), np.inf)
        return jsd(np.histogram(a, edges)[0], np.histogram(b, edges)[0])

    def counts(values: np.ndarray) -> np.ndarray:
        index = np.clip((values / upper * bins).astype(np.int64), 0, bins - 1)
        return np.bincount(index, minlength=bins)

    return jsd(counts(a), counts(b))


def frechet_distance(features_a: np.ndarray | Tensor, features_b: np.ndarray | Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``(n, d)`` (FID's formula)."""
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    covmean, _ = linalg.sqrtm(cov_a @ cov_b, disp=False)
    if not np.isfinite(covmean).all():  # near-singular covariances: regularise as FID does
        eps = np.eye(cov_a.shape[0]) * 1e-6
        covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    covmean = covmean.real
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))


def chamfer_distance(a: Tensor, b: Tensor, *, squared: bool = False, chunk: int = 4096) -> Tensor:
    """Symmetric Chamfer distance between point sets ``(..., n, d)`` and ``(..., m, d)``.

    Returns mean nearest-neighbour distance a→b plus b→a (squared distances if ``squared``), one
    value per leading batch index. Works in chunks so large sets fit in memory.
    """
    a, b = torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32)

    def nearest(src: Tensor, dst: Tensor) -> Tensor:
        parts = [
            torch.cdist(src[..., i : i + chunk, :], dst).min(-1).values
            for i in range(0, src.shape[-2], chunk)
        ]
        d = torch.cat(parts, dim=-1)
        return d.square() if squared else d

    return nearest(a, b).mean(-1) + nearest(b, a).mean(-1)


def sliced_wasserstein(a: Tensor, b: Tensor, *, projections: int = 256, seed: int = 0) -> float:
    """Sliced Wasserstein-2 distance between two equally sized point sets ``(n, d)``.

    The average over random unit directions of W2 between the 1-D projections (sorted matching),
    then the square root: a sample-based distance that needs no density estimate.
    """
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    if a.shape != b.shape:
        raise ValueError(
            f"point sets must have equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    gen = torch.Generator().manual_seed(seed)
    dirs = torch.randn(a.shape[1], projections, generator=gen, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    pa, _ = (a @ dirs).sort(dim=0)
    pb, _ = (b @ dirs).sort(dim=0)
    return float((pa - pb).square().mean().sqrt())


def psnr(prediction: Tensor, target: Tensor, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB (torchmetrics)."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(prediction, target, data_range=data_range))


def ssim(prediction: Tensor, target: Tensor, data_range: float = 1.0) -> float:
    """Structural similarity of ``(B, C, H, W)`` images (torchmetrics, Gaussian 11×11 window)."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    return float(structural_similarity_index_measure(prediction, target, data_range=data_range))
