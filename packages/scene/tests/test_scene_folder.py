"""Scene folders: the files scene.json names must lie inside the folder."""

from __future__ import annotations

import json

import pytest
import torch

from difforge.core.errors import UserError
from difforge.scene.cli import main
from difforge.scene.data.blocks import room_scene_layout
from difforge.scene.sample import Scene, load_scene, save_scene


@pytest.fixture
def scene_folder(tmp_path):
    layout = room_scene_layout(24, 1, 1, 2.4)
    scene = Scene({(0, 0): torch.zeros(3, 4, 16, 16)}, 2.4, layout.extent_min, layout)
    folder = save_scene(scene, tmp_path / "scene")
    # A valid layout file beside the folder: reading it would succeed, which is the danger.
    (tmp_path / "outside.json").write_text((folder / "layout.json").read_text())
    return folder


def _point_layout_at(folder, name) -> None:
    meta = json.loads((folder / "scene.json").read_text())
    meta["layout"] = name
    (folder / "scene.json").write_text(json.dumps(meta))


def test_a_saved_scene_loads_its_layout(scene_folder) -> None:
    scene = load_scene(scene_folder)
    assert scene.layout is not None and list(scene.latents) == [(0, 0)]


@pytest.mark.parametrize("where", ["../outside.json", "absolute", "link"])
def test_a_path_outside_the_scene_folder_is_refused(scene_folder, where, capsys) -> None:
    outside = scene_folder.parent / "outside.json"
    if where == "absolute":
        name = str(outside)
    elif where == "link":
        (scene_folder / "link.json").symlink_to(outside)
        name = "link.json"
    else:
        name = where
    _point_layout_at(scene_folder, name)
    with pytest.raises(UserError, match="points outside the scene folder"):
        load_scene(scene_folder)
    argv = ["expand", "--scene", str(scene_folder), "--direction=+x"]
    assert main([*argv, "--out", str(scene_folder.parent / "grown")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "outside the scene folder" in err
    assert err.count("\n") == 1
    assert not (scene_folder.parent / "grown").exists()


def test_a_layout_entry_that_is_not_a_name_is_refused(scene_folder) -> None:
    _point_layout_at(scene_folder, ["layout.json"])
    with pytest.raises(UserError, match="must be a file name"):
        load_scene(scene_folder)
