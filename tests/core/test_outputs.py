"""OutputPlan: an output never destroys an input, a folder or another output."""

from __future__ import annotations

from pathlib import Path

import pytest

from difforge.core.errors import UserError
from difforge.core.outputs import OutputPlan


def test_an_output_that_is_an_input_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text("trips\n")
    plan = OutputPlan().reads("--data", data / "train.csv").writes_file("--out", data / "train.csv")
    with pytest.raises(UserError, match=r"--out .*train.csv is the input --data"):
        plan.check()
    # the same file through another spelling of the path
    plan = OutputPlan().reads("--data", data / "train.csv")
    plan.writes_file("--out", data / ".." / "data" / "train.csv")
    with pytest.raises(UserError, match="is the input"):
        plan.check()
    assert (data / "train.csv").read_text() == "trips\n"


def test_a_folder_output_holding_an_input_is_refused(tmp_path: Path) -> None:
    (tmp_path / "meshes").mkdir()
    plan = OutputPlan(overwrite=True).reads("--meshes", tmp_path / "meshes" / "a.obj")
    plan.writes_folder("--out", tmp_path)
    with pytest.raises(UserError, match="holds the input --meshes"):
        plan.check()


def test_two_outputs_on_one_path_are_refused(tmp_path: Path) -> None:
    plan = OutputPlan().writes_file("--out", tmp_path / "g.ply")
    plan.writes_file("--png", tmp_path / "g.ply").writes_file("--obj", None)
    with pytest.raises(UserError, match="--out and --png both name"):
        plan.check()


def test_existing_outputs(tmp_path: Path) -> None:
    (tmp_path / "old.ply").write_text("old")
    OutputPlan().writes_file("--out", tmp_path / "old.ply", suffixes=(".ply",)).check()
    (tmp_path / "X.glb").mkdir()
    with pytest.raises(UserError, match="is a folder; give a file name"):
        OutputPlan().writes_file("--out", tmp_path / "X.glb").check()
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    with pytest.raises(UserError, match="already exists; pass --overwrite"):
        OutputPlan().writes_folder("--out", model).check()
    OutputPlan(overwrite=True).writes_folder("--out", model).check()
    with pytest.raises(UserError, match="exists and is not a folder"):
        OutputPlan(overwrite=True).writes_folder("--out", tmp_path / "old.ply").check()
    with pytest.raises(UserError, match=r"expected a \.ply file name"):
        OutputPlan().writes_file("--out", tmp_path / "g.obj", suffixes=(".ply",))
    with pytest.raises(UserError, match="is not a folder"):
        OutputPlan().writes_file("--out", tmp_path / "old.ply" / "g.ply").check()
    # an empty folder and a new nested path are fine
    (tmp_path / "empty").mkdir()
    OutputPlan().writes_folder("--out", tmp_path / "empty").check()
    OutputPlan().writes_file("--out", tmp_path / "new" / "deeper" / "g.ply").check()


def test_a_file_inside_a_folder_output_is_refused(tmp_path: Path) -> None:
    plan = OutputPlan().writes_folder("--out", tmp_path / "scene")
    plan.writes_file("--png", tmp_path / "scene" / "view.png")
    with pytest.raises(
        UserError, match=r"--png .*view.png lies inside the output folder .*scene \(--out\)"
    ):
        plan.check()


def test_an_output_never_replaces_a_file_inside_an_input_folder(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    plan = OutputPlan().reads("--model", model).writes_file("--out", model / "config.json")
    with pytest.raises(UserError, match="would replace a file of the input --model"):
        plan.check()
    # a new file beside the input's files is fine
    OutputPlan().reads("--model", model).writes_file("--out", model / "eval.json").check()
