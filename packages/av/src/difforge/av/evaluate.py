"""Sync metrics: AV-Align (TempoTokens' definition, its undefined ``n`` fixed) and event-sync F1
and timing error against known impact times.

AV-Align: audio peaks are ``librosa.onset.onset_detect`` on ``onset_strength`` (as times); video
peaks are the local maxima of the per-frame mean Farneback flow magnitude
(``cv2.calcOpticalFlowFarneback(prev, next, None, 0.5, 3, 15, 3, 5, 1.2, 0)`` on grey frames); an
audio peak matches when a video peak lies strictly within one frame (1/fps); the score is
matched / (#audio + #video - matched), and 0 when both lists are empty. As in the reference,
several audio peaks may match one video peak, so a clip can score above 1 (librosa often reports
one sharp impact as two onsets one hop apart); kept as defined so numbers compare.

Event sync: detected events (audio onsets, or video bounces) are matched one-to-one to reference
times within a tolerance (one frame by default) by ``scipy.optimize.linear_sum_assignment`` on the
absolute time differences; F1 from the matches, timing error = the matched pairs' median
absolute difference.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import librosa
import numpy as np
from scipy.optimize import linear_sum_assignment

from difforge.av.data.bounce import FPS, MATERIALS, SAMPLE_RATE


def audio_onsets(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Onset times in seconds (librosa defaults, as AV-Align)."""
    y = np.asarray(audio, dtype=np.float32)
    envelope = librosa.onset.onset_strength(y=y, sr=sample_rate)
    return librosa.onset.onset_detect(onset_envelope=envelope, sr=sample_rate, units="time").astype(
        np.float64
    )


def flow_magnitudes(frames: np.ndarray) -> np.ndarray:
    """Mean Farneback flow magnitude between consecutive frames ``(T - 1,)``; frames RGB uint8."""
    grey = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames]
    out = []
    for prev, nxt in itertools.pairwise(grey):
        flow = cv2.calcOpticalFlowFarneback(prev, nxt, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        out.append(float(np.linalg.norm(flow, axis=-1).mean()))
    return np.array(out)


def local_maxima(values: np.ndarray) -> np.ndarray:
    """Indices ``i`` with ``values[i]`` above both neighbours (ends compare with one neighbour);
    TempoTokens' ``find_local_max_indexes`` with ``n = len(values)``."""
    n = len(values)
    peaks = []
    for i in range(n):
        left = values[i - 1] if i > 0 else -np.inf
        right = values[i + 1] if i < n - 1 else -np.inf
        if values[i] > left and values[i] > right:
            peaks.append(i)
    return np.array(peaks, dtype=np.int64)


def video_peaks(frames: np.ndarray, fps: float = FPS) -> np.ndarray:
    """AV-Align's video peak times: local maxima of the flow magnitude, as ``index / fps``."""
    return local_maxima(flow_magnitudes(frames)) / fps


def av_align(
    frames: np.ndarray, audio: np.ndarray, fps: float = FPS, sample_rate: int = SAMPLE_RATE
) -> float:
    """AV-Align of one clip (see the module docstring)."""
    audio_times = audio_onsets(audio, sample_rate)
    video_times = video_peaks(frames, fps)
    if not len(audio_times) and not len(video_times):
        return 0.0
    # Open interval, as the reference implementation (video_peak ± 1/fps, strict).
    matched = sum(
        1 for t in audio_times if len(video_times) and np.min(np.abs(video_times - t)) < 1 / fps
    )
    return matched / (len(audio_times) + len(video_times) - matched)


def video_bounces(tracks: np.ndarray, fps: float = FPS) -> np.ndarray:
    """Bounce times from tracks ``(T, n, 2)``: frames where a vertical velocity turns from down
    (y growing) to up, or a horizontal velocity flips sign; times of the turning frame."""
    times = []
    for axis in (1, 0):
        velocity = np.nan_to_num(np.diff(tracks[..., axis], axis=0))  # (T - 1, n)
        flips = (velocity[:-1] * velocity[1:] < 0) & (np.abs(velocity[:-1]) > 0.2)
        if axis == 1:
            flips &= velocity[:-1] > 0  # falling, then rising: a floor or ball bounce
        frames, _ = np.nonzero(flips)
        times.extend((frames + 1) / fps)
    return np.sort(np.array(times, dtype=np.float64))


def track_balls(frames: np.ndarray, max_balls: int = 3, tolerance: float = 60.0) -> np.ndarray:
    """Colour tracker: per frame the centroids of the largest blobs whose colour is within
    ``tolerance`` (RGB distance) of a material colour, associated to the previous frame's
    centroids by nearest neighbour; ``(T, n, 2)`` (x, y), n = the most blobs seen in a frame."""
    palette = np.array([spec["colour"][::-1] for spec in MATERIALS.values()], dtype=np.float32)
    per_frame: list[np.ndarray] = []
    for frame in frames:
        distance = np.linalg.norm(frame[..., None, :].astype(np.float32) - palette, axis=-1)
        mask = (distance.min(-1) < tolerance).astype(np.uint8)
        n, _, stats, centroids = cv2.connectedComponentsWithStats(mask, connectivity=8)
        blobs = [(stats[i, cv2.CC_STAT_AREA], centroids[i]) for i in range(1, n)]
        blobs = sorted((b for b in blobs if b[0] >= 6), key=lambda b: -b[0])[:max_balls]
        per_frame.append(np.array([c for _, c in blobs]).reshape(-1, 2))
    count = max((len(c) for c in per_frame), default=0)
    tracks = np.full((len(frames), count, 2), np.nan)
    for f, centres in enumerate(per_frame):
        previous = tracks[f - 1] if f else None
        free = list(range(len(centres)))
        for slot in range(count):
            if not free:
                break
            if previous is None or np.isnan(previous[slot]).any():
                pick = free[0]
            else:
                pick = min(free, key=lambda i: np.linalg.norm(centres[i] - previous[slot]))
            tracks[f, slot] = centres[pick]
            free.remove(pick)
    return tracks


def event_sync(frames: np.ndarray, audio: np.ndarray, fps: float = FPS) -> EventMatch:
    """Event sync of a clip: bounces the colour tracker sees against onsets heard in the audio
    (the onsets as detections, the bounces as the reference)."""
    return match_events(audio_onsets(audio), video_bounces(track_balls(frames), fps), 1 / fps)


@dataclass(frozen=True)
class EventMatch:
    precision: float
    recall: float
    f1: float
    median_error_s: float  # NaN without matches
    matched: int


def match_events(
    detected: np.ndarray, reference: np.ndarray, tolerance: float = 1 / FPS
) -> EventMatch:
    """One-to-one matching of ``detected`` to ``reference`` times within ``tolerance`` seconds."""
    detected, reference = np.asarray(detected, float), np.asarray(reference, float)
    errors: list[float] = []
    if len(detected) and len(reference):
        cost = np.abs(detected[:, None] - reference[None, :])
        rows, cols = linear_sum_assignment(np.where(cost <= tolerance, cost, 1e6))
        errors = [float(cost[r, c]) for r, c in zip(rows, cols) if cost[r, c] <= tolerance]
    matched = len(errors)
    precision = matched / len(detected) if len(detected) else float(not len(reference))
    recall = matched / len(reference) if len(reference) else float(not len(detected))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    median = float(np.median(errors)) if errors else float("nan")
    return EventMatch(precision, recall, f1, median, matched)
