"""The difforge-hair command line, in process."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from difforge.hair.cli import main
from difforge.hair.data.dataset import load_sample
from difforge.hair.data.styles import HELD_OUT_SEED_BASE
from difforge.hair.export import read_npz, read_obj, read_ply

SMALL = ["--root-candidates", "300", "--points", "8", "--image-size", "64"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("hair") / "data"
    assert main(["dataset", "--n", "3", "--seed", "5", "--out", str(out), *SMALL]) == 0
    return out


def test_dataset_takes_the_photo_style_set_and_turned_heads(tmp_path):
    out = tmp_path / "photo"
    args = ["dataset", "--n", "2", "--out", str(out), "--style-set", "photo", "--max-yaw", "35"]
    assert main([*args, *SMALL]) == 0
    index = json.loads((out / "index.json").read_text())
    assert index["sample"]["style_set"] == "photo" and index["sample"]["max_yaw"] == 35.0
    families = [load_sample(out / name)[0].family for name in index["styles"]]
    assert families == ["short_crop", "short_layered"]  # the photo set's first families
    assert main(["dataset", "--n", "2", "--out", str(tmp_path / "x"), "--max-yaw", "61"]) == 2
    assert not (tmp_path / "x").exists()


def test_groom_makes_a_photo_set_family(tmp_path):
    out = tmp_path / "frizzy.ply"
    assert main(["groom", "--family", "frizzy", "--out", str(out), *SMALL[:4]]) == 0
    assert len(read_ply(out)) > 0


def test_dataset_writes_every_file_of_every_style(dataset):
    index = json.loads((dataset / "index.json").read_text())
    assert index["styles"] == ["style_0000005", "style_0000006", "style_0000007"]
    for name in index["styles"]:
        folder = dataset / name
        assert {p.name for p in folder.iterdir()} == {
            "strands.npz",
            "image.png",
            "mask.png",
            "maps.png",
            "density.png",
            "params.json",
        }
        style, groom, image = load_sample(folder)
        assert image.shape == (64, 64, 3) and groom.points.shape[1:] == (8, 3)
        params = json.loads((folder / "params.json").read_text())
        assert params["strand_count"] == groom.n_strands and params["style"]["seed"] == style.seed


def test_procedural_commands_name_their_budget_root_candidates(tmp_path, capsys):
    """`groom`/`dataset` draw root candidates that the density map thins out: the flag says so;
    the old name --strands is still accepted, no longer shown."""
    grooms = {}
    for flag in ("--root-candidates", "--strands"):
        out = tmp_path / f"{flag.strip('-')}.npz"
        args = ["groom", "--family", "receding", flag, "500", "--points", "8"]
        assert main([*args, "--out", str(out.with_suffix(".ply")), "--npz", str(out)]) == 0
        grooms[flag] = read_npz(out)[0]
    np.testing.assert_array_equal(grooms["--root-candidates"], grooms["--strands"])
    assert 0 < len(grooms["--strands"]) < 500
    capsys.readouterr()
    assert main(["groom", "--help"]) == 0
    shown = capsys.readouterr().out
    assert "--root-candidates" in shown and "--strands" not in shown


def test_groom_command_writes_all_formats(tmp_path, capsys):
    out = tmp_path / "bob.ply"
    args = [
        "groom",
        "--family",
        "bob",
        "--seed",
        "2",
        "--strands",
        "400",
        "--points",
        "12",
        "--out",
        str(out),
    ]
    args += ["--obj", str(tmp_path / "bob.obj"), "--npz", str(tmp_path / "bob.npz")]
    args += [
        "--usd",
        str(tmp_path / "bob.usdc"),
        "--png",
        str(tmp_path / "bob.png"),
        "--up-axis",
        "z",
    ]
    assert main(args) == 0
    assert "bob (seed 2)" in capsys.readouterr().out
    np.testing.assert_allclose(read_obj(tmp_path / "bob.obj"), read_ply(out), atol=1e-6)
    assert Image.open(tmp_path / "bob.png").size == (4 * 256 + 3 * 4, 256)
    assert (
        main(
            [
                "render",
                str(tmp_path / "bob.npz"),
                "--out",
                str(tmp_path / "views.png"),
                "--size",
                "32",
            ]
        )
        == 0
    )
    assert Image.open(tmp_path / "views.png").size[1] == 32


def test_baseline_command_reconstructs_from_an_rgba_picture(tmp_path, dataset, capsys):
    _, groom, image = load_sample(dataset / "style_0000006")
    picture = tmp_path / "input.png"
    Image.fromarray(image).convert("RGBA").resize((96, 96)).save(picture)
    out = tmp_path / "groom.ply"
    args = ["baseline", "--image", str(picture), "--dataset", str(dataset), "--out", str(out)]
    assert main([*args, "--png", str(tmp_path / "groom.png")]) == 0
    captured = capsys.readouterr()
    assert "note: 96x96 picture resized to 128x128" in captured.err
    np.testing.assert_allclose(read_ply(out), groom.points, atol=1e-6)  # retrieved its own style
    assert main([*args, "--method", "mean"]) == 0


def test_evaluate_baselines_writes_json_and_markdown(tmp_path):
    args = ["evaluate-baselines", "--train", "14", "--test", "1", "--eval-points", "2000", *SMALL]
    assert main([*args, "--out", str(tmp_path / "r.json"), "--md", str(tmp_path / "r.md")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert set(report) == {"mean_groom", "retrieval"}
    assert report["retrieval"]["per_style"][0]["seed"] == HELD_OUT_SEED_BASE  # the test set
    assert "| mean_groom |" in (tmp_path / "r.md").read_text()


def test_user_mistakes_exit_2_with_one_line_and_no_output(tmp_path, dataset, capsys):
    not_image = tmp_path / "photo.jpg"
    not_image.write_text("hello")
    out = tmp_path / "out.ply"
    mistakes = [
        ["baseline", "--image", str(not_image), "--dataset", str(dataset), "--out", str(out)],
        [
            "baseline",
            "--image",
            str(not_image),
            "--dataset",
            str(tmp_path / "none"),
            "--out",
            str(out),
        ],
        ["dataset", "--n", "2", "--seed", "999999", "--out", str(tmp_path / "d")],
        ["dataset", "--n", "2", "--families", "curly,straight", "--out", str(tmp_path / "d")],
        ["render", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "v.png")],
        ["groom", "--out", str(tmp_path / "groom.txt")],
    ]
    for argv in mistakes:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg"]
    for argv in (  # argparse rejects malformed and out-of-range numbers itself
        ["dataset", "--n", "zero", "--out", str(tmp_path / "d")],
        ["groom", "--points", "1", "--out", str(out)],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
    for argv in (  # 50 million strands would not fit in memory: refused before any work
        ["groom", "--root-candidates", "50000000", "--out", str(out)],
        ["generate", "--image", str(not_image), "--strands", "50000000", "--out", str(out)],
    ):
        assert main(argv) == 2 and "the command's limit" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.jpg"]
