"""The Python API: the README example runs as written, and the pipeline gives the command line's
trips for the same seed."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from difforge.core.errors import UserError
from difforge.traj import TrajPipeline
from difforge.traj.data.requests import ODRequests

README = Path(__file__).resolve().parents[1] / "README.md"


def python_api_example() -> str:
    section = README.read_text(encoding="utf-8").split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture(scope="module")
def pipe():
    return TrajPipeline.from_pretrained("default").to("cpu")


def test_readme_python_api_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(python_api_example(), str(README), "exec"), {})
    written = pd.read_csv(tmp_path / "trips.csv")
    assert len(written) == 20 and {"rid_list", "time_list", "destination_id"} <= set(written)


def test_pipeline_draws_the_same_requests_as_generate(pipe, tmp_path):
    from difforge.traj.cli import main

    args = ["generate", "--model", "default", "--n", "5", "--seed", "2", "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "cli.csv")]) == 0
    out = pipe(num_trips=5, seed=2)
    saved = pd.read_csv(out.save(tmp_path / "api.csv"))
    assert saved.equals(pd.read_csv(tmp_path / "cli.csv"))


def test_pipeline_requests_overrides_and_errors(pipe):
    requests = ODRequests(
        np.array([286, 151]),
        np.array([225, 279]),
        np.full(2, np.datetime64("NaT"), "datetime64[s]"),
    )
    out = pipe(requests, seed=0, decoding="autoregressive")
    assert [int(r[-1]) for r in out.rids] == [225, 279] and out.times == [None, None]
    with pytest.raises(UserError, match="give one of"):
        pipe(requests, num_trips=3)
    with pytest.raises(UserError, match="unknown sampling setting"):
        pipe(num_trips=1, steps=4)
    with pytest.raises(UserError, match="one of each per trip"):
        pipe(origins=[286, 151], destinations=[225])
    with pytest.raises(UserError, match="unknown origin segment"):
        pipe(origins=[9999], destinations=[225])
