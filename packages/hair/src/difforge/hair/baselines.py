"""The two baselines the model is measured against, and their evaluation on held-out styles.

- **mean groom** (:class:`MeanGroomBaseline`): the mean density map and the mean root-relative
  strand shape over template roots; it ignores the picture.
- **retrieval** (:class:`RetrievalBaseline`): the training style whose picture is nearest in L2,
  its groom regenerated from its seed.

:func:`evaluate_baselines` fits both on training styles and scores them with the harness of
:mod:`difforge.hair.evaluate`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from difforge.core.workers import ignore_interrupts
from difforge.hair.data.dataset import (
    HairSample,
    SampleConfig,
    dataset_folders,
    held_out_seeds,
    load_sample,
    make_sample,
    training_seeds,
)
from difforge.hair.data.groom import Groom, generate_groom
from difforge.hair.data.head import DEFAULT_HEAD, UV_MAX_THETA, Head, uv_from_angles
from difforge.hair.data.styles import sample_style
from difforge.hair.evaluate import (
    EvalConfig,
    Reconstructor,
    scalp_cap_area_cm2,
    score_reconstruction,
    summarise,
)


class MeanGroomBaseline:
    """The mean groom in scalp space: for template roots spread over the UV disk, the fraction of
    training grooms with a root nearby (a mean density map) and the mean root-relative shape of
    those strands. Output: ``n_strands`` uniform root candidates kept with the mean density, each
    with its nearest template's mean shape. It ignores the picture."""

    def __init__(self, n_templates: int = 3000, n_strands: int = 10_000, head: Head = DEFAULT_HEAD):
        self.head = head
        self.n_strands = n_strands
        index = np.arange(n_templates) + 0.5
        theta = np.arccos(1.0 - index / n_templates * (1.0 - np.cos(UV_MAX_THETA)))
        phi = np.mod(index * np.pi * (3.0 - np.sqrt(5.0)), 2 * np.pi) - np.pi
        self.template_roots, _ = head.scalp_points(theta, phi)
        spacing = np.sqrt(scalp_cap_area_cm2(head) * 1e-4 / n_templates)
        self.radius = 1.5 * spacing
        self.count = 0
        self.presence = np.zeros(n_templates)
        self.offset_sum: np.ndarray | None = None
        self._groom: Groom | None = None

    def add(self, groom: Groom) -> None:
        distance, index = cKDTree(groom.points[:, 0]).query(self.template_roots)
        present = distance < self.radius
        offsets = groom.points[index] - groom.points[index, :1]
        if self.offset_sum is None:
            self.offset_sum = np.zeros((len(self.template_roots), groom.n_points, 3))
        if offsets.shape[1] != self.offset_sum.shape[1]:
            raise ValueError("all training grooms must have the same number of points per strand")
        self.offset_sum[present] += offsets[present]
        self.presence += present
        self.count += 1
        self._groom = None

    def merge(self, other: MeanGroomBaseline) -> None:
        """Add the training grooms another instance (same templates) has seen."""
        if other.offset_sum is None:
            return
        if self.offset_sum is None:
            self.offset_sum = np.zeros_like(other.offset_sum)
        self.offset_sum += other.offset_sum
        self.presence += other.presence
        self.count += other.count
        self._groom = None

    def groom(self) -> Groom:
        if self.count == 0 or self.offset_sum is None:
            raise ValueError("the mean groom needs at least one training groom")
        if self._groom is None:
            rng = np.random.default_rng(0)
            theta = np.arccos(rng.uniform(np.cos(UV_MAX_THETA), 1.0, size=self.n_strands))
            phi = rng.uniform(-np.pi, np.pi, size=self.n_strands)
            roots, _ = self.head.scalp_points(theta, phi)
            _, nearest = cKDTree(self.template_roots).query(roots)
            density = self.presence[nearest] / self.count
            keep = (rng.random(self.n_strands) < density) & (self.presence[nearest] > 0)
            shape = self.offset_sum[nearest[keep]] / self.presence[nearest[keep], None, None]
            points = roots[keep, None] + shape
            points[:, 1:] = self.head.push_outside(points[:, 1:])
            self._groom = Groom(
                points.astype(np.float32), uv_from_angles(theta[keep], phi[keep]).astype(np.float32)
            )
        return self._groom

    def __call__(self, image: np.ndarray) -> Groom:
        return self.groom()


