"""The rules every command follows: never lose a user's data, never show a traceback.

An output that is an input, or two outputs on one path, is a one-line error; an existing folder is
replaced only with --overwrite; a command's files are written all or none; Ctrl-C prints one line
and exits 130 leaving nothing half written; bad numbers and corrupt files are one-line errors.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from difforge.core.cli import load_preset
from difforge.core.errors import UserError
from difforge.core.testing import interrupt_command, tree_snapshot
from difforge.hair import CODEC_PRESETS, DIFFUSION_PRESETS, cli_arguments
from difforge.hair.cli import build_parser, main
from difforge.hair.export import read_ply, write_npz
from difforge.hair.run_config import CodecRunConfig, DiffusionRunConfig

CLI = "difforge.hair.cli"


def _fails(argv: list, capsys, message: str, exit_code: int = 2) -> str:
    """Run ``argv`` in this process: ``exit_code``, one line on stderr holding ``message``."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == exit_code, (argv, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err, err
    return err


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def _picture(trained: Path) -> Path:
    return trained / "data" / "style_0000005" / "image.png"


# ----------------------------------------------------------------------------------------------
# Folders: never replaced without --overwrite, never an input
# ----------------------------------------------------------------------------------------------


def test_an_existing_folder_is_replaced_only_with_overwrite(tmp_path, capsys, small) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.txt").write_text("years of work")
    before = tree_snapshot(out)
    for argv in (
        ["dataset", "--n", "1", "--out", out, *small],
        ["train-codec", "--out", out, "--config", "tiny"],
        ["train", "--codec", tmp_path / "codec", "--out", out, "--config", "tiny"],
    ):
        _fails(argv, capsys, "already exists; pass --overwrite")
    assert tree_snapshot(out) == before
    assert main(["dataset", "--n", "1", "--out", str(out), "--overwrite", *small]) == 0
    assert not (out / "thesis.txt").exists() and (out / "index.json").is_file()
    assert _no_temp_files(tmp_path)


def test_python_save_refuses_a_folder_without_overwrite(trained, tmp_path) -> None:
    from difforge.hair.model import HairModel

    model = HairModel.load(trained / "model")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    with pytest.raises(UserError, match="pass --overwrite"):
        model.save(out)
    assert (out / "notes.txt").read_text() == "keep"
    model.save(out, overwrite=True)
    assert HairModel.load(out).sampling == model.sampling and not (out / "notes.txt").exists()


def test_training_never_writes_onto_or_around_its_inputs(trained, tmp_path, capsys) -> None:
    data, codec = trained / "data", trained / "codec"
    before = {name: tree_snapshot(trained / name) for name in ("data", "codec")}
    tiny = ["--config", "tiny", "--overwrite"]  # even --overwrite never replaces an input
    cases = [
        (["train-codec", "--data", data, "--out", data, *tiny], "is the input --data"),
        (["train-codec", "--data", data, "--out", trained, *tiny], "holds the input --data"),
        (["train", "--data", data, "--codec", codec, "--out", codec, *tiny], "is the input --codec"),
        (
            ["train", "--data", data, "--codec", codec, "--out", tmp_path / "m",
             "--run-dir", data, *tiny],
            "is the input --data",
        ),
        (
            ["train", "--data", data, "--codec", codec, "--out", tmp_path / "m",
             "--run-dir", tmp_path / "m", *tiny],
            "is the input --out",
        ),
    ]  # fmt: skip
    for argv, message in cases:
        _fails(argv, capsys, message)
    assert {name: tree_snapshot(trained / name) for name in ("data", "codec")} == before
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------
# Files: never an input, never two outputs on one path, all or none
# ----------------------------------------------------------------------------------------------


def test_file_outputs_never_replace_an_input_or_each_other(trained, tmp_path, capsys) -> None:
    picture = tmp_path / "me.png"
    picture.write_bytes(_picture(trained).read_bytes())
    groom = tmp_path / "g.npz"
    write_npz(groom, np.zeros((2, 4, 3), np.float32), np.zeros((2, 2), np.float32))
    views = tmp_path / "views.png"  # a folder named like a picture
    (views / "front").mkdir(parents=True)
    (views / "front" / "1.png").write_bytes(b"a user's file")
    before = tree_snapshot(tmp_path)
    model = ["--model", trained / "model"]
    cases = [
        (["generate", "--image", picture, *model, "--out", tmp_path / "g.ply", "--png", picture],
         "is the input --image"),
        (["baseline", "--image", picture, "--dataset", trained / "data",
          "--out", tmp_path / "g.ply", "--png", picture], "is the input --image"),
        (["generate", "--image", picture, *model, "--out", tmp_path / "g.ply",
          "--obj", tmp_path / "g.ply"], "--obj"),
        (["groom", "--out", tmp_path / "a.ply", "--usd", tmp_path / "a.ply"], "--usd"),
        (["render", groom, "--out", groom], "expected a .png"),
        (["groom", "--out", tmp_path / "a.ply", "--png", views], "is a folder"),
        (["evaluate-baselines", "--out", tmp_path / "r.json", "--md", tmp_path / "r.json"],
         "expected a .md"),
    ]  # fmt: skip
    for argv, message in cases:
        _fails(argv, capsys, message)
    assert tree_snapshot(tmp_path) == before


