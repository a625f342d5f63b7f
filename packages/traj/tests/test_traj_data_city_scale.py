"""data_scripts/traj_city_scale.py: same seed -> byte-identical gzipped dataset, readable as is."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from difforge.traj.data.hoser import read_dataset

pytest.importorskip("sumo")
SCRIPT = Path(__file__).resolve().parents[3] / "data_scripts" / "traj_city_scale.py"


def run_script(out: Path, seed: int) -> None:
    spec = importlib.util.spec_from_file_location("traj_city_scale", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    args = ["synthetic", "--grid", "6", "--trips", "60", "--seed", str(seed), "--out", str(out)]
    assert module.main(args) == 0


def test_synthetic_city_scale_set_is_deterministic_and_readable(tmp_path):
    # the folder name is the data set's name (README, meta.json): the same in all three runs
    a, b, c = (tmp_path / run / "city" for run in "abc")
    run_script(a, seed=3)
    run_script(b, seed=3)
    run_script(c, seed=4)
    names = sorted(p.name for p in a.iterdir())
    assert names == [
        "README.md",
        "meta.json",
        "roadmap.geo.gz",
        "roadmap.rel.gz",
        "test.csv.gz",
        "train.csv.gz",
        "val.csv.gz",
    ]
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "train.csv.gz").read_bytes() != (c / "train.csv.gz").read_bytes()
    graph, splits = read_dataset(a, on_invalid="error")
    meta = json.loads((a / "meta.json").read_text())
    assert graph.num_segments == meta["statistics"]["segments"]
    assert sum(len(splits[s]) for s in splits) == meta["statistics"]["recorded"]["trips"]
    assert meta["demand"]["mesoscopic"] == "tls_penalty"
