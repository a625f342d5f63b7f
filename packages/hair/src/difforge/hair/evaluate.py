"""Groom metrics and the single-image reconstruction harness (the baselines: ``baselines.py``).

Metrics (design note A5; points sampled uniformly by arc length along all strands, tangents unit
root -> tip, metres; thresholds at real head scale since our head is real size):

- Occupancy P/R/F1 @ tau in {2, 3, 4} mm: P = |{p in Pred : min_g |p - g| < tau}| / |Pred|,
  R the same with Pred and GT swapped, F1 = 2PR / (P + R) (0 when both are 0).
- Orientation P/R/F1 @ (tau, theta): a point counts only if some point of the other set lies
  within tau AND has arccos(t_p . t_g) < theta (directed tangents); reported at (3 mm, 30 deg),
  (2 mm, 20 deg), (4 mm, 40 deg). Exact: neighbours are searched with a growing k until every
  point is decided, no k-nearest cut-off.
- Chamfer: mean_x min_y |x - y|^2 + mean_y min_x |x - y|^2, reported in mm^2.
- Mask IoU between the input picture's hair mask and the front render of the output, and the mean
  undirected 2D orientation difference (deg) where both have hair (HairSale-like).
- Style recovery from strands alone: median strand length, curl frequency (dominant frequency of
  the detrended strand, cycles per metre of arc), root density (strands per cm^2 of the scalp
  cap), scalp coverage (fraction of UV cells holding a root), strand-count ratio.

Chamfer is computed from the same KD-tree nearest distances as occupancy; it equals
``difforge.core.metrics.chamfer_distance(a, b, squared=True)`` (a brute-force torch version that
would be slow at 100K points on CPU); the tests check the two agree.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np
from scipy.spatial import cKDTree

from difforge.core.workers import spawn_context
from difforge.hair.data.dataset import (
    HairSample,
    SampleConfig,
    held_out_seeds,
    make_sample,
)
from difforge.hair.data.groom import Groom, resample_by_arc_length
from difforge.hair.data.head import DEFAULT_HEAD, UV_MAX_THETA, Head, angles_from_uv, uv_from_angles
from difforge.hair.render import VIEWS, Appearance, render_groom

DEFAULT_EVAL_POINTS = 100_000
OCCUPANCY_THRESHOLDS_MM = (2.0, 3.0, 4.0)
ORIENTATION_SETTINGS = ((3.0, 30.0), (2.0, 20.0), (4.0, 40.0))

# A reconstructor maps a held-out sample's picture to a groom; one with a ``condition``
# attribute of "maps" is given the sample's maps instead of its render (HairSample.condition).
Reconstructor = Callable[[np.ndarray], "Groom | np.ndarray"]


# ----------------------------------------------------------------------------------------------
# 3D metrics


def sample_along_strands(points: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` points spread evenly by arc length over all strands, with unit tangents.

    Deterministic (stratified at the centres of ``count`` equal arc intervals), so a metric on the
    same groom always gives the same number.
    """
    points = np.asarray(points, dtype=np.float64)
    segment_start = points[:, :-1].reshape(-1, 3)
    segment = (points[:, 1:] - points[:, :-1]).reshape(-1, 3)
    length = np.linalg.norm(segment, axis=-1)
    keep = length > 0
    segment_start, segment, length = segment_start[keep], segment[keep], length[keep]
    if len(length) == 0:
        raise ValueError("strands have zero total length")
    cumulative = np.cumsum(length)
    targets = (np.arange(count) + 0.5) / count * cumulative[-1]
    index = np.minimum(np.searchsorted(cumulative, targets, side="right"), len(length) - 1)
    into = (targets - (cumulative[index] - length[index])) / length[index]
    positions = segment_start[index] + into[:, None] * segment[index]
    return positions, segment[index] / length[index, None]


