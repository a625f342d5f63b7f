"""BounceAV clips, the log-mel image and its Griffin-Lim inverse, and real clips via PyAV."""

from __future__ import annotations

import librosa
import numpy as np
import pytest

from difforge.av.data.audio import MEL_FRAMES, N_MELS, log_mel, mel_to_audio
from difforge.av.data.bounce import (
    FPS,
    NUM_FRAMES,
    NUM_SAMPLES,
    SAMPLE_RATE,
    SIZE,
    make_clip,
)
from difforge.av.data.video_io import clip_windows, read_video, write_mp4
from difforge.core.errors import UserError


def test_clip_shapes_caption_and_determinism() -> None:
    clip = make_clip(5)
    assert clip.video.shape == (NUM_FRAMES, SIZE, SIZE, 3) and clip.video.dtype == np.uint8
    assert clip.audio.shape == (NUM_SAMPLES,) and clip.audio.dtype == np.float32
    assert np.array_equal(make_clip(5).video, clip.video)
    assert np.array_equal(make_clip(5).audio, clip.audio)
    assert not np.array_equal(make_clip(6).video, clip.video)
    prompted = make_clip(1, count=2, size="small", material="metal", noise="rain")
    assert prompted.caption == "two small metal balls bouncing in the rain"
    assert prompted.tracks.shape == (NUM_FRAMES, 2, 2)


def test_impacts_are_heard_when_they_happen_and_only_then() -> None:
    clip = make_clip(3, noise="none")
    times = clip.impact_times
    assert len(times) >= 1
    frame = int(SAMPLE_RATE * 0.02)
    energy = np.array(
        [np.abs(clip.audio[i : i + frame]).max() for i in range(0, NUM_SAMPLES - frame, frame)]
    )
    starts = np.arange(len(energy)) * frame / SAMPLE_RATE
    # Silence before the first impact; sound in the 20 ms window that holds it.
    assert energy[starts + 0.02 <= times[0]].max(initial=0.0) == 0.0
    assert energy[int(times[0] * SAMPLE_RATE) // frame] > 0.01


def test_a_floor_impact_is_where_the_track_reverses() -> None:
    clip = make_clip(11, count=1, noise="none")
    vy = np.diff(clip.tracks[:, 0, 1])
    flips = np.nonzero((vy[:-1] > 0) & (vy[1:] <= 0))[0] + 1  # frame of the lowest point
    assert len(flips) >= 1
    for f in flips:
        assert np.min(np.abs(clip.impact_times * FPS - f)) <= 1.0


def test_material_sets_the_pitch() -> None:
    def centroid(material: str) -> float:
        clip = make_clip(2, count=1, size="large", material=material, noise="none")
        return float(librosa.feature.spectral_centroid(y=clip.audio, sr=SAMPLE_RATE).mean())

    assert centroid("rubber") < centroid("wood") < centroid("metal") < centroid("glass")


def test_log_mel_range_and_griffin_lim_keeps_the_onsets() -> None:
    clip = make_clip(1, noise="none")
    image = log_mel(clip.audio)
    assert image.shape == (N_MELS, MEL_FRAMES)
    assert image.min() >= -1.0 and image.max() <= 1.0
    assert log_mel(np.zeros(NUM_SAMPLES, np.float32)).max() == -1.0
    audio = mel_to_audio(image)
    assert audio.shape == (NUM_SAMPLES,)
    original = librosa.onset.onset_detect(y=clip.audio, sr=SAMPLE_RATE, units="time")
    rebuilt = librosa.onset.onset_detect(y=audio, sr=SAMPLE_RATE, units="time")
    matched = [t for t in original if np.min(np.abs(rebuilt - t)) <= 1 / FPS]
    assert len(matched) >= 0.8 * len(original)
    # Spectral convergence in mel power (the image's own domain).
    power = librosa.db_to_power((image + 1) * 40 - 80)
    rebuilt_power = librosa.db_to_power((log_mel(audio) + 1) * 40 - 80)
    assert np.linalg.norm(power - rebuilt_power) / np.linalg.norm(power) < 0.3


def test_mp4_round_trip_through_pyav(tmp_path) -> None:
    clip = make_clip(4)
    path = write_mp4(tmp_path / "clip.mp4", clip.video, clip.audio)
    frames, audio = read_video(path)
    assert frames.shape == clip.video.shape
    assert np.abs(frames.astype(int) - clip.video).mean() < 6
    assert abs(len(audio) - NUM_SAMPLES) <= 1024
    n = min(len(audio), NUM_SAMPLES)
    assert np.corrcoef(audio[:n], clip.audio[:n])[0, 1] > 0.9


def test_real_clip_is_resampled_and_cut_into_windows(bunny_mp4) -> None:
    frames, audio = read_video(bunny_mp4)
    assert frames.shape[1:] == (SIZE, SIZE, 3)
    assert abs(len(frames) - 5.31 * FPS) <= 1.5
    assert abs(len(audio) / SAMPLE_RATE - 5.31) < 0.05
    assert audio.std() > 0.001
    windows = list(clip_windows(frames, audio, stride_frames=8))
    assert [start for start, _ in windows] == list(range(0, len(frames) - NUM_FRAMES + 1, 8))
    assert all(w.video.shape[0] == NUM_FRAMES and len(w.audio) == NUM_SAMPLES for _, w in windows)


def test_unreadable_and_silent_files_are_user_errors(tmp_path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    with pytest.raises(UserError, match="cannot decode"):
        read_video(broken)
    silent = tmp_path / "silent.mp4"
    import av

    with av.open(str(silent), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for _ in range(3):
            container.mux(
                stream.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), "rgb24"))
            )
        container.mux(stream.encode(None))
    with pytest.raises(UserError, match="no audio"):
        read_video(silent)