class RetrievalBaseline:
    """Nearest training picture (L2 over 64x64 RGB) -> that style's groom, regenerated from its
    seed (deterministic), so only the pictures are kept in memory."""

    def __init__(self, config: SampleConfig = SampleConfig()):  # noqa: B008
        self.config = config
        self.seeds: list[int] = []
        self.features: list[np.ndarray] = []

    @staticmethod
    def feature(image: np.ndarray) -> np.ndarray:
        image = np.asarray(image, dtype=np.float32) / 255.0
        factor = max(image.shape[0] // 64, 1)
        h, w = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
        small = image[:h, :w].reshape(h // factor, factor, w // factor, factor, 3).mean(axis=(1, 3))
        return small.reshape(-1)

    def add(self, seed: int, image: np.ndarray) -> None:
        self.seeds.append(seed)
        self.features.append(self.feature(image))

    def merge(self, other: RetrievalBaseline) -> None:
        self.seeds.extend(other.seeds)
        self.features.extend(other.features)

    def nearest_seed(self, image: np.ndarray) -> int:
        if not self.seeds:
            raise ValueError("the retrieval baseline needs at least one training picture")
        distance = np.square(np.stack(self.features) - self.feature(image)[None]).sum(axis=1)
        return self.seeds[int(np.argmin(distance))]

    def __call__(self, image: np.ndarray) -> Groom:
        style = sample_style(self.nearest_seed(image), style_set=self.config.style_set)
        return generate_groom(style, self.config.n_strands, self.config.n_points)


def fit_baselines(
    samples: Iterable[HairSample],
    config: SampleConfig = SampleConfig(),  # noqa: B008
) -> tuple[MeanGroomBaseline, RetrievalBaseline]:
    """Both baselines from one pass over the training samples."""
    return _fit(((s.style.seed, s.groom, s.render.rgb) for s in samples), config)


def _fit(
    styles: Iterable[tuple[int, Groom, np.ndarray]], config: SampleConfig
) -> tuple[MeanGroomBaseline, RetrievalBaseline]:
    mean, retrieval = MeanGroomBaseline(n_strands=config.n_strands), RetrievalBaseline(config)
    for seed, groom, image in styles:
        mean.add(groom)
        retrieval.add(seed, image)
    return mean, retrieval


_FIT_CHUNK = 10  # training styles per task: fixed, so the fit is identical for any worker count
_worker_state: dict[str, object] = {}


def _fit_chunk(
    task: tuple[list[int] | list[str], SampleConfig],
) -> tuple[MeanGroomBaseline, RetrievalBaseline]:
    """Fit on a chunk of training seeds (generated here) or style folders (read from disk)."""
    items, config = task

    def styles() -> Iterable[tuple[int, Groom, np.ndarray]]:
        for item in items:
            if isinstance(item, str):
                style, groom, image = load_sample(item)
                yield style.seed, groom, image
            else:
                sample = make_sample(item, config)
                yield item, sample.groom, sample.render.rgb

    return _fit(styles(), config)


def _init_scoring(methods: dict[str, Reconstructor], config: EvalConfig) -> None:
    ignore_interrupts()
    _worker_state.update(methods=methods, config=config)


def _score_seed(seed: int) -> dict[str, dict]:
    methods: dict[str, Reconstructor] = _worker_state["methods"]  # type: ignore[assignment]
    config: EvalConfig = _worker_state["config"]  # type: ignore[assignment]
    sample = make_sample(seed, config.sample)
    return {name: score_reconstruction(method, sample, config) for name, method in methods.items()}


def evaluate_baselines(
    n_train: int,
    n_test: int,
    seed: int = 0,
    config: EvalConfig = EvalConfig(),  # noqa: B008 (frozen)
    workers: int = 1,
    progress: Callable[[str, int], None] | None = None,
    train_data: str | Path | None = None,
    first_held_out: int = 0,
) -> dict[str, dict]:
    """Fit both baselines on ``n_train`` training styles and score them on ``n_test`` held-out ones
    (from the ``first_held_out``-th: 0 is the test set, a later start a validation set).

    ``train_data``: a folder written by ``difforge-hair dataset`` with ``config.sample``'s settings;
    its styles are read instead of generating seeds ``seed .. seed + n_train - 1`` (the same
    styles when it holds those seeds, without generating them again). ``workers`` > 1 spreads
    styles over processes; the numbers do not depend on it.
    """
    items: list[int] | list[str]
    if train_data is not None:
        items = [str(folder) for folder in dataset_folders(train_data, config.sample)]
    else:
        items = list(training_seeds(n_train, seed))
    n_train = len(items)
    chunks = [(items[i : i + _FIT_CHUNK], config.sample) for i in range(0, n_train, _FIT_CHUNK)]
    with _pool(workers, initializer=ignore_interrupts) as pool:
        mean, retrieval = (
            MeanGroomBaseline(n_strands=config.sample.n_strands),
            RetrievalBaseline(config.sample),
        )
        for done, (part_mean, part_retrieval) in enumerate(pool.map(_fit_chunk, chunks)):
            mean.merge(part_mean)
            retrieval.merge(part_retrieval)
            if progress is not None:
                progress("train", min((done + 1) * _FIT_CHUNK, n_train))
    methods: dict[str, Reconstructor] = {"mean_groom": mean, "retrieval": retrieval}
    rows: dict[str, list[dict]] = {name: [] for name in methods}
    with _pool(workers, initializer=_init_scoring, initargs=(methods, config)) as pool:
        if workers <= 1:
            _worker_state.update(methods=methods, config=config)
        for done, scored in enumerate(
            pool.map(_score_seed, held_out_seeds(n_test, first_held_out)), start=1
        ):
            for name, row in scored.items():
                rows[name].append(row)
            if progress is not None:
                progress("test", done)
    reports = {name: summarise(method_rows, config) for name, method_rows in rows.items()}
    for report in reports.values():
        report["protocol"].update(
            n_train=n_train,
            workers=workers,
            train_data=None if train_data is None else str(train_data),
        )
    return reports


class _InlinePool:
    """``ProcessPoolExecutor``'s ``map`` in this process (one worker: no pickling, no fork)."""

    def __enter__(self) -> _InlinePool:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @staticmethod
    def map(fn: Callable, items: Iterable) -> Iterable:
        return map(fn, items)


def _pool(workers: int, **kwargs: object) -> _InlinePool | ProcessPoolExecutor:
    return _InlinePool() if workers <= 1 else ProcessPoolExecutor(max_workers=workers, **kwargs)
