"""The ``difforge-av`` command as a user runs it: dataset, train, generate, evaluate, bad input."""

from __future__ import annotations

import av
import numpy as np
import pytest
import soundfile

from difforge.av.cli import main
from difforge.av.data.bounce import NUM_FRAMES, SAMPLE_RATE
from difforge.core.testing import run_command, tree_snapshot

CLI = "difforge.av.cli"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("av")
    assert main(["dataset", "--out", str(root / "data"), "--n", "3", "--seed", "5", "-q"]) == 0
    # Training runs in its own process (accelerate keeps process-wide state).
    done = run_command(
        CLI, ["train", "--config", "tiny", "--out", root / "model", "--data", root / "data", "-q"]
    )
    assert done.returncode == 0, done.stderr
    return root / "model"


def test_generate_writes_an_mp4_other_libraries_decode(tiny_model, tmp_path) -> None:
    out, wav, png = tmp_path / "clip.mp4", tmp_path / "clip.wav", tmp_path / "strip.png"
    args = ["--prompt", "one large glass ball bouncing", "--model", tiny_model, "--seed", "2"]
    done = run_command(CLI, ["generate", *args, "--out", out, "--wav", wav, "--png", png])
    assert done.returncode == 0, done.stderr
    with av.open(str(out)) as container:
        kinds = {s.type: s.codec_context.name for s in container.streams}
        assert kinds == {"video": "h264", "audio": "aac"}
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == NUM_FRAMES and frames[0].shape == (64, 64, 3)
    audio, rate = soundfile.read(wav)
    assert rate == SAMPLE_RATE and len(audio) == 25_600
    import cv2  # a second decoder for the frames

    capture = cv2.VideoCapture(str(out))
    count = 0
    while capture.read()[0]:
        count += 1
    assert count == NUM_FRAMES
    assert cv2.imread(str(png)).shape == (64, 64 * NUM_FRAMES // 2, 3)


def test_dataset_from_videos_and_evaluate_on_the_real_clip(bunny_mp4, tmp_path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "bunny.mp4").symlink_to(bunny_mp4)
    (videos / "notes.txt").write_text("not a video")
    assert main(["dataset", "--from-videos", str(videos), "--out", str(tmp_path / "ds")]) == 0
    with np.load(tmp_path / "ds" / "dataset.npz") as data:
        assert data["video"].shape == (3, NUM_FRAMES, 64, 64, 3)  # 5.3 s -> 3 windows of 1.6 s
        assert data["mel"].shape == (3, 64, 100) and data["mel"].std() > 0.05
    report = tmp_path / "scores.json"
    assert main(["evaluate", "--generated", str(videos), "--out", str(report)]) == 0
    assert '"clips": 1' in report.read_text()


def test_train_keeps_an_existing_run_unless_resumed(tiny_model, capsys) -> None:
    before = tree_snapshot(tiny_model)
    assert main(["train", "--config", "tiny", "--out", str(tiny_model)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert tree_snapshot(tiny_model) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "--prompt", "two metl balls", "--out", "x.mp4"], "closest: metal"),
        (["generate", "--prompt", " ", "--out", "x.mp4"], "empty"),
        (["generate", "--prompt", "one ball", "--out", "x.avi"], ".mp4"),
        (["generate", "--prompt", "one ball", "--out", "x.mp4", "--model", "nowhere"], "nowhere"),
        (["dataset", "--out", "d", "--n", "0"], "--n"),
        (["dataset", "--out", "d", "--from-videos", "missing"], "missing"),
        (["evaluate", "--generated", "bad.mp4", "--out", "s.json"], "cannot decode"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, args, message) -> None:
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 100)
    before = tree_snapshot(tmp_path)
    paths = {"x.mp4", "x.avi", "d", "s.json", "bad.mp4", "missing", "nowhere"}
    assert main([str(tmp_path / a) if a in paths else a for a in args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert tree_snapshot(tmp_path) == before
