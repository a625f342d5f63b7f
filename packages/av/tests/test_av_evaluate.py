"""Sync metrics on hand-made clips whose answers are known, and on BounceAV ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from difforge.av.data.bounce import FPS, NUM_FRAMES, NUM_SAMPLES, SAMPLE_RATE, make_clip
from difforge.av.evaluate import (
    audio_onsets,
    av_align,
    local_maxima,
    match_events,
    track_balls,
    video_bounces,
)


def _jump_video(jump_frame: int) -> np.ndarray:
    """A textured square that stands still except for one 4-pixel jump into ``jump_frame``."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    frames = np.zeros((NUM_FRAMES, 64, 64, 3), np.uint8)
    for f in range(NUM_FRAMES):
        x = 20 + (4 if f >= jump_frame else 0)
        frames[f, 24:40, x : x + 16] = texture
    return frames


def _click_audio(time_s: float) -> np.ndarray:
    audio = np.zeros(NUM_SAMPLES, np.float32)
    start = int(time_s * SAMPLE_RATE)
    t = np.arange(2000) / SAMPLE_RATE
    audio[start : start + 2000] = 0.5 * np.sin(2 * np.pi * 800 * t) * np.exp(-t / 0.02)
    return audio


def test_local_maxima_fixes_the_undefined_n() -> None:
    assert local_maxima(np.array([1.0, 3, 2, 5, 4])).tolist() == [1, 3]
    assert local_maxima(np.array([5.0, 1, 2])).tolist() == [0, 2]
    assert local_maxima(np.zeros(4)).tolist() == []


def test_av_align_matches_in_sync_and_is_zero_out_of_sync() -> None:
    video = _jump_video(6)  # flow between frames 5 and 6: peak index 5 -> 0.5 s
    onsets = audio_onsets(_click_audio(0.5))
    assert len(onsets) >= 1 and np.all(np.abs(onsets - 0.5) < 0.05)
    # Every onset matches the one video peak: matched / (n + 1 - matched) with matched = n.
    assert av_align(video, _click_audio(0.5)) == pytest.approx(len(onsets))
    assert av_align(_jump_video(8), _click_audio(0.5)) == 0.0  # two frames late
    assert av_align(video, _click_audio(1.2)) == 0.0  # no audio peak near the video peak
    assert av_align(video, np.zeros(NUM_SAMPLES, np.float32)) == 0.0


def test_match_events_counts_one_to_one_within_the_tolerance() -> None:
    result = match_events(np.array([0.1, 0.5, 0.9]), np.array([0.12, 0.55, 1.5]), 0.1)
    assert result.matched == 2
    assert result.precision == pytest.approx(2 / 3) and result.recall == pytest.approx(2 / 3)
    assert result.median_error_s == pytest.approx(0.035)
    # Two detections near one reference time: only one may match.
    twice = match_events(np.array([0.50, 0.52]), np.array([0.51]), 0.1)
    assert twice.matched == 1 and twice.precision == 0.5 and twice.recall == 1.0
    assert match_events(np.array([]), np.array([])).f1 == 1.0


def test_video_bounces_on_a_known_track() -> None:
    # Falls (y grows) to the floor at frame 8, then rises; x constant.
    y = 60.0 - 5.0 * np.abs(np.arange(NUM_FRAMES) - 8)
    tracks = np.stack([np.full(NUM_FRAMES, 30.0), y], -1)[:, None]
    assert video_bounces(tracks).tolist() == pytest.approx([0.8])
    # A ball thrown up that turns at the top (y smallest) is no bounce.
    assert video_bounces(np.stack([np.full(NUM_FRAMES, 30.0), 60 - y], -1)[:, None]).size == 0


def test_tracker_follows_the_rendered_balls() -> None:
    clip = make_clip(1, noise="none")
    tracks = track_balls(clip.video)
    assert tracks.shape == clip.tracks.shape
    for frame in range(NUM_FRAMES):
        for truth in clip.tracks[frame]:
            assert np.min(np.linalg.norm(tracks[frame] - truth, axis=-1)) < 1.0


def test_ground_truth_sound_is_in_sync_with_its_impacts() -> None:
    clip = make_clip(1, noise="none")
    result = match_events(audio_onsets(clip.audio), clip.impact_times)
    assert result.f1 >= 0.8 and result.median_error_s < 1 / FPS
    shifted = match_events(audio_onsets(np.roll(clip.audio, 4000)), clip.impact_times)
    assert shifted.f1 < result.f1