def test_a_failing_export_leaves_no_other_file_behind(tmp_path, capsys, monkeypatch) -> None:
    old = tmp_path / "g.ply"
    old.write_bytes(b"an earlier groom")

    def broken_usd(*args, **kwargs):
        raise UserError("USD export failed")

    monkeypatch.setattr(cli_arguments, "write_usd", broken_usd)
    argv = ["groom", "--root-candidates", "200", "--points", "8", "--out", old]
    argv += ["--obj", tmp_path / "g.obj", "--png", tmp_path / "g.png", "--usd", tmp_path / "g.usda"]
    _fails(argv, capsys, "USD export failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.ply"]
    assert old.read_bytes() == b"an earlier groom"
    monkeypatch.undo()
    assert main([str(a) for a in argv]) == 0  # the same command, working, writes all four
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.obj", "g.ply", "g.png", "g.usda"]
    assert read_ply(old).shape[1:] == (8, 3)


# ----------------------------------------------------------------------------------------------
# Ctrl-C: one line, exit 130, nothing half written
# ----------------------------------------------------------------------------------------------


def _interrupt_group(argv: list, ready) -> subprocess.CompletedProcess:
    """Ctrl-C to the whole process group, worker processes included, as a terminal sends it."""
    return interrupt_command(CLI, argv, ready, group=True)


def test_ctrl_c_in_dataset_workers_prints_one_line_and_leaves_nothing(tmp_path, small) -> None:
    out = tmp_path / "data"
    argv = ["dataset", "--n", "400", "--workers", "2", "--out", out, *small]

    def writing() -> bool:  # a worker has written a style into the temporary folder
        return any(p.name.startswith("style_") for p in tmp_path.glob(".data.*.tmp/*"))

    done = _interrupt_group(argv, writing)
    assert (done.returncode, done.stderr) == (130, "error: interrupted\n")
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_while_training_with_data_workers(tmp_path) -> None:
    out = tmp_path / "codec"
    argv = ["train-codec", "--out", out, "--config", "tiny", "--quiet", "train.steps=1000000"]
    argv += ["data.workers=2", "data.styles=4"]
    done = _interrupt_group(argv, lambda: (tmp_path / "codec-run").exists())
    assert (done.returncode, done.stderr) == (130, "error: interrupted\n")
    assert not out.exists() and _no_temp_files(tmp_path)


def test_ctrl_c_while_training_the_diffusion_model(trained, tmp_path) -> None:
    out = tmp_path / "model"
    argv = ["train", "--data", trained / "data", "--codec", trained / "codec", "--out", out]
    argv += ["--config", "tiny", "--quiet", "train.steps=1000000"]
    ready = lambda: (tmp_path / "model-run" / "textures.safetensors").exists()  # noqa: E731
    done = interrupt_command(CLI, argv, ready=ready)
    assert (done.returncode, done.stderr) == (130, "error: interrupted\n")
    assert not out.exists() and _no_temp_files(tmp_path)