def _f1(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def occupancy_scores(
    pred: np.ndarray, gt: np.ndarray, thresholds_mm: Sequence[float] = OCCUPANCY_THRESHOLDS_MM
) -> dict[str, float]:
    """Occupancy precision/recall/F1 at each threshold (in %) and Chamfer (mm^2) of two point sets."""
    pred_to_gt, _ = cKDTree(gt).query(pred)
    gt_to_pred, _ = cKDTree(pred).query(gt)
    scores: dict[str, float] = {}
    for tau in thresholds_mm:
        precision = float(np.mean(pred_to_gt < tau / 1000))
        recall = float(np.mean(gt_to_pred < tau / 1000))
        key = f"{tau:g}mm"
        scores[f"occupancy_precision@{key}"] = 100 * precision
        scores[f"occupancy_recall@{key}"] = 100 * recall
        scores[f"occupancy_f1@{key}"] = 100 * _f1(precision, recall)
    scores["chamfer_mm2"] = 1e6 * float(np.mean(pred_to_gt**2) + np.mean(gt_to_pred**2))
    return scores


def _aligned_neighbour(
    tree: cKDTree,
    tree_tangents: np.ndarray,
    query: np.ndarray,
    query_tangents: np.ndarray,
    radius: float,
    cos_max: float,
) -> np.ndarray:
    """Whether each query point has a tree point closer than ``radius`` whose tangent is within
    the angle (dot product > ``cos_max``). k grows until no undecided point has k neighbours all
    inside the radius, so the answer is exact."""
    found = np.zeros(len(query), dtype=bool)
    pending = np.arange(len(query))
    k = 16
    while len(pending):
        k = min(k, tree.n)
        distance, index = tree.query(query[pending], k=k, distance_upper_bound=radius)
        distance, index = distance.reshape(len(pending), -1), index.reshape(len(pending), -1)
        inside = distance < radius
        cosine = np.einsum(
            "pkc,pc->pk", tree_tangents[np.where(inside, index, 0)], query_tangents[pending]
        )
        hit = (inside & (cosine > cos_max)).any(axis=1)
        found[pending[hit]] = True
        if k == tree.n:
            break
        pending = pending[~hit & inside[:, -1]]  # all k inside and none aligned: look further
        k *= 4
    return found


def orientation_scores(
    pred: np.ndarray,
    pred_tangents: np.ndarray,
    gt: np.ndarray,
    gt_tangents: np.ndarray,
    settings: Sequence[tuple[float, float]] = ORIENTATION_SETTINGS,
) -> dict[str, float]:
    """Orientation precision/recall/F1 (in %) at each (distance mm, angle deg) setting."""
    pred_tree, gt_tree = cKDTree(pred), cKDTree(gt)
    scores: dict[str, float] = {}
    for tau_mm, theta_deg in settings:
        cos_max = float(np.cos(np.deg2rad(theta_deg)))
        precision = float(
            np.mean(
                _aligned_neighbour(
                    gt_tree, gt_tangents, pred, pred_tangents, tau_mm / 1000, cos_max
                )
            )
        )
        recall = float(
            np.mean(
                _aligned_neighbour(
                    pred_tree, pred_tangents, gt, gt_tangents, tau_mm / 1000, cos_max
                )
            )
        )
        key = f"{tau_mm:g}mm_{theta_deg:g}deg"
        scores[f"orientation_precision@{key}"] = 100 * precision
        scores[f"orientation_recall@{key}"] = 100 * recall
        scores[f"orientation_f1@{key}"] = 100 * _f1(precision, recall)
    return scores


def compare_grooms(
    pred: np.ndarray, gt: np.ndarray, n_samples: int = DEFAULT_EVAL_POINTS
) -> dict[str, float]:
    """All 3D metrics between a predicted and a ground-truth groom (strand arrays (N, K, 3))."""
    pred_points, pred_tangents = sample_along_strands(pred, n_samples)
    gt_points, gt_tangents = sample_along_strands(gt, n_samples)
    return {
        **occupancy_scores(pred_points, gt_points),
        **orientation_scores(pred_points, pred_tangents, gt_points, gt_tangents),
    }


# ----------------------------------------------------------------------------------------------
# Image metrics


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def orientation_error_2d(a: np.ndarray, b: np.ndarray) -> float:
    """Mean undirected angle (deg, 0-90) between two orientation maps where both have hair; NaN
    if they share no hair pixel."""
    both = np.isfinite(a) & np.isfinite(b)
    if not both.any():
        return float("nan")
    difference = np.abs(a[both] - b[both]) % np.pi
    return float(np.degrees(np.minimum(difference, np.pi - difference)).mean())


# ----------------------------------------------------------------------------------------------
# Style estimators (computed from strands only)


def strand_lengths(points: np.ndarray) -> np.ndarray:
    """Arc length (m) of every strand."""
    return np.linalg.norm(np.diff(np.asarray(points, dtype=np.float64), axis=1), axis=-1).sum(
        axis=1
    )


def curl_frequencies(
    points: np.ndarray, min_amplitude: float = 0.001, samples: int = 128
) -> np.ndarray:
    """Dominant curl/wave frequency of every strand, cycles per metre of arc (0 = straight).

    Each strand is resampled evenly by arc length, its quintic trend (the way gravity and the comb
    bend it) removed, and the peak of the summed xyz power spectrum taken, ignoring anything under
    1.5 cycles per strand. Strands whose detrended RMS is under ``min_amplitude`` count as straight.
    """
    lengths = strand_lengths(points)
    even = resample_by_arc_length(points, samples)
    t = np.linspace(-1.0, 1.0, samples)
    basis = np.stack([t**power for power in range(6)], axis=1)
    projector = basis @ np.linalg.pinv(basis)  # one least-squares fit shared by every strand
    residual = even - np.einsum("ij,njc->nic", projector, even)
    padded = 4 * samples
    power = (np.abs(np.fft.rfft(residual, n=padded, axis=1)) ** 2).sum(axis=-1)
    cycles_per_strand = np.arange(power.shape[1]) * (samples - 1) / padded
    power[:, cycles_per_strand < 1.5] = 0.0
    peak = cycles_per_strand[np.argmax(power, axis=1)]
    rms = np.sqrt((residual**2).sum(-1).mean(-1))
    return np.where(rms >= min_amplitude, peak / np.maximum(lengths, 1e-9), 0.0)


@functools.lru_cache(maxsize=4)
def scalp_cap_area_cm2(head: Head = DEFAULT_HEAD) -> float:
    """Area of the skull within the UV disk (theta <= UV_MAX_THETA), cm^2, by midpoint quadrature."""
    n_theta, n_phi = 400, 800
    theta = (np.arange(n_theta) + 0.5) / n_theta * UV_MAX_THETA
    phi = (np.arange(n_phi) + 0.5) / n_phi * 2 * np.pi - np.pi
    th, ph = np.meshgrid(theta, phi, indexing="ij")
    a, b, c = head.radii
    d_theta = np.stack(
        [a * np.cos(th) * np.sin(ph), -b * np.sin(th), c * np.cos(th) * np.cos(ph)], -1
    )
    d_phi = np.stack(
        [a * np.sin(th) * np.cos(ph), np.zeros_like(th), -c * np.sin(th) * np.sin(ph)], -1
    )
    element = np.linalg.norm(np.cross(d_theta, d_phi), axis=-1)
    return float(element.sum() * (UV_MAX_THETA / n_theta) * (2 * np.pi / n_phi) * 1e4)


def scalp_coverage(points: np.ndarray, head: Head = DEFAULT_HEAD, cells: int = 32) -> float:
    """Fraction of the UV disk's cells (a ``cells`` x ``cells`` grid) that hold at least one root."""
    uv = uv_from_angles(*head.angles(np.asarray(points, dtype=np.float64)[:, 0]))
    centres = (np.arange(cells) + 0.5) / cells
    grid = np.stack(np.meshgrid(centres, centres, indexing="xy"), -1)
    in_disk = angles_from_uv(grid)[0] <= UV_MAX_THETA
    cell = np.clip((uv * cells).astype(np.int64), 0, cells - 1)
    occupied = np.zeros((cells, cells), dtype=bool)
    occupied[cell[:, 1], cell[:, 0]] = True
    return float((occupied & in_disk).sum() / in_disk.sum())


def style_estimates(points: np.ndarray, head: Head = DEFAULT_HEAD) -> dict[str, float]:
    """Length, curl frequency, density and coverage estimated from the strands alone."""
    points = np.asarray(points)
    curls = curl_frequencies(points)
    curly = curls > 0
    return {
        "length_m": float(np.median(strand_lengths(points))),
        "curl_per_m": float(np.median(curls[curly])) if curly.mean() >= 0.5 else 0.0,
        "density_per_cm2": len(points) / scalp_cap_area_cm2(head),
        "coverage": scalp_coverage(points, head),
        "n_strands": float(len(points)),
    }


def style_recovery(pred: np.ndarray, gt: np.ndarray, head: Head = DEFAULT_HEAD) -> dict[str, float]:
    """How far the predicted groom's style estimates are from the ground truth's."""
    p, g = style_estimates(pred, head), style_estimates(gt, head)
    return {
        "length_abs_error_mm": 1000 * abs(p["length_m"] - g["length_m"]),
        "curl_abs_error_per_m": abs(p["curl_per_m"] - g["curl_per_m"]),
        "density_rel_error": abs(p["density_per_cm2"] - g["density_per_cm2"])
        / g["density_per_cm2"],
        "coverage_abs_error": abs(p["coverage"] - g["coverage"]),
        "strand_count_ratio": p["n_strands"] / g["n_strands"],
    }


# ----------------------------------------------------------------------------------------------
# Harness


@dataclass(frozen=True)
class EvalConfig:
    sample: SampleConfig = SampleConfig()  # noqa: RUF009 (frozen dataclass, immutable default)
    n_eval_points: int = DEFAULT_EVAL_POINTS


def evaluate_sample(
    pred: Groom | np.ndarray, sample: HairSample, config: EvalConfig
) -> dict[str, float]:
    """Every metric of one reconstruction against its ground-truth sample."""
    pred_points = np.asarray(pred.points if isinstance(pred, Groom) else pred, dtype=np.float32)
    metrics = compare_grooms(pred_points, sample.groom.points, config.n_eval_points)
    pred_render = render_groom(
        pred_points, VIEWS["front"], config.sample.image_size, Appearance.from_style(sample.style)
    )
    metrics["mask_iou"] = mask_iou(pred_render.hair_mask, sample.render.hair_mask)
    metrics["orientation_error_2d_deg"] = orientation_error_2d(
        pred_render.orientation, sample.render.orientation
    )
    metrics.update(style_recovery(pred_points, sample.groom.points))
    return metrics


def evaluate_reconstructor(
    reconstruct: Reconstructor,
    samples: Iterable[HairSample],
    config: EvalConfig = EvalConfig(),
    progress: Callable[[int, dict], None] | None = None,
) -> dict:
    """Run ``reconstruct(image) -> strands`` on each sample's front picture and score the result.

    ``reconstruct`` gets the (H, W, 3) uint8 picture and returns a :class:`Groom` or a strand array
    (N, K, 3) in metres, head frame. ``samples`` are ground truth made with ``config.sample``
    (see :func:`held_out_samples`). Returns ``{"summary", "per_family", "per_style", "protocol"}``;
    ``seconds`` is the time spent inside ``reconstruct``.
    """
    rows = []
    for count, sample in enumerate(samples, start=1):
        rows.append(score_reconstruction(reconstruct, sample, config))
        if progress is not None:
            progress(count, rows[-1])
    return summarise(rows, config)


def score_reconstruction(
    reconstruct: Reconstructor, sample: HairSample, config: EvalConfig
) -> dict:
    """One row of the report: ``reconstruct`` on one sample, timed and scored."""
    started = time.perf_counter()
    pred = reconstruct(sample.condition(getattr(reconstruct, "condition", "rgb")))
    seconds = time.perf_counter() - started
    row = {"seed": sample.style.seed, "family": sample.style.family, "seconds": seconds}
    row.update(evaluate_sample(pred, sample, config))
    return row


def summarise(rows: list[dict], config: EvalConfig) -> dict:
    """The report of per-style metric rows: means overall and per family, plus the protocol."""
    families = sorted({row["family"] for row in rows})
    return {
        "summary": _mean_rows(rows),
        "per_family": {
            family: _mean_rows([r for r in rows if r["family"] == family]) for family in families
        },
        "per_style": rows,
        "protocol": {
            **asdict(config),
            "n_styles": len(rows),
            "occupancy_thresholds_mm": list(OCCUPANCY_THRESHOLDS_MM),
            "orientation_settings_mm_deg": [list(s) for s in ORIENTATION_SETTINGS],
        },
    }


def held_out_samples(
    n: int,
    config: SampleConfig = SampleConfig(),  # noqa: B008 (frozen)
    start: int = 0,
) -> list[HairSample]:
    """Ground truth for evaluation: the samples of ``n`` held-out seeds (never trained on)."""
    return [make_sample(seed, config) for seed in held_out_seeds(n, start)]


def _mean_rows(rows: list[dict]) -> dict[str, float]:
    keys = [key for key in rows[0] if key not in ("seed", "family")] if rows else []
    return {key: float(np.nanmean([row[key] for row in rows])) for key in keys}


# (column title, metric key, format) of the summary table
TABLE_COLUMNS = (
    ("occ. F1 @2mm", "occupancy_f1@2mm", "{:.1f}"),
    ("occ. F1 @3mm", "occupancy_f1@3mm", "{:.1f}"),
    ("occ. F1 @4mm", "occupancy_f1@4mm", "{:.1f}"),
    ("occ. P/R @3mm", ("occupancy_precision@3mm", "occupancy_recall@3mm"), "{:.1f}/{:.1f}"),
    ("orient. F1 @3mm/30°", "orientation_f1@3mm_30deg", "{:.1f}"),
    ("orient. F1 @2mm/20°", "orientation_f1@2mm_20deg", "{:.1f}"),
    ("orient. F1 @4mm/40°", "orientation_f1@4mm_40deg", "{:.1f}"),
    ("Chamfer (mm²)", "chamfer_mm2", "{:.1f}"),
    ("mask IoU", "mask_iou", "{:.3f}"),
    ("2D orient. err (°)", "orientation_error_2d_deg", "{:.1f}"),
    ("length err (mm)", "length_abs_error_mm", "{:.1f}"),
    ("curl err (1/m)", "curl_abs_error_per_m", "{:.1f}"),
    ("density rel. err", "density_rel_error", "{:.2f}"),
    ("coverage err", "coverage_abs_error", "{:.3f}"),
    ("s / groom", "seconds", "{:.2f}"),
)


def results_table(reports: dict[str, dict]) -> str:
    """Markdown table of each method's summary (higher is better for F1 and IoU)."""
    lines = ["| method | " + " | ".join(title for title, _, _ in TABLE_COLUMNS) + " |"]
    lines.append("|---" * (len(TABLE_COLUMNS) + 1) + "|")
    for method, report in reports.items():
        summary = report["summary"]
        cells = []
        for _, key, fmt in TABLE_COLUMNS:
            keys = key if isinstance(key, tuple) else (key,)
            cells.append(fmt.format(*(summary[k] for k in keys)))
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------
# A generator on held-out styles, scored in worker processes

_GENERATOR_EVAL: dict[str, EvalConfig] = {}


def _init_generator_worker(config: EvalConfig) -> None:
    _GENERATOR_EVAL["config"] = config


def _make_ground_truth(seed: int) -> HairSample:
    return make_sample(seed, _GENERATOR_EVAL["config"].sample)


def _score_generated(task: tuple[np.ndarray, HairSample, float]) -> dict:
    points, sample, seconds = task
    row = {"seed": sample.style.seed, "family": sample.style.family, "seconds": seconds}
    row.update(evaluate_sample(points, sample, _GENERATOR_EVAL["config"]))
    return row


def evaluate_generator(
    generator: Callable[[np.ndarray], Groom],
    n_test: int,
    config: EvalConfig = EvalConfig(),
    workers: int = 1,
    progress: Callable[[str, int], None] | None = None,
    first_held_out: int = 0,
) -> dict:
    """The harness's report (:func:`summarise` of :func:`evaluate_sample` rows) for ``generator`` on ``n_test`` held-out
    styles (from the ``first_held_out``-th): the same rows ``evaluate_reconstructor`` makes,
    with the ground truth built and the metrics computed in ``workers`` processes while the model
    runs in this one. ``seconds`` is the generation time of each groom."""
    _GENERATOR_EVAL["config"] = config
    seeds = list(held_out_seeds(n_test, first_held_out))
    pool = (  # spawned, not forked: this process holds the model, maybe a CUDA context
        ProcessPoolExecutor(
            workers,
            mp_context=spawn_context(),
            initializer=_init_generator_worker,
            initargs=(config,),
        )
        if workers > 1
        else None
    )
    mapper = pool.map if pool is not None else map
    try:
        samples = []
        for count, sample_ in enumerate(mapper(_make_ground_truth, seeds), start=1):
            samples.append(sample_)
            if progress is not None:
                progress("ground truth", count)
        tasks = []
        for count, sample_ in enumerate(samples, start=1):
            started = time.perf_counter()
            groom = generator(sample_.condition(getattr(generator, "condition", "rgb")))
            tasks.append((groom.points, sample_, time.perf_counter() - started))
            if progress is not None:
                progress("generate", count)
        rows = []
        for count, row in enumerate(mapper(_score_generated, tasks), start=1):
            rows.append(row)
            if progress is not None:
                progress("score", count)
    finally:
        if pool is not None:
            pool.shutdown()
    return summarise(rows, config)
