"""Baselines and the evaluation harness on a tiny configuration."""

from __future__ import annotations

import numpy as np
import pytest

from difforge.core.errors import UserError
from difforge.hair.baselines import (
    MeanGroomBaseline,
    RetrievalBaseline,
    evaluate_baselines,
    fit_baselines,
)
from difforge.hair.data.dataset import SampleConfig, build_dataset, make_sample, training_seeds
from difforge.hair.data.head import DEFAULT_HEAD
from difforge.hair.evaluate import (
    EvalConfig,
    evaluate_reconstructor,
    held_out_samples,
    results_table,
)

CONFIG = EvalConfig(
    sample=SampleConfig(n_strands=500, n_points=16, image_size=64), n_eval_points=3000
)


@pytest.fixture(scope="module")
def training():
    return [make_sample(seed, CONFIG.sample) for seed in training_seeds(14)]


def test_retrieval_returns_the_training_groom_of_a_training_picture(training):
    _, retrieval = fit_baselines(training, CONFIG.sample)
    for sample in training[:3]:
        groom = retrieval(sample.render.rgb)
        np.testing.assert_array_equal(groom.points, sample.groom.points)


def test_mean_groom_is_an_average_on_the_scalp(training):
    mean, _ = fit_baselines(training, CONFIG.sample)
    assert mean.n_strands == CONFIG.sample.n_strands
    groom = mean(np.zeros((64, 64, 3), np.uint8))
    assert groom.n_strands > 0 and groom.points.shape[1] == 16
    np.testing.assert_allclose(
        DEFAULT_HEAD.skull_level(groom.points[:, 0].astype(float)), 1.0, atol=1e-5
    )
    assert not DEFAULT_HEAD.inside(groom.points[:, 1:].astype(float), tolerance=1e-6).any()
    lengths = np.linalg.norm(np.diff(groom.points, axis=1), axis=-1).sum(1)
    training_lengths = [
        np.linalg.norm(np.diff(s.groom.points, axis=1), axis=-1).sum(1).mean() for s in training
    ]
    assert min(training_lengths) < np.median(lengths) < max(training_lengths)
    # averaging a groom with itself changes nothing; merging partial means equals one pass
    once, twice = MeanGroomBaseline(n_strands=500), MeanGroomBaseline(n_strands=500)
    once.add(training[0].groom)
    twice.add(training[0].groom)
    twice.add(training[0].groom)
    np.testing.assert_allclose(twice.groom().points, once.groom().points, atol=1e-7)
    merged = MeanGroomBaseline(n_strands=500)
    for sample in training:
        part = MeanGroomBaseline(n_strands=500)
        part.add(sample.groom)
        merged.merge(part)
    np.testing.assert_allclose(merged.groom().points, groom.points, atol=1e-6)


def test_harness_scores_a_perfect_and_a_poor_reconstructor():
    samples = held_out_samples(2, CONFIG.sample)
    truth = {id(s.render.rgb): s.groom for s in samples}
    perfect = evaluate_reconstructor(lambda image: truth[id(image)], samples, CONFIG)
    assert perfect["summary"]["occupancy_f1@2mm"] == 100.0
    assert perfect["summary"]["orientation_f1@3mm_30deg"] == 100.0
    assert perfect["summary"]["mask_iou"] == 1.0
    assert perfect["summary"]["length_abs_error_mm"] == 0.0
    assert [row["seed"] for row in perfect["per_style"]] == [1_000_000, 1_000_001]
    offset = evaluate_reconstructor(lambda image: truth[id(image)].points + 0.01, samples, CONFIG)
    assert offset["summary"]["occupancy_f1@4mm"] < 50.0
    assert offset["summary"]["mask_iou"] < 1.0


def test_baselines_run_in_the_harness_and_neither_workers_nor_cached_styles_change_results(
    tmp_path,
):
    one = evaluate_baselines(n_train=14, n_test=2, config=CONFIG)
    assert set(one) == {"mean_groom", "retrieval"}
    for report in one.values():
        summary = report["summary"]
        assert 0.0 <= summary["occupancy_f1@3mm"] <= 100.0
        assert 0.0 <= summary["mask_iou"] <= 1.0
        assert report["protocol"]["n_train"] == 14 and report["protocol"]["n_styles"] == 2
    # the retrieval baseline sees the picture, the mean groom does not
    assert one["retrieval"]["summary"]["mask_iou"] > one["mean_groom"]["summary"]["mask_iou"]
    two = evaluate_baselines(n_train=14, n_test=2, config=CONFIG, workers=2)
    # the same 14 styles written once (in two parts, one of them by 2 processes) and read back
    build_dataset(tmp_path / "styles" / "a", range(9), CONFIG.sample, workers=2)
    build_dataset(tmp_path / "styles" / "b", range(9, 14), CONFIG.sample)
    cached = evaluate_baselines(
        n_train=1, n_test=2, config=CONFIG, train_data=tmp_path / "styles", workers=2
    )
    assert cached["retrieval"]["protocol"]["n_train"] == 14
    for other in (two, cached):
        for name in one:
            for key, value in one[name]["summary"].items():
                if key != "seconds":
                    assert other[name]["summary"][key] == pytest.approx(value), (name, key)
    other_settings = EvalConfig(sample=SampleConfig(n_strands=400, n_points=16, image_size=64))
    with pytest.raises(UserError, match="styles made with"):
        evaluate_baselines(1, 1, config=other_settings, train_data=tmp_path / "styles")
    table = results_table(one)
    assert table.count("\n") == 4 and "| retrieval |" in table


def test_retrieval_needs_training_pictures():
    with pytest.raises(ValueError):
        RetrievalBaseline().nearest_seed(np.zeros((64, 64, 3), np.uint8))