def test_ctrl_c_while_generate_writes_leaves_no_partial_output(trained, tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    maps = trained / "data" / "style_0000005" / "maps.png"  # the tiny model takes maps
    argv = ["generate", "--maps", maps, "--model", trained / "model", "--device",
            "cpu", "--strands", "400000", "--out", out / "g.ply", "--obj", out / "g.obj",
            "--usd", out / "g.usda"]  # fmt: skip
    writing = lambda: any(p.name.endswith(".tmp") for p in out.iterdir())  # noqa: E731
    done = interrupt_command(CLI, argv, ready=writing)
    assert (done.returncode, done.stderr) == (130, "error: interrupted\n")
    assert list(out.iterdir()) == []


# ----------------------------------------------------------------------------------------------
# Numbers and corrupt inputs
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["generate", "--image", "x.png", "--out", "g.ply", "--smooth", "inf"], "finite"),
        (["generate", "--image", "x.png", "--out", "g.ply", "--smooth", "nan"], "finite"),
        (["generate", "--image", "x.png", "--out", "g.ply", "--smooth", "-1"], ">= 0"),
        (["generate", "--image", "x.png", "--out", "g.ply", "--min-density", "1"], "< 1"),
        (["generate", "--image", "x.png", "--out", "g.ply", "--guidance", "-2"], ">= 0"),
        (["generate", "--image", "x.png", "--out", "g.ply", "--steps", "0"], "at least 1"),
        (["generate", "--image", "x.png", "--out", "g.ply", "--ensemble", "0"], "at least 1"),
        (["generate", "--image", "x.png", "--out", "g.ply", "--seed", "-1"], "at least 0"),
        (["generate", "--image", "x.png", "--out", "g.ply", "--seed", "1e23"], "an integer"),
        (["generate", "--image", "x.png", "--out", "g.ply", "--seed", str(2**40)], "at most"),
        (["generate", "--image", "x.png", "--out", "g.ply", "--strands", "0"], "at least 1"),
        (["generate", "--image", "x.png", "--out", "g.ply", "--strands", "50000000"],
         "the command's limit"),
        (["groom", "--out", "g.ply", "--root-candidates", "5e7"], "an integer"),
        (["groom", "--out", "g.ply", "--points", "100000"], "at most"),
        (["dataset", "--n", "0", "--out", "d"], "at least 1"),
        (["dataset", "--n", "2", "--out", "d", "--workers", "0"], "at least 1"),
        (["dataset", "--n", "2", "--out", "d", "--image-size", "8"], "at least 16"),
        (["render", "g.npz", "--out", "v.png", "--size", "0"], "at least 16"),
        (["evaluate", "--out", "r.json", "--eval-points", "-5"], "at least 100"),
        (["evaluate", "--out", "r.json", "--first-held-out", "-1"], "at least 0"),
        (["evaluate-baselines", "--out", "r.json", "--test", "nan"], "an integer"),
    ],
)  # fmt: skip
def test_every_number_is_range_checked(tmp_path, capsys, monkeypatch, argv, message) -> None:
    monkeypatch.chdir(tmp_path)
    _fails(argv, capsys, message)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_inputs_are_one_line_errors(trained, tmp_path, capsys) -> None:
    model = tmp_path / "model"
    model.mkdir()
    for part in ("codec", "diffusion"):
        (model / part).mkdir()
        for file in (trained / "model" / part).iterdir():
            (model / part / file.name).write_bytes(file.read_bytes())
    (model / "config.json").write_bytes((trained / "model" / "config.json").read_bytes())
    weights = model / "diffusion" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated
    npz = tmp_path / "g.npz"
    npz.write_bytes(b"PK\x03\x04 not really a zip")
    usd = tmp_path / "g.usda"
    usd.write_text("#usda 1.0\n(\n garbage {{{")
    usdc = tmp_path / "g.usdc"
    usdc.write_bytes(os.urandom(200))
    not_image = tmp_path / "photo.png"
    not_image.write_text("hello")
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    before = tree_snapshot(tmp_path)
    out = tmp_path / "out"
    picture = _picture(trained)
    cases = [
        (["generate", "--image", picture, "--model", model, "--out", out / "g.ply"], str(weights)),
        (["render", npz, "--out", out / "v.png"], str(npz)),
        (["render", usd, "--out", out / "v.png"], str(usd)),
        (["render", usdc, "--out", out / "v.png"], str(usdc)),
        (["generate", "--image", not_image, "--model", trained / "model", "--out", out / "g.ply"],
         "not an image"),
        (["baseline", "--image", not_image, "--dataset", trained / "data", "--out", out / "g.ply"],
         "not an image"),
    ]  # fmt: skip
    for argv, message in cases:
        _fails(argv, capsys, message)
    # 100,000 nested lists as a config: one line naming the file
    _fails(
        ["train-codec", "--out", out / "c", "--config", deep],
        capsys,
        f"{deep} is nested too deeply",
    )
    assert tree_snapshot(tmp_path) == before and not out.exists()


def test_no_config_is_the_default_preset() -> None:
    parser = build_parser()
    for command in ("train-codec", "train"):
        assert parser.parse_args([command, "--out", "x"]).config == "default"
    for cls, presets in ((CodecRunConfig, CODEC_PRESETS), (DiffusionRunConfig, DIFFUSION_PRESETS)):
        assert load_preset(cls, presets, None) == load_preset(cls, presets, "default")
        # a nested override keeps the preset's other keys (not the class defaults)
        one = load_preset(cls, presets, None, ["train.steps=5"])
        assert one.train.steps == 5
        assert one.train.batch_size == load_preset(cls, presets, "default").train.batch_size
