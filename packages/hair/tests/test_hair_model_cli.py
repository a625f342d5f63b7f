"""train-codec -> train -> generate -> evaluate through the command line, on a tiny dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from difforge.hair.cli import main
from difforge.hair.data.head import DEFAULT_HEAD
from difforge.hair.data.styles import HELD_OUT_SEED_BASE
from difforge.hair.export import read_obj, read_ply


def test_training_writes_the_codec_and_model_folders(trained):
    metrics = json.loads((trained / "codec" / "metrics.json").read_text())
    assert metrics["held_out"]["position_mm"] > 0 and metrics["steps"] == 30
    model = trained / "model"
    assert {p.name for p in model.iterdir()} == {"config.json", "codec", "diffusion"}
    config = json.loads((model / "config.json").read_text())
    assert config["model_type"] == "difforge-hair"
    assert config["training"]["styles"] == 3 and config["training"]["diffusion"]["steps"] == 10
    assert config["codec_metrics"] == metrics["held_out"]
    assert (trained / "model-run" / "checkpoints").is_dir()  # run state stays outside the model


def test_generate_writes_a_groom_on_the_scalp(trained, tmp_path, capsys):
    out = tmp_path / "groom.ply"
    args = ["generate", "--maps", str(trained / "data" / "style_0000005" / "maps.png")]
    args += ["--model", str(trained / "model"), "--out", str(out), "--obj", str(tmp_path / "g.obj")]
    args += ["--png", str(tmp_path / "g.png"), "--seed", "3", "--strands", "500"]
    assert main(args) == 0
    points = read_ply(out)
    assert points.shape[1:] == (16, 3) and len(points) > 0
    np.testing.assert_allclose(read_obj(tmp_path / "g.obj"), points, atol=1e-6)
    np.testing.assert_allclose(DEFAULT_HEAD.skull_level(points[:, 0]), 1.0, atol=1e-5)
    assert not DEFAULT_HEAD.inside(points[:, 1:].astype(np.float64)).any()
    with Image.open(tmp_path / "g.png") as picture:  # input + 4 views side by side
        assert picture.size == (5 * 256 + 4 * 4, 256)
    assert f"generated {len(points)} strands" in capsys.readouterr().out
    # Same seed, same groom.
    assert (
        main([*args[:-4], "--out", str(tmp_path / "again.ply"), "--seed", "3", "--strands", "500"])
        == 0
    )
    np.testing.assert_array_equal(read_ply(tmp_path / "again.ply"), points)


def test_generate_converts_an_rgba_maps_picture_with_a_note(trained, tmp_path, capsys):
    rgba = np.zeros((100, 80, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "maps.png")
    args = ["generate", "--maps", str(tmp_path / "maps.png"), "--model", str(trained / "model")]
    assert main([*args, "--out", str(tmp_path / "g.ply")]) == 0
    err = capsys.readouterr().err
    assert "note: transparency composited" in err and "resized to 64x64" in err


def test_evaluate_reports_model_and_baselines(trained, tmp_path, capsys, small):
    out, md = tmp_path / "eval.json", tmp_path / "eval.md"
    args = ["evaluate", "--model", str(trained / "model"), "--n", "1", "--train", "2"]
    args += ["--out", str(out), "--md", str(md), "--eval-points", "2000", *small]
    assert main([*args, "--first-held-out", "3"]) == 0
    report = json.loads(out.read_text())
    assert list(report) == ["difforge_hair", "mean_groom", "retrieval"]
    # a validation set: every method scored on the 4th held-out style, not the test set's first
    assert {r["per_style"][0]["seed"] for r in report.values()} == {HELD_OUT_SEED_BASE + 3}
    summary = report["difforge_hair"]["summary"]
    assert 0 <= summary["occupancy_f1@3mm"] <= 100 and summary["seconds"] > 0
    assert report["difforge_hair"]["protocol"]["n_styles"] == 1
    assert md.read_text().count("\n") == 5 and "| difforge_hair |" in capsys.readouterr().out


def test_train_codec_on_procedural_styles(tmp_path):
    args = ["train-codec", "--out", str(tmp_path / "codec"), "--config", "tiny"]
    assert main([*args, "data.styles=2", "train.steps=3"]) == 0
    assert json.loads((tmp_path / "codec" / "metrics.json").read_text())["steps"] == 3


def test_bad_inputs_give_one_line_errors_and_no_output(trained, tmp_path, capsys, monkeypatch):
    from difforge.hair import model as model_module

    # as on an install without the shipped weights
    monkeypatch.setattr(model_module, "DEFAULT_MODEL_DIR", tmp_path / "weights" / "default")
    model = str(trained / "model")
    not_image = tmp_path / "notes.png"
    not_image.write_text("hello")
    out = tmp_path / "g.ply"
    cases = [
        (["generate", "--image", str(not_image), "--model", model], "not an image"),
        (["generate", "--image", str(tmp_path / "none.png"), "--model", model], "no such image"),
        (
            ["generate", "--image", str(trained / "data" / "style_0000005" / "image.png"),
             "--model", str(tmp_path / "nomodel")],
            "not a difforge-hair model folder",
        ),
        (
            ["generate", "--image", str(trained / "data" / "style_0000005" / "image.png"),
             "--model", "default"],
            "weights/default holds no config.json",
        ),
        (["train-codec", "--data", str(tmp_path), "--out", str(tmp_path / "c")], "no style folders"),
        (["train-codec", "--out", str(tmp_path / "c"), "--config", "huge"], "no preset 'huge'"),
        (["train", "--codec", str(tmp_path), "--out", str(tmp_path / "m")], "not a codec folder"),
    ]  # fmt: skip
    for args, message in cases:
        assert main([*args, "--out", str(out)] if args[0] == "generate" else args) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not out.exists() and not (tmp_path / "c").exists() and not (tmp_path / "m").exists()


def test_demo_reconstructs_every_bundled_picture_with_a_model(trained, tmp_path):
    from difforge.hair.demo import HELD_OUT_PICTURES, reconstruction_section

    pictures = sorted(HELD_OUT_PICTURES.glob("heldout_*.png"))
    assert len(pictures) >= 3
    section = reconstruction_section(tmp_path, trained / "model", root_candidates=200)
    assert len(section.images) == len(section.files) == len(pictures)
    for png, ply in zip(section.images, section.files):
        points = read_ply(ply)
        assert points.ndim == 3 and len(points) > 50
        assert np.isfinite(points).all()
        with Image.open(png) as sheet:
            assert sheet.width > 4 * sheet.height  # input picture + four views in one row


def test_generate_from_a_photo_with_every_output(trained, tmp_path, capsys):
    import trimesh
    from skimage import data

    from difforge.hair.export_tools import HEAD_MESH_SUFFIXES

    assert ".obj" in HEAD_MESH_SUFFIXES
    photo, out = tmp_path / "astronaut.jpg", tmp_path / "out"
    Image.fromarray(data.astronaut()).save(photo)
    args = ["generate", "--image", str(photo), "--model", str(trained / "model"), "--strands",
            "300", "--points", "40", "--out", str(out / "g.ply"), "--png", str(out / "g.png"),
            "--head-mesh", str(out / "head.obj"), "--up-axis", "z"]  # fmt: skip
    out.mkdir()
    assert main(args) == 0
    assert read_ply(out / "g.ply").shape == (300, 40, 3)  # the model's 16 points, resampled
    head = trimesh.load(out / "head.obj")
    assert head.is_watertight and head.bounds[1][2] == pytest.approx(0.1, abs=1e-3)  # z up
    with Image.open(out / "g.png") as sheet:  # crop, maps, groom over the crop + four views
        assert sheet.size == (7 * 256 + 6 * 4, 256)
    capsys.readouterr()
    # A photo without a face, a face that is not there, --face on maps: one line, nothing written.
    Image.fromarray(data.chelsea()).save(tmp_path / "cat.png")
    maps = str(trained / "data" / "style_0000005" / "maps.png")
    model = ["--model", str(trained / "model"), "--out", str(tmp_path / "x.ply")]
    cases = [
        (["--image", str(tmp_path / "cat.png")], f"no face found in {tmp_path / 'cat.png'}"),
        (["--image", str(photo), "--face", "1"], "has 1 face(s); --face must be 0..0"),
        (["--maps", maps, "--face", "0"], "--face applies to --image"),
        (["--image", str(photo), "--maps", maps], "not allowed with argument"),
    ]
    wrong_size = tmp_path / "mask.png"
    Image.fromarray(np.zeros((100, 300), np.uint8)).save(wrong_size)
    cases += [
        (["--image", str(photo), "--hair-mask", str(wrong_size)], "the mask is 300x100"),
        (["--maps", maps, "--hair-mask", str(wrong_size)], "--hair-mask applies to --image"),
    ]
    for extra, message in cases:
        assert main(["generate", *extra, *model]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.ply").exists()


def test_generate_takes_a_phones_turned_photo_and_the_users_hair_mask(trained, tmp_path, capsys):
    from skimage import data

    from difforge.hair.photo import head_to_crop

    # A phone stores a portrait turned on its side with an EXIF orientation tag (6: turn 90°
    # clockwise to view); the front end must see it upright or it finds no face.
    turned = Image.fromarray(data.astronaut()).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    photo = tmp_path / "phone.jpg"
    turned.save(photo, exif=exif)
    mask = np.zeros((512, 512), np.uint8)
    mask[10:95, 170:290] = 255  # the user's own mask: a box over her hair, as the photo shows
    Image.fromarray(mask).save(tmp_path / "hair.png")
    args = ["generate", "--image", str(photo), "--hair-mask", str(tmp_path / "hair.png"),
            "--model", str(trained / "model"), "--strands", "100", "--out",
            str(tmp_path / "g.ply")]  # fmt: skip
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "EXIF orientation" in err and "hair mask given" in err
    from difforge.hair.pipeline import HairPipeline

    out = HairPipeline.from_pretrained(trained / "model")(
        str(photo), hair_mask=str(tmp_path / "hair.png"), strands=100
    )
    # The box lands above the eyes in the aligned crop, as the upright photo's hair does.
    rows = np.nonzero(out.aligned.hair_mask.any(axis=1))[0]
    eye_row = head_to_crop(np.array([[0.0, -0.018]]))[0, 1]
    assert out.aligned.hair_mask.sum() > 1000 and rows.max() < eye_row + 8  # sideways: 210-255


def test_demo_generates_from_a_real_photo(trained, tmp_path):
    from difforge.hair.demo import photo_section

    section = photo_section(tmp_path, trained / "model")
    (png,), (ply,) = section.images, section.files
    assert len(read_ply(ply)) == section.metrics["strands"] > 0
    with Image.open(png) as sheet:  # crop, maps, groom over the crop + four views
        assert sheet.size == (7 * 256 + 6 * 4, 256)


def test_demo_without_a_shipped_model_shows_only_the_procedural_section(
    tmp_path, monkeypatch, small
):
    from difforge.core.gallery import DemoSection
    from difforge.hair import demo, model

    monkeypatch.setattr(model, "DEFAULT_MODEL_DIR", tmp_path / "missing")
    monkeypatch.setattr(demo, "procedural_section", lambda out: DemoSection(title="procedural"))
    sections = demo.run(tmp_path)
    assert [s.title for s in sections] == ["procedural"]
    assert "No trained image-to-strands model ships yet" in sections[0].description
