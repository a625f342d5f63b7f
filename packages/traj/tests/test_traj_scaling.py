"""The scaling benchmark's cities and trips, the benchmark itself (tiny, CPU) and the GPU-extras report."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from difforge.traj.data.build import shortest_path_share
from difforge.traj.data.hoser import read_dataset
from difforge.traj.data.synthetic import (
    SCALING_GRIDS,
    activity_trips,
    scatter_centres,
    synthetic_city,
    write_synthetic_dataset,
)

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    """A script of packages/traj/benchmarks as a module (the folder is not a package)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))  # gpu_extra_report imports its sibling scaling.py
    spec = importlib.util.spec_from_file_location(f"traj_bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_activity_trips_are_legal_local_varied_and_deterministic():
    city = synthetic_city(16, seed=2)
    rids, times = activity_trips(city, 200, seed=5)
    again, _ = activity_trips(city, 200, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(rids, again))
    assert len(rids) == 200
    for r, t in zip(rids, times):
        assert len(r) >= 2 and city.transition_legal(r[:-1], r[1:]).all()
        assert len(t) == len(r) and (np.diff(t.astype(np.int64)) > 0).all()
    # randomised travel-time weights: most routes are not the length-shortest path
    assert shortest_path_share(city, rids) < 0.6
    # trips start around the activity centres: origins are far from uniform over the segments
    counts = np.bincount([r[0] for r in rids], minlength=city.num_segments)
    assert (counts > 0).sum() < 0.6 * city.num_segments
    # weekday profile: the morning peak is busier than the small hours
    hours = np.array([t[0].astype("datetime64[h]").astype(np.int64) % 24 for t in times])
    assert (hours >= 7).sum() > 3 * (hours < 5).sum()
    assert len(scatter_centres(city, seed=2)) >= 3


def test_scaling_city_has_a_5k_vocabulary_and_short_trips(tmp_path):
    graph = write_synthetic_dataset(tmp_path, SCALING_GRIDS["synthetic_5k"], 300, seed=0)
    assert 4500 < graph.num_segments < 5500
    read_back, splits = read_dataset(tmp_path, on_invalid="error")
    assert read_back.num_segments == graph.num_segments
    assert {k: len(v) for k, v in splits.items()} == {"train": 240, "val": 30, "test": 30}
    lengths = np.array([len(r) for r in splits["train"].rids])
    # trips stay a few km long (the benchmark's canvas is 64 segments)
    assert np.percentile(lengths, 90) < 40


def test_scaling_benchmark_runs_on_cpu(tmp_path):
    scaling = _load("scaling")
    argv = [
        "--config", "tiny", "--device", "cpu", "--cities", "helsinki", "grid5",
        "--train-steps", "1", "--batch-size", "4", "--requests", "4", "--trips", "60",
        "--threads", "1", "--out-dir", str(tmp_path), "--stem", "scaling",
    ]  # fmt: skip
    assert scaling.main(argv) == 0
    report = json.loads((tmp_path / "scaling.json").read_text())
    assert report["device"] == "cpu" and "scaling.py --config tiny" in report["command"]
    rows = {row["city"]: row for row in report["cities"]}
    assert rows["helsinki"]["segments"] == 294 and rows["grid5"]["segments"] < 294
    for row in rows.values():
        assert row["train_ms_per_step"] > 0 and row["sampling_trips_per_s"] > 0
        assert row["train_peak_mb"] > 0 and row["sampling_trips"] == 4
        assert row["block_size"] == 32 and row["max_len"] == 64
    table = (tmp_path / "scaling.md").read_text()
    assert "| helsinki | 294 |" in table and "card: CPU" in table

    # the GPU-extras report gathers finished stages and says which ran out of time
    report_module = _load("gpu_extra_report")
    (tmp_path / "stages.tsv").write_text("scaling\t0\t12\t100\nberlin_train\t124\t180\t180\n")
    out = tmp_path / "out"
    assert report_module.main(["--work", str(tmp_path), "--out", str(out), "--card", "CPU"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert [s["status"] for s in results["stages"]] == ["done", "time limit"]
    assert results["scaling"]["cities"][0]["city"] == "helsinki" and results["berlin"] is None
    assert "| helsinki | 294 |" in (out / "results.md").read_text()


def test_scaling_benchmark_rejects_an_unknown_city(tmp_path):
    scaling = _load("scaling")
    with pytest.raises(SystemExit):
        scaling.main(["--cities", "atlantis", "--out-dir", str(tmp_path)])
    assert not list(tmp_path.iterdir())
