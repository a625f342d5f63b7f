"""The audit cases of difforge-scene: no command loses a user's data, writes half an output set,
accepts an out-of-range number or shows a traceback (issue 14, section 2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from difforge.core.testing import interrupt_command, run_command, tree_snapshot
from difforge.scene.cli import main

CLI = "difforge.scene.cli"


def _fails(argv: list[str], capsys, message: str) -> str:
    """Run ``argv`` in this process: exit code 2, one line on stderr holding ``message``."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, (argv, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err, err
    return err


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture
def user_folder(tmp_path) -> Path:
    """A folder of the user's, with a file in it."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes")
    return folder


# ----------------------------------------------------------------------------------------------
# generate: the mesh and the scene folder beside it
# ----------------------------------------------------------------------------------------------


def test_generate_never_deletes_a_folder_beside_its_mesh(trained, tmp_path, capsys) -> None:
    folder = tmp_path / "scene"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"not a scene")
    before = tree_snapshot(tmp_path)
    argv = ["generate", "--model", str(trained / "model"), "--blocks", "1x1", "--steps", "2",
            "--out", str(tmp_path / "scene.glb"), "--device", "cpu"]  # fmt: skip
    _fails(argv, capsys, "pass --overwrite")
    assert tree_snapshot(tmp_path) == before  # neither the folder touched nor the mesh written
    assert main([*argv, "--overwrite"]) == 0
    assert (tmp_path / "scene.glb").is_file() and (folder / "scene.json").is_file()
    assert not (folder / "holiday.jpg").exists()


def test_generate_replaces_its_own_earlier_output(trained, tmp_path) -> None:
    argv = ["generate", "--model", str(trained / "model"), "--blocks", "1x1", "--steps", "2",
            "--out", str(tmp_path / "scene.ply"), "--device", "cpu"]  # fmt: skip
    assert main([*argv, "--seed", "1"]) == 0
    first = tree_snapshot(tmp_path)
    assert main([*argv, "--seed", "2"]) == 0
    second = tree_snapshot(tmp_path)
    assert first.keys() == second.keys() and first != second


def test_generate_checks_all_its_outputs_before_generating(trained, tmp_path, capsys) -> None:
    model = str(trained / "model")
    (tmp_path / "scene").write_text("a file where the scene folder goes")
    before = tree_snapshot(tmp_path)
    base = ["generate", "--model", model, "--blocks", "1x1", "--device", "cpu"]
    _fails([*base, "--out", str(tmp_path / "scene.glb")], capsys, "not a folder")
    inside = ["--out", str(tmp_path / "b.glb"), "--png", str(tmp_path / "b" / "view.png")]
    _fails([*base, *inside], capsys, "lies inside the output folder")
    same = ["--out", str(tmp_path / "c.glb"), "--png", str(tmp_path / "c.glb")]
    _fails([*base, *same], capsys, "expected a .png file name")
    assert tree_snapshot(tmp_path) == before


# ----------------------------------------------------------------------------------------------
# Folder outputs: fit, train-vae, train, expand, dataset
# ----------------------------------------------------------------------------------------------


def test_fit_never_writes_onto_its_dataset(trained, tmp_path, capsys) -> None:
    data = tmp_path / "data"
    shutil.copytree(trained / "test", data)
    before = tree_snapshot(tmp_path)
    fit = ["fit", "--data", str(data), "--iterations", "1", "--device", "cpu"]
    _fails([*fit, "--out", str(data), "--overwrite"], capsys, "is the input --data")
    _fails([*fit, "--out", str(tmp_path), "--overwrite"], capsys, "holds the input --data")
    assert tree_snapshot(tmp_path) == before


def test_training_commands_refuse_a_folder_that_is_or_holds_an_input(
    trained, tmp_path, capsys
) -> None:
    before = tree_snapshot(trained)
    fit = str(trained / "fit")
    vae = ["train-vae", "--fit", fit, "--config", "tiny", "train.steps=1"]
    _fails([*vae, "--out", fit, "--overwrite"], capsys, "is the input --fit")
    train = ["train", "--fit", fit, "--vae", str(trained / "vae"), "--config", "tiny"]
    _fails([*train, "--out", str(trained / "vae"), "--overwrite"], capsys, "is the input --vae")
    # The dataset a fit folder names is an input too.
    holds = [*train, "--out", str(trained), "--overwrite"]
    _fails(holds, capsys, "holds the input")
    _fails([*train, "--out", str(tmp_path / "m"), "--run-dir", fit], capsys, "is the input --fit")
    assert tree_snapshot(trained) == before


def test_folder_outputs_need_overwrite(trained, user_folder, capsys) -> None:
    before = tree_snapshot(user_folder)
    fit = str(trained / "fit")
    cases = [
        ["dataset", "--n", "1", "--resolution", "8"],
        ["fit", "--data", str(trained / "test"), "--iterations", "1", "--device", "cpu"],
        ["train-vae", "--fit", fit, "--config", "tiny"],
        ["train", "--fit", fit, "--vae", str(trained / "vae"), "--config", "tiny"],
    ]
    for argv in cases:
        _fails([*argv, "--out", str(user_folder)], capsys, "pass --overwrite")
    assert tree_snapshot(user_folder) == before


def test_expand_refuses_its_own_scene_and_a_users_folder(trained, user_folder, capsys) -> None:
    scene = user_folder.parent / "scene"
    argv = ["generate", "--model", str(trained / "model"), "--blocks", "1x1", "--steps", "2",
            "--out", str(scene.with_suffix(".glb")), "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    before = tree_snapshot(user_folder.parent)
    expand = ["expand", "--scene", str(scene), "--direction=+x", "--steps", "2", "--device", "cpu"]
    _fails([*expand, "--out", str(scene)], capsys, "is the input --scene")
    _fails([*expand, "--out", str(user_folder)], capsys, "pass --overwrite")
    assert tree_snapshot(user_folder.parent) == before


def test_render_never_writes_onto_its_mesh(tmp_path, capsys) -> None:
    mesh = tmp_path / "room.glb"
    assert main(["procedural", "--blocks", "1x1", "--resolution", "16", "--out", str(mesh)]) == 0
    before = tree_snapshot(tmp_path)
    _fails(["render", "--mesh", str(mesh), "--png", str(mesh)], capsys, "expected a .png")
    png = tmp_path / "room.png"
    png.write_bytes(b"\x89PNG")
    _fails(["render", "--mesh", str(png), "--png", str(png)], capsys, "is the input --mesh")
    assert tree_snapshot(tmp_path) == {**before, "room.png": tree_snapshot(tmp_path)["room.png"]}
    assert main(["render", "--mesh", str(mesh), "--png", str(tmp_path / "view.png")]) == 0


# ----------------------------------------------------------------------------------------------
# Ctrl-C
# ----------------------------------------------------------------------------------------------


def test_ctrl_c_during_training_is_one_line_and_leaves_no_output(trained, tmp_path) -> None:
    out = tmp_path / "model"
    argv = ["train", "--fit", trained / "fit", "--vae", trained / "vae", "--config", "tiny",
            "--out", out, "train.steps=100000"]  # fmt: skip
    done = interrupt_command(CLI, argv, ready=lambda: (tmp_path / "model-run").exists())
    assert (done.returncode, done.stderr) == (130, "error: interrupted\n")
    assert not out.exists() and _no_temp_files(tmp_path)


def test_ctrl_c_while_generate_writes_leaves_no_partial_output(trained, tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    argv = ["generate", "--model", trained / "model", "--blocks", "3x3", "--steps", "2",
            "--out", out / "scene.glb", "--png", out / "scene.png", "--device", "cpu"]  # fmt: skip
    writing = lambda: any(p.name.endswith(".tmp") for p in out.iterdir())  # noqa: E731
    done = interrupt_command(CLI, argv, ready=writing)
    assert (done.returncode, done.stderr) == (130, "error: interrupted\n")
    assert list(out.iterdir()) == []


# ----------------------------------------------------------------------------------------------
# Numbers and sizes
# ----------------------------------------------------------------------------------------------


def test_scene_size_is_limited_with_a_way_past_the_limit(tmp_path, capsys) -> None:
    out = str(tmp_path / "s.glb")
    for command in (["generate", "--model", "default"], ["procedural"]):
        argv = [*command, "--blocks", "1000x1000", "--out", out]
        _fails(argv, capsys, "pass --max-blocks 1000000")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["fit", "--data", "d", "--out", "o", "--iterations", "0"], "must be at least 1"),
        (["procedural", "--out", "s.glb", "--seed", "-1"], "must be at least 0"),
        (["procedural", "--out", "s.glb", "--seed", "1e23"], "expected an integer"),
        (["procedural", "--out", "s.glb", "--seed", str(2**40)], "must be at most"),
        (["procedural", "--out", "s.glb", "--resolution", "100000"], "memory grows"),
        (["generate", "--out", "s.glb", "--steps", "0"], "must be at least 1"),
        (["generate", "--out", "s.glb", "--guidance", "nan"], "finite"),
        (["convert", "--mesh", "m.obj", "--out", "o", "--stride", "inf"], "finite"),
        (["convert", "--mesh", "m.obj", "--out", "o", "--scale", "0"], "must be >"),
        (["fit", "--data", "d", "--out", "o", "--workers", "0"], "must be at least 1"),
        (["fit", "--data", "d", "--out", "o", "--surface-points", "1e12"], "expected an integer"),
        (["evaluate", "--model", "retrieval", "--n-eval", "-3"], "must be at least 1"),
        (["render", "--mesh", "m.obj", "--png", "p.png", "--elevation", "91"], "must be <= 90"),
        (["expand", "--scene", "s", "--direction=+x", "--out", "o", "--seed", "-1"], "at least 0"),
    ],
)
def test_numeric_flags_are_range_checked(argv, message, capsys) -> None:
    _fails(argv, capsys, message)


# ----------------------------------------------------------------------------------------------
# Corrupt inputs
# ----------------------------------------------------------------------------------------------


def test_a_deeply_nested_layout_is_one_line(tmp_path, capsys) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    argv = ["generate", "--layout", str(deep), "--out", str(tmp_path / "s.glb")]
    _fails(argv, capsys, f"{deep} is nested too deeply")


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("room.usd", b"#usda 1.0\n(garbage", "unsupported mesh format"),
        ("room.glb", b"glTF\x02\x00\x00\x00garbage", "cannot read mesh"),
        ("room.obj", b"v 0 0 0\nf 1 2 3 4\n\xff\xfe", "room.obj"),
    ],
)
def test_corrupt_meshes_are_one_line(tmp_path, capsys, name, content, message) -> None:
    mesh = tmp_path / name
    mesh.write_bytes(content)
    _fails(["render", "--mesh", str(mesh), "--png", str(tmp_path / "v.png")], capsys, message)
    _fails(["convert", "--mesh", str(mesh), "--out", str(tmp_path / "d")], capsys, message)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_corrupt_scene_folders_are_one_line(trained, tmp_path, capsys) -> None:
    scene = tmp_path / "scene"
    argv = ["generate", "--model", str(trained / "model"), "--blocks", "1x1", "--steps", "2",
            "--out", str(scene.with_suffix(".glb")), "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    expand = ["expand", "--scene", str(scene), "--direction=+x", "--out", str(tmp_path / "grown")]
    latents = scene / "latents.safetensors"
    latents.write_bytes(latents.read_bytes()[:100])
    _fails(expand, capsys, "latents.safetensors is missing or corrupt")
    meta = scene / "scene.json"
    meta.write_text("not json at all")
    _fails(expand, capsys, f"{meta} is corrupt")
    meta.write_text("[" * 100_000 + "]" * 100_000)
    _fails(expand, capsys, "nested too deeply")
    assert not (tmp_path / "grown").exists()


def test_a_corrupt_fit_folder_is_one_line(tmp_path, capsys) -> None:
    fit = tmp_path / "fit"
    fit.mkdir()
    (fit / "fit.json").write_text(json.dumps({"data": str(tmp_path / "d")})[:10])
    argv = ["train-vae", "--fit", str(fit), "--out", str(tmp_path / "vae"), "--config", "tiny"]
    _fails(argv, capsys, "fit.json is corrupt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit"]


def test_the_command_line_shows_no_traceback_for_a_user_error(tmp_path) -> None:
    # In a separate interpreter, as a user runs it: one line, exit 2.
    done = run_command(
        CLI, ["render", "--mesh", tmp_path / "none.obj", "--png", tmp_path / "v.png"]
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "does not exist" in done.stderr
